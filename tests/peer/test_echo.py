"""The echo peer behind the join page's device check, driven by a real aiortc client.

A Python ``RTCPeerConnection`` sends synthetic video and audio to ``/echo/offer`` on a
real server on loopback and receives its own frames back; the ``echo`` data channel
answers pings. Refused tokens get the common error shape; the session limit answers
``echo_busy``; sessions end on their timer, when the client goes, and on shutdown.
Every wait is bounded; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from roomserver.core.roles import Role
from roomserver.core.tokens import TokenRecord
from roomserver.peer.echo import echo_of
from roomserver.peer.participant import SyntheticAudioTrack, SyntheticVideoTrack
from tests.support import create_room, invite

WAIT = 20.0


async def until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class EchoClient:
    """An aiortc peer that sends synthetic media to the echo peer and counts what comes back."""

    def __init__(self, *, video: bool = True, audio: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = {"audio": 0, "video": 0}
        self.sizes: set[tuple[int, int]] = set()
        self.replies: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        if audio:
            self.pc.addTrack(SyntheticAudioTrack())
        if video:
            self.pc.addTrack(SyntheticVideoTrack(320, 240, fps=15))
        self.channel = self.pc.createDataChannel("echo")
        self.channel.on("message", self.replies.append)
        self.pc.on("track", lambda track: self._tasks.append(asyncio.ensure_future(self._consume(track))))

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if track.kind == "video":
                    self.sizes.add((frame.width, frame.height))

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": "offer"}

    async def connect(self, http: aiohttp.ClientSession, token: str) -> aiohttp.ClientResponse:
        r = await http.post("/echo/offer", json={"token": token, **await self.offer()})
        if r.status == 200:
            answer = await r.json()
            assert answer["type"] == "answer"
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return r

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., EchoClient]]:
    made: list[EchoClient] = []

    def make(**kwargs: Any) -> EchoClient:
        client = EchoClient(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def citizen_token(http: aiohttp.ClientSession, api_headers: dict[str, str], **room: Any) -> tuple[str, dict]:
    room_id = await create_room(http, api_headers, **room)
    return room_id, await invite(http, api_headers, room_id, "citizen", "Ayşe")


async def error_of(r: aiohttp.ClientResponse) -> tuple[int, str]:
    body = await r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return r.status, body["error"]["code"]


async def test_echo_reflects_video_audio_and_pings(server, http, api_headers, clients) -> None:
    _, inv = await citizen_token(http, api_headers)
    client = clients()
    r = await client.connect(http, inv["token"])
    assert r.status == 200, await r.text()
    assert r.headers["Cache-Control"] == "no-store"
    assert (await r.json())["expires_in"] == echo_of(server.app).lifetime
    await until(lambda: client.pc.connectionState == "connected", "connected")
    await until(lambda: client.frames["video"] >= 10, "echoed video frames")
    await until(lambda: client.frames["audio"] >= 10, "echoed audio frames")
    assert client.sizes == {(320, 240)}  # our own picture, at our size

    await until(lambda: client.channel.readyState == "open", "data channel open")
    for n in range(3):
        client.channel.send(json.dumps({"n": n, "t": n * 1000}))
    await until(lambda: len(client.replies) == 3, "ping replies")
    assert [json.loads(m)["n"] for m in client.replies] == [0, 1, 2]
    client.channel.send("x" * 1000)  # oversize: not echoed
    client.channel.send(json.dumps({"n": 3}))
    await until(lambda: len(client.replies) == 4, "the next ping reply")
    assert json.loads(client.replies[-1]) == {"n": 3}

    # The token was checked, not spent; the echo kept nothing in the store.
    assert (await http.post(f"/join/{inv['room_id']}/check", json={"token": inv["token"]})).status == 200


async def test_echo_accepts_a_single_use_token_without_spending_it(server, http, api_headers, services,
                                                                 clients) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "interpreter", "Dolmetscherin")
    assert inv["single_use"] is True
    r = await clients(audio=False).connect(http, inv["token"])
    assert r.status == 200, await r.text()
    assert (await services.store.tokens.get(inv["jti"])).used_at is None


async def test_echo_refuses_bad_tokens(server, http, api_headers, services, clients) -> None:
    client = clients()
    offer = await client.offer()

    async def code(token: Any) -> tuple[int, str]:
        return await error_of(await http.post("/echo/offer", json={"token": token, **offer}))

    assert await code("not-a-token") == (401, "token_malformed")
    assert await code("a.b.c") == (401, "token_malformed")
    assert (await code(123))[0] == 422

    room_id, inv = await citizen_token(http, api_headers)
    now = services.now()
    token, claims = services.codec.mint(sub="citizen:x", room=room_id, role=Role.CITIZEN, name="X",
                                        nbf=now - 7200, exp=now - 3600, now=now - 7200)
    await services.store.tokens.record(TokenRecord(jti=claims.jti, room_id=room_id, role="citizen", identity="citizen:x",
                                             not_before=now - 7200, expires_at=now - 3600, single_use=False,
                                             used_at=None, revoked_at=None), issued_by="tests", issued_at=now)
    assert await code(token) == (401, "token_expired")

    # A token this server signed but never recorded counts as withdrawn.
    stray, _ = services.codec.mint(sub="citizen:y", room=room_id, role=Role.CITIZEN, name="Y",
                                   nbf=now - 60, exp=now + 600, now=now)
    assert await code(stray) == (401, "token_revoked")

    r = await http.delete(f"/api/v1/rooms/{room_id}/invites/{inv['jti']}", headers=api_headers)
    assert r.status == 204
    assert await code(inv["token"]) == (401, "token_revoked")

    expert = await invite(http, api_headers, room_id, "expert", "Herr Kaya")
    await services.store.tokens.spend(expert["jti"], now)
    assert await code(expert["token"]) == (409, "token_already_used")

    other = await invite(http, api_headers, room_id, "citizen", "Z")
    assert (await http.post(f"/api/v1/rooms/{room_id}/end", headers=api_headers)).status == 200
    assert await code(other["token"]) == (410, "room_ended")
    assert echo_of(server.app).active == 0


async def test_echo_validates_the_body(server, http, api_headers, clients) -> None:
    _, inv = await citizen_token(http, api_headers)
    offer = await clients().offer()
    token = inv["token"]
    cases = [
        ({"token": token, "sdp": offer["sdp"], "type": "answer"}, 422, "invalid_request"),
        ({"token": token, "sdp": "", "type": "offer"}, 422, "invalid_request"),
        ({"token": token, "sdp": "v=0\r\n" + "a=x\r\n" * 8000, "type": "offer"}, 422, "invalid_request"),
        ({"token": token, "sdp": offer["sdp"]}, 422, "invalid_request"),
        ({"token": token, "sdp": offer["sdp"], "type": "offer", "extra": 1}, 422, "invalid_request"),
        ({"token": token, "sdp": "this is not sdp", "type": "offer"}, 422, "bad_offer"),
        ({"token": token, "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n",
          "type": "offer"}, 422, "bad_offer"),
        ({"token": token, "sdp": offer["sdp"].replace("a=ice-ufrag", "a=x-ufrag"), "type": "offer"}, 422,
         "bad_offer"),
        ([1, 2], 422, "invalid_request"),
    ]
    for body, status, code in cases:
        assert await error_of(await http.post("/echo/offer", json=body)) == (status, code), body
    r = await http.post("/echo/offer", data="{not json", headers={"Content-Type": "application/json"})
    assert await error_of(r) == (400, "bad_json")
    r = await http.post("/echo/offer", data="token=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert await error_of(r) == (415, "unsupported_media_type")
    r = await http.post("/echo/offer", data=b"{" + b" " * 200_000 + b"}", headers={"Content-Type": "application/json"})
    assert await error_of(r) == (413, "payload_too_large")
    assert (await http.get("/echo/offer")).status == 405
    assert echo_of(server.app).active == 0  # a refused offer leaves no session behind


async def test_echo_limit_gives_echo_busy(server, http, api_headers, clients) -> None:
    echo = echo_of(server.app)
    echo.max_sessions = 1
    room_id, first = await citizen_token(http, api_headers)
    second = await invite(http, api_headers, room_id, "citizen", "B")

    a = clients(audio=False)
    assert (await a.connect(http, first["token"])).status == 200
    assert echo.active == 1

    b = clients(audio=False)
    r = await b.connect(http, second["token"])
    assert await error_of(r) == (503, "echo_busy")
    assert r.headers["Retry-After"].isdigit()

    # The same token again replaces its own session (a repeated test), it does not need a second seat.
    again = clients(audio=False)
    assert (await again.connect(http, first["token"])).status == 200
    assert echo.active == 1
    await until(lambda: again.frames["video"] >= 3, "echo on the replacing session")

    # The client leaves: its session is closed and the seat is free again.
    await again.close()
    await until(lambda: echo.active == 0, "the session to close after the client left")
    c = clients(audio=False)
    assert (await c.connect(http, second["token"])).status == 200
    await until(lambda: c.frames["video"] >= 3, "echo for the next client")


async def test_echo_session_ends_after_its_lifetime(server, http, api_headers, clients) -> None:
    echo = echo_of(server.app)
    echo.lifetime = 1.5
    _, inv = await citizen_token(http, api_headers)
    client = clients(audio=False)
    assert (await client.connect(http, inv["token"])).status == 200
    assert echo.active == 1
    await until(lambda: echo.active == 0, "the session timer")
    session_closed = lambda: client.pc.connectionState in ("closed", "failed")  # noqa: E731
    await until(session_closed, "the client to see the echo peer go", timeout=40)


async def test_echo_sessions_close_on_shutdown(server_factory, clients) -> None:
    from tests.conftest import TEST_API_KEY

    srv, _svc = await server_factory()
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        _, inv = await citizen_token(http, headers)
        client = clients(audio=False)
        assert (await client.connect(http, inv["token"])).status == 200
        await until(lambda: client.frames["video"] >= 1, "echo before shutdown")
    echo = echo_of(srv.app)
    sessions = list(echo.sessions.values())
    assert len(sessions) == 1
    await srv.close()
    assert echo.active == 0 and all(s.closed for s in sessions)
    assert sessions[0].pc.connectionState == "closed"
