"""room.py: the rules of one room, checked through the effects it returns (no sockets)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from roomserver.core.protocol import CloseCode, PeerStats
from roomserver.core.roles import Role
from roomserver.core.room import (
    Audit,
    Close,
    Ended,
    Outcome,
    Revoke,
    Room,
    RoomError,
    Send,
    room_of_secret,
)
from roomserver.core.seat import Connection, Status

T0 = 1_764_064_800.0  # 2025-11-25T10:00:00Z
GRACE = 30.0
EMPTY = 600.0


class TrackedRoom(Room):
    """A Room that remembers the resume secret it last sent each seat (the room itself keeps only hashes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_secrets: dict[str, str] = {}

    def _note(self, out: Outcome) -> Outcome:
        if out.seat is not None:
            for m in out.reply:
                if "resume_secret" in m:
                    self.sent_secrets[out.seat.id] = m["resume_secret"]
        for e in out.effects:
            if isinstance(e, Send) and "resume_secret" in e.message:
                self.sent_secrets[e.seat] = e.message["resume_secret"]
        return out

    def join(self, **kwargs: Any) -> Outcome:
        return self._note(super().join(**kwargs))

    def resume(self, secret: str, now: float) -> Outcome:
        return self._note(super().resume(secret, now))

    def admit(self, actor: str, target: str, now: float) -> Outcome:
        return self._note(super().admit(actor, target, now))

    def secret_of(self, seat_id: str) -> str:
        return self.sent_secrets[seat_id]


def make_room(**overrides: Any) -> TrackedRoom:
    options: dict[str, Any] = dict(
        waiting_room=True, max_participants=4, ends_at=T0 + 3600, empty_timeout=EMPTY, resume_grace=GRACE,
        ice_servers_for=lambda seat: [{"urls": ["turn:turn.example.org"], "username": f"1:{seat.id}",
                                       "credential": "c"}],
    )
    options.update(overrides)
    return TrackedRoom("r_x7Gq2", "Beratung 10:30", **options)


def join(room: TrackedRoom, identity: str, role: Role = Role.COUNSELLOR, *, name: str | None = None,
         jti: str | None = None, now: float = T0) -> Outcome:
    return room.join(identity=identity, role=role, name=name or "Anna Beispiel", jti=jti or f"jti-{identity}",
                     now=now)


def types(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in msgs]


def closes(out: Outcome) -> dict[str, int]:
    return {e.seat: int(e.code) for e in out.effects if isinstance(e, Close)}


def revokes(out: Outcome) -> dict[str, set[str]]:
    return {e.identity: set(e.jtis) for e in out.effects if isinstance(e, Revoke)}


def audits(out: Outcome) -> list[Audit]:
    return [e for e in out.effects if isinstance(e, Audit)]


def refusal(call: Any, *args: Any, **kwargs: Any) -> RoomError:
    with pytest.raises(RoomError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.fixture
def room() -> TrackedRoom:
    return make_room()


@pytest.fixture
def call(room: Room) -> dict[str, str]:
    """A running call: counsellor and expert in, a citizen in the waiting room."""
    c = join(room, "staff-weber").seat.id
    e = join(room, "staff-expert", Role.EXPERT, now=T0 + 1).seat.id
    z = join(room, "invite-1", Role.CITIZEN, name="Ayşe", now=T0 + 2).seat.id
    return {"counsellor": c, "expert": e, "citizen": z}


# --- joining ---------------------------------------------------------------------------


def test_counsellor_join_gets_welcome_and_lobby(room: Room) -> None:
    out = join(room, "staff-weber", name="Frau Weber")
    seat = out.seat
    assert re.fullmatch(r"p_[A-Za-z0-9_-]{8}", seat.id)
    secret = room.secret_of(seat.id)
    assert secret.startswith("rs_r_x7Gq2.") and len(secret) >= 40  # the room routes it; 192 random bits
    assert room_of_secret(secret) == "r_x7Gq2"
    assert secret not in repr(seat) and seat.secret_hash != secret  # the room keeps a hash only
    assert types(out.reply) == ["welcome", "lobby"]
    welcome, lobby = out.reply
    assert welcome["self"] == {"id": seat.id, "name": "Frau Weber", "role": "counsellor",
                               "state": {"mic": True, "camera": True, "screen": False, "hand": False}}
    assert welcome["room"] == {"id": "r_x7Gq2", "title": "Beratung 10:30", "ends_at": "2025-11-25T11:00:00+00:00",
                               "waiting_room": True}
    assert welcome["peers"] == []
    assert welcome["ice_servers"][0]["username"] == f"1:{seat.id}"
    assert welcome["resumed"] is False
    assert lobby == {"type": "lobby", "waiting": []}
    assert [a.event for a in audits(out)] == ["seat.join"]
    assert room.occupancy == 1


def test_seat_ids_and_secrets_are_unique() -> None:
    room = make_room(max_participants=50)
    outs = [join(room, f"id-{i}", Role.EXPERT) for i in range(40)]
    assert len({o.seat.id for o in outs}) == 40
    assert len({room.secret_of(o.seat.id) for o in outs}) == 40


def test_expert_enters_directly_and_peers_are_told(room: TrackedRoom, call: dict[str, str]) -> None:
    out = join(room, "staff-interp", Role.INTERPRETER)
    new = out.seat.id
    assert types(out.reply) == ["welcome"]  # no lobby for a non-moderator
    peers = out.reply[0]["peers"]
    assert [p["id"] for p in peers] == [call["counsellor"], call["expert"]]
    assert all(p["connection"] == "online" and set(p) == {"id", "name", "role", "state", "connection"}
               for p in peers)
    joined = {"type": "peer-joined", "peer": {"id": new, "name": "Anna Beispiel", "role": "interpreter",
                                              "state": {"mic": True, "camera": True, "screen": False, "hand": False},
                                              "connection": "online"}}
    assert out.sends(call["counsellor"]) == [joined]
    assert out.sends(call["expert"]) == [joined]
    assert out.sends(call["citizen"]) == []  # the waiting room sees nothing of the call


def test_citizen_waits_and_moderators_get_the_lobby(room: Room) -> None:
    c = join(room, "staff-weber").seat.id
    e = join(room, "staff-expert", Role.EXPERT).seat.id
    out = join(room, "invite-1", Role.CITIZEN, name="Ayşe", now=T0 + 72)
    z = out.seat
    assert z.status is Status.WAITING
    assert out.reply == [{"type": "waiting", "self": {"id": z.id, "name": "Ayşe", "role": "citizen"},
                          "room": {"id": "r_x7Gq2", "title": "Beratung 10:30"}, "resume_secret": room.secret_of(z.id)}]
    lobby = {"type": "lobby", "waiting": [{"id": z.id, "name": "Ayşe", "role": "citizen",
                                           "since": "2025-11-25T10:01:12+00:00"}]}
    assert out.sends(c) == [lobby]
    assert out.sends(e) == []
    assert room.occupancy == 2
    assert [a.event for a in audits(out)] == ["seat.wait"]


def test_moderator_joining_later_gets_current_lobby(room: Room) -> None:
    z = join(room, "invite-1", Role.CITIZEN).seat.id
    out = join(room, "staff-weber")
    assert types(out.reply) == ["welcome", "lobby"]
    assert [w["id"] for w in out.reply[1]["waiting"]] == [z]
    assert out.reply[0]["peers"] == []  # waiting seats are not peers


def test_without_waiting_room_citizens_enter_directly() -> None:
    room = make_room(waiting_room=False)
    c = join(room, "staff-weber").seat.id
    out = join(room, "invite-1", Role.CITIZEN)
    assert out.seat.status is Status.ADMITTED
    assert types(out.reply) == ["welcome"]
    assert types(out.sends(c)) == ["peer-joined"]


def test_identity_in_use_is_refused_in_every_state(room: TrackedRoom, call: dict[str, str]) -> None:
    for identity, role in (("staff-weber", Role.COUNSELLOR), ("invite-1", Role.CITIZEN)):
        err = refusal(join, room, identity, role, jti="another-jti")
        assert (err.code, err.close) == ("identity_in_use", CloseCode.IDENTITY_IN_USE)
    room.disconnected(call["expert"], T0 + 5)
    err = refusal(join, room, "staff-expert", Role.EXPERT, jti="fresh")
    assert err.code == "identity_in_use"
    assert len(room.seats) == 3


# --- waiting room ---------------------------------------------------------------------------


def test_admit_moves_citizen_into_the_call(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e, z = call["counsellor"], call["expert"], call["citizen"]
    out = room.admit(c, z, T0 + 10)
    assert room.seat(z).status is Status.ADMITTED and room.seat(z).admitted_at == T0 + 10
    welcome = out.sends(z)
    assert types(welcome) == ["welcome"]
    assert [p["id"] for p in welcome[0]["peers"]] == [c, e]
    assert welcome[0]["resume_secret"] == room.secret_of(z)
    assert types(out.sends(e)) == ["peer-joined"]
    assert types(out.sends(c)) == ["peer-joined", "lobby"]
    assert out.sends(c)[1]["waiting"] == []
    # peers hear of the newcomer before the newcomer can offer to them
    order = [(s.seat, s.message["type"]) for s in out.effects if isinstance(s, Send)]
    assert order.index((e, "peer-joined")) < order.index((z, "welcome"))
    (audit,) = audits(out)
    assert (audit.event, audit.seat, audit.actor, audit.actor_role) == ("seat.admit", z, c, "counsellor")
    assert room.occupancy == 3


def test_waiting_participants_see_no_peers_and_cannot_signal(room: TrackedRoom, call: dict[str, str]) -> None:
    z, c = call["citizen"], call["counsellor"]
    assert refusal(room.route_signal, z, c).code == "forbidden"
    assert refusal(room.route_signal, c, z).code == "not_in_room"
    out = room.set_state(c, {"mic": False}, T0 + 3)
    assert out.sends(z) == []


@pytest.mark.parametrize("actor", ["expert", "citizen"])
def test_only_moderators_admit_deny_remove_end(room: TrackedRoom, call: dict[str, str], actor: str) -> None:
    if actor == "citizen":
        room.admit(call["counsellor"], call["citizen"], T0 + 3)
        target = join(room, "invite-2", Role.CITIZEN).seat.id
    else:
        target = call["citizen"]
    a = call[actor]
    for action in (room.admit, room.deny):
        err = refusal(action, a, target, T0 + 4)
        assert (err.code, err.close) == ("forbidden", None)
    assert refusal(room.remove, a, call["counsellor"], T0 + 4).code == "forbidden"
    assert refusal(room.end, a, "moderator", T0 + 4).code == "forbidden"
    assert not room.ended and room.seat(target).status is Status.WAITING


def test_admit_or_deny_someone_not_waiting(room: TrackedRoom, call: dict[str, str]) -> None:
    c = call["counsellor"]
    for target in (call["expert"], "p_nobody", c):
        assert refusal(room.admit, c, target, T0).code == "not_waiting"
        assert refusal(room.deny, c, target, T0).code == "not_waiting"


def test_deny_closes_4403_and_revokes(room: TrackedRoom, call: dict[str, str]) -> None:
    c, z = call["counsellor"], call["citizen"]
    out = room.deny(c, z, T0 + 10)
    assert out.sends(z) == [{"type": "denied"}]
    assert closes(out) == {z: CloseCode.DENIED}
    assert revokes(out) == {"invite-1": {"jti-invite-1"}}
    assert out.sends(c) == [{"type": "lobby", "waiting": []}]
    assert out.sends(call["expert"]) == []
    assert room.seat(z) is None
    err = refusal(join, room, "invite-1", Role.CITIZEN)
    assert (err.code, err.close) == ("token_revoked", CloseCode.TOKEN_REFUSED)
    # a freshly issued invite (new jti) is a deliberate second chance
    assert join(room, "invite-1", Role.CITIZEN, jti="jti-reissued").seat.status is Status.WAITING


def test_waiting_seat_that_drops_leaves_the_lobby_until_it_resumes(room: TrackedRoom, call: dict[str, str]) -> None:
    c, z = call["counsellor"], call["citizen"]
    since = room.seat(z).lobby_entry()["since"]
    out = room.disconnected(z, T0 + 5)
    assert out.sends(c) == [{"type": "lobby", "waiting": []}]
    assert refusal(room.admit, c, z, T0 + 6).code == "not_waiting"
    out = room.resume(room.secret_of(z), T0 + 8)
    assert types(out.reply) == ["waiting"]
    assert out.sends(c)[0]["waiting"] == [{"id": z, "name": "Ayşe", "role": "citizen", "since": since}]
    room.disconnected(z, T0 + 9)
    out = room.tick(T0 + 9 + GRACE)
    assert room.seat(z) is None
    assert not any(isinstance(e, Send) for e in out.effects)  # hidden already; no peer-left for a waiting seat


def test_waiting_room_has_a_limit() -> None:
    room = make_room(max_participants=2, max_waiting=1)
    join(room, "invite-1", Role.CITIZEN)
    err = refusal(join, room, "invite-2", Role.CITIZEN)
    assert (err.code, err.close) == ("room_full", CloseCode.TOKEN_REFUSED)


# --- capacity ---------------------------------------------------------------------------------


def test_capacity_counts_admitted_and_reconnecting_not_waiting() -> None:
    room = make_room(max_participants=2)
    c = join(room, "staff-weber").seat.id
    e = join(room, "staff-expert", Role.EXPERT).seat.id
    z = join(room, "invite-1", Role.CITIZEN).seat.id  # waiting: not counted
    err = refusal(join, room, "staff-interp", Role.INTERPRETER)
    assert (err.code, err.close) == ("room_full", CloseCode.TOKEN_REFUSED)
    err = refusal(room.admit, c, z, T0 + 1)
    assert (err.code, err.close) == ("room_full", None)
    assert room.seat(z).status is Status.WAITING
    room.disconnected(e, T0 + 2)  # reconnecting still holds the place
    assert refusal(join, room, "staff-interp", Role.INTERPRETER).code == "room_full"
    room.leave(e, T0 + 3)
    room.admit(c, z, T0 + 4)
    assert room.occupancy == 2


# --- resume ------------------------------------------------------------------------------------


def test_resume_restores_the_same_seat(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e = call["counsellor"], call["expert"]
    room.set_state(e, {"camera": False}, T0 + 3)
    secret = room.secret_of(e)
    out = room.disconnected(e, T0 + 5, conn=1)
    assert room.seat(e).connection is Connection.RECONNECTING
    assert out.sends(c) == [{"type": "peer-reconnecting", "peer": e}]
    assert out.sends(call["citizen"]) == []
    assert room.next_deadline() == T0 + 5 + GRACE
    assert room.tick(T0 + 5 + GRACE - 0.1).effects == []

    out = room.resume(secret, T0 + 20)
    assert out.seat.id == e and out.seat.conn == 2 and out.seat.online
    (welcome,) = out.reply
    assert welcome["resumed"] is True and welcome["self"]["id"] == e
    assert welcome["self"]["state"]["camera"] is False  # state kept
    assert welcome["resume_secret"] != secret and welcome["resume_secret"].startswith("rs_r_x7Gq2.")  # rotated
    assert [p["id"] for p in welcome["peers"]] == [c]
    assert out.sends(c) == [{"type": "peer-resumed", "peer": e}]
    assert closes(out) == {}
    assert room.next_deadline() == T0 + 3600  # only the scheduled end is left


def test_every_resume_rotates_the_secret_and_an_old_one_takes_nothing_from_an_online_seat(room: TrackedRoom,
                                                                               call: dict[str, str]) -> None:
    e = call["expert"]
    first = room.secret_of(e)
    room.disconnected(e, T0 + 5)
    room.resume(first, T0 + 6)
    second = room.secret_of(e)
    assert second != first
    # The seat is online on the new socket: the old secret takes nothing over.
    assert refusal(room.resume, first, T0 + 7).code == "resume_unknown"
    # Offline again before the client could prove it got the new one: the welcome may have been
    # lost with the socket, so the secret before it still brings the seat back, once.
    room.disconnected(e, T0 + 8)
    out = room.resume(first, T0 + 9)
    assert out.seat.id == e
    third = room.secret_of(e)
    assert len({first, second, third}) == 3
    room.disconnected(e, T0 + 10)
    assert refusal(room.resume, second, T0 + 11).code == "resume_unknown"  # never the one before that
    assert room.resume(third, T0 + 12).seat.id == e
    room.disconnected(e, T0 + 13)
    assert refusal(room.resume, first, T0 + 14).code == "resume_unknown"  # used: it stops for good


def test_peers_see_reconnecting_peers_in_welcome(room: TrackedRoom, call: dict[str, str]) -> None:
    room.disconnected(call["expert"], T0 + 5)
    out = join(room, "staff-interp", Role.INTERPRETER, now=T0 + 6)
    conn = {p["id"]: p["connection"] for p in out.reply[0]["peers"]}
    assert conn == {call["counsellor"]: "online", call["expert"]: "reconnecting"}
    assert out.sends(call["expert"]) == []  # no socket, nothing sent


def test_resume_while_old_socket_online_replaces_it(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e = call["counsellor"], call["expert"]
    out = room.resume(room.secret_of(e), T0 + 5)
    first = out.effects[0]
    assert isinstance(first, Close) and (first.seat, first.conn, first.code) == (e, 1, CloseCode.REPLACED)
    assert out.seat.conn == 2
    assert out.sends(c) == [{"type": "peer-resumed", "peer": e}]
    # the replaced socket reports its end late: ignored
    assert room.disconnected(e, T0 + 6, conn=1).effects == []
    assert room.seat(e).online
    assert room.disconnected(e, T0 + 7, conn=2).sends(c) == [{"type": "peer-reconnecting", "peer": e}]


def test_resume_after_grace_fails_and_peers_see_timeout(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e = call["counsellor"], call["expert"]
    secret = room.secret_of(e)
    room.disconnected(e, T0 + 5)
    out = room.tick(T0 + 5 + GRACE)
    assert out.sends(c) == [{"type": "peer-left", "peer": e, "reason": "timeout"}]
    assert [a.event for a in audits(out)] == ["seat.timeout"]
    assert room.seat(e) is None and room.seat_of("staff-expert") is None
    err = refusal(room.resume, secret, T0 + 40)
    assert (err.code, err.close) == ("resume_unknown", CloseCode.RESUME_UNKNOWN)
    # not banned: the same token may join again
    assert join(room, "staff-expert", Role.EXPERT, now=T0 + 41).seat.id != e


def test_resume_unknown_secret(room: TrackedRoom, call: dict[str, str]) -> None:
    err = refusal(room.resume, "rs_forged", T0)
    assert (err.code, err.close) == ("resume_unknown", CloseCode.RESUME_UNKNOWN)


# --- leave / remove ----------------------------------------------------------------------------------


def test_leave_frees_the_seat(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e = call["counsellor"], call["expert"]
    secret = room.secret_of(e)
    out = room.leave(e, T0 + 5)
    assert out.sends(c) == [{"type": "peer-left", "peer": e, "reason": "left"}]
    assert closes(out) == {e: CloseCode.NORMAL}
    assert revokes(out) == {}
    assert refusal(room.resume, secret, T0 + 6).code == "resume_unknown"
    assert room.leave(e, T0 + 7).effects == []  # idempotent
    assert join(room, "staff-expert", Role.EXPERT, now=T0 + 8).seat.status is Status.ADMITTED


def test_removed_cannot_come_back(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e, z = call["counsellor"], call["expert"], call["citizen"]
    secret = room.secret_of(e)
    out = room.remove(c, e, T0 + 5)
    assert out.sends(e) == [{"type": "removed"}]
    assert closes(out) == {e: CloseCode.REMOVED}
    assert revokes(out) == {"staff-expert": {"jti-staff-expert"}}
    assert out.sends(c) == [{"type": "peer-left", "peer": e, "reason": "removed"}]
    assert out.sends(z) == []
    assert refusal(room.resume, secret, T0 + 6).code == "resume_unknown"
    assert refusal(join, room, "staff-expert", Role.EXPERT).code == "token_revoked"


def test_remove_a_reconnecting_seat_revokes_without_sending(room: TrackedRoom, call: dict[str, str]) -> None:
    e = call["expert"]
    room.disconnected(e, T0 + 5)
    out = room.remove(call["counsellor"], e, T0 + 6)
    assert out.sends(e) == [] and closes(out) == {}
    assert revokes(out) == {"staff-expert": {"jti-staff-expert"}}


def test_remove_by_operator_and_refusals(room: TrackedRoom, call: dict[str, str]) -> None:
    c, z = call["counsellor"], call["citizen"]
    out = room.remove(None, z, T0 + 5)  # operator removes a waiting citizen
    assert closes(out) == {z: CloseCode.REMOVED}
    assert out.sends(c) == [{"type": "lobby", "waiting": []}]
    (audit,) = audits(out)
    assert (audit.event, audit.actor, audit.actor_role) == ("seat.remove", None, "operator")
    assert refusal(room.remove, c, "p_nobody", T0).code == "not_in_room"
    assert refusal(room.remove, c, c, T0).code == "forbidden"


def test_withdrawing_an_invite_removes_the_seat_that_joined_with_it(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e = call["counsellor"], call["expert"]
    secret = room.secret_of(e)
    out = room.withdraw("jti-staff-expert", T0 + 5)
    assert out.sends(e) == [{"type": "removed"}]
    assert closes(out) == {e: CloseCode.REMOVED}
    assert revokes(out) == {"staff-expert": {"jti-staff-expert"}}
    assert out.sends(c) == [{"type": "peer-left", "peer": e, "reason": "removed"}]
    (audit,) = audits(out)
    assert (audit.event, audit.actor_role, audit.detail) == ("seat.remove", "api", {"reason": "invite_withdrawn"})
    assert refusal(room.resume, secret, T0 + 6).code == "resume_unknown"
    assert refusal(join, room, "staff-expert", Role.EXPERT).code == "token_revoked"


def test_withdrawing_an_unused_invite_touches_no_seat_and_bars_its_jti(room: TrackedRoom,
                                                                       call: dict[str, str]) -> None:
    out = room.withdraw("jti-staff-interp", T0 + 5)
    assert out.effects == []
    assert refusal(join, room, "staff-interp", Role.INTERPRETER).code == "token_revoked"


# --- end --------------------------------------------------------------------------------------------


def test_end_disconnects_everyone_and_revokes_all(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e, z = call["counsellor"], call["expert"], call["citizen"]
    interp = join(room, "staff-interp", Role.INTERPRETER).seat
    room.leave(interp.id, T0 + 3)  # left earlier: its token is revoked too
    secret = room.secret_of(e)
    out = room.end(c, "moderator", T0 + 10)
    for seat in (c, e, z):
        assert out.sends(seat) == [{"type": "ended", "reason": "moderator"}]
    assert closes(out) == {c: CloseCode.ROOM_ENDED, e: CloseCode.ROOM_ENDED, z: CloseCode.ROOM_ENDED}
    assert revokes(out) == {"staff-weber": {"jti-staff-weber"}, "staff-expert": {"jti-staff-expert"},
                            "invite-1": {"jti-invite-1"}, "staff-interp": {"jti-staff-interp"}}
    assert [x.reason for x in out.effects if isinstance(x, Ended)] == ["moderator"]
    assert room.ended and room.end_reason == "moderator" and room.seats == {}
    err = refusal(join, room, "someone-new", Role.EXPERT)
    assert (err.code, err.close) == ("room_ended", CloseCode.TOKEN_REFUSED)
    err = refusal(room.resume, secret, T0 + 11)
    assert (err.code, err.close) == ("room_ended", CloseCode.ROOM_ENDED)
    assert refusal(room.end, None, "operator", T0 + 12).code == "room_ended"
    assert room.tick(T0 + 99999).effects == []
    assert room.next_deadline() is None


def test_end_skips_sockets_that_are_gone(room: TrackedRoom, call: dict[str, str]) -> None:
    room.disconnected(call["expert"], T0 + 5)
    out = room.end(None, "operator", T0 + 6)
    assert call["expert"] not in closes(out)
    assert "staff-expert" in revokes(out)
    (audit,) = audits(out)
    assert audit.actor_role == "operator" and audit.detail == {"reason": "operator", "seats": 3}


def test_end_reason_must_be_known(room: Room) -> None:
    with pytest.raises(ValueError):
        room.end(None, "bored", T0)


def test_scheduled_end() -> None:
    room = make_room(ends_at=T0 + 100)
    c = join(room, "staff-weber").seat.id
    assert room.next_deadline() == T0 + 100
    assert room.tick(T0 + 99).effects == []
    out = room.tick(T0 + 100)
    assert out.sends(c) == [{"type": "ended", "reason": "scheduled_end"}]
    assert room.ended and room.end_reason == "scheduled_end"
    assert audits(out)[0].actor_role == "system"


def test_empty_room_ends_after_timeout() -> None:
    room = make_room(ends_at=None)
    assert room.tick(T0 + 10 * EMPTY).effects == [] and room.next_deadline() is None  # never used: no timer
    assert not room.ended
    c = join(room, "staff-weber", now=T0).seat.id
    z = join(room, "invite-1", Role.CITIZEN, now=T0 + 1).seat.id
    room.leave(c, T0 + 100)  # only a waiting citizen is left: that is empty
    assert room.next_deadline() == T0 + 100 + EMPTY
    # someone enters and leaves again: the timer restarts
    e = join(room, "staff-expert", Role.EXPERT, now=T0 + 200).seat.id
    assert room.next_deadline() is None
    room.leave(e, T0 + 300)
    assert room.tick(T0 + 300 + EMPTY - 1).effects == []
    out = room.tick(T0 + 300 + EMPTY)
    assert out.sends(z) == [{"type": "ended", "reason": "empty"}]
    assert room.end_reason == "empty"


def test_reconnecting_seat_keeps_the_room_alive_then_times_out() -> None:
    room = make_room(ends_at=None)
    c = join(room, "staff-weber").seat.id
    room.disconnected(c, T0 + 10)
    assert room.empty_since is None
    room.tick(T0 + 10 + GRACE + 5)  # tick runs late
    assert room.seat(c) is None and not room.ended
    assert room.next_deadline() == T0 + 10 + GRACE + EMPTY  # empty since the grace ran out, not since the tick
    out = room.tick(T0 + 10 + GRACE + EMPTY)
    assert Ended("empty") in out.effects
    assert [(a.event, a.actor_role, a.detail) for a in audits(out)] == [
        ("room.end", "system", {"reason": "empty", "seats": 0})]


# --- signal, state, stats -------------------------------------------------------------------------


def test_signal_is_relayed_to_an_admitted_online_peer(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e = call["counsellor"], call["expert"]
    assert room.route_signal(e, c) == c
    assert room.route_signal(c, e) == e


def test_signal_refusals(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e, z = call["counsellor"], call["expert"], call["citizen"]
    other = make_room()
    foreign = join(other, "staff-other").seat.id
    for target in (z, "p_nobody", foreign):  # waiting, unknown, in another room
        err = refusal(room.route_signal, e, target)
        assert (err.code, err.close) == ("not_in_room", None)
    assert refusal(room.route_signal, e, e).code == "not_in_room"
    assert refusal(room.route_signal, "p_ghost", c).code == "not_in_room"
    room.leave(e, T0 + 5)
    assert refusal(room.route_signal, c, e).code == "not_in_room"


def test_no_signal_is_routed_in_an_ended_room(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e = call["counsellor"], call["expert"]
    room.end(c, "moderator", T0 + 5)
    err = refusal(room.route_signal, c, e)
    assert (err.code, err.close) == ("room_ended", None)


def test_signal_to_reconnecting_peer_is_dropped_silently(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e = call["counsellor"], call["expert"]
    room.disconnected(e, T0 + 5)
    assert room.route_signal(c, e) is None


def test_state_is_broadcast_only_when_it_changes(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e, z = call["counsellor"], call["expert"], call["citizen"]
    out = room.set_state(e, {"mic": False, "hand": True}, T0 + 5)
    expected = {"type": "peer-state", "peer": e, "state": {"mic": False, "camera": True, "screen": False,
                                                            "hand": True}}
    assert out.sends(c) == [expected]
    assert out.sends(e) == [] and out.sends(z) == []
    assert room.set_state(e, {"mic": False}, T0 + 6).effects == []
    # a waiting seat sets its state silently; peers see it on admission
    assert room.set_state(z, {"camera": False}, T0 + 7).effects == []
    admitted = room.admit(c, z, T0 + 8)
    assert admitted.sends(e)[0]["peer"]["state"]["camera"] is False


def test_stats_are_kept_not_relayed(room: TrackedRoom, call: dict[str, str]) -> None:
    c, e, z = call["counsellor"], call["expert"], call["citizen"]
    figures = PeerStats(rtt_ms=23.5, loss=0.01, bitrate_kbps=1450, state="connected")
    out = room.report_stats(e, {c: figures, z: figures, e: figures, "p_gone": figures}, T0 + 5)
    assert out.effects == [] and out.reply == []
    assert room.seat(e).stats == {c: figures}  # only admitted peers, not self, not the waiting room
    assert room.seat(e).stats_at == T0 + 5
    snap = {s["id"]: s for s in room.snapshot()["seats"]}
    assert snap[e]["stats"] == {c: {"rtt_ms": 23.5, "loss": 0.01, "bitrate_kbps": 1450, "state": "connected"}}
    assert snap[e]["connection"] == "online" and snap[e]["role"] == "expert"
    assert refusal(room.report_stats, "p_ghost", {}, T0).code == "not_in_room"


def test_snapshot_holds_no_identity_or_secret(room: TrackedRoom, call: dict[str, str]) -> None:
    text = orjson.dumps(room.snapshot()).decode()
    for seat in room.seats.values():
        assert seat.identity not in text and room.secret_of(seat.id) not in text and seat.secret_hash not in text
    assert '"joined_at":"2025-11-25T10:00:00+00:00"' in text


# --- privacy across a whole session ----------------------------------------------------------------


def test_identities_and_secrets_never_reach_other_participants() -> None:
    room = make_room()
    outs: list[tuple[str | None, Outcome]] = []

    def record(out: Outcome) -> Outcome:
        outs.append((out.seat.id if out.seat else None, out))
        return out

    c = record(join(room, "staff-weber")).seat.id
    e = record(join(room, "staff-expert", Role.EXPERT)).seat.id
    z = record(join(room, "invite-1", Role.CITIZEN)).seat.id
    record(room.admit(c, z, T0 + 1))
    record(room.disconnected(e, T0 + 2))
    record(room.resume(room.secret_of(e), T0 + 3))
    record(room.set_state(z, {"mic": False}, T0 + 4))
    secrets_of = {s.id: room.secret_of(s.id) for s in room.seats.values()}
    record(room.remove(c, z, T0 + 5))
    record(room.end(c, "moderator", T0 + 6))
    for caller, out in outs:
        delivered = [(caller, m) for m in out.reply] + [(x.seat, x.message) for x in out.effects
                                                       if isinstance(x, Send)]
        for to, message in delivered:
            text = orjson.dumps(message).decode()
            assert "staff-" not in text and "invite-" not in text and "jti-" not in text
            for owner, secret in secrets_of.items():
                assert owner == to or secret not in text
        for audit in audits(out):
            assert "Anna" not in repr(audit) and "Ayşe" not in repr(audit)  # names stay out of the audit trail


# --- snapshots ---------------------------------------------------------------------------------------


def test_a_snapshot_rebuilds_the_same_room_and_holds_no_secret(room: TrackedRoom, call: dict[str, str]) -> None:
    from roomserver.core import roomstate

    c, e, z = call["counsellor"], call["expert"], call["citizen"]
    room.set_state(e, {"camera": False}, T0 + 3)
    room.report_stats(c, {e: PeerStats(rtt_ms=12.0, candidate_type="relay")}, T0 + 4)
    room.disconnected(e, T0 + 5)
    data = orjson.loads(orjson.dumps(roomstate.dump(room)))  # through JSON, as in Redis or the store
    text = orjson.dumps(data).decode()
    assert all(secret not in text for secret in room.sent_secrets.values())
    copy = roomstate.load(data)
    assert roomstate.dump(copy) == roomstate.dump(room)
    assert copy.snapshot() == room.snapshot()
    # The copy goes on exactly as the original would: resume, admission, refusals.
    out = copy.resume(room.secret_of(e), T0 + 6)
    assert out.seat.id == e and out.seat.state["camera"] is False
    assert types(copy.admit(c, z, T0 + 7).sends(z)) == ["welcome"]
    assert refusal(join, copy, "staff-weber").code == "identity_in_use"
    copy.remove(c, z, T0 + 8)
    assert refusal(join, copy, "invite-1", Role.CITIZEN).code == "token_revoked"  # the jti stays withdrawn
    with pytest.raises(ValueError):
        roomstate.load({"v": 99})


def test_sockets_lost_at_once_are_each_reconnecting_and_only_the_others_hear_of_it(room: TrackedRoom,
                                                                                   call: dict[str, str]) -> None:
    c, e, z = call["counsellor"], call["expert"], call["citizen"]
    room.admit(c, z, T0 + 1)
    out = room.lost([e, z, "p_gone"], T0 + 2)
    assert room.seat(e).connection is room.seat(z).connection is Connection.RECONNECTING
    assert out.sends(c) == [{"type": "peer-reconnecting", "peer": e}, {"type": "peer-reconnecting", "peer": z}]
    assert out.sends(e) == out.sends(z) == []  # their sockets are gone as well
    assert [a.event for a in audits(out)] == ["seat.disconnect", "seat.disconnect"]
    assert room.next_deadline() == T0 + 2 + GRACE
    assert room.lost([e], T0 + 3).effects == []  # already reconnecting: nothing happens twice
