"""The ledger of issued tokens: what makes tokens single-use and revocable.

Every token the server mints is recorded here by its ``jti``. Spending a
single-use token is one conditional UPDATE, so of two joins racing with the
same token exactly one wins.
"""

from __future__ import annotations

from ..core.tokens import TokenRecord
from .sql import Row, Sql, writes


def _record(r: Row) -> TokenRecord:
    return TokenRecord(jti=r["jti"], room_id=r["room_id"], role=r["role"], identity=r["identity"],
                       not_before=r["not_before"], expires_at=r["expires_at"], single_use=bool(r["single_use"]),
                       used_at=r["used_at"], revoked_at=r["revoked_at"])


class TokenLedger:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def record(self, record: TokenRecord, *, issued_by: str, issued_at: int, label: str = "") -> None:
        self._conn.execute(
            "INSERT INTO issued_tokens (jti, room_id, role, identity, not_before, expires_at, single_use,"
            " issued_by, issued_at, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.jti, record.room_id, record.role, record.identity, record.not_before, record.expires_at,
             int(record.single_use), issued_by, issued_at, label))

    def get(self, jti: str) -> TokenRecord | None:
        r = self._conn.execute("SELECT * FROM issued_tokens WHERE jti = ?", (jti,)).fetchone()
        return _record(r) if r else None

    def label(self, jti: str) -> str:
        r = self._conn.execute("SELECT label FROM issued_tokens WHERE jti = ?", (jti,)).fetchone()
        return r["label"] if r else ""

    @writes
    def spend(self, jti: str, now: int) -> bool:
        """Mark a token used. For a single-use token only the first call returns True."""
        cur = self._conn.execute(
            "UPDATE issued_tokens SET used_at = ? WHERE jti = ? AND revoked_at IS NULL"
            " AND (used_at IS NULL OR single_use = 0)", (now, jti))
        return cur.rowcount == 1

    @writes
    def rewindow(self, jti: str, not_before: int, expires_at: int) -> bool:
        """Move an unused, unwithdrawn token's validity window (its appointment moved)."""
        cur = self._conn.execute(
            "UPDATE issued_tokens SET not_before = ?, expires_at = ? WHERE jti = ? AND revoked_at IS NULL"
            " AND used_at IS NULL", (not_before, expires_at, jti))
        return cur.rowcount == 1

    @writes
    def revoke(self, jti: str, now: int) -> bool:
        """Withdraw one token; False if it was unknown or already withdrawn."""
        cur = self._conn.execute(
            "UPDATE issued_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL", (now, jti))
        return cur.rowcount == 1

    @writes
    def revoke_identity(self, room_id: str, identity: str, now: int) -> int:
        """Withdraw every token of one person in one room (removal, denial)."""
        cur = self._conn.execute(
            "UPDATE issued_tokens SET revoked_at = ? WHERE room_id = ? AND identity = ? AND revoked_at IS NULL",
            (now, room_id, identity))
        return cur.rowcount

    def for_room(self, room_id: str) -> list[tuple[TokenRecord, str, str, int]]:
        """Every token of a room with its label, issuer and issue time, newest first."""
        rows = self._conn.execute(
            "SELECT * FROM issued_tokens WHERE room_id = ? ORDER BY issued_at DESC, jti", (room_id,)).fetchall()
        return [(_record(r), r["label"], r["issued_by"], r["issued_at"]) for r in rows]
