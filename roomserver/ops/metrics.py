"""Prometheus ``GET /metrics``, exposed with ``prometheus_client`` (text format 0.0.4).

Open to the networks in ``[metrics] allow_from`` (default: loopback only) or to
anyone with the bearer token (``ROOMSERVER_METRICS_TOKEN`` or ``[metrics]
token_file``); everyone else gets 403. Labels are bounded sets only — roles,
reasons, causes, outcomes, and the node's name — never a room, seat or person.

Each node exposes its own figures, as Prometheus expects of a cluster (every
node is a scrape target): counters count the events that happened on this node
(each event happens on exactly one node, so ``sum()`` over the nodes is the
cluster's count); gauges say what this node holds now (rooms it owns, sockets it
serves). ``roomserver_cluster_rooms_live`` is the whole cluster's count, the same
on every node (use ``max()``).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any, Awaitable, Callable

import prometheus_client
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ..core.errors import RoomServerError
from ..core.events import Event
from ..live import LiveUnavailable
from ..middleware import FORWARDED_UNTRUSTED
from ..services import Services, services_of
from ..ws import SIGNALLING_KEY, Gateway

log = logging.getLogger("roomserver.ops.metrics")

prometheus_client.disable_created_metrics()  # no *_created series: a counter's start says nothing here

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACCEPT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
CALL_OUTCOMES = {"call.accepted": "accepted", "call.timed_out": "timed_out", "call.declined": "declined",
                 "call.cancelled": "cancelled", "call.no_one": "no_one"}
ROLES = ("counsellor", "citizen", "expert", "interpreter")
MAX_LABEL_VALUES = 64  # a guard: a label never grows without bound, whatever is published


class _Bounded:
    """A label value from a bounded set: past ``MAX_LABEL_VALUES`` distinct values, ``other``."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, value: Any) -> str:
        text = str(value or "unknown")
        if text not in self.seen:
            if len(self.seen) >= MAX_LABEL_VALUES:
                return "other"
            self.seen.add(text)
        return text


