"""The audit log: who did what and when, never any content. Append-only.

The table refuses updates (a trigger); rows leave it only through retention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .sql import Sql, writes


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: int
    actor: str
    actor_role: str | None
    action: str
    room_id: str | None
    subject: str | None
    detail: dict[str, Any]


class AuditLog:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def append(self, *, at: int, actor: str, action: str, actor_role: str | None = None,
               room_id: str | None = None, subject: str | None = None,
               detail: dict[str, Any] | None = None) -> int:
        row = self._conn.execute(
            "INSERT INTO audit_events (at, actor, actor_role, action, room_id, subject, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (at, actor, actor_role, action, room_id, subject,
             json.dumps(detail, sort_keys=True) if detail else None)).fetchone()
        return int(row["id"])

    def query(self, *, since: int | None = None, until: int | None = None, room_id: str | None = None,
              action: str | None = None, limit: int = 1000) -> list[AuditEvent]:
        clauses, args = [], []
        for clause, value in (("at >= ?", since), ("at < ?", until), ("room_id = ?", room_id),
                              ("action = ?", action)):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(f"SELECT * FROM audit_events {where} ORDER BY id LIMIT ?",
                                  (*args, limit)).fetchall()
        return [AuditEvent(id=r["id"], at=r["at"], actor=r["actor"], actor_role=r["actor_role"],
                           action=r["action"], room_id=r["room_id"], subject=r["subject"],
                           detail=json.loads(r["detail"]) if r["detail"] else {}) for r in rows]

    @writes
    def delete_older_than(self, cutoff: int) -> int:
        """Retention: drop events strictly older than ``cutoff``."""
        cur = self._conn.execute("DELETE FROM audit_events WHERE at < ?", (cutoff,))
        return cur.rowcount
