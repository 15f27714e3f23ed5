"""Small helpers the tests share: rooms and invites through the real API, raw protocol sockets."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable

import aiohttp
from aiohttp.test_utils import TestServer

WAIT = 10.0  # every wait in a test is bounded by this many seconds


async def until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def sql(services: Any, query: str, *args: Any) -> list[dict[str, Any]]:
    """Run one SQL statement on the test server's store (either engine); the rows as dicts."""
    def unit(tx: Any) -> list[dict[str, Any]]:
        cursor = tx.sql.execute(query, args)
        return [dict(row) for row in cursor.fetchall()] if cursor.description else []
    return services.store.blocking.write(unit)


async def create_room(http: aiohttp.ClientSession, headers: dict[str, str], **fields: Any) -> str:
    body = {"title": "Beratung", "waiting_room": False, **fields}
    r = await http.post("/api/v1/rooms", json=body, headers=headers)
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def invite(http: aiohttp.ClientSession, headers: dict[str, str], room: str, role: str,
                 name: str = "Test", **fields: Any) -> dict[str, Any]:
    r = await http.post(f"/api/v1/rooms/{room}/invites", json={"role": role, "name": name, **fields},
                        headers=headers)
    assert r.status == 201, await r.text()
    return await r.json()


class RawSocket:
    """A protocol socket with no client logic: send exactly what a test says, read what comes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.close_code: int | None = None

    @classmethod
    async def open(cls, http: aiohttp.ClientSession) -> "RawSocket":
        return cls(await http.ws_connect("/ws", heartbeat=None, autoping=True))

    async def send(self, message: Any) -> None:
        if isinstance(message, (bytes, str)):
            await (self.ws.send_bytes(message) if isinstance(message, bytes) else self.ws.send_str(message))
        else:
            await self.ws.send_json(message)

    async def next(self, timeout: float = WAIT) -> dict[str, Any] | None:
        """The next JSON message, or None when the socket closed (``close_code`` then says how)."""
        try:
            msg = await asyncio.wait_for(self.ws.receive(), timeout)
        except aiohttp.ClientConnectionResetError:
            # The server's close frame arrived and the connection went before our reply to it could
            # be written (aiohttp answers a close by itself): closed all the same, with the server's code.
            self.close_code = self.ws.close_code
            return None
        if msg.type == aiohttp.WSMsgType.TEXT:
            data = msg.json()
            self.seen.append(data)
            return data
        if msg.type == aiohttp.WSMsgType.CLOSE:
            self.close_code = msg.data  # the code in the server's close frame
        elif self.close_code is None:
            self.close_code = self.ws.close_code
        return None

    async def expect(self, type_: str, timeout: float = WAIT) -> dict[str, Any]:
        """Read until a message of ``type_`` arrives (skipping others); fail if the socket closes first."""
        async def read() -> dict[str, Any]:
            while True:
                data = await self.next(timeout)
                assert data is not None, f"socket closed ({self.ws.close_code}) while waiting for {type_}"
                if data["type"] == type_:
                    return data
        return await asyncio.wait_for(read(), timeout)

    async def closed(self, timeout: float = WAIT) -> int | None:
        """Read until the socket closes; its close code."""
        async def read() -> int | None:
            while await self.next(timeout) is not None:
                pass
            return self.close_code
        return await asyncio.wait_for(read(), timeout)

    async def join(self, token: str, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "join", "token": token, **fields})
        reply = await self.next()
        assert reply is not None, f"closed {self.ws.close_code}"
        return reply

    async def close(self) -> None:
        await self.ws.close()


async def joined(http: aiohttp.ClientSession, headers: dict[str, str], room: str, role: str,
                 name: str = "Test") -> tuple[RawSocket, dict[str, Any]]:
    """A socket seated in ``room`` (not waiting) and its welcome."""
    sock = await RawSocket.open(http)
    welcome = await sock.join((await invite(http, headers, room, role, name))["token"])
    assert welcome["type"] == "welcome", welcome
    return sock, welcome


def database_text(services: Any) -> str:
    """Every row of every table of the test server's store, as text (to prove what is NOT stored)."""
    if services.store.dialect == "sqlite":
        tables = [r["name"] for r in sql(services, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        tables = [r["name"] for r in sql(services, "SELECT table_name AS name FROM information_schema.tables"
                                                   " WHERE table_schema = 'public'")]
    return "\n".join(f"{table}: {row}" for table in tables for row in sql(services, f"SELECT * FROM {table}"))


class RoomServerTestServer(TestServer):
    """aiohttp's TestServer running the app as ``roomserver serve`` does: guarded connections (timeouts,
    per-client cap, JSON error answers) and, given ``ssl=``, TLS handshakes bounded by the idle timeout."""

    async def _make_runner(self, **kwargs: Any) -> Any:
        from roomserver.connections import GuardedRunner
        return GuardedRunner(self.app, **kwargs)

    async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
        """aiohttp's ``start_server`` with a ``GuardedSockSite`` (TLS handshakes bounded like production)."""
        from yarl import URL

        from roomserver.connections import GuardedSockSite
        if self.runner:
            return
        self._loop = loop
        self._ssl = kwargs.pop("ssl", None)
        self.runner = await self._make_runner(handler_cancellation=True, **kwargs)
        await self.runner.setup()
        sock = self.socket_factory(self.host, self.port or 0, socket.AF_INET)
        site = GuardedSockSite(self.runner, sock, ssl_context=self._ssl)
        await site.start()
        self.host, self.port = sock.getsockname()[:2]
        if not self.scheme:
            self.scheme = "https" if self._ssl else "http"
        self._root = URL(f"{self.scheme}://{self.host}:{self.port}")
