"""What the pilot evaluation reads and keeps: consultation figures, and the rows a report is computed from.

Written once for both engines. The report itself (medians, shares, hiding of small
cells) is computed in Python from these rows (``ops/figures.py``): the same figure
on SQLite and PostgreSQL, no engine-specific percentile functions. Reads go by
time, over the indexes of migration 0008; rows come back as plain tuples.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Mapping

from .sql import Sql, writes

# A seat event that ends an expert's time in a room (besides the room's end).
SEAT_GONE = ("seat.leave", "seat.timeout", "seat.remove")
SEAT_IN = ("seat.join", "seat.admit")
SEAT_SLACK = 86_400  # an expert's seat events are read up to a day past the period (a call late on its last day)


@dataclass(frozen=True)
class ReportRows:
    """Everything one report needs, for calls and consultations that began in [start, end)."""

    start: int
    end: int
    # (room_id, started_at, ended_at, team, reports, poor_reports, seats, relay_seats)
    consultations: list[tuple[Any, ...]] = field(default_factory=list)
    # (id, room_id, kind, target, state, requested_at, accepted_at, accepted_by, team, room_ended_at)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    declines: dict[str, int] = field(default_factory=dict)  # call id -> declines
    # (room_id, subject, action, at): seat events of accepted experts
    seat_events: list[tuple[Any, ...]] = field(default_factory=list)
    # (kind, target, created_at, done_at, team)
    callbacks: list[tuple[Any, ...]] = field(default_factory=list)
    departments: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, kind)


def _tuples(rows: list[Any]) -> list[tuple[Any, ...]]:
    """Rows by position, whichever engine: SQLite's rows are sequences, PostgreSQL's are dicts (in column order)."""
    if rows and isinstance(rows[0], dict):
        return [tuple(r.values()) for r in rows]
    return [tuple(r) for r in rows]


class ReportQueries:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    def _select(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows as plain tuples; on SQLite straight from the engine (no Row objects: a month is 100,000 rows)."""
        if isinstance(self._conn, sqlite3.Connection):
            cursor = self._conn.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, args).fetchall()
        return _tuples(self._conn.execute(sql, args).fetchall())

    @writes
    def consultation_started(self, room_id: str, at: int) -> None:
        """The room went live: its consultation began; it belongs to its creator's agency team now."""
        self._conn.execute(
            "INSERT INTO consultation_figures (room_id, started_at, team)"
            " SELECT r.id, ?, (SELECT d.id FROM accounts c JOIN departments d ON d.id = c.department_id"
            "                  AND d.kind = 'agency' WHERE c.id = r.created_by)"
            " FROM rooms r WHERE r.id = ? ON CONFLICT (room_id) DO NOTHING", (at, room_id))

    @writes
    def consultation_ended(self, room_id: str, at: int, quality: Mapping[str, int]) -> None:
        self._conn.execute(
            "UPDATE consultation_figures SET ended_at = ?, reports = ?, poor_reports = ?, seats = ?,"
            " relay_seats = ? WHERE room_id = ? AND ended_at IS NULL",
            (at, int(quality.get("reports", 0)), int(quality.get("poor_reports", 0)),
             int(quality.get("seats", 0)), int(quality.get("relay_seats", 0)), room_id))

    @writes
    def delete_older_than(self, cutoff: int) -> int:
        """Retention (with the audit log): consultations that started before ``cutoff`` go."""
        return self._conn.execute("DELETE FROM consultation_figures WHERE started_at < ?", (cutoff,)).rowcount

    def rows(self, start: int, end: int) -> ReportRows:
        """The rows of everything that began in [start, end)."""
        consultations = self._select(
            "SELECT room_id, started_at, ended_at, team, reports, poor_reports, seats, relay_seats"
            " FROM consultation_figures WHERE started_at >= ? AND started_at < ?", (start, end))
        calls = self._select(
            "SELECT c.id, c.room_id, c.kind, c.target, c.state, c.requested_at, c.accepted_at, c.accepted_by,"
            " f.team, f.ended_at FROM expert_calls c LEFT JOIN consultation_figures f ON f.room_id = c.room_id"
            " WHERE c.requested_at >= ? AND c.requested_at < ?", (start, end))
        declines = {r[0]: int(r[1]) for r in self._select(
            "SELECT e.call_id, COUNT(*) FROM call_events e JOIN expert_calls c ON c.id = e.call_id"
            " WHERE c.requested_at >= ? AND c.requested_at < ? AND e.event = 'declined' GROUP BY e.call_id",
            (start, end))}
        accepted = {(c[1], c[7]) for c in calls if c[4] == "accepted"}
        seat_events: list[tuple[Any, ...]] = []
        if accepted:
            actions = SEAT_IN + SEAT_GONE
            marks = ",".join("?" * len(actions))
            for r in self._select(
                    f"SELECT room_id, subject, action, at FROM audit_events WHERE action IN ({marks})"
                    " AND at >= ? AND at < ?", (*actions, start, end + SEAT_SLACK)):
                if (r[0], r[1]) in accepted:
                    seat_events.append(r)
        callbacks = self._select(
            "SELECT b.kind, b.target, b.created_at, b.done_at, f.team FROM callback_requests b"
            " LEFT JOIN consultation_figures f ON f.room_id = b.room_id"
            " WHERE b.created_at >= ? AND b.created_at < ?", (start, end))
        departments = {r[0]: (r[1], r[2]) for r in self._select("SELECT id, name, kind FROM departments", ())}
        return ReportRows(start, end, consultations, calls, declines, seat_events, callbacks, departments)

    def department_calls(self, since: int) -> list[tuple[str, str]]:
        """(department, state) of the calls to departments placed since ``since`` (the answer-rate alert)."""
        return [(r[0], r[1]) for r in self._select(
            "SELECT target, state FROM expert_calls WHERE requested_at >= ? AND kind = 'department'", (since,))]

    # stored months ---------------------------------------------------------------------------------
    @writes
    def store_month(self, month: str, figures: Mapping[str, Any], at: int) -> bool:
        """Keep a finished month's report (small cells already hidden); False if it was kept already."""
        cur = self._conn.execute("INSERT INTO report_months (month, figures, stored_at) VALUES (?, ?, ?)"
                                 " ON CONFLICT (month) DO NOTHING", (month, json.dumps(figures, sort_keys=True), at))
        return cur.rowcount == 1

    def months(self) -> list[tuple[str, dict[str, Any]]]:
        rows = self._conn.execute("SELECT month, figures FROM report_months ORDER BY month").fetchall()
        return [(r["month"], json.loads(r["figures"])) for r in rows]

    def month(self, month: str) -> dict[str, Any] | None:
        r = self._conn.execute("SELECT figures FROM report_months WHERE month = ?", (month,)).fetchone()
        return json.loads(r["figures"]) if r else None

    @writes
    def drop_months_before(self, month: str) -> int:
        return self._conn.execute("DELETE FROM report_months WHERE month < ?", (month,)).rowcount
