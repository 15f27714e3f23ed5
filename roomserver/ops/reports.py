"""Building the pilot evaluation's reports: read the rows of a period, compute the figures, keep finished months.

The figures are computed in the store's reader thread (one unit of work reads the
rows and runs ``figures.compute``), never on the event loop: a month of a busy
county is a few hundred thousand rows. A period that reaches back past what
retention keeps is marked ``incomplete`` — a figure can only be computed while
its events exist. Finished months are therefore stored as aggregates of their own
(``report_months``, small cells already hidden) by the daily retention task, and
kept ``[reports] months_kept`` months.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Settings
from ..store import Store, Tx
from . import figures, periods
from .auditlog import DAY

log = logging.getLogger("roomserver.reports")

MONTH_SETTLE_DAYS = 2  # a month is stored this long after its end: calls late on its last day have settled


def zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.reports.timezone)


def horizon(settings: Settings, now: int) -> int:
    """The oldest moment whose events retention still keeps (calls go with the records, the rest with the audit log)."""
    days = min(settings.audit.retention_days, settings.privacy.records_retention_days)
    return now - days * DAY


def report_of(tx: Tx, period: periods.Period, settings: Settings, now: int) -> dict[str, Any]:
    """A unit of work: the period's report."""
    rows = tx.reports.rows(period.start, period.end)
    report = figures.compute(rows, min_events=settings.reports.min_events, tz=zone(settings))
    report["period"] = period.as_dict()
    report["incomplete"] = period.start < horizon(settings, now)
    report["partial"] = period.end > now  # still running: figures will grow
    report["stored"] = False
    return report


async def build(store: Store, period: periods.Period, settings: Settings, now: int) -> dict[str, Any]:
    """The period's report; a finished month comes from the stored months when kept (retention may thin it out)."""
    if period.kind == "month":
        kept = await store.reports.month(period.label)
        if kept is not None:
            kept["stored"] = True
            return kept
    return await store.read(lambda tx: report_of(tx, period, settings, now))


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in figures.csv_rows(report):
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def hours_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["weekday", "hour", "calls"])
    for at, value in enumerate(report["hours"]["calls"]):
        writer.writerow([at // 24 + 1, at % 24, value])
    return out.getvalue()


def csv_cell(value: Any) -> str:
    """A cell no spreadsheet runs as a formula (labels are typed by admins)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


async def store_finished_months(store: Store, settings: Settings, now: int) -> list[str]:
    """Keep every finished, settled month whose records still exist and that is not kept yet; drop old ones."""
    tz = zone(settings)
    stored: list[str] = []
    month = periods.previous_month(periods.containing("month", now, tz).label, tz)
    oldest = horizon(settings, now)
    while month.end + MONTH_SETTLE_DAYS * DAY > now:
        month = periods.previous_month(month.label, tz)
    while month.end > oldest:  # some of its records are still there
        if month.start >= oldest or await store.reports.month(month.label) is None:
            def unit(tx: Tx, m: periods.Period = month) -> bool:
                report = report_of(tx, m, settings, now)
                county = report["rows"][0]["figures"]
                if not (county["consultations"] or county["calls_placed"] or county["callbacks_requested"]):
                    return False  # nothing happened (before the pilot began): nothing to keep
                report["stored"] = True
                return tx.reports.store_month(m.label, report, now)
            if await store.write(unit):
                stored.append(month.label)
        month = periods.previous_month(month.label, tz)
    keep = settings.reports.months_kept
    if keep:
        first = periods.containing("month", now, tz)
        for _ in range(keep):
            first = periods.previous_month(first.label, tz)
        await store.reports.drop_months_before(first.label)
    if stored:
        log.info("reports: stored the figures of %s", ", ".join(stored))
    return stored
