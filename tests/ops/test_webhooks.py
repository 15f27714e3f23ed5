"""Signed webhooks to a real receiver on loopback: signatures, catch-up after downtime, never in the way."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from roomserver.core.events import Event
from roomserver.ops import webhooks
from roomserver.ops.webhooks import WEBHOOKS_KEY
from tests.support import WAIT, create_room, joined, until

SECRET = "whsec-" + "s" * 40
FAST = {"ROOMSERVER_WEBHOOKS_SECRET": SECRET, "ROOMSERVER_OUTBOX_POLL_SECONDS": "0.05", "ROOMSERVER_WEBHOOKS_BACKOFF_SECONDS": "0.05",
        "ROOMSERVER_WEBHOOKS_MAX_BACKOFF_SECONDS": "0.2", "ROOMSERVER_WEBHOOKS_MAX_ATTEMPTS": "100"}


class Receiver:
    """A webhook endpoint that checks every signature; ``gate`` holds every answer until set."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.bad: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Event()
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers.get("X-Roomserver-Timestamp", "")
        sig = request.headers.get("X-Roomserver-Signature", "")
        if not webhooks.verify(SECRET.encode(), ts, body, sig) or abs(time.time() - int(ts)) > 300:
            self.bad.append(sig)
            return web.Response(status=401)
        self.arrived.set()
        await self.gate.wait()
        event = json.loads(body)
        assert request.headers["X-Roomserver-Event"] == event["type"]
        self.events.append(event)
        return web.Response(status=204)

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.server = TestServer(app, host="127.0.0.1", port=port)
        await self.server.start_server(access_log=None)  # the receiver is not our server: no access log
        return str(self.server.make_url("/hook"))

    def kinds(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def wait_for(self, predicate, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.kinds()}"
            await asyncio.sleep(0.02)


async def until_queued(hooks, n: int) -> None:
    deadline = time.monotonic() + WAIT
    while (await hooks.queued()).get(0) != n:
        assert time.monotonic() < deadline, f"never {n} queued: {await hooks.queued()}"
        await asyncio.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_every_event_is_signed_and_a_blocked_receiver_never_slows_signalling(server_factory, api_headers):
    receiver = Receiver()
    receiver.gate.clear()  # the receiver holds every delivery until the joins are done
    url = await receiver.start()
    srv, svc = await server_factory(ROOMSERVER_WEBHOOKS_URLS=url, **FAST)
    try:
        async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
            room = await create_room(http, api_headers)
            a, wa = await joined(http, api_headers, room, "counsellor", "Clara Beraterin")
            b, wb = await joined(http, api_headers, room, "citizen", "Frau Mustermann")
            # Both joins completed while the receiver had the first delivery in hand and did not answer.
            await asyncio.wait_for(receiver.arrived.wait(), WAIT)
            assert receiver.events == []
            receiver.gate.set()
            await b.send({"type": "leave"})
            await b.closed()
            await a.send({"type": "end"})
            await a.closed()
            await receiver.wait_for(lambda: "room.ended" in receiver.kinds(), "room.ended")
        assert receiver.bad == []
        assert receiver.kinds() == ["room.started", "participant.joined", "participant.joined", "participant.left",
                                    "room.ended"]
        for event in receiver.events:
            assert set(event) == {"id", "type", "time", "room", "data"} and event["room"] == room and event["time"]
        assert len({e["id"] for e in receiver.events}) == 5
        text = json.dumps(receiver.events)
        assert "Clara" not in text and "Mustermann" not in text and "token" not in text
        assert [e["data"].get("role") for e in receiver.events[1:3]] == ["counsellor", "citizen"]
        assert receiver.events[3]["data"] == {"role": "citizen", "seat": wb["self"]["id"], "reason": "left"}
        assert receiver.events[4]["data"] == {"reason": "moderator"}
    finally:
        await receiver.server.close()


async def test_a_receiver_that_was_down_gets_the_events_it_missed(server_factory, api_headers):
    port = _free_port()
    srv, svc = await server_factory(ROOMSERVER_WEBHOOKS_URLS=f"http://127.0.0.1:{port}/hook", **FAST)
    receiver = Receiver()
    try:
        async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
            room = await create_room(http, api_headers)
            a, _ = await joined(http, api_headers, room, "counsellor")  # joins while nobody listens
            b, _ = await joined(http, api_headers, room, "citizen")
            await b.send({"type": "leave"})
            await b.closed()
            hooks = srv.app[WEBHOOKS_KEY]
            endpoint = hooks.endpoints[0]
            await until_queued(hooks, 4)
            assert endpoint.delivered == 0
            await asyncio.sleep(0.3)  # a few failed attempts
            await receiver.start(port)  # the receiver comes back
            await receiver.wait_for(lambda: len(receiver.events) == 4, "the missed events")
            assert receiver.kinds() == ["room.started", "participant.joined", "participant.joined", "participant.left"]
            await a.send({"type": "end"})
            await receiver.wait_for(lambda: len(receiver.events) == 5, "room.ended")
        assert receiver.bad == [] and endpoint.delivered == 5 and endpoint.dropped == 0
    finally:
        if receiver.server is not None:
            await receiver.server.close()


async def test_the_queue_is_bounded_and_drops_the_oldest_with_a_warning(server_factory, caplog):
    port = _free_port()  # nobody listens
    srv, svc = await server_factory(ROOMSERVER_WEBHOOKS_URLS=f"http://127.0.0.1:{port}/hook",
                                    ROOMSERVER_WEBHOOKS_QUEUE_SIZE="3", **FAST)
    hooks = srv.app[WEBHOOKS_KEY]
    endpoint = hooks.endpoints[0]
    with caplog.at_level(logging.WARNING, logger="roomserver.ops.webhooks"):
        for i in range(6):
            svc.events.publish("room.started", f"room{i}")
        await until(lambda: endpoint.dropped >= 3, "the oldest dropped")
    assert endpoint.dropped == 3
    waiting = [r for r in await svc.store.outbox.lane(endpoint.lane) if r.state == "pending"]
    assert [json.loads(r.payload)["room"] for r in waiting] == ["room3", "room4", "room5"]
    assert sum("dropped the" in r.getMessage() for r in caplog.records) >= 1
    # Events a webhook does not carry are not queued at all.
    svc.events.publish("participant.stats", "room9", seat="s", peers={})
    await asyncio.sleep(0.1)
    assert (await hooks.queued()) == {0: 3}


def test_signature_and_payload():
    body = b'{"a":1}'
    assert webhooks.sign(b"k", "1700000000", body) == webhooks.sign(b"k", "1700000000", body)
    assert webhooks.verify(b"k", "1700000000", body, webhooks.sign(b"k", "1700000000", body))
    assert not webhooks.verify(b"k", "1700000001", body, webhooks.sign(b"k", "1700000000", body))
    event = Event("call.accepted", "r1", {"call": "c1", "seconds_to_accept": 2.0, "name": "Frau X", "token": "t"})
    p = webhooks.payload(event)
    assert p["data"] == {"call": "c1", "seconds_to_accept": 2.0} and p["type"] == "call.accepted"
