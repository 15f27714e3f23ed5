"""Patch-in benchmark: from an expert's accept to the first video frame on the counsellor's side.

One command starts the room server as a subprocess on a free 127.0.0.1 port with a
throwaway data directory, creates a department and an expert account through the
REST API (the system API key), opens the expert's desk socket the way a browser
does (sign-in form, then ``/desk/ws`` with an Origin header), seats a counsellor
and a citizen (Python participants with real aiortc media) and then repeats:

    counsellor sends ``call`` → the desk gets ``ring`` → t0: the desk sends ``accept``
    → the desk gets ``accepted`` (the single-use token; t_token) → a Python participant
    joins with it → t1: the counsellor's participant has decoded the first video frame
    from the expert → the expert leaves; the desk is available again.

It prints a Markdown table (median, p90, min, max of t1−t0 and its two parts) and
writes the raw figures to bench/results/patchin-<time>.json.

    /work/main/.venv/bin/python bench/patchin/run.py --runs 20

Everything (server, desk, all three participants) runs on this machine over loopback;
the participants share one Python process and event loop, so their encoding and
decoding compete for one core: an upper bound for what browsers on separate
machines would see. Every step is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from roomserver.peer.participant import Participant  # noqa: E402

RESULTS = ROOT / "bench" / "results"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
HOST = "127.0.0.1"
READY_TIMEOUT_S = 30
STEP_TIMEOUT_S = 20  # any single step (ring, token, first frame, leave)
DEPARTMENT = "auslaenderbehoerde"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(port: int, tmp: Path, api_key: str) -> subprocess.Popen[bytes]:
    """``python -m roomserver serve`` in its own session, logging to tmp/server.log."""
    env = {
        **os.environ,
        "ROOMSERVER_SERVER_HOST": HOST,
        "ROOMSERVER_SERVER_PORT": str(port),
        "ROOMSERVER_SERVER_DATA_DIR": str(tmp / "data"),
        "ROOMSERVER_SERVER_LOG_LEVEL": "WARNING",
        "ROOMSERVER_AUTH_API_KEYS": f"bench:{api_key}",
        "ROOMSERVER_SERVER_MAX_CONNECTIONS_PER_CLIENT": "1000000",  # every bench socket comes from one address
        "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false",
        "ROOMSERVER_CONFIG": str(ROOT / "config" / "roomserver.toml"),
    }
    with open(tmp / "server.log", "wb") as log:
        return subprocess.Popen([PYTHON, "-m", "roomserver", "serve"], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL; only the process group we started."""
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
    except ProcessLookupError:
        pass


async def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
            try:
                async with http.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {READY_TIMEOUT_S} s; see {log}")
            await asyncio.sleep(0.1)


async def api(http: aiohttp.ClientSession, headers: dict[str, str], method: str, path: str,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with http.request(method, path, json=body, headers=headers) as resp:
        data = await resp.json()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data}")
        return data


