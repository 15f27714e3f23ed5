"""The live state and rules of one consultation room, free of I/O.

Every method takes the current time as ``now`` (UNIX seconds, ``time.time()``:
``ends_at`` and the ISO timestamps in messages are wall-clock) and returns an
``Outcome``: what to send, close, revoke and audit. The WebSocket edge executes
it; this module never touches a socket, a clock, a store or asyncio, so every
rule is tested by calling methods and reading the effects.

Refusals are raised, always, as ``RoomError(code, message, close)``: the edge
answers ``error(code, message, ref)`` and, when ``close`` is set, closes the
caller's socket with it. A method that raises changed nothing.

Executing an ``Outcome`` (the edge's contract):

1. run ``effects`` in list order (a ``Send`` before the ``Close`` of the same seat);
   ``Send``/``Close`` address the socket currently bound to ``seat``;
2. only then, for ``join``/``resume``, bind the caller's socket to
   ``outcome.seat.id`` (remember ``outcome.seat.conn`` with it) and send
   ``outcome.reply`` on it. Effects go first so that peers hear ``peer-joined``
   before the newcomer can send them an offer, and so that the ``Close`` of a
   socket replaced by ``resume`` reaches the old socket, not the new one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

from . import protocol as proto
from .errors import RoomServerError
from .protocol import STATE_FIELDS, CloseCode, ErrorCode, PeerStats
from .quality import QualityTally
from .roles import WAITING_ROLES, Action, Role, may
from .seat import Connection, Seat, Status, iso

END_REASONS = frozenset({"moderator", "operator", "api", "scheduled_end", "empty"})


SECRET_PREFIX = "rs_"


def new_secret(room_id: str) -> str:
    """A resume secret: the room id (for routing: any node can tell whose room it is) and 192 random bits."""
    return f"{SECRET_PREFIX}{room_id}.{secrets.token_urlsafe(24)}"


def secret_hash(secret: str) -> str:
    """What the room keeps of a secret: a snapshot of the room (Redis, the store) holds no usable secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def room_of_secret(secret: object) -> str | None:
    """The room a resume secret names, or None when it is not one of ours."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    room_id, dot, rest = secret[len(SECRET_PREFIX):].partition(".")
    if not dot or not room_id or not rest or not room_id.replace("_", "").replace("-", "").isalnum():
        return None
    return room_id


class RoomError(RoomServerError):
    """A refused request. ``close`` is the close code that must follow the ``error``, or None."""

    def __init__(self, code: str, message: str, close: CloseCode | None = None, status: int = 409) -> None:
        super().__init__(code, message, status)
        self.close = close


# --- effects --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (a protocol dict) to the seat's socket. Sends of one broadcast share the dict."""

    seat: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close the seat's socket number ``conn`` with ``code``; skip if that socket is gone or replaced."""

    seat: str
    conn: int
    code: CloseCode
    reason: str  # short text for the close frame (<= 123 bytes)


@dataclass(frozen=True, slots=True)
class Revoke:
    """Mark the identity's tokens for this room revoked in the store (these ``jtis`` at least)."""

    identity: str
    jtis: frozenset[str]
    reason: str  # "denied", "removed", "ended"


@dataclass(frozen=True, slots=True)
class Ended:
    """The room has ended: persist it (and refuse every token of it from now on)."""

    reason: str
    quality: Mapping[str, int] = field(default_factory=dict, compare=False)  # QualityTally.summary(): counts


@dataclass(frozen=True, slots=True)
class Audit:
    """An audit event: metadata only (who, role, when, what), never names or content.

    ``event``: seat.join, seat.wait, seat.admit, seat.deny, seat.remove, seat.leave,
    seat.disconnect, seat.resume, seat.timeout, room.end. ``actor`` is the acting
    seat; when no seat acted, ``actor_role`` says who did: "operator" (operator or
    API: ``remove``/``end`` with actor None), "api", or "system" (scheduled end,
    empty room).
    """

    event: str
    at: float
    seat: str | None = None
    role: str | None = None
    identity: str | None = None
    actor: str | None = None
    actor_role: str | None = None
    actor_identity: str | None = None  # the acting seat's identity: seats may be gone when this is executed
    detail: Mapping[str, Any] = field(default_factory=dict)


