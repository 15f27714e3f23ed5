"""Signed webhooks: room and call events POSTed to the endpoints in ``[webhooks] urls``.

Each event is a JSON object ``{"id", "type", "time", "room", "data"}`` — ids, roles,
reasons and figures only, never names, tokens or addresses. Every request carries

  X-Roomserver-Timestamp: <unix seconds>
  X-Roomserver-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
  X-Roomserver-Event:     <type>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares
in constant time and refuses old timestamps (replays). The secret comes from
``ROOMSERVER_WEBHOOKS_SECRET`` or ``[webhooks] secret_file``, never from the TOML.

Delivery never slows signalling: the event-bus subscriber only appends to a
bounded in-memory queue per endpoint (when full, the oldest event is dropped and
counted with a warning); one background task per endpoint delivers in order,
retrying a failed event with exponential backoff up to ``max_attempts``. Events are
kept in memory only: a restart loses undelivered ones (the audit log is the record).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any

import aiohttp
from aiohttp import web

from .events import Event
from .services import Services, services_of

log = logging.getLogger("roomserver.webhooks")

KINDS = frozenset({"room.started", "room.ended", "participant.joined", "participant.left", "call.rung",
                   "call.accepted", "call.timed_out"})
_DATA_FIELDS = ("seat", "role", "reason", "call", "target_kind", "seconds_to_accept")


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


class Endpoint:
    """One receiver: its queue and its delivery task."""

    def __init__(self, index: int, url: str, size: int) -> None:
        self.index = index  # logs name the endpoint by number: a URL may carry credentials
        self.url = url
        self.queue: deque[tuple[str, bytes]] = deque()
        self.size = size
        self.wake = asyncio.Event()
        self.delivered = 0
        self.dropped = 0
        self.failed = 0


class Webhooks:
    def __init__(self, services: Services) -> None:
        self.settings = services.settings.webhooks
        self.secret = services.settings.webhooks_secret or b""
        self.endpoints = [Endpoint(i, url, self.settings.queue_size) for i, url in enumerate(self.settings.urls)]
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        if self.endpoints:
            services.events.subscribe(self.on_event)

    def on_event(self, event: Event) -> None:
        """The bus subscriber: serialise once, enqueue per endpoint, wake the senders. Never awaits."""
        if event.kind not in KINDS:
            return
        body = json.dumps(payload(event), separators=(",", ":"), sort_keys=True).encode()
        for endpoint in self.endpoints:
            if len(endpoint.queue) >= endpoint.size:
                endpoint.queue.popleft()
                endpoint.dropped += 1
                log.warning("webhook endpoint %d: queue full, dropped the oldest event (%d dropped so far)",
                            endpoint.index, endpoint.dropped)
            endpoint.queue.append((event.kind, body))
            endpoint.wake.set()

    async def start(self) -> None:
        if not self.endpoints:
            return
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "roomserver-webhooks"})
        self._tasks = [asyncio.create_task(self._run(endpoint)) for endpoint in self.endpoints]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self, endpoint: Endpoint) -> None:
        while True:
            if not endpoint.queue:
                endpoint.wake.clear()
                await endpoint.wake.wait()
                continue
            kind, body = endpoint.queue[0]
            delay = self.settings.backoff_seconds
            for attempt in range(1, self.settings.max_attempts + 1):
                if await self._post(endpoint, kind, body):
                    endpoint.delivered += 1
                    break
                if attempt == self.settings.max_attempts:
                    endpoint.failed += 1
                    log.warning("webhook endpoint %d: gave up on a %s event after %d attempts",
                                endpoint.index, kind, attempt)
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.max_backoff_seconds)
            # The head may have been dropped meanwhile (queue full): remove it only if it is still there.
            if endpoint.queue and endpoint.queue[0][1] is body:
                endpoint.queue.popleft()

    async def _post(self, endpoint: Endpoint, kind: str, body: bytes) -> bool:
        assert self._session is not None
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Roomserver-Event": kind,
                   "X-Roomserver-Timestamp": timestamp, "X-Roomserver-Signature": sign(self.secret, timestamp, body)}
        try:
            async with self._session.post(endpoint.url, data=body, headers=headers, allow_redirects=False) as r:
                await r.read()
                if 200 <= r.status < 300:
                    return True
                log.info("webhook endpoint %d answered %d", endpoint.index, r.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.info("webhook endpoint %d unreachable (%s)", endpoint.index, type(exc).__name__)
        return False


WEBHOOKS_KEY: web.AppKey[Webhooks] = web.AppKey("webhooks", Webhooks)


def setup_webhooks(app: web.Application) -> Webhooks:
    hooks = Webhooks(services_of(app))
    app[WEBHOOKS_KEY] = hooks

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await hooks.start()
        yield
        await hooks.stop()

    app.cleanup_ctx.append(lifecycle)
    return hooks
