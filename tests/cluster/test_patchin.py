"""Expert patch-in across nodes: a call placed on one node rings desks on every node; one accept wins.

The desks sign in through the real form on their own node (the session lives in
PostgreSQL, so any node knows it); the switchboard runs on whichever node owns it.
"""

from __future__ import annotations

import asyncio
import json
import signal
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from roomserver.peer.participant import Participant
from tests.cluster.harness import Cluster
from tests.staff import Staff, sign_in

WAIT = 20.0


class Desk:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def next(self, type_: str, timeout: float = WAIT) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                msg = await self.ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, f"desk socket closed: {msg}"
                data = json.loads(msg.data)
                if data["type"] == type_:
                    return data
        return await asyncio.wait_for(read(), timeout)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_json(message)


async def expert(cluster: Cluster, username: str) -> Staff:
    body = await cluster.api("POST", "/api/v1/accounts", json={
        "username": username, "display_name": f"Expertin {username}", "role": "expert",
        "department": "auslaenderbehoerde"})
    return Staff(body["account"]["id"], username, body["account"]["display_name"], "expert", body["password"])


async def desk_on(stack: AsyncExitStack, cluster: Cluster, node: int, staff: Staff) -> Desk:
    base = cluster.nodes[node].base
    http = await stack.enter_async_context(aiohttp.ClientSession(base_url=base,
                                                                 cookie_jar=aiohttp.CookieJar(unsafe=True)))
    await sign_in(http, staff)
    ws = await http.ws_connect("/desk/ws", headers={"Origin": base})
    stack.push_async_callback(ws.close)
    desk = Desk(ws)
    assert (await desk.next("desk"))["status"] == "available"
    return desk


async def consultation(stack: AsyncExitStack, cluster: Cluster, node: int) -> tuple[str, Participant]:
    room = await cluster.room()
    counsellor = Participant(cluster.nodes[node].ws, await cluster.token(room, "counsellor", "Frau Weber"))
    stack.push_async_callback(counsellor.close)
    await counsellor.connect()
    return room, counsellor


async def status(p: Participant, state: str) -> dict[str, Any]:
    return (await p.wait_message("call-status", lambda m: m["call"]["state"] == state, timeout=WAIT))["call"]


async def setup_departments(cluster: Cluster) -> None:
    await cluster.api("POST", "/api/v1/departments", json={"id": "auslaenderbehoerde", "name": "Ausländerbehörde",
                                                          "kind": "county"})


async def test_a_call_on_node_0_rings_a_desk_on_node_2_and_the_expert_joins_with_media(cluster: Cluster) -> None:
    await setup_departments(cluster)
    async with AsyncExitStack() as stack:
        desk = await desk_on(stack, cluster, 2, await expert(cluster, "abh1"))
        room, counsellor = await consultation(stack, cluster, 0)
        await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
        ringing = await status(counsellor, "ringing")
        assert ringing["ringing"] == 1
        ring = await desk.next("ring")
        assert ring["call"]["id"] == ringing["id"] and ring["call"]["caller_name"] == "Frau Weber"
        await desk.send({"type": "accept", "call": ring["call"]["id"]})
        accepted = await desk.next("accepted")
        assert (await status(counsellor, "accepted"))["accepted_by"] == "Expertin abh1"
        patched = Participant(cluster.nodes[1].ws, accepted["url"].split("#", 1)[1])  # and on yet another node
        stack.push_async_callback(patched.close)
        assert (await patched.connect())["type"] == "welcome"
        await counsellor.wait_frames(patched.id, "video", 5, timeout=WAIT)
        assert (await desk.next("presence"))["status"] == "busy"  # busy while in the consultation, cluster-wide


async def test_two_desks_on_two_nodes_accepting_at_once_put_exactly_one_expert_in(cluster: Cluster) -> None:
    await setup_departments(cluster)
    async with AsyncExitStack() as stack:
        desk_a = await desk_on(stack, cluster, 1, await expert(cluster, "abh1"))
        desk_b = await desk_on(stack, cluster, 2, await expert(cluster, "abh2"))
        room, counsellor = await consultation(stack, cluster, 0)
        await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
        assert (await status(counsellor, "ringing"))["ringing"] == 2
        call_a, call_b = await desk_a.next("ring"), await desk_b.next("ring")
        assert call_a["call"]["id"] == call_b["call"]["id"]
        await asyncio.gather(desk_a.send({"type": "accept", "call": call_a["call"]["id"]}),
                             desk_b.send({"type": "accept", "call": call_b["call"]["id"]}))

        async def outcome(desk: Desk) -> str:
            async def read() -> str:
                while True:
                    msg = await desk.ws.receive()
                    data = json.loads(msg.data)
                    if data["type"] == "accepted":
                        return "won"
                    if data["type"] == "error" and data["code"] == "call_taken":
                        return "told"
            return await asyncio.wait_for(read(), WAIT)

        results = sorted(await asyncio.gather(outcome(desk_a), outcome(desk_b)))
        assert results == ["told", "won"]
        accepted = (await status(counsellor, "accepted"))
        assert accepted["accepted_by"] in ("Expertin abh1", "Expertin abh2")
        events = await cluster.api("GET", "/api/v1/audit", node=1)
        assert [e["action"] for e in events["events"]].count("call.accepted") == 1


async def test_the_switchboard_survives_the_loss_of_its_node_and_calls_ring_again(cluster: Cluster) -> None:
    await setup_departments(cluster)
    owner = await switchboard_owner(cluster)
    first, second = [i for i in range(3) if i != owner]
    async with AsyncExitStack() as stack:
        room, counsellor = await consultation(stack, cluster, first)
        desk = await desk_on(stack, cluster, second, await expert(cluster, "abh1"))
        cluster.nodes[owner].kill(signal.SIGKILL)
        # Within a few seconds another node runs the switchboard, with the desk still known as available.
        assert await switchboard_owner(cluster, not_on=owner) in (first, second)
        await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
        assert (await status(counsellor, "ringing"))["ringing"] == 1
        assert (await desk.next("ring"))["call"]["caller_name"] == "Frau Weber"


async def switchboard_owner(cluster: Cluster, not_on: int | None = None) -> int:
    """The node that runs the switchboard (every node claims it within a second of finding it free)."""
    import redis
    client = redis.Redis.from_url(cluster.redis_url)
    for _ in range(150):
        value = client.get(f"{cluster.prefix}:owner:switchboard")
        if value is not None:
            node = int(value.decode().split(".")[0].removeprefix("node"))
            if node != not_on:
                return node
        await asyncio.sleep(0.1)
    raise AssertionError("no node runs the switchboard")