Effect = Union[Send, Close, Revoke, Ended, Audit]


@dataclass(slots=True)
class Outcome:
    """What a room operation did: the caller's seat, replies to the caller, effects for others."""

    seat: Seat | None = None
    reply: list[dict[str, Any]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    def sends(self, seat_id: str) -> list[dict[str, Any]]:
        """Messages addressed to ``seat_id`` among the effects (handy in tests and logs)."""
        return [e.message for e in self.effects if isinstance(e, Send) and e.seat == seat_id]


IceServersFor = Callable[[Seat], list[dict[str, Any]]]


class Room:
    """One consultation room: seats, waiting room, moderation, resume, end.

    Capacity: ``max_participants`` counts admitted seats, online or reconnecting.
    Waiting seats do not count (they are not in the call) but the waiting room
    holds at most ``max_waiting`` (default: ``max_participants``) and admitting
    past capacity is refused with ``room_full``.
    """

    def __init__(self, room_id: str, title: str, *, waiting_room: bool, max_participants: int,
                 ends_at: float | None, empty_timeout: float, resume_grace: float,
                 ice_servers_for: IceServersFor | None = None, max_waiting: int | None = None) -> None:
        self.id = room_id
        self.title = title
        self.waiting_room = waiting_room
        self.max_participants = max_participants
        self.max_waiting = max_participants if max_waiting is None else max_waiting
        self.ends_at = ends_at
        self.empty_timeout = empty_timeout
        self.resume_grace = resume_grace
        self._ice_servers_for = ice_servers_for or (lambda seat: [])
        self.seats: dict[str, Seat] = {}
        self._by_identity: dict[str, Seat] = {}
        self._by_secret: dict[str, Seat] = {}
        self._jtis: dict[str, set[str]] = {}  # identity -> every jti it joined with
        self._revoked_jtis: set[str] = set()
        self.used_at: float | None = None  # first admission: the empty timer runs from then on
        self.empty_since: float | None = None
        self.ended_at: float | None = None
        self.end_reason: str | None = None
        self.quality = QualityTally()  # connection quality counts, stored with the consultation at its end

    # --- queries ----------------------------------------------------------------

    def jti_map(self) -> Mapping[str, set[str]]:
        """identity -> every jti it joined with (for the snapshot)."""
        return self._jtis

    def revoked_jtis(self) -> set[str]:
        return self._revoked_jtis

    def restore(self, seats: list[Seat], jtis: dict[str, set[str]], revoked: set[str]) -> None:
        """Put seats back from a snapshot (``roomstate.load``); nobody is told anything."""
        self.seats = {s.id: s for s in seats}
        self._by_identity = {s.identity: s for s in seats}
        self._by_secret = {s.secret_hash: s for s in seats}
        self._jtis = jtis
        self._revoked_jtis = revoked

    def online_seats(self) -> list[Seat]:
        """Seats with a live socket somewhere (a node that takes the room over checks where)."""
        return [s for s in self.seats.values() if s.online]

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def occupancy(self) -> int:
        """Seats counted against capacity: admitted, online or reconnecting."""
        return sum(1 for s in self.seats.values() if s.admitted)

    def seat(self, seat_id: str) -> Seat | None:
        return self.seats.get(seat_id)

    def seat_of(self, identity: str) -> Seat | None:
        return self._by_identity.get(identity)

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do (None: nothing scheduled)."""
        if self.ended:
            return None
        times = [s.disconnected_at + self.resume_grace for s in self.seats.values()
                 if s.disconnected_at is not None]
        if self.ends_at is not None:
            times.append(self.ends_at)
        if self.empty_since is not None:
            times.append(self.empty_since + self.empty_timeout)
        return min(times, default=None)

    def snapshot(self) -> dict[str, Any]:
        """Metadata for the operator dashboard."""
        return {"id": self.id, "title": self.title, "waiting_room": self.waiting_room,
                "ends_at": iso(self.ends_at), "max_participants": self.max_participants,
                "ended_at": iso(self.ended_at), "end_reason": self.end_reason,
                "seats": [s.snapshot() for s in self.seats.values()]}

    # --- joining ------------------------------------------------------------------

    def join(self, *, identity: str, role: Role, name: str, jti: str, now: float) -> Outcome:
        """Seat a participant whose token the edge has verified (and whose single-use jti it spent).

        ``name`` is the final display name (the edge picks claim or typed name and
        cleans it with ``protocol.clean_name``).
        """
        def fatal(code: str) -> CloseCode | None:
            return proto.fatal_close(code, "join", joined=False)

        if self.ended:
            raise RoomError(ErrorCode.ROOM_ENDED, "The consultation has ended.", fatal(ErrorCode.ROOM_ENDED), 410)
        if jti in self._revoked_jtis:
            raise RoomError("token_revoked", "The link has been withdrawn.", fatal("token_revoked"), 401)
        if identity in self._by_identity:
            raise RoomError(ErrorCode.IDENTITY_IN_USE, "You are already in this consultation; resume instead.",
                            fatal(ErrorCode.IDENTITY_IN_USE))
        waits = self.waiting_room and role in WAITING_ROLES
        if waits and sum(1 for s in self.seats.values() if not s.admitted) >= self.max_waiting:
            raise RoomError(ErrorCode.ROOM_FULL, "The waiting room is full.", fatal(ErrorCode.ROOM_FULL))
        if not waits and self.occupancy >= self.max_participants:
            raise RoomError(ErrorCode.ROOM_FULL, "The consultation is full.", fatal(ErrorCode.ROOM_FULL))

        secret = new_secret(self.id)
        seat = Seat(id=self._new_seat_id(), identity=identity, role=role, name=name,
                    secret_hash=secret_hash(secret),
                    status=Status.WAITING if waits else Status.ADMITTED, joined_at=now)
        seat.jtis.add(jti)
        self._jtis.setdefault(identity, set()).add(jti)
        self.seats[seat.id] = seat
        self._by_identity[identity] = seat
        self._by_secret[seat.secret_hash] = seat
        out = Outcome(seat=seat)
        if waits:
            self._lobby(out)
            self._audit(out, "seat.wait", seat, now)
        else:
            self._on_admitted(seat, now)
            self._broadcast(out, proto.peer_joined(seat.public()), exclude=seat)
            self._audit(out, "seat.join", seat, now)
        out.reply = self._greeting(seat, resumed=False, secret=secret)
        return out

    def revert_join(self, seat_id: str) -> None:
        """Take back a ``join`` whose outcome was never executed (the store refused to spend the token).

        Nobody has been told of the seat, so it goes without a trace; the room's
        empty-timer state is not restored (a revert is rare and the timer harmless).
        """
        seat = self.seats.pop(seat_id, None)
        if seat is None:
            return
        self._by_identity.pop(seat.identity, None)
        self._by_secret.pop(seat.secret_hash, None)
        jtis = self._jtis.get(seat.identity)
        if jtis is not None:
            jtis.difference_update(seat.jtis)
            if not jtis:
                del self._jtis[seat.identity]

    def resume(self, secret: str, now: float) -> Outcome:
        """Give a seat back to the socket that proves it with the seat's resume secret.

        If the seat still counts as online (the old socket is not known dead yet),
        the old socket is closed 4409 and the new one takes over the same seat id.
        Every resume rotates the secret (the new one is in ``welcome``/``waiting``), so
        a leaked secret works once at most. The one before it is still taken while the
        seat is offline: the ``welcome`` carrying its successor may have been lost.
        """
        if self.ended:
            raise RoomError(ErrorCode.ROOM_ENDED, "The consultation has ended.",
                            proto.fatal_close(ErrorCode.ROOM_ENDED, "resume", joined=False), 410)
        hashed = secret_hash(secret)
        seat = self._by_secret.get(hashed)
        if seat is None:
            seat = self._by_previous(hashed)
        if seat is None:
            raise RoomError(ErrorCode.RESUME_UNKNOWN, "This session cannot be resumed; join again.",
                            proto.fatal_close(ErrorCode.RESUME_UNKNOWN, "resume", joined=False), 401)
        fresh = new_secret(self.id)
        del self._by_secret[seat.secret_hash]
        seat.previous_hash = seat.secret_hash if hashed == seat.secret_hash else seat.previous_hash
        seat.secret_hash = secret_hash(fresh)
        self._by_secret[seat.secret_hash] = seat
        out = Outcome(seat=seat)
        was_online = seat.online
        if was_online:
            out.effects.append(Close(seat.id, seat.conn, CloseCode.REPLACED, "resumed on another connection"))
        seat.conn += 1
        seat.connection = Connection.ONLINE
        seat.disconnected_at = None
        if seat.admitted:
            self._broadcast(out, proto.peer_resumed(seat.id), exclude=seat)
        elif not was_online:
            self._lobby(out)  # a reconnecting waiting seat was hidden from the lobby
        self._audit(out, "seat.resume", seat, now, replaced=was_online)
        out.reply = self._greeting(seat, resumed=True, secret=fresh)
        return out

    def disconnected(self, seat_id: str, now: float, conn: int | None = None) -> Outcome:
        """The seat's socket dropped without ``leave``: keep the seat for ``resume_grace``.

        ``conn`` is the connection number the dropped socket had; a late report
        from a socket that a ``resume`` already replaced is ignored.
        """
        seat = self.seats.get(seat_id)
        if seat is None or not seat.online or (conn is not None and conn != seat.conn):
            return Outcome(seat=seat)
        seat.connection = Connection.RECONNECTING
        seat.disconnected_at = now
        out = Outcome(seat=seat)
        if seat.admitted:
            self._broadcast(out, proto.peer_reconnecting(seat.id), exclude=seat)
        else:
            self._lobby(out)
        self._audit(out, "seat.disconnect", seat, now)
        return out

    def lost(self, seat_ids: list[str], now: float) -> Outcome:
        """Sockets gone all at once (their node was lost, or the server restarted): each seat is reconnecting.

        Like ``disconnected`` for each, except that none of the lost seats is told of the
        others (their sockets are gone too); the seats still online hear of every one.
        """
        gone = [s for s in (self.seats.get(i) for i in seat_ids) if s is not None and s.online]
        for seat in gone:
            seat.connection = Connection.RECONNECTING
            seat.disconnected_at = now
        out = Outcome()
        for seat in gone:
            if seat.admitted:
                self._broadcast(out, proto.peer_reconnecting(seat.id), exclude=seat)
            self._audit(out, "seat.disconnect", seat, now)
        if any(not s.admitted for s in gone):
            self._lobby(out)
        return out

    def leave(self, seat_id: str, now: float) -> Outcome:
        """The participant left on purpose: free the seat (the token may join again), close 1000.

        Idempotent: leaving a seat that is already gone does nothing.
        """
        seat = self.seats.get(seat_id)
        out = Outcome(seat=seat)
        if seat is None:
            return out
        self._drop(out, seat, "left", now)
        out.effects.append(Close(seat.id, seat.conn, CloseCode.NORMAL, "left"))
        self._audit(out, "seat.leave", seat, now)
        return out

    # --- in the call -----------------------------------------------------------------

    def route_signal(self, sender: str, to: str) -> str | None:
        """Authorise a ``signal``: the seat id to relay it to, or None to drop it.

        The hot path of the relay, so it builds no Outcome: the edge sends the
        frame (``relay.relayed_frame``) to the returned seat's socket. A signal to a
        peer that is reconnecting is dropped without error (no queue: the peer
        restarts ICE when it resumes, so old candidates are useless).
        """
        if self.ended_at is not None:  # the edge is closing every socket: nothing more to relay
            raise RoomError(ErrorCode.ROOM_ENDED, "The consultation has ended.", status=410)
        src = self.seats.get(sender)
        if src is None:
            raise RoomError(ErrorCode.NOT_IN_ROOM, "You are not in this consultation.")
        if src.status is not Status.ADMITTED:
            raise RoomError(ErrorCode.FORBIDDEN, "You cannot signal from the waiting room.", status=403)
        dst = self.seats.get(to)
        if dst is None or dst.status is not Status.ADMITTED:
            raise RoomError(ErrorCode.NOT_IN_ROOM, f"Peer {to} is not in this room.")
        if dst is src:
            raise RoomError(ErrorCode.NOT_IN_ROOM, "You cannot signal yourself.")
        return to if dst.connection is Connection.ONLINE else None

    def set_state(self, seat_id: str, fields: Mapping[str, bool], now: float) -> Outcome:
        """Update the seat's media state; broadcast ``peer-state`` if it changed and the seat is in the call.

        A waiting seat may set its state (it is shown on admission), silently.
        """
        seat = self._require(seat_id)
        changed = False
        for key in STATE_FIELDS:
            value = fields.get(key)
            if value is not None and seat.state[key] != value:
                seat.state[key] = bool(value)
                changed = True
        out = Outcome(seat=seat)
        if changed and seat.admitted:
            self._broadcast(out, proto.peer_state(seat.id, dict(seat.state)), exclude=seat)
        return out

    def report_stats(self, seat_id: str, peers: Mapping[str, PeerStats], now: float) -> Outcome:
        """Keep the seat's latest connection figures for monitoring; never relayed.

        Entries for seats that are not admitted peers (left meanwhile, or self) are dropped.
        """
        seat = self._require(seat_id)
        seat.stats = {p: s for p, s in peers.items()
                      if p != seat_id and (peer := self.seats.get(p)) is not None and peer.admitted}
        seat.stats_at = now
        self.quality.add(seat.id, seat.stats)
        return Outcome(seat=seat)

    # --- moderation ---------------------------------------------------------------------

    def admit(self, actor: str, target: str, now: float) -> Outcome:
        """Let a waiting participant into the call (moderators only)."""
        mod = self._moderator(actor, Action.ADMIT)
        seat = self._waiting(target, online=True)
        if self.occupancy >= self.max_participants:
            raise RoomError(ErrorCode.ROOM_FULL, "The consultation is full.")
        seat.status = Status.ADMITTED
        self._on_admitted(seat, now)
        out = Outcome(seat=mod)
        self._broadcast(out, proto.peer_joined(seat.public()), exclude=seat)
        out.effects.extend(Send(seat.id, m) for m in self._greeting(seat, resumed=False, secret=self._rotate(seat)))
        self._lobby(out)
        self._audit(out, "seat.admit", seat, now, actor=mod)
        return out

    def deny(self, actor: str, target: str, now: float) -> Outcome:
        """Turn a waiting participant away: ``denied``, close 4403, tokens revoked."""
        mod = self._moderator(actor, Action.DENY)
        seat = self._waiting(target, online=False)
        out = Outcome(seat=mod)
        self._drop(out, seat, "denied", now)
        self._expel(out, seat, proto.denied(), CloseCode.DENIED, "denied", "denied")
        self._audit(out, "seat.deny", seat, now, actor=mod)
        return out

    def remove(self, actor: str | None, target: str, now: float) -> Outcome:
        """Remove a participant (waiting or in the call): ``removed``, close 4410, tokens and secret revoked.

        ``actor`` None is the operator or the API.
        """
        mod = self._moderator(actor, Action.REMOVE) if actor is not None else None
        seat = self.seats.get(target)
        if seat is None:
            raise RoomError(ErrorCode.NOT_IN_ROOM, f"Peer {target} is not in this room.")
        if seat is mod:
            raise RoomError(ErrorCode.FORBIDDEN, "You cannot remove yourself; leave instead.", status=403)
        out = Outcome(seat=mod)
        self._drop(out, seat, "removed", now)
        self._expel(out, seat, proto.removed(), CloseCode.REMOVED, "removed", "removed")
        self._audit(out, "seat.remove", seat, now, actor=mod, by=None if mod else "operator")
        return out

    def withdraw(self, jti: str, now: float) -> Outcome:
        """An invite was withdrawn (``DELETE …/invites/{jti}``): the seat that joined with it is removed
        like by an operator (``removed``, close 4410, tokens and resume secret revoked); no seat, no effect
        but that the jti can no longer join here."""
        self._revoked_jtis.add(jti)
        seat = next((s for s in self.seats.values() if jti in s.jtis), None)
        out = Outcome(seat=None)
        if seat is None:
            return out
        self._drop(out, seat, "removed", now)
        self._expel(out, seat, proto.removed(), CloseCode.REMOVED, "removed", "removed")
        self._audit(out, "seat.remove", seat, now, by="api", reason="invite_withdrawn")
        return out

    def end(self, actor: str | None, reason: str, now: float) -> Outcome:
        """End the room: everyone gets ``ended`` and close 4411; every token and secret stops working.

        ``actor`` None is the operator, the API or the room itself (``reason``
        operator/api/scheduled_end/empty); a seat id must be a moderator (reason moderator).
        """
        if reason not in END_REASONS:
            raise ValueError(f"unknown end reason {reason!r}")
        mod = self._moderator(actor, Action.END) if actor is not None else None
        if self.ended:
            raise RoomError(ErrorCode.ROOM_ENDED, "The consultation has already ended.", status=410)
        out = Outcome(seat=mod)
        message = proto.ended(reason)
        for seat in self.seats.values():
            if seat.online:
                out.effects.append(Send(seat.id, message))
                out.effects.append(Close(seat.id, seat.conn, CloseCode.ROOM_ENDED, "ended"))
        for identity, jtis in self._jtis.items():
            out.effects.append(Revoke(identity, frozenset(jtis), "ended"))
            self._revoked_jtis.update(jtis)
        out.effects.append(Ended(reason, self.quality.summary()))
        by = None if mod else {"operator": "operator", "api": "api"}.get(reason, "system")
        self._audit(out, "room.end", None, now, actor=mod, by=by, reason=reason, seats=len(self.seats))
        self.seats.clear()
        self._by_identity.clear()
        self._by_secret.clear()
        self.ended_at = now
        self.end_reason = reason
        self.empty_since = None
        return out

    # --- time ---------------------------------------------------------------------------

    def tick(self, now: float) -> Outcome:
        """Run what is due: scheduled end, expired resume grace, empty-room timeout."""
        out = Outcome()
        if self.ended:
            return out
        if self.ends_at is not None and now >= self.ends_at:
            return self.end(None, "scheduled_end", now)
        for seat in list(self.seats.values()):
            if seat.disconnected_at is not None and now >= seat.disconnected_at + self.resume_grace:
                self._drop(out, seat, "timeout", seat.disconnected_at + self.resume_grace)
                self._audit(out, "seat.timeout", seat, now)
        if self.empty_since is not None and now >= self.empty_since + self.empty_timeout:
            ended = self.end(None, "empty", now)
            out.effects.extend(ended.effects)
        return out

    # --- internals --------------------------------------------------------------------

    def _new_seat_id(self) -> str:
        while True:
            seat_id = "p_" + secrets.token_urlsafe(6)
            if seat_id not in self.seats:
                return seat_id

    def _require(self, seat_id: str) -> Seat:
        seat = self.seats.get(seat_id)
        if seat is None:
            raise RoomError(ErrorCode.NOT_IN_ROOM, "You are not in this consultation.")
        return seat

    def _moderator(self, actor: str, action: Action) -> Seat:
        seat = self._require(actor)
        if not seat.admitted or not may(seat.role, action):
            raise RoomError(ErrorCode.FORBIDDEN, f"Your role may not {action.value}.", status=403)
        return seat

    def _waiting(self, target: str, *, online: bool) -> Seat:
        seat = self.seats.get(target)
        if seat is None or seat.admitted or (online and not seat.online):
            raise RoomError(ErrorCode.NOT_WAITING, f"Peer {target} is not in the waiting room.")
        return seat

    def _on_admitted(self, seat: Seat, now: float) -> None:
        seat.admitted_at = now
        if self.used_at is None:
            self.used_at = now
        self.empty_since = None

    def _drop(self, out: Outcome, seat: Seat, reason: str, now: float) -> None:
        """Take the seat out of the room and tell whoever needs to know (not the seat itself)."""
        del self.seats[seat.id]
        del self._by_identity[seat.identity]
        del self._by_secret[seat.secret_hash]
        if seat.admitted:
            self._broadcast(out, proto.peer_left(seat.id, reason), exclude=seat)
            if self.used_at is not None and self.occupancy == 0:
                self.empty_since = now
        elif seat.online:
            self._lobby(out)

    def _expel(self, out: Outcome, seat: Seat, message: dict[str, Any], code: CloseCode,
               close_reason: str, revoke_reason: str) -> None:
        """Notify, close and revoke a seat that was dropped against its will."""
        if seat.online:
            out.effects.append(Send(seat.id, message))
            out.effects.append(Close(seat.id, seat.conn, code, close_reason))
        jtis = self._jtis.get(seat.identity, set())
        self._revoked_jtis.update(jtis)
        out.effects.append(Revoke(seat.identity, frozenset(jtis), revoke_reason))

    def _broadcast(self, out: Outcome, message: dict[str, Any], *, exclude: Seat | None) -> None:
        """Send to every admitted, online seat but ``exclude``; waiting seats see nothing of the call."""
        for seat in self.seats.values():
            if seat is not exclude and seat.status is Status.ADMITTED and seat.connection is Connection.ONLINE:
                out.effects.append(Send(seat.id, message))

    def _lobby(self, out: Outcome) -> None:
        """Send the current waiting room to every moderator in the call."""
        message = self._lobby_message()
        for seat in self.seats.values():
            if seat.admitted and seat.online and may(seat.role, Action.ADMIT):
                out.effects.append(Send(seat.id, message))

    def _lobby_message(self) -> dict[str, Any]:
        # Reconnecting waiting seats are hidden: they cannot be admitted until they are back.
        return proto.lobby([s.lobby_entry() for s in self.seats.values() if not s.admitted and s.online])

    def _by_previous(self, hashed: str) -> Seat | None:
        """The offline seat whose secret before the current one is ``hashed``."""
        for seat in self.seats.values():
            if seat.previous_hash == hashed and not seat.online:
                return seat
        return None

    def _rotate(self, seat: Seat) -> str:
        """A new resume secret for the seat (admission sends it with ``welcome``).

        The one from ``waiting`` stays good as the previous secret (taken while the seat is
        offline), in case the ``welcome`` is lost on the way.
        """
        fresh = new_secret(self.id)
        del self._by_secret[seat.secret_hash]
        seat.secret_hash, seat.previous_hash = secret_hash(fresh), seat.secret_hash
        self._by_secret[seat.secret_hash] = seat
        return fresh

    def _greeting(self, seat: Seat, *, resumed: bool, secret: str) -> list[dict[str, Any]]:
        """``welcome`` (+ ``lobby`` for moderators) for a seat in the call, ``waiting`` otherwise."""
        if not seat.admitted:
            return [proto.waiting(self_=seat.waiting_view(), room={"id": self.id, "title": self.title},
                                  resume_secret=secret)]
        welcome = proto.welcome(
            self_=seat.self_view(),
            room={"id": self.id, "title": self.title, "ends_at": iso(self.ends_at),
                  "waiting_room": self.waiting_room},
            peers=[s.public() for s in self.seats.values() if s.admitted and s is not seat],
            ice_servers=self._ice_servers_for(seat),
            resume_secret=secret,
            resumed=resumed,
        )
        return [welcome, self._lobby_message()] if may(seat.role, Action.ADMIT) else [welcome]

    def _audit(self, out: Outcome, event: str, seat: Seat | None, now: float, *,
               actor: Seat | None = None, by: str | None = None, **detail: Any) -> None:
        """Record an audit event; ``by`` names a non-seat actor (operator, api, system)."""
        out.effects.append(Audit(
            event=event, at=now,
            seat=seat.id if seat else None,
            role=seat.role.value if seat else None,
            identity=seat.identity if seat else None,
            actor=actor.id if actor else None,
            actor_role=actor.role.value if actor else by,
            actor_identity=actor.identity if actor else None,
            detail=detail,
        ))
