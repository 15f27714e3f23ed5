"""Losing a node costs nobody their seat, and the picture between the others never stops.

Real processes, real signals: ``kill -9`` of the node that owns the room, and
``SIGTERM`` (a deploy) of a node with participants on it. Media flows browser to
browser (here: aiortc peer to aiortc peer), never through a node, so frames
between participants whose sockets were on surviving nodes keep arriving while
the room moves to another owner; whoever was on the lost node resumes into the
same seat on another node.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from roomserver.peer.participant import Participant
from tests.cluster.harness import Cluster, why_not

WAIT = 20.0


async def seated(cluster: Cluster, room: str, roles: list[tuple[int, str]]) -> list[Participant]:
    """Participants in the room, the i-th on node ``roles[i][0]``, media flowing between all of them."""
    people = []
    for node, role in roles:
        p = Participant(cluster.nodes[node].ws, await cluster.token(room, role, role.title()), name=role,
                        auto_resume=True, fallback_urls=cluster.urls(node))
        assert (await p.connect())["type"] == "welcome"
        people.append(p)
    for p in people:
        for q in people:
            if p is not q:
                await p.wait_frames(q.id, "video", 3, timeout=WAIT)
    return people


async def frames_keep_coming(pairs: list[tuple[Participant, Participant]], seconds: int) -> list[int]:
    """Sample the video frames each pair receives once a second; the fewest new frames seen in any second."""
    last = [a.frames_received(b.id, "video") for a, b in pairs]
    fewest = []
    for _ in range(seconds):
        await asyncio.sleep(1.0)
        now = [a.frames_received(b.id, "video") for a, b in pairs]
        fewest.append(min(n - m for n, m in zip(now, last)))
        last = now
    return fewest


async def test_kill_9_of_the_owner_costs_no_seat_and_never_stops_the_picture(cluster: Cluster) -> None:
    room = await cluster.room()
    people = await seated(cluster, room, [(0, "counsellor"), (1, "citizen"), (2, "expert")])
    try:
        owner = cluster.owner(room)
        assert owner is not None
        victim = people[owner]
        survivors = [p for p in people if p is not victim]
        seats = {p: p.id for p in people}
        cluster.nodes[owner].kill(signal.SIGKILL)
        # While the room moves (the lost node's registration lapses after 3 s, then a survivor takes
        # over), the two survivors' media never stops: every second brings new frames both ways.
        fewest = await frames_keep_coming([(survivors[0], survivors[1]), (survivors[1], survivors[0])], 10)
        assert all(n > 0 for n in fewest), fewest
        # The room has a new owner, and the participant whose socket died with it is back in the same seat.
        new_owner = cluster.owner(room)
        assert new_owner is not None and new_owner != owner
        await victim.wait_until(lambda: victim.resumes >= 1 and victim.connected, timeout=WAIT, what="resume")
        assert {p: p.id for p in people} == seats
        for p in survivors:
            await victim.wait_frames(p.id, "video", victim.frames_received(p.id, "video") + 5, timeout=WAIT)
            await p.wait_frames(victim.id, "video", p.frames_received(victim.id, "video") + 5, timeout=WAIT)
        # Nobody left: the room still has exactly its three seats.
        assert all(len(p.peers) == 2 for p in people)
    finally:
        for p in people:
            await p.close()


async def test_a_room_whose_every_socket_was_on_the_lost_node_is_taken_over(cluster: Cluster) -> None:
    room = await cluster.room()
    owner_node = 1
    first = Participant(cluster.nodes[owner_node].ws, await cluster.token(room, "counsellor"), auto_resume=True,
                        fallback_urls=cluster.urls(owner_node))
    second = Participant(cluster.nodes[owner_node].ws, await cluster.token(room, "citizen"), auto_resume=True,
                         fallback_urls=cluster.urls(owner_node))
    try:
        await first.connect()
        await second.connect()
        assert cluster.owner(room) == owner_node
        seats = (first.id, second.id)
        cluster.nodes[owner_node].kill(signal.SIGKILL)
        for p in (first, second):
            await p.wait_until(lambda p=p: p.resumes >= 1 and p.connected, timeout=WAIT, what="resume")
        assert (first.id, second.id) == seats
        assert cluster.owner(room) not in (None, owner_node)
        await first.wait_frames(second.id, "video", first.frames_received(second.id, "video") + 5, timeout=WAIT)
    finally:
        for p in (first, second):
            await p.close()


async def test_sigterm_drains_a_node_and_nobody_loses_a_seat_not_even_a_patched_in_expert(cluster: Cluster) -> None:
    room = await cluster.room()
    people = await seated(cluster, room, [(0, "counsellor"), (1, "citizen"), (1, "expert")])
    try:
        seats = [p.id for p in people]
        expert = people[2]  # joined with a single-use token: it cannot join again, only resume
        cluster.nodes[1].kill(signal.SIGTERM)
        assert cluster.nodes[1].wait_exit() == 0  # a clean stop
        for p in people[1:]:
            await p.wait_until(lambda p=p: p.resumes >= 1 and p.connected, timeout=WAIT, what="resume")
        assert [p.id for p in people] == seats
        for p in people:
            for q in people:
                if p is not q:
                    await p.wait_frames(q.id, "video", p.frames_received(q.id, "video") + 5, timeout=WAIT)
        assert expert.state == "joined"
    finally:
        for p in people:
            await p.close()


async def test_a_killed_node_is_recognised_by_its_silent_channel_long_before_its_registration_lapses(
        tmp_path: Path) -> None:
    """With a registration lifetime of two minutes, a killed owner's room still moves: the survivors see that
    nobody listens on its channel any more (a killed process's connections close at once) and deregister it."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    cluster = Cluster(tmp_path, size=2, ROOMSERVER_CLUSTER_NODE_TTL_SECONDS="120")
    try:
        await cluster.start()
        room = await cluster.room()
        p = Participant(cluster.nodes[1].ws, await cluster.token(room, "counsellor"), auto_resume=True,
                        fallback_urls=cluster.urls(1))
        try:
            await p.connect()
            seat = p.id
            assert cluster.owner(room) == 1
            cluster.nodes[1].kill(signal.SIGKILL)
            await p.wait_until(lambda: p.resumes >= 1 and p.connected, timeout=60, what="resume")
            assert p.id == seat and cluster.owner(room) == 0
            assert "no longer listens; deregistered" in cluster.nodes[0].tail(200)
        finally:
            await p.close()
    finally:
        cluster.stop()
