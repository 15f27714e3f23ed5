"""The participants' WebSocket at ``/ws``: sockets on this node, whichever node owns their room.

Each socket's first message is ``join`` (token checked here: key set, ledger,
persisted room) or ``resume``; the room's owner (``roomhost``, on this node or
another) seats it and answers. After that:

* a ``signal`` is relayed right here, inline (most of the traffic): checked by
  this node's copy of the room (the room itself when this node owns it, else the
  owner's last snapshot) and sent to the peer's socket — on this node, or on
  another one as a ``f`` frame over the bridge;
* every other message goes to the owner, whose outcome comes back as frames and
  closes (``deliver``, ``close_seat``).

Nothing a client sends can raise out of here: refusals are answered with
``error`` (and a documented close where they are fatal); an unexpected failure
closes only that socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import WSMsgType, web

from ..core import protocol as proto
from ..core import roomstate
from ..core.errors import RoomServerError
from ..core.protocol import CloseCode, ProtocolError
from ..core.ratelimit import TokenBucket
from ..core.relay import relay_target, relayed_frame, sender_prefix
from ..core.roles import Action, Role, may
from ..core.room import Room, RoomError, room_of_secret
from ..core.tokens import Claims, check_admission
from ..live import Live, LiveUnavailable
from ..middleware import http_error_response, self_answering
from ..services import Services
from ..store import RoomRow, StoreUnavailable
from . import eager
from .bridge import Bridge, RemoteError, Unanswered
from .roomhost import RoomHost

log = logging.getLogger("roomserver.signalling")

_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)  # the socket is done
DROP_ATTEMPTS = 5  # telling the owner that a socket dropped is retried this often (owner moving)


class Conn:
    """One participant socket, and the seat it is bound to once joined."""

    __slots__ = ("ws", "transport", "number", "seat_id", "view", "peers", "prefix", "bucket", "credit", "heard",
                 "pinged", "outgoing", "late")

    def __init__(self, ws: web.WebSocketResponse, transport: Any, bucket: TokenBucket) -> None:
        self.ws = ws
        self.transport = transport
        self.number: int | None = None
        self.seat_id: str | None = None
        # Set on join, for the relay: this node's view of the room, its seat-to-socket map, our frame prefix.
        self.view: View | None = None
        self.peers: dict[str, Any] = {}
        self.prefix = ""
        self.bucket = bucket
        self.credit = 0  # messages the bucket already granted (see TokenBucket.take_all)
        self.heard = time.monotonic()  # when the socket opened, then its last pong (see heartbeat())
        self.pinged: float | None = None  # when the heartbeat last pinged it
        self.outgoing: deque[bytes] | None = None  # frames from other nodes waiting to be written
        self.late = False  # no join or resume in time: being closed, its first frame is not read

    @property
    def room_id(self) -> str | None:
        return self.view.room.id if self.view is not None else None


class RemotePeer:
    """A seat whose socket is on another node: the relay sends to it as if it were a local socket."""

    __slots__ = ("bridge", "node", "room_id", "seat_id", "ws", "outgoing")

    def __init__(self, bridge: Bridge, node: str, room_id: str, seat_id: str) -> None:
        self.bridge, self.node, self.room_id, self.seat_id = bridge, node, room_id, seat_id
        self.ws = self  # the relay calls ``peer.ws.send_frame``
        self.outgoing = None  # never queued here: the bridge keeps the order

    async def send_frame(self, frame: bytes, kind: Any) -> None:
        self.bridge.frame(self.node, self.room_id, self.seat_id, frame)


class View:
    """This node's view of one room it has sockets in: the room, who owns it, where each seat's socket is."""

    __slots__ = ("room", "owner", "locations", "local", "peers")

    def __init__(self, room: Room, owner: str) -> None:
        self.room = room
        self.owner = owner
        self.locations: dict[str, str] = {}
        self.local: dict[str, Conn] = {}  # seat -> this node's socket for it
        self.peers: dict[str, Any] = {}  # seat -> Conn or RemotePeer: what the relay sends to


class Gateway:
    """Every participant socket of this node."""

    def __init__(self, services: Services, live: Live, bridge: Bridge, host: RoomHost) -> None:
        self.services = services
        self.live = live
        self.bridge = bridge
        self.host = host
        host.gateway = self
        self.views: dict[str, View] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._live: set[Conn] = set()  # every open participant socket, for the heartbeat
        self._pending_drops: list[tuple[str, str, int]] = []
        # A tap on every frame received ("in") and sent ("out"); tests use it to show what the
        # server never saw (chat text). None in production: one attribute check per frame.
        self.tap: Callable[[str, str | bytes], None] | None = None
        self.relayed = 0
        self._max_bytes = services.settings.signalling.max_message_bytes
        self.desks: Any = None  # the expert desks (desk.py), when set up: calls from a room
        self.draining = False
        self._cluster_cache: tuple[float, list[Room]] | None = None
        bridge.on_frame(self.deliver)
        bridge.on("view", self._remote_view)
        bridge.on("gone", lambda m: self.forget_room(m["room"]))
        bridge.on("close", lambda m: self.close_seat(m["room"], m["seat"], m["conn"], m["code"], m["reason"]))
        live.on_health(self._health_changed)

    @property
    def node(self) -> str:
        return self.live.node

    # -- deliveries from room owners ------------------------------------------------------------

    def deliver(self, room_id: str, seat_id: str, frame: bytes) -> None:
        """Put ``frame`` on the socket of the seat, if this node holds it, in the order frames came.

        Written at once when the socket takes it; if the socket must wait (a full buffer),
        later frames queue on it and one task writes them out after.
        """
        view = self.views.get(room_id)
        conn = view.local.get(seat_id) if view is not None else None
        if conn is None:
            return
        if conn.outgoing is not None:
            conn.outgoing.append(frame)
            return
        if conn.ws.closed:
            return
        if self.tap is not None:
            self.tap("out", frame)
        try:
            rest = eager.start(conn.ws.send_frame(frame, WSMsgType.TEXT))
        except (ConnectionError, RuntimeError):
            return  # the socket is going away; its own handler reports the drop
        if rest is not None:
            conn.outgoing = deque()
            self._spawn(self._drain(conn, rest))

    async def _drain(self, conn: Conn, rest: Any) -> None:
        queue = conn.outgoing
        assert queue is not None
        try:
            await rest
            while queue:
                await self._send(conn, queue.popleft())
        except (ConnectionError, RuntimeError):
            pass
        finally:
            conn.outgoing = None

    def close_seat(self, room_id: str, seat_id: str, number: int, code: int, reason: str) -> None:
        """Close the seat's socket number ``number`` (skip if that socket is gone or replaced)."""
        view = self.views.get(room_id)
        conn = view.local.get(seat_id) if view is not None else None
        if conn is not None and conn.number == number:
            self._unbind(view, seat_id, conn)  # type: ignore[arg-type]
            self._close(conn, code, reason)

    def refresh(self, room: Room, locations: dict[str, str], owner: str) -> None:
        """The owner (this node) changed the room: the relay's map follows."""
        view = self.views.get(room.id)
        if view is None:
            return
        view.room, view.owner = room, owner
        self._route(view, locations)

    def forget_room(self, room_id: str) -> None:
        """The room ended (or moved off this node as owner with no sockets here): drop the view."""
        view = self.views.get(room_id)
        if view is not None and not view.local:
            self.views.pop(room_id, None)
        elif view is not None and view.room.ended:
            self.views.pop(room_id, None)

    def _remote_view(self, m: dict[str, Any]) -> None:
        view = self.views.get(m["room"])
        if view is not None:
            self._apply_view(view, m)

    def _apply_view(self, view: View, m: dict[str, Any]) -> None:
        if m["owner"] != self.node:
            roomstate.load(m["snapshot"], into=view.room)
        view.owner = m["owner"]
        self._route(view, m["locations"])

    def _route(self, view: View, locations: dict[str, str]) -> None:
        """Rebuild the relay's seat map: local sockets, and a proxy for every seat on another node."""
        view.locations = dict(locations)
        room = view.room
        peers = view.peers
        wanted: dict[str, Any] = {}
        for seat_id, node in locations.items():
            seat = room.seat(seat_id)
            if seat is None or not seat.online:
                continue
            if node == self.node:
                conn = view.local.get(seat_id)
                if conn is not None:
                    wanted[seat_id] = conn
            else:
                current = peers.get(seat_id)
                keep = isinstance(current, RemotePeer) and current.node == node
                wanted[seat_id] = current if keep else RemotePeer(self.bridge, node, room.id, seat_id)
        for seat_id in [s for s in peers if s not in wanted]:
            del peers[seat_id]
        peers.update(wanted)  # the same dict object: every socket's relay sees the change at once

    def _bind(self, view: View, seat_id: str, conn: Conn) -> None:
        view.local[seat_id] = conn
        view.peers[seat_id] = conn

    def _unbind(self, view: View, seat_id: str, conn: Conn) -> None:
        if view.local.get(seat_id) is conn:
            del view.local[seat_id]
            if view.peers.get(seat_id) is conn:
                del view.peers[seat_id]

    # -- asking the owner ----------------------------------------------------------------------------

    async def _owner_call(self, room_id: str, local: Callable[[], Any], remote: dict[str, Any],
                          on_reply: Callable[[Any], None] | None = None,
                          on_late: Callable[[Any], None] | None = None, row: RoomRow | None = None) -> Any:
        """Run a room operation on its owner (this node: ``local()``; another: the ``remote`` request).

        ``on_reply`` runs on the answer before anything else happens on this node (see ``Bridge.ask``);
        ``row`` is the room as just read from the store, for this node's taking it up.
        """
        for attempt in range(3):
            owner = await self.host.resolve(room_id, row)
            if owner == self.node:
                answer = await local()
                if on_reply is not None:
                    on_reply(answer)
                return answer
            try:
                return await self.bridge.ask(owner, remote, on_reply=on_reply, on_late=on_late)
            except RemoteError as exc:
                if exc.code not in ("not_owner", "moved"):
                    raise RoomError(exc.code, exc.message, CloseCode(exc.close) if exc.close else None,
                                    exc.status) from None
            except Unanswered:
                pass  # the owner may be gone: once its registration lapses, resolve() finds or claims anew
            await asyncio.sleep(0.2 * (attempt + 1))
        raise RoomServerError("unavailable", "The consultation cannot be reached right now; try again.", 503)

    # -- one socket ---------------------------------------------------------------------------------

    @self_answering
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``: the socket's whole life — handshake, admission, frames until it closes, the drop.

        One coroutine, in the handler's own task (not one more task per socket), and marked to
        answer its own errors, so the error middleware hands it on without a frame of its own:
        each frame the socket receives resumes only this and aiohttp's ``receive`` below the
        request's own few, and no coroutine more waits around each of thousands of sockets.
        """
        s = self.services.settings.signalling
        # Our own heartbeat (see heartbeat()): aiohttp's schedules a callback for every frame received.
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=s.max_message_bytes * 4,
                                   autoping=False, compress=False)
        try:
            await ws.prepare(request)
        except web.HTTPException as exc:  # not a WebSocket handshake: the shape of every other refusal
            return http_error_response(exc)
        conn = Conn(ws, request.transport, TokenBucket(s.rate_per_second, s.rate_burst))
        self._live.add(conn)
        try:
            if not await self._admit(conn):
                return ws
            max_bytes, tap, receive = self._max_bytes, self.tap, ws.receive
            text, binary = WSMsgType.TEXT, WSMsgType.BINARY
            # Fixed for this socket's life (a resume comes on a new socket); the view's room and
            # peer map are updated in place when the room changes.
            view, seat_id, peers, prefix = conn.view, conn.seat_id, conn.peers, conn.prefix
            assert view is not None and seat_id is not None
            room = view.room
            while True:
                msg = await receive()  # not ``async for``: one coroutine less per frame
                raw = msg.data
                if msg.type is not text and msg.type is not binary:
                    if msg.type in _CLOSING:
                        return ws
                    conn.heard = time.monotonic()  # a pong (liveness) or a ping
                    if msg.type is WSMsgType.PING:
                        await ws.pong(raw)
                    continue
                if tap is not None:
                    tap("in", raw)
                conn.credit -= 1
                if conn.credit < 0 and not await self._rate_limit(conn):
                    if ws.closed:
                        return ws
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
                            if peer.outgoing is not None:  # frames wait for that socket: keep their order
                                peer.outgoing.append(frame)
                                continue
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
                await self._message(conn, parsed, raw)
        except Exception:  # noqa: BLE001 - one broken socket must not take anything else down
            log.exception("signalling socket failed")
            if not ws.closed:
                await ws.close(code=1011, message=b"internal error")
        finally:
            self._live.discard(conn)
            # Its own task: aiohttp cancels this one when the connection goes, and the seat's
            # drop must reach the owner and the peers all the same.
            self._spawn(self._dropped(conn))
        return ws

    async def _admit(self, conn: Conn) -> bool:
        """The first frame: ``join`` or ``resume`` in time, or the socket is closed (False)."""
        s = self.services.settings.signalling
        ws = conn.ws
        if self.draining or not self.live.healthy:
            await self._error_close(conn, proto.error("unavailable", "This server is not taking new "
                                                      "participants right now; try again."),
                                    CloseCode.TRY_AGAIN, "try again")
            return False
        # A timer, not ``asyncio.timeout`` (whose context manager cost every join more than the timer).
        deadline = asyncio.get_running_loop().call_later(s.join_timeout_seconds, self._join_late, conn)
        try:
            first = await self._first_frame(ws)
        finally:
            deadline.cancel()
        if conn.late or first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
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

    def _join_late(self, conn: Conn) -> None:
        """The join deadline passed: close the socket. Its ``receive`` then ends (aiohttp lets another
        task close a socket that one is reading), and ``late`` keeps a frame that came at the same
        instant from being read as a join, which would spend the token on a closing socket."""
        conn.late = True
        self._spawn(self._error_close(conn, proto.error("join_timeout", "No join or resume message in time."),
                                      CloseCode.JOIN_TIMEOUT, "join timeout"))

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
        claims: Claims | None = None
        try:
            msg = proto.parse_client_message(data, self._max_bytes)
            if isinstance(msg, proto.Join):
                claims = self.services.codec.decode(msg.token, time.time())
                await self._join(conn, msg, claims)
            elif isinstance(msg, proto.Resume):
                await self._resume(conn, msg)
            else:
                raise RoomError(proto.ErrorCode.NOT_JOINED, "Send join or resume first.",
                                CloseCode.PROTOCOL_VIOLATION)
        except (ProtocolError, RoomServerError) as exc:
            code = exc.code
            if not isinstance(exc, ProtocolError) and code != proto.ErrorCode.NOT_JOINED:
                self.services.events.publish("token.refused", None, code=code)
                if claims is not None:
                    await self._audit_refusal(claims, code)
            ref = getattr(exc, "ref", None)
            close = getattr(exc, "close", None) or proto.fatal_close(code, ref or "join", joined=False) \
                or (CloseCode.TRY_AGAIN if exc_status(exc) >= 500 else CloseCode.PROTOCOL_VIOLATION)
            await self._error_close(conn, proto.error(code, exc.message, ref), close, code)
            return False
        if conn.ws.closed:  # gone while being seated: the owner must hear it like any other drop
            return False
        return True

    def _seat(self, conn: Conn, room_id: str, answer: dict[str, Any]) -> None:
        """The owner seated this socket: bind it, and queue its greeting before anything sent to it later.

        Runs the moment the answer arrives (``Bridge.ask``'s hook): frames and copies of the
        room that the owner sent after the answer are read only after this.
        """
        view = self.views.get(room_id)
        if view is None:
            view = self.views[room_id] = self._new_view(room_id, answer)
        elif "view" in answer:
            self._apply_view(view, answer["view"])
        seat_id = answer["seat"]
        conn.seat_id, conn.number = seat_id, answer["conn"]
        conn.view, conn.peers, conn.prefix = view, view.peers, sender_prefix(seat_id)
        self._bind(view, seat_id, conn)
        if answer["owner"] == self.node and room_id in self.host.rooms:
            self._route(view, self.host.rooms[room_id].locations)
        for reply in answer["replies"]:
            self.deliver(room_id, seat_id, proto.dumpb(reply))

    def _seated_late(self, room_id: str, answer: dict[str, Any]) -> None:
        """The owner seated us after we gave up waiting: nobody holds that seat's socket here."""
        self._spawn(self._tell_dropped(room_id, answer["seat"], answer["conn"]))

    def _new_view(self, room_id: str, answer: dict[str, Any]) -> View:
        hosted = self.host.rooms.get(room_id)
        if answer["owner"] == self.node and hosted is not None:
            view = View(hosted.room, self.node)
            view.locations = dict(hosted.locations)
            return view
        view = View(roomstate.load(answer["view"]["snapshot"]), answer["view"]["owner"])
        self._apply_view(view, answer["view"])
        return view

    async def _join(self, conn: Conn, msg: proto.Join, claims: Claims) -> None:
        """Check the token against the ledger and the room; the owner seats the participant and spends it."""
        svc = self.services
        row, record = await svc.store.read(lambda tx: (tx.rooms.get(claims.room), tx.tokens.get(claims.jti)))
        check_admission(claims, room_id=msg.room, record=record, room_state=row.state if row else None)
        name = msg.name if (msg.name and claims.role is Role.CITIZEN) else claims.name
        try:
            name = proto.clean_name(name)
        except ValueError:
            name = claims.role.value
        wire = {"sub": claims.sub, "role": claims.role.value, "jti": claims.jti}
        room_id = claims.room
        await self._owner_call(
            room_id, lambda: self.host.join(room_id, wire, name, self.node),
            {"t": "join", "room": room_id, "claims": wire, "name": name},
            on_reply=lambda answer: self._seat(conn, room_id, answer),
            on_late=lambda answer: self._seated_late(room_id, answer), row=row)

    async def _resume(self, conn: Conn, msg: proto.Resume) -> None:
        room_id = room_of_secret(msg.secret)
        if room_id is None:
            raise RoomError(proto.ErrorCode.RESUME_UNKNOWN, "This seat cannot be resumed; join again.",
                            CloseCode.RESUME_UNKNOWN)
        row = await self.services.store.rooms.get(room_id)
        if row is None:
            raise RoomError(proto.ErrorCode.RESUME_UNKNOWN, "This seat cannot be resumed; join again.",
                            CloseCode.RESUME_UNKNOWN)
        if row.state == "ended":
            raise RoomError(proto.ErrorCode.ROOM_ENDED, "The consultation has ended.", CloseCode.ROOM_ENDED, 410)
        await self._owner_call(
            room_id, lambda: self.host.resume(room_id, msg.secret, self.node),
            {"t": "resume", "room": room_id, "secret": msg.secret},
            on_reply=lambda answer: self._seat(conn, room_id, answer),
            on_late=lambda answer: self._seated_late(room_id, answer), row=row)

    async def _message(self, conn: Conn, msg: proto.ClientMessage, raw: str | bytes) -> None:
        """Every parsed message but a relayed ``signal``: pings here, calls to the desks, the rest to the owner."""
        view, seat_id = conn.view, conn.seat_id
        if view is None or seat_id is None or view.local.get(seat_id) is not conn:
            return  # this socket was replaced, removed or the room ended: ignore what it still sends
        ref = proto.message_type(msg)
        try:
            if isinstance(msg, proto.Ping):
                await self._send(conn, proto.dumpb(proto.pong(msg.id)))
                return
            if isinstance(msg, (proto.Join, proto.Resume)):
                raise RoomError(proto.ErrorCode.ALREADY_JOINED, "This socket has already joined.")
            if isinstance(msg, (proto.Call, proto.CallCancel, proto.Callback)):
                await self._call_message(view.room, seat_id, msg)
                return
            room_id, number = view.room.id, conn.number
            assert number is not None
            if view.owner == self.node and room_id in self.host.rooms:
                await self.host.message(room_id, seat_id, number, msg)
            elif view.owner != self.node:
                self.bridge.tell(view.owner, {"t": "msg", "room": room_id, "seat": seat_id, "conn": number,
                                              "frame": raw if isinstance(raw, str) else raw.decode()})
            else:  # this node owned the room and gave it up (drain, takeover): find the owner again
                await self._owner_call(room_id, lambda: self.host.message(room_id, seat_id, number, msg),
                                       {"t": "msg", "room": room_id, "seat": seat_id, "conn": number,
                                        "frame": raw if isinstance(raw, str) else raw.decode()})
        except RoomError as exc:
            await self._send(conn, proto.dumpb(proto.error(exc.code, exc.message, ref)))
            if exc.close is not None:
                self._close(conn, exc.close, exc.code)
        except RoomServerError as exc:  # a call refused by the switchboard, the store or Redis unavailable
            await self._send(conn, proto.dumpb(proto.error(exc.code, exc.message, ref)))

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

    async def _dropped(self, conn: Conn) -> None:
        """The socket is gone: if it still held its seat, the owner marks the seat reconnecting."""
        try:
            view, seat_id, number = conn.view, conn.seat_id, conn.number
            if view is None or seat_id is None or number is None:
                return
            bound = view.local.get(seat_id) is conn
            self._unbind(view, seat_id, conn)
            if not view.local and view.owner != self.node:
                self.views.pop(view.room.id, None)  # no socket of ours left in a room we do not own
            if not bound or view.room.ended:
                return
            await self._tell_dropped(view.room.id, seat_id, number)
        finally:
            self.services.events.publish("socket.closed", conn.room_id, cause=_close_cause(conn.ws, conn))

    async def _tell_dropped(self, room_id: str, seat_id: str, number: int) -> None:
        if not self.live.healthy:
            self._pending_drops.append((room_id, seat_id, number))  # told when Redis is back
            return
        try:
            await self._owner_call(room_id, lambda: self.host.dropped(room_id, seat_id, number),
                                   {"t": "drop", "room": room_id, "seat": seat_id, "conn": number})
        except RoomServerError as exc:
            if exc.code in ("unavailable",):
                self._pending_drops.append((room_id, seat_id, number))
            # room_ended and the like: nothing left to tell

    async def _audit_refusal(self, claims: Claims, code: str) -> None:
        """A join with a genuine token (signature checked) that was refused: who, which room, why.

        Tokens that do not even decode (garbage, expired, foreign key) are only counted
        (metrics): anyone can send those, and they name nobody.
        """
        try:
            await self.services.store.audit.append(
                at=int(time.time()), actor=claims.sub, actor_role=claims.role.value, action="seat.refused",
                room_id=claims.room, subject=claims.sub, detail={"code": code, "jti": claims.jti})
        except StoreUnavailable:
            pass  # the refusal itself is what the client needed

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

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the node as a whole ------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Ping every open socket each interval; one that did not answer the previous ping is dead.

        A dead socket's transport is aborted, so its handler sees the drop and the seat
        becomes ``reconnecting`` — within one to two intervals of the loss. The sockets
        are pinged spread over the interval (one slice every 200 ms), not all at once: a
        burst of thousands of pings would hold up the relay. Slices of 200 ms rather than
        50 ms: the pongs of a slice come back together and are read in fewer wake-ups of the
        process (idle CPU with 5,000 sockets 4.8–5.1 % → 4.1–4.3 % of a core, relay p99
        unchanged; bench/scale), and a slice of 5,000 / 25 = 200 pings still takes only a
        millisecond or two to write.
        """
        interval = self.services.settings.signalling.heartbeat_seconds
        slices = max(1, int(interval / 0.2))
        while True:
            conns = list(self._live)
            per_slice = -(-len(conns) // slices) if conns else 0
            for start in range(0, slices):
                await asyncio.sleep(interval / slices)
                now = time.monotonic()
                for conn in conns[start * per_slice:(start + 1) * per_slice]:
                    if conn.ws.closed or conn.seat_id is None:
                        continue  # not seated yet: the join timeout and the owner's answer bound it
                    if conn.pinged is not None and conn.heard < conn.pinged:
                        if conn.transport is not None:
                            conn.transport.abort()
                        continue
                    conn.pinged = now
                    self._ping(conn)

    def _ping(self, conn: Conn) -> None:
        """Write the ping now; a task only if the socket's buffer is full (a task per ping costs more
        than the ping: thousands of sockets are pinged every interval)."""
        try:
            rest = eager.start(conn.ws.ping())
        except (ConnectionError, RuntimeError):
            return
        if rest is not None:
            self._spawn(self._finish_ping(rest))

    @staticmethod
    async def _finish_ping(rest: Any) -> None:
        try:
            await rest
        except (ConnectionError, RuntimeError):
            pass

    async def sweep(self, interval: float = 5.0) -> None:
        """End owned live rooms that another process (``roomserver end-room``) ended in the store."""
        while True:
            await asyncio.sleep(interval)
            owned = list(self.host.rooms)
            if not owned:
                continue
            try:
                # One trip to the store for all owned rooms (a node may own a thousand), a query per 500.
                ended = await self.services.store.read(lambda tx: tx.rooms.ended_among(owned))
            except StoreUnavailable:
                continue
            for row in ended:
                await self.host.operator_end(row.id, row.ended_reason if row.ended_reason in
                                             ("operator", "api") else "api")

    def ended_elsewhere(self, room_id: str, reason: str) -> None:
        """The API, CLI or an operator ended the room in the store: its owner disconnects everyone now."""
        self._spawn(self._end_elsewhere(room_id, reason if reason in ("operator", "api") else "api"))

    async def _end_elsewhere(self, room_id: str, reason: str) -> None:
        if room_id in self.host.rooms:
            if not await self.host.operator_end(room_id, reason):
                self.services.events.publish("room.ended", room_id, reason=reason)
            return
        try:
            owner = await self.live.owner(f"room:{room_id}")
        except LiveUnavailable:
            owner = None
        if owner is not None:
            self.bridge.tell(owner, {"t": "ended", "room": room_id, "reason": reason})
        else:
            self.services.events.publish("room.ended", room_id, reason=reason)

    async def _on_live_owner(self, room_id: str, local: Callable[[], Awaitable[Any]], remote: dict[str, Any]) -> Any:
        """Run an action from outside on the node that owns the live room; None if the room is not live."""
        try:
            owner = await self.live.owner(f"room:{room_id}")
        except LiveUnavailable:
            return None
        if owner is None:
            return None
        try:
            return await self._owner_call(room_id, local, remote)
        except RoomServerError:
            return None

    async def operator_end(self, room_id: str) -> bool:
        """An operator ends a live room (on any node); False if it is not live."""
        return bool(await self._on_live_owner(room_id, lambda: self.host.operator_end(room_id, "operator"),
                                              {"t": "end", "room": room_id, "reason": "operator"}))

    async def operator_remove(self, room_id: str, seat_id: str) -> dict[str, Any] | None:
        """An operator removes one participant (on any node); who it was, or None if there is no such seat."""
        return await self._on_live_owner(room_id, lambda: self.host.operator_remove(room_id, seat_id),
                                         {"t": "remove", "room": room_id, "seat": seat_id})

    async def invite_withdrawn(self, room_id: str, jti: str) -> None:
        """``DELETE …/invites/{jti}`` (on any node): the seat that joined with it ends, with its resume secret."""
        await self._on_live_owner(room_id, lambda: self.host.withdraw(room_id, jti),
                                  {"t": "withdraw", "room": room_id, "jti": jti})

    async def send_to_seat(self, room_id: str, seat_id: str, message: dict[str, Any]) -> None:
        """A message for one seat of a room from outside its rules (the switchboard's call status)."""
        if room_id in self.host.rooms:
            await self.host.send_to_seat(room_id, seat_id, message)
            return
        try:
            owner = await self.live.owner(f"room:{room_id}")
        except LiveUnavailable:
            return
        if owner is not None:
            self.bridge.tell(owner, {"t": "seat-send", "room": room_id, "seat": seat_id, "message": message})

    def rooms(self) -> list[Room]:
        """Every live room this node knows: those it owns and those it has sockets in."""
        found = {room_id: hosted.room for room_id, hosted in self.host.rooms.items()}
        for room_id, view in self.views.items():
            found.setdefault(room_id, view.room)
        return [room for room in found.values() if not room.ended]

    async def cluster_rooms(self) -> list[Room]:
        """Every live room of the whole cluster (the operator dashboard): this node's own, the others'
        from their last snapshots (at most a second old)."""
        if not self.live.clustered:
            return self.rooms()
        now = time.monotonic()
        if self._cluster_cache is not None and now - self._cluster_cache[0] < 1.0:
            return self._cluster_cache[1]
        found = {room.id: room for room in self.rooms()}
        try:
            others = [r for r in await self.live.rooms() if r not in self.host.rooms]
            for data in await self.live.load_many([f"room:{r}" for r in others]):
                if data is not None:
                    room = roomstate.load(orjson.loads(data))
                    found[room.id] = room
        except LiveUnavailable:
            pass
        rooms = [room for room in found.values() if not room.ended]
        self._cluster_cache = (now, rooms)
        return rooms

    def room(self, room_id: str) -> Room | None:
        hosted = self.host.rooms.get(room_id)
        if hosted is not None:
            return hosted.room
        view = self.views.get(room_id)
        return view.room if view is not None else None

    def local_connections(self) -> int:
        return len(self._live)

    def _health_changed(self, healthy: bool) -> None:
        if not healthy:
            self.host.lost_sockets()
            self._close_all(CloseCode.TRY_AGAIN, "try again")
        else:
            self._spawn(self._recover())

    async def _recover(self) -> None:
        await self.host.recovered()
        pending, self._pending_drops = self._pending_drops, []
        for room_id, seat_id, number in pending:
            await self._tell_dropped(room_id, seat_id, number)

    def _close_all(self, code: int, reason: str) -> None:
        for conn in list(self._live):
            self._close(conn, code, reason)

    async def drain(self) -> None:
        """Shutdown: refuse new sockets, close ours with 1001 (clients resume on another node or after the
        restart), tell the owners, then save and give up the rooms this node owns."""
        self.draining = self.services.draining = True
        conns = list(self._live)
        for conn in conns:
            if not conn.ws.closed:
                await conn.ws.close(code=CloseCode.GOING_AWAY, message=b"server restarting")
        await asyncio.sleep(0)
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        await self.host.release_all()


def exc_status(exc: BaseException) -> int:
    return int(getattr(exc, "status", 400) or 400)


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
