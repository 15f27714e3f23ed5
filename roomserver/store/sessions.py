"""Staff sign-in sessions, kept so that a restart signs nobody out.

Only a hash of the session id is stored: a copy of the database does not hold
usable cookies.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from .sql import Sql, writes


@dataclass(frozen=True)
class Session:
    account_id: str
    csrf: str
    created_at: int
    expires_at: int
    provider: str | None = None  # set when the session began at an OpenID Provider
    id_token: str | None = None  # the provider's ID token: id_token_hint when signing out there


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def create(self, account_id: str, *, now: int, lifetime: int, provider: str | None = None,
               id_token: str | None = None, sid: str | None = None) -> tuple[str, Session]:
        """A new session: the cookie value (returned once) and its record."""
        session_id = secrets.token_urlsafe(32)
        session = Session(account_id, secrets.token_urlsafe(24), now, now + lifetime, provider, id_token)
        self._conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        self._conn.execute("INSERT INTO sessions (id_hash, account_id, csrf, created_at, expires_at, provider,"
                           " id_token, sid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (_hash(session_id), account_id, session.csrf, now, session.expires_at, provider,
                            id_token, sid))
        return session_id, session

    def get(self, session_id: str, now: int) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        r = self._conn.execute("SELECT * FROM sessions WHERE id_hash = ? AND expires_at > ?",
                               (_hash(session_id), now)).fetchone()
        if r is None:
            return None
        return Session(r["account_id"], r["csrf"], r["created_at"], r["expires_at"], r["provider"], r["id_token"])

    @writes
    def delete(self, session_id: str) -> None:
        self._conn.execute("DELETE FROM sessions WHERE id_hash = ?", (_hash(session_id),))

    @writes
    def delete_for_account(self, account_id: str) -> None:
        self._conn.execute("DELETE FROM sessions WHERE account_id = ?", (account_id,))

    @writes
    def delete_by_provider_session(self, provider: str, *, sid: str | None, account_id: str | None) -> int:
        """End the sessions a back-channel logout names (by the provider's sid, else the account); how many."""
        if sid:
            return self._conn.execute("DELETE FROM sessions WHERE provider = ? AND sid = ?", (provider, sid)).rowcount
        return self._conn.execute("DELETE FROM sessions WHERE provider = ? AND account_id = ?",
                                  (provider, account_id)).rowcount
