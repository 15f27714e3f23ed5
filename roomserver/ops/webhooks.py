"""Signed webhooks: room and call events POSTed to the endpoints in ``[webhooks] urls``.

Each event is a JSON object ``{"id", "type", "time", "room", "data"}`` — ids, roles,
reasons and figures only, never names, tokens or addresses. Every request carries

  X-Roomserver-Timestamp: <unix seconds>
  X-Roomserver-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
  X-Roomserver-Event:     <type>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares
in constant time and refuses old timestamps (replays). The secret comes from
``ROOMSERVER_WEBHOOKS_SECRET`` or ``[webhooks] secret_file``, never from the TOML.

Delivery never slows signalling and survives restarts: the event-bus subscriber
only appends the event to a list that is written, in one transaction a few
milliseconds later, into the store's outbox: one row per endpoint, each endpoint a
lane delivered strictly in order (``outbox.py``), at most ``queue_size`` waiting per
endpoint (when full, the oldest is dropped and counted with a warning). A failed
delivery is retried with exponential back-off up to ``max_attempts``, then kept as
failed for an operator to send again. Delivery is at least once: a receiver may see
an event id twice after a crash and should ignore the repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import aiohttp
from aiohttp import web

from ..core.events import Event
from ..services import Services, services_of
from ..store import StoreUnavailable, Tx
from ..store.outbox import OutboxRow
from .outbox import DROPPED, OUTBOX_KEY, RETRY, SENT, Outcome, OutboxWorker, Policy

log = logging.getLogger("roomserver.ops.webhooks")

KINDS = frozenset({"room.started", "room.ended", "participant.joined", "participant.left", "call.rung",
                   "call.accepted", "call.timed_out", "alert.answer_rate_low", "alert.answer_rate_recovered"})
_DATA_FIELDS = ("seat", "role", "reason", "call", "target_kind", "seconds_to_accept", "department", "label",
                "answer_rate", "calls", "window_minutes")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Roomserver-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def payload(event: Event) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": event.kind,
            "time": datetime.fromtimestamp(event.at, timezone.utc).isoformat(timespec="milliseconds"),
            "room": event.room_id,
            "data": {k: event.data[k] for k in _DATA_FIELDS if event.data.get(k) is not None}}


def lane_of(url: str) -> str:
    """An endpoint's lane in the outbox: named by a hash, as a URL may carry credentials."""
    return "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]


class Endpoint:
    """One receiver and what this process did for it."""

    def __init__(self, index: int, url: str) -> None:
        self.index = index  # logs name the endpoint by number: a URL may carry credentials
        self.url = url
        self.lane = lane_of(url)
        self.delivered = 0
        self.dropped = 0
        self.failed = 0


class Webhooks:
    """Queues each event in the outbox, one row per endpoint; sends a row when the worker hands it over."""

    def __init__(self, services: Services, worker: OutboxWorker) -> None:
        self.services = services
        self.settings = services.settings.webhooks
        self.secret = services.settings.webhooks_secret or b""
        self.worker = worker
        self.endpoints = [Endpoint(i, url) for i, url in enumerate(self.settings.urls)]
        self.by_lane = {e.lane: e for e in self.endpoints}
        self._pending: list[str] = []  # published, not yet in the outbox (milliseconds at most)
        self._flushing: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        worker.register("webhook", self.send, Policy(self.settings.max_attempts, self.settings.backoff_seconds,
                                                     self.settings.max_backoff_seconds))
        if self.endpoints:
            services.events.subscribe(self.on_event)

    def on_event(self, event: Event) -> None:
        """The bus subscriber: serialise once and queue for the outbox. Never awaits."""
        if not event.local:
            return  # queued by the node where it happened: once for the whole cluster
        if event.kind not in KINDS:
            return
        self._pending.append(json.dumps(payload(event), separators=(",", ":"), sort_keys=True))
        if self._flushing is None or self._flushing.done():
            try:
                self._flushing = asyncio.get_running_loop().create_task(self._flush())
            except RuntimeError:  # no loop (a test publishing without a server): flushed at start
                pass

    async def _flush(self) -> None:
        """Write what was published into the outbox in one transaction, in order; retried while the store is away."""
        while self._pending:
            bodies, self._pending = self._pending, []
            now = self.worker.now_ms()
            keep = self.settings.queue_size
            lanes = [e.lane for e in self.endpoints]

            def unit(tx: Tx) -> int:
                for body in bodies:
                    for lane in lanes:
                        tx.outbox.add(kind="webhook", lane=lane, payload=body, now=now)
                return sum(tx.outbox.trim(lane, keep, now) for lane in lanes)
            try:
                dropped = await self.services.store.write(unit)
            except StoreUnavailable:
                self._pending[:0] = bodies
                await asyncio.sleep(1.0)
                continue
            if dropped:
                for endpoint in self.endpoints:
                    endpoint.dropped += dropped // max(len(lanes), 1)
                log.warning("webhooks: queue full, dropped the %d oldest waiting events", dropped)
            self.worker.wake()

    async def start(self) -> None:
        if self._pending:
            self._flushing = asyncio.create_task(self._flush())

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
            self._session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "roomserver-webhooks"})
        return self._session

    async def stop(self) -> None:
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.worker.stop()  # no delivery in flight when the client goes
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def queued(self) -> dict[int, int]:
        """Endpoint index -> events waiting for it in the outbox."""
        by_lane = await self.services.store.outbox.pending_by_lane("webhook")
        return {e.index: by_lane.get(e.lane, 0) for e in self.endpoints}

    async def send(self, row: OutboxRow) -> Outcome:
        endpoint = self.by_lane.get(row.lane)
        if endpoint is None:
            return Outcome(DROPPED, "endpoint_removed")
        body = row.payload.encode()
        kind = json.loads(body)["type"]
        status = await self._post(endpoint, kind, body)
        if status is None:
            endpoint.delivered += 1
            return Outcome(SENT)
        if row.attempts >= self.settings.max_attempts:
            endpoint.failed += 1
            log.warning("webhook endpoint %d: gave up on a %s event after %d attempts",
                        endpoint.index, kind, row.attempts)
        return Outcome(RETRY, status)

    async def _post(self, endpoint: Endpoint, kind: str, body: bytes) -> str | None:
        """None when delivered; else what went wrong (a status code or the error's kind)."""
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Roomserver-Event": kind,
                   "X-Roomserver-Timestamp": timestamp, "X-Roomserver-Signature": sign(self.secret, timestamp, body)}
        try:
            async with self._client().post(endpoint.url, data=body, headers=headers, allow_redirects=False) as r:
                await r.read()
                if 200 <= r.status < 300:
                    return None
                log.info("webhook endpoint %d answered %d", endpoint.index, r.status)
                return str(r.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.info("webhook endpoint %d unreachable (%s)", endpoint.index, type(exc).__name__)
            return type(exc).__name__


WEBHOOKS_KEY: web.AppKey[Webhooks] = web.AppKey("webhooks", Webhooks)


def setup_webhooks(app: web.Application) -> Webhooks:
    hooks = Webhooks(services_of(app), app[OUTBOX_KEY])
    app[WEBHOOKS_KEY] = hooks

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await hooks.start()
        yield
        await hooks.stop()

    app.cleanup_ctx.append(lifecycle)
    return hooks
