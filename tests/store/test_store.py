"""The store on both engines: migrations forward (never backward), append-only audit, ending a room
withdraws its tokens, a single-use token spent exactly once under a race, group commit; SQLite's WAL
and file permissions; PostgreSQL's schema check; and nothing acknowledged is lost when the server
process is killed with SIGKILL.

Real SQLite files in tmp_path and real PostgreSQL databases (tests/pg.py); the persistence test
runs the real server (``python -m roomserver serve``) in a subprocess and talks HTTP to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from roomserver.core.tokens import TokenRecord
from roomserver.store import (
    Store,
    StoreConflict,
    StoreError,
    StoreUnavailable,
    Tx,
    open_store,
)
from roomserver.store.postgres import schema as pg_schema
from roomserver.store.sqlite.schema import connect, migrations
from tests import pg

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "rsk_store_test_" + "s" * 24
NOW = 1_800_000_000
TABLES = {"departments", "accounts", "rooms", "issued_tokens", "sessions", "audit_events", "consents", "expert_calls",
          "call_events", "callback_requests", "interpreter_languages"}
ENGINES = ["sqlite", "postgresql"]


def needs_postgres() -> None:
    if pg.unavailable():
        pytest.skip(pg.unavailable())


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on each engine."""
    if request.param == "postgresql":
        needs_postgres()
        url = pg.new_database()
        s = open_store(url, tmp_path / "unused")
        yield s
        s.close()
        pg.drop_database(url)
    else:
        s = Store.open_sqlite(tmp_path / "store.sqlite3")
        yield s
        s.close()


def tables(store: Store) -> set[str]:
    if store.dialect == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        query = "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
    return {r["name"] for r in store.blocking.read(lambda tx: tx.sql.execute(query).fetchall())}


def columns(store: Store, table: str) -> set[str]:
    if store.dialect == "sqlite":
        rows = store.blocking.read(lambda tx: tx.sql.execute(f"PRAGMA table_info({table})").fetchall())
    else:
        rows = store.blocking.read(lambda tx: tx.sql.execute(
            "SELECT column_name AS name FROM information_schema.columns WHERE table_name = ?", (table,)).fetchall())
    return {r["name"] for r in rows}


def new_room(store: Store, title: str = "Beratung") -> str:
    return store.blocking.rooms.create(title=title, scheduled_start=None, scheduled_end=None, waiting_room=True,
                                       max_participants=6, created_by="test", now=NOW).id


def new_token(store: Store, room: str, jti: str, *, single_use: bool = False) -> None:
    store.blocking.tokens.record(TokenRecord(jti=jti, room_id=room, role="citizen", identity=f"citizen:{jti}",
                                             not_before=NOW, expires_at=NOW + 600, single_use=single_use,
                                             used_at=None, revoked_at=None), issued_by="test", issued_at=NOW)


# --- schema and migrations ------------------------------------------------------------


def test_migrations_are_numbered_from_one_and_the_same_on_both_engines() -> None:
    assert [n for n, _, _ in migrations()] == list(range(1, len(migrations()) + 1))
    assert len(migrations()) >= 3
    assert [name for _, name, _ in migrations()] == [name for _, name, _ in pg_schema.migrations()]


def test_empty_database_reaches_the_latest_schema(store: Store) -> None:
    assert store.schema_version == store.latest_schema == len(migrations())
    assert tables(store) >= TABLES
    assert "label" in columns(store, "issued_tokens")
    assert {"title", "scheduled_start", "scheduled_end", "waiting_room", "max_participants", "state",
            "created_by"} <= columns(store, "rooms")
    assert {"jti", "room_id", "role", "identity", "not_before", "expires_at", "single_use", "used_at",
            "revoked_at"} <= columns(store, "issued_tokens")
    assert store.blocking.read(Tx.is_empty)


def test_both_engines_have_the_same_tables_and_columns(tmp_path: Path) -> None:
    needs_postgres()
    lite = Store.open_sqlite(tmp_path / "lite.sqlite3")
    url = pg.new_database()
    post = open_store(url, tmp_path / "unused")
    try:
        assert tables(lite) == tables(post) - {"schema_migrations"}
        for table in tables(lite):
            assert columns(lite, table) == columns(post, table), table
    finally:
        lite.close()
        post.close()
        pg.drop_database(url)


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "again.sqlite3"
    first = Store.open_sqlite(path)
    room = new_room(first)
    first.close()
    second = Store.open_sqlite(path)
    try:
        assert second.schema_version == second.latest_schema
        assert second.blocking.rooms.get(room) is not None
    finally:
        second.close()


