"""Shared fixtures: real settings in a temporary data directory, a real server on loopback.

Nothing is mocked: the store is a real SQLite file, the keys are real, the
server is a real aiohttp server on 127.0.0.1 and clients talk HTTP to it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import AsyncIterator, Callable, Iterable, Iterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from roomserver import bootstrap, config
from roomserver.app import create_app
from roomserver.services import Services, build_services
from tests.support import RoomServerTestServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("ROOMSERVER_ARTIFACTS", ROOT / "artifacts"))
TEST_API_KEY = "rsk_test_" + "k" * 32


# The store every in-process test server uses: "sqlite" (default) or "postgresql" (each test gets a
# database of its own; see tests/pg.py). ./run test runs the suite once with each.
TEST_STORE = os.environ.get("ROOMSERVER_TEST_STORE", "sqlite")


def pytest_report_header(config: pytest.Config) -> str:
    return f"roomserver store for in-process servers: {TEST_STORE}"


# ``./run test`` runs the suite twice. Its second (PostgreSQL) pass leaves out what the store
# choice cannot change, and the browser tests, whose store side other tests of that pass cover,
# so that CI stays within its time; a pass of its own
# (``ROOMSERVER_TEST_STORE=postgresql ./run test``) runs everything.
SAME_IN_BOTH_PASSES = {
    "tests/core": "pure rules: no store at all",
    "tests/domain": "pure rules: no store at all",
    "tests/cluster": "always on PostgreSQL and Redis of their own, whatever the pass",
    "tests/ops/test_outbox_restart.py": "runs each engine itself",
    "tests/ops/test_figures.py": "pure rules: no store at all",
    "tests/ops/test_periods.py": "pure rules: no store at all",
    "tests/test_cli.py": "the command line on the embedded default, in processes of its own",
    "tests/test_lint.py": "reads the source only",
    "tests/test_translations.py": "reads the catalogs only",
    # The browser tests: what they store goes through the same API, page and socket code that
    # tests/api, tests/pages, tests/ws and tests/ops run on PostgreSQL in this pass (the OIDC
    # sign-in in tests/pages/test_oidc.py, e-mail in tests/ops/test_mailer.py, reports, consent,
    # the switchboard); each browser flow costs seconds of Chromium, and CI has 45 minutes.
    "tests/browser": "pages in a real browser; their store side runs here in tests/api, pages, ws, ops",
}


# Most tests run real servers, browsers, processes or networks on a machine that may be loaded
# (2 cores in CI): a browser can miss a frame's deadline, a process start a second late. A test
# that fails is therefore run once more (pytest-rerunfailures; the report shows every rerun as
# "R" and counts them in its summary). A failure that is real fails twice and fails the run.
RERUNS = 1


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == k or path.startswith(k + "/") for k in prefixes)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.flaky(reruns=RERUNS, reruns_delay=2))
    if os.environ.get("ROOMSERVER_TEST_PASS") != "second":
        return
    kept, left = [], []
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        (left if _under(path, SAME_IN_BOTH_PASSES) else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept
        print(f"\nsecond pass: {len(left)} tests the store cannot change ran in the first pass "
              f"(tests/conftest.py SAME_IN_BOTH_PASSES)")


def make_settings(data_dir: Path, **env: str) -> config.Settings:
    """Settings as the server would load them, pointed at ``data_dir``, with no config file."""
    base = {"ROOMSERVER_SERVER_DATA_DIR": str(data_dir), "ROOMSERVER_SERVER_PORT": "0",
            "ROOMSERVER_STORE_SYNCHRONOUS": "normal", "ROOMSERVER_AUTH_API_KEYS": f"tests:{TEST_API_KEY}",
            "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false"}
    base.update(env)
    return config.load(ROOT / "config" / "roomserver.toml", env=base)


@pytest.fixture
def store_url() -> Iterator[Callable[[], str]]:
    """``store_url()``: the store URL for one more test server ("" = SQLite; else a fresh PostgreSQL database)."""
    made: list[str] = []

    def make() -> str:
        if TEST_STORE != "postgresql":
            return ""
        from tests import pg
        if pg.unavailable():
            pytest.fail(f"ROOMSERVER_TEST_STORE=postgresql but {pg.unavailable()}")
        made.append(pg.new_database())
        return made[-1]

    yield make
    if made:
        from tests import pg
        for url in made:
            pg.drop_database(url)


@pytest.fixture
def settings(tmp_path: Path, store_url: Callable[[], str]) -> config.Settings:
    s = make_settings(tmp_path / "data", ROOMSERVER_STORE_URL=store_url())
    bootstrap.prepare(s, 0)
    return s


@pytest.fixture
def services(settings: config.Settings) -> Iterator[Services]:
    svc = build_services(settings)
    yield svc
    svc.close()


@pytest.fixture
async def server(services: Services) -> AsyncIterator[TestServer]:
    """The real application on a free loopback port."""
    srv = RoomServerTestServer(create_app(services), host="127.0.0.1", port=0)
    await srv.start_server()
    services.settings.server.public_url = str(srv.make_url("")).rstrip("/")
    yield srv
    await srv.close()


@pytest.fixture
async def server_factory(tmp_path: Path, store_url: Callable[[], str]) -> AsyncIterator:
    """Start extra real servers with their own settings: ``await server_factory(ROOMSERVER_...="...")``."""
    started: list[tuple[TestServer, Services]] = []

    async def start(**env: str) -> tuple[TestServer, Services]:
        env.setdefault("ROOMSERVER_STORE_URL", store_url())
        s = make_settings(tmp_path / f"data{len(started)}", **env)
        bootstrap.prepare(s, 0)
        svc = build_services(s)
        srv = RoomServerTestServer(create_app(svc), host="127.0.0.1", port=0)
        await srv.start_server()
        s.server.public_url = str(srv.make_url("")).rstrip("/")
        started.append((srv, svc))
        return srv, svc

    yield start
    for srv, svc in started:
        await srv.close()
        svc.close()


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client with no credentials, based at the server."""
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as session:
        yield session


