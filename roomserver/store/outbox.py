"""The durable outbox: outbound messages written with the change that causes them, sent by a worker.

A row is claimed by one node at a time with a lease: the claim is one conditional
``UPDATE … RETURNING`` that sets ``claimed_by`` and ``lease_until``. On PostgreSQL a
second node's concurrent claim waits on the row lock, re-checks the condition on the
new row version (the lease is taken) and skips the row, so no row goes to two nodes;
no ``SKIP LOCKED`` is needed and the same SQL runs on SQLite (one writer at a time).
A node that dies leaves its claims; they fall free when their lease runs out (or at
once, when the next single node starts).

Rows are grouped in lanes (one per webhook endpoint, one per e-mailed invite): only
the oldest pending row of a lane can be claimed, so a lane goes out strictly in order.
Times are unix milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .sql import Sql, writes

STATES = ("pending", "sent", "failed", "cancelled")


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: str
    lane: str
    payload: str
    state: str
    attempts: int
    created_at: int
    next_at: int
    claimed_by: str | None
    lease_until: int | None
    done_at: int | None
    last_error: str | None


def _row(r: Any) -> OutboxRow:
    return OutboxRow(**{k: r[k] for k in OutboxRow.__dataclass_fields__})


_CLAIM = """
UPDATE outbox SET claimed_by = ?, lease_until = ?, attempts = attempts + 1
WHERE id IN (
    SELECT o.id FROM outbox o
    JOIN (SELECT MIN(id) AS head FROM outbox WHERE state = 'pending' GROUP BY lane) h ON o.id = h.head
    WHERE o.next_at <= ? AND (o.lease_until IS NULL OR o.lease_until < ?)
    ORDER BY o.id LIMIT ?)
  AND state = 'pending' AND (lease_until IS NULL OR lease_until < ?)
RETURNING id, kind, lane, payload, state, attempts, created_at, next_at, claimed_by, lease_until, done_at,
          last_error
