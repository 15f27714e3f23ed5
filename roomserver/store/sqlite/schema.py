"""Opening a SQLite database in WAL mode and bringing its schema forward.

SQLite in WAL mode is the embedded default: no server to run, and a committed
transaction survives a killed process (``synchronous=normal``) or even a power
loss (``synchronous=full``, the default). ``PRAGMA user_version`` records the
last migration applied, so an older database is brought forward at start.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..errors import StoreError
from ..migrations import shipped, statements

PACKAGE = __package__


def migrations() -> list[tuple[int, str, str]]:
    return shipped(PACKAGE)


def connect(path: Path, *, synchronous: str = "full", migrate_to: int | None = None,
            migrate: bool | None = True) -> sqlite3.Connection:
    """Open (creating) the database at ``path``.

    ``migrate`` True applies pending migrations; False refuses a database at another schema;
    None leaves the schema alone (``roomserver migrate`` applies and reports).

    ``migrate_to`` stops after that migration number (tests build older databases with it).
    The file is created readable by its owner only: it holds the token ledger and audit log.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StoreError(f"store: cannot create {path}: {exc.strerror}") from None
    _owner_only(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store: cannot open {path}: {exc}") from None
    try:
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"store: {path} cannot use WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        if migrate:
            apply(conn, upto=migrate_to)
        elif migrate is False and schema_version(conn) != len(migrations()):
            raise StoreError(f"store: {path} is at schema {schema_version(conn)}, this server needs "
                             f"{len(migrations())}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"store: cannot open {path}: {exc}") from None
    except StoreError:
        conn.close()
        raise
    return conn


def _owner_only(path: Path) -> None:
    """A database made by an older release (or copied in) may be readable by others: tighten it
    and its WAL files to 0600 (SQLite gives new WAL files the database file's mode)."""
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if each.stat().st_mode & 0o077:
                os.chmod(each, 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"store: cannot make {each} private: {exc.strerror}") from None


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def apply(conn: sqlite3.Connection, *, upto: int | None = None) -> list[int]:
    """Apply every migration newer than the database, each in its own transaction."""
    applied = []
    current = schema_version(conn)
    known = migrations()
    if current > len(known):
        raise StoreError(f"store: the database is at schema {current}, newer than this server "
                         f"({len(known)}); upgrade the server")
    for number, name, sql in known:
        if number <= current or (upto is not None and number > upto):
            continue
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in statements(sql, sqlite3.complete_statement):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"store: migration {name} failed: {exc}") from None
        applied.append(number)
    return applied
