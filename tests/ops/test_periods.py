"""Report periods in the county's time zone: days, ISO weeks, months, custom spans, across the clock changes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from roomserver.ops.periods import PeriodError, containing, hour_of_week, parse, previous_month

TZ = ZoneInfo("Europe/Berlin")


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=TZ).timestamp())


def test_days_have_23_24_or_25_hours() -> None:
    assert parse("day", "2026-03-29", TZ).end - parse("day", "2026-03-29", TZ).start == 23 * 3600
    assert parse("day", "2026-10-25", TZ).end - parse("day", "2026-10-25", TZ).start == 25 * 3600
    day = parse("day", "2026-11-30", TZ)
    assert (day.start, day.end) == (ts(2026, 11, 30), ts(2026, 12, 1)) and day.end - day.start == 86400


def test_weeks_months_and_custom_spans() -> None:
    week = parse("week", "2026-W01", TZ)
    assert week.first.isoformat() == "2025-12-29" and week.last.isoformat() == "2026-01-04"
    month = parse("month", "2026-12", TZ)
    assert (month.start, month.end) == (ts(2026, 12, 1), ts(2027, 1, 1))
    custom = parse("custom", "2026-11-01", TZ, until="2026-11-01")
    assert custom.end - custom.start == 86400 and custom.label == "2026-11-01..2026-11-01"
    assert previous_month("2026-01", TZ).label == "2025-12"


@pytest.mark.parametrize("kind,value,until,code", [
    ("year", "2026", None, "bad_period"), ("day", "2026-02-30", None, "bad_date"), ("day", "", None, "bad_date"),
    ("week", "2026-W54", None, "bad_date"), ("week", "2026-48", None, "bad_date"), ("month", "2026-00", None, "bad_date"),
    ("custom", "2026-11-02", "2026-11-01", "bad_range"), ("custom", "2025-01-01", "2026-01-02", "bad_range"),
    ("custom", "2026-11-01", None, "bad_date")])
def test_bad_periods_say_why(kind, value, until, code) -> None:
    with pytest.raises(PeriodError) as err:
        parse(kind, value, TZ, until=until)
    assert err.value.code == code


def test_containing_and_hour_of_week() -> None:
    now = ts(2026, 12, 1, 0, 30)  # Tuesday 00:30 local (Monday 23:30 UTC)
    assert containing("day", now, TZ).label == "2026-12-01"
    assert containing("week", now, TZ).label == "2026-W49"
    assert containing("month", now, TZ).label == "2026-12"
    assert hour_of_week(now, TZ) == 24 + 0
    assert hour_of_week(ts(2026, 3, 29, 3, 0), TZ) == 6 * 24 + 3  # the first hour after the clocks went forward
