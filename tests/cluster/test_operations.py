"""Operating a cluster: the dashboard, metrics and webhooks see the whole cluster, each event once.

The operator signs in on a node that owns nothing; the room runs on another. Webhooks go
from every node to one receiver: each event arrives exactly once, signed. Every node's
``/metrics`` counts the events that happened on it, so their sum is the cluster's count.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from tests.cluster.harness import Cluster, why_not
from tests.ops.test_webhooks import SECRET, Receiver
from tests.staff import Staff, sign_in
from tests.support import RawSocket

WAIT = 20.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    await made.start()
    yield made
    if made.server is not None:
        await made.server.close()


@pytest.fixture
async def hooked(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Cluster]:
    reason = why_not()
    if reason:
        pytest.skip(reason)
    assert receiver.server is not None
    made = Cluster(tmp_path, ROOMSERVER_WEBHOOKS_URLS=str(receiver.server.make_url("/hook")),
                   ROOMSERVER_WEBHOOKS_SECRET=SECRET, ROOMSERVER_WEBHOOKS_BACKOFF_SECONDS="0.05",
                   ROOMSERVER_METRICS_ALLOW_FROM="127.0.0.1/32")
    try:
        await made.start()
        yield made
    finally:
        made.stop()


async def sse_until(response: aiohttp.ClientResponse, want: Any, timeout: float = WAIT) -> dict[str, Any]:
    """Read server-sent events until one named and shaped as ``want(name, data)`` says; its data."""
    async def read() -> dict[str, Any]:
        name = None
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: ") and name is not None:
                data = json.loads(line[len("data: "):])
                if want(name, data):
                    return data
        raise AssertionError("feed ended")
    return await asyncio.wait_for(read(), timeout)


async def test_dashboard_metrics_and_webhooks_see_the_whole_cluster_each_event_once(hooked: Cluster,
                                                                                   receiver: Receiver) -> None:
    cluster = hooked
    body = await cluster.api("POST", "/api/v1/accounts", json={"username": "leitstand", "display_name": "Betrieb",
                                                              "role": "operator"})
    operator = Staff(body["account"]["id"], "leitstand", "Betrieb", "operator", body["password"])
    room = await cluster.room()
    async with AsyncExitStack() as stack:
        # The room runs on node 0 (its first participant claims it there).
        http0 = await stack.enter_async_context(aiohttp.ClientSession(base_url=cluster.nodes[0].base))
        counsellor = await RawSocket.open(http0)
        welcome = await counsellor.join(await cluster.token(room, "counsellor", "Frau Weber"))
        assert cluster.owner(room) == 0
        # The operator watches from node 2.
        base2 = cluster.nodes[2].base
        op = await stack.enter_async_context(aiohttp.ClientSession(base_url=base2,
                                                                   cookie_jar=aiohttp.CookieJar(unsafe=True)))
        csrf = await sign_in(op, operator)
        feed = await op.get("/operator/feed", headers={"Accept": "text/event-stream", "Origin": base2})
        assert feed.status == 200
        snapshot = await sse_until(feed, lambda name, data: name == "snapshot" and any(
            r["id"] == room for r in data["rooms"]))
        listed = next(r for r in snapshot["rooms"] if r["id"] == room)
        assert [p["seat"] for p in listed["participants"]] == [welcome["self"]["id"]]
        assert "Frau Weber" not in json.dumps(snapshot)  # metadata only
        # A citizen joins on node 1: node 2's list hears of it, though it happened elsewhere.
        http1 = await stack.enter_async_context(aiohttp.ClientSession(base_url=cluster.nodes[1].base))
        citizen = await RawSocket.open(http1)
        await citizen.join(await cluster.token(room, "citizen", "Ayşe"))
        event = await sse_until(feed, lambda name, data: name == "event" and data["kind"] == "participant.joined"
                                and data.get("role") == "citizen")
        assert event["room"] == room
        # The operator ends the room from node 2.
        r = await op.post(f"/operator/rooms/{room}/end", headers={"X-CSRF-Token": csrf, "Origin": base2})
        assert r.status == 200, await r.text()
        assert await counsellor.closed() == 4411
        feed.close()

    # Each event of the room arrives at the webhook once, from whichever node it happened on.
    deadline = time.monotonic() + WAIT
    while "room.ended" not in receiver.kinds() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    ours = [e for e in receiver.events if e.get("room") == room]
    kinds = [e["type"] for e in ours]
    assert kinds.count("room.started") == 1 and kinds.count("room.ended") == 1
    assert kinds.count("participant.joined") == 2
    ids = [e["id"] for e in ours]
    assert len(ids) == len(set(ids))  # no duplicates
    assert not receiver.bad

    # Every node's metrics count what happened on it; together, the cluster's joins.
    joins = 0
    async with aiohttp.ClientSession() as http:
        for node in cluster.nodes:
            text = await (await http.get(f"{node.base}/metrics")).text()
            for line in text.splitlines():
                if line.startswith("roomserver_joins_total{"):
                    joins += int(float(line.rsplit(" ", 1)[1]))
            assert 'roomserver_node_info{node="node' in text
    assert joins == 2