@pytest.fixture
def api_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_API_KEY}"}


@pytest.fixture
def artifacts() -> Path:
    """Where a test run leaves screenshots and other artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# --- the whole run's server logs must carry no token, name or address -------------------

# Names the tests give participants and staff; none may appear in a server log line.
LOGGED_NAMES = ("Ayşe", "Frau Weber", "Herr Kaya", "Olena", "Erik Experte", "Expertin")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_SHORT_CODE = re.compile(r"\b[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}\b")  # a short link's code
_SERVER_LOGGERS = ("roomserver", "aiohttp")
_CLIENT_LOGGERS = ("roomserver.peer.participant",)  # the Python participant is a client, not the server


class _RunLog(logging.Handler):
    """Keeps every INFO-or-higher line the server side logs during the whole test run."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if name.startswith(_CLIENT_LOGGERS) or not name.startswith(_SERVER_LOGGERS):
            return
        try:
            self.lines.append(f"{name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a badly formatted record is still no leak
            pass


_run_log = _RunLog()


def pytest_sessionstart(session: pytest.Session) -> None:
    logging.getLogger().addHandler(_run_log)
    for name in _SERVER_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def leaks(lines: list[str]) -> list[str]:
    """Log lines that carry a token, a short link's code, an IPv4 address or a test participant's name."""
    return [line for line in lines
            if _JWT.search(line) or _SHORT_CODE.search(line) or _IPV4.search(line)
            or any(name in line for name in LOGGED_NAMES)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_run_log)
    found = leaks(_run_log.lines)
    (ARTIFACTS / "server-log-scan.txt").parent.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "server-log-scan.txt").write_text(
        f"{len(_run_log.lines)} server log lines at INFO or above scanned; {len(found)} leaks\n"
        + "\n".join(found[:50]) + "\n", encoding="utf-8")
    if found:
        print(f"\nLOG SCAN FAILED: {len(found)} server log lines carry a token, address or name:")
        for line in found[:20]:
            print("  " + line[:300])
        session.exitstatus = 1
    else:
        print(f"\nlog scan: {len(_run_log.lines)} server log lines, no token, address or name")
