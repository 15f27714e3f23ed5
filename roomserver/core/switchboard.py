"""The expert call workflow, free of I/O: desks, ringing, first accept wins.

A counsellor calls a department (or an interpreter language). Every expert of
it whose desk is online and available rings at once; the first accept wins the
call, everyone else stops ringing and is told a colleague took it. Nobody in
time: the call times out. Nobody available: the call fails at once.

An accepted call follows its expert (``Presence``): joining, in the room, left,
released. An expert who left on their own (or lost the connection for good)
may go back from the desk while the call stands ("zurück in die Beratung"):
``rejoin`` hands out a fresh single-use token. Once the counsellor released
(removed) them or the room ended, the call is over and nobody goes back.

Like ``room.py``, every method takes ``now`` and returns effects for the edge
to execute (ring a desk, stop ringing, tell the counsellor, persist an event,
mint the patch-in token); refusals raise ``CallError``. Because methods run to
completion without awaiting, two accepts "at the same instant" are ordered,
and exactly one wins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Union

from .errors import RoomServerError

# A finished call is remembered this long, so a late accept hears "taken", not "unknown".
KEEP_FINISHED = 300.0


class Availability(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"


class CallState(StrEnum):
    RINGING = "ringing"
    ACCEPTED = "accepted"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    NO_ONE = "no_one"  # nobody was available: failed at once


class Presence(StrEnum):
    """Where the expert of an accepted call is."""

    JOINING = "joining"  # accepted (or rejoining): on the way in with a fresh token
    IN_ROOM = "in_room"
    LEFT = "left"  # left on their own or lost for good: may go back from the desk
    RELEASED = "released"  # released by the counsellor, or the room ended: the call is over


class CallError(RoomServerError):
    """A refused call action; ``code`` is in docs/protocol.md."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(code, message, status)


@dataclass
class Desk:
    """One staff member's presence: how many desk sockets, chosen availability, in a consultation."""

    account_id: str
    name: str
    role: str  # "expert" or "interpreter"
    department_id: str | None
    languages: frozenset[str]
    availability: Availability = Availability.AVAILABLE
    sockets: int = 0
    in_room: str | None = None  # the room this person is in, if any

    @property
    def status(self) -> Availability:
        """What others see: busy while in a consultation, else the chosen availability."""
        if self.in_room is not None and self.availability is Availability.AVAILABLE:
            return Availability.BUSY
        return self.availability

    def can_ring(self) -> bool:
        return self.sockets > 0 and self.status is Availability.AVAILABLE

    def serves(self, kind: str, target: str) -> bool:
        if kind == "department":
            return self.role == "expert" and self.department_id == target
        return self.role == "interpreter" and target in self.languages


@dataclass
class Call:
    id: str
    room_id: str
    room_title: str
    caller_seat: str  # the counsellor's seat in the room, told of every change
    caller_identity: str
    caller_name: str
    kind: str  # "department" or "language"
    target: str
    target_label: str
    requested_at: float
    expires_at: float
    state: CallState = CallState.RINGING
    rung: set[str] = field(default_factory=set)
    declined: set[str] = field(default_factory=set)
    accepted_by: str | None = None
    accepted_at: float | None = None
    ended_at: float | None = None
    presence: Presence | None = None  # only for an accepted call
    released_at: float | None = None

    @property
    def open(self) -> bool:
        """Accepted and not released: the expert is in the room, on the way, or may go back."""
        return self.state is CallState.ACCEPTED and self.presence is not Presence.RELEASED

    def public(self, desks: dict[str, Desk]) -> dict[str, Any]:
        """The call as the counsellor's room page sees it (names of staff, no identities)."""
        accepted = desks.get(self.accepted_by) if self.accepted_by else None
        return {"id": self.id, "kind": self.kind, "target": self.target, "target_label": self.target_label,
                "state": self.state.value, "ringing": len(self.rung - self.declined) if self.state is
                CallState.RINGING else 0, "declined": len(self.declined), "expires_at": self.expires_at,
                "accepted_by": accepted.name if accepted else None,
                "presence": self.presence.value if self.presence else None}

    def ring_view(self) -> dict[str, Any]:
        """The call as a ringing desk sees it."""
        return {"id": self.id, "room_title": self.room_title, "caller_name": self.caller_name,
                "kind": self.kind, "target": self.target, "target_label": self.target_label,
                "expires_at": self.expires_at}

    def return_view(self) -> dict[str, Any]:
        """The call as its expert's desk sees it after leaving: the consultation one may go back to."""
        return {"id": self.id, "room_title": self.room_title, "caller_name": self.caller_name,
                "kind": self.kind, "target": self.target, "target_label": self.target_label}


