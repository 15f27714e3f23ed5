"""PostgreSQL for the tests: a fresh database per test, cloned from a migrated template.

``ROOMSERVER_TEST_POSTGRES`` names a database the tests may connect to in order to
create and drop their own (default: the local server's ``test`` database, trust
auth). Every database a test makes is named ``rs_test_<random>`` and dropped at its
end; the template (``rs_template_<pid>``) is dropped when the run ends.
"""

from __future__ import annotations

import atexit
import os
import secrets
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

ADMIN_URL = os.environ.get("ROOMSERVER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _url_for(database: str) -> str:
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{database}"))


def _admin():  # type: ignore[no-untyped-def]
    import psycopg
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why PostgreSQL cannot be used by the tests, or None when it can."""
    try:
        with _admin() as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure: the reason is shown in the skip
        return f"PostgreSQL not reachable at {urlsplit(ADMIN_URL).hostname}: {str(exc).strip().splitlines()[0]}"
    return None


@lru_cache(maxsize=1)
def template() -> str:
    """A database with every migration applied, to clone from (made once per run)."""
    from roomserver.store.postgres.schema import migrate

    name = f"rs_template_{os.getpid()}"
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate(_url_for(name))
    atexit.register(drop_database, _url_for(name))
    return name


def new_database() -> str:
    """The URL of a fresh, migrated database of its own."""
    name = f"rs_test_{secrets.token_hex(6)}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template()}"')
    return _url_for(name)


def empty_database() -> str:
    """The URL of a fresh database with no schema at all."""
    name = f"rs_test_{secrets.token_hex(6)}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _url_for(name)


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    try:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:  # noqa: BLE001 - the server went away: nothing left to clean
        pass
