"""Small helpers the tests share: rooms and invites through the real API, raw protocol sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

WAIT = 10.0  # every wait in a test is bounded by this many seconds


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
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
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