# --- effects ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ring:
    """Make every desk socket of ``account`` ring for the call."""

    account: str
    call: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StopRing:
    """Stop the call ringing on ``account``'s desks; ``reason``: taken, cancelled, timed_out, declined,
    accepted_elsewhere (this person accepted on another desk)."""

    account: str
    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Patch:
    """``account`` won the call (or goes back in): mint a single-use patch-in token for the asking desk."""

    account: str
    call_id: str
    room_id: str
    role: str
    name: str
    department_id: str | None
    rejoin: bool = False  # going back into a consultation one left, not a first accept


@dataclass(frozen=True, slots=True)
class Status:
    """Tell the caller's seat in the room how the call stands."""

    room_id: str
    seat: str
    call: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """Persist a call event: requested, rung, declined, accepted, timed_out, cancelled, no_one."""

    call_id: str
    event: str
    at: float
    account: str | None = None


@dataclass(frozen=True, slots=True)
class DeskState:
    """Tell every desk socket of ``account`` its current status."""

    account: str
    status: str
    availability: str
    in_room: bool


@dataclass(frozen=True, slots=True)
class Returns:
    """Tell every desk socket of ``account`` which consultations it may go back to now."""

    account: str
    calls: list[dict[str, Any]]


Effect = Union[Ring, StopRing, Patch, Status, Record, DeskState, Returns]


