"""Failover benchmark: ``kill -9`` of a room's owner node, until every participant is back in its seat.

Three real nodes (``python -m roomserver serve``) share PostgreSQL and Redis, with
the production default ``[cluster] node_ttl_seconds`` (5 s) unless ``--ttl`` says
otherwise. Each run: a counsellor, a citizen and an expert (aiortc participants
sending video) sit on three different nodes; the room's owner is killed with
SIGKILL; the clock runs from the kill until

* the room has a new owner (Redis), and
* the participant whose socket died with the node has resumed on another node
  into its old seat and receives video from both others again.

Meanwhile the video frames between the two participants on surviving nodes are
counted every half second: the smallest count in any half second shows whether
the picture ever stopped. The killed node is started again for the next run.
Loopback only; bounded by ``--runs``.

    ./run bench failover --runs 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from roomserver.peer.participant import Participant  # noqa: E402
from tests.cluster.harness import Cluster, why_not  # noqa: E402

WAIT = 30.0


async def seat(cluster: Cluster, room: str) -> list[Participant]:
    people = []
    for node, role in ((0, "counsellor"), (1, "citizen"), (2, "expert")):
        p = Participant(cluster.nodes[node].ws, await cluster.token(room, role, role.title()), name=role,
                        auto_resume=True, fallback_urls=cluster.urls(node))
        await p.connect()
        people.append(p)
    for p in people:
        for q in people:
            if p is not q:
                await p.wait_frames(q.id, "video", 3, timeout=WAIT)
    return people


async def one_run(cluster: Cluster) -> dict[str, float | int | bool]:
    room = await cluster.room()
    people = await seat(cluster, room)
    try:
        owner = cluster.owner(room)
        assert owner is not None
        victim = people[owner]
        survivors = [p for p in people if p is not victim]
        seats = [p.id for p in people]
        a, b = survivors
        last = (a.frames_received(b.id, "video"), b.frames_received(a.id, "video"))
        fewest = 10**9
        new_owner_at = back_at = None
        before = {p.id: victim.frames_received(p.id, "video") for p in survivors}
        t0 = time.monotonic()
        cluster.nodes[owner].kill(signal.SIGKILL)
        while time.monotonic() - t0 < 60:
            await asyncio.sleep(0.5)
            now = (a.frames_received(b.id, "video"), b.frames_received(a.id, "video"))
            fewest = min(fewest, now[0] - last[0], now[1] - last[1])
            last = now
            moved = cluster.owner(room)
            if new_owner_at is None and moved is not None and moved != owner:
                new_owner_at = time.monotonic() - t0
            if (back_at is None and victim.resumes >= 1 and victim.connected
                    and all(victim.frames_received(p.id, "video") > before[p.id] + 3 for p in survivors)):
                back_at = time.monotonic() - t0
            if new_owner_at is not None and back_at is not None:
                break
        same_seats = [p.id for p in people] == seats
        return {"taken_over_s": round(new_owner_at or -1, 2), "all_back_s": round(back_at or -1, 2),
                "fewest_frames_per_half_second": fewest, "same_seats": same_seats, "killed": owner}
    finally:
        for p in people:
            try:
                await asyncio.wait_for(p.close(), 10)
            except asyncio.TimeoutError:
                print(f"participant {p.name} did not close in 10 s", file=sys.stderr)
        cluster.nodes[owner].wait_exit()
        cluster.nodes[owner].start()
        await cluster.nodes[owner].wait_ready()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--ttl", type=float, default=5.0, help="[cluster] node_ttl_seconds (default 5, as shipped)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = why_not()
    if reason:
        print(f"failover benchmark needs PostgreSQL and Redis: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rs-failover-") as tmp:
        cluster = Cluster(Path(tmp), ROOMSERVER_CLUSTER_NODE_TTL_SECONDS=str(args.ttl),
                          ROOMSERVER_CLUSTER_RPC_TIMEOUT_SECONDS="3", ROOMSERVER_SERVER_LOG_LEVEL="WARNING")
        try:
            await cluster.start()
            runs = []
            for i in range(args.runs):
                result = await one_run(cluster)
                runs.append(result)
                if not args.json:
                    print(f"run {i + 1}: {result}", flush=True)
        finally:
            cluster.stop()
    back = [r["all_back_s"] for r in runs if r["all_back_s"] >= 0]
    summary = {
        "runs": len(runs), "node_ttl_seconds": args.ttl,
        "all_back_median_s": round(statistics.median(back), 2) if back else None,
        "all_back_max_s": max(back) if back else None,
        "taken_over_median_s": round(statistics.median(r["taken_over_s"] for r in runs), 2),
        "never_back": len(runs) - len(back),
        "picture_stopped_in_runs": sum(1 for r in runs if r["fewest_frames_per_half_second"] <= 0),
        "seats_kept_in_runs": sum(1 for r in runs if r["same_seats"]),
    }
    print(json.dumps({"summary": summary, "runs": runs} if args.json else summary, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
