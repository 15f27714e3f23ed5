"""What a repository sees of a database connection, whichever engine is behind it.

Repositories are written once, as plain synchronous code over ``Sql``: the
``execute``/``executemany`` of a DB-API connection with ``?`` placeholders, whose
rows are read by column name. SQLite's connection is one as it is; PostgreSQL's
is adapted (``postgres/``). The backend runs every repository call in a thread,
inside a unit of work, so nothing here ever runs on the event loop.

``@writes`` marks the methods that change data: called through the async
``Store``, they run in a write transaction; everything else runs on a reader.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

Row = Mapping[str, Any]


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Sql(Protocol):
    def execute(self, sql: str, args: Sequence[Any] = ...) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


def writes(method: F) -> F:
    """Mark a repository method that changes data (it runs in a write transaction)."""
    method.__store_writes__ = True  # type: ignore[attr-defined]
    return method


def is_write(method: Any) -> bool:
    return bool(getattr(method, "__store_writes__", False))
