"""A stored day of consultations and calls, written straight into the store, for tests of the report page.

(The figures themselves are tested from a real morning played through the server:
``tests/ops/test_reports.py``.) Names and ids here must never show on a report.
"""

from __future__ import annotations

from typing import Any

from tests.support import sql

NAMES = ("Familie Nowak", "Frau Weber", "Erika Expertin", "acct_weber", "acct_erika", "r_nowak0", "call0")


def seed(svc: Any, now: int) -> None:
    """Seven consultations of team Nord; 8 calls to the foreigners' office (6 answered), 8 to the job centre (5)."""
    for dept_id, name, kind in (("auslaenderbehoerde", "Ausländerbehörde", "county"),
                                ("jobcenter", "Jobcenter", "county"), ("team_nord", "Team Nord", "agency")):
        if not sql(svc, "SELECT 1 FROM departments WHERE id = ?", dept_id):
            sql(svc, "INSERT INTO departments (id, name, kind, created_at) VALUES (?, ?, ?, ?)", dept_id, name, kind,
                now)
    sql(svc, "INSERT INTO accounts (id, username, display_name, role, department_id, created_at)"
             " VALUES ('acct_weber', 'weber', 'Frau Weber', 'counsellor', 'team_nord', ?)", now)
    sql(svc, "INSERT INTO accounts (id, username, display_name, role, department_id, created_at)"
             " VALUES ('acct_erika', 'erika', 'Erika Expertin', 'expert', 'auslaenderbehoerde', ?)", now)
    start = now - 3600
    for n in range(7):
        room = f"r_nowak{n}"
        sql(svc, "INSERT INTO rooms (id, title, waiting_room, max_participants, state, created_by, created_at,"
                 " ended_at) VALUES (?, ?, 0, 6, 'ended', 'acct_weber', ?, ?)", room, f"Familie Nowak {n}",
            start, start + 1800)
        sql(svc, "INSERT INTO consultation_figures (room_id, started_at, ended_at, team, reports, poor_reports,"
                 " seats, relay_seats) VALUES (?, ?, ?, 'team_nord', 10, ?, 2, ?)", room, start + n * 60,
            start + 1800, 0, 1 if n < 5 else 0)
    calls = [("auslaenderbehoerde", "accepted", 10 + n) for n in range(6)] + \
            [("auslaenderbehoerde", "timed_out", None), ("auslaenderbehoerde", "cancelled", None),
             ("jobcenter", "no_one", None), ("jobcenter", "no_one", None), ("jobcenter", "no_one", None)] + \
            [("jobcenter", "accepted", 30 + n) for n in range(5)]
    for n, (target, state, wait) in enumerate(calls):
        at = start + 120 + n * 60
        sql(svc, "INSERT INTO expert_calls (id, room_id, requested_by, kind, target, state, requested_at,"
                 " accepted_at, accepted_by, ended_at) VALUES (?, ?, 'acct_weber', 'department', ?, ?, ?, ?, ?, ?)",
            f"call{n}", f"r_nowak{n % 7}", target, state, at, at + wait if wait else None,
            "acct_erika" if wait else None, at + (wait or 60))
