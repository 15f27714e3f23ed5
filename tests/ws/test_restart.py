"""The embedded default keeps every seat across its own restart: a deploy (SIGTERM) or a crash (kill -9).

One real ``roomserver serve`` process on a SQLite file; real aiortc participants
that resume by themselves, as browsers do. What ``resume`` needs (the rooms'
seats and hashed secrets) is in the store before anyone hears of a change, so
the next start takes every running room up again; a room left "live" with
nothing to take up is ended at the next start instead of staying live forever.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import AsyncIterator

import pytest

from roomserver.peer.participant import Participant
from tests.cluster.harness import Cluster, Node

WAIT = 30.0


@pytest.fixture
async def single(tmp_path: Path) -> AsyncIterator[Cluster]:
    made = Cluster(tmp_path, size=1, single=True)
    try:
        await made.start()
        yield made
    finally:
        made.stop()


async def restart(node: Node, sig: int) -> None:
    node.kill(sig)
    code = node.wait_exit()
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    node.start()
    await node.wait_ready()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_a_restart_during_a_call_keeps_every_seat(single: Cluster, sig: int) -> None:
    node = single.nodes[0]
    room = await single.room(waiting_room=True)
    counsellor = Participant(node.ws, await single.token(room, "counsellor"), auto_resume=True)
    citizen = Participant(node.ws, await single.token(room, "citizen", "Ayşe"), auto_resume=True)
    expert = Participant(node.ws, await single.token(room, "expert", "Erik"), auto_resume=True)  # single-use
    try:
        await counsellor.connect()
        assert (await citizen.connect())["type"] == "waiting"
        await counsellor.wait_until(lambda: bool(counsellor.lobby), timeout=WAIT, what="lobby")
        await counsellor.admit(citizen.id)
        await citizen.wait_admitted(timeout=WAIT)
        await expert.connect()
        people = [counsellor, citizen, expert]
        for p in people:
            for q in people:
                if p is not q:
                    await p.wait_frames(q.id, "video", 3, timeout=WAIT)
        seats = [p.id for p in people]
        await restart(node, sig)
        for p in people:
            await p.wait_until(lambda p=p: p.resumes >= 1 and p.connected, timeout=WAIT, what="resume")
        assert [p.id for p in people] == seats
        assert all(p.state == "joined" for p in people)
        for p in people:
            for q in people:
                if p is not q:
                    await p.wait_frames(q.id, "video", p.frames_received(q.id, "video") + 5, timeout=WAIT)
        state = (await single.api("GET", f"/api/v1/rooms/{room}"))["state"]
        assert state == "live"
    finally:
        for p in (counsellor, citizen, expert):
            await p.close()


async def test_a_room_left_live_with_nothing_to_take_up_is_ended_at_the_next_start(single: Cluster) -> None:
    node = single.nodes[0]
    room = await single.room()
    p = Participant(node.ws, await single.token(room, "counsellor"))
    try:
        await p.connect()
        node.kill(signal.SIGKILL)
        node.wait_exit()
    finally:
        await p.close()
    # What a crash in an older version (or a lost snapshot) leaves: live in the store, no live state.
    db = sqlite3.connect(single.workdir / "data0" / "roomserver.sqlite3")
    with db:
        db.execute("DELETE FROM live_state")
    db.close()
    node.start()
    await node.wait_ready()
    body = await single.api("GET", f"/api/v1/rooms/{room}")
    assert (body["state"], body["ended_reason"]) == ("ended", "interrupted")
    events = await single.api("GET", "/api/v1/audit")
    assert any(e["action"] == "room.ended" and e["room_id"] == room and e["detail"].get("reason") == "interrupted"
               for e in events["events"])
