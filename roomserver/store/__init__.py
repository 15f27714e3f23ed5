"""Persistent state in SQLite: rooms, accounts, departments, issued tokens, sessions, audit.

``Store`` bundles one connection with a repository per concept. Live state
(sockets, who is in which room right now) is not here: see ``hub.py``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .audit import AuditEvent, AuditLog
from .calls import Callback, CallLog, CallRow
from .database import StoreError, connect, migrations, schema_version
from .directory import Account, Department, Directory
from .ledger import TokenLedger
from .rooms import RoomRepository, RoomRow
from .sessions import Session, SessionStore

__all__ = ["Store", "StoreError", "Account", "AuditEvent", "Callback", "CallRow", "Department", "RoomRow",
           "Session"]


class Store:
    """One SQLite database and the repositories over it."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.rooms = RoomRepository(conn)
        self.tokens = TokenLedger(conn)
        self.directory = Directory(conn)
        self.sessions = SessionStore(conn)
        self.audit = AuditLog(conn)
        self.calls = CallLog(conn)

    @classmethod
    def open(cls, path: Path, *, synchronous: str = "full") -> "Store":
        return cls(connect(path, synchronous=synchronous), path)

    @property
    def schema_version(self) -> int:
        return schema_version(self.conn)

    @property
    def latest_schema(self) -> int:
        return len(migrations())

    def is_empty(self) -> bool:
        """No account and no room yet: a first start."""
        row = self.conn.execute("SELECT (SELECT COUNT(*) FROM accounts) + (SELECT COUNT(*) FROM rooms)").fetchone()
        return int(row[0]) == 0

    def ping(self) -> bool:
        try:
            self.conn.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self.conn.close()
