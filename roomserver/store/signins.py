"""Failed sign-ins and trusted devices: what the sign-in throttle counts, shared by every node.

Keys arrive hashed (see ``domain/signin.py``): the table never holds a username or an address.
"""

from __future__ import annotations

from .sql import Sql, writes


class SignIns:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    def failures(self, key_hashes: list[str], since: int) -> dict[str, tuple[int, int]]:
        """``key hash → (failures, time of the last)`` for the keys with a failure at or after ``since``."""
        if not key_hashes:
            return {}
        marks = ", ".join("?" for _ in key_hashes)
        rows = self._conn.execute(
            f"SELECT key_hash, failures, last_at FROM signin_failures WHERE key_hash IN ({marks}) AND last_at >= ?",
            (*key_hashes, since)).fetchall()
        return {r["key_hash"]: (int(r["failures"]), int(r["last_at"])) for r in rows}

    @writes
    def fail(self, key_hashes: list[str], now: int, *, since: int) -> None:
        """One more failure on each key; a key quiet since before ``since`` starts again at one."""
        for key in key_hashes:
            self._conn.execute(
                "INSERT INTO signin_failures (key_hash, failures, last_at) VALUES (?, 1, ?)"
                " ON CONFLICT (key_hash) DO UPDATE SET failures = CASE WHEN signin_failures.last_at < ? THEN 1"
                " ELSE signin_failures.failures + 1 END, last_at = excluded.last_at", (key, now, since))

    @writes
    def forgive(self, key_hashes: list[str]) -> None:
        """Take one failure back from each key (an attempt counted up front turned out good)."""
        for key in key_hashes:
            self._conn.execute("UPDATE signin_failures SET failures = failures - 1 WHERE key_hash = ? AND failures > 0",
                               (key,))

    @writes
    def clear(self, key_hashes: list[str]) -> None:
        for key in key_hashes:
            self._conn.execute("DELETE FROM signin_failures WHERE key_hash = ?", (key,))

    def device_account(self, token_hash: str, since: int) -> str | None:
        """The account a device cookie was given to, if it was used at or after ``since``."""
        r = self._conn.execute("SELECT account_id FROM signin_devices WHERE token_hash = ? AND last_used_at >= ?",
                               (token_hash, since)).fetchone()
        return r["account_id"] if r else None

    @writes
    def remember_device(self, token_hash: str, account_id: str, now: int) -> None:
        self._conn.execute(
            "INSERT INTO signin_devices (token_hash, account_id, created_at, last_used_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (token_hash) DO UPDATE SET last_used_at = excluded.last_used_at", (token_hash, account_id,
                                                                                             now, now))

    @writes
    def purge(self, failures_before: int, devices_before: int) -> int:
        """Forget failures and devices that have been quiet long enough; how many rows went."""
        a = self._conn.execute("DELETE FROM signin_failures WHERE last_at < ?", (failures_before,)).rowcount
        b = self._conn.execute("DELETE FROM signin_devices WHERE last_used_at < ?", (devices_before,)).rowcount
        return int(a) + int(b)
