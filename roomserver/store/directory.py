"""Departments and staff accounts: who works where, in which role."""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass

from .database import transaction


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


def _account(r: sqlite3.Row) -> Account:
    return Account(id=r["id"], username=r["username"], display_name=r["display_name"], role=r["role"],
                   department_id=r["department_id"], password_hash=r["password_hash"],
                   disabled=bool(r["disabled"]), failed_logins=r["failed_logins"], locked_until=r["locked_until"])


class Directory:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # departments
    def add_department(self, dept_id: str, name: str, kind: str, now: int) -> Department:
        with transaction(self._conn):
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
    def add_account(self, *, username: str, display_name: str, role: str, department_id: str | None,
                    password_hash: str | None, now: int) -> Account:
        account_id = "a_" + secrets.token_urlsafe(9)
        with transaction(self._conn):
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
        r = self._conn.execute("SELECT * FROM accounts WHERE username = ?", (username,)).fetchone()
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

    def set_languages(self, account_id: str, languages: set[str] | frozenset[str]) -> None:
        with transaction(self._conn):
            self._conn.execute("DELETE FROM interpreter_languages WHERE account_id = ?", (account_id,))
            self._conn.executemany("INSERT INTO interpreter_languages (account_id, language) VALUES (?, ?)",
                                   [(account_id, lang) for lang in sorted(languages)])

    def all_languages(self) -> list[str]:
        rows = self._conn.execute("SELECT DISTINCT language FROM interpreter_languages ORDER BY language").fetchall()
        return [r["language"] for r in rows]

    def set_password_hash(self, account_id: str, password_hash: str) -> None:
        with transaction(self._conn):
            self._conn.execute("UPDATE accounts SET password_hash = ?, failed_logins = 0, locked_until = NULL"
                               " WHERE id = ?", (password_hash, account_id))

    def record_login_failure(self, account_id: str, *, max_failures: int, lock_until: int) -> int:
        """Count a failed sign-in; lock the account once the count reaches ``max_failures``."""
        with transaction(self._conn):
            self._conn.execute("UPDATE accounts SET failed_logins = failed_logins + 1 WHERE id = ?", (account_id,))
            r = self._conn.execute("SELECT failed_logins FROM accounts WHERE id = ?", (account_id,)).fetchone()
            count = int(r["failed_logins"]) if r else 0
            if count >= max_failures:
                self._conn.execute("UPDATE accounts SET locked_until = ?, failed_logins = 0 WHERE id = ?",
                                   (lock_until, account_id))
        return count

    def record_login_success(self, account_id: str) -> None:
        with transaction(self._conn):
            self._conn.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                               (account_id,))

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
            sets.append("disabled = ?")
            args.append(1 if disabled else 0)
        if sets:
            with transaction(self._conn):
                self._conn.execute(f"UPDATE accounts SET {', '.join(sets)} WHERE id = ?", (*args, account_id))
        return self.account(account_id)