"""


class Outbox:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def add(self, *, kind: str, lane: str, payload: str, now: int, due: int | None = None) -> int:
        row = self._conn.execute(
            "INSERT INTO outbox (kind, lane, payload, state, attempts, created_at, next_at)"
            " VALUES (?, ?, ?, 'pending', 0, ?, ?) RETURNING id",
            (kind, lane, payload, now, now if due is None else due)).fetchone()
        return int(row["id"])

    @writes
    def claim(self, node: str, *, now: int, lease_ms: int, limit: int = 50) -> list[OutboxRow]:
        """Claim up to ``limit`` due lane heads for ``node`` until ``now + lease_ms``."""
        rows = self._conn.execute(_CLAIM, (node, now + lease_ms, now, now, limit, now)).fetchall()
        return sorted((_row(r) for r in rows), key=lambda r: r.id)

    @writes
    def sent(self, row_id: int, node: str, now: int) -> bool:
        return self._finish(row_id, node, "sent", now, None)

    @writes
    def failed(self, row_id: int, node: str, now: int, error: str) -> bool:
        return self._finish(row_id, node, "failed", now, error)

    @writes
    def dropped(self, row_id: int, node: str, now: int, reason: str) -> bool:
        """Nothing to send any more (the endpoint or the address is gone): cancelled by the worker."""
        return self._finish(row_id, node, "cancelled", now, reason)

    def _finish(self, row_id: int, node: str, state: str, now: int, error: str | None) -> bool:
        cur = self._conn.execute(
            "UPDATE outbox SET state = ?, done_at = ?, last_error = ?, claimed_by = NULL, lease_until = NULL"
            " WHERE id = ? AND claimed_by = ? AND state = 'pending'", (state, now, error, row_id, node))
        return cur.rowcount == 1

    @writes
    def retry_later(self, row_id: int, node: str, due: int, error: str) -> bool:
        cur = self._conn.execute(
            "UPDATE outbox SET next_at = ?, last_error = ?, claimed_by = NULL, lease_until = NULL"
            " WHERE id = ? AND claimed_by = ? AND state = 'pending'", (due, error, row_id, node))
        return cur.rowcount == 1

    @writes
    def release(self, *, except_node: str | None = None, nodes: list[str] | None = None) -> int:
        """Free the claims of nodes that are gone: every node but ``except_node``, or those in ``nodes``."""
        if nodes is not None:
            if not nodes:
                return 0
            marks = ",".join("?" * len(nodes))
            cur = self._conn.execute(f"UPDATE outbox SET claimed_by = NULL, lease_until = NULL"
                                     f" WHERE state = 'pending' AND claimed_by IN ({marks})", nodes)
        else:
            cur = self._conn.execute("UPDATE outbox SET claimed_by = NULL, lease_until = NULL"
                                     " WHERE state = 'pending' AND claimed_by IS NOT NULL AND claimed_by <> ?",
                                     (except_node or "",))
        return cur.rowcount

    def claimers(self) -> list[str]:
        return [r["claimed_by"] for r in self._conn.execute(
            "SELECT DISTINCT claimed_by FROM outbox WHERE state = 'pending' AND claimed_by IS NOT NULL").fetchall()]

    @writes
    def cancel_lane(self, lane: str, now: int, reason: str, *, only_kind_of: tuple[str, ...] | None = None) -> int:
        """Cancel every pending row of ``lane`` not being sent right now; how many."""
        cur = self._conn.execute(
            "UPDATE outbox SET state = 'cancelled', done_at = ?, last_error = ?"
            " WHERE lane = ? AND state = 'pending' AND claimed_by IS NULL", (now, reason, lane))
        return cur.rowcount

    def lane(self, lane: str) -> list[OutboxRow]:
        return [_row(r) for r in self._conn.execute("SELECT * FROM outbox WHERE lane = ? ORDER BY id",
                                                    (lane,)).fetchall()]

    def get(self, row_id: int) -> OutboxRow | None:
        r = self._conn.execute("SELECT * FROM outbox WHERE id = ?", (row_id,)).fetchone()
        return _row(r) if r else None

    @writes
    def retry(self, row_id: int, now: int) -> bool:
        """An operator sends a failed message again: pending, due now, attempts counted afresh."""
        cur = self._conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?, done_at = NULL"
            " WHERE id = ? AND state = 'failed'", (now, row_id))
        return cur.rowcount == 1

    @writes
    def retry_failed(self, now: int) -> int:
        cur = self._conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?, done_at = NULL WHERE state = 'failed'",
            (now,))
        return cur.rowcount

    @writes
    def trim(self, lane: str, keep: int, now: int) -> int:
        """Keep at most ``keep`` waiting rows in ``lane``: the oldest unclaimed ones beyond are dropped."""
        n = int(self._conn.execute("SELECT COUNT(*) AS n FROM outbox WHERE lane = ? AND state = 'pending'",
                                   (lane,)).fetchone()["n"])
        if n <= keep:
            return 0
        cur = self._conn.execute(
            "UPDATE outbox SET state = 'cancelled', done_at = ?, last_error = 'queue_full' WHERE id IN"
            " (SELECT id FROM outbox WHERE lane = ? AND state = 'pending' AND claimed_by IS NULL ORDER BY id LIMIT ?)",
            (now, lane, n - keep))
        return cur.rowcount

    @writes
    def purge(self, before: int) -> int:
        """Forget finished messages (sent, failed, cancelled) done before ``before``."""
        cur = self._conn.execute("DELETE FROM outbox WHERE state <> 'pending' AND done_at < ?", (before,))
        return cur.rowcount

    def counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> rows."""
        return {(r["kind"], r["state"]): int(r["n"]) for r in self._conn.execute(
            "SELECT kind, state, COUNT(*) AS n FROM outbox GROUP BY kind, state").fetchall()}

    def pending_by_lane(self, kind: str) -> dict[str, int]:
        return {r["lane"]: int(r["n"]) for r in self._conn.execute(
            "SELECT lane, COUNT(*) AS n FROM outbox WHERE kind = ? AND state = 'pending' GROUP BY lane",
            (kind,)).fetchall()}

    def list(self, *, state: str | None = None, kind: str | None = None, limit: int = 100) -> list[OutboxRow]:
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        sql = "SELECT * FROM outbox" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return [_row(r) for r in self._conn.execute(sql, (*args, limit)).fetchall()]
