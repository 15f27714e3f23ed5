"""The operator dashboard: every live room's metadata and health, live, with no media and no way in.

  GET  /operator                                  the page (operators only; anonymous → sign-in)
  GET  /operator/feed                             Server-Sent Events: ``snapshot`` on connect and
                                                  after every change, ``event`` for the event list
  POST /operator/rooms/{room_id}/end              end a live room (X-CSRF-Token), audited
  POST /operator/rooms/{room_id}/seats/{seat}/remove   remove one participant (X-CSRF-Token), audited
  GET  /operator/consents?room=                   the newest consents to the citizens' data notice,
                                                  each with the notice version it was given to

Operators see metadata only: roles, short seat ids, connection state, the figures
the clients report — never names, identities or content. The feed hears the
domain event bus (``events.py``) and reads the live rooms from the signalling hub;
it never reaches into sockets. Snapshots are coalesced: a burst of events (or
stats reports) produces one snapshot per ``SNAPSHOT_DELAY``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

from aiohttp import web

from ..core.errors import RoomServerError
from ..core.events import Event
from ..core.seat import iso
from ..domain.auth import Principal
from ..pages import pageauth
from ..pages.notice import build as build_notice
from ..pages.render import render
from ..services import Services, services_of
from ..ws import SIGNALLING_KEY, Gateway

log = logging.getLogger("roomserver.ops.monitor")

OPERATOR_ROLES = ("operator",)
SNAPSHOT_DELAY = 0.25  # seconds: changes within this window share one snapshot
KEEPALIVE_SECONDS = 15.0
RECENT_EVENTS = 100
QUEUE_LIMIT = 256  # per feed; a feed that cannot keep up is closed (the page reconnects)
# Events the dashboard lists (stats and socket closes only refresh the figures).
LISTED = frozenset({"room.started", "room.ended", "participant.waiting", "participant.joined",
                    "participant.left", "participant.reconnecting", "participant.resumed",
                    "participant.admitted", "participant.denied", "participant.removed", "call.requested",
                    "call.rung", "call.accepted", "call.declined", "call.timed_out", "call.cancelled",
                    "call.no_one", "call.rejoined"})
_EVENT_FIELDS = ("seat", "role", "reason", "call", "target_kind")


def _figures(seat: Any) -> dict[str, Any]:
    """A seat's reported figures: the worst round-trip and loss, the summed bitrate, the path (relay first)."""
    rtts = [s.rtt_ms for s in seat.stats.values() if s.rtt_ms is not None]
    losses = [s.loss for s in seat.stats.values() if s.loss is not None]
    rates = [s.bitrate_kbps for s in seat.stats.values() if s.bitrate_kbps is not None]
    paths = {s.candidate_type for s in seat.stats.values() if s.candidate_type is not None}
    return {"rtt_ms": round(max(rtts), 1) if rtts else None,
            "loss": round(max(losses), 4) if losses else None,
            "bitrate_kbps": round(sum(rates), 1) if rates else None,
            # The path to the operator's eye: "relay" as soon as one connection goes through TURN.
            "candidate_type": next((p for p in ("relay", "srflx", "prflx", "host") if p in paths), None),
            "peers": {peer: s.as_dict() for peer, s in seat.stats.items()},
            "at": iso(seat.stats_at)}


