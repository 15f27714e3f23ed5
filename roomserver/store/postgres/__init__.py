"""The cluster's store: PostgreSQL through psycopg 3, units of work on a small thread pool.

Every node of a cluster shares one PostgreSQL database. Units of work run in
threads, each on a pooled connection inside one transaction, so the event loop
never waits for a round trip; the repositories are the same code as on SQLite
(``PgSql`` turns ``?`` into psycopg's ``%s``). Exactness across nodes comes from
PostgreSQL itself: spending a single-use token is one conditional UPDATE, and
of two nodes racing for it the row lock lets exactly one win.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Sequence, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import StoreConflict, StoreError, StoreUnavailable
from ..tx import Tx
from .schema import check_schema, describe_url, latest

log = logging.getLogger("roomserver.store")
T = TypeVar("T")

_TRANSLATED: dict[str, str] = {}


def translate(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (and a literal ``%`` doubled); cached per statement."""
    pg = _TRANSLATED.get(sql)
    if pg is None:
        pg = _TRANSLATED[sql] = sql.replace("%", "%%").replace("?", "%s")
    return pg


class PgSql:
    """A psycopg connection as the repositories' ``Sql``."""

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(translate(sql), args, prepare=False)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        with self.conn.cursor() as cur:
            cur.executemany(translate(sql), list(rows))
        return None


def _mapped(exc: BaseException) -> BaseException:
    if isinstance(exc, psycopg.IntegrityError):
        return StoreConflict(type(exc).__name__)
    if isinstance(exc, (psycopg.Error, PoolTimeout)):
        return StoreUnavailable(type(exc).__name__)
    return exc


class PostgresBackend:
    """Units of work on a PostgreSQL database shared by every node."""

    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 3.0) -> None:
        self.url = url
        self._timeout = connect_timeout
        check_schema(url, connect_timeout)  # reachable, schema present and current: else StoreError
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, name="roomserver",
                                    kwargs={"row_factory": dict_row, "connect_timeout": max(1, int(connect_timeout))},
                                    timeout=connect_timeout, check=ConnectionPool.check_connection)
        self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="store-pg")
        self.closed = False
        self._down = False  # said once in the log when PostgreSQL goes away, once when it is back

    def describe(self) -> str:
        return f"PostgreSQL {describe_url(self.url)}"

    @property
    def schema_version(self) -> int:
        return latest()  # check_schema refused to open anything else

    @property
    def latest_schema(self) -> int:
        return latest()

    async def run(self, unit: Callable[[Tx], T], write: bool) -> T:
        if self.closed:
            raise StoreUnavailable("closed")
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._run, unit)

    def run_blocking(self, unit: Callable[[Tx], T], write: bool) -> T:
        if self.closed:
            raise StoreUnavailable("closed")
        return self._threads.submit(self._run, unit).result()

    def _run(self, unit: Callable[[Tx], T]) -> T:
        try:
            with self._pool.connection() as conn:  # commits when the unit returns, rolls back when it raises
                result = unit(Tx(PgSql(conn)))
        except Exception as exc:  # noqa: BLE001 - mapped, re-raised
            mapped = _mapped(exc)
            if isinstance(mapped, StoreUnavailable) and not self._down:
                self._down = True
                log.warning("store: PostgreSQL cannot be reached (%s)", mapped.detail)
            raise mapped from None
        if self._down:
            self._down = False
            log.info("store: PostgreSQL reached again")
        return result

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._threads.shutdown(wait=True)
        self._pool.close()


def open_postgres(url: str, *, pool_size: int = 8) -> PostgresBackend:
    try:
        return PostgresBackend(url, pool_size=pool_size)
    except StoreError:
        raise
    except (psycopg.Error, PoolTimeout) as exc:
        raise StoreError(f"store: cannot use PostgreSQL at {describe_url(url)}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
