"""Departments and staff accounts: who works where, in which role."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .sql import Row, Sql, writes


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    kind: str  # 'agency' (the employment agency) or 'county' (a county office)


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    display_name: str
    role: str
    department_id: str | None
    password_hash: str | None
    disabled: bool
    failed_logins: int
    locked_until: int | None
    provider: str | None = None  # the [oidc.<name>] provider of an account made at sign-in
    subject: str | None = None  # the provider's sub
    disabled_by: str | None = None  # 'provider' (claims stopped mapping); None with disabled: an administrator


def _account(r: Row) -> Account:
    return Account(id=r["id"], username=r["username"], display_name=r["display_name"], role=r["role"],
                   department_id=r["department_id"], password_hash=r["password_hash"],
                   disabled=bool(r["disabled"]), failed_logins=r["failed_logins"], locked_until=r["locked_until"],
                   provider=r["provider"], subject=r["subject"], disabled_by=r["disabled_by"])


class Directory:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    # departments
    @writes
    def add_department(self, dept_id: str, name: str, kind: str, now: int) -> Department:
        self._conn.execute("INSERT INTO departments (id, name, kind, created_at) VALUES (?, ?, ?, ?)",
                           (dept_id, name, kind, now))
        return Department(dept_id, name, kind)

    def department(self, dept_id: str) -> Department | None:
        r = self._conn.execute("SELECT * FROM departments WHERE id = ?", (dept_id,)).fetchone()
        return Department(r["id"], r["name"], r["kind"]) if r else None

    def departments(self) -> list[Department]:
        rows = self._conn.execute("SELECT * FROM departments ORDER BY kind, name").fetchall()
        return [Department(r["id"], r["name"], r["kind"]) for r in rows]

    # accounts
    @writes
    def add_account(self, *, username: str, display_name: str, role: str, department_id: str | None,
                    password_hash: str | None, now: int) -> Account:
        account_id = "a_" + secrets.token_urlsafe(9)
        self._conn.execute(
            "INSERT INTO accounts (id, username, display_name, role, department_id, password_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (account_id, username, display_name, role, department_id, password_hash, now))
        account = self.account(account_id)
        assert account is not None
        return account

    def account(self, account_id: str) -> Account | None:
        r = self._conn.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return _account(r) if r else None

    def by_username(self, username: str) -> Account | None:
        r = self._conn.execute("SELECT * FROM accounts WHERE lower(username) = lower(?)", (username,)).fetchone()
        return _account(r) if r else None

    def accounts(self, *, role: str | None = None, department_id: str | None = None) -> list[Account]:
        clauses, args = [], []
        if role:
            clauses.append("role = ?")
            args.append(role)
        if department_id:
            clauses.append("department_id = ?")
            args.append(department_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(f"SELECT * FROM accounts {where} ORDER BY username", args).fetchall()
        return [_account(r) for r in rows]

    def languages(self, account_id: str) -> frozenset[str]:
        rows = self._conn.execute("SELECT language FROM interpreter_languages WHERE account_id = ?",
                                  (account_id,)).fetchall()
        return frozenset(r["language"] for r in rows)

    @writes
    def set_languages(self, account_id: str, languages: set[str] | frozenset[str]) -> None:
        self._conn.execute("DELETE FROM interpreter_languages WHERE account_id = ?", (account_id,))
        self._conn.executemany("INSERT INTO interpreter_languages (account_id, language) VALUES (?, ?)",
                               [(account_id, lang) for lang in sorted(languages)])

    def all_languages(self) -> list[str]:
        rows = self._conn.execute("SELECT DISTINCT language FROM interpreter_languages ORDER BY language").fetchall()
        return [r["language"] for r in rows]

    @writes
    def set_password_hash(self, account_id: str, password_hash: str) -> None:
        self._conn.execute("UPDATE accounts SET password_hash = ?, failed_logins = 0, locked_until = NULL"
                           " WHERE id = ?", (password_hash, account_id))

    @writes
    def record_login_failure(self, account_id: str, *, max_failures: int, lock_until: int) -> int:
        """Count a failed sign-in; lock the account once the count reaches ``max_failures``."""
        self._conn.execute("UPDATE accounts SET failed_logins = failed_logins + 1 WHERE id = ?", (account_id,))
        r = self._conn.execute("SELECT failed_logins FROM accounts WHERE id = ?", (account_id,)).fetchone()
        count = int(r["failed_logins"]) if r else 0
        if count >= max_failures:
            self._conn.execute("UPDATE accounts SET locked_until = ?, failed_logins = 0 WHERE id = ?",
                               (lock_until, account_id))
        return count

    @writes
    def record_login_success(self, account_id: str) -> None:
        self._conn.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                           (account_id,))

    @writes
    def update_account(self, account_id: str, *, display_name: str | None = None,
                       department_id: str | None = None, set_department: bool = False,
                       disabled: bool | None = None) -> Account | None:
        """Change the given fields of an account (``set_department`` also allows clearing it); the account."""
        sets, args = [], []
        if display_name is not None:
            sets.append("display_name = ?")
            args.append(display_name)
        if set_department:
            sets.append("department_id = ?")
            args.append(department_id)
        if disabled is not None:
            sets.append("disabled = ?, disabled_by = NULL")
            args.append(1 if disabled else 0)
        if sets:
            self._conn.execute(f"UPDATE accounts SET {', '.join(sets)} WHERE id = ?", (*args, account_id))
        return self.account(account_id)

    # accounts of an OpenID Provider
    def by_subject(self, provider: str, subject: str) -> Account | None:
        r = self._conn.execute("SELECT * FROM accounts WHERE provider = ? AND subject = ?",
                               (provider, subject)).fetchone()
        return _account(r) if r else None

    @writes
    def link_subject(self, account_id: str, provider: str, subject: str) -> None:
        self._conn.execute("UPDATE accounts SET provider = ?, subject = ? WHERE id = ?",
                           (provider, subject, account_id))

    @writes
    def provision(self, account_id: str, *, display_name: str, role: str, department_id: str | None,
                  enable: bool) -> None:
        """Bring an account made at sign-in up to date with the provider's claims.

        ``enable`` lifts a disabling by the provider only: an administrator's stays.
        """
        self._conn.execute("UPDATE accounts SET display_name = ?, role = ?, department_id = ? WHERE id = ?",
                           (display_name, role, department_id, account_id))
        if enable:
            self._conn.execute("UPDATE accounts SET disabled = 0, disabled_by = NULL"
                               " WHERE id = ? AND disabled_by = 'provider'", (account_id,))

    @writes
    def disable_by_provider(self, account_id: str) -> None:
        """The provider's claims no longer map to a role: disabled until they do again."""
        self._conn.execute("UPDATE accounts SET disabled = 1, disabled_by = 'provider'"
                           " WHERE id = ? AND disabled = 0", (account_id,))