class Metrics:
    """Counters fed by the event bus; gauges read from the live rooms when scraped."""

    def __init__(self, services: Services, signalling: Gateway) -> None:
        self.services = services
        self.signalling = signalling
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.joins = Counter("roomserver_joins", "Participants who entered a call, by role.", ["role"], registry=r)
        self.refusals = Counter("roomserver_token_refusals", "Refused joins and resumes, by reason.", ["reason"],
                                registry=r)
        self.resumes = Counter("roomserver_resumes", "Participants who came back to their seat.", registry=r)
        self.rooms_started = Counter("roomserver_rooms_started", "Rooms whose first participant entered.",
                                     registry=r)
        self.rooms_ended = Counter("roomserver_rooms_ended", "Rooms that ended, by reason.", ["reason"], registry=r)
        self.calls = Counter("roomserver_calls", "Expert and interpreter calls that finished, by outcome.",
                             ["outcome"], registry=r)
        self.calls_requested = Counter("roomserver_calls_requested", "Expert and interpreter calls placed.",
                                       registry=r)
        self.disconnects = Counter("roomserver_socket_disconnects", "Participant sockets that closed, by cause.",
                                   ["cause"], registry=r)
        self.to_accept = Histogram("roomserver_call_seconds_to_accept", "Seconds from a call to its acceptance.",
                                   buckets=ACCEPT_BUCKETS, registry=r)
        self.relayed = Counter("roomserver_signal_messages_relayed", "Signalling messages relayed between peers.",
                               registry=r)
        self.refreshers: list[Callable[[], Awaitable[None]]] = []
        self.rooms_live = Gauge("roomserver_rooms_live", "Rooms live on this node (owned by it).", registry=r)
        self.participants = Gauge("roomserver_participants", "Participants in a call now in rooms this node owns, "
                                  "by role.", ["role"], registry=r)
        self.waiting = Gauge("roomserver_participants_waiting", "Participants in a waiting room now, in rooms this "
                             "node owns.", registry=r)
        self.sockets = Gauge("roomserver_sockets", "Participant sockets open on this node.", registry=r)
        self.cluster_rooms = Gauge("roomserver_cluster_rooms_live", "Rooms live in the whole cluster (the same on "
                                   "every node).", registry=r)
        self.live_healthy = Gauge("roomserver_live_state_up", "1 while this node reaches its live state (Redis in "
                                  "a cluster), else 0.", registry=r)
        self.info = Gauge("roomserver_node_info", "This node: always 1, labelled with the node's name.", ["node"],
                          registry=r)
        self._relayed_seen = 0
        self._bounded = {name: _Bounded() for name in ("role", "reason", "outcome", "cause", "ended")}
        services.events.subscribe(self.on_event)

    def on_event(self, event: Event) -> None:
        if not event.local:
            return  # counted on the node where it happened (Prometheus adds the nodes up)
        kind, data = event.kind, event.data
        if kind == "participant.joined":
            self.joins.labels(self._bounded["role"](data.get("role"))).inc()
        elif kind == "token.refused":
            self.refusals.labels(self._bounded["reason"](data.get("code"))).inc()
        elif kind == "participant.resumed":
            self.resumes.inc()
        elif kind == "room.started":
            self.rooms_started.inc()
        elif kind == "room.ended":
            self.rooms_ended.labels(self._bounded["ended"](data.get("reason"))).inc()
        elif kind == "call.requested":
            self.calls_requested.inc()
        elif kind in CALL_OUTCOMES:
            self.calls.labels(CALL_OUTCOMES[kind]).inc()
            if kind == "call.accepted" and isinstance(data.get("seconds_to_accept"), (int, float)):
                self.to_accept.observe(float(data["seconds_to_accept"]))
        elif kind == "socket.closed":
            self.disconnects.labels(self._bounded["cause"](data.get("cause"))).inc()

    async def render(self) -> bytes:
        for refresh in self.refreshers:  # other modules' gauges (the outbox's), read just before a scrape
            await refresh()
        gateway = self.signalling
        rooms = [h.room for h in gateway.host.rooms.values() if not h.room.ended]
        by_role = {role: 0 for role in ROLES}
        waiting = 0
        for room in rooms:
            for seat in room.seats.values():
                if seat.admitted:
                    by_role[seat.role.value] = by_role.get(seat.role.value, 0) + 1
                else:
                    waiting += 1
        self.rooms_live.set(len(rooms))
        for role, n in by_role.items():
            self.participants.labels(role).set(n)
        self.waiting.set(waiting)
        self.sockets.set(gateway.local_connections())
        new = gateway.relayed - self._relayed_seen
        if new > 0:
            self.relayed.inc(new)
            self._relayed_seen = gateway.relayed
        live = self.services.live
        self.live_healthy.set(1 if live.healthy else 0)
        self.info.labels(live.node.split(".")[0] if live.clustered else "single").set(1)
        try:
            self.cluster_rooms.set(len(await live.rooms()) if live.clustered else len(rooms))
        except LiveUnavailable:
            pass
        return generate_latest(self.registry)


METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


def allowed(request: web.Request, networks: list[Any], token: str | None) -> bool:
    """The bearer token opens it from anywhere; else the peer address must be in an allowed network."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return True
    if request.get(FORWARDED_UNTRUSTED):  # sent on by a proxy that is not trusted: its peer address says nothing
        return False
    remote = request.remote
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


def setup_metrics(app: web.Application) -> Metrics:
    svc = services_of(app)
    metrics = Metrics(svc, app[SIGNALLING_KEY])
    app[METRICS_KEY] = metrics
    networks = [ipaddress.ip_network(item, strict=False) for item in svc.settings.metrics.allow_from]

    async def handler(request: web.Request) -> web.Response:
        if not allowed(request, networks, svc.settings.metrics_token):
            raise RoomServerError("forbidden", "Metrics are open to configured addresses or with the metrics "
                                  "token.", 403)
        return web.Response(body=await metrics.render(), headers={"Content-Type": CONTENT_TYPE,
                                                                  "Cache-Control": "no-store"})

    app.router.add_get("/metrics", handler)
    return metrics
