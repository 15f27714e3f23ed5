"""The socket floor: participants' ``/ws`` (gateway), the rooms this node owns (host), the node bridge.

``setup_signalling`` wires them onto the application and runs their life: connect
the live state (Redis in a cluster) at start, take up the rooms a previous
process left running (one node) or rooms whose owner was lost (cluster), and on
shutdown drain: sockets get 1001 and resume elsewhere or after the restart,
owned rooms are saved and released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from ..core.events import CLUSTER_WIDE, Event, EventBus
from ..domain.outbound import queue_room_end
from ..services import services_of
from ..store import StoreUnavailable, Tx
from .bridge import Bridge
from .roomhost import RoomHost
from .signalling import Gateway

log = logging.getLogger("roomserver.signalling")

SIGNALLING_KEY: web.AppKey[Gateway] = web.AppKey("signalling", Gateway)
STALE_SWEEP_SECONDS = 60.0


def setup_signalling(app: web.Application) -> Gateway:
    svc = services_of(app)
    live = svc.live
    bridge = Bridge(live, svc.settings.cluster.rpc_timeout_seconds)
    host = RoomHost(svc, live, bridge)
    gateway = Gateway(svc, live, bridge, host)
    svc.consultations.on_end = gateway.ended_elsewhere
    svc.consultations.on_withdraw = gateway.invite_withdrawn
    if live.clustered:
        _share_events(svc.events, bridge)
    app[SIGNALLING_KEY] = gateway
    app.router.add_get("/ws", gateway.handle)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await live.start(bridge.receive)
        if not live.clustered:
            adopted = await host.adopt_all()
            if adopted:
                log.info("%d running room(s) taken up again after the restart; their seats may resume", adopted)
        suspects: set[str] = set()
        first_sweep = True
        if not live.clustered:
            try:
                await _sweep_stale(host, suspects, first=True)
                first_sweep = False
            except StoreUnavailable:
                pass  # the sweep task tries again
        tasks = [asyncio.create_task(gateway.sweep()), asyncio.create_task(gateway.heartbeat()),
                 asyncio.create_task(host.retry_parked()),
                 asyncio.create_task(_end_stale_rooms(host, suspects, first_sweep))]
        if live.clustered:
            tasks += [asyncio.create_task(host.take_over_orphans()), asyncio.create_task(host.save_figures())]
        yield
        for task in tasks:
            task.cancel()
        host.cancel_timers()
        await live.close()

    async def on_shutdown(app: web.Application) -> None:
        await gateway.drain()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    return gateway


def _share_events(events: EventBus, bridge: Bridge) -> None:
    """Every node hears the cluster-wide events that happen on any node (the operator dashboard)."""
    def share(event: Event) -> None:
        if event.local and event.kind in CLUSTER_WIDE:
            bridge.tell_all({"t": "event", "kind": event.kind, "room": event.room_id, "data": event.data,
                             "at": event.at, "node": bridge.node})

    def heard(m: dict[str, Any]) -> None:
        if m["kind"] in CLUSTER_WIDE and m["node"] != bridge.node:
            events.deliver(Event(m["kind"], m["room"], m["data"], m["at"], origin=m["node"]))

    events.subscribe(share)
    bridge.on("event", heard)


async def _end_stale_rooms(host: RoomHost, suspects: set[str], first: bool) -> None:
    """Rooms the store says are live but no node runs (a crash, or Redis lost everything): end them.

    At start and then every minute; in a cluster a room must be missing twice in a
    row, so that a node that is just putting its rooms back into Redis is not
    overtaken. A single node's first sweep runs before it takes requests (nothing
    else can be putting rooms back), so nobody sees such a room as live.
    """
    while True:
        try:
            suspects = await _sweep_stale(host, suspects, first)
            first = False
        except (StoreUnavailable, Exception) as exc:  # noqa: BLE001 - try again in a minute
            log.warning("stale-room sweep skipped: %s", getattr(exc, "code", type(exc).__name__))
        await asyncio.sleep(STALE_SWEEP_SECONDS)


async def _sweep_stale(host: RoomHost, suspects: set[str], first: bool) -> set[str]:
    """One sweep; returns the rooms missing this time but not yet ended (the next sweep's suspects)."""
    svc, live = host.services, host.live
    running = set(await live.rooms()) | set(host.rooms)
    live_rows = await svc.store.rooms.list(state="live", limit=10_000)
    missing = {row.id for row in live_rows if row.id not in running}
    stale = missing if (first and not live.clustered) else (missing & suspects)
    for room_id in stale:
        now = int(time.time())
        if await svc.store.write(lambda tx, r=room_id: _end_interrupted(tx, r, now)):
            log.info("a room left live by an interrupted server was ended")
            svc.events.publish("room.ended", room_id, reason="interrupted")
    return missing - stale


def _end_interrupted(tx: Tx, room_id: str, now: int) -> bool:
    if not tx.rooms.end(room_id, reason="interrupted", now=now):
        return False
    tx.reports.consultation_ended(room_id, now, {})
    tx.audit.append(at=now, actor="system", actor_role="system", action="room.ended", room_id=room_id,
                    detail={"reason": "interrupted"})
    queue_room_end(tx, room_id, now)
    return True


__all__ = ["SIGNALLING_KEY", "Gateway", "setup_signalling"]
