"""Domain events, published once and heard by monitoring, metrics and webhooks.

Signalling, the desks and the API publish what happened (a participant
joined, a call was accepted, a token was refused); subscribers never reach
into those modules. Events carry metadata only: ids, roles, reasons, figures
— never names, tokens, addresses or content. Subscribers run synchronously and
must be quick; one that fails is logged and the others still run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("roomserver.core.events")

# kind -> meaning; the webhook and dashboard names are these.
KINDS = {
    "room.started": "the first participant entered a room",
    "room.ended": "a room ended (data: reason)",
    "participant.waiting": "a participant entered the waiting room",
    "participant.joined": "a participant is in the call (data: role, seat)",
    "participant.admitted": "a moderator admitted a waiting participant",
    "participant.denied": "a moderator turned a waiting participant away",
    "participant.removed": "a moderator or operator removed a participant",
    "participant.reconnecting": "a participant's connection dropped; the seat is kept",
    "participant.resumed": "a participant came back to its seat",
    "participant.left": "a participant left (data: reason: left, timeout, removed, denied, ended)",
    "participant.stats": "a participant reported connection figures (data: peers)",
    "token.refused": "a join was refused (data: code)",
    "call.requested": "a counsellor called a department or language",
    "call.rung": "a desk rang for a call",
    "call.declined": "an expert declined a call",
    "call.accepted": "an expert accepted a call (data: seconds_to_accept)",
    "call.timed_out": "nobody accepted a call in time",
    "call.cancelled": "the counsellor cancelled a call",
    "call.no_one": "nobody was available for a call",
    "call.rejoined": "an expert who had left went back into the consultation from the desk",
    "socket.closed": "a participant socket closed (data: cause)",
    "alert.answer_rate_low": "a department answered too few calls in the last window (data: department, label, "
                             "answer_rate, calls, window_minutes)",
    "alert.answer_rate_recovered": "a flagged department's answer rate is no longer below the threshold",
}


# What every node of a cluster hears, wherever it happened (the operator dashboard's event list).
# Each event happens on exactly one node (a room's owner, the switchboard's owner); that node also
# sends it to the others. Webhooks and metric counters take only the events of their own node, so
# each event is counted and sent once for the whole cluster.
CLUSTER_WIDE = frozenset({
    "room.started", "room.ended", "participant.waiting", "participant.joined", "participant.left",
    "participant.reconnecting", "participant.resumed", "participant.admitted", "participant.denied",
    "participant.removed", "call.requested", "call.rung", "call.accepted", "call.declined", "call.timed_out",
    "call.cancelled", "call.no_one", "call.rejoined", "alert.answer_rate_low", "alert.answer_rate_recovered"})


@dataclass(frozen=True)
class Event:
    kind: str
    room_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    origin: str | None = None  # the node it happened on, when that is another node of the cluster

    @property
    def local(self) -> bool:
        return self.origin is None


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, kind: str, room_id: str | None = None, **data: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        self.deliver(Event(kind, room_id, data))

    def deliver(self, event: Event) -> None:
        """Hand one event to every subscriber (``publish`` for this node's events; another node's arrive here)."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - one broken subscriber must not stop the others or the caller
                log.exception("event subscriber failed on %s", event.kind)
