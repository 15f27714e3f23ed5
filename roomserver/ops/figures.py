"""The pilot evaluation's figures, computed from stored rows, with small cells hidden.

Pure: takes the rows ``store/reports.py`` read and returns a report as plain data.
Rows of the report: the whole county, each county office (department), each
interpreter language, each counselling team (agency department).

Privacy by construction: a figure built from fewer than ``min_events`` events is
hidden (shown as "< 5"):

* a count of 1..min-1 is hidden (0 is shown: it tells nothing about anyone);
* a median, 90th percentile or sum over fewer than min events is hidden;
* a share is hidden when its count or the rest (total minus count) is 1..min-1, when
  its total is under min, or when either was hidden;
* no subtraction gives a hidden figure away: where a shown total has exactly one
  hidden part (the outcomes of the calls placed, the callbacks requested and done,
  the offices, languages and teams of the county's total, the 168 hours of the week)
  the smallest other part is hidden too (a hidden cell is therefore 0 to 4).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from ..core.quality import POOR_SHARE
from ..store.reports import SEAT_GONE, SEAT_IN, ReportRows
from .periods import hour_of_week

HOURS_OF_WEEK = 168
# The parts a call ends in: together they are the calls placed.
OUTCOMES = ("calls_answered", "calls_timed_out", "calls_cancelled", "calls_no_one", "calls_ringing")
_OUTCOME_OF_STATE = {"accepted": "calls_answered", "timed_out": "calls_timed_out", "cancelled": "calls_cancelled",
                     "no_one": "calls_no_one", "ringing": "calls_ringing"}
COUNTS = ("consultations", "calls_placed", *OUTCOMES, "calls_declined", "callbacks_requested", "callbacks_done",
          "callbacks_open")
# Figures of a row, in the order the page and the CSV show them.
FIGURES = ("consultations", "calls_placed", "calls_answered", "calls_declined", "calls_timed_out",
           "calls_cancelled", "calls_no_one", "calls_ringing", "answer_rate", "answer_seconds_median",
           "answer_seconds_p90", "join_seconds_median", "join_seconds_p90", "expert_minutes",
           "callbacks_requested", "callbacks_done", "callbacks_open", "callback_wait_minutes_median",
           "callback_wait_minutes_p90", "poor_quality_share", "relay_share")
GROUPS = ("county", "department", "language", "team")


def hidden_label(min_events: int) -> str:
    return f"< {min_events}"


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def p90(values: list[float]) -> float:
    """The 90th percentile, nearest rank: the value 90 % of the events were at or under."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)])


@dataclass
class _Acc:
    """Raw material of one row before anything is hidden."""

    consultations: int = 0
    poor: int = 0
    rated: int = 0  # consultations with quality reports
    seats: int = 0
    relay_seats: int = 0
    placed: int = 0
    declined: int = 0
    answer: list[float] | None = None
    join: list[float] | None = None
    expert_seconds: list[float] | None = None
    cb_requested: int = 0
    cb_done: int = 0
    cb_wait: list[float] | None = None

    def __post_init__(self) -> None:
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.answer, self.join, self.expert_seconds, self.cb_wait = [], [], [], []
        self.rooms: set[str] = set()


def _expert_times(rows: ReportRows) -> dict[str, tuple[float | None, float | None]]:
    """call id -> (seconds from accept to the expert's seat, seconds the expert stayed), where known."""
    by_seat: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for room_id, subject, action, at in sorted(rows.seat_events, key=lambda e: e[3]):
        key = (room_id, subject)
        events = by_seat.get(key)
        if events is None:
            by_seat[key] = [(at, action)]
        else:
            events.append((at, action))
    out: dict[str, tuple[float | None, float | None]] = {}
    for call_id, room_id, _k, _t, state, _r, accepted_at, accepted_by, _team, room_ended in rows.calls:
        if state != "accepted" or accepted_at is None:
            continue
        events = by_seat.get((room_id, accepted_by), [])
        joined = next((at for at, action in events if action in SEAT_IN and at >= accepted_at), None)
        if joined is None:
            out[call_id] = (None, None)
            continue
        left = next((at for at, action in events if action in SEAT_GONE and at >= joined), room_ended)
        out[call_id] = (float(joined - accepted_at), float(left - joined) if left is not None else None)
    return out


