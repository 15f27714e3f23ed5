"""The expert-call switchboard, on the one node that owns it (``live`` key ``switchboard``).

All desks of the cluster and every ringing call live in one pure ``Switchboard``
(``core/switchboard.py``), run here one operation at a time: a call rings every
available desk of the department on every node, and of two accepts at the same
instant exactly one wins — the operations are ordered, whichever nodes they
came from. After each operation the switchboard's snapshot is saved, so that
when its node dies another node takes it over with the same calls ringing.

Effects are executed here: desks ring and stop on whichever node holds their
sockets (``desk_nodes``), the winner gets a single-use patch-in token on the
socket that accepted, the counsellor's room hears how the call stands, and
every call event is persisted and audited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from ..core import protocol as proto
from ..core import switchboardstate
from ..core.errors import RoomServerError
from ..core.roles import Role
from ..core.switchboard import (
    Availability,
    CallError,
    Desk,
    DeskState,
    Effect,
    Patch,
    Record,
    Returns,
    Ring,
    Status,
    StopRing,
    Switchboard,
)
from ..domain.auth import Principal
from ..live import SWITCHBOARD, Live, LiveUnavailable, NotOwner
from ..services import Services
from ..store import CallRow, Tx
from .bridge import Bridge

if TYPE_CHECKING:
    from .desks import Desks
    from .signalling import Gateway

log = logging.getLogger("roomserver.switchboard")

PRINCIPAL = Principal(kind="system", id="switchboard", role="system", display_name="switchboard")


class SwitchboardHost:
    """Runs the switchboard when this node owns it."""

    def __init__(self, services: Services, live: Live, bridge: Bridge, rooms: Gateway) -> None:
        self.services = services
        self.live = live
        self.bridge = bridge
        self.rooms = rooms  # the call's status goes to the counsellor's seat through the room's owner
        self.desks: Desks | None = None
        self.board: Switchboard | None = None
        self.desk_nodes: dict[str, dict[str, int]] = {}  # account -> node -> open desk sockets there
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._adopting: asyncio.Future[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        bridge.on("sb", self._remote)

    @property
    def node(self) -> str:
        return self.live.node

    # -- ownership ---------------------------------------------------------------------------------

    async def resolve(self) -> str:
        for _ in range(8):
            if self.board is not None:
                return self.node
            owner = await self.live.owner(SWITCHBOARD)
            if owner is not None and owner != self.node:
                return owner
            if owner == self.node or await self.live.claim(SWITCHBOARD):
                await self.adopt()
                return self.node
            await asyncio.sleep(0.05)
        raise RoomServerError("unavailable", "Expert calls cannot be reached right now; try again.", 503)

    async def adopt(self) -> None:
        if self.board is not None:
            return
        if self._adopting is not None:
            await self._adopting
            return
        self._adopting = asyncio.get_running_loop().create_future()
        try:
            data = await self.live.load(SWITCHBOARD)
            if data is not None:
                loaded = orjson.loads(data)
                board = switchboardstate.load(loaded)
                self.desk_nodes = {a: dict(n) for a, n in loaded.get("desk_nodes", {}).items()}
            else:
                board = Switchboard(self.services.settings.calls.ring_timeout_seconds)
                self.desk_nodes = {}
            board.timeout = self.services.settings.calls.ring_timeout_seconds
            self.board = board
            async with self._lock:
                await self._forget_lost_nodes()
                await self._save()
                self._schedule()
        finally:
            self._adopting.set_result(None)
            self._adopting = None

    async def check_nodes(self) -> None:
        """The owner, every second: desk sockets on a lost node are gone."""
        if self.board is None:
            return
        async with self._lock:
            if await self._forget_lost_nodes():
                await self._save()

    async def _forget_lost_nodes(self) -> bool:
        assert self.board is not None
        alive = await self.live.nodes()
        changed = False
        for account, nodes in list(self.desk_nodes.items()):
            for node in [n for n in nodes if n not in alive]:
                for _ in range(nodes.pop(node)):
                    self.board.desk_offline(account)
                changed = True
            if not nodes:
                del self.desk_nodes[account]
        return changed

    async def release(self) -> None:
        """Draining: save and give the switchboard up so another node takes it at once."""
        if self.board is None:
            return
        async with self._lock:
            try:
                await self._save()
                await self.live.release(SWITCHBOARD)
            except RoomServerError:
                pass
            self._drop()

    def _drop(self) -> None:
        self.board = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- operations (run on the owner) ---------------------------------------------------------------

    def follows(self, identity: str) -> bool:
        """Whether an ``entered``/``left`` for ``identity`` is worth sending to the owner.

        False only when this node runs the switchboard, no operation is under way or queued, and
        the identity has no desk: exactly what ``run`` would find if the operation went first,
        which it may anyway. Saves a task and the lock for every join and leave of an expert or
        interpreter with no desk here (one invited by link).
        """
        board = self.board
        return board is None or self._lock.locked() or identity in board.desks

    async def run(self, op: str, args: dict[str, Any]) -> Any:
        """One switchboard operation, in order with all others; ``CallError`` for a refusal."""
        if self.board is None:
            raise RoomServerError("not_owner", "This node does not run the switchboard.", 421)
        async with self._lock:  # in order with the others: a desk coming online just before counts
            board, now = self.board, time.time()
            if op in ("entered", "left") and args["identity"] not in board.desks:
                # Not on a desk (an expert invited by link, say): the board has nothing to follow,
                # so nothing to save either — no store write for every such join and leave.
                return None
            result: Any = None
            effects: list[Effect] = []
            accepting: tuple[str, str] | None = None
            if op == "online":
                d = args["desk"]
                desk = Desk(d["account_id"], d["name"], d["role"], d["department_id"], frozenset(d["languages"]))
                nodes = self.desk_nodes.setdefault(desk.account_id, {})
                nodes[args["node"]] = nodes.get(args["node"], 0) + 1
                effects = board.desk_online(desk, now)
                known = board.desks[desk.account_id]
                result = {"status": known.status.value, "availability": known.availability.value,
                          "in_consultation": known.in_room is not None,
                          "ringing": board.ringing_for(desk.account_id),
                          "returns": board.returns_for(desk.account_id)}
            elif op == "offline":
                nodes = self.desk_nodes.get(args["account"], {})
                if nodes.get(args["node"], 0) > 0:
                    nodes[args["node"]] -= 1
                    if not nodes[args["node"]]:
                        del nodes[args["node"]]
                    effects = board.desk_offline(args["account"])
            elif op == "availability":
                effects = board.set_availability(args["account"], Availability(args["status"]), now)
            elif op == "accept":
                effects = board.accept(args["call"], args["account"], now)
                accepting = (args["node"], args["conn"])
            elif op == "decline":
                effects = board.decline(args["call"], args["account"], now)
            elif op == "rejoin":
                effects = board.rejoin(args["call"], args["account"], now)
                accepting = (args["node"], args["conn"])
            elif op == "call":
                call, effects = board.call(room_id=args["room_id"], room_title=args["room_title"],
                                           caller_seat=args["seat"], caller_identity=args["identity"],
                                           caller_name=args["name"], kind=args["kind"], target=args["target"],
                                           target_label=args["label"], now=now)
                await self.services.store.calls.requested(call_id=call.id, room_id=args["room_id"],
                                                          requested_by=args["identity"], kind=args["kind"],
                                                          target=args["target"], at=int(now))
            elif op == "cancel":
                effects = board.cancel(args["call"], args["seat"], now)
            elif op == "entered":
                effects = board.entered_room(args["identity"], args["room"])
            elif op == "left":
                effects = board.left_room(args["identity"], args["room"], now, args.get("reason", "left"))
            elif op == "room_ended":
                effects = board.room_ended(args["room"], now)
            elif op == "push":
                return self._push(args["account"], args["message"])
            elif op == "push_callbacks":
                await self._push_callbacks(args["kind"], args["target"])
                return None
            elif op == "available":
                return switchboardstate.available(board)
            elif op == "calls":
                return [self._call_view(c) for c in board.calls.values()]
            elif op == "desk":
                desk = board.desks.get(args["account"])
                return None if desk is None else {"languages": sorted(desk.languages), "role": desk.role,
                                                   "department_id": desk.department_id}
            else:
                raise RoomServerError("bad_request", f"Unknown switchboard operation {op}.", 400)
            await self._save()
            await self._execute(effects, accepting)
            return result

    def _call_view(self, call: Any) -> dict[str, Any]:
        return {"id": call.id, "room_id": call.room_id, "state": call.state.value, "kind": call.kind,
                "target": call.target, "target_label": call.target_label, "requested_at": call.requested_at,
                "ringing": len(call.rung - call.declined) if call.state.value == "ringing" else 0}

    async def _save(self) -> None:
        assert self.board is not None
        data = switchboardstate.dump(self.board)
        data["desk_nodes"] = self.desk_nodes
        try:
            await self.live.persist(SWITCHBOARD, orjson.dumps(data), None)
        except NotOwner:
            log.warning("the switchboard was taken over by another node")
            self._drop()
            raise RoomServerError("moved", "The switchboard moved to another node; try again.", 503) from None
        except LiveUnavailable:
            pass  # saved again with the next operation once Redis is back

    # -- effects -------------------------------------------------------------------------------------

    async def _execute(self, effects: list[Effect], accepting: tuple[str, str] | None = None) -> None:
        store = self.services.store
        for effect in effects:
            if isinstance(effect, Ring):
                self._to_account(effect.account, {"type": "ring", "call": effect.call})
            elif isinstance(effect, StopRing):
                self._to_account(effect.account, {"type": "ring-stop", "call": effect.call_id,
                                                  "reason": effect.reason})
            elif isinstance(effect, Patch):
                await self._patch(effect, accepting)
            elif isinstance(effect, Status):
                await self.rooms.send_to_seat(effect.room_id, effect.seat, proto.call_status(effect.call))
            elif isinstance(effect, DeskState):
                self._to_account(effect.account, {"type": "presence", "status": effect.status,
                                                  "availability": effect.availability,
                                                  "in_consultation": effect.in_room})
            elif isinstance(effect, Returns):
                self._to_account(effect.account, {"type": "returns", "calls": effect.calls})
            elif isinstance(effect, Record):
                row = await store.write(partial(_record_call_event, effect, self.services.now()))
                room_id = row.room_id if row else None
                data: dict[str, Any] = {"call": effect.call_id, "target_kind": row.kind if row else None}
                if effect.event == "accepted" and row is not None:
                    data["seconds_to_accept"] = max(0.0, effect.at - row.requested_at)
                self.services.events.publish(f"call.{effect.event}", room_id, **data)
        self._schedule()

    async def _patch(self, effect: Patch, accepting: tuple[str, str] | None) -> None:
        """The winner (or a rejoining expert) gets a fresh single-use token, on the desk socket that asked."""
        svc = self.services
        try:
            invite = await svc.consultations.invite(PRINCIPAL, effect.room_id, role=Role(effect.role), name=effect.name,
                                                    lifetime=None, single_use=True, now=svc.now(),
                                                    identity=effect.account, dept=effect.department_id)
        except RoomServerError as exc:
            message: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message,
                                       "ref": "rejoin" if effect.rejoin else "accept"}
        else:
            message = {"type": "accepted", "call": effect.call_id, "room": effect.room_id,
                       "url": f"/room/{effect.room_id}#{invite.token}", "expires_at": invite.expires_at}
        if accepting is None:
            self._to_account(effect.account, message)
            return
        node, conn = accepting
        if node == self.node:
            if self.desks is not None:
                self.desks.to_conn(conn, message)
        else:
            self.bridge.tell(node, {"t": "desk-conn", "conn": conn, "message": message})

    def _to_account(self, account: str, message: dict[str, Any]) -> int:
        """Every desk socket of ``account``, on every node; how many sockets that is."""
        count = 0
        for node, sockets in self.desk_nodes.get(account, {}).items():
            count += sockets
            if node == self.node:
                if self.desks is not None:
                    self.desks.to_account(account, message)
            else:
                self.bridge.tell(node, {"t": "desk-account", "account": account, "message": message})
        return count

    def _push(self, account: str, message: dict[str, Any]) -> int:
        return self._to_account(account, message)

    async def _push_callbacks(self, kind: str, target: str) -> None:
        assert self.board is not None
        for account, desk in self.board.desks.items():
            if desk.serves(kind, target):
                targets = [("department", desk.department_id)] if desk.role == "expert" and desk.department_id \
                    else [("language", lang) for lang in sorted(desk.languages)]
                callbacks = await self.services.store.read(partial(open_callbacks, targets))
                self._to_account(account, {"type": "callbacks", "callbacks": callbacks})

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.board.next_deadline() if self.board is not None else None
        if deadline is not None:
            delay = max(0.0, deadline - time.time()) + 0.01
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self._run_tick())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _run_tick(self) -> None:
        if self.board is None:
            return
        async with self._lock:
            if self.board is None:
                return
            effects = self.board.tick(time.time())
            if effects:
                await self._save()
            await self._execute(effects)

    async def _remote(self, m: dict[str, Any]) -> Any:
        return await self.run(m["op"], m["args"])


def _record_call_event(effect: Record, now: int, tx: Tx) -> CallRow | None:
    """A unit of work: a call event, the call's new state, and its audit event, in one commit."""
    if effect.event != "requested":  # persisted with the call's details when it was placed
        tx.calls.event(effect.call_id, effect.event, int(effect.at), effect.account)
    row = tx.calls.get(effect.call_id)
    tx.audit.append(at=now, actor=effect.account or "system", action=f"call.{effect.event}",
                    room_id=row.room_id if row else None, subject=effect.call_id)
    return row


def open_callbacks(targets: list[tuple[str, str | None]], tx: Tx) -> list[dict[str, Any]]:
    """The open callback requests for a desk's department or languages, as the desk shows them."""
    out = []
    for kind, target in targets:
        for cb in tx.calls.open_callbacks(kind, target):
            room = tx.rooms.get(cb.room_id)
            out.append({"id": cb.id, "room_title": room.title if room else "", "kind": kind, "target": target,
                        "caller_name": cb.caller_name, "created_at": cb.created_at})
    return out


__all__ = ["SwitchboardHost", "CallError", "open_callbacks"]
