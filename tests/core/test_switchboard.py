"""The switchboard without sockets: who rings, first accept wins, timeouts, declines, presence."""

from __future__ import annotations

import pytest

from roomserver.core.switchboard import (
    KEEP_FINISHED,
    Availability,
    CallError,
    CallState,
    Desk,
    DeskState,
    Patch,
    Presence,
    Record,
    Returns,
    Ring,
    Status,
    StopRing,
    Switchboard,
)

T0 = 1_800_000_000.0


def expert(account: str, dept: str = "auslaenderbehoerde") -> Desk:
    return Desk(account, f"Name {account}", "expert", dept, frozenset())


def interpreter(account: str, *languages: str) -> Desk:
    return Desk(account, f"Name {account}", "interpreter", None, frozenset(languages))


def board(*desks: Desk, timeout: float = 60) -> Switchboard:
    sb = Switchboard(timeout)
    for desk in desks:
        sb.desk_online(desk, T0)
    return sb


def call(sb: Switchboard, target: str = "auslaenderbehoerde", kind: str = "department", room: str = "r_1"):
    return sb.call(room_id=room, room_title="Beratung", caller_seat="p_c", caller_identity="a_counsellor",
                   caller_name="Frau Weber", kind=kind, target=target, target_label=target, now=T0)


def of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


def test_every_available_expert_of_the_department_rings():
    sb = board(expert("a1"), expert("a2"), expert("j1", "jobcenter"))
    c, effects = call(sb)
    assert sorted(r.account for r in of(effects, Ring)) == ["a1", "a2"]
    assert c.state is CallState.RINGING
    assert of(effects, Status)[-1].call["ringing"] == 2
    assert [r.event for r in of(effects, Record)] == ["requested", "rung", "rung"]


def test_first_accept_wins_and_the_others_are_told():
    sb = board(expert("a1"), expert("a2"))
    c, _ = call(sb)
    effects = sb.accept(c.id, "a2", T0 + 3)
    patch = of(effects, Patch)
    assert [p.account for p in patch] == ["a2"] and patch[0].room_id == "r_1"
    assert {(s.account, s.reason) for s in of(effects, StopRing)} == {("a2", "accepted_elsewhere"), ("a1", "taken")}
    assert of(effects, Status)[-1].call["state"] == "accepted"
    assert of(effects, Status)[-1].call["accepted_by"] == "Name a2"
    with pytest.raises(CallError) as late:  # the same instant, one step later: exactly one wins
        sb.accept(c.id, "a1", T0 + 3)
    assert late.value.code == "call_taken"
    assert sb.desks["a2"].status is Availability.BUSY


def test_nobody_available_fails_at_once():
    sb = board(expert("j1", "jobcenter"))
    c, effects = call(sb)
    assert c.state is CallState.NO_ONE
    assert of(effects, Status)[-1].call["state"] == "no_one"
    assert not of(effects, Ring)


def test_away_and_busy_experts_are_not_rung():
    sb = board(expert("a1"), expert("a2"), expert("a3"))
    sb.set_availability("a1", Availability.AWAY, T0)
    sb.entered_room("a2", "r_other")
    _, effects = call(sb)
    assert [r.account for r in of(effects, Ring)] == ["a3"]


def test_offline_desk_is_not_rung():
    sb = board(expert("a1"))
    sb.desk_offline("a1")
    c, _ = call(sb)
    assert c.state is CallState.NO_ONE


def test_timeout_stops_ringing_and_tells_the_caller():
    sb = board(expert("a1"), timeout=60)
    c, _ = call(sb)
    assert sb.next_deadline() == T0 + 60
    assert sb.tick(T0 + 59) == []
    effects = sb.tick(T0 + 60)
    assert of(effects, StopRing) == [StopRing("a1", c.id, "timed_out")]
    assert of(effects, Status)[-1].call["state"] == "timed_out"
    with pytest.raises(CallError) as late:
        sb.accept(c.id, "a1", T0 + 61)
    assert late.value.code == "call_over"
    sb.tick(T0 + 60 + KEEP_FINISHED)
    assert c.id not in sb.calls