class Monitor:
    """Builds snapshots of the live rooms and pushes them, with the event list, to every open feed."""

    def __init__(self, services: Services, signalling: Gateway) -> None:
        self.services = services
        self.signalling = signalling
        self.feeds: set[asyncio.Queue[str | None]] = set()
        # The listed events, "at" still in UNIX seconds: formatted only when a dashboard asks
        # (every join and leave passes here, mostly with no dashboard open).
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self.started: dict[str, float] = {}  # room id -> when its first participant entered
        self.titles: dict[str, str] = {}  # room id -> title, for the events of rooms that ended
        self.alerts: dict[str, dict[str, Any]] = {}  # department -> its answer-rate alert (ops/alerts.py)
        self._pending: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        services.events.subscribe(self.on_event)

    # -- what the dashboard shows ----------------------------------------------------

    async def snapshot(self) -> dict[str, Any]:
        rooms = []
        calls_by_room: dict[str, list[dict[str, Any]]] = {}
        desks = self.signalling.desks
        if desks is not None:
            for call in await desks.calls():
                calls_by_room.setdefault(call["room_id"], []).append({
                    "id": call["id"], "state": call["state"], "kind": call["kind"], "target": call["target"],
                    "target_label": call["target_label"], "requested_at": iso(call["requested_at"]),
                    "ringing": call["ringing"]})
        for room in await self.signalling.cluster_rooms():
            if room.ended:
                continue
            seats = list(room.seats.values())
            by_role: dict[str, int] = {}
            for seat in seats:
                if seat.admitted:
                    by_role[seat.role.value] = by_role.get(seat.role.value, 0) + 1
            waiting = sum(1 for s in seats if not s.admitted)
            started = self.started.get(room.id) or min((s.joined_at for s in seats), default=None)
            if any(s.admitted and s.online for s in seats):
                state = "live"
            elif any(s.admitted for s in seats):
                state = "reconnecting"
            elif waiting:
                state = "waiting"
            else:
                state = "empty"
            rooms.append({
                "id": room.id, "title": room.title, "state": state, "started_at": iso(started),
                "ends_at": iso(room.ends_at), "by_role": by_role, "waiting": waiting,
                "participants": [{"seat": s.id, "role": s.role.value, "status": s.status.value,
                                  "connection": s.connection.value, "joined_at": iso(s.joined_at),
                                  "figures": _figures(s)} for s in seats],
                "calls": calls_by_room.get(room.id, []),
            })
        rooms.sort(key=lambda r: (r["started_at"] or "", r["id"]))
        return {"now": iso(time.time()), "rooms": rooms, "events": [{**e, "at": iso(e["at"])} for e in self.recent],
                "alerts": sorted(self.alerts.values(), key=lambda a: a["label"])}

    # -- the event bus ----------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """A subscriber on the bus: quick, never blocks (it only queues)."""
        if event.kind == "room.started" and event.room_id:
            self.started[event.room_id] = event.at
        elif event.kind == "room.ended" and event.room_id:
            self.started.pop(event.room_id, None)
            if len(self.titles) > 4 * RECENT_EVENTS:  # bounded: only recent events need them
                self.titles.clear()
        if event.kind == "alert.answer_rate_low":
            self.alerts[event.data["department"]] = {k: event.data.get(k) for k in (
                "department", "label", "answer_rate", "calls", "window_minutes")} | {"at": iso(event.at)}
        elif event.kind == "alert.answer_rate_recovered":
            self.alerts.pop(event.data.get("department", ""), None)
        if event.kind in LISTED:
            item = {"kind": event.kind, "room": event.room_id, "at": event.at,
                    **{k: event.data[k] for k in _EVENT_FIELDS if event.data.get(k) is not None}}
            if event.room_id:
                room = self.signalling.room(event.room_id)
                title = room.title if room is not None else self.titles.get(event.room_id)
                if title:
                    item["title"] = title
                    self.titles[event.room_id] = title
            self.recent.append(item)
            if self.feeds:
                self._broadcast("event", {**item, "at": iso(event.at)})
        self._schedule_snapshot()

    async def refresh_periodically(self, interval: float = 2.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self._schedule_snapshot()

    def _schedule_snapshot(self) -> None:
        if self._pending is not None or not self.feeds:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pending = loop.call_later(SNAPSHOT_DELAY, self._push_snapshot)

    def _push_snapshot(self) -> None:
        task = asyncio.ensure_future(self._send_snapshot())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_snapshot(self) -> None:
        try:
            snapshot = await self.snapshot()
        finally:
            self._pending = None
        self._broadcast("snapshot", snapshot)

    def _broadcast(self, name: str, data: dict[str, Any]) -> None:
        frame = _sse(name, data)
        for queue in list(self.feeds):
            if queue.qsize() >= QUEUE_LIMIT:
                self.feeds.discard(queue)
                queue.put_nowait(None)  # close that feed: it reconnects and gets a fresh snapshot
            else:
                queue.put_nowait(frame)

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        for queue in list(self.feeds):
            queue.put_nowait(None)
        self.feeds.clear()


def _sse(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


MONITOR_KEY: web.AppKey[Monitor] = web.AppKey("monitor", Monitor)


# -- handlers -------------------------------------------------------------------------

@pageauth.require_roles(*OPERATOR_ROLES)
async def operator_page(request: web.Request, principal: Principal) -> web.StreamResponse:
    notice = build_notice(services_of(request.app).settings)
    response = render(request, "operator.html", principal=principal, csrf=principal.csrf, notice_version=notice.version)
    pageauth.no_store(response)
    return response


CONSENTS_SHOWN = 200


@pageauth.page_api(*OPERATOR_ROLES)
async def consents(request: web.Request, principal: Principal) -> web.StreamResponse:
    """Which notice version each consent was given to: metadata only (role, room, times; no name)."""
    svc = services_of(request.app)
    room_id = request.query.get("room") or None
    if room_id is not None and not (len(room_id) <= 64 and room_id.replace("_", "").replace("-", "").isalnum()):
        raise RoomServerError("invalid_request", "Invalid value for room: a room id.", 422)
    current = build_notice(svc.settings).version
    rows = await svc.store.consents.recent(room_id=room_id, limit=CONSENTS_SHOWN)
    return web.json_response({"current": current, "consents": [
        {"room": row.consent.room_id, "room_title": row.room_title, "role": row.role, "notice": row.consent.notice,
         "current": row.consent.notice == current, "given_at": iso(row.consent.given_at),
         "withdrawn_at": iso(row.consent.withdrawn_at)} for row in rows]})


@pageauth.page_api(*OPERATOR_ROLES)
async def feed(request: web.Request, principal: Principal) -> web.StreamResponse:
    if not pageauth.same_origin(request):
        raise RoomServerError("forbidden", "The feed is open to this site's own pages only.", 403)
    monitor = request.app[MONITOR_KEY]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"})
    await response.prepare(request)
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    monitor.feeds.add(queue)
    try:
        await response.write(b"retry: 2000\n\n" + _sse("snapshot", await monitor.snapshot()).encode())
        while True:
            try:
                frame = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                frame = ": keep-alive\n\n"
            if frame is None:
                break
            await response.write(frame.encode())
    except (ConnectionError, RuntimeError):
        pass  # the operator closed the page
    finally:
        monitor.feeds.discard(queue)
    return response


@pageauth.page_api(*OPERATOR_ROLES)
async def end_room(request: web.Request, principal: Principal) -> web.StreamResponse:
    svc = services_of(request.app)
    room_id = request.match_info["room_id"]
    if not await request.app[SIGNALLING_KEY].operator_end(room_id):
        raise RoomServerError("not_live", "This room is not live on this server.", 404)
    await svc.store.audit.append(at=svc.now(), actor=principal.id, actor_role=principal.role,
                                 action="operator.end_room", room_id=room_id)
    return web.json_response({"ended": room_id})


@pageauth.page_api(*OPERATOR_ROLES)
async def remove_participant(request: web.Request, principal: Principal) -> web.StreamResponse:
    svc = services_of(request.app)
    room_id, seat_id = request.match_info["room_id"], request.match_info["seat_id"]
    who = await request.app[SIGNALLING_KEY].operator_remove(room_id, seat_id)
    if who is None:
        raise RoomServerError("not_in_room", "There is no such participant in a live room.", 404)
    role, subject = who["role"], who["identity"]
    await svc.store.audit.append(at=svc.now(), actor=principal.id, actor_role=principal.role,
                                 action="operator.remove", room_id=room_id, subject=subject,
                                 detail={"seat": seat_id, "role": role})
    return web.json_response({"removed": seat_id})


def setup_monitor(app: web.Application) -> Monitor:
    monitor = Monitor(services_of(app), app[SIGNALLING_KEY])
    app[MONITOR_KEY] = monitor
    app.router.add_get("/operator", operator_page)
    app.router.add_get("/operator/feed", feed)
    app.router.add_post("/operator/rooms/{room_id}/end", end_room)
    app.router.add_post("/operator/rooms/{room_id}/seats/{seat_id}/remove", remove_participant)
    app.router.add_get("/operator/consents", consents)

    async def on_shutdown(app: web.Application) -> None:
        monitor.close()

    async def refresher(app: web.Application):  # type: ignore[no-untyped-def]
        # In a cluster the figures of rooms owned by other nodes arrive with their snapshots, not as
        # events here: while someone watches, look again every couple of seconds.
        task = asyncio.create_task(monitor.refresh_periodically()) if monitor.services.live.clustered else None
        yield
        if task is not None:
            task.cancel()

    app.on_shutdown.append(on_shutdown)
    app.cleanup_ctx.append(refresher)
    return monitor
