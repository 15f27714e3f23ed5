"""The pilot evaluation at ``/reports``: the figures as tables and SVG charts, for operators and admins.

Server-rendered, no script: a period picker (a GET form), "at a glance", one table of
the county's offices and interpreter languages, one of the counselling teams, charts of
the answer rate and the time to answer, the busiest hours of the week, and the stored
months. The downloads are the REST API's CSV and JSON (``api/reports.py``), which the
session cookie opens. Aggregates only: the page shows what the API shows.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..api.reports import parse_period
from ..core.errors import RoomServerError
from ..domain.auth import Principal
from ..i18n import translate
from ..ops import reports
from ..services import services_of
from . import charts, pageauth
from .render import page_language, render

# The columns of the offices table and of the teams table, in order.
OFFICE_COLUMNS = ("calls_placed", "calls_answered", "calls_declined", "calls_timed_out", "calls_cancelled",
                  "calls_no_one", "answer_rate", "answer_seconds_median", "answer_seconds_p90",
                  "join_seconds_median", "expert_minutes", "callbacks_requested", "callbacks_done",
                  "callback_wait_minutes_median")
TEAM_COLUMNS = ("consultations", "calls_placed", "calls_answered", "answer_rate", "callbacks_requested",
                "poor_quality_share", "relay_share")
GLANCE = ("consultations", "calls_placed", "answer_rate", "answer_seconds_median", "callbacks_requested",
          "poor_quality_share")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def formatter(lang: str, hidden: str):  # type: ignore[no-untyped-def]
    """How a figure is written: shares in per cent, seconds and minutes with their unit, German commas."""
    def number(value: float, digits: int) -> str:
        text = f"{value:,.{digits}f}"
        if lang == "de":
            text = text.replace(",", "\u202f").replace(".", ",")
        return text

    def fmt(value: Any, name: str = "") -> str:
        if value is None:
            return "–"
        if isinstance(value, str):
            return value  # the hidden mark
        if name.endswith("_rate") or name.endswith("_share"):
            return number(100 * value, 1) + "\u00a0%"
        if "_seconds_" in name:
            return number(value, 0) + "\u00a0s"
        if "_minutes" in name:
            return number(value, 1) + "\u00a0min"
        return number(value, 0)
    return fmt


def _label(lang: str, row: dict[str, Any]) -> str:
    if row["group"] == "county":
        return translate(lang, "reports.county")
    if row["group"] == "language":
        key = f"admin.lang.{row['key']}"
        text = translate(lang, key)
        return row["key"] if text == key else text
    return row["label"]


@pageauth.require_roles("operator", "admin")
async def reports_page(request: web.Request, principal: Principal) -> web.StreamResponse:
    svc = services_of(request.app)
    lang = page_language(request)
    query = {k: v for k, v in request.query.items() if v}  # the form sends its empty fields too
    error: str | None = None
    try:
        period = parse_period(svc, query)
    except RoomServerError as exc:
        error = exc.message
        period = parse_period(svc, {})
    report = await reports.build(svc.store, period, svc.settings, svc.now())
    months = await svc.store.reports.months()
    fmt = formatter(lang, report["hidden"])
    rows = report["rows"]
    for row in rows:
        row["name"] = _label(lang, row)
    county = rows[0]
    offices = [county] + [r for r in rows if r["group"] in ("department", "language")]
    teams = [r for r in rows if r["group"] == "team"]
    callable_rows = [r for r in rows if r["group"] in ("department", "language") and r["figures"]["calls_placed"]]
    answer_chart = charts.bar_chart([(r["name"], r["figures"]["answer_rate"]) for r in callable_rows],
                                    lambda v: fmt(v, "answer_rate"), maximum=1.0)
    time_chart = charts.bar_chart([(r["name"], r["figures"]["answer_seconds_median"]) for r in callable_rows],
                                  lambda v: fmt(v, "answer_seconds_median"))
    cells = report["hours"]["calls"]
    levels = charts.heat_levels(cells)
    hours = [[(fmt(cells[d * 24 + h]), levels[d * 24 + h]) for h in range(24)] for d in range(7)]
    params = {"period": period.kind}
    if period.kind == "custom":
        params.update({"from": period.first.isoformat(), "until": period.last.isoformat()})
    else:
        params["date"] = period.label
    downloads = "&".join(f"{k}={v}" for k, v in params.items())
    response = render(
        request, "reports.html", status=422 if error else 200, principal=principal, csrf=principal.csrf,
        report=report, period=period, error=error, fmt=fmt, county=county, offices=offices, teams=teams,
        office_columns=OFFICE_COLUMNS, team_columns=TEAM_COLUMNS, glance=GLANCE, answer_chart=answer_chart,
        time_chart=time_chart, hours=hours, weekdays=WEEKDAYS, months=months, downloads=downloads,
        form={"period": query.get("period", period.kind), "date": query.get("date", "" if period.kind == "custom"
                                                                              else period.label),
              "from": query.get("from", ""), "until": query.get("until", "")})
    pageauth.no_store(response)
    return response


def setup_reportspage(app: web.Application) -> None:
    app.router.add_get("/reports", reports_page)
