"""The audit log's edge: export a period for admins, and retention.

  GET /api/v1/audit?since=&until=&format=json|csv&limit=

Admins (session) and the system API key export the events with ``since <= at <
until`` (RFC 3339; both optional) as JSON (``{"events": [...], "truncated"}``) or
CSV (one row per event, the ``detail`` column as JSON). Events hold who, when and
what — account ids, roles, room and seat ids — never names or content.

Retention: events older than ``[audit] retention_days`` are deleted once at start
and then daily, by the retention task (``retention.py``); each run that deletes
something leaves one ``audit.retention`` event with the count.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from typing import Any

from aiohttp import web

from ..api.handlers import authenticate, iso, parse_time
from ..core.errors import RoomServerError
from ..services import Services, services_of
from ..store import AuditEvent, Tx

log = logging.getLogger("roomserver.audit")

EXPORT_ROLES = frozenset({"admin", "system"})
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000
DAY = 86400
CSV_COLUMNS = ("id", "at", "actor", "actor_role", "action", "room_id", "subject", "detail")


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": iso(event.at), "actor": event.actor, "actor_role": event.actor_role,
            "action": event.action, "room_id": event.room_id, "subject": event.subject, "detail": event.detail}


def to_csv(events: list[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in events:
        row = event_json(e)
        row["detail"] = json.dumps(e.detail, sort_keys=True, ensure_ascii=False) if e.detail else ""
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    """Plain text, and no spreadsheet formula: a leading = + - @ gets a quote in front."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def apply_retention(services: Services, now: int | None = None) -> int:
    """Delete the events strictly older than the retention limit; how many went."""
    now = services.now() if now is None else now
    cutoff = now - services.settings.audit.retention_days * DAY

    def unit(tx: Tx) -> int:
        deleted = tx.audit.delete_older_than(cutoff)
        tx.reports.delete_older_than(cutoff)  # the consultations' figures follow the audit log
        if deleted:
            tx.audit.append(at=now, actor="system", actor_role="system", action="audit.retention",
                            detail={"deleted": deleted, "cutoff": iso(cutoff)})
        return deleted
    deleted = await services.store.write(unit)
    if deleted:
        log.info("audit retention: %d events older than %d days deleted", deleted,
                 services.settings.audit.retention_days)
    return deleted


async def export(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    if principal.role not in EXPORT_ROLES:
        raise RoomServerError("forbidden", f"The role {principal.role} may not export the audit log.", 403)
    q = request.query
    since, until = parse_time(q.get("since"), "since"), parse_time(q.get("until"), "until")
    fmt = q.get("format", "json")
    if fmt not in ("json", "csv"):
        raise RoomServerError("invalid_request", "Invalid value for format: json or csv.", 422)
    try:
        limit = int(q.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise RoomServerError("invalid_request", "Invalid value for limit: an integer.", 422) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise RoomServerError("invalid_request", f"Invalid value for limit: 1 to {MAX_LIMIT}.", 422)
    if since is not None and until is not None and until < since:
        raise RoomServerError("invalid_request", "Invalid period: until is before since.", 422)
    events = await svc.store.audit.query(since=since, until=until, limit=limit + 1)
    truncated = len(events) > limit
    events = events[:limit]
    headers = {"Cache-Control": "no-store"}
    if fmt == "csv":
        headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
        if truncated:
            headers["X-Truncated"] = "true"
        return web.Response(text=to_csv(events), content_type="text/csv", charset="utf-8", headers=headers)
    return web.json_response({"events": [event_json(e) for e in events], "truncated": truncated}, headers=headers)


def setup_audit(app: web.Application) -> None:
    app.router.add_get("/api/v1/audit", export)
