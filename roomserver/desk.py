"""The experts' desks: the ``/desk/ws`` socket and the execution of switchboard effects.

An expert or interpreter signed in at ``/desk`` keeps one socket per tab open
here. The ``Switchboard`` (calls.py) decides who rings; this edge makes desks
ring, stop ringing, hands the winner a single-use patch-in token, tells the
calling counsellor through the signalling socket, and persists every call
event and its audit record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from . import deskprotocol as dp
from . import protocol as proto
from .auth import Principal
from .calls import (Availability, CallError, Desk, DeskState, Effect, Patch, Record, Ring, Status, StopRing,
                    Switchboard)
from .errors import RoomServerError
from .pageauth import current_staff, same_origin
from .protocol import ProtocolError
from .roles import Role
from .services import Services, services_of
from .signalling import SIGNALLING_KEY, Signalling

log = logging.getLogger("roomserver.desk")

SWITCHBOARD = Principal(kind="system", id="switchboard", role="system", display_name="switchboard")
LANGUAGE_LABELS = {"dgs": "Deutsche Gebärdensprache", "ar": "Arabisch", "fa": "Farsi", "tr": "Türkisch",
                   "uk": "Ukrainisch", "ru": "Russisch", "en": "Englisch", "fr": "Französisch", "ku": "Kurdisch",
                   "ti": "Tigrinya", "ps": "Paschtu", "so": "Somali"}
DESK_ROLES = ("expert", "interpreter")


class DeskConn:
    __slots__ = ("ws", "account")

    def __init__(self, ws: web.WebSocketResponse, account: str) -> None:
        self.ws = ws
        self.account = account


class Desks:
    """Every desk socket of this server, and the switchboard they answer."""

    def __init__(self, services: Services, signalling: Signalling) -> None:
        self.services = services
        self.signalling = signalling
        self.board = Switchboard(services.settings.calls.ring_timeout_seconds)
        self.sockets: dict[str, set[DeskConn]] = {}
        self._timer: asyncio.TimerHandle | None = None
        signalling.desks = self

    # -- called by the signalling edge -------------------------------------------------

    def target_label(self, kind: str, target: str) -> str:
        if kind == "department":
            dept = self.services.store.directory.department(target)
            if dept is None:
                raise CallError("unknown_department", "There is no such department.", 404)
            return dept.name
        if target not in self.services.store.directory.all_languages():
            raise CallError("unknown_language", "No interpreter offers this language.", 404)
        return LANGUAGE_LABELS.get(target, target)

    async def call(self, *, room_id: str, room_title: str, seat: str, identity: str, name: str, kind: str,
                   target: str) -> None:
        """A counsellor's ``call``: ring, persist the request, tell the counsellor (raises CallError)."""
        now = time.time()
        label = self.target_label(kind, target)
        call, effects = self.board.call(room_id=room_id, room_title=room_title, caller_seat=seat,
                                        caller_identity=identity, caller_name=name, kind=kind, target=target,
                                        target_label=label, now=now)
        self.services.store.calls.requested(call_id=call.id, room_id=room_id, requested_by=identity, kind=kind,
                                            target=target, at=int(now))
        await self.execute(effects)

    async def cancel(self, call_id: str, seat: str) -> None:
        await self.execute(self.board.cancel(call_id, seat, time.time()))

    async def callback(self, *, room_id: str, seat: str, identity: str, name: str, call_id: str) -> dict[str, Any]:
        """Leave a callback request for a call nobody took; the department's desks see it."""
        row = self.services.store.calls.get(call_id)
        if row is None or row.room_id != room_id:
            raise CallError("call_over", "There is no such call in this consultation.", 404)
        if row.state not in ("timed_out", "no_one"):
            raise CallError("call_not_missed", "A callback can only follow a call nobody took.")
        callback = self.services.store.calls.add_callback(room_id=room_id, call_id=call_id, kind=row.kind,
                                                          target=row.target, requested_by=identity, caller_name=name,
                                                          at=int(time.time()))
        self._audit("call.callback_requested", identity, room_id, callback.id, {"call": call_id})
        await self._push_callbacks(row.kind, row.target)
        return {"id": callback.id, "call": call_id}

    async def push_direct(self, account: str, message: dict[str, Any]) -> int:
        """Send ``message`` (a ``direct-invite``) to every open desk socket of ``account``; how many got it."""
        conns = [conn for conn in self.sockets.get(account, ()) if not conn.ws.closed]
        for conn in conns:
            await self._send(conn, message)
        return len(conns)

    def entered_room(self, identity: str, room_id: str) -> None:
        self._spawn(self.execute(self.board.entered_room(identity, room_id)))

    def left_room(self, identity: str, room_id: str) -> None:
        self._spawn(self.execute(self.board.left_room(identity, room_id, time.time())))

    def room_ended(self, room_id: str) -> None:
        self._spawn(self.execute(self.board.room_ended(room_id, time.time())))

    # -- effects ----------------------------------------------------------------------

    async def execute(self, effects: list[Effect], accepting: DeskConn | None = None) -> None:
        store = self.services.store
        for effect in effects:
            if isinstance(effect, Ring):
                await self._to_account(effect.account, {"type": "ring", "call": effect.call})
            elif isinstance(effect, StopRing):
                await self._to_account(effect.account, {"type": "ring-stop", "call": effect.call_id,
                                                        "reason": effect.reason})
            elif isinstance(effect, Patch):
                await self._patch(effect, accepting)
            elif isinstance(effect, Status):
                await self.signalling.send_to_seat(effect.room_id, effect.seat, proto.call_status(effect.call))
            elif isinstance(effect, DeskState):
                await self._to_account(effect.account, {"type": "presence", "status": effect.status,
                                                        "availability": effect.availability,
                                                        "in_consultation": effect.in_room})
            elif isinstance(effect, Record):
                if effect.event != "requested":  # persisted with the call's details in call()
                    store.calls.event(effect.call_id, effect.event, int(effect.at), effect.account)
                row = store.calls.get(effect.call_id)
                room_id = row.room_id if row else None
                self._audit(f"call.{effect.event}", effect.account or "system", room_id, effect.call_id, None)
                data: dict[str, Any] = {"call": effect.call_id, "target_kind": row.kind if row else None}
                if effect.event == "accepted" and row is not None:
                    data["seconds_to_accept"] = max(0.0, effect.at - row.requested_at)
                self.services.events.publish(f"call.{effect.event}", room_id, **data)
        self._schedule()

    async def _patch(self, effect: Patch, accepting: DeskConn | None) -> None:
        """The winner gets a single-use token for the room, on the desk where they accepted."""
        svc = self.services
        try:
            invite = svc.consultations.invite(SWITCHBOARD, effect.room_id, role=Role(effect.role), name=effect.name,
                                              lifetime=None, single_use=True, now=svc.now(),
                                              identity=effect.account, dept=effect.department_id)
        except RoomServerError as exc:
            message: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message, "ref": "accept"}
        else:
            message = {"type": "accepted", "call": effect.call_id, "room": effect.room_id,
                       "url": f"/room/{effect.room_id}#{invite.token}", "expires_at": invite.expires_at}
        targets = [accepting] if accepting is not None else list(self.sockets.get(effect.account, ()))
        for conn in targets:
            await self._send(conn, message)

    def _audit(self, action: str, actor: str, room_id: str | None, subject: str | None,
               detail: dict[str, Any] | None) -> None:
        self.services.store.audit.append(at=self.services.now(), actor=actor, action=action, room_id=room_id,
                                         subject=subject, detail=detail)

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.board.next_deadline()
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, deadline - time.time()) + 0.01, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._spawn(self.execute(self.board.tick(time.time())))

    def _spawn(self, coro: Any) -> None:
        self.signalling._spawn(coro)

    async def _to_account(self, account: str, message: dict[str, Any]) -> None:
        for conn in list(self.sockets.get(account, ())):
            await self._send(conn, message)

    async def _send(self, conn: DeskConn, message: dict[str, Any]) -> None:
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_frame(dp.dumpb(message), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            pass

    async def _push_callbacks(self, kind: str, target: str) -> None:
        for account, desk in self.board.desks.items():
            if desk.serves(kind, target):
                await self._to_account(account, {"type": "callbacks", "callbacks": self.callbacks_for(desk)})

    def callbacks_for(self, desk: Desk) -> list[dict[str, Any]]:
        store = self.services.store
        out = []
        targets = [("department", desk.department_id)] if desk.role == "expert" and desk.department_id else \
            [("language", lang) for lang in sorted(desk.languages)]
        for kind, target in targets:
            for cb in store.calls.open_callbacks(kind, target):
                room = store.rooms.get(cb.room_id)
                out.append({"id": cb.id, "room_title": room.title if room else "", "kind": kind, "target": target,
                            "caller_name": cb.caller_name,
                            "created_at": cb.created_at})
        return out

    # -- one desk socket --------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        principal = current_staff(request)
        if principal is None:
            raise RoomServerError("unauthenticated", "Sign in to open your desk.", 401)
        if principal.role not in DESK_ROLES:
            raise RoomServerError("forbidden", "Only experts and interpreters have a desk.", 403)
        if not same_origin(request):
            raise RoomServerError("forbidden", "The desk socket only accepts this site's pages.", 403)
        svc = self.services
        account = svc.store.directory.account(principal.id)
        if account is None:
            raise RoomServerError("unauthenticated", "Sign in to open your desk.", 401)
        ws = web.WebSocketResponse(heartbeat=svc.settings.signalling.heartbeat_seconds, max_msg_size=8192)
        await ws.prepare(request)
        conn = DeskConn(ws, account.id)
        desk = Desk(account.id, account.display_name, account.role, account.department_id,
                    svc.store.directory.languages(account.id))
        self.sockets.setdefault(account.id, set()).add(conn)
        try:
            effects = self.board.desk_online(desk, time.time())
            await self._send(conn, self._hello(account.id))
            await self.execute(effects)
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._message(conn, msg.data)
        finally:
            self.sockets.get(account.id, set()).discard(conn)
            await self.execute(self.board.desk_offline(account.id))
        return ws

    def _hello(self, account: str) -> dict[str, Any]:
        desk = self.board.desks[account]
        dept = self.services.store.directory.department(desk.department_id) if desk.department_id else None
        return {"type": "desk",
                "self": {"name": desk.name, "role": desk.role, "department": dept.name if dept else None,
                         "languages": sorted(desk.languages)},
                "status": desk.status.value, "availability": desk.availability.value,
                "in_consultation": desk.in_room is not None,
                "ringing": self.board.ringing_for(account), "callbacks": self.callbacks_for(desk)}

    async def _message(self, conn: DeskConn, data: str | bytes) -> None:
        now = time.time()
        ref = None
        try:
            msg = dp.parse_desk_message(data)
            if isinstance(msg, dp.DeskPing):
                await self._send(conn, {"type": "pong", **({"id": msg.id} if msg.id is not None else {})})
            elif isinstance(msg, dp.SetAvailability):
                ref = "availability"
                await self.execute(self.board.set_availability(conn.account, Availability(msg.status), now))
            elif isinstance(msg, dp.Accept):
                ref = "accept"
                await self.execute(self.board.accept(msg.call, conn.account, now), accepting=conn)
            elif isinstance(msg, dp.Decline):
                ref = "decline"
                await self.execute(self.board.decline(msg.call, conn.account, now))
            elif isinstance(msg, dp.CallbackDone):
                ref = "callback-done"
                await self._callback_done(conn, msg.callback)
        except ProtocolError as exc:
            await self._send(conn, exc.to_message())
        except RoomServerError as exc:
            await self._send(conn, {"type": "error", "code": exc.code, "message": exc.message, "ref": ref})

    async def _callback_done(self, conn: DeskConn, callback_id: str) -> None:
        store = self.services.store
        cb = store.calls.callback(callback_id)
        desk = self.board.desks.get(conn.account)
        if cb is None or desk is None or not desk.serves(cb.kind, cb.target):
            raise CallError("not_found", "There is no such callback request for you.", 404)
        if store.calls.callback_done(callback_id, conn.account, self.services.now()):
            self._audit("call.callback_done", conn.account, cb.room_id, callback_id, None)
        await self._push_callbacks(cb.kind, cb.target)


DESKS_KEY: web.AppKey[Desks] = web.AppKey("desks", Desks)


def setup_desks(app: web.Application) -> Desks:
    desks = Desks(services_of(app), app[SIGNALLING_KEY])
    app[DESKS_KEY] = desks
    app.router.add_get("/desk/ws", desks.handle)
    return desks
