"""Scale on one node: thousands of connected participants, heartbeats on, some rooms talking.

One server process on its embedded default (SQLite, ``synchronous = "full"``, the
shipped heartbeat and rate limit). The load process fills ``--rooms`` rooms of four
(one API call for the room, four invites, four sockets that join), then:

1. **idle** (``--idle`` seconds): everyone connected, nobody talks; the server's
   CPU here is what heartbeats (and nothing else) cost;
2. **talk** (``--talk`` seconds): ``--talking`` of the rooms (default 10 %) run one
   ping-pong of SDP-sized ``signal`` messages between two of their participants,
   paced at ``--rate`` messages per second per room (within the shipped rate limit);
   every round trip is timed.

Reported: sockets that failed to join or were closed (errors), relay round trip
p50/p99 during the talk phase, server RSS per participant (RSS after the joins
minus before, divided by participants), server CPU during the idle phase as a
percentage of one core, joins per second while filling. The client answers the
server's pings (aiohttp autoping). Loopback only, bounded by the counts.

    ./run bench scale --rooms 1250
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SDP = "v=0\r\n" + "a=x-bench:" + "x" * 540 + "\r\n"  # ~600 bytes, like a real offer's size


def proc_sample(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS KiB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return cpu, rss


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Load:
    def __init__(self, port: int, api_key: str) -> None:
        self.base = f"http://{HOST}:{port}"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.sockets: list[tuple[aiohttp.ClientWebSocketResponse, str]] = []  # (socket, seat id)
        self.rooms: list[list[int]] = []  # indexes into sockets
        self.errors: list[str] = []
        self.rtts: list[float] = []
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.readers: list[asyncio.Task[None]] = []

    async def post(self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with http.post(self.base + "/api/v1" + path, json=body, headers=self.headers) as r:
            data = await r.json()
            if r.status >= 300:
                raise RuntimeError(f"POST {path}: {r.status} {data}")
            return data

    async def fill_room(self, http: aiohttp.ClientSession, sockets: aiohttp.ClientSession, i: int) -> None:
        """One room of four. The API calls share pooled keep-alive connections; every WebSocket opens
        a connection of its own on ``sockets`` (a session that pools nothing), as browsers do."""
        room = await self.post(http, "/rooms", {"title": f"Scale {i}", "waiting_room": False})
        members = []
        for k in range(4):
            invite = await self.post(http, f"/rooms/{room['id']}/invites", {"role": "expert", "name": f"P{k}"})
            ws = await sockets.ws_connect(f"ws://{HOST}:{self.base.rsplit(':', 1)[1]}/ws", autoping=True,
                                       max_msg_size=1 << 20)
            await ws.send_str(orjson.dumps({"type": "join", "token": invite["token"]}).decode())
            while True:
                msg = await asyncio.wait_for(ws.receive(), 30)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"socket closed while joining: {msg.type} {ws.close_code}")
                data = orjson.loads(msg.data)
                if data["type"] == "welcome":
                    break
                if data["type"] in ("error", "waiting"):
                    raise RuntimeError(f"join refused: {data}")
            members.append(len(self.sockets))
            self.sockets.append((ws, data["self"]["id"]))
            # Read at once: the client answers the server's pings only while someone reads the socket.
            self.readers.append(asyncio.create_task(self.read(members[-1])))
        self.rooms.append(members)

    async def read(self, index: int) -> None:
        """Read one socket until it closes; answer signals, time the replies to ours."""
        ws, seat = self.sockets[index]
        try:
            await self._read(ws, seat)
        except aiohttp.ClientError as exc:
            self.errors.append(f"socket {index}: {type(exc).__name__}")
            return
        if not self.stopping:
            self.errors.append(f"socket {index} closed by the server: {ws.close_code}")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, seat: str) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = orjson.loads(msg.data)
            kind = data.get("type")
            if kind == "signal":
                desc = data["data"]["description"]
                if desc["type"] == "offer":
                    await ws.send_str(orjson.dumps({"type": "signal", "to": data["from"], "data": {
                        "description": {"type": "answer", "sdp": desc["sdp"]}}}).decode())
                else:
                    fut = self.pending.pop(seat, None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
            elif kind in ("error", "removed", "ended"):
                self.errors.append(f"{kind}: {data.get('code', '')}")

    async def talk(self, members: list[int], until: float, rate: float) -> None:
        (a, seat_a), (_, seat_b) = self.sockets[members[0]], self.sockets[members[1]]
        frame = orjson.dumps({"type": "signal", "to": seat_b, "data": {
            "description": {"type": "offer", "sdp": SDP}}}).decode()
        interval = 2.0 / rate  # one round trip = two messages
        while time.monotonic() < until:
            fut = asyncio.get_running_loop().create_future()
            self.pending[seat_a] = fut
            t0 = time.perf_counter()
            try:
                await a.send_str(frame)
            except aiohttp.ClientError as exc:
                self.errors.append(f"talking socket lost: {type(exc).__name__} {a.close_code}")
                return
            try:
                await asyncio.wait_for(fut, 10)
                self.rtts.append(time.perf_counter() - t0)
            except asyncio.TimeoutError:
                self.errors.append("a signal got no answer in 10 s")
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))

    stopping = False


def worker(index: int, port: int, api_key: str, rooms: range, talking: int, args: argparse.Namespace,
           out: Any, talk_go: Any, stop_go: Any) -> None:
    """One client process: fills its rooms, idles, lets ``talking`` of them talk, reports (in its own loop)."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        load = Load(port, api_key)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as sockets:
            gate = asyncio.Semaphore(args.concurrency)

            async def fill(i: int) -> None:
                async with gate:
                    try:
                        await load.fill_room(http, sockets, i)
                    except Exception as exc:  # noqa: BLE001 - counted as an error
                        load.errors.append(f"room {i}: {exc}")
            await asyncio.gather(*(fill(i) for i in rooms))
            out.put(("filled", index, len(load.sockets), list(load.errors)))
            await asyncio.get_running_loop().run_in_executor(None, talk_go.wait)
            until = time.monotonic() + args.talk
            await asyncio.gather(*(load.talk(m, until, args.rate) for m in load.rooms[:talking]))
            out.put(("talked", index, load.rtts, list(load.errors)))
            await asyncio.get_running_loop().run_in_executor(None, stop_go.wait)
            load.stopping = True
            for ws, _ in load.sockets:
                await ws.close()
            await asyncio.gather(*load.readers, return_exceptions=True)
    asyncio.run(main())