def compute(rows: ReportRows, *, min_events: int, tz: ZoneInfo) -> dict[str, Any]:
    """The report of ``rows``: every row's figures (small cells hidden) and the calls per hour of the week."""
    accs: dict[tuple[str, str], _Acc] = {("county", ""): _Acc()}

    def acc(group: str, key: str) -> _Acc:
        found = accs.get((group, key))
        if found is None:
            found = accs[(group, key)] = _Acc()
        return found

    for dept_id, (_name, kind) in rows.departments.items():  # every office and team gets a row, even empty
        acc("department" if kind == "county" else "team", dept_id)
    for _room, _start, _end, team, reports, poor_reports, seats, relay_seats in rows.consultations:
        targets = [accs[("county", "")]] + ([acc("team", team)] if team else [])
        for a in targets:
            a.consultations += 1
            a.seats += seats
            a.relay_seats += relay_seats
            if reports:
                a.rated += 1
                a.poor += poor_reports >= POOR_SHARE * reports
    times = _expert_times(rows)
    hours = [0] * HOURS_OF_WEEK
    hour_cache: dict[int, int] = {}
    for call_id, room_id, kind, target, state, requested_at, accepted_at, _by, team, _end in rows.calls:
        quarter = requested_at - requested_at % 900  # every zone's offset is a multiple of 15 minutes
        how = hour_cache.get(quarter)
        if how is None:
            how = hour_cache[quarter] = hour_of_week(quarter, tz)
        hours[how] += 1
        targets = [accs[("county", "")], acc("department" if kind == "department" else "language", target)]
        if team:
            targets.append(acc("team", team))
        joined, stayed = times.get(call_id, (None, None))
        for a in targets:
            a.placed += 1
            a.outcomes[_OUTCOME_OF_STATE.get(state, "calls_ringing")] += 1
            a.declined += rows.declines.get(call_id, 0)
            a.rooms.add(room_id)
            if state == "accepted" and accepted_at is not None:
                a.answer.append(float(accepted_at - requested_at))
                if joined is not None:
                    a.join.append(joined)
                if stayed is not None:
                    a.expert_seconds.append(stayed)
    for kind, target, created_at, done_at, team in rows.callbacks:
        targets = [accs[("county", "")], acc("department" if kind == "department" else "language", target)]
        if team:
            targets.append(acc("team", team))
        for a in targets:
            a.cb_requested += 1
            if done_at is not None:
                a.cb_done += 1
                a.cb_wait.append((done_at - created_at) / 60)
    for (group, _key), a in accs.items():
        if group in ("department", "language"):
            a.consultations = len(a.rooms)  # consultations that called this office or language

    k = min_events
    out_rows = []
    for (group, key), a in sorted(accs.items(), key=lambda item: (GROUPS.index(item[0][0]), _label(rows, *item[0]))):
        out_rows.append({"group": group, "key": key, "label": _label(rows, group, key),
                         "figures": _row_figures(a, k), "_raw": a})
    _hide_complements(out_rows, k)
    for row in out_rows:
        _shares(row["figures"], row.pop("_raw"), k)
    hidden = hidden_label(k)
    hour_cells: list[Any] = [hidden if 0 < n < k else n for n in hours]
    county_placed = out_rows[0]["figures"]["calls_placed"]
    _complement(county_placed, hour_cells, hours, hidden)
    for row in out_rows:
        row["figures"] = {name: _show(row["figures"][name], hidden) for name in FIGURES}
    return {"min_events": k, "hidden": hidden, "timezone": tz.key, "rows": out_rows,
            "hours": {"calls": hour_cells}}


def _label(rows: ReportRows, group: str, key: str) -> str:
    if group == "county":
        return ""
    if group in ("department", "team"):
        return rows.departments.get(key, (key, ""))[0]
    return key


