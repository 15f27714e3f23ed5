"""The embedded store: one SQLite file, written by one thread with group commit, read by a few.

Why threads: a commit with ``synchronous=full`` waits for the disk, and the
event loop must never wait. Why one writer: SQLite allows one writer at a time
anyway, and a single thread that takes every queued unit of work into one
transaction (each in its own savepoint) turns a burst of joins into one disk
sync instead of one each — group commit, as PostgreSQL does for its WAL. A unit
that fails rolls back to its savepoint and the others still commit.

Readers use their own connections (WAL lets them read while the writer
writes) and see every commit whose future has resolved. They take their units
from a plain queue and hand results back as the writer does (an asyncio future
set from the loop), not through ``run_in_executor``: every join reads once, and
the executor's second future, its lock and the chaining between the two cost the
event loop more than the hand-off itself.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import StoreConflict, StoreError, StoreUnavailable
from ..tx import Tx
from .schema import connect, migrations, schema_version

T = TypeVar("T")
MAX_BATCH = 256  # units of work in one commit at most
_STOP = object()


def _mapped(exc: BaseException) -> BaseException:
    """SQLite's errors as the store's: a broken rule is a conflict, the rest means unavailable."""
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreConflict(str(exc))
    if isinstance(exc, sqlite3.Error):
        return StoreUnavailable(str(exc))
    return exc


class _Job:
    __slots__ = ("unit", "loop", "future")

    def __init__(self, unit: Callable[[Tx], Any], loop: asyncio.AbstractEventLoop | None,
                 future: "asyncio.Future[Any] | Future[Any]") -> None:
        self.unit, self.loop, self.future = unit, loop, future


def _deliver(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    """Settle the futures of finished jobs, on their event loop (or at once for blocking callers)."""
    by_loop: dict[Any, list[tuple[_Job, Any, BaseException | None]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        if loop is None:
            _settle(items)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(_settle, items)


def _settle(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in outcomes:
        fut = job.future
        if fut.done():  # the awaiting task was cancelled meanwhile
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)


class SqliteBackend:
    """Units of work on a SQLite file: writes group-committed by one thread, reads on a small pool."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, synchronous: str = "full", readers: int = 2,
                 migrate: bool = True) -> None:
        self.path = path
        self._synchronous = synchronous
        self._conn = connect(path, synchronous=synchronous, migrate=migrate)
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._reads: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._readers = [threading.Thread(target=self._read_loop, name=f"store-read-{i}", daemon=True)
                         for i in range(readers)]
        self._writer = threading.Thread(target=self._write_loop, name="store-write", daemon=True)
        for thread in (*self._readers, self._writer):
            thread.start()
        self.commits = 0  # transactions committed (a benchmark reads units/commits)
        self.units = 0
        self.closed = False

    def describe(self) -> str:
        return f"SQLite {self.path}"

    @property
    def schema_version(self) -> int:
        return schema_version(self._conn)

    @property
    def latest_schema(self) -> int:
        return len(migrations())

    # -- running units of work ------------------------------------------------------------

    async def run(self, unit: Callable[[Tx], T], write: bool) -> T:
        if self.closed:
            raise StoreUnavailable("closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        (self._queue if write else self._reads).put(_Job(unit, loop, future))
        return await future

    def run_blocking(self, unit: Callable[[Tx], T], write: bool) -> T:
        """The same from a thread with no event loop (command line, first start)."""
        if self.closed:
            raise StoreUnavailable("closed")
        future: Future[T] = Future()
        (self._queue if write else self._reads).put(_Job(unit, None, future))
        return future.result()

    def _read_loop(self) -> None:
        while True:
            job = self._reads.get()
            if job is _STOP:
                return
            try:
                outcome = (job, self._read(job.unit), None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as a unit's own failure
                outcome = (job, None, exc)
            _deliver([outcome])

    def _read(self, unit: Callable[[Tx], T]) -> T:
        tx = getattr(self._local, "tx", None)
        if tx is None:
            conn = connect(self.path, synchronous=self._synchronous, migrate=False)
            with self._lock:
                self._reader_conns.append(conn)
            tx = self._local.tx = Tx(conn)
        conn = tx.sql
        try:
            conn.execute("BEGIN")  # one snapshot for every statement of the unit
            try:
                return unit(tx)
            finally:
                conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - mapped, re-raised
            raise _mapped(exc) from None

    def _write_loop(self) -> None:
        tx = Tx(self._conn)
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            batch, stop = [job], False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            _deliver(self._commit(batch, tx))
            if stop:
                return

    def _commit(self, batch: list[_Job], tx: Tx) -> list[tuple[_Job, Any, BaseException | None]]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(job, None, _mapped(exc)) for job in batch]
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            for job in batch:
                conn.execute("SAVEPOINT unit")
                try:
                    result = job.unit(tx)
                except Exception as exc:  # noqa: BLE001 - the unit's own failure, reported to its caller
                    conn.execute("ROLLBACK TO unit")
                    conn.execute("RELEASE unit")
                    outcomes.append((job, None, _mapped(exc)))
                else:
                    conn.execute("RELEASE unit")
                    outcomes.append((job, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return [(job, None, _mapped(exc)) for job in batch]
        self.commits += 1
        self.units += len(batch)
        return outcomes

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.put(_STOP)
        self._writer.join(timeout=30)
        for _ in self._readers:
            self._reads.put(_STOP)
        for reader in self._readers:
            reader.join(timeout=30)
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        self._conn.close()


def open_sqlite(path: Path, *, synchronous: str = "full", migrate: bool = True) -> SqliteBackend:
    try:
        return SqliteBackend(path, synchronous=synchronous, migrate=migrate)
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(f"store: cannot open {path}: {exc.strerror}") from None
