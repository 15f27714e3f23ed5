"""The participants' WebSocket at ``/ws``: the edge between sockets and the room core.

Each socket's first message is ``join`` (token checked here, against the key
set, the ledger and the persisted room) or ``resume``. After that every frame
is parsed by ``protocol`` and handed to the ``Room``; the ``Outcome`` it
returns is executed here: sends, closes, revocations, the persisted end and
audit events. Rooms are live in the ``Hub``.

Nothing a client sends can raise out of here: protocol and room refusals are
answered with ``error`` (and a documented close where they are fatal), and an
unexpected failure closes only that socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Mapping

from aiohttp import WSMsgType, web

from . import protocol as proto
from .errors import RoomServerError
from .hub import Hub, LocalHub
from .protocol import CloseCode, ProtocolError
from .ratelimit import TokenBucket
from .relay import relay_target, relayed_frame, sender_prefix
from .room import Audit, Close, Ended, Outcome, Revoke, Room, RoomError, Send
from .roles import Action, Role, may
from .services import Services, services_of
from .store import RoomRow
from .store.database import transaction
from .tokens import check_admission
from .turn import ice_servers, mint_credentials

log = logging.getLogger("roomserver.signalling")

_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)  # the socket is done

_EVENTS_OF_AUDIT = {
    "seat.wait": ("participant.waiting",), "seat.join": ("participant.joined",),
    "seat.resume": ("participant.resumed",), "seat.disconnect": ("participant.reconnecting",),
    "seat.leave": ("participant.left",), "seat.timeout": ("participant.left",),
    "seat.admit": ("participant.admitted", "participant.joined"),
    "seat.deny": ("participant.denied", "participant.left"),
    "seat.remove": ("participant.removed", "participant.left"),
}
_LEFT_REASON = {"seat.leave": "left", "seat.timeout": "timeout", "seat.deny": "denied", "seat.remove": "removed"}  # message classes whose type is not their lower-cased name

class Conn:
    """One participant socket, and the seat it is bound to once joined."""

    __slots__ = ("ws", "transport", "number", "seat_id", "room", "peers", "prefix", "bucket", "credit", "heard",
                 "pinged")

    def __init__(self, ws: web.WebSocketResponse, transport: Any, bucket: TokenBucket) -> None:
        self.ws = ws
        self.transport = transport
        self.number: int | None = None
        self.seat_id: str | None = None
        # Set on join, for the relay: the live room, its seat-to-socket map, our frame prefix.
        self.room: Room | None = None
        self.peers: Mapping[str, Conn] = {}
        self.prefix = ""
        self.bucket = bucket
        self.credit = 0  # messages the bucket already granted (see TokenBucket.take_all)
        self.heard = time.monotonic()  # when the socket opened, then its last pong (see heartbeat())
        self.pinged: float | None = None  # when the heartbeat last pinged it

    @property
    def room_id(self) -> str | None:
        return self.room.id if self.room is not None else None


class Signalling:
    """The live side of every room on this server: hub, room timers, effect execution."""

    def __init__(self, services: Services, hub: Hub[Conn] | None = None) -> None:
        self.services = services
        self.hub: Hub[Conn] = hub if hub is not None else LocalHub()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._live: set[Conn] = set()  # every open participant socket, for the heartbeat
        # A tap on every frame received ("in") and sent ("out"); tests use it to show what the
        # server never saw (chat text). None in production: one attribute check per frame.
        self.tap: Callable[[str, str | bytes], None] | None = None
        self.relayed = 0
        self._max_bytes = services.settings.signalling.max_message_bytes
        self.desks: Any = None  # the expert desks (desk.py), when set up: calls and presence
        services.consultations.on_end = self._ended_elsewhere

    # -- rooms ------------------------------------------------------------------

    def _ice_servers_for(self, seat: Any) -> list[dict[str, Any]]:
        s = self.services.settings
        creds = None
        if s.ice.turn_urls and s.turn_secret:
            creds = mint_credentials(s.turn_secret, seat.id, s.ice.turn_credential_lifetime_seconds, time.time())
        return ice_servers(s.ice.stun_urls, s.ice.turn_urls, creds)

    def _open(self, row: RoomRow) -> Room:
        s = self.services.settings

        def factory() -> Room:
            ends_at = None
            if row.scheduled_end is not None:
                ends_at = float(row.scheduled_end + s.rooms.overrun_minutes * 60)
            return Room(row.id, row.title, waiting_room=row.waiting_room,
                        max_participants=row.max_participants, ends_at=ends_at,
                        empty_timeout=s.rooms.empty_timeout_seconds,
                        resume_grace=s.signalling.resume_grace_seconds,
                        ice_servers_for=self._ice_servers_for)

        return self.hub.open(row.id, factory)

    def _schedule(self, room: Room) -> None:
        """Arm one timer per room at its next deadline (grace expiry, empty, scheduled end)."""
        old = self._timers.pop(room.id, None)
        if old is not None:
            old.cancel()
        deadline = room.next_deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.time()) + 0.01
        self._timers[room.id] = loop.call_later(delay, self._tick, room.id)

    def _tick(self, room_id: str) -> None:
        self._timers.pop(room_id, None)
        room = self.hub.room(room_id)
        if room is not None:
            self._spawn(self.execute(room, room.tick(time.time())))

    def _ended_elsewhere(self, room_id: str, reason: str) -> None:
        """The API, CLI-via-API or an operator ended the room: disconnect everyone now."""
        room = self.hub.room(room_id)
        if room is None or room.ended:
            self.services.events.publish("room.ended", room_id, reason=reason)
            return
        try:
            outcome = room.end(None, reason if reason in ("operator", "api") else "api", time.time())
        except RoomError:
            return
        self._spawn(self.execute(room, outcome))

    async def operator_end(self, room_id: str) -> bool:
        """An operator ends a live room: everyone is disconnected, every token of it stops working.

        False if the room is not live on this server (or already ended).
        """
        room = self.hub.room(room_id)
        if room is None or room.ended:
            return False
        try:
            outcome = room.end(None, "operator", time.time())
        except RoomError:
            return False
        await self.execute(room, outcome)
        return True

    async def operator_remove(self, room_id: str, seat_id: str) -> bool:
        """An operator removes one participant (waiting or in the call); False if there is no such seat."""
        room = self.hub.room(room_id)
        if room is None or room.ended or room.seat(seat_id) is None:
            return False
        try:
            outcome = room.remove(None, seat_id, time.time())
        except RoomError:
            return False
        await self.execute(room, outcome)
        return True

    async def heartbeat(self) -> None:
        """Ping every open socket each interval; one that did not answer the previous ping is dead.

        A dead socket's transport is aborted, so its handler sees the drop and the
        seat becomes ``reconnecting`` — within one to two intervals of the loss.
        """
        interval = self.services.settings.signalling.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self._live):
                if conn.ws.closed:
                    continue
                if conn.pinged is not None and conn.heard < conn.pinged:
                    if conn.transport is not None:
                        conn.transport.abort()
                    continue
                conn.pinged = now
                self._spawn(self._ping(conn))

    async def _ping(self, conn: Conn) -> None:
        try:
            await conn.ws.ping()
        except (ConnectionError, RuntimeError):
            pass

    async def sweep(self, interval: float = 5.0) -> None:
        """End live rooms that another process (``roomserver end-room``) ended in the store."""
        while True:
            await asyncio.sleep(interval)
            for room in list(self.hub.rooms()):
                row = self.services.store.rooms.get(room.id)
                if row is not None and row.state == "ended" and not room.ended:
                    self._ended_elsewhere(room.id, row.ended_reason or "api")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- effects ----------------------------------------------------------------

    async def execute(self, room: Room, outcome: Outcome) -> None:
        """Carry out an outcome: persist its store effects in one commit, then deliver in order."""
        self.persist(room, outcome)
        await self.deliver(room, outcome)

    def persist(self, room: Room, outcome: Outcome) -> None:
        """Revocations, the end and audit events of an outcome, in one transaction."""
        store = self.services.store
        persisted_end = False
        with transaction(store.conn):
            for effect in outcome.effects:
                if isinstance(effect, Revoke):
                    now = int(time.time())
                    for jti in effect.jtis:
                        store.tokens.revoke(jti, now)
                    store.tokens.revoke_identity(room.id, effect.identity, now)
                elif isinstance(effect, Ended):
                    persisted_end = store.rooms.end(room.id, reason=effect.reason, now=int(time.time()))
                elif isinstance(effect, Audit):
                    self._presence(room, effect)
                    self._publish(room, effect)
                    if effect.event == "room.end" and not persisted_end:
                        continue  # ended through the API: audited there already
                    self._audit(room, effect)

    async def deliver(self, room: Room, outcome: Outcome) -> None:
        """Sends and closes in the outcome's order (a Send before the Close of the same seat)."""
        frames: dict[int, bytes] = {}
        for effect in outcome.effects:
            if isinstance(effect, Send):
                conn = self.hub.connection(room.id, effect.seat)
                if conn is not None:
                    key = id(effect.message)
                    frame = frames.get(key)
                    if frame is None:
                        frame = frames[key] = proto.dumpb(effect.message)
                    await self._send(conn, frame)
            elif isinstance(effect, Close):
                conn = self.hub.connection(room.id, effect.seat)
                if conn is not None and conn.number == effect.conn:
                    self.hub.unbind(room.id, effect.seat, conn)
                    self._close(conn, effect.code, effect.reason)
        if room.ended:
            timer = self._timers.pop(room.id, None)
            if timer is not None:
                timer.cancel()
            self.hub.close_room(room.id)
        else:
            self._schedule(room)

    def _publish(self, room: Room, effect: Audit) -> None:
        """Tell monitoring, metrics and webhooks (events.py) what the room core did."""
        publish = self.services.events.publish
        seat = {"seat": effect.seat, "role": effect.role}
        if effect.event == "room.end":
            publish("room.ended", room.id, reason=effect.detail.get("reason"))
            return
        kinds = _EVENTS_OF_AUDIT.get(effect.event, ())
        for kind in kinds:
            if kind == "participant.left":
                publish(kind, room.id, reason=_LEFT_REASON[effect.event], **seat)
            else:
                publish(kind, room.id, **seat)

    def _presence(self, room: Room, effect: Audit) -> None:
        """Experts and interpreters are busy on their desks while they sit in a consultation."""
        if self.desks is None:
            return
        if effect.event == "room.end":
            self.desks.room_ended(room.id)
        elif effect.role in ("expert", "interpreter") and effect.identity:
            if effect.event in ("seat.join", "seat.resume"):
                self.desks.entered_room(effect.identity, room.id)
            elif effect.event in ("seat.leave", "seat.timeout", "seat.remove"):
                self.desks.left_room(effect.identity, room.id)

    async def send_to_seat(self, room_id: str, seat_id: str, message: dict[str, Any]) -> None:
        conn = self.hub.connection(room_id, seat_id)
        if conn is not None:
            await self._send(conn, proto.dumpb(message))

    async def _call_message(self, room: Room, seat_id: str, msg: Any) -> None:
        """``call``, ``call-cancel``, ``callback`` from a moderator: handed to the desks."""
        seat = room.seat(seat_id)
        if seat is None or not may(seat.role, Action.CALL_EXPERT) or seat.status.value != "admitted":
            raise RoomError(proto.ErrorCode.FORBIDDEN, "Your role may not call experts.", status=403)
        if self.desks is None:
            raise RoomError("calls_unavailable", "Expert calls are not available on this server.")
        if isinstance(msg, proto.Call):
            await self.desks.call(room_id=room.id, room_title=room.title, seat=seat_id, identity=seat.identity,
                                  name=seat.name, kind=msg.kind, target=msg.target)
        elif isinstance(msg, proto.CallCancel):
            await self.desks.cancel(msg.call, seat_id)
        else:
            await self.desks.callback(room_id=room.id, seat=seat_id, identity=seat.identity, name=seat.name,
                                      call_id=msg.call)

    def _audit(self, room: Room, effect: Audit) -> None:
        """Who did it: the acting seat's identity, else the seat itself (join, leave), else who ended it."""
        if effect.actor_identity is not None:
            actor, actor_role = effect.actor_identity, effect.actor_role
        elif effect.actor_role is None and effect.identity is not None:
            actor, actor_role = effect.identity, effect.role
        else:
            actor, actor_role = effect.actor_role or "system", effect.actor_role or "system"
        detail = dict(effect.detail)
        if effect.seat:
            detail["seat"] = effect.seat
        if effect.role:
            detail["role"] = effect.role
        self.services.store.audit.append(
            at=int(effect.at), actor=actor, actor_role=actor_role, action=effect.event, room_id=room.id,
            subject=effect.identity, detail=detail or None)

    def _audit_refusal(self, exc: RoomServerError) -> None:
        """A join with a genuine token (signature checked) that was refused: who, which room, why.

        Tokens that do not even decode (garbage, expired, foreign key) are only counted
        (metrics): anyone can send those, and they name nobody.
        """
        claims = getattr(exc, "claims", None)
        if claims is None:
            return
        self.services.store.audit.append(
            at=int(time.time()), actor=claims.sub, actor_role=claims.role.value, action="seat.refused",
            room_id=claims.room, subject=claims.sub, detail={"code": exc.code, "jti": claims.jti})

    async def _send(self, conn: Conn, frame: bytes) -> None:
        if conn.ws.closed:
            return
        if self.tap is not None:
            self.tap("out", frame)
        try:
            await conn.ws.send_frame(frame, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            pass  # the socket is going away; its own handler reports the drop

    def _close(self, conn: Conn, code: int, reason: str) -> None:
        """Close without waiting for the client's close frame (never block the caller's loop)."""
        if not conn.ws.closed:
            self._spawn(conn.ws.close(code=int(code), message=reason.encode()[:123]))

    async def close_all(self) -> None:
        """Server shutdown: tell every client to come back (1001), keep rooms for resume."""
        for room in list(self.hub.rooms()):
            for seat_id in list(room.seats):
                conn = self.hub.connection(room.id, seat_id)
                if conn is not None and not conn.ws.closed:
                    await conn.ws.close(code=CloseCode.GOING_AWAY, message=b"server restarting")
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    # -- one socket -----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        s = self.services.settings.signalling
        # Our own heartbeat (see heartbeat()): aiohttp's schedules a callback for every frame received.
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=s.max_message_bytes * 4,
                                   autoping=False, compress=False)
        await ws.prepare(request)
        conn = Conn(ws, request.transport, TokenBucket(s.rate_per_second, s.rate_burst))
        # The socket runs in a task of its own: each frame then wakes two coroutines
        # (_session, aiohttp's receive) instead of also passing through the request handler
        # and every middleware around it. Cancelling the handler cancels the task.
        await asyncio.get_running_loop().create_task(self._session(conn))
        return ws

    async def _session(self, conn: Conn) -> None:
        """The socket's life: admission, then frames until it closes, then the seat's drop.

        One coroutine, so that each frame resumes only it and aiohttp's ``receive``.
        """
        ws = conn.ws
        self._live.add(conn)
        try:
            if not await self._admit(conn):
                return
            max_bytes, tap, receive = self._max_bytes, self.tap, ws.receive
            text, binary = WSMsgType.TEXT, WSMsgType.BINARY
            # Fixed for this socket's life (a resume comes on a new socket).
            room, seat_id, peers, prefix = conn.room, conn.seat_id, conn.peers, conn.prefix
            assert room is not None and seat_id is not None
            while True:
                msg = await receive()  # not ``async for``: one coroutine less per frame
                raw = msg.data
                if msg.type is not text and msg.type is not binary:
                    if msg.type in _CLOSING:
                        return
                    conn.heard = time.monotonic()  # a pong (liveness) or a ping
                    if msg.type is WSMsgType.PING:
                        await ws.pong(raw)
                    continue
                if tap is not None:
                    tap("in", raw)
                conn.credit -= 1
                if conn.credit < 0 and not await self._rate_limit(conn):
                    if ws.closed:
                        return
                    continue
                try:
                    obj = proto.decode_frame(raw, max_bytes)
                except ProtocolError as exc:
                    await self._send(conn, proto.dumpb(exc.to_message()))
                    continue
                to = relay_target(obj)
                if to is not None and peers.get(seat_id) is conn:  # not replaced by a resume
                    # The relay, inline: it is most of the traffic. A signal the room refuses
                    # goes on to parse_object and _message, which answer with the error.
                    try:
                        target = room.route_signal(seat_id, to)
                    except RoomError:
                        pass
                    else:
                        peer = peers.get(target) if target is not None else None
                        if peer is not None:  # else reconnecting: dropped, it restarts ICE on resume
                            self.relayed += 1
                            frame = relayed_frame(prefix, raw)
                            if tap is not None:
                                tap("out", frame)
                            try:
                                await peer.ws.send_frame(frame, text)
                            except (ConnectionError, RuntimeError):
                                pass  # the peer's socket is going away; its own handler reports the drop
                        continue
                try:
                    parsed = proto.parse_object(obj)
                except ProtocolError as exc:
                    await self._send(conn, proto.dumpb(exc.to_message()))
                    continue
                await self._message(conn, parsed)
        except Exception:  # noqa: BLE001 - one broken socket must not take anything else down
            log.exception("signalling socket failed")
            if not ws.closed:
                await ws.close(code=1011, message=b"internal error")
        finally:
            self._live.discard(conn)
            await self._dropped(conn)
            self.services.events.publish("socket.closed", conn.room_id, cause=_close_cause(ws, conn))

    async def _admit(self, conn: Conn) -> bool:
        """The first frame: ``join`` or ``resume`` in time, or the socket is closed (False)."""
        s = self.services.settings.signalling
        ws = conn.ws
        try:
            first = await asyncio.wait_for(self._first_frame(ws), timeout=s.join_timeout_seconds)
        except asyncio.TimeoutError:
            await self._error_close(conn, proto.error("join_timeout", "No join or resume message in time."),
                                    CloseCode.JOIN_TIMEOUT, "join timeout")
            return False
        if first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return False
        return await self._first(conn, first.data)

    async def _rate_limit(self, conn: Conn) -> bool:
        """The socket spent its granted messages: refill from the bucket, or refuse (and close an abuser)."""
        now = time.monotonic()
        conn.credit = conn.bucket.take_all(now) - 1
        if conn.credit >= 0:
            return True
        conn.credit = 0
        if conn.bucket.abusive(now):
            await self._error_close(conn, proto.error("rate_limited", "Too many messages; closing."),
                                    CloseCode.RATE_LIMITED, "rate limited")
        else:
            await self._send(conn, proto.dumpb(proto.error("rate_limited", "Too many messages; slow down.")))
        return False

    @staticmethod
    async def _first_frame(ws: web.WebSocketResponse) -> Any:
        """The first data frame (or close), answering pings that come before it."""
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type is not WSMsgType.PONG:
                return msg

    async def _error_close(self, conn: Conn, error: dict[str, Any], code: int, reason: str) -> None:
        await self._send(conn, proto.dumpb(error))
        if not conn.ws.closed:
            await conn.ws.close(code=int(code), message=reason.encode()[:123])

    async def _first(self, conn: Conn, data: str | bytes) -> bool:
        """Handle ``join``/``resume``; False (socket closed) if refused."""
        try:
            msg = proto.parse_client_message(data, self._max_bytes)
            with transaction(self.services.store.conn):  # spend, mark live and audit: one commit
                if isinstance(msg, proto.Join):
                    room, outcome = self._join(msg)
                elif isinstance(msg, proto.Resume):
                    room, outcome = self._resume(msg)
                else:
                    raise RoomError(proto.ErrorCode.NOT_JOINED, "Send join or resume first.",
                                    CloseCode.PROTOCOL_VIOLATION)
                self.persist(room, outcome)
        except (ProtocolError, RoomServerError) as exc:
            code = exc.code
            if not isinstance(exc, ProtocolError) and code != proto.ErrorCode.NOT_JOINED:
                self.services.events.publish("token.refused", None, code=code)
                self._audit_refusal(exc)
            ref = getattr(exc, "ref", None)
            close = getattr(exc, "close", None) or proto.fatal_close(code, ref or "join", joined=False) \
                or CloseCode.PROTOCOL_VIOLATION
            await self._error_close(conn, proto.error(code, exc.message, ref), close, code)
            return False
        seat = outcome.seat
        assert seat is not None
        await self.deliver(room, outcome)
        conn.seat_id, conn.number = seat.id, seat.conn
        self.hub.bind(room.id, seat.id, conn)
        conn.room, conn.peers, conn.prefix = room, self.hub.connections(room.id), sender_prefix(seat.id)
        self.hub.remember_secret(seat.secret, room.id)
        for reply in outcome.reply:
            await self._send(conn, proto.dumpb(reply))
        return True

    def _join(self, msg: proto.Join) -> tuple[Room, Outcome]:
        """Check the token against keys, ledger and room; seat the participant. No awaits inside."""
        svc = self.services
        now = time.time()
        claims = svc.codec.decode(msg.token, now)
        try:
            row = svc.store.rooms.get(claims.room)
            record = svc.store.tokens.get(claims.jti)
            check_admission(claims, room_id=msg.room, record=record, room_state=row.state if row else None)
            assert row is not None and record is not None
            room = self._open(row)
            name = msg.name if (msg.name and claims.role is Role.CITIZEN) else claims.name
            try:
                name = proto.clean_name(name)
            except ValueError:
                name = claims.role.value
            outcome = room.join(identity=claims.sub, role=claims.role, name=name, jti=claims.jti, now=now)
        except RoomServerError as exc:
            exc.claims = claims  # type: ignore[attr-defined] # who was refused, for the audit log
            raise
        svc.store.tokens.spend(claims.jti, int(now))
        if row.state == "open":
            svc.store.rooms.mark_live(row.id)
            svc.events.publish("room.started", row.id)
        return room, outcome

    def _resume(self, msg: proto.Resume) -> tuple[Room, Outcome]:
        room_id = self.hub.room_for_secret(msg.secret)
        room = self.hub.room(room_id) if room_id else None
        if room is None:
            raise RoomError(proto.ErrorCode.RESUME_UNKNOWN, "This seat cannot be resumed; join again.",
                            CloseCode.RESUME_UNKNOWN)
        return room, room.resume(msg.secret, time.time())

    async def _message(self, conn: Conn, msg: proto.ClientMessage) -> None:
        """Every parsed message but a relayed ``signal``: hand it to the room core, execute the outcome."""
        room = self.hub.room(conn.room_id or "")
        seat_id = conn.seat_id
        if room is None or seat_id is None or self.hub.connection(room.id, seat_id) is not conn:
            return  # this socket was replaced, removed or the room ended: ignore what it still sends
        ref = proto.message_type(msg)
        try:
            if isinstance(msg, proto.Signal):
                room.route_signal(seat_id, msg.to)  # the inline relay took every signal it could: this one is refused
                return
            now = time.time()
            if isinstance(msg, proto.State):
                outcome = room.set_state(seat_id, msg.fields(), now)
            elif isinstance(msg, proto.Stats):
                outcome = room.report_stats(seat_id, msg.peers, now)
                self.services.events.publish("participant.stats", room.id, seat=seat_id,
                                             peers={k: v.as_dict() for k, v in msg.peers.items()})
            elif isinstance(msg, proto.Ping):
                await self._send(conn, proto.dumpb(proto.pong(msg.id)))
                return
            elif isinstance(msg, proto.Admit):
                outcome = room.admit(seat_id, msg.peer, now)
            elif isinstance(msg, proto.Deny):
                outcome = room.deny(seat_id, msg.peer, now)
            elif isinstance(msg, proto.Remove):
                outcome = room.remove(seat_id, msg.peer, now)
            elif isinstance(msg, proto.End):
                outcome = room.end(seat_id, "moderator", now)
            elif isinstance(msg, proto.Leave):
                outcome = room.leave(seat_id, now)
            elif isinstance(msg, (proto.Call, proto.CallCancel, proto.Callback)):
                await self._call_message(room, seat_id, msg)
                return
            elif isinstance(msg, (proto.Join, proto.Resume)):
                raise RoomError(proto.ErrorCode.ALREADY_JOINED, "This socket has already joined.")
            else:  # pragma: no cover - parse_client_message returns only the types above
                raise RoomError(proto.ErrorCode.BAD_MESSAGE, "Unsupported message.")
        except RoomError as exc:
            await self._send(conn, proto.dumpb(proto.error(exc.code, exc.message, ref)))
            if exc.close is not None:
                self._close(conn, exc.close, exc.code)
            return
        except RoomServerError as exc:  # a call refused by the switchboard
            await self._send(conn, proto.dumpb(proto.error(exc.code, exc.message, ref)))
            return
        await self.execute(room, outcome)
        for reply in outcome.reply:
            await self._send(conn, proto.dumpb(reply))

    async def _dropped(self, conn: Conn) -> None:
        """The socket is gone: if it still held its seat, the seat is now reconnecting."""
        if conn.room_id is None or conn.seat_id is None:
            return
        room = self.hub.room(conn.room_id)
        bound = self.hub.connection(conn.room_id, conn.seat_id)
        if bound is conn:
            self.hub.unbind(conn.room_id, conn.seat_id, conn)
        if room is None or room.ended:
            return
        outcome = room.disconnected(conn.seat_id, time.time(), conn.number)
        await self.execute(room, outcome)


def _close_cause(ws: web.WebSocketResponse, conn: Conn) -> str:
    """Why a socket closed, as a metric label: never joined, left, a documented close code, or lost."""
    code = ws.close_code
    if conn.seat_id is None:
        return "not_joined" if code in (None, 1000, 1001, 1006) else str(code)
    if code == 1000:
        return "normal"
    if code in (None, 1006):
        return "lost"
    return str(code)


SIGNALLING_KEY: web.AppKey[Signalling] = web.AppKey("signalling", Signalling)


def setup_signalling(app: web.Application) -> Signalling:
    signalling = Signalling(services_of(app))
    app[SIGNALLING_KEY] = signalling
    app.router.add_get("/ws", signalling.handle)

    async def sweeper(app: web.Application):  # type: ignore[no-untyped-def]
        tasks = [asyncio.create_task(signalling.sweep()), asyncio.create_task(signalling.heartbeat())]
        yield
        for task in tasks:
            task.cancel()

    async def on_shutdown(app: web.Application) -> None:
        await signalling.close_all()

    app.cleanup_ctx.append(sweeper)
    app.on_shutdown.append(on_shutdown)
    return signalling
