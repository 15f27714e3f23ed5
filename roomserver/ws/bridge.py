"""Messages between nodes: a frame for a seat's socket, JSON for everything else, and request/reply.

Two shapes travel on a node's channel (``live``):

* ``f<room> <seat> <frame>`` — put ``frame`` on the socket of ``seat`` if this node
  holds it. The relayed ``signal`` (the hot path) and every ``Send`` of a room
  owner to a socket on another node take this shape: no JSON around JSON.
* ``j<json>`` — an object with ``t`` (its type); ``id`` and ``from`` when it asks
  for a reply, which comes back as ``{"t": "reply", "id", "ok"}`` or
  ``{"t": "reply", "id", "error": {code, message, close}}``.

docs/cluster.md lists every type. A request that gets no reply in
``[cluster] rpc_timeout_seconds`` raises ``Unanswered``; the caller looks for the
owner again (it may have died) and retries.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, Awaitable, Callable

import orjson

from ..core.errors import RoomServerError
from ..live import Live

log = logging.getLogger("roomserver.bridge")

FrameHandler = Callable[[str, str, bytes], None]
ReplyHook = Callable[[Any], None]
LATE_SECONDS = 60.0  # how long a reply that came too late is still undone
ALIVE_CHECK_SECONDS = 0.5  # a request unanswered this long: is the node still registered at all?
Handler = Callable[[dict[str, Any]], Awaitable[Any] | Any]


class Unanswered(Exception):
    """The other node did not answer in time (gone, or cut off)."""


class RemoteError(RoomServerError):
    """A refusal that another node sent back: the same code, message and close code as if it were local."""

    def __init__(self, code: str, message: str, close: int | None, status: int = 409) -> None:
        super().__init__(code, message, status)
        self.close = close


class Bridge:
    """This node's end of the node channels."""

    def __init__(self, live: Live, timeout: float) -> None:
        self.live = live
        self.timeout = timeout
        self._handlers: dict[str, Handler] = {}
        self._frames: FrameHandler = lambda room, seat, frame: None
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._hooks: dict[int, ReplyHook] = {}
        self._late: dict[int, ReplyHook] = {}
        self._ids = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def node(self) -> str:
        return self.live.node

    def on(self, kind: str, handler: Handler) -> None:
        """Handle JSON messages of type ``kind`` (a coroutine function's result is the reply, if asked)."""
        self._handlers[kind] = handler

    def on_frame(self, handler: FrameHandler) -> None:
        self._frames = handler

    # -- sending -------------------------------------------------------------------------------

    def frame(self, node: str, room_id: str, seat_id: str, frame: bytes) -> None:
        self.live.send(node, b"f" + room_id.encode() + b" " + seat_id.encode() + b" " + frame)

    def tell(self, node: str, message: dict[str, Any]) -> None:
        self.live.send(node, b"j" + orjson.dumps(message))

    def tell_all(self, message: dict[str, Any]) -> None:
        self.live.broadcast(b"j" + orjson.dumps(message))

    async def ask(self, node: str, message: dict[str, Any], *, on_reply: ReplyHook | None = None,
                  on_late: ReplyHook | None = None) -> Any:
        """Send ``message`` to ``node`` and wait for its reply; a refusal is raised as ``RemoteError``.

        ``on_reply(value)`` runs the moment the reply arrives, before this node reads its
        next message (so that what the reply sets up — a seated socket — is in place for
        the messages that follow it). ``on_late(value)`` runs for a reply that comes after
        we stopped waiting (to undo what the other node did for nobody).
        """
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        if on_reply is not None:
            self._hooks[request_id] = on_reply
        self.tell(node, {**message, "id": request_id, "from": self.node})
        try:
            return await self._answer_of(node, future)
        except asyncio.TimeoutError:
            if on_late is not None:
                self._late[request_id] = on_late
                asyncio.get_running_loop().call_later(LATE_SECONDS, self._late.pop, request_id, None)
            raise Unanswered(node) from None
        finally:
            self._waiting.pop(request_id, None)
            self._hooks.pop(request_id, None)

    async def _answer_of(self, node: str, future: asyncio.Future[Any]) -> Any:
        """The reply, waiting at most ``timeout``; sooner ``TimeoutError`` once ``node`` is deregistered
        (a dead node never answers, and the caller then finds the room's new owner at once)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            try:
                return await asyncio.wait_for(asyncio.shield(future), min(remaining, ALIVE_CHECK_SECONDS))
            except asyncio.TimeoutError:
                try:
                    gone = not await self.live.alive(node)
                except Exception:  # noqa: BLE001 - cannot tell: keep waiting until the deadline
                    gone = False
                if gone:
                    raise

    # -- receiving --------------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """One message from this node's channel (called by ``live`` in arrival order)."""
        kind = data[:1]
        if kind == b"f":
            room, _, rest = data[1:].partition(b" ")
            seat, _, frame = rest.partition(b" ")
            self._frames(room.decode(), seat.decode(), frame)
            return
        if kind != b"j":
            log.warning("node message of unknown shape dropped")
            return
        message = orjson.loads(data[1:])
        t = message.get("t")
        if t == "reply":
            request_id, error = message.get("id"), message.get("error")
            future = self._waiting.get(request_id)
            if future is None or future.done():
                late = self._late.pop(request_id, None)
                if late is not None and error is None:
                    late(message.get("ok"))
                return
            if error is not None:
                future.set_exception(RemoteError(error["code"], error["message"], error.get("close"),
                                                 error.get("status", 409)))
                return
            hook = self._hooks.pop(request_id, None)
            try:
                if hook is not None:
                    hook(message.get("ok"))
            except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(exc)
                return
            future.set_result(message.get("ok"))
            return
        handler = self._handlers.get(t)
        if handler is None:
            log.warning("node message of unknown type %s dropped", t)
            return
        result = handler(message)
        if asyncio.iscoroutine(result) or "id" in message:
            task = asyncio.ensure_future(self._answer(message, result))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _answer(self, message: dict[str, Any], result: Any) -> None:
        asker, request_id = message.get("from"), message.get("id")
        try:
            value = await result if asyncio.iscoroutine(result) else result
        except RoomServerError as exc:
            if asker is not None:
                self.tell(asker, {"t": "reply", "id": request_id, "error": {
                    "code": exc.code, "message": exc.message, "status": exc.status,
                    "close": int(c) if (c := getattr(exc, "close", None)) is not None else None}})
            return
        except Exception:  # noqa: BLE001 - the asker gets an error, this node goes on
            log.exception("node request %s failed", message.get("t"))
            if asker is not None:
                self.tell(asker, {"t": "reply", "id": request_id, "error": {
                    "code": "internal_error", "message": "The request failed on another node.", "status": 500}})
            return
        if asker is not None:
            self.tell(asker, {"t": "reply", "id": request_id, "ok": value})
