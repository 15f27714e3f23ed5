"""Redis or PostgreSQL stopped under a running cluster: clear errors, ``/readyz`` 503, no crash, recovery.

Each test runs its own engine (``engines.py``) so it can stop it for real. The
media between participants never depended on either: it keeps flowing.

* Redis lost: every node closes its participant sockets with ``1013`` (try again)
  and says 503 on ``/readyz``; when Redis is back — here, restarted empty — the
  owners write their rooms again and everyone resumes into the same seat.
* PostgreSQL lost: running calls go on (signals, state, even a leave: its audit
  event waits and is written later); new joins are refused with
  ``store_unavailable`` and ``1013``; ``/readyz`` says 503; when PostgreSQL is back,
  joins work and the waiting audit events are there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from roomserver.peer.participant import JoinRefused, Participant
from roomserver.store.postgres.schema import migrate
from tests.cluster.engines import PrivatePostgres, PrivateRedis
from tests.cluster.harness import Cluster, why_not

WAIT = 30.0


async def readyz(cluster: Cluster, node: int) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{cluster.nodes[node].base}/readyz") as r:
            return r.status, await r.json()


async def until_ready(cluster: Cluster, node: int, ready: bool) -> dict[str, Any]:
    for _ in range(300):
        status, body = await readyz(cluster, node)
        if (status == 200) == ready:
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"node {node} never became {'ready' if ready else 'not ready'}")


@pytest.fixture
async def redis_cluster(tmp_path: Path) -> AsyncIterator[tuple[Cluster, PrivateRedis]]:
    reason = why_not() or PrivateRedis.unavailable()
    if reason:
        pytest.skip(reason)
    redis = PrivateRedis(tmp_path)
    redis.start()
    cluster = Cluster(tmp_path, size=2, redis_url=redis.url)
    try:
        await cluster.start()
        yield cluster, redis
    finally:
        cluster.stop()
        redis.stop()


@pytest.fixture
async def pg_cluster(tmp_path: Path) -> AsyncIterator[tuple[Cluster, PrivatePostgres]]:
    reason = why_not()
    pg = PrivatePostgres()
    reason = reason or pg.unavailable()
    if reason:
        pytest.skip(reason)
    pg.init()
    pg.start()
    migrate(pg.url)
    cluster = Cluster(tmp_path, size=2, ROOMSERVER_STORE_URL=pg.url)
    try:
        await cluster.start()
        yield cluster, pg
    finally:
        cluster.stop()
        pg.remove()


async def test_redis_lost_and_back_costs_nobody_their_seat(redis_cluster: tuple[Cluster, PrivateRedis]) -> None:
    cluster, redis = redis_cluster
    room = await cluster.room()
    a = Participant(cluster.nodes[0].ws, await cluster.token(room, "counsellor"), auto_resume=True,
                    fallback_urls=cluster.urls(0))
    b = Participant(cluster.nodes[1].ws, await cluster.token(room, "citizen"), auto_resume=True,
                    fallback_urls=cluster.urls(1))
    try:
        await a.connect()
        await b.connect()
        await a.wait_frames(b.id, "video", 3, timeout=WAIT)
        seats = (a.id, b.id)
        redis.stop()
        # Both nodes notice, say so, close their sockets with 1013, and keep running.
        for node in (0, 1):
            body = await until_ready(cluster, node, False)
            assert "Redis" in body["error"]["message"]
        await a.wait_until(lambda: a.close_code == 1013, timeout=WAIT, what="close 1013")
        assert all(node.alive for node in cluster.nodes)
        # The picture between them did not need Redis: it keeps coming.
        before = a.frames_received(b.id, "video")
        await a.wait_frames(b.id, "video", before + 10, timeout=WAIT)
        # Redis comes back (empty: it keeps nothing on disk); the owners write their rooms again.
        redis.start()
        for node in (0, 1):
            await until_ready(cluster, node, True)
        for p in (a, b):
            await p.wait_until(lambda p=p: p.resumes >= 1 and p.connected, timeout=WAIT, what="resume")
        assert (a.id, b.id) == seats
        await a.wait_frames(b.id, "video", a.frames_received(b.id, "video") + 5, timeout=WAIT)
        await b.wait_frames(a.id, "video", b.frames_received(a.id, "video") + 5, timeout=WAIT)
    finally:
        for p in (a, b):
            await p.close()


async def test_postgresql_lost_and_back_keeps_calls_and_refuses_joins_clearly(
        pg_cluster: tuple[Cluster, PrivatePostgres]) -> None:
    cluster, pg = pg_cluster
    room = await cluster.room()
    late_token = await cluster.token(room, "citizen", "Olena")
    a = Participant(cluster.nodes[0].ws, await cluster.token(room, "counsellor"))
    b = Participant(cluster.nodes[1].ws, await cluster.token(room, "citizen"))
    c = Participant(cluster.nodes[1].ws, await cluster.token(room, "expert", "Erik"))
    try:
        for p in (a, b, c):
            await p.connect()
        await a.wait_frames(b.id, "video", 3, timeout=WAIT)
        pg.stop()
        for node in (0, 1):
            body = await until_ready(cluster, node, False)
            assert "database" in body["error"]["message"]
        # The call goes on: state changes reach the others, media flows, an expert can leave.
        await b.set_state(mic=False)
        await a.wait_until(lambda: a.peers.get(b.id, {}).get("state", {}).get("mic") is False, timeout=WAIT,
                           what="peer-state")
        await c.leave()
        await a.wait_until(lambda: c.id not in a.peers, timeout=WAIT, what="peer-left")
        await a.wait_frames(b.id, "video", a.frames_received(b.id, "video") + 10, timeout=WAIT)
        # A new join is refused clearly, and may be tried again.
        late = Participant(cluster.nodes[0].ws, late_token)
        with pytest.raises(JoinRefused) as refused:
            await late.connect()
        assert (refused.value.code, refused.value.close_code) == ("store_unavailable", 1013)
        await late.close()
        assert all(node.alive for node in cluster.nodes)
        # Back: ready again, the join works, and the leave's audit event was written after all.
        pg.start()
        for node in (0, 1):
            await until_ready(cluster, node, True)
        late = Participant(cluster.nodes[0].ws, late_token)
        assert (await late.connect())["type"] in ("welcome", "waiting")
        await late.close()
        for _ in range(100):
            events = await cluster.api("GET", "/api/v1/audit?limit=1000")
            if any(e["action"] == "seat.leave" and e["room_id"] == room for e in events["events"]):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the leave during the outage was never audited")
    finally:
        for p in (a, b, c):
            await p.close()