def test_cancel_by_the_caller_only():
    sb = board(expert("a1"))
    c, _ = call(sb)
    with pytest.raises(CallError):
        sb.cancel(c.id, "p_someone_else", T0)
    effects = sb.cancel(c.id, "p_c", T0 + 1)
    assert of(effects, StopRing) == [StopRing("a1", c.id, "cancelled")]
    assert of(effects, Status)[-1].call["state"] == "cancelled"


def test_a_declined_expert_is_not_rung_again_for_that_call():
    sb = board(expert("a1"), expert("a2"))
    c, _ = call(sb)
    effects = sb.decline(c.id, "a1", T0 + 1)
    assert of(effects, StopRing) == [StopRing("a1", c.id, "declined")]
    assert of(effects, Status)[-1].call["ringing"] == 1
    # a1 opens another tab: the call does not ring there
    assert not of(sb.desk_online(expert("a1"), T0 + 2), Ring)
    with pytest.raises(CallError):
        sb.accept(c.id, "a1", T0 + 3)


def test_everyone_declining_ends_the_call_early():
    sb = board(expert("a1"))
    c, _ = call(sb)
    effects = sb.decline(c.id, "a1", T0 + 1)
    assert of(effects, Status)[-1].call["state"] == "timed_out"


def test_an_expert_coming_online_while_it_rings_rings_too():
    sb = board(expert("a1"))
    c, _ = call(sb)
    effects = sb.desk_online(expert("a2"), T0 + 5)
    assert [r.account for r in of(effects, Ring)] == ["a2"]
    assert "a2" in c.rung


def test_second_tab_of_a_rung_expert_rings_and_accepting_stops_both():
    sb = board(expert("a1"))
    c, _ = call(sb)
    second_tab = sb.desk_online(expert("a1"), T0 + 1)
    assert of(second_tab, Ring) == [Ring("a1", c.ring_view())]
    assert sb.desks["a1"].sockets == 2
    effects = sb.accept(c.id, "a1", T0 + 2)
    assert StopRing("a1", c.id, "accepted_elsewhere") in effects  # the edge stops every socket of a1


def test_interpreters_are_called_by_language():
    sb = board(interpreter("i1", "ar", "fa"), interpreter("i2", "dgs"), expert("a1"))
    c, effects = call(sb, target="dgs", kind="language")
    assert [r.account for r in of(effects, Ring)] == ["i2"]


def test_busy_while_in_a_consultation_and_available_after():
    sb = board(expert("a1"))
    effects = sb.entered_room("a1", "r_9")
    assert effects == [DeskState("a1", "busy", "available", True)]
    c, _ = call(sb)
    assert c.state is CallState.NO_ONE
    sb.left_room("a1", "r_9", T0 + 10)
    assert sb.desks["a1"].status is Availability.AVAILABLE


def test_a_room_ending_cancels_its_calls_and_frees_its_experts():
    sb = board(expert("a1"), expert("a2"))
    c, _ = call(sb)
    sb.accept(c.id, "a1", T0 + 1)
    c2, _ = call(sb, target="auslaenderbehoerde", room="r_1")  # a second call: rings a2 only
    effects = sb.room_ended("r_1", T0 + 5)
    assert StopRing("a2", c2.id, "cancelled") in effects
    assert sb.desks["a1"].status is Availability.AVAILABLE


def test_the_same_department_cannot_be_called_twice_at_once():
    sb = board(expert("a1"))
    call(sb)
    with pytest.raises(CallError) as twice:
        call(sb)
    assert twice.value.code == "call_in_progress"


def test_going_away_stops_ringing_on_that_desk():
    sb = board(expert("a1"), expert("a2"))
    c, _ = call(sb)
    effects = sb.set_availability("a1", Availability.AWAY, T0 + 1)
    assert StopRing("a1", c.id, "unavailable") in effects
    assert "a1" not in c.rung


# --- an accepted call follows its expert; going back from the desk ------------------------


def accepted(sb: Switchboard, account: str = "a1"):
    c, _ = call(sb)
    sb.accept(c.id, account, T0 + 1)
    sb.entered_room(account, "r_1")
    return c


def test_the_caller_sees_the_expert_come_in_and_leave():
    sb = board(expert("a1"))
    c, _ = call(sb)
    effects = sb.accept(c.id, "a1", T0 + 1)
    assert of(effects, Status)[-1].call["presence"] == "joining"
    effects = sb.entered_room("a1", "r_1")
    assert [s.call["presence"] for s in of(effects, Status)] == ["in_room"]
    effects = sb.left_room("a1", "r_1", T0 + 50, "left")
    assert [s.call["presence"] for s in of(effects, Status)] == ["left"]
    assert of(effects, Returns) == [Returns("a1", [c.return_view()])]
    assert sb.desks["a1"].status is Availability.AVAILABLE


