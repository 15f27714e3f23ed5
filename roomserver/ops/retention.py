"""Retention: what the data notice promises about deletion, done once at start and then daily.

Two limits, both stated in the citizens' data notice:

* ``[audit] retention_days``: audit events older than that go (``auditlog.apply_retention``);
* ``[privacy] records_retention_days``: a consultation over for that long goes with its
  invites (and the name typed into them), consents and expert calls
  (``apply_record_retention``). A room live on this server right now is never touched.

Each run that deletes something leaves one audit event with the count and the cutoff.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..api.handlers import iso
from ..live import LiveUnavailable
from ..services import Services, services_of
from ..store import Tx
from .auditlog import DAY, apply_retention
from .reports import store_finished_months

log = logging.getLogger("roomserver.retention")


async def apply_record_retention(services: Services, now: int | None = None,
                                 live: frozenset[str] = frozenset()) -> int:
    """Delete the consultations over for longer than the limit (not those in ``live``); how many went."""
    now = services.now() if now is None else now
    days = services.settings.privacy.records_retention_days
    cutoff = now - days * DAY

    def unit(tx: Tx) -> int:
        deleted = tx.retention.purge_rooms(cutoff, keep=live)
        if deleted:
            tx.audit.append(at=now, actor="system", actor_role="system", action="records.retention",
                            detail={"rooms": deleted, "cutoff": iso(cutoff)})
        return deleted
    deleted = await services.store.write(unit)
    if deleted:
        log.info("record retention: %d consultations over for more than %d days deleted", deleted, days)
    return deleted


def setup_retention(app: web.Application) -> None:
    svc = services_of(app)

    async def retention(app: web.Application):  # type: ignore[no-untyped-def]
        async def run() -> None:
            try:  # first keep the finished months' figures, before retention thins their records out
                await store_finished_months(svc.store, svc.settings, svc.now())
            except Exception:  # noqa: BLE001 - try again tomorrow
                log.exception("storing the monthly figures failed")
            try:
                await apply_retention(svc)
            except Exception:  # noqa: BLE001 - try again tomorrow; never take the server down
                log.exception("audit retention failed")
            try:
                live = frozenset(await svc.live.rooms())  # running on any node: never touched
                await apply_record_retention(svc, live=live)
            except LiveUnavailable:
                log.warning("record retention skipped: the cluster's live state cannot be read")
            except Exception:  # noqa: BLE001 - as above
                log.exception("record retention failed")

        async def loop() -> None:
            while True:
                await asyncio.sleep(DAY)
                await run()

        await run()  # once at start, before the first request
        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app.cleanup_ctx.append(retention)
