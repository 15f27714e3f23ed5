"""A real server on loopback for one attack module, outside pytest: the test fixtures' recipe.

``async with target(**env) as t`` starts the application exactly as ``tests/conftest.py`` does
(real settings in a temporary data directory, a real store — PostgreSQL when
``ROOMSERVER_TEST_STORE=postgresql`` — real keys, aiohttp on 127.0.0.1) and stops it after.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
from aiohttp.test_utils import TestServer

from roomserver import bootstrap, config
from roomserver.app import create_app
from roomserver.domain.auth import hash_password
from roomserver.services import Services, build_services

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "rsk_attack_" + "k" * 32
API = {"Authorization": f"Bearer {API_KEY}"}
WAIT = 10.0


@dataclass
class Target:
    server: TestServer
    services: Services
    http: aiohttp.ClientSession
    data_dir: Path
    _sockets: list["Sock"] = field(default_factory=list)

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def room(self, **fields: Any) -> str:
        r = await self.http.post("/api/v1/rooms", json={"title": "Beratung", "waiting_room": False, **fields},
                                 headers=API)
        assert r.status == 201, await r.text()
        return str((await r.json())["id"])

    async def invite(self, room: str, role: str, name: str = "Test", **fields: Any) -> dict[str, Any]:
        r = await self.http.post(f"/api/v1/rooms/{room}/invites", json={"role": role, "name": name, **fields},
                                 headers=API)
        assert r.status == 201, await r.text()
        return dict(await r.json())

    def staff(self, username: str, role: str, password: str) -> str:
        account = self.services.store.blocking.directory.add_account(
            username=username, display_name=username.title(), role=role, department_id=None,
            password_hash=hash_password(password), now=self.services.now())
        return str(account.id)

    def client(self) -> aiohttp.ClientSession:
        """A browser-like client of its own (cookies kept, also for 127.0.0.1)."""
        return aiohttp.ClientSession(base_url=self.base, cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def socket(self, http: aiohttp.ClientSession | None = None) -> "Sock":
        ws = await (http or self.http).ws_connect("/ws", heartbeat=None, autoping=True, max_msg_size=0)
        sock = Sock(ws)
        self._sockets.append(sock)
        return sock

    async def seated(self, room: str, role: str, name: str = "Test") -> tuple["Sock", dict[str, Any]]:
        sock = await self.socket()
        welcome = await sock.join((await self.invite(room, role, name))["token"])
        assert welcome.get("type") == "welcome", welcome
        return sock, welcome


class Sock:
    """A WebSocket that is read all the time by a task of its own, so that it answers the server's pings
    even while the attack is quiet (a socket nobody reads is closed as dead)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.close_code: int | None = None
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        self.inbox.put_nowait(json.loads(msg.data))
                    except ValueError:
                        continue
        finally:
            self.close_code = self.ws.close_code
            self.inbox.put_nowait(None)

    async def send(self, message: Any) -> None:
        if isinstance(message, bytes):
            await self.ws.send_bytes(message)
        elif isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.ws.send_json(message)

    async def next(self, timeout: float = WAIT) -> dict[str, Any] | None:
        """The next message, or None once the socket is closed (``close_code`` says how)."""
        try:
            msg = await asyncio.wait_for(self.inbox.get(), timeout)
        except asyncio.TimeoutError:
            return {"type": "timeout"}
        if msg is None:
            self.inbox.put_nowait(None)  # stays closed for every later read
        return msg

    async def expect(self, type_: str, timeout: float = WAIT) -> dict[str, Any] | None:
        """The next message of ``type_`` (others skipped), None if the socket closed or nothing came."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (left := end - loop.time()) > 0:
            msg = await self.next(left)
            if msg is None or msg.get("type") == "timeout":
                return None
            if msg.get("type") == type_:
                return msg
        return None

    async def closed(self, timeout: float = WAIT) -> int | None:
        """Wait for the close; its code (None if it stayed open)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except asyncio.TimeoutError:
            return None
        return self.close_code

    async def join(self, token: str, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "join", "token": token, **fields})
        return await self.next() or {"type": "closed", "code": self.close_code}

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


def _settings(data_dir: Path, store_url: str, **env: str) -> config.Settings:
    base = {"ROOMSERVER_SERVER_DATA_DIR": str(data_dir), "ROOMSERVER_SERVER_PORT": "0",
            "ROOMSERVER_STORE_SYNCHRONOUS": "normal", "ROOMSERVER_AUTH_API_KEYS": f"attacks:{API_KEY}",
            "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false", "ROOMSERVER_STORE_URL": store_url}
    base.update(env)
    return config.load(ROOT / "config" / "roomserver.toml", env=base)


@asynccontextmanager
async def target(**env: str) -> AsyncIterator[Target]:
    """One real server with its own data directory (and database), stopped and removed after."""
    store_url = ""
    if os.environ.get("ROOMSERVER_TEST_STORE") == "postgresql":
        from tests import pg
        store_url = pg.new_database()
    with tempfile.TemporaryDirectory(prefix="rs-attack-") as tmp:
        data_dir = Path(tmp) / "data"
        settings = _settings(data_dir, store_url, **env)
        bootstrap.prepare(settings, 0)
        services = build_services(settings)
        server = TestServer(create_app(services), host="127.0.0.1", port=0)
        await server.start_server()
        settings.server.public_url = str(server.make_url("")).rstrip("/")
        http = aiohttp.ClientSession(base_url=settings.server.public_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
        t = Target(server, services, http, data_dir)
        try:
            yield t
        finally:
            for sock in t._sockets:
                if not sock.ws.closed:
                    await sock.close()
            await http.close()
            await server.close()
            services.close()
            if store_url:
                from tests import pg
                pg.drop_database(store_url)


async def join_refused(t: Target, token: Any, expected: set[str], **fields: Any) -> tuple[bool, str]:
    """Join with ``token`` on a fresh socket: (refused with one of ``expected`` and closed, what came back)."""
    sock = await t.socket()
    reply = await sock.join(token, **fields)
    code = reply.get("code")
    closed = await sock.closed(5.0) if reply.get("type") == "error" else None
    if reply.get("type") in ("welcome", "waiting"):
        await sock.close()
    blocked = reply.get("type") == "error" and code in expected and closed is not None
    return blocked, f"{reply.get('type')} {code or ''} close {closed}".strip()