def run(args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing as mp
    tmp = Path(tempfile.mkdtemp(prefix="roomserver-scale-"))
    port = free_port()
    api_key = "rsk_bench_" + secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROOMSERVER_SERVER_HOST": HOST,
           "ROOMSERVER_SERVER_PORT": str(port), "ROOMSERVER_SERVER_DATA_DIR": str(tmp / "data"),
           "ROOMSERVER_SERVER_LOG_LEVEL": "WARNING", "ROOMSERVER_AUTH_API_KEYS": f"bench:{api_key}",
           "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false", "ROOMSERVER_CONFIG": str(ROOT / "config" / "roomserver.toml"),
           "ROOMSERVER_SERVER_MAX_CONNECTIONS_PER_CLIENT": "1000000"}  # every bench socket comes from one address
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "roomserver", "serve"], env=env, cwd=tmp, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    ctx = mp.get_context("fork")
    out, talk_go, stop_go = ctx.Queue(), ctx.Event(), ctx.Event()
    workers = []
    try:
        import urllib.request
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        time.sleep(2)
        cpu0, rss0 = proc_sample(proc.pid)
        t0 = time.perf_counter()
        share = -(-args.rooms // args.workers)
        talking_total = max(1, int(args.rooms * args.talking))
        for w in range(args.workers):
            rooms = range(w * share, min(args.rooms, (w + 1) * share))
            talking = len(range(w * share, min(talking_total, (w + 1) * share)))
            p = ctx.Process(target=worker, args=(w, port, api_key, rooms, max(0, talking), args, out, talk_go, stop_go))
            p.start()
            workers.append(p)
        filled = [out.get(timeout=1800) for _ in workers]
        fill_s = time.perf_counter() - t0
        participants = sum(f[2] for f in filled)
        errors = [e for f in filled for e in f[3]]
        time.sleep(args.settle)
        cpu1, rss1 = proc_sample(proc.pid)
        time.sleep(args.idle)
        cpu2, _ = proc_sample(proc.pid)
        talk_go.set()
        talked = [out.get(timeout=args.talk + 120) for _ in workers]
        cpu3, rss3 = proc_sample(proc.pid)
        errors += [e for t in talked for e in t[3]]
        rtts = sorted(r for t in talked for r in t[2])
        stop_go.set()
        for p in workers:
            p.join(timeout=60)
    finally:
        for p in workers:
            if p.is_alive():
                p.kill()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    def pct(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(p * len(rtts)))] if rtts else float("nan")
    unique_errors = sorted(set(errors))
    return {
        "participants": participants, "rooms": args.rooms, "talking_rooms": talking_total,
        "client_processes": args.workers,
        "errors": len(set(errors)), "first_errors": unique_errors[:5],
        "fill_seconds": round(fill_s, 1),
        "rss_kib_per_participant": round((rss1 - rss0) / max(1, participants), 1),
        "server_rss_mib": round(rss3 / 1024, 1),
        "idle_cpu_pct_of_one_core": round(100 * (cpu2 - cpu1) / args.idle, 2),
        "round_trips": len(rtts), "rtt_p50_ms": round(pct(0.50) * 1000, 2), "rtt_p99_ms": round(pct(0.99) * 1000, 2),
        "talk_cpu_pct_of_one_core": round(100 * (cpu3 - cpu2) / args.talk, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=1250)
    parser.add_argument("--talking", type=float, default=0.10, help="share of rooms exchanging signals")
    parser.add_argument("--rate", type=float, default=20.0, help="signal messages per second per talking room")
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--talk", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8, help="rooms filled at once per client process")
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
