"""The SQLite connection and its numbered schema migrations.

SQLite in WAL mode is the embedded default: no server to run, and a committed
transaction survives a killed process (``synchronous=normal``) or even a power
loss (``synchronous=full``, the default). Queries are small and run on the
event loop thread; one connection serialises every write, which is also what
makes "first accept wins" and single-use tokens exact.

Migrations are ``migrations/NNNN_name.sql``; ``PRAGMA user_version`` records
the last one applied, so an older database is brought forward at start.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreError(Exception):
    """The database cannot be opened or migrated; one line says why."""


def migrations() -> list[tuple[int, str, str]]:
    """Every migration shipped with the package: (number, file name, SQL), in order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StoreError(f"store: migrations are not numbered 1..n: {numbers}")
    return found


def connect(path: Path, *, synchronous: str = "full", upto: int | None = None) -> sqlite3.Connection:
    """Open (creating) the database at ``path`` and apply pending migrations.

    ``upto`` stops after that migration number; tests use it to build an older
    database.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
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
        migrate(conn, upto=upto)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"store: cannot open {path}: {exc}") from None
    except StoreError:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, *, upto: int | None = None) -> list[int]:
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
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"store: migration {name} failed: {exc}") from None
        applied.append(number)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction; taken immediately so concurrent writers queue, not fail.

    Inside an open transaction it joins it, so a caller can make several
    repository writes one commit (one disk sync) — a join spends its token and
    audits in one.
    """
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
