"""The experts' desks on this node: the ``/desk/ws`` sockets, and everything they ask the switchboard.

An expert or interpreter signed in at ``/desk`` keeps one socket per tab open,
on whichever node the load balancer chose. Every desk action (online, offline,
availability, accept, decline) and every call from a room goes to the node that
runs the switchboard (``switchboardhost``: this one, or another over the
bridge); what the switchboard decides comes back as messages for an account's
sockets (``to_account``) or for the one socket that accepted (``to_conn``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from functools import partial
from typing import Any

from aiohttp import WSMsgType, web

from ..core import deskprotocol as dp
from ..core.errors import RoomServerError
from ..core.protocol import ProtocolError
from ..core.switchboard import CallError
from ..pages.pageauth import current_staff, same_origin
from ..services import Services, services_of
from ..store import Callback, Tx
from .bridge import RemoteError, Unanswered
from .signalling import Gateway
from .switchboardhost import SwitchboardHost, open_callbacks

log = logging.getLogger("roomserver.ws.desks")

LANGUAGE_LABELS = {"dgs": "Deutsche Gebärdensprache", "ar": "Arabisch", "fa": "Farsi", "tr": "Türkisch",
                   "uk": "Ukrainisch", "ru": "Russisch", "en": "Englisch", "fr": "Französisch", "ku": "Kurdisch",
                   "ti": "Tigrinya", "ps": "Paschtu", "so": "Somali"}
DESK_ROLES = ("expert", "interpreter")


class DeskConn:
    __slots__ = ("ws", "account", "id")

    def __init__(self, ws: web.WebSocketResponse, account: str, conn_id: str) -> None:
        self.ws = ws
        self.account = account
        self.id = conn_id


class Desks:
    """Every desk socket of this node; the switchboard's operations, wherever it runs."""

    def __init__(self, services: Services, rooms: Gateway) -> None:
        self.services = services
        self.rooms = rooms
        self.bridge = rooms.bridge
        self.host = SwitchboardHost(services, rooms.live, rooms.bridge, rooms)
        self.host.desks = self
        self.sockets: dict[str, set[DeskConn]] = {}
        self._by_id: dict[str, DeskConn] = {}
        self._ids = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()
        rooms.desks = self
        rooms.host.presence = self
        self.bridge.on("desk-account", lambda m: self.to_account(m["account"], m["message"]))
        self.bridge.on("desk-conn", lambda m: self.to_conn(m["conn"], m["message"]))
        self.bridge.on("desk-close", lambda m: self._close_local(m["account"]))

    @property
    def node(self) -> str:
        return self.rooms.live.node

    async def switchboard(self, op: str, **args: Any) -> Any:
        """Run a switchboard operation on the node that owns it."""
        for attempt in range(3):
            owner = await self.host.resolve()
            if owner == self.node:
                return await self.host.run(op, args)
            try:
                return await self.bridge.ask(owner, {"t": "sb", "op": op, "args": args})
            except RemoteError as exc:
                if exc.code not in ("not_owner", "moved"):
                    raise CallError(exc.code, exc.message, exc.status) from None
            except Unanswered:
                pass
            await asyncio.sleep(0.2 * (attempt + 1))
        raise RoomServerError("unavailable", "Expert calls cannot be reached right now; try again.", 503)

    # -- called by the room edge ---------------------------------------------------------------------

    async def target_label(self, kind: str, target: str) -> str:
        if kind == "department":
            dept = await self.services.store.directory.department(target)
            if dept is None:
                raise CallError("unknown_department", "There is no such department.", 404)
            return dept.name
        if kind == "language" and target not in await self.services.store.directory.all_languages():
            raise CallError("unknown_language", "No interpreter offers this language.", 404)
        return LANGUAGE_LABELS.get(target, target)

    async def call(self, *, room_id: str, room_title: str, seat: str, identity: str, name: str, kind: str,
                   target: str) -> None:
        """A counsellor's ``call``: ring every available desk of the target on every node (raises CallError)."""
        if kind not in ("department", "language"):
            raise CallError("bad_target", "Call a department or an interpreter language.", 422)
        label = await self.target_label(kind, target)
        await self.switchboard("call", room_id=room_id, room_title=room_title, seat=seat, identity=identity,
                               name=name, kind=kind, target=target, label=label)

    async def cancel(self, call_id: str, seat: str) -> None:
        await self.switchboard("cancel", call=call_id, seat=seat)

    async def callback(self, *, room_id: str, seat: str, identity: str, name: str, call_id: str) -> dict[str, Any]:
        """Leave a callback request for a call nobody took; the department's desks see it."""
        row = await self.services.store.calls.get(call_id)
        if row is None or row.room_id != room_id:
            raise CallError("call_over", "There is no such call in this consultation.", 404)
        if row.state not in ("timed_out", "no_one"):
            raise CallError("call_not_missed", "A callback can only follow a call nobody took.")
        now = int(time.time())

        def unit(tx: Tx) -> Callback:
            callback = tx.calls.add_callback(room_id=room_id, call_id=call_id, kind=row.kind, target=row.target,
                                             requested_by=identity, caller_name=name, at=now)
            tx.audit.append(at=now, actor=identity, action="call.callback_requested", room_id=room_id,
                            subject=callback.id, detail={"call": call_id})
            return callback
        callback = await self.services.store.write(unit)
        await self.switchboard("push_callbacks", kind=row.kind, target=row.target)
        return {"id": callback.id, "call": call_id}

    # presence, from the owners of rooms: experts are busy while in a consultation
    def entered_room(self, identity: str, room_id: str) -> None:
        if self.host.follows(identity):
            self._spawn(self._quietly("entered", identity=identity, room=room_id))

    def left_room(self, identity: str, room_id: str, reason: str) -> None:
        """``reason``: "left" or "timeout" (the desk may offer to go back), "removed" (released)."""
        if self.host.follows(identity):
            self._spawn(self._quietly("left", identity=identity, room=room_id, reason=reason))

    def room_ended(self, room_id: str) -> None:
        self._spawn(self._quietly("room_ended", room=room_id))

    async def _quietly(self, op: str, **args: Any) -> None:
        try:
            await self.switchboard(op, **args)
        except RoomServerError as exc:
            log.warning("switchboard %s not delivered: %s", op, exc.code)

    # -- called by the API ------------------------------------------------------------------------------

    async def push_direct(self, account: str, message: dict[str, Any]) -> int:
        """Send ``message`` (a ``direct-invite``) to every open desk socket of ``account``; how many got it."""
        try:
            return int(await self.switchboard("push", account=account, message=message))
        except RoomServerError:
            return 0

    async def close_account(self, account: str) -> None:
        """Close every desk socket of an account (disabled), on every node."""
        self.bridge.tell_all({"t": "desk-close", "account": account})
        await self._close_local(account)

    async def _close_local(self, account: str) -> None:
        for conn in list(self.sockets.get(account, ())):
            await conn.ws.close()

    async def available(self) -> tuple[dict[str, int], dict[str, int]]:
        """Desks online and available now, per department and per language (the call panel)."""
        try:
            by_dept, by_lang = await self.switchboard("available")
        except RoomServerError:
            return {}, {}
        return dict(by_dept), dict(by_lang)

    async def calls(self) -> list[dict[str, Any]]:
        """Every call the switchboard remembers (the operator dashboard)."""
        try:
            return list(await self.switchboard("calls"))
        except RoomServerError:
            return []

    # -- deliveries from the switchboard ----------------------------------------------------------------

    def to_account(self, account: str, message: dict[str, Any]) -> None:
        for conn in list(self.sockets.get(account, ())):
            self._spawn(self._send(conn, message))

    def to_conn(self, conn_id: str, message: dict[str, Any]) -> None:
        conn = self._by_id.get(conn_id)
        if conn is not None:
            self._spawn(self._send(conn, message))

    async def _send(self, conn: DeskConn, message: dict[str, Any]) -> None:
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_frame(dp.dumpb(message), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- one desk socket --------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        principal = await current_staff(request)
        if principal is None:
            raise RoomServerError("unauthenticated", "Sign in to open your desk.", 401)
        if principal.role not in DESK_ROLES:
            raise RoomServerError("forbidden", "Only experts and interpreters have a desk.", 403)
        if not same_origin(request):
            raise RoomServerError("forbidden", "The desk socket only accepts this site's pages.", 403)
        svc = self.services
        account, languages, dept = await svc.store.read(partial(_desk_of, principal.id))
        if account is None:
            raise RoomServerError("unauthenticated", "Sign in to open your desk.", 401)
        ws = web.WebSocketResponse(heartbeat=svc.settings.signalling.heartbeat_seconds, max_msg_size=8192)
        await ws.prepare(request)
        conn = DeskConn(ws, account.id, f"d{next(self._ids)}")
        desk = {"account_id": account.id, "name": account.display_name, "role": account.role,
                "department_id": account.department_id, "languages": sorted(languages)}
        self.sockets.setdefault(account.id, set()).add(conn)
        self._by_id[conn.id] = conn
        online = False
        try:
            state = await self.switchboard("online", desk=desk, node=self.node)
            online = True
            callbacks = await svc.store.read(partial(open_callbacks, _targets(desk)))
            await self._send(conn, {"type": "desk",
                                    "self": {"name": desk["name"], "role": desk["role"], "department": dept,
                                             "languages": desk["languages"]},
                                    "status": state["status"], "availability": state["availability"],
                                    "in_consultation": state["in_consultation"], "ringing": state["ringing"],
                                    "returns": state["returns"], "callbacks": callbacks})
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._message(conn, msg.data, desk)
        except RoomServerError as exc:
            await self._send(conn, {"type": "error", "code": exc.code, "message": exc.message, "ref": None})
            await ws.close(code=1013, message=b"try again")
        finally:
            self.sockets.get(account.id, set()).discard(conn)
            self._by_id.pop(conn.id, None)
            if online:
                self._spawn(self._quietly("offline", account=account.id, node=self.node))
        return ws

    async def _message(self, conn: DeskConn, data: str | bytes, desk: dict[str, Any]) -> None:
        ref = None
        try:
            msg = dp.parse_desk_message(data)
            if isinstance(msg, dp.DeskPing):
                await self._send(conn, {"type": "pong", **({"id": msg.id} if msg.id is not None else {})})
            elif isinstance(msg, dp.SetAvailability):
                ref = "availability"
                await self.switchboard("availability", account=conn.account, status=msg.status)
            elif isinstance(msg, dp.Accept):
                ref = "accept"
                await self.switchboard("accept", call=msg.call, account=conn.account, node=self.node, conn=conn.id)
            elif isinstance(msg, dp.Decline):
                ref = "decline"
                await self.switchboard("decline", call=msg.call, account=conn.account)
            elif isinstance(msg, dp.Rejoin):
                ref = "rejoin"
                await self.switchboard("rejoin", call=msg.call, account=conn.account, node=self.node, conn=conn.id)
            elif isinstance(msg, dp.CallbackDone):
                ref = "callback-done"
                await self._callback_done(conn, msg.callback, desk)
        except ProtocolError as exc:
            await self._send(conn, exc.to_message())
        except RoomServerError as exc:
            await self._send(conn, {"type": "error", "code": exc.code, "message": exc.message, "ref": ref})

    async def _callback_done(self, conn: DeskConn, callback_id: str, desk: dict[str, Any]) -> None:
        store = self.services.store
        cb = await store.calls.callback(callback_id)
        if cb is None or (cb.kind, cb.target) not in _targets(desk):
            raise CallError("not_found", "There is no such callback request for you.", 404)
        now = self.services.now()

        def unit(tx: Tx) -> bool:
            done = tx.calls.callback_done(callback_id, conn.account, now)
            if done:
                tx.audit.append(at=now, actor=conn.account, action="call.callback_done", room_id=cb.room_id,
                                subject=callback_id)
            return done
        await store.write(unit)
        await self.switchboard("push_callbacks", kind=cb.kind, target=cb.target)


def _desk_of(account_id: str, tx: Tx) -> tuple[Any, frozenset[str], str | None]:
    account = tx.directory.account(account_id)
    if account is None:
        return None, frozenset(), None
    dept = tx.directory.department(account.department_id) if account.department_id else None
    return account, tx.directory.languages(account_id), dept.name if dept else None


def _targets(desk: dict[str, Any]) -> list[tuple[str, str | None]]:
    """What a desk serves: its department (experts) or its languages (interpreters)."""
    if desk["role"] == "expert":
        return [("department", desk["department_id"])] if desk["department_id"] else []
    return [("language", lang) for lang in desk["languages"]]


DESKS_KEY: web.AppKey[Desks] = web.AppKey("desks", Desks)


def setup_desks(app: web.Application) -> Desks:
    from . import SIGNALLING_KEY
    desks = Desks(services_of(app), app[SIGNALLING_KEY])
    app[DESKS_KEY] = desks
    app.router.add_get("/desk/ws", desks.handle)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(_watch(desks))
        yield
        task.cancel()

    async def on_shutdown(app: web.Application) -> None:
        await desks.host.release()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    return desks


async def _watch(desks: Desks) -> None:
    """Every second: the switchboard's owner forgets desks on lost nodes; a cluster node takes an orphaned
    switchboard over (its calls keep ringing)."""
    live = desks.rooms.live
    while True:
        await asyncio.sleep(1.0)
        if not live.healthy:
            continue
        try:
            if desks.host.board is not None:
                await desks.host.check_nodes()
            elif live.clustered and await live.owner("switchboard") is None:
                await desks.host.resolve()
        except RoomServerError as exc:
            log.warning("switchboard watch skipped: %s", exc.code)
        except Exception:  # noqa: BLE001 - try again in a second
            log.exception("switchboard watch failed")
