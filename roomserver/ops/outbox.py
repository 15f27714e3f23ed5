"""The outbox worker: on every node, sends the due messages of the store's outbox.

Each round claims the due heads of lanes (``store/outbox.py``: a lease, one row per lane
at a time, so a lane goes out in order and no row goes to two nodes), hands each to the
sender of its kind (``webhooks.py``, ``mailer.py``) and records the outcome: sent; retried
later with a doubling back-off; failed (a permanent refusal, or the attempts used up:
kept for operators to send again); or dropped (nothing left to send it to).

A message is sent at least once: a node killed between sending and recording sends it
again after its lease ran out (the receiver sees the same event id or Message-ID).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Gauge

from ..api.handlers import authenticate
from ..core.errors import RoomServerError, conflict, not_found
from ..live import LiveUnavailable
from ..services import Services, services_of
from ..store import StoreUnavailable, Tx
from ..store.outbox import STATES, OutboxRow
from .metrics import METRICS_KEY

log = logging.getLogger("roomserver.ops.outbox")

SENT, RETRY, FAILED, DROPPED = "sent", "retry", "failed", "dropped"
KINDS = ("webhook", "email")
BATCH = 50
HOUSEKEEPING_SECONDS = 5.0


@dataclass(frozen=True)
class Outcome:
    result: str  # SENT, RETRY, FAILED (permanent), DROPPED
    error: str | None = None


@dataclass(frozen=True)
class Policy:
    max_attempts: int
    backoff_seconds: float
    max_backoff_seconds: float


Sender = Callable[[OutboxRow], Awaitable[Outcome]]


class OutboxWorker:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.outbox
        self.node = services.live.node
        self.senders: dict[str, tuple[Sender, Policy]] = {}
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.totals: dict[tuple[str, str], int] = {}  # (kind, outcome) -> messages, this process
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._housekeeping: list[Callable[[], Awaitable[None]]] = []
        self._rounds = 0

    def register(self, kind: str, sender: Sender, policy: Policy) -> None:
        self.senders[kind] = (sender, policy)

    def every_while(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` with the worker's housekeeping (every few seconds)."""
        self._housekeeping.append(job)

    def wake(self) -> None:
        """Something was queued or finished: look again now rather than at the next poll."""
        self._wake.set()

    def now_ms(self) -> int:
        return int(self.services.clock() * 1000)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        tasks = list(self.inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:  # a clean stop leaves nothing claimed: the next start sends at once
            await self.services.store.outbox.release(nodes=[self.node])
        except Exception:  # noqa: BLE001 - the lease runs out by itself
            pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_housekeeping = 0.0
        first = True
        while True:
            try:
                if loop.time() >= next_housekeeping:
                    await self._housekeep(first)
                    first = False
                    next_housekeeping = loop.time() + HOUSEKEEPING_SECONDS
                await self._round()
            except StoreUnavailable:
                pass  # the store says so itself; try again at the next poll
            except Exception:  # noqa: BLE001 - the worker must keep running
                log.exception("outbox round failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _round(self) -> None:
        room = BATCH - len(self.inflight)
        if room <= 0 or not self.senders:
            return
        lease_ms = int(self.settings.lease_seconds * 1000)
        rows = await self.services.store.outbox.claim(self.node, now=self.now_ms(), lease_ms=lease_ms, limit=room)
        for row in rows:
            self.inflight[row.id] = asyncio.create_task(self._send(row))

    async def _send(self, row: OutboxRow) -> None:
        try:
            entry = self.senders.get(row.kind)
            if entry is None:
                outcome, policy = Outcome(DROPPED, "unknown_kind"), None
            else:
                sender, policy = entry
                try:
                    outcome = await sender(row)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a sender's bug is a failed attempt, not a dead worker
                    log.warning("outbox: sending message %d (%s) raised %s", row.id, row.kind, type(exc).__name__)
                    outcome = Outcome(RETRY, type(exc).__name__)
            await self._record(row, outcome, policy)
        finally:
            self.inflight.pop(row.id, None)
            self.wake()

    async def _record(self, row: OutboxRow, outcome: Outcome, policy: Policy | None) -> None:
        outbox = self.services.store.outbox
        now = self.now_ms()
        result = outcome.result
        if result == RETRY and policy is not None and row.attempts >= policy.max_attempts:
            result = FAILED
            log.warning("outbox: gave up on message %d (%s) after %d attempts (%s)", row.id, row.kind,
                        row.attempts, outcome.error)
        try:
            if result == SENT:
                await outbox.sent(row.id, self.node, now)
            elif result == FAILED:
                await outbox.failed(row.id, self.node, now, outcome.error or "failed")
            elif result == DROPPED:
                await outbox.dropped(row.id, self.node, now, outcome.error or "dropped")
            else:
                assert policy is not None
                delay = min(policy.backoff_seconds * 2 ** max(row.attempts - 1, 0), policy.max_backoff_seconds)
                await outbox.retry_later(row.id, self.node, now + int(delay * 1000), outcome.error or "retry")
                if delay < self.settings.poll_seconds:
                    asyncio.get_running_loop().call_later(delay, self.wake)
        except StoreUnavailable:
            log.warning("outbox: could not record the outcome of message %d; it is sent again later", row.id)
            return
        key = (row.kind, result)
        self.totals[key] = self.totals.get(key, 0) + 1

    async def _housekeep(self, first: bool) -> None:
        outbox = self.services.store.outbox
        if not self.services.settings.clustered:
            if first:  # the only node: whatever is claimed was claimed by a predecessor that died
                released = await outbox.release(except_node=self.node)
                if released:
                    log.info("outbox: %d messages claimed by a previous run released", released)
        else:
            try:
                alive = await self.services.live.nodes()
            except LiveUnavailable:
                alive = None
            if alive:
                gone = [n for n in await outbox.claimers() if n not in alive and n != self.node]
                if gone:
                    released = await outbox.release(nodes=gone)
                    log.info("outbox: %d messages of lost nodes released", released)
        self._rounds += 1
        if self._rounds % 12 == 1:  # about once a minute
            await self._forget()
        for job in self._housekeeping:
            try:
                await job()
            except StoreUnavailable:
                raise
            except Exception:  # noqa: BLE001 - housekeeping is retried in a few seconds
                log.exception("outbox housekeeping failed")


    async def _forget(self) -> None:
        """Erase the addresses of appointments that are over; purge messages finished before the audit retention."""
        now = self.services.now()
        erased = await self.services.store.invitemails.erase_over(now)
        if erased:
            log.info("outbox: the e-mail addresses of %d invites to appointments that are over erased", erased)
        days = self.services.settings.audit.retention_days
        await self.services.store.outbox.purge((now - days * 86400) * 1000)


OUTBOX_KEY: web.AppKey[OutboxWorker] = web.AppKey("outbox", OutboxWorker)


def setup_outbox(app: web.Application) -> OutboxWorker:
    """The worker; senders register with it (``setup_webhooks``, ``setup_mailer``) before the app starts."""
    worker = OutboxWorker(services_of(app))
    app[OUTBOX_KEY] = worker

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await worker.start()
        yield
        await worker.stop()

    app.cleanup_ctx.append(lifecycle)
    setup_outbox_api(app)
    return worker


# -- what operators see and do -------------------------------------------------------------------------------

OUTBOX_ROLES = frozenset({"admin", "operator", "system"})
MAX_LIST = 500


def message_json(row: OutboxRow, endpoints: dict[str, int]) -> dict[str, object]:
    """A message as operators see it: what and when, never an address, a token or a payload."""
    what = json.loads(row.payload).get("type") if row.payload.startswith("{") else None
    return {"id": row.id, "kind": row.kind, "type": what, "state": row.state, "attempts": row.attempts,
            "created_at": _iso_ms(row.created_at), "next_at": _iso_ms(row.next_at) if row.state == "pending" else None,
            "done_at": _iso_ms(row.done_at), "last_error": row.last_error,
            "endpoint": endpoints.get(row.lane) if row.kind == "webhook" else None,
            "claimed": row.claimed_by is not None}


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


async def _operator(request: web.Request):  # type: ignore[no-untyped-def]
    principal = await authenticate(request)
    if principal.role not in OUTBOX_ROLES:
        raise RoomServerError("forbidden", f"The role {principal.role} may not manage outbound messages.", 403)
    return principal


def counts_json(counts: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {kind: {state: 0 for state in STATES} for kind in KINDS}
    for (kind, state), n in counts.items():
        out.setdefault(kind, {s: 0 for s in STATES})[state] = n
    return out


async def list_messages(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    await _operator(request)
    q = request.query
    state, kind = q.get("state"), q.get("kind")
    if state is not None and state not in STATES:
        raise RoomServerError("invalid_request", f"Invalid value for state: one of {', '.join(STATES)}.", 422)
    if kind is not None and kind not in KINDS:
        raise RoomServerError("invalid_request", f"Invalid value for kind: one of {', '.join(KINDS)}.", 422)
    try:
        limit = int(q.get("limit", 100))
    except ValueError:
        raise RoomServerError("invalid_request", "Invalid value for limit: an integer.", 422) from None
    if not 1 <= limit <= MAX_LIST:
        raise RoomServerError("invalid_request", f"Invalid value for limit: 1 to {MAX_LIST}.", 422)
    counts, rows = await svc.store.read(lambda tx: (tx.outbox.counts(), tx.outbox.list(state=state, kind=kind,
                                                                                          limit=limit)))
    endpoints = _endpoint_numbers(svc)
    return web.json_response({"counts": counts_json(counts), "messages": [message_json(r, endpoints) for r in rows]},
                             headers={"Cache-Control": "no-store"})


def _endpoint_numbers(svc: Services) -> dict[str, int]:
    from .webhooks import lane_of  # the webhooks module registers with the worker: imported late
    return {lane_of(url): i for i, url in enumerate(svc.settings.webhooks.urls)}


async def retry_message(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await _operator(request)
    raw = request.match_info["message_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise not_found("The message")
    row_id = int(raw)
    now = svc.now()

    def unit(tx: Tx) -> OutboxRow | None:
        row = tx.outbox.get(row_id)
        if row is None or row.state != "failed":
            return row
        tx.outbox.retry(row_id, now * 1000)
        tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role, action="outbox.retried",
                        subject=str(row_id), detail={"kind": row.kind, "count": 1})
        return tx.outbox.get(row_id)
    row = await svc.store.write(unit)
    if row is None:
        raise not_found("The message")
    if row.state != "pending":
        raise conflict("message_not_failed", f"Only a failed message can be sent again; this one is {row.state}.")
    request.app[OUTBOX_KEY].wake()
    return web.json_response(message_json(row, _endpoint_numbers(svc)))


async def retry_failed(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await _operator(request)
    now = svc.now()

    def unit(tx: Tx) -> int:
        n = tx.outbox.retry_failed(now * 1000)
        if n:
            tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role, action="outbox.retried",
                            detail={"count": n})
        return n
    n = await svc.store.write(unit)
    request.app[OUTBOX_KEY].wake()
    return web.json_response({"retried": n})


def setup_outbox_api(app: web.Application) -> None:
    """``/api/v1/outbox`` for operators and admins, and the outbox's gauges on ``/metrics``."""
    app.router.add_get("/api/v1/outbox", list_messages)
    app.router.add_post("/api/v1/outbox/retry-failed", retry_failed)
    app.router.add_post("/api/v1/outbox/{message_id}/retry", retry_message)
    svc = services_of(app)
    worker = app[OUTBOX_KEY]
    metrics = app.get(METRICS_KEY)
    if metrics is None:
        return
    messages = Gauge("roomserver_outbox_messages", "Outbound messages in the store's outbox by kind and state "
                     "(the whole cluster's: the same on every node, use max()).", ["kind", "state"],
                     registry=metrics.registry)
    outcomes = Counter("roomserver_outbox_deliveries", "Delivery attempts this node finished, by kind and "
                       "outcome (sent, retry, failed, dropped).", ["kind", "outcome"], registry=metrics.registry)
    seen: dict[tuple[str, str], int] = {}

    async def refresh() -> None:
        try:
            counts = await svc.store.outbox.counts()
        except StoreUnavailable:
            return
        for kind, states in counts_json(counts).items():
            for state, n in states.items():
                messages.labels(kind, state).set(n)
        for key, total in worker.totals.items():
            if total > seen.get(key, 0):
                outcomes.labels(*key).inc(total - seen.get(key, 0))
                seen[key] = total
    metrics.refreshers.append(refresh)
