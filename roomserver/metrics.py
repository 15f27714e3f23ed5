"""Prometheus ``GET /metrics`` in the text exposition format (0.0.4), written by hand.

Open to the networks in ``[metrics] allow_from`` (default: loopback only) or to
anyone with the bearer token (``ROOMSERVER_METRICS_TOKEN`` or ``[metrics]
token_file``); everyone else gets 403. Labels are bounded sets only — roles,
reasons, causes, outcomes — never a room, seat or person.

Counters come from the domain event bus (``events.py``); gauges are read from the
live hub when scraped; the relayed-message count is the signalling edge's own.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any, Iterable

from aiohttp import web

from .errors import RoomServerError
from .events import Event
from .services import Services, services_of
from .signalling import SIGNALLING_KEY, Signalling

log = logging.getLogger("roomserver.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACCEPT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
CALL_OUTCOMES = {"call.accepted": "accepted", "call.timed_out": "timed_out", "call.declined": "declined",
                 "call.cancelled": "cancelled", "call.no_one": "no_one"}
ROLES = ("counsellor", "citizen", "expert", "interpreter")
_MAX_LABEL_VALUES = 64  # a guard: a label never grows without bound, whatever is published


class Counter:
    def __init__(self, name: str, help_: str, label: str | None = None) -> None:
        self.name, self.help, self.label = name, help_, label
        self.values: dict[str, float] = {} if label else {"": 0.0}

    def inc(self, value: str = "", by: float = 1.0) -> None:
        if value not in self.values and len(self.values) >= _MAX_LABEL_VALUES:
            value = "other"
        self.values[value] = self.values.get(value, 0.0) + by

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for value, count in sorted(self.values.items()):
            yield f"{self.name}{_labels({self.label: value} if self.label else {})} {_num(count)}"


class Histogram:
    def __init__(self, name: str, help_: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_, buckets
        self.counts = [0] * len(buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for bound, count in zip(self.buckets, self.counts):
            yield f'{self.name}_bucket{{le="{_num(bound)}"}} {count}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{self.name}_sum {_num(self.sum)}"
        yield f"{self.name}_count {self.count}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _gauge(name: str, help_: str, samples: list[tuple[dict[str, str], float]]) -> Iterable[str]:
    yield f"# HELP {name} {help_}"
    yield f"# TYPE {name} gauge"
    for labels, value in samples:
        yield f"{name}{_labels(labels)} {_num(value)}"


class Metrics:
    """Counters fed by the event bus; gauges read from the hub at scrape time."""

    def __init__(self, services: Services, signalling: Signalling) -> None:
        self.signalling = signalling
        self.joins = Counter("roomserver_joins_total", "Participants who entered a call, by role.", "role")
        self.refusals = Counter("roomserver_token_refusals_total", "Refused joins and resumes, by reason.", "reason")
        self.resumes = Counter("roomserver_resumes_total", "Participants who came back to their seat.")
        self.rooms_started = Counter("roomserver_rooms_started_total", "Rooms whose first participant entered.")
        self.rooms_ended = Counter("roomserver_rooms_ended_total", "Rooms that ended, by reason.", "reason")
        self.calls = Counter("roomserver_calls_total", "Expert and interpreter calls that finished, by outcome.",
                             "outcome")
        self.calls_requested = Counter("roomserver_calls_requested_total", "Expert and interpreter calls placed.")
        self.disconnects = Counter("roomserver_socket_disconnects_total", "Participant sockets that closed, by cause.",
                                   "cause")
        self.to_accept = Histogram("roomserver_call_seconds_to_accept", "Seconds from a call to its acceptance.",
                                   ACCEPT_BUCKETS)
        services.events.subscribe(self.on_event)

    def on_event(self, event: Event) -> None:
        kind, data = event.kind, event.data
        if kind == "participant.joined":
            self.joins.inc(str(data.get("role") or "unknown"))
        elif kind == "token.refused":
            self.refusals.inc(str(data.get("code") or "unknown"))
        elif kind == "participant.resumed":
            self.resumes.inc()
        elif kind == "room.started":
            self.rooms_started.inc()
        elif kind == "room.ended":
            self.rooms_ended.inc(str(data.get("reason") or "unknown"))
        elif kind == "call.requested":
            self.calls_requested.inc()
        elif kind in CALL_OUTCOMES:
            self.calls.inc(CALL_OUTCOMES[kind])
            if kind == "call.accepted" and isinstance(data.get("seconds_to_accept"), (int, float)):
                self.to_accept.observe(float(data["seconds_to_accept"]))
        elif kind == "socket.closed":
            self.disconnects.inc(str(data.get("cause") or "unknown"))

    def render(self) -> str:
        rooms = [room for room in self.signalling.hub.rooms() if not room.ended]
        by_role = {role: 0 for role in ROLES}
        waiting = 0
        for room in rooms:
            for seat in room.seats.values():
                if seat.admitted:
                    by_role[seat.role.value] = by_role.get(seat.role.value, 0) + 1
                else:
                    waiting += 1
        lines: list[str] = []
        lines += _gauge("roomserver_rooms_live", "Rooms live on this server.", [({}, len(rooms))])
        lines += _gauge("roomserver_participants", "Participants in a call now, by role.",
                        [({"role": role}, n) for role, n in sorted(by_role.items())])
        lines += _gauge("roomserver_participants_waiting", "Participants in a waiting room now.", [({}, waiting)])
        lines += ["# HELP roomserver_signal_messages_relayed_total Signalling messages relayed between peers.",
                  "# TYPE roomserver_signal_messages_relayed_total counter",
                  f"roomserver_signal_messages_relayed_total {self.signalling.relayed}"]
        for metric in (self.joins, self.refusals, self.resumes, self.rooms_started, self.rooms_ended,
                       self.calls_requested, self.calls, self.to_accept, self.disconnects):
            lines += metric.render()
        return "\n".join(lines) + "\n"


METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


def allowed(request: web.Request, networks: list[Any], token: str | None) -> bool:
    """The bearer token opens it from anywhere; else the peer address must be in an allowed network."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return True
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
        return web.Response(text=metrics.render(), headers={"Content-Type": CONTENT_TYPE,
                                                            "Cache-Control": "no-store"})

    app.router.add_get("/metrics", handler)
    return metrics
