"""Snapshots of running rooms for the single-node default (``live/local.py``): kept across a restart."""

from __future__ import annotations

from .sql import Sql, writes


class LiveState:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def save(self, key: str, snapshot: str, now: int) -> None:
        self._conn.execute("INSERT INTO live_state (key, snapshot, updated_at) VALUES (?, ?, ?)"
                           " ON CONFLICT (key) DO UPDATE SET snapshot = excluded.snapshot,"
                           " updated_at = excluded.updated_at", (key, snapshot, now))

    def load(self, key: str) -> str | None:
        row = self._conn.execute("SELECT snapshot FROM live_state WHERE key = ?", (key,)).fetchone()
        return row["snapshot"] if row else None

    @writes
    def delete(self, key: str) -> None:
        self._conn.execute("DELETE FROM live_state WHERE key = ?", (key,))

    def keys(self) -> list[str]:
        return [r["key"] for r in self._conn.execute("SELECT key FROM live_state ORDER BY key").fetchall()]
