"""Consents to the citizens' data notice: when, for which invite (jti), to which notice version.

No content and no name: the jti ties a consent to its invite in ``issued_tokens``.
A withdrawal keeps the row and stamps ``withdrawn_at``, so both stay on record.
Rows leave only with their consultation (record retention, ``retention.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .sql import Row, Sql, writes


@dataclass(frozen=True)
class Consent:
    id: int
    room_id: str
    jti: str
    notice: str
    given_at: int
    withdrawn_at: int | None


@dataclass(frozen=True)
class ConsentListing:
    """A consent with what an operator may see beside it: the invite's role and the room's title."""

    consent: Consent
    role: str
    room_title: str


def _consent(r: Row) -> Consent:
    return Consent(id=r["id"], room_id=r["room_id"], jti=r["jti"], notice=r["notice"], given_at=r["given_at"],
                   withdrawn_at=r["withdrawn_at"])


class ConsentLog:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def record(self, room_id: str, jti: str, notice: str, now: int) -> Consent:
        row = self._conn.execute("INSERT INTO consents (room_id, jti, notice, given_at) VALUES (?, ?, ?, ?)"
                                 " RETURNING id", (room_id, jti, notice, now)).fetchone()
        return Consent(id=int(row["id"]), room_id=room_id, jti=jti, notice=notice, given_at=now, withdrawn_at=None)

    def latest(self, jti: str) -> Consent | None:
        """The newest consent given with this invite (withdrawn or not)."""
        r = self._conn.execute("SELECT * FROM consents WHERE jti = ? ORDER BY id DESC LIMIT 1", (jti,)).fetchone()
        return _consent(r) if r else None

    @writes
    def withdraw(self, jti: str, now: int) -> int:
        """Withdraw every standing consent given with this invite; how many there were."""
        cur = self._conn.execute("UPDATE consents SET withdrawn_at = ? WHERE jti = ? AND withdrawn_at IS NULL",
                                 (now, jti))
        return cur.rowcount

    def recent(self, *, room_id: str | None = None, limit: int = 200) -> list[ConsentListing]:
        """The newest consents first, with the invite's role and the room's title."""
        where, args = ("WHERE c.room_id = ?", [room_id]) if room_id is not None else ("", [])
        rows = self._conn.execute(
            "SELECT c.*, COALESCE(t.role, '') AS role, COALESCE(r.title, '') AS room_title FROM consents c"
            " LEFT JOIN issued_tokens t ON t.jti = c.jti LEFT JOIN rooms r ON r.id = c.room_id"
            f" {where} ORDER BY c.id DESC LIMIT ?", (*args, limit)).fetchall()
        return [ConsentListing(consent=_consent(r), role=r["role"], room_title=r["room_title"]) for r in rows]