def test_older_database_is_migrated_forward_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = connect(path, migrate_to=1)
    try:
        assert int(old.execute("PRAGMA user_version").fetchone()[0]) == 1
        assert "label" not in {r[1] for r in old.execute("PRAGMA table_info(issued_tokens)")}
        old.execute("INSERT INTO departments (id, name, kind, created_at) VALUES ('jobcenter', 'Jobcenter',"
                    " 'county', ?)", (NOW,))
        old.execute("INSERT INTO accounts (id, username, display_name, role, department_id, created_at)"
                    " VALUES ('a_1', 'jc', 'Herr Y', 'expert', 'jobcenter', ?)", (NOW,))
        old.execute("INSERT INTO rooms (id, title, waiting_room, max_participants, state, created_by, created_at)"
                    " VALUES ('r_old', 'Alte Beratung', 1, 4, 'live', 'a_1', ?)", (NOW,))
        old.execute("INSERT INTO issued_tokens (jti, room_id, role, identity, not_before, expires_at, single_use,"
                    " issued_by, issued_at, used_at) VALUES ('jti_old', 'r_old', 'expert', 'expert:y', ?, ?, 1,"
                    " 'a_1', ?, ?)", (NOW, NOW + 120, NOW, NOW + 5))
        old.execute("INSERT INTO audit_events (at, actor, action, room_id) VALUES (?, 'a_1', 'room.created',"
                    " 'r_old')", (NOW,))
    finally:
        old.close()

    store = Store.open_sqlite(path)
    try:
        assert store.schema_version == store.latest_schema
        assert "consents" in tables(store)
        assert "label" in columns(store, "issued_tokens")
        b = store.blocking
        room = b.rooms.get("r_old")
        assert room is not None
        assert (room.title, room.max_participants, room.state, room.created_by) == ("Alte Beratung", 4, "live", "a_1")
        token = b.tokens.get("jti_old")
        assert token is not None
        assert (token.room_id, token.single_use, token.used_at) == ("r_old", True, NOW + 5)
        assert b.tokens.label("jti_old") == ""  # the new column's default for old rows
        account = b.directory.by_username("jc")
        assert account is not None and account.department_id == "jobcenter"
        assert [e.action for e in b.audit.query(room_id="r_old")] == ["room.created"]
        b.consents.record("r_old", "jti_old", "datenschutz-v1", NOW)  # the new table works
        assert b.consents.latest("jti_old").withdrawn_at is None  # and its 0005 column
    finally:
        store.close()


def test_an_older_postgresql_database_is_refused_until_migrated_and_then_keeps_its_rows(tmp_path: Path) -> None:
    needs_postgres()
    url = pg.empty_database()
    try:
        with pytest.raises(StoreError, match="has no schema yet; run 'roomserver migrate'"):
            open_store(url, tmp_path / "unused")
        assert pg_schema.migrate(url, upto=1) == [1]
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO rooms (id, title, waiting_room, max_participants, state, created_by,"
                         " created_at) VALUES ('r_old', 'Alte Beratung', 1, 4, 'open', 'a_1', %s)", (NOW,))
        with pytest.raises(StoreError, match="is at schema 1, this server needs"):
            open_store(url, tmp_path / "unused")
        assert pg_schema.migrate(url) == list(range(2, len(migrations()) + 1))
        assert pg_schema.migrate(url) == []  # a second run (another node) applies nothing
        store = open_store(url, tmp_path / "unused")
        try:
            assert store.blocking.rooms.get("r_old").title == "Alte Beratung"  # noqa: the row came along
            assert store.blocking.tokens.label("none") == ""
        finally:
            store.close()
    finally:
        pg.drop_database(url)


