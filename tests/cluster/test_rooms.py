"""A room spread over three real nodes: everything works as on one node, and the attacks still fail.

Counsellor on node 0, citizen on node 1, expert on node 2 (or as each test says):
media flows peer to peer while the signalling crosses Redis.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import aiohttp
import pytest

from roomserver.peer.participant import Participant
from tests.cluster.harness import Cluster
from tests.support import RawSocket

WAIT = 20.0


async def socket_on(stack: AsyncExitStack, cluster: Cluster, node: int) -> RawSocket:
    http = await stack.enter_async_context(aiohttp.ClientSession(base_url=cluster.nodes[node].base))
    return await RawSocket.open(http)


async def test_three_participants_on_three_nodes_see_and_hear_each_other(cluster: Cluster) -> None:
    room = await cluster.room()
    people = [Participant(cluster.nodes[i].ws, await cluster.token(room, role), name=role)
              for i, role in enumerate(("counsellor", "citizen", "expert"))]
    try:
        for p in people:
            assert (await p.connect())["type"] == "welcome"
        for p in people:
            for q in people:
                if p is not q:
                    await p.wait_connected(q.id, timeout=WAIT)
                    await p.wait_frames(q.id, "video", 5, timeout=WAIT)
                    await p.wait_frames(q.id, "audio", 5, timeout=WAIT)
        owners = {cluster.owner(room)}
        assert owners <= {0, 1, 2} and None not in owners  # exactly one node owns the room
    finally:
        for p in people:
            await p.close()


async def test_waiting_room_admit_remove_and_end_across_nodes(cluster: Cluster) -> None:
    room = await cluster.room(waiting_room=True)
    async with AsyncExitStack() as stack:
        counsellor = await socket_on(stack, cluster, 0)
        welcome = await counsellor.join(await cluster.token(room, "counsellor"))
        assert welcome["type"] == "welcome"
        citizen = await socket_on(stack, cluster, 1)
        waiting = await citizen.join(await cluster.token(room, "citizen", "Ayşe"))
        assert waiting["type"] == "waiting"
        lobby = await counsellor.expect("lobby")
        while not lobby["waiting"]:
            lobby = await counsellor.expect("lobby")
        assert [w["id"] for w in lobby["waiting"]] == [waiting["self"]["id"]]
        await counsellor.send({"type": "admit", "peer": waiting["self"]["id"]})
        admitted = await citizen.expect("welcome")
        assert [p["id"] for p in admitted["peers"]] == [welcome["self"]["id"]]
        assert (await counsellor.expect("peer-joined"))["peer"]["id"] == waiting["self"]["id"]

        # An expert on the third node; the counsellor removes the citizen across two hops.
        expert = await socket_on(stack, cluster, 2)
        expert_welcome = await expert.join(await cluster.token(room, "expert", "Erik"))
        assert {p["id"] for p in expert_welcome["peers"]} == {welcome["self"]["id"], waiting["self"]["id"]}
        await counsellor.send({"type": "remove", "peer": waiting["self"]["id"]})
        assert (await citizen.expect("removed"))["type"] == "removed"
        assert await citizen.closed() == 4410
        assert (await expert.expect("peer-left"))["reason"] == "removed"
        # Her secret and token are withdrawn on every node.
        back = await socket_on(stack, cluster, 2)
        await back.send({"type": "resume", "secret": admitted["resume_secret"]})
        refused = await back.next()
        assert refused is not None and refused["code"] == "resume_unknown"

        # A signal the expert's node relays reaches the counsellor on another node.
        await expert.send({"type": "signal", "to": welcome["self"]["id"],
                           "data": {"candidate": {"candidate": "", "sdpMid": "0"}}})
        relayed = await counsellor.expect("signal")
        assert relayed["from"] == expert_welcome["self"]["id"]

        await counsellor.send({"type": "end"})
        assert (await expert.expect("ended"))["reason"] == "moderator"
        assert await expert.closed() == 4411
        assert await counsellor.closed() == 4411
    state = (await cluster.api("GET", f"/api/v1/rooms/{room}", node=2))["state"]
    assert state == "ended"


async def test_a_single_use_token_raced_on_two_nodes_seats_exactly_one(cluster: Cluster) -> None:
    room = await cluster.room()
    token = await cluster.token(room, "expert", "Erik")  # single-use: a patch-in token
    async with AsyncExitStack() as stack:
        a, b = await socket_on(stack, cluster, 1), await socket_on(stack, cluster, 2)
        replies = await asyncio.gather(a.join(token), b.join(token))
        kinds = sorted(r["type"] if r["type"] != "error" else r["code"] for r in replies)
        assert kinds in (["token_already_used", "welcome"], ["identity_in_use", "welcome"]), replies
        # And a third try afterwards, on the node that won or the other, is refused as used.
        c = await socket_on(stack, cluster, 0)
        third = await c.join(token)
        assert third["type"] == "error" and third["code"] in ("token_already_used", "identity_in_use")


async def test_wrong_room_same_identity_and_kicked_and_return_across_nodes(cluster: Cluster) -> None:
    room, other = await cluster.room(), await cluster.room()
    async with AsyncExitStack() as stack:
        counsellor = await socket_on(stack, cluster, 0)
        await counsellor.join(await cluster.token(room, "counsellor"))
        # Wrong room: a token for one room presented for another.
        wrong = await socket_on(stack, cluster, 1)
        await wrong.send({"type": "join", "token": await cluster.token(other, "citizen"), "room": room})
        reply = await wrong.next()
        assert reply is not None and reply["code"] == "token_wrong_room"
        assert await wrong.closed() == 4401
        # The same identity on two nodes at once: the second is told to resume instead.
        multi = await cluster.token(room, "citizen", "Olena", single_use=False)
        first = await socket_on(stack, cluster, 1)
        assert (await first.join(multi))["type"] == "welcome"
        second = await socket_on(stack, cluster, 2)
        reply = await second.join(multi)
        assert reply["code"] == "identity_in_use"
        assert await second.closed() == 4409
        # Kicked, and trying to come back with the same token on another node: refused.
        seat = (await counsellor.expect("peer-joined"))["peer"]["id"]
        await counsellor.send({"type": "remove", "peer": seat})
        assert await first.closed() == 4410
        again = await socket_on(stack, cluster, 2)
        reply = await again.join(multi)
        assert reply["code"] == "token_revoked"


@pytest.mark.parametrize("node", [1, 2])
async def test_the_operator_ends_a_room_from_a_node_that_does_not_own_it(cluster: Cluster, node: int) -> None:
    room = await cluster.room()
    async with AsyncExitStack() as stack:
        sock = await socket_on(stack, cluster, 0)
        await sock.join(await cluster.token(room, "counsellor"))
        body = await cluster.api("POST", f"/api/v1/rooms/{room}/end", node=node)
        assert body["state"] == "ended"
        assert (await sock.expect("ended"))["reason"] == "api"
        assert await sock.closed() == 4411


async def test_withdrawing_an_invite_on_a_third_node_ends_the_seat(cluster: Cluster) -> None:
    """The withdrawal arrives on a node that neither owns the room nor holds the participant's socket."""
    import jwt
    room = await cluster.room()
    async with AsyncExitStack() as stack:
        counsellor = await socket_on(stack, cluster, 0)
        assert (await counsellor.join(await cluster.token(room, "counsellor")))["type"] == "welcome"
        token = await cluster.token(room, "citizen", "Ayşe")
        citizen = await socket_on(stack, cluster, 1)
        welcome = await citizen.join(token)
        assert welcome["type"] == "welcome"
        owner = cluster.owner(room)
        third = ({0, 1, 2} - {owner, 1}).pop()
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        await cluster.api("DELETE", f"/api/v1/rooms/{room}/invites/{jti}", node=third)
        assert (await citizen.expect("removed"))["type"] == "removed"
        assert await citizen.closed() == 4410
        assert (await counsellor.expect("peer-left"))["reason"] == "removed"
        back = await socket_on(stack, cluster, third)
        await back.send({"type": "resume", "secret": welcome["resume_secret"]})
        refused = await back.next()
        assert refused is not None and refused["code"] == "resume_unknown"