class _Hidden:
    """A figure that must not be shown (kept apart from real values until the end)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _count(n: int, k: int) -> Any:
    return _Hidden(n) if 0 < n < k else n


def _over(values: list[float], k: int, fn: Any, scale: float = 1.0, digits: int = 0) -> Any:
    if not values:
        return None
    value = round(fn(values) * scale, digits) if digits else int(round(fn(values) * scale))
    return _Hidden(value) if len(values) < k else value


def _row_figures(a: _Acc, k: int) -> dict[str, Any]:
    f: dict[str, Any] = {"consultations": _count(a.consultations, k), "calls_placed": _count(a.placed, k),
                         "calls_declined": _count(a.declined, k)}
    for name in OUTCOMES:
        f[name] = _count(a.outcomes[name], k)
    f["answer_seconds_median"] = _over(a.answer, k, median)
    f["answer_seconds_p90"] = _over(a.answer, k, p90)
    f["join_seconds_median"] = _over(a.join, k, median)
    f["join_seconds_p90"] = _over(a.join, k, p90)
    f["expert_minutes"] = _over(a.expert_seconds, k, sum, 1 / 60, 1)
    f["callbacks_requested"] = _count(a.cb_requested, k)
    f["callbacks_done"] = _count(a.cb_done, k)
    f["callbacks_open"] = _count(a.cb_requested - a.cb_done, k)
    f["callback_wait_minutes_median"] = _over(a.cb_wait, k, median, 1, 1)
    f["callback_wait_minutes_p90"] = _over(a.cb_wait, k, p90, 1, 1)
    return f


def _complement(total: Any, cells: list[Any], raw: list[int], hidden: Any = None, fixed: int = 0) -> None:
    """A shown total with exactly one hidden part: hide the smallest other part too (in place).

    The last ``fixed`` parts are not shown anywhere (nothing to hide there), so they are never picked.
    """
    if isinstance(total, _Hidden) or total is None:
        return
    is_hidden = [isinstance(c, _Hidden) or (hidden is not None and c == hidden) for c in cells]
    if sum(is_hidden) != 1:
        return
    others = [i for i, h in enumerate(is_hidden) if not h and i < len(cells) - fixed]
    if not others:
        return
    smallest = min(others, key=lambda i: raw[i])
    cells[smallest] = hidden if hidden is not None else _Hidden(raw[smallest])


def _hide_complements(out_rows: list[dict[str, Any]], k: int) -> None:
    county = out_rows[0]
    # within each row: outcomes of the calls placed; callbacks done + open = requested
    for row in out_rows:
        f, a = row["figures"], row["_raw"]
        cells = [f[n] for n in OUTCOMES]
        _complement(f["calls_placed"], cells, [a.outcomes[n] for n in OUTCOMES])
        f.update(zip(OUTCOMES, cells))
        cells = [f["callbacks_done"], f["callbacks_open"]]
        _complement(f["callbacks_requested"], cells, [a.cb_done, a.cb_requested - a.cb_done])
        f["callbacks_done"], f["callbacks_open"] = cells
    # across rows: the offices and languages make up the county's calls and callbacks; the teams its consultations
    sets = ((("department", "language"), ("calls_placed", "callbacks_requested", *OUTCOMES, "calls_declined",
                                          "callbacks_done", "callbacks_open")),
            (("team",), ("consultations",)))
    for groups, names in sets:
        members = [r for r in out_rows if r["group"] in groups]
        for name in names:
            cells = [r["figures"][name] for r in members]
            raw = [_raw_value(r["figures"][name]) for r in members]
            if groups == ("team",):  # consultations of no team are a part too
                total = county["figures"][name]
                rest = _raw_value(total) - sum(raw) if not isinstance(total, _Hidden) else 0
                cells.append(_count(rest, k))
                raw.append(rest)
            _complement(county["figures"][name], cells, raw, fixed=1 if groups == ("team",) else 0)
            for r, c in zip(members, cells):
                r["figures"][name] = c


def _raw_value(v: Any) -> Any:
    return v.value if isinstance(v, _Hidden) else (v or 0)


def _shares(f: dict[str, Any], a: _Acc, k: int) -> None:
    def share(num: int, den: int, num_cell: Any = None, den_cell: Any = None) -> Any:
        if den == 0:
            return None
        value = round(num / den, 3)
        rest = den - num
        if den < k or 0 < num < k or 0 < rest < k or isinstance(num_cell, _Hidden) or isinstance(den_cell, _Hidden):
            return _Hidden(value)
        return value
    finished = a.placed - a.outcomes["calls_ringing"]
    f["answer_rate"] = share(a.outcomes["calls_answered"], finished, f["calls_answered"], f["calls_placed"])
    f["poor_quality_share"] = share(a.poor, a.rated)
    f["relay_share"] = share(a.relay_seats, a.seats)


def _show(v: Any, hidden: str) -> Any:
    return hidden if isinstance(v, _Hidden) else v


def csv_rows(report: Mapping[str, Any]) -> list[list[Any]]:
    """The report's rows as a table (header first): what the CSV download holds."""
    out: list[list[Any]] = [["group", "key", "label", *FIGURES]]
    for row in report["rows"]:
        out.append([row["group"], row["key"], row["label"], *("" if row["figures"][n] is None else row["figures"][n]
                                                              for n in FIGURES)])
    return out
