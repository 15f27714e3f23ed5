"""The figures from rows, by hand: medians, 90th percentiles, shares, and every rule that hides a small cell."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from roomserver.ops.figures import compute, p90
from roomserver.store.reports import ReportRows

TZ = ZoneInfo("Europe/Berlin")
T0 = 1_796_000_400  # a Tuesday morning
DEPTS = {"abh": ("Ausländerbehörde", "county"), "jc": ("Jobcenter", "county"), "soz": ("Sozialamt", "county"),
         "nord": ("Team Nord", "agency"), "sued": ("Team Süd", "agency")}
H = "< 5"


def call(n: int, target: str, state: str, answer: int | None = None, team: str | None = "nord",
         kind: str = "department") -> tuple:
    at = T0 + n * 60
    return (f"c{n}", f"r{n}", kind, target, state, at, at + answer if answer is not None else None,
            "e1" if answer is not None else None, team, at + 3600)


def rows(calls=(), consultations=(), callbacks=(), seat_events=(), declines=None) -> ReportRows:
    return ReportRows(T0, T0 + 86400, list(consultations), list(calls), declines or {}, list(seat_events),
                      list(callbacks), DEPTS)


def figures(report, group="county", key=""):
    return next(r["figures"] for r in report["rows"] if r["group"] == group and r["key"] == key)


def test_percentiles_by_nearest_rank() -> None:
    assert p90([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == 9
    assert p90([5]) == 5 and p90([3, 1, 2]) == 3


def test_counts_times_and_shares_with_enough_events() -> None:
    calls = [call(n, "abh", "accepted", answer=10 * (n + 1)) for n in range(10)] + \
            [call(10 + n, "abh", "timed_out") for n in range(5)]
    report = compute(rows(calls), min_events=5, tz=TZ)
    f = figures(report, "department", "abh")
    assert f["calls_placed"] == 15 and f["calls_answered"] == 10 and f["calls_timed_out"] == 5
    assert f["answer_rate"] == round(10 / 15, 3)
    assert f["answer_seconds_median"] == 55 and f["answer_seconds_p90"] == 90
    assert figures(report) == f | {"consultations": 0, "poor_quality_share": None, "relay_share": None}
    assert figures(report, "department", "jc")["calls_placed"] == 0
    assert figures(report, "department", "jc")["answer_rate"] is None  # no calls: no rate


def test_small_counts_and_what_would_give_them_away_are_hidden() -> None:
    # 12 calls to the office: 8 answered, 4 timed out (small); nothing else
    calls = [call(n, "abh", "accepted", answer=5) for n in range(8)] + [call(8 + n, "abh", "timed_out")
                                                                        for n in range(4)]
    f = figures(compute(rows(calls), min_events=5, tz=TZ), "department", "abh")
    assert f["calls_timed_out"] == H
    # one hidden part of the 12 placed: the smallest other part (a 0: cancelled, no one or ringing) goes too
    parts = [f[n] for n in ("calls_answered", "calls_timed_out", "calls_cancelled", "calls_no_one", "calls_ringing")]
    assert parts.count(H) == 2 and f["calls_answered"] == 8
    assert f["answer_rate"] == H  # 8 of 12: the rest is 4


def test_a_median_of_few_events_is_hidden_and_the_rate_of_a_small_total() -> None:
    calls = [call(n, "jc", "accepted", answer=7) for n in range(3)]
    f = figures(compute(rows(calls), min_events=5, tz=TZ), "department", "jc")
    assert f["calls_placed"] == H and f["answer_seconds_median"] == H and f["answer_rate"] == H


def test_a_team_is_hidden_when_it_would_give_another_team_away() -> None:
    consultations = [(f"r{n}", T0, T0 + 60, "nord" if n < 6 else "sued", 0, 0, 0, 0) for n in range(7)]
    report = compute(rows(consultations=consultations), min_events=5, tz=TZ)
    assert figures(report)["consultations"] == 7
    assert figures(report, "team", "sued")["consultations"] == H
    assert figures(report, "team", "nord")["consultations"] == H  # 7 - 6 would be Süd's 1


def test_a_consultation_of_no_team_keeps_the_teams_apart() -> None:
    consultations = [(f"r{n}", T0, T0 + 60, "nord" if n < 6 else ("sued" if n == 6 else None), 0, 0, 0, 0)
                     for n in range(9)]
    report = compute(rows(consultations=consultations), min_events=3, tz=TZ)
    assert figures(report, "team", "sued")["consultations"] == "< 3"
    assert figures(report, "team", "nord")["consultations"] == 6  # 9 - 6 = Süd's 1 plus 2 of no team


def test_quality_shares_and_callbacks() -> None:
    # 10 consultations of 10 reports each: 5 with 2 poor reports (poor: 1 in 5), 5 with 1; 5 relayed seats of 20
    consultations = [(f"r{n}", T0, T0 + 60, None, 10, 2 if n < 5 else 1, 2, 1 if n % 2 else 0) for n in range(10)]
    callbacks = [("department", "abh", T0, T0 + 60 * (n + 1), None) for n in range(6)] + \
                [("department", "abh", T0, None, None)]
    f = figures(compute(rows(consultations=consultations, callbacks=callbacks), min_events=5, tz=TZ))
    assert f["poor_quality_share"] == 0.5 and f["relay_share"] == 0.25
    assert f["callbacks_requested"] == 7
    assert f["callbacks_open"] == H and f["callbacks_done"] == H  # 1 open is small; 7 - 6 would show it
    assert f["callback_wait_minutes_median"] == 3.5 and f["callback_wait_minutes_p90"] == 6.0


def test_expert_time_from_seat_events() -> None:
    calls = [call(n, "abh", "accepted", answer=10) for n in range(5)]
    seats = []
    for n in range(5):
        accepted = T0 + n * 60 + 10
        seats += [(f"r{n}", "e1", "seat.join", accepted + 4 + n), (f"r{n}", "e1", "seat.leave", accepted + 604 + n)]
    f = figures(compute(rows(calls, seat_events=seats), min_events=5, tz=TZ), "department", "abh")
    assert f["join_seconds_median"] == 6 and f["join_seconds_p90"] == 8
    assert f["expert_minutes"] == 50.0


def test_busiest_hours_hide_small_cells_and_one_lone_hidden_hour() -> None:
    # 6 calls on Tuesday 10:00 local, 2 at 11:00: a shown total (8) with one hidden hour: a 0-hour is hidden too
    from datetime import datetime

    from roomserver.ops.periods import hour_of_week
    t = int(datetime(2026, 12, 1, 10, tzinfo=TZ).timestamp())
    slot = hour_of_week(t, TZ)
    calls = [(f"c{n}", "r", "department", "abh", "timed_out", t + n, None, None, None, None) for n in range(6)] + \
            [(f"d{n}", "r", "department", "abh", "timed_out", t + 3600 + n, None, None, None, None) for n in range(2)]
    cells = compute(rows(calls), min_events=5, tz=TZ)["hours"]["calls"]
    assert slot == 24 + 10 and cells[slot] == 6 and cells[slot + 1] == H
    assert cells.count(H) == 2 and sum(c for c in cells if c != H) == 6
