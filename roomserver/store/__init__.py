"""What survives a restart: rooms, accounts, departments, issued tokens, consents, sessions, calls, audit.

One small interface, two engines side by side: ``sqlite/`` (the embedded
default, one file, no server) and ``postgres/`` (shared by every node of a
cluster). Both run *units of work* — plain functions of a ``Tx``, the
repositories bound to one connection — in threads, so the event loop never
waits for a disk sync or a round trip:

    row = await store.rooms.get(room_id)                 # one repository call
    await store.write(lambda tx: (tx.tokens.spend(jti, now), tx.audit.append(...)))  # one commit

Repository methods marked ``@writes`` run in a write transaction, the others on
a reader. ``store.blocking`` offers the same calls for code without an event
loop (the command line, first start). Live state (who is in which room right
now) is not here: see ``live/``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

from .audit import AuditEvent
from .calls import Callback, CallRow
from .consents import Consent, ConsentListing
from .directory import Account, Department
from .errors import StoreConflict, StoreError, StoreUnavailable
from .rooms import RoomRow
from .sessions import Session
from .shortlinks import ShortLink
from .sql import is_write
from .tx import REPOSITORIES, REPOSITORY_CLASSES, Tx

__all__ = ["Store", "StoreError", "StoreUnavailable", "StoreConflict", "Account", "AuditEvent", "Callback",
           "CallRow", "Consent", "ConsentListing", "Department", "RoomRow", "Session", "ShortLink", "Tx",
           "open_store"]

T = TypeVar("T")


class Backend(Protocol):
    """What an engine offers: run a unit of work, reading or writing; say what it is; close."""

    dialect: str

    async def run(self, unit: Callable[[Tx], T], write: bool) -> T: ...

    def run_blocking(self, unit: Callable[[Tx], T], write: bool) -> T: ...

    def describe(self) -> str: ...

    @property
    def schema_version(self) -> int: ...

    @property
    def latest_schema(self) -> int: ...

    def close(self) -> None: ...


def _call(repo: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], tx: Tx) -> Any:
    return getattr(getattr(tx, repo), method)(*args, **kwargs)


class _Repo:
    """``store.<repo>.<method>(...)``: one repository call as its own unit of work (awaitable)."""

    def __init__(self, backend: Backend, name: str, blocking: bool) -> None:
        self._backend, self._name, self._blocking = backend, name, blocking

    def __getattr__(self, method: str) -> Callable[..., Any]:
        write = is_write(getattr(REPOSITORY_CLASSES[self._name], method))
        backend, name = self._backend, self._name
        if self._blocking:
            def call(*args: Any, **kwargs: Any) -> Any:
                return backend.run_blocking(partial(_call, name, method, args, kwargs), write)
        else:
            async def call(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                return await backend.run(partial(_call, name, method, args, kwargs), write)
        setattr(self, method, call)  # found directly next time
        return call


class _Facade:
    def __init__(self, backend: Backend, blocking: bool) -> None:
        for name in REPOSITORIES:
            setattr(self, name, _Repo(backend, name, blocking))


class BlockingStore(_Facade):
    """The store's calls for a thread without an event loop: each blocks until done."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend, blocking=True)
        self._backend = backend

    def read(self, unit: Callable[[Tx], T]) -> T:
        return self._backend.run_blocking(unit, False)

    def write(self, unit: Callable[[Tx], T]) -> T:
        return self._backend.run_blocking(unit, True)


class Store(_Facade):
    """The store as the server sees it: awaitable repository calls and units of work."""

    # Repositories (each call is awaitable): rooms, tokens, directory, sessions, audit, calls, consents,
    # retention, live.
    rooms: Any
    tokens: Any
    directory: Any
    sessions: Any
    audit: Any
    calls: Any
    consents: Any
    retention: Any
    live: Any
    shortlinks: Any
    oidclogins: Any
    signins: Any

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend, blocking=False)
        self.backend = backend
        self.blocking = BlockingStore(backend)

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    def describe(self) -> str:
        return self.backend.describe()

    @property
    def schema_version(self) -> int:
        return self.backend.schema_version

    @property
    def latest_schema(self) -> int:
        return self.backend.latest_schema

    async def read(self, unit: Callable[[Tx], T]) -> T:
        """Run ``unit(tx)`` on a reader (one consistent snapshot)."""
        return await self.backend.run(unit, False)

    async def write(self, unit: Callable[[Tx], T]) -> T:
        """Run ``unit(tx)`` in one write transaction; its writes commit together or not at all."""
        return await self.backend.run(unit, True)

    async def ping(self) -> bool:
        try:
            return await self.read(Tx.ping)
        except StoreUnavailable:
            return False

    async def is_empty(self) -> bool:
        return await self.read(Tx.is_empty)

    def close(self) -> None:
        self.backend.close()

    @classmethod
    def open_sqlite(cls, path: Path, *, synchronous: str = "full") -> "Store":
        from .sqlite import open_sqlite
        return cls(open_sqlite(path, synchronous=synchronous))


def open_store(url: str, sqlite_path: Path, *, synchronous: str = "full", pool_size: int = 8) -> Store:
    """The store the settings name: PostgreSQL for a ``postgresql://`` URL, else the SQLite file."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import open_postgres
        return Store(open_postgres(url, pool_size=pool_size))
    if url:
        raise StoreError(f"store: url must start with postgresql:// (or be empty for SQLite), got {url.split(':')[0]}:…")
    from .sqlite import open_sqlite
    return Store(open_sqlite(sqlite_path, synchronous=synchronous))
