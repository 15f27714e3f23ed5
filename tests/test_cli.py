"""The ``roomserver`` command line: every subcommand, run as a person would run it.

Each call is ``python -m roomserver ...`` in a subprocess, from the repository
root, on a temporary data directory; what a command claims to have done is
checked in the SQLite file, the key set and over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from roomserver import config
from roomserver.core.errors import RoomServerError, TokenError
from roomserver.core.roles import Role
from roomserver.core.tokens import TokenCodec, check_admission
from roomserver.domain.auth import LocalPasswordProvider
from roomserver.domain.demo import ACCOUNTS, DEPARTMENTS
from roomserver.keys import KeySet
from roomserver.store import Store

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["serve", "check-config", "create-room", "invite", "end-room", "keys", "seed-demo", "i18n-stale",
            "i18n-stamp"]
PASSWORD_LINE = re.compile(r"^\s+(\w+)\s+([\w-]+)\s+(\w{4}-\w{4}-\w{4}-\w{4})$", re.MULTILINE)
JOIN_LINK = re.compile(r"^http://127\.0\.0\.1:8080/join/(r_[\w-]+)#([\w-]+\.[\w-]+\.[\w-]+)$")
WAIT = 30.0  # seconds; the bound on every wait for a server process


# --- helpers -------------------------------------------------------------------


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMSERVER_")}
    env.update({"ROOMSERVER_SERVER_DATA_DIR": str(data_dir), **extra})
    return env


def run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roomserver", *args], cwd=ROOT, env=clean_env(data_dir, **env),
                          capture_output=True, text=True, timeout=60)


def ok(data_dir: Path, *args: str, **env: str) -> str:
    result = run(data_dir, *args, **env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The command failed with ``code`` and one line on stderr containing every needle."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def create_room(data_dir: Path, *args: str) -> dict:
    return json.loads(ok(data_dir, "create-room", "--title", "Beratung 10:30", "--json", *args))


def codec_for(data_dir: Path) -> TokenCodec:
    settings = config.load(ROOT / "config" / "roomserver.toml", env={"ROOMSERVER_SERVER_DATA_DIR": str(data_dir)})
    t = settings.tokens
    return TokenCodec(KeySet.open(settings.keys_dir), t.issuer, t.audience, t.leeway_seconds)


def open_store(data_dir: Path) -> Store:
    return Store.open_sqlite(data_dir / "roomserver.sqlite3")


def logins(output: str) -> dict[str, str]:
    """username -> password from printed demo sign-ins."""
    return {user: password for _role, user, password in PASSWORD_LINE.findall(output)}


def kids(data_dir: Path) -> list[tuple[str, str]]:
    """(kid, 'active' | 'verify-only') from ``keys list``."""
    return [(line.split()[0], line.split()[-1]) for line in ok(data_dir, "keys", "list").splitlines()]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- help and check-config -------------------------------------------------------


def test_help_lists_every_command(data_dir: Path) -> None:
    out = ok(data_dir, "--help")
    for command in COMMANDS:
        assert command in out
    assert "--config" in out


@pytest.mark.parametrize("command", [[c] for c in COMMANDS] + [["keys", k] for k in ("list", "rotate", "remove")])
def test_each_command_has_help(data_dir: Path, command: list[str]) -> None:
    out = ok(data_dir, *command, "--help")
    assert out.startswith(f"usage: roomserver {' '.join(command)}")
    assert "--config" in out
    assert not data_dir.exists()  # asking for help changes nothing


def test_unknown_command_is_a_usage_error(data_dir: Path) -> None:
    result = run(data_dir, "frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr and "Traceback" not in result.stderr


def test_check_config_summarises_and_writes_nothing(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[server]\nport = 9443\npublic_url = "https://beratung.example"\n', encoding="utf-8")
    for args in (["check-config", "--config", str(path)], ["--config", str(path), "check-config"]):
        out = ok(data_dir, *args)
        assert out.startswith(f"config OK: {path}")
        assert "127.0.0.1:9443" in out and "https://beratung.example" in out and str(data_dir) in out
    assert ok(data_dir, "check-config").startswith("config OK: config/roomserver.toml")
    assert not data_dir.exists()


def test_check_config_refuses_a_bad_setting(data_dir: Path) -> None:
    fails(run(data_dir, "check-config", ROOMSERVER_ROOMS_MAX_PARTICIPANTS="12"), 2, "max_participants")
    fails(run(data_dir, "check-config", ROOMSERVER_PRIVACY_RECORDS_RETENTION_DAYS="0"), 2, "records_retention_days")


def test_check_config_names_the_data_notice_details_still_to_set(data_dir: Path) -> None:
    """The shipped controller and officer are examples: the summary says which are still unset."""
    out = ok(data_dir, "check-config")
    assert ("data notice: records kept 90 days, audit 90 days; EXAMPLE details still in [privacy] controller_name, "
            "controller_address, controller_contact, dpo_name, dpo_contact, authority") in out
    configured = {f"ROOMSERVER_PRIVACY_{key.upper()}": "Kreis Beispielstadt" for key in
                  ("controller_name", "controller_address", "controller_contact", "dpo_name", "dpo_contact",
                   "authority")}
    out = ok(data_dir, "check-config", ROOMSERVER_PRIVACY_RECORDS_RETENTION_DAYS="30", **configured)
    assert "data notice: records kept 30 days, audit 90 days; controller and DPO set" in out


# --- rooms and invites --------------------------------------------------------------


def test_create_room_puts_it_in_the_database(data_dir: Path) -> None:
    room = create_room(data_dir, "--start", "2099-11-25T10:30:00+01:00", "--no-waiting-room",
                       "--max-participants", "4")
    assert re.fullmatch(r"r_[\w-]+", room["id"])
    assert (room["title"], room["state"], room["waiting_room"], room["max_participants"]) == \
        ("Beratung 10:30", "open", False, 4)
    assert room["scheduled_start"] == "2099-11-25T09:30:00+00:00"
    store = open_store(data_dir)
    try:
        row = store.blocking.rooms.get(room["id"])
        assert row is not None
        assert (row.title, row.waiting_room, row.max_participants, row.state) == ("Beratung 10:30", False, 4, "open")
        assert row.scheduled_end - row.scheduled_start == 60 * 60  # the default duration
        assert [e.action for e in store.blocking.audit.query(room_id=room["id"])] == ["room.created"]
    finally:
        store.close()
    plain = ok(data_dir, "create-room", "--title", "Zweite Beratung")
    assert "room created: r_" in plain


def test_create_room_refuses_bad_input_in_one_line(data_dir: Path) -> None:
    create_room(data_dir)  # past the first start, which also shows what it generated
    fails(run(data_dir, "create-room", "--title", "   "), 1, "invalid_title")
    fails(run(data_dir, "create-room", "--title", "x", "--max-participants", "9"), 1, "invalid_max_participants")
    fails(run(data_dir, "create-room", "--title", "x", "--start", "tomorrow"), 1, "--start")


def test_invite_prints_a_join_link_whose_token_the_server_accepts(data_dir: Path) -> None:
    room = create_room(data_dir)["id"]
    result = run(data_dir, "invite", room, "--role", "citizen", "--name", "Frau X")
    assert result.returncode == 0, result.stderr
    match = JOIN_LINK.match(result.stdout.strip())
    assert match, result.stdout
    assert match.group(1) == room
    claims = codec_for(data_dir).decode(match.group(2), time.time())
    assert (claims.room, claims.role, claims.name) == (room, Role.CITIZEN, "Frau X")
    assert claims.jti in result.stderr  # the id to revoke it by
    store = open_store(data_dir)
    try:
        record = store.blocking.tokens.get(claims.jti)
        assert record is not None and record.room_id == room and not record.single_use
        assert store.blocking.tokens.label(claims.jti) == "Frau X"
        check_admission(claims, room_id=room, record=record, room_state="open", occupancy=0, capacity=6)
    finally:
        store.close()


def test_invite_names_the_address_the_server_really_runs_on(data_dir: Path) -> None:
    """``serve --port 9000`` and a link printed with the config's 8080 sent citizens nowhere."""
    room = create_room(data_dir)["id"]
    plain = run(data_dir, "invite", room, "--role", "citizen", "--name", "Frau X")
    assert "--base-url" in plain.stderr  # says how, when the config names no public_url
    result = run(data_dir, "invite", room, "--role", "citizen", "--name", "Frau X",
                 "--base-url", "https://beratung.example.org/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"https://beratung.example.org/join/{room}#")


def test_invite_as_json_for_an_expert_is_single_use(data_dir: Path) -> None:
    room = create_room(data_dir)["id"]
    invite = json.loads(ok(data_dir, "invite", room, "--role", "expert", "--name", "Herr Y", "--json"))
    assert invite["single_use"] is True
    assert invite["join_url"].endswith(f"/join/{room}#{invite['token']}")
    claims = codec_for(data_dir).decode(invite["token"], time.time())
    assert claims.jti == invite["jti"] and claims.exp - claims.iat == 120  # the patch-in lifetime


def test_invite_for_an_unknown_room_fails_in_one_line(data_dir: Path) -> None:
    create_room(data_dir)
    fails(run(data_dir, "invite", "r_doesnotexist", "--role", "citizen", "--name", "X"), 1, "not_found")
    fails(run(data_dir, "invite", "../../etc", "--role", "citizen", "--name", "X"), 1, "not_found")


def test_end_room_ends_it_and_withdraws_its_tokens(data_dir: Path) -> None:
    room = create_room(data_dir)["id"]
    invite = json.loads(ok(data_dir, "invite", room, "--role", "citizen", "--name", "Frau X", "--json"))
    assert ok(data_dir, "end-room", room).strip() == f"ended {room}"
    store = open_store(data_dir)
    try:
        assert store.blocking.rooms.get(room).state == "ended"  # noqa
        record = store.blocking.tokens.get(invite["jti"])
        assert record.revoked_at is not None
        claims = codec_for(data_dir).decode(invite["token"], time.time())
        with pytest.raises(TokenError) as refused:
            check_admission(claims, room_id=room, record=record, room_state="ended", occupancy=0, capacity=6)
        assert refused.value.code == "room_ended"
    finally:
        store.close()
    fails(run(data_dir, "end-room", room), 1, "room_ended")
    fails(run(data_dir, "invite", room, "--role", "citizen", "--name", "Y"), 1, "room_ended")
    fails(run(data_dir, "end-room", "r_doesnotexist"), 1, "not_found")


# --- keys -----------------------------------------------------------------------------


def test_keys_list_rotate_remove(data_dir: Path) -> None:
    fails(run(data_dir, "keys", "list"), 1, "no key set")
    room = create_room(data_dir)["id"]  # the first use generates the key set
    [(old, state)] = kids(data_dir)
    assert state == "active"
    token = json.loads(ok(data_dir, "invite", room, "--role", "citizen", "--name", "X", "--json"))["token"]

    out = ok(data_dir, "keys", "rotate")
    new = re.search(r"new active key (\S+) \(EdDSA\)", out).group(1)
    assert new != old
    assert kids(data_dir) == [(old, "verify-only"), (new, "active")]
    assert codec_for(data_dir).decode(token, time.time()).kid == old  # still verifies
    fresh = json.loads(ok(data_dir, "invite", room, "--role", "citizen", "--name", "Y", "--json"))["token"]
    assert codec_for(data_dir).decode(fresh, time.time()).kid == new  # new tokens use the new key

    fails(run(data_dir, "keys", "remove", new), 1, new, "active")
    fails(run(data_dir, "keys", "remove", "nosuchkid"), 1, "nosuchkid")
    assert old in ok(data_dir, "keys", "remove", old)
    assert kids(data_dir) == [(new, "active")]
    with pytest.raises(TokenError) as refused:
        codec_for(data_dir).decode(token, time.time())
    assert refused.value.code == "token_unknown_kid"

    es = ok(data_dir, "keys", "rotate", "--alg", "ES256")
    assert "(ES256)" in es and KeySet.open(data_dir / "keys").active.alg == "ES256"


# --- demo data ----------------------------------------------------------------------------


def test_seed_demo_prints_passwords_once_and_resets_them(data_dir: Path) -> None:
    first = ok(data_dir, "seed-demo")  # a fresh data dir with the shipped config: seeding on
    passwords = logins(first)
    assert set(passwords) == {username for username, *_ in ACCOUNTS} and len(passwords) == 8
    store = open_store(data_dir)
    try:
        names = {d.name for d in store.blocking.directory.departments()}
        assert names == {"Agentur für Arbeit", "Ausländerbehörde", "Jobcenter", "Sozialamt",
                         "Amt für Jugend und Bildung"} == {name for _, name, _ in DEPARTMENTS}
        accounts = store.blocking.directory.accounts()
        assert len(accounts) == 8
        assert sorted(a.role for a in accounts) == sorted(role for _, _, role, _ in ACCOUNTS)
        experts = {a.department_id for a in store.blocking.directory.accounts(role="expert")}
        assert experts == {"auslaenderbehoerde", "jobcenter", "sozialamt", "jugend-bildung"}
        assert all(a.password_hash and a.password_hash.startswith("$argon2") for a in accounts)
        assert not any(p in (a.password_hash or "") for a in accounts for p in passwords.values())
    finally:
        store.close()

    again = ok(data_dir, "seed-demo")
    assert logins(again) == {} and "nothing changed" in again
    assert not any(p in again for p in passwords.values())

    reset = logins(ok(data_dir, "seed-demo", "--reset-passwords"))
    assert set(reset) == set(passwords)
    assert all(reset[u] != passwords[u] for u in reset)
    store = open_store(data_dir)
    try:
        provider = LocalPasswordProvider(store)
        now = int(time.time())
        with pytest.raises(RoomServerError) as refused:
            asyncio.run(provider.authenticate("beratung", passwords["beratung"], now))
        assert refused.value.code == "login_failed"
        assert asyncio.run(provider.authenticate("beratung", reset["beratung"], now)).role == "counsellor"
        assert asyncio.run(provider.authenticate("abh", reset["abh"], now)).department_id == "auslaenderbehoerde"
    finally:
        store.close()


def test_a_first_start_by_another_command_shows_what_it_generated(data_dir: Path) -> None:
    """Whichever command runs first, the generated API key and demo passwords are shown once."""
    result = run(data_dir, "create-room", "--title", "Erste", "--json")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # stdout stays the command's own output
    api_key = (data_dir / "api-keys").read_text(encoding="utf-8").splitlines()[-1].split(":", 1)[1]
    assert api_key in result.stderr
    assert len(logins(result.stderr)) == 8
    assert logins(ok(data_dir, "seed-demo")) == {}


# --- serve ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A ``serve`` subprocess whose output goes to files (a full pipe would block it)."""

    def __init__(self, data_dir: Path, logs: Path, port: int) -> None:
        self.port = port
        self.stdout_path = logs / f"serve-{port}-{time.monotonic_ns()}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "roomserver", "serve"], cwd=ROOT,
                                         env=clean_env(data_dir, ROOMSERVER_SERVER_PORT=str(port)),
                                         stdout=out, stderr=err)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode}: "
                            f"{self.stderr_path.read_text(encoding='utf-8')[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"serve not healthy within {WAIT}s")

    def stop(self) -> int:
        """SIGTERM, as a service manager would stop it; SIGKILL if it does not go."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=WAIT)


@pytest.fixture
def served() -> Iterator[list[Served]]:
    """Every server a test starts is stopped at its end, however it ends."""
    started: list[Served] = []
    yield started
    for server in started:
        server.stop()


def test_serve_prints_url_and_first_start_sign_ins_once(data_dir: Path, tmp_path: Path,
                                                        served: list[Served]) -> None:
    port = free_port()
    served.append(first := Served(data_dir, tmp_path, port))
    first.wait_healthy()
    banner = first.stdout
    assert f"http://127.0.0.1:{port}/" in banner
    api_key = re.search(r"API key \(saved in .*api-keys, shown only now\): (\S+)", banner).group(1)
    assert len(logins(banner)) == 8
    assert "the citizens' data notice shows example details; set [privacy] controller_name" in banner
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/rooms",
                                     headers={"Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and json.loads(response.read()) == {"rooms": []}
    assert first.stop() == 0  # a clean stop on SIGTERM

    port = free_port()
    served.append(second := Served(data_dir, tmp_path, port))
    second.wait_healthy()
    banner = second.stdout
    assert f"http://127.0.0.1:{port}/" in banner
    assert logins(banner) == {} and api_key not in banner and "API key" not in banner

    busy = run(data_dir, "serve", ROOMSERVER_SERVER_PORT=str(port))  # the second server holds the port
    fails(busy, 1, "cannot listen", str(port))
    assert busy.stdout == ""


def test_busy_port_on_a_first_start_loses_no_sign_ins(data_dir: Path, tmp_path: Path,
                                                      served: list[Served]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        fails(run(data_dir, "serve", ROOMSERVER_SERVER_PORT=str(port)), 1, "cannot listen", str(port))
    served.append(server := Served(data_dir, tmp_path, free_port()))
    server.wait_healthy()
    assert len(logins(server.stdout)) == 8  # the failed start did not use up the one showing
