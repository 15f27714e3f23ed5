"""REST: the pilot evaluation's figures (``GET /api/v1/reports/...``), as JSON or CSV.

Thin: parse the period, authorise (``reports.read``: admins, operators, the system
API key), build the report off the event loop (``ops/reports.py``), answer.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from ..core.errors import RoomServerError
from ..core.roles import ApiAction
from ..ops import figures as figures_
from ..ops import periods, reports
from ..services import Services, services_of
from .handlers import authenticate, require


def parse_period(svc: Services, query: Any) -> periods.Period:
    """The period named by ``period``, ``date`` (or ``from``/``until``); the current month when none is named."""
    kind = query.get("period", "month")
    tz = reports.zone(svc.settings)
    try:
        for name in ("from", "until"):  # dates whenever given, also beside another period
            if name in query:
                periods.day_of(query[name], name)
        if kind in ("day", "week", "month") and not query.get("date"):
            return periods.containing(kind, svc.now(), tz)
        if kind == "custom":
            return periods.parse(kind, query.get("from"), tz, until=query.get("until"))
        return periods.parse(kind, query.get("date"), tz)
    except periods.PeriodError as exc:
        raise RoomServerError(exc.code, exc.message, 422) from None


def _format(query: Any) -> str:
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise RoomServerError("invalid_request", "Invalid value for format: json or csv.", 422)
    return fmt


async def _report(request: web.Request) -> tuple[dict[str, Any], str]:
    svc = services_of(request.app)
    require(await authenticate(request), ApiAction.REPORTS_READ)
    fmt = _format(request.query)
    period = parse_period(svc, request.query)
    return await reports.build(svc.store, period, svc.settings, svc.now()), fmt


def _csv(text: str, name: str) -> web.Response:
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}"'})


async def figures(request: web.Request) -> web.Response:
    report, fmt = await _report(request)
    if fmt == "csv":
        return _csv(reports.to_csv(report), f"figures-{report['period']['label'].replace('..', '_')}.csv")
    return web.json_response(report, headers={"Cache-Control": "no-store"})


async def hours(request: web.Request) -> web.Response:
    report, fmt = await _report(request)
    if fmt == "csv":
        return _csv(reports.hours_csv(report), f"hours-{report['period']['label'].replace('..', '_')}.csv")
    return web.json_response({"period": report["period"], "min_events": report["min_events"],
                              "hidden": report["hidden"], "timezone": report["timezone"],
                              "incomplete": report["incomplete"], "calls": report["hours"]["calls"]},
                             headers={"Cache-Control": "no-store"})


async def months(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    require(await authenticate(request), ApiAction.REPORTS_READ)
    fmt = _format(request.query)
    kept = await svc.store.reports.months()
    if fmt == "csv":
        table = [["month", *figures_.csv_rows(kept[0][1])[0]]] if kept else [["month"]]
        for month, report in kept:
            table.extend([month, *row] for row in figures_.csv_rows(report)[1:])
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        for row in table:
            writer.writerow([reports.csv_cell(v) for v in row])
        return _csv(out.getvalue(), "months.csv")
    return web.json_response({"months": [{"month": m, "report": r} for m, r in kept]},
                             headers={"Cache-Control": "no-store"})


def setup_reports_api(app: web.Application) -> None:
    app.router.add_get("/api/v1/reports/figures", figures)
    app.router.add_get("/api/v1/reports/hours", hours)
    app.router.add_get("/api/v1/reports/months", months)