def test_an_expert_who_left_goes_back_with_a_fresh_token():
    sb = board(expert("a1"))
    c = accepted(sb)
    sb.left_room("a1", "r_1", T0 + 50, "left")
    assert sb.returns_for("a1") == [c.return_view()]
    effects = sb.rejoin(c.id, "a1", T0 + 60)
    patch = of(effects, Patch)
    assert [(p.account, p.room_id, p.rejoin) for p in patch] == [("a1", "r_1", True)]
    assert [r.event for r in of(effects, Record)] == ["rejoined"]
    assert of(effects, Status)[-1].call["presence"] == "joining"
    assert of(effects, Returns) == [Returns("a1", [])]  # the desk stops offering it
    assert sb.desks["a1"].status is Availability.BUSY
    sb.entered_room("a1", "r_1")
    with pytest.raises(CallError) as inside:
        sb.rejoin(c.id, "a1", T0 + 70)
    assert inside.value.code == "already_in_room"


def test_a_lost_connection_may_go_back_too():
    sb = board(expert("a1"))
    c = accepted(sb)
    sb.left_room("a1", "r_1", T0 + 50, "timeout")
    assert c.presence is Presence.LEFT
    assert of(sb.rejoin(c.id, "a1", T0 + 60), Patch)


def test_released_or_ended_calls_cannot_be_rejoined():
    sb = board(expert("a1"), expert("a2"))
    c = accepted(sb)
    effects = sb.left_room("a1", "r_1", T0 + 50, "removed")  # the counsellor released her
    assert of(effects, Status)[-1].call["presence"] == "released"
    with pytest.raises(CallError) as released:
        sb.rejoin(c.id, "a1", T0 + 60)
    assert released.value.code == "not_returnable"

    c2, _ = call(sb, room="r_2")  # a second expert in a second room
    sb.accept(c2.id, "a2", T0 + 61)
    sb.entered_room("a2", "r_2")
    sb.left_room("a2", "r_2", T0 + 62, "left")
    effects = sb.room_ended("r_2", T0 + 63)
    assert Returns("a2", []) in effects
    with pytest.raises(CallError) as ended:
        sb.rejoin(c2.id, "a2", T0 + 64)
    assert ended.value.code == "not_returnable"


def test_only_the_expert_who_accepted_may_go_back():
    sb = board(expert("a1"), expert("a2"))
    c = accepted(sb)
    sb.left_room("a1", "r_1", T0 + 50, "left")
    with pytest.raises(CallError) as other:
        sb.rejoin(c.id, "a2", T0 + 60)
    assert other.value.code == "not_returnable"
    with pytest.raises(CallError) as unknown:
        sb.rejoin("c_nonexistent", "a1", T0 + 60)
    assert unknown.value.code == "not_returnable"


def test_an_open_call_is_kept_while_it_stands_and_forgotten_after_release():
    sb = board(expert("a1"))
    c = accepted(sb)
    sb.left_room("a1", "r_1", T0 + 50, "left")
    assert sb.next_deadline() is None  # nothing to time out: no busy timer loop
    sb.tick(T0 + 10 * KEEP_FINISHED)
    assert c.id in sb.calls  # still returnable long after the accept
    sb.room_ended("r_1", T0 + 10 * KEEP_FINISHED)
    assert sb.next_deadline() == T0 + 11 * KEEP_FINISHED
    sb.tick(T0 + 11 * KEEP_FINISHED)
    assert c.id not in sb.calls


def test_a_new_accept_in_the_same_room_supersedes_the_earlier_call():
    sb = board(expert("a1"))
    first = accepted(sb)
    sb.left_room("a1", "r_1", T0 + 50, "left")
    second, _ = call(sb)
    effects = sb.accept(second.id, "a1", T0 + 60)
    assert first.presence is Presence.RELEASED
    assert {s.call["id"]: s.call["presence"] for s in of(effects, Status)} == {first.id: "released",
                                                                               second.id: "joining"}
    assert sb.returns_for("a1") == []