class Switchboard:
    """All desks and open calls of this server. Pure; the edges execute the effects."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.desks: dict[str, Desk] = {}
        self.calls: dict[str, Call] = {}

    # --- desks ------------------------------------------------------------------

    def desk_online(self, desk: Desk, now: float) -> list[Effect]:
        """A desk socket of this person opened; it rings for calls already ringing that it serves."""
        known = self.desks.get(desk.account_id)
        if known is None:
            known = self.desks[desk.account_id] = desk
        known.sockets += 1
        known.name, known.department_id, known.languages = desk.name, desk.department_id, desk.languages
        return self._ring_newcomer(known, now)

    def desk_offline(self, account: str) -> list[Effect]:
        desk = self.desks.get(account)
        if desk is not None and desk.sockets > 0:
            desk.sockets -= 1
        return []

    def set_availability(self, account: str, availability: Availability, now: float) -> list[Effect]:
        desk = self._desk(account)
        desk.availability = availability
        out: list[Effect] = [self._desk_state(desk)]
        if desk.can_ring():
            out += self._ring_newcomer(desk, now)
        else:
            for call in self._ringing_for(desk):
                call.rung.discard(desk.account_id)
                out.append(StopRing(desk.account_id, call.id, "unavailable"))
                out.append(Status(call.room_id, call.caller_seat, call.public(self.desks)))
        return out

    def entered_room(self, account: str, room_id: str) -> list[Effect]:
        """The person joined a consultation: busy until they leave it; their call there is in the room."""
        desk = self.desks.get(account)
        if desk is None:
            return []
        desk.in_room = room_id
        out: list[Effect] = [self._desk_state(desk)]
        out += self._follow(account, room_id, Presence.IN_ROOM, None)
        return out

    def left_room(self, account: str, room_id: str, now: float, reason: str = "left") -> list[Effect]:
        """The person's seat is gone: ``reason`` "left" or "timeout" (may go back), "removed" (released)."""
        desk = self.desks.get(account)
        if desk is None:
            return []
        out = self._follow(account, room_id, Presence.RELEASED if reason == "removed" else Presence.LEFT, now)
        if desk.in_room == room_id:
            desk.in_room = None
            out.append(self._desk_state(desk))
            out += self._ring_newcomer(desk, now)
        return out

    # --- calls ------------------------------------------------------------------

    def call(self, *, room_id: str, room_title: str, caller_seat: str, caller_identity: str, caller_name: str,
             kind: str, target: str, target_label: str, now: float) -> tuple[Call, list[Effect]]:
        """Ring every available desk serving ``target``; with nobody available the call fails at once."""
        if kind not in ("department", "language"):
            raise CallError("bad_target", "Call a department or an interpreter language.", 422)
        for open_call in self.calls.values():
            if (open_call.room_id == room_id and open_call.state is CallState.RINGING
                    and (open_call.kind, open_call.target) == (kind, target)):
                raise CallError("call_in_progress", "This department is already being called.")
        call = Call(id="c_" + secrets.token_urlsafe(9), room_id=room_id, room_title=room_title,
                    caller_seat=caller_seat, caller_identity=caller_identity, caller_name=caller_name, kind=kind,
                    target=target, target_label=target_label, requested_at=now, expires_at=now + self.timeout)
        out: list[Effect] = [Record(call.id, "requested", now, caller_identity)]
        desks = [d for d in self.desks.values() if d.serves(kind, target) and d.can_ring()]
        if not desks:
            call.state, call.ended_at = CallState.NO_ONE, now
            out.append(Record(call.id, "no_one", now))
            out.append(Status(room_id, caller_seat, call.public(self.desks)))
            return call, out
        self.calls[call.id] = call
        for desk in desks:
            out += self._ring(call, desk, now)
        out.append(Status(room_id, caller_seat, call.public(self.desks)))
        return call, out

    def accept(self, call_id: str, account: str, now: float) -> list[Effect]:
        """First accept wins; a later one is refused with ``call_taken``."""
        call = self._call(call_id)
        desk = self._desk(account)
        if call.state is CallState.ACCEPTED:
            if call.accepted_by == account:
                raise CallError("call_taken", "You have already accepted this call on another desk.")
            raise CallError("call_taken", "A colleague has already taken this call.")
        if call.state is not CallState.RINGING:
            raise CallError("call_over", "This call is no longer ringing.")
        if account not in call.rung or account in call.declined:
            raise CallError("not_rung", "This call is not ringing for you.", 403)
        call.state, call.accepted_by, call.accepted_at, call.ended_at = CallState.ACCEPTED, account, now, now
        call.presence = Presence.JOINING
        desk.in_room = call.room_id  # busy from now on: no second call rings while joining
        out: list[Effect] = []
        for earlier in self.calls.values():  # an earlier call of theirs to this room is superseded
            if earlier is not call and earlier.accepted_by == account and earlier.room_id == call.room_id \
                    and earlier.open:
                earlier.presence, earlier.released_at = Presence.RELEASED, now
                out.append(Status(earlier.room_id, earlier.caller_seat, earlier.public(self.desks)))
        out += [Record(call.id, "accepted", now, account),
                Patch(account, call.id, call.room_id, desk.role, desk.name, desk.department_id),
                StopRing(account, call.id, "accepted_elsewhere")]
        for other in sorted(call.rung - call.declined - {account}):
            out.append(StopRing(other, call.id, "taken"))
        out.append(Status(call.room_id, call.caller_seat, call.public(self.desks)))
        out.append(self._desk_state(desk))
        return out

    def decline(self, call_id: str, account: str, now: float) -> list[Effect]:
        call = self._call(call_id)
        if call.state is not CallState.RINGING or account not in call.rung:
            raise CallError("not_rung", "This call is not ringing for you.", 403)
        if account in call.declined:
            return []
        call.declined.add(account)
        out: list[Effect] = [Record(call.id, "declined", now, account), StopRing(account, call.id, "declined")]
        out.append(Status(call.room_id, call.caller_seat, call.public(self.desks)))
        if not call.rung - call.declined:  # everyone said no: no need to wait for the timeout
            out += self._finish(call, CallState.TIMED_OUT, now, "timed_out")
        return out

    def cancel(self, call_id: str, caller_seat: str, now: float) -> list[Effect]:
        call = self._call(call_id)
        if call.caller_seat != caller_seat:
            raise CallError("forbidden", "Only the caller can cancel this call.", 403)
        if call.state is not CallState.RINGING:
            raise CallError("call_over", "This call is no longer ringing.")
        return self._finish(call, CallState.CANCELLED, now, "cancelled")

    def rejoin(self, call_id: str, account: str, now: float) -> list[Effect]:
        """The expert of an open call goes back in ("zurück in die Beratung"): a fresh single-use token.

        Refused once the call is over (released, room ended) or while they are still in it.
        """
        call = self.calls.get(call_id)
        if call is None or call.accepted_by != account or not call.open:
            raise CallError("not_returnable", "This consultation cannot be rejoined from the desk any more.", 409)
        if call.presence is Presence.IN_ROOM:
            raise CallError("already_in_room", "You are still in this consultation.", 409)
        desk = self._desk(account)
        if desk.in_room is not None and desk.in_room != call.room_id:
            raise CallError("in_other_consultation", "Leave the other consultation first.", 409)
        call.presence = Presence.JOINING
        desk.in_room = call.room_id  # busy again: no call rings while going back
        return [Record(call.id, "rejoined", now, account),
                Patch(account, call.id, call.room_id, desk.role, desk.name, desk.department_id, rejoin=True),
                Status(call.room_id, call.caller_seat, call.public(self.desks)),
                self._desk_state(desk), Returns(account, self.returns_for(account))]

    def room_ended(self, room_id: str, now: float) -> list[Effect]:
        """The room ended: its ringing calls stop, its open calls are over, its people no longer busy."""
        out: list[Effect] = []
        for call in [c for c in self.calls.values() if c.room_id == room_id and c.state is CallState.RINGING]:
            out += self._finish(call, CallState.CANCELLED, now, "cancelled")
        experts = set()
        for call in self.calls.values():
            if call.room_id == room_id and call.open:
                call.presence, call.released_at = Presence.RELEASED, now
                experts.add(call.accepted_by)
        for desk in self.desks.values():
            if desk.in_room == room_id:
                desk.in_room = None
                out.append(self._desk_state(desk))
                experts.add(desk.account_id)
                if desk.can_ring():
                    out += self._ring_newcomer(desk, now)
        for account in sorted(a for a in experts if a is not None):
            out.append(Returns(account, self.returns_for(account)))
        return out

    def tick(self, now: float) -> list[Effect]:
        """Time out calls nobody accepted; forget finished calls after ``KEEP_FINISHED`` seconds."""
        out: list[Effect] = []
        for call in [c for c in self.calls.values() if c.state is CallState.RINGING and c.expires_at <= now]:
            out += self._finish(call, CallState.TIMED_OUT, now, "timed_out")
        for call in list(self.calls.values()):
            forget_at = _forget_at(call)
            if forget_at is not None and forget_at <= now:
                del self.calls[call.id]
        return out

    def next_deadline(self) -> float | None:
        times = [c.expires_at if c.state is CallState.RINGING else _forget_at(c) for c in self.calls.values()]
        return min((t for t in times if t is not None), default=None)

    def ringing_for(self, account: str) -> list[dict[str, Any]]:
        """Calls ringing for this person now (for a desk that just connected)."""
        desk = self.desks.get(account)
        return [c.ring_view() for c in self._ringing_for(desk)] if desk else []

    def returns_for(self, account: str) -> list[dict[str, Any]]:
        """Consultations this person left while their call stands: the desk offers to go back."""
        return [c.return_view() for c in self.calls.values()
                if c.accepted_by == account and c.open and c.presence is Presence.LEFT]

    # --- internals --------------------------------------------------------------

    def _ring(self, call: Call, desk: Desk, now: float) -> list[Effect]:
        call.rung.add(desk.account_id)
        return [Ring(desk.account_id, call.ring_view()), Record(call.id, "rung", now, desk.account_id)]

    def _ring_newcomer(self, desk: Desk, now: float) -> list[Effect]:
        """A desk became available while calls it serves ring: it rings too (unless it declined)."""
        out: list[Effect] = []
        if not desk.can_ring():
            return out
        for call in self.calls.values():
            if (call.state is CallState.RINGING and desk.serves(call.kind, call.target)
                    and desk.account_id not in call.declined):
                if desk.account_id in call.rung:
                    out.append(Ring(desk.account_id, call.ring_view()))  # another tab of someone already rung
                else:
                    out += self._ring(call, desk, now)
                    out.append(Status(call.room_id, call.caller_seat, call.public(self.desks)))
        return out

    def _finish(self, call: Call, state: CallState, now: float, reason: str) -> list[Effect]:
        call.state, call.ended_at = state, now
        out: list[Effect] = [Record(call.id, state.value, now)]
        for account in sorted(call.rung - call.declined):
            out.append(StopRing(account, call.id, reason))
        out.append(Status(call.room_id, call.caller_seat, call.public(self.desks)))
        return out

    def _follow(self, account: str, room_id: str, presence: Presence, now: float | None) -> list[Effect]:
        """Move the open calls ``account`` accepted in ``room_id`` to ``presence``; tell caller and desk."""
        out: list[Effect] = []
        for call in self.calls.values():
            if call.accepted_by != account or call.room_id != room_id or not call.open or call.presence is presence:
                continue
            call.presence = presence
            if presence is Presence.RELEASED:
                call.released_at = now
            out.append(Status(call.room_id, call.caller_seat, call.public(self.desks)))
        if out:
            out.append(Returns(account, self.returns_for(account)))
        return out

    def _ringing_for(self, desk: Desk) -> list[Call]:
        return [c for c in self.calls.values() if c.state is CallState.RINGING
                and desk.account_id in c.rung and desk.account_id not in c.declined]

    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise CallError("call_over", "This call is no longer ringing.")
        return call

    def _desk(self, account: str) -> Desk:
        desk = self.desks.get(account)
        if desk is None:
            raise CallError("no_desk", "Open your desk first.", 403)
        return desk

    def _desk_state(self, desk: Desk) -> DeskState:
        return DeskState(desk.account_id, desk.status.value, desk.availability.value, desk.in_room is not None)


def _forget_at(call: Call) -> float | None:
    """When a finished call may be forgotten; None while it rings or stands open (its expert may go back)."""
    if call.state is CallState.RINGING or call.open:
        return None
    if call.released_at is not None:
        return call.released_at + KEEP_FINISHED
    return (call.ended_at or 0) + KEEP_FINISHED