class Desk:
    """The expert's desk socket, signed in through the form like a browser."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http, self.ws = http, ws

    @classmethod
    async def open(cls, base: str, username: str, password: str) -> Desk:
        http = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with http.get("/signin") as resp:
            token = _CSRF_FIELD.search(await resp.text())
        assert token, "no csrf_token on the sign-in form"
        async with http.post("/signin", data={"username": username, "password": password,
                                              "csrf_token": token.group(1)}, allow_redirects=False) as resp:
            if resp.status != 303:
                raise RuntimeError(f"sign-in failed: {resp.status}")
        ws = await http.ws_connect("/desk/ws", headers={"Origin": base})
        desk = cls(http, ws)
        await desk.next("desk")
        return desk

    async def next(self, type_: str, predicate: Any = None) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"desk socket closed: {msg}")
                data = json.loads(msg.data)
                if data["type"] == "error":
                    raise RuntimeError(f"desk error: {data}")
                if data["type"] == type_ and (predicate is None or predicate(data)):
                    return data
        return await asyncio.wait_for(read(), STEP_TIMEOUT_S)

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


async def first_frame(counsellor: Participant, expert_id: str) -> float:
    """perf_counter() when the counsellor has decoded the first video frame from ``expert_id``.

    Polled every millisecond rather than woken by the participant's change event,
    so the figure does not depend on how often that event fires."""
    deadline = time.perf_counter() + STEP_TIMEOUT_S
    while counsellor.frames_received(expert_id, "video") < 1:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no video frame from the expert within {STEP_TIMEOUT_S} s")
        await asyncio.sleep(0.001)
    return time.perf_counter()


async def one_run(counsellor: Participant, desk: Desk, ws_url: str) -> dict[str, float]:
    await counsellor.send({"type": "call", "department": DEPARTMENT})
    ring = await desk.next("ring")
    t0 = time.perf_counter()
    await desk.ws.send_json({"type": "accept", "call": ring["call"]["id"]})
    accepted = await desk.next("accepted")
    t_token = time.perf_counter()
    expert = Participant(ws_url, accepted["url"].split("#", 1)[1])
    try:
        await asyncio.wait_for(expert.connect(), STEP_TIMEOUT_S)
        t_joined = time.perf_counter()
        assert expert.id is not None
        t1 = await first_frame(counsellor, expert.id)
    finally:
        await expert.leave()
    await desk.next("presence", lambda m: m["status"] == "available")
    return {"accept_to_frame": t1 - t0, "accept_to_token": t_token - t0, "token_to_frame": t1 - t_token,
            "token_to_welcome": t_joined - t_token}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, max(0, int(round(0.9 * len(ordered))) - 1))]
    return {"median": statistics.median(ordered), "p90": p90, "min": ordered[0], "max": ordered[-1]}


async def bench(runs: int, warmup: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="roomserver-patchin-"))
    port = free_port()
    base = f"http://{HOST}:{port}"
    ws_url = f"ws://{HOST}:{port}/ws"
    api_key = "rsk_bench_" + secrets.token_hex(16)
    headers = {"Authorization": f"Bearer {api_key}"}
    proc = start_server(port, tmp, api_key)
    people: list[Participant] = []
    desk: Desk | None = None
    try:
        await wait_ready(base, proc, tmp / "server.log")
        async with aiohttp.ClientSession(base_url=base) as http:
            await api(http, headers, "POST", "/api/v1/departments",
                      {"id": DEPARTMENT, "name": "Ausländerbehörde", "kind": "county"})
            created = await api(http, headers, "POST", "/api/v1/accounts",
                                {"username": "bench-expert", "display_name": "Expertin (Benchmark)",
                                 "role": "expert", "department": DEPARTMENT})
            room = (await api(http, headers, "POST", "/api/v1/rooms",
                              {"title": "Benchmark", "waiting_room": False}))["id"]
            tokens = {role: (await api(http, headers, "POST", f"/api/v1/rooms/{room}/invites",
                                       {"role": role, "name": name}))["token"]
                      for role, name in (("counsellor", "Beraterin"), ("citizen", "Bürgerin"))}
        counsellor = Participant(ws_url, tokens["counsellor"])
        citizen = Participant(ws_url, tokens["citizen"])
        people += [counsellor, citizen]
        for p in people:
            await p.connect()
        assert citizen.id is not None
        await counsellor.wait_frames(citizen.id, "video", 1, STEP_TIMEOUT_S)
        desk = await Desk.open(base, "bench-expert", created["password"])
        samples: list[dict[str, float]] = []
        for i in range(warmup + runs):
            sample = await one_run(counsellor, desk, ws_url)
            if i >= warmup:
                samples.append(sample)
            print(f"run {i + 1 - warmup if i >= warmup else 'warm-up'}: "
                  f"{sample['accept_to_frame'] * 1000:.0f} ms", file=sys.stderr)
    finally:
        if desk is not None:
            await desk.close()
        for p in people:
            await p.close()
        stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    keys = ("accept_to_frame", "accept_to_token", "token_to_welcome", "token_to_frame")
    return {
        "benchmark": "patchin", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs, "warmup": warmup,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "summary": {k: summary([s[k] for s in samples]) for k in keys},
        "samples": samples,
    }


def table(result: dict[str, Any]) -> str:
    labels = {"accept_to_frame": "accept → first video frame (t1−t0)",
              "accept_to_token": "accept → token on the desk",
              "token_to_welcome": "token → welcome (joined)",
              "token_to_frame": "token → first video frame"}
    machine = result["machine"]
    lines = [f"Patch-in, {result['runs']} runs (+{result['warmup']} warm-up), loopback, Python participants; "
             f"{machine['cpus']} CPUs, load average {machine['load_average_1m']} at the end",
             "", "| interval | median | p90 | min | max |", "| --- | ---: | ---: | ---: | ---: |"]
    for key, label in labels.items():
        s = result["summary"][key]
        lines.append(f"| {label} | {s['median'] * 1000:.0f} ms | {s['p90'] * 1000:.0f} ms | "
                     f"{s['min'] * 1000:.0f} ms | {s['max'] * 1000:.0f} ms |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="measured runs (20 to 200; default 20)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs first (default 1)")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    args = parser.parse_args()
    if not 20 <= args.runs <= 200 or not 0 <= args.warmup <= 5:
        parser.error("--runs must be 20..200 and --warmup 0..5")
    result = asyncio.run(asyncio.wait_for(bench(args.runs, args.warmup), args.timeout))
    print(table(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"patchin-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nraw figures: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
