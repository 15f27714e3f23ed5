"""Staff sign-in sessions, kept so that a restart signs nobody out.

Only a hash of the session id is stored: a copy of the database does not hold
usable cookies.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from .database import transaction


@dataclass(frozen=True)
class Session:
    account_id: str
    csrf: str
    created_at: int
    expires_at: int


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create(self, account_id: str, *, now: int, lifetime: int) -> tuple[str, Session]:
        """A new session: the cookie value (returned once) and its record."""
        session_id = secrets.token_urlsafe(32)
        session = Session(account_id, secrets.token_urlsafe(24), now, now + lifetime)
        with transaction(self._conn):
            self._conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            self._conn.execute("INSERT INTO sessions (id_hash, account_id, csrf, created_at, expires_at)"
                               " VALUES (?, ?, ?, ?, ?)",
                               (_hash(session_id), account_id, session.csrf, now, session.expires_at))
        return session_id, session

    def get(self, session_id: str, now: int) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        r = self._conn.execute("SELECT * FROM sessions WHERE id_hash = ? AND expires_at > ?",
                               (_hash(session_id), now)).fetchone()
        return Session(r["account_id"], r["csrf"], r["created_at"], r["expires_at"]) if r else None

    def delete(self, session_id: str) -> None:
        with transaction(self._conn):
            self._conn.execute("DELETE FROM sessions WHERE id_hash = ?", (_hash(session_id),))

    def delete_for_account(self, account_id: str) -> None:
        with transaction(self._conn):
            self._conn.execute("DELETE FROM sessions WHERE account_id = ?", (account_id,))
