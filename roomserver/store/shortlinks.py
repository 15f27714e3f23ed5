"""Short join links: which invite a (hashed) short code stands for."""

from __future__ import annotations

from dataclasses import dataclass

from .sql import Sql, writes


@dataclass(frozen=True)
class ShortLink:
    code_hash: str
    jti: str
    room_id: str
    name: str
    dept: str | None
    created_at: int


class ShortLinks:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def add(self, link: ShortLink) -> None:
        self._conn.execute(
            "INSERT INTO short_links (code_hash, jti, room_id, name, dept, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (link.code_hash, link.jti, link.room_id, link.name, link.dept, link.created_at))

    def get(self, code_hash: str) -> ShortLink | None:
        r = self._conn.execute("SELECT * FROM short_links WHERE code_hash = ?", (code_hash,)).fetchone()
        return ShortLink(**dict(r)) if r else None

    @writes
    def delete_for(self, jti: str) -> bool:
        """Forget the short link of an invite (it was withdrawn); False if it had none."""
        cur = self._conn.execute("DELETE FROM short_links WHERE jti = ?", (jti,))
        return cur.rowcount == 1
