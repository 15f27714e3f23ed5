"""Report periods (day, ISO week, month, custom) as half-open spans of unix seconds in the reports' time zone.

A county's day runs from local midnight to local midnight, so a period is cut in
``[reports] timezone`` (Europe/Berlin by default): the day the clocks go forward
has 23 hours, the day they go back 25, and a call at 23:30 local time counts on the
day the desk saw it. Pure: no I/O; bad input raises ``PeriodError`` with a code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

KINDS = ("day", "week", "month", "custom")
MAX_CUSTOM_DAYS = 366


class PeriodError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Period:
    kind: str
    label: str  # 2026-11-30, 2026-W48, 2026-11, 2026-11-01..2026-11-15
    first: date  # first day (local)
    last: date  # last day (local, inclusive)
    start: int  # unix seconds, inclusive
    end: int  # unix seconds, exclusive

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "label": self.label, "first_day": self.first.isoformat(),
                "last_day": self.last.isoformat(), "start": self.start, "end": self.end}


def _midnight(day: date, tz: ZoneInfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=tz).timestamp())


def _span(kind: str, label: str, first: date, last: date, tz: ZoneInfo) -> Period:
    return Period(kind, label, first, last, _midnight(first, tz), _midnight(last + timedelta(days=1), tz))


def day_of(value: str, field: str) -> date:
    try:
        day = date.fromisoformat(value)
    except (TypeError, ValueError):
        day = None
    if day is None or not 1970 <= day.year <= 9000:
        raise PeriodError("bad_date", f"{field} must be a date like 2026-11-30.")
    return day


def parse(kind: str, value: str | None, tz: ZoneInfo, *, until: str | None = None) -> Period:
    """The period ``kind`` named by ``value``: day 2026-11-30, week 2026-W48, month 2026-11, custom from..until."""
    if kind not in KINDS:
        raise PeriodError("bad_period", f"period must be one of {', '.join(KINDS)}.")
    if not value:
        raise PeriodError("bad_date", "Say which period (date=...).")
    if kind == "day":
        day = day_of(value, "date")
        return _span(kind, day.isoformat(), day, day, tz)
    if kind == "week":
        m = re.fullmatch(r"(\d{4})-W(\d{2})", value)
        try:
            in_range = m is not None and 1970 <= int(m.group(1)) <= 9000
            monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1) if m and in_range else None
        except ValueError:
            monday = None
        if monday is None:
            raise PeriodError("bad_date", "A week is written like 2026-W48 (ISO week).")
        return _span(kind, value, monday, monday + timedelta(days=6), tz)
    if kind == "month":
        m = re.fullmatch(r"(\d{4})-(\d{2})", value)
        if not m or not 1 <= int(m.group(2)) <= 12 or not 1970 <= int(m.group(1)) <= 9000:
            raise PeriodError("bad_date", "A month is written like 2026-11.")
        first = date(int(m.group(1)), int(m.group(2)), 1)
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return _span(kind, value, first, nxt - timedelta(days=1), tz)
    first, last = day_of(value, "from"), day_of(until or "", "until")
    if last < first:
        raise PeriodError("bad_range", "until lies before from.")
    if (last - first).days >= MAX_CUSTOM_DAYS:
        raise PeriodError("bad_range", f"A custom period is at most {MAX_CUSTOM_DAYS} days.")
    return _span(kind, f"{first.isoformat()}..{last.isoformat()}", first, last, tz)


def containing(kind: str, now: int, tz: ZoneInfo) -> Period:
    """The day, week or month (local) that ``now`` falls in."""
    today = datetime.fromtimestamp(now, tz).date()
    if kind == "day":
        return parse("day", today.isoformat(), tz)
    if kind == "week":
        year, week, _ = today.isocalendar()
        return parse("week", f"{year}-W{week:02d}", tz)
    return parse("month", f"{today.year}-{today.month:02d}", tz)


def previous_month(label: str, tz: ZoneInfo) -> Period:
    year, month = int(label[:4]), int(label[5:7])
    year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return parse("month", f"{year}-{month:02d}", tz)


def hour_of_week(at: int, tz: ZoneInfo) -> int:
    """0..167: Monday 00–01 local is 0."""
    local = datetime.fromtimestamp(at, tz)
    return local.weekday() * 24 + local.hour
