"""Sign-ins at an OpenID Provider in progress: what the callback must find again.

Kept in the store, not in one node's memory, so that whichever node of a cluster the
provider sends the person back to can finish the sign-in. Each row is usable once: the
callback takes it (``take``) in one statement, and a second callback with the same state
finds it used (a replay).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .sql import Sql, writes


@dataclass(frozen=True)
class OidcLogin:
    provider: str
    nonce: str
    code_verifier: str
    browser_hash: str
    next_path: str | None
    created_at: int
    expires_at: int
    used_at: int | None


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogateescape")).hexdigest()


class OidcLogins:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def begin(self, *, state: str, provider: str, nonce: str, code_verifier: str, browser_hash: str,
              next_path: str | None, now: int, lifetime: int) -> None:
        self._conn.execute("DELETE FROM oidc_logins WHERE expires_at <= ?", (now - 3600,))
        self._conn.execute(
            "INSERT INTO oidc_logins (state_hash, provider, nonce, code_verifier, browser_hash, next_path,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (state_hash(state), provider, nonce, code_verifier, browser_hash, next_path, now, now + lifetime))

    @writes
    def take(self, state: str, now: int) -> OidcLogin | None:
        """The sign-in for ``state`` as it was before this call, marked used now (None: unknown state).

        The caller checks ``used_at`` (replay) and ``expires_at``; an unused row is marked used
        in the same statement that reads it, so two callbacks racing cannot both have it.
        """
        key = state_hash(state)
        claimed = self._conn.execute("UPDATE oidc_logins SET used_at = ? WHERE state_hash = ? AND used_at IS NULL",
                                     (now, key)).rowcount
        r = self._conn.execute("SELECT * FROM oidc_logins WHERE state_hash = ?", (key,)).fetchone()
        if r is None:
            return None
        return OidcLogin(r["provider"], r["nonce"], r["code_verifier"], r["browser_hash"], r["next_path"],
                         r["created_at"], r["expires_at"], None if claimed == 1 else r["used_at"])