def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    Store.open_sqlite(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(migrations()) + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer than this server"):
        Store.open_sqlite(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open_sqlite(path)


def test_an_unreachable_postgresql_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    with pytest.raises(StoreError, match="cannot reach PostgreSQL at 127.0.0.1:.*/nothing"):
        open_store(f"postgresql://postgres@127.0.0.1:{port}/nothing", tmp_path / "unused")
    with pytest.raises(StoreError, match="must start with postgresql://"):
        open_store("mysql://somewhere/db", tmp_path / "unused")


def test_wal_mode_is_on_and_the_file_is_private(tmp_path: Path) -> None:
    store = Store.open_sqlite(tmp_path / "wal.sqlite3")
    try:
        mode = store.blocking.read(lambda tx: tx.sql.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode.lower() == "wal"
        new_room(store)
        path = tmp_path / "wal.sqlite3"
        assert path.with_name(path.name + "-wal").exists()
        for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert stat.S_IMODE(each.stat().st_mode) == 0o600, each.name  # the ledger and audit log: owner only
        other = sqlite3.connect(path)  # a second reader sees it too: WAL is persistent
        try:
            assert other.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        finally:
            other.close()
    finally:
        store.close()


def test_audit_events_refuse_update(store: Store) -> None:
    b = store.blocking
    event = b.audit.append(at=NOW, actor="a_1", actor_role="counsellor", action="room.created", room_id="r_x")
    with pytest.raises(StoreConflict):  # a broken rule of the schema, on either engine
        store.blocking.write(lambda tx: tx.sql.execute("UPDATE audit_events SET actor = 'someone-else' WHERE id = ?",
                                                       (event,)))
    [kept] = b.audit.query()
    assert (kept.id, kept.actor, kept.action) == (event, "a_1", "room.created")


def test_ending_a_room_revokes_all_its_tokens(store: Store) -> None:
    b = store.blocking
    room, other = new_room(store), new_room(store, "Andere Beratung")
    for jti in ("t1", "t2", "t3"):
        new_token(store, room, jti)
    new_token(store, other, "t_other")
    assert b.tokens.revoke("t2", NOW - 10)

    assert b.rooms.end(room, reason="api", now=NOW) is True
    ended = b.rooms.get(room)
    assert ended is not None and (ended.state, ended.ended_at, ended.ended_reason) == ("ended", NOW, "api")
    assert [b.tokens.get(j).revoked_at for j in ("t1", "t2", "t3")] == [NOW, NOW - 10, NOW]
    assert b.tokens.get("t_other").revoked_at is None
    assert b.rooms.get(other).state == "open"
    assert b.rooms.end(room, reason="api", now=NOW + 1) is False
    assert b.rooms.get(room).ended_at == NOW


def test_ended_among_finds_the_ended_rooms_of_many_ids_in_a_few_queries(store: Store) -> None:
    # The running server asks this every few seconds for every room it hosts (a node may host a
    # thousand): the answer must be exact across the 500-id chunks.
    b = store.blocking
    ids = [f"r_unknown{i}" for i in range(1203)]
    for place in (0, 499, 500, 1202):  # either side of each chunk's edge, and the last
        ids[place] = new_room(store, f"Beratung {place}")
    ended = {ids[0], ids[499], ids[500], ids[1202]}
    assert b.rooms.end(new_room(store, "Nicht gefragt"), reason="operator", now=NOW)  # ended, not asked for
    ids[7] = new_room(store, "Noch offen")  # asked for, still open
    for room in ended:
        assert b.rooms.end(room, reason="operator", now=NOW)
    found = b.rooms.ended_among(ids)
    assert {row.id for row in found} == ended and len(found) == len(ended)
    assert {row.ended_reason for row in found} == {"operator"}
    assert b.rooms.ended_among([]) == []


def test_usernames_are_unique_whatever_the_case(store: Store) -> None:
    b = store.blocking
    b.directory.add_account(username="Beratung", display_name="B", role="counsellor", department_id=None,
                            password_hash=None, now=NOW)
    assert b.directory.by_username("beratung").username == "Beratung"  # noqa: found whatever the case
    with pytest.raises(StoreConflict):
        b.directory.add_account(username="BERATUNG", display_name="C", role="counsellor", department_id=None,
                                password_hash=None, now=NOW)


async def test_a_single_use_token_raced_from_many_writers_is_spent_exactly_once(store: Store) -> None:
    room = new_room(store)
    new_token(store, room, "once", single_use=True)
    results = await asyncio.gather(*[store.tokens.spend("once", NOW + i) for i in range(20)])
    assert sorted(results) == [False] * 19 + [True]


async def test_units_of_work_commit_together_or_not_at_all(store: Store) -> None:
    room = new_room(store)

    def half_then_fail(tx: Tx) -> None:
        tx.audit.append(at=NOW, actor="t", action="half.done", room_id=room)
        raise StoreConflict("second half refused")

    results = await asyncio.gather(store.write(half_then_fail),
                                   store.audit.append(at=NOW, actor="t", action="whole.done", room_id=room),
                                   return_exceptions=True)
    assert isinstance(results[0], StoreConflict) and isinstance(results[1], int)
    actions = [e.action for e in await store.audit.query(room_id=room)]
    assert actions == ["whole.done"]  # the failed unit left nothing; its neighbour in the batch committed


async def test_a_burst_of_writes_shares_commits_on_sqlite(tmp_path: Path) -> None:
    store = Store.open_sqlite(tmp_path / "burst.sqlite3")
    try:
        await asyncio.gather(*[store.audit.append(at=NOW, actor="t", action="burst") for _ in range(200)])
        backend = store.backend
        assert backend.units == 200 and backend.commits < 200  # group commit: fewer disk syncs than writes
        assert len(await store.audit.query(action="burst")) == 200
    finally:
        store.close()


async def test_a_closed_store_says_unavailable(store: Store) -> None:
    store.close()
    with pytest.raises(StoreUnavailable):
        await store.rooms.get("r_x")
    assert await store.ping() is False


# --- persistence across SIGKILL ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m roomserver serve`` on a data dir; output goes to files (a full pipe would block it)."""

    def __init__(self, data_dir: Path, logs: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMSERVER_")}
        env.update({"ROOMSERVER_SERVER_DATA_DIR": str(data_dir), "ROOMSERVER_SERVER_PORT": str(self.port),
                    "ROOMSERVER_AUTH_API_KEYS": f"store-test:{API_KEY}",
                    "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false"})
        self.out = (logs / f"serve-{self.port}.out").open("w")
        self.err = (logs / f"serve-{self.port}.err").open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "roomserver", "serve"], cwd=ROOT, env=env,
                                     stdout=self.out, stderr=self.err)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}: {self.stderr()}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"server not healthy within {timeout}s: {self.stderr()}")

    def stderr(self) -> str:
        self.err.flush()
        return Path(self.err.name).read_text(encoding="utf-8")[-2000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.out.close()
        self.err.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                         headers={"Authorization": f"Bearer {API_KEY}",
                                                  **({"Content-Type": "application/json"} if data else {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def test_nothing_acknowledged_is_lost_when_the_server_is_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rooms: dict[str, str] = {}  # id -> title
    invites: dict[str, str] = {}  # jti -> room id
    server = ServerProcess(data_dir, tmp_path)
    try:
        server.wait_healthy()
        for n in range(3):
            status, room = server.call("POST", "/api/v1/rooms", {"title": f"Beratung {n}"})
            assert status == 201, room
            rooms[room["id"]] = room["title"]
            for role in ("citizen", "expert"):
                status, invite = server.call("POST", f"/api/v1/rooms/{room['id']}/invites",
                                             {"role": role, "name": f"{role} {n}"})
                assert status == 201, invite
                invites[invite["jti"]] = room["id"]
        ended_room = list(rooms)[2]
        status, _ = server.call("POST", f"/api/v1/rooms/{ended_room}/end")
        assert status == 200
        revoked = next(jti for jti, room_id in invites.items() if room_id == list(rooms)[0])
        status, _ = server.call("DELETE", f"/api/v1/rooms/{invites[revoked]}/invites/{revoked}")
        assert status == 204  # the last acknowledged write ...
        os.kill(server.proc.pid, signal.SIGKILL)  # ... and at once the hardest stop there is
        assert server.proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        server.kill()

    restarted = ServerProcess(data_dir, tmp_path)
    try:
        restarted.wait_healthy()
        status, listing = restarted.call("GET", "/api/v1/rooms?limit=500")
        assert status == 200
        assert {r["id"]: r["title"] for r in listing["rooms"]} == rooms
        for room_id in rooms:
            status, room = restarted.call("GET", f"/api/v1/rooms/{room_id}")
            assert status == 200 and room["state"] == ("ended" if room_id == ended_room else "open")
            status, body = restarted.call("GET", f"/api/v1/rooms/{room_id}/invites")
            assert status == 200
            seen = {i["jti"]: i["revoked_at"] for i in body["invites"]}
            assert set(seen) == {jti for jti, r in invites.items() if r == room_id}
            for jti, revoked_at in seen.items():
                withdrawn = jti == revoked or room_id == ended_room
                assert (revoked_at is not None) == withdrawn, (room_id, jti)

        db = sqlite3.connect(f"file:{data_dir / 'roomserver.sqlite3'}?mode=ro", uri=True)
        try:
            actions = [a for (a,) in db.execute("SELECT action FROM audit_events ORDER BY id")]
        finally:
            db.close()
        assert actions.count("room.created") == 3
        assert actions.count("token.issued") == 6
        assert actions.count("room.ended") == 1
        assert actions.count("token.revoked") == 1
        assert actions[-1] == "token.revoked"
    finally:
        restarted.kill()


def test_a_database_left_readable_by_others_is_made_private_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    Store.open_sqlite(path).close()
    for each in tmp_path.iterdir():
        each.chmod(0o644)  # as an older release (or a copy) left it
    store = Store.open_sqlite(path)
    try:
        new_room(store)
        modes = {each.name: stat.S_IMODE(each.stat().st_mode) for each in tmp_path.iterdir()}
        assert set(modes.values()) == {0o600}, modes
    finally:
        store.close()
