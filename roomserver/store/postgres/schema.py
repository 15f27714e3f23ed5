"""PostgreSQL's schema: its migrations, applied by ``roomserver migrate`` under an advisory lock.

A node never changes the schema on its own: it checks at start that the
database is reachable and at the schema it needs, and refuses to start with
one line otherwise. ``roomserver migrate`` brings it forward; several runs at
once (a rollout) queue on an advisory lock, so each migration runs once.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import psycopg

from ..errors import StoreError
from ..migrations import shipped, statements

PACKAGE = __package__
LOCK_ID = 0x726F6F6D  # "room": the advisory lock migrations run under


def migrations() -> list[tuple[int, str, str]]:
    return shipped(PACKAGE)


def latest() -> int:
    return len(migrations())


def describe_url(url: str) -> str:
    """host:port/database of a URL, without user or password (for messages and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"


def _connect(url: str, timeout: float) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"store: cannot reach PostgreSQL at {describe_url(url)}: {reason}") from None


def current_version(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    if row is None or row[0] is None:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def check_schema(url: str, timeout: float = 5.0) -> int:
    """The database's schema version; StoreError unless it is exactly what this server needs."""
    with _connect(url, timeout) as conn:
        version = current_version(conn)
    need = latest()
    if version == 0:
        raise StoreError(f"store: PostgreSQL at {describe_url(url)} has no schema yet; run 'roomserver migrate'")
    if version < need:
        raise StoreError(f"store: PostgreSQL at {describe_url(url)} is at schema {version}, this server needs "
                         f"{need}; run 'roomserver migrate'")
    if version > need:
        raise StoreError(f"store: PostgreSQL at {describe_url(url)} is at schema {version}, newer than this "
                         f"server ({need}); upgrade the server")
    return version


def migrate(url: str, *, upto: int | None = None, timeout: float = 5.0) -> list[int]:
    """Apply every pending migration, each in its own transaction; the numbers applied."""
    applied: list[int] = []
    with _connect(url, timeout) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                         " name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            current = current_version(conn)
            known = migrations()
            if current > len(known):
                raise StoreError(f"store: PostgreSQL at {describe_url(url)} is at schema {current}, newer than "
                                 f"this server ({len(known)}); upgrade the server")
            for number, name, sql in known:
                if number <= current or (upto is not None and number > upto):
                    continue
                try:
                    with conn.transaction():
                        for statement in statements(sql, _complete):
                            conn.execute(statement)
                        conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                                     (number, name, int(time.time())))
                except psycopg.Error as exc:
                    raise StoreError(f"store: migration {name} failed: {str(exc).strip().splitlines()[0]}") from None
                applied.append(number)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied


def _complete(buf: str) -> bool:
    """A statement ends with ';' at the end of a line, outside a $$-quoted function body."""
    return buf.rstrip().endswith(";") and buf.count("$$") % 2 == 0
