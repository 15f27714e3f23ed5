"""Signalling benchmark: our room server next to PeerJS and a bare aiohttp relay.

One command starts each server as a subprocess on a free 127.0.0.1 port, runs the
same load against it (load.py), stops it, and prints a Markdown table with one
column per server; the raw figures go to bench/results/ as JSON. The floor relay
is the cheapest our stack (aiohttp + orjson + uvloop) can be, PeerJS is what a
well-known signalling server costs, so our column reads between the two.

    /work/main/.venv/bin/python bench/signalling/run.py --servers peerjs,floor

Every step is bounded in time; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from load import (
    Adapter,
    FloorAdapter,
    LoadConfig,
    LoadResult,
    PeerJSAdapter,
    RoomserverAdapter,
    RoomserverClusterAdapter,
    machine_ticks,
    new_loop,
    run_load,
    sample_proc,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "bench" / "results"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
HOST = "127.0.0.1"
ALL_SERVERS = ("roomserver", "roomserver-2n", "peerjs", "floor")

NPM_TIMEOUT_S = 300
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 5


@dataclass
class Server:
    """A server under test: its process (sampled in /proc), port and load adapter."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    ready_url: str
    adapter: Adapter
    log_path: Path
    cleanup: Callable[[], None] = field(default=lambda: None)
    info: dict[str, str] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)  # every process whose CPU counts (a cluster's nodes)
    side_pids: dict[str, int] = field(default_factory=dict)  # measured apart (Redis), not in "server"


def free_port() -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def spawn(
    cmd: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own session (Ctrl-C reaches only us; we stop it ourselves)."""
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(
            [*COMMAND_PREFIX, *cmd],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # This checkout's package first, whatever an editable install elsewhere points at.
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()
    LIVE.append(proc)
    return proc


# Every server process we started and have not stopped yet: they run in their own
# session, so an interrupted run must stop them itself (see main).
LIVE: list[subprocess.Popen[bytes]] = []
# Put in front of every server command: instructions.py runs the servers under valgrind.
COMMAND_PREFIX: list[str] = []


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL; only ever the process group we started."""
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass
    if proc in LIVE:
        LIVE.remove(proc)


# --------------------------------------------------------------------------- servers


def ensure_node_deps() -> None:
    """Install `peer` into bench/signalling/node_modules on first run (fresh machine, CI)."""
    if (HERE / "node_modules" / "peer" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH; PeerJS needs Node.js 18+ and npm")
    verb = "ci" if (HERE / "package-lock.json").exists() else "install"
    print(f"installing PeerJS server: npm {verb} in {HERE} ...", file=sys.stderr)
    subprocess.run(
        [npm, verb, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        check=True,
        timeout=NPM_TIMEOUT_S,
    )


def start_peerjs(port: int, log_path: Path) -> Server:
    """PeerServer from npm `peer`, node run directly so the pid is the server's."""
    ensure_node_deps()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH")
    proc = spawn([node, str(HERE / "peerjs_server.js"), str(port)], log_path, cwd=HERE)
    pkg = json.loads((HERE / "node_modules" / "peer" / "package.json").read_text())
    node_version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    return Server(
        name="peerjs",
        proc=proc,
        port=port,
        ready_url=f"http://{HOST}:{port}/",
        adapter=PeerJSAdapter(port),
        log_path=log_path,
        info={"peer": pkg["version"], "node": node_version},
    )


def start_floor(port: int, log_path: Path) -> Server:
    """floor_relay.py under the project's venv Python."""
    proc = spawn(
        [PYTHON, str(HERE / "floor_relay.py"), "--port", str(port)], log_path, cwd=HERE
    )
    return Server(
        name="floor",
        proc=proc,
        port=port,
        ready_url=f"http://{HOST}:{port}/health",
        adapter=FloorAdapter(port),
        log_path=log_path,
        info={"python": PYTHON},
    )


def start_roomserver(port: int, log_path: Path) -> Server:
    """Our server on 127.0.0.1:``port``: its default settings, a throwaway data dir.

    Two settings differ from the shipped defaults, both stated in the table's notes:
    the per-socket rate limit is lifted (the ping-pong sends hundreds of signals per
    second per socket; every message is still parsed, validated and authorised), and
    the log level is WARNING (no access log lines in the figures). The store keeps its
    default ``synchronous = "full"``: joins include a disk sync, as in production.
    """
    tmp = Path(tempfile.mkdtemp(prefix="roomserver-bench-"))
    api_key = "rsk_bench_" + secrets.token_hex(16)
    env = {
        "ROOMSERVER_SERVER_HOST": HOST,
        "ROOMSERVER_SERVER_PORT": str(port),
        "ROOMSERVER_SERVER_DATA_DIR": str(tmp / "data"),
        "ROOMSERVER_SERVER_LOG_LEVEL": "WARNING",
        "ROOMSERVER_AUTH_API_KEYS": f"bench:{api_key}",
        "ROOMSERVER_SIGNALLING_RATE_PER_SECOND": "10000",
        "ROOMSERVER_SIGNALLING_RATE_BURST": "100000",
        "ROOMSERVER_SERVER_MAX_CONNECTIONS_PER_CLIENT": "1000000",  # every bench socket comes from one address
        "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false",
        "ROOMSERVER_CONFIG": str(ROOT / "config" / "roomserver.toml"),
    }
    proc = spawn([PYTHON, "-m", "roomserver", "serve"], log_path, env=env, cwd=tmp)
    return Server(name="roomserver", proc=proc, port=port, ready_url=f"http://{HOST}:{port}/readyz",
                  adapter=RoomserverAdapter(port, api_key), log_path=log_path,
                  cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True), info={"python": PYTHON})


def start_roomserver_cluster(port: int, log_path: Path) -> Server:
    """Two nodes of our server on the local Redis and PostgreSQL (a database made for the run).

    The same settings as the single node; the store is PostgreSQL (the cluster's store,
    synchronous commit as shipped), live state and messages between the nodes go through
    Redis. Both nodes' CPU counts as "server"; Redis's is measured on its own.
    """
    import psycopg
    import redis

    tmp = Path(tempfile.mkdtemp(prefix="roomserver-bench-2n-"))
    api_key = "rsk_bench_" + secrets.token_hex(16)
    database = f"rs_bench_{secrets.token_hex(4)}"
    admin = os.environ.get("ROOMSERVER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = admin.rsplit("/", 1)[0] + f"/{database}"
    subprocess.run([PYTHON, "-m", "roomserver", "migrate"], env={**os.environ, "ROOMSERVER_STORE_URL": url,
                                                                 "PYTHONPATH": str(ROOT)},
                   cwd=tmp, check=True, capture_output=True, timeout=60)
    prefix = f"rsbench-{secrets.token_hex(3)}"
    ports = [port, free_port()]
    procs = []
    for i, node_port in enumerate(ports):
        env = {
            "ROOMSERVER_SERVER_HOST": HOST, "ROOMSERVER_SERVER_PORT": str(node_port),
            "ROOMSERVER_SERVER_DATA_DIR": str(tmp / f"data{i}"), "ROOMSERVER_TOKENS_KEYS_DIR": str(tmp / "keys"),
            "ROOMSERVER_SERVER_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "ROOMSERVER_AUTH_API_KEYS": f"bench:{api_key}",
            "ROOMSERVER_SIGNALLING_RATE_PER_SECOND": "10000", "ROOMSERVER_SIGNALLING_RATE_BURST": "100000",
            "ROOMSERVER_SERVER_MAX_CONNECTIONS_PER_CLIENT": "1000000",
            "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false", "ROOMSERVER_CONFIG": str(ROOT / "config" / "roomserver.toml"),
            "ROOMSERVER_STORE_URL": url, "ROOMSERVER_CLUSTER_REDIS_URL": "redis://127.0.0.1:6379/0",
            "ROOMSERVER_CLUSTER_KEY_PREFIX": prefix, "ROOMSERVER_CLUSTER_NODE_ID": f"bench{i}",
        }
        procs.append(spawn([PYTHON, "-m", "roomserver", "serve"], log_path.with_suffix(f".node{i}.log"),
                           env=env, cwd=tmp))
        if i == 0:  # the first node writes the shared key set before the second reads it
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not (tmp / "keys" / "keyset.json").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
    redis_pid = int(redis.Redis().info("server")["process_id"])

    def cleanup() -> None:
        for extra in procs[1:]:
            kill_group(extra)
        client = redis.Redis()
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)

    return Server(name="roomserver-2n", proc=procs[0], port=port, ready_url=f"http://{HOST}:{ports[1]}/readyz",
                  adapter=RoomserverClusterAdapter(ports, api_key), log_path=log_path, cleanup=cleanup,
                  info={"python": PYTHON, "nodes": "2", "store": "postgresql", "live": "redis"},
                  pids=[p.pid for p in procs], side_pids={"redis": redis_pid})


STARTERS: dict[str, Callable[[int, Path], Server]] = {
    "roomserver": start_roomserver,
    "roomserver-2n": start_roomserver_cluster,
    "peerjs": start_peerjs,
    "floor": start_floor,
}


async def wait_ready(server: Server, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll the server's ready URL until it answers, it dies, or time runs out."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.proc.returncode}; see {server.log_path}"
                )
            try:
                async with session.get(server.ready_url) as resp:
                    if resp.status < 500:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.name} not ready after {timeout_s:g} s; see {server.log_path}"
                )
            await asyncio.sleep(0.1)


def stop(server: Server) -> None:
    """Stop the server and drop its temporary files."""
    try:
        kill_group(server.proc)
    finally:
        server.cleanup()


# --------------------------------------------------------------------------- one server


def derive(res: LoadResult) -> dict[str, float | None]:
    """The table's figures from one run's raw counts."""

    def div(a: float, b: float, scale: float = 1.0) -> float | None:
        return a / b * scale if b else None

    return {
        "joins_per_s": div(res.sockets, res.join_wall_s),
        "join_p50_ms": res.join_latency_ms.get("p50"),
        "join_p99_ms": res.join_latency_ms.get("p99"),
        "server_cpu_us_per_join": div(res.join_server_cpu_s, res.sockets, 1e6),
        "msgs_per_s": div(res.relayed, res.phase_wall_s),
        "rtt_p50_ms": res.rtt_ms.get("p50"),
        "rtt_p99_ms": res.rtt_ms.get("p99"),
        "server_cpu_us_per_msg": div(res.phase_server_cpu_s, res.relayed, 1e6),
        "server_cpu_pct": div(res.phase_server_cpu_s, res.phase_wall_s, 100),
        "load_cpu_pct": div(res.phase_load_cpu_s, res.phase_wall_s, 100),
        "machine_busy_pct": res.phase_machine_busy_pct or None,
        "kb_per_participant": div(res.rss_connected_kb - res.rss_idle_kb, res.sockets),
        "rss_idle_mb": res.rss_idle_kb / 1024 if res.rss_idle_kb else None,
        "relayed": float(res.relayed),
        "phase_wall_s": res.phase_wall_s or None,
        "frame_sent_bytes": float(res.frame_sent_bytes)
        if res.frame_sent_bytes
        else None,
        "frame_delivered_bytes": float(res.frame_delivered_bytes)
        if res.frame_delivered_bytes
        else None,
    }


BUSY_THRESHOLD_PCT = 15.0


async def background_busy_pct(wait_idle_s: float = 0.0) -> float:
    """How busy the machine is with other work before we start (shared boxes, CI).

    Samples 1 s at a time for up to ``wait_idle_s`` until it is below the threshold,
    so a burst of someone else's tests need not land in our figures.
    """
    deadline = time.monotonic() + wait_idle_s
    while True:
        b0, t0 = machine_ticks()
        await asyncio.sleep(1.0)
        b1, t1 = machine_ticks()
        busy = 100 * (b1 - b0) / max(1, t1 - t0)
        if busy <= BUSY_THRESHOLD_PCT or time.monotonic() >= deadline:
            return busy


async def bench_one(
    name: str, cfg: LoadConfig, log_dir: Path, run: int, wait_idle_s: float = 0.0
) -> dict[str, Any]:
    """Start one server, load it, stop it; failures become a status, not an exception."""
    log_path = log_dir / f"{name}-{run}.log"
    background = await background_busy_pct(wait_idle_s)
    if background > BUSY_THRESHOLD_PCT:
        print(
            f"    warning: machine already {background:.0f}% busy before the run; figures will be noisy",
            file=sys.stderr,
            flush=True,
        )
    try:
        server = STARTERS[name](free_port(), log_path)
    except NotImplementedError as exc:
        return {"server": name, "status": "not run", "error": str(exc)}
    except Exception as exc:
        return {"server": name, "status": "error", "error": f"start failed: {exc}"}
    try:
        await wait_ready(server)
        side0 = {name: sample_proc(pid) for name, pid in server.side_pids.items()}
        res = await run_load(server.adapter, server.pids or server.proc.pid, cfg)
        side = {name: sample_proc(pid).cpu_s - side0[name].cpu_s for name, pid in server.side_pids.items()}
        if server.proc.poll() is not None and res.status == "ok":
            res.status, res.error = (
                "error",
                f"server exited with {server.proc.returncode} during the run",
            )
    except Exception as exc:
        return {
            "server": name,
            "status": "error",
            "error": str(exc),
            "log": str(log_path),
            "info": server.info,
        }
    finally:
        stop(server)
    return {
        "server": name,
        "status": res.status,
        "error": res.error,
        "log": str(log_path),
        "info": server.info,
        "derived": {**derive(res), "background_busy_pct": background,
                    **{f"{name}_cpu_us_per_msg": cpu / res.relayed * 1e6 if res.relayed else None
                       for name, cpu in side.items()}},
        "raw": asdict(res),
    }


# --------------------------------------------------------------------------- report

ROWS: list[tuple[str, str, str]] = [
    # (key in derived, label, format)
    ("server_cpu_us_per_msg", "server CPU per relayed msg (µs)", "{:.1f}"),
    ("redis_cpu_us_per_msg", "Redis CPU per relayed msg (µs; whole run, cluster only)", "{:.1f}"),
    ("msgs_per_s", "relayed msgs/s", "{:,.0f}"),
    ("rtt_p50_ms", "round trip p50 (ms)", "{:.2f}"),
    ("rtt_p99_ms", "round trip p99 (ms)", "{:.2f}"),
    ("joins_per_s", "joins/s (all sockets at once)", "{:,.0f}"),
    ("join_p50_ms", "join latency p50 (ms)", "{:.1f}"),
    ("join_p99_ms", "join latency p99 (ms)", "{:.1f}"),
    ("server_cpu_us_per_join", "server CPU per join (µs, 10 ms ticks)", "{:,.0f}"),
    ("kb_per_participant", "memory per participant (KiB RSS)", "{:.1f}"),
    ("rss_idle_mb", "server RSS idle, after warm-up (MiB)", "{:.1f}"),
    ("server_cpu_pct", "server CPU during msgs (% of a core)", "{:.0f}"),
    ("load_cpu_pct", "load generator CPU (% of a core)", "{:.0f}"),
    ("machine_busy_pct", "whole machine busy during msgs (% of all CPUs)", "{:.0f}"),
    ("background_busy_pct", "machine busy before start, other work (%)", "{:.0f}"),
    ("relayed", "relayed msgs (both directions)", "{:,.0f}"),
    ("phase_wall_s", "message phase wall time (s)", "{:.2f}"),
    ("frame_sent_bytes", "signal frame sent (bytes)", "{:.0f}"),
    ("frame_delivered_bytes", "signal frame delivered (bytes)", "{:.0f}"),
]


# Rows that vary run to run; with --repeat > 1 their cells also show min-max.
SPREAD = {
    "server_cpu_us_per_msg",
    "msgs_per_s",
    "rtt_p50_ms",
    "rtt_p99_ms",
    "joins_per_s",
    "kb_per_participant",
}


def metric_values(runs: list[dict[str, Any]], key: str) -> list[float]:
    """One metric over the runs that completed."""
    return [
        r["derived"][key]
        for r in runs
        if r.get("status") == "ok" and r.get("derived", {}).get(key) is not None
    ]


def median_derived(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per-metric median over the runs that completed (one run: itself)."""
    out: dict[str, float | None] = {}
    for key, _, _ in ROWS:
        values = metric_values(runs, key)
        out[key] = statistics.median(values) if values else None
    return out


def cell(runs: list[dict[str, Any]], key: str, fmt: str) -> str:
    """Median, plus (min–max) for noisy rows when there are several runs."""
    values = metric_values(runs, key)
    if not values:
        return "–"
    text = fmt.format(statistics.median(values))
    if key in SPREAD and len(values) > 1:
        text += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
    return text


def render_table(by_server: dict[str, list[dict[str, Any]]], cfg: LoadConfig) -> str:
    """Markdown: one column per server, one row per figure; failures in a status row."""
    names = list(by_server)
    repeats = max(len(runs) for runs in by_server.values())
    lines = [
        f"Signalling benchmark: {cfg.pairs} pairs ({2 * cfg.pairs} sockets), {cfg.round_trips} round trips "
        f"per pair, window {cfg.window}, {cfg.size}-byte signals, loopback, {os.cpu_count()} CPUs; "
        + (f"median of {repeats} runs (min–max)." if repeats > 1 else "1 run."),
        "",
        "| | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for key, label, fmt in ROWS:
        cells = [cell(by_server[n], key, fmt) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    statuses = []
    for n in names:
        runs = by_server[n]
        bad = [r for r in runs if r.get("status") != "ok"]
        if not bad:
            statuses.append("ok")
        else:
            why = str(bad[0].get("error") or "").split(":")[0][:80]
            statuses.append(
                f"{bad[0]['status']} ({len(bad)}/{len(runs)}): {why}; see JSON"
            )
    lines.append(
        "| status | " + " | ".join(s.replace("|", "/") for s in statuses) + " |"
    )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """Enough context to compare result files from different machines."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for mod in ("aiohttp", "orjson", "uvloop"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "absent"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_python": sys.executable,
        **versions,
    }


def raise_fd_limit() -> None:
    """Many sockets on both ends; children inherit the raised soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = LoadConfig()
    p = argparse.ArgumentParser(
        description="Signalling benchmark: roomserver vs PeerJS vs a bare aiohttp relay."
    )
    p.add_argument(
        "--servers",
        default=",".join(ALL_SERVERS),
        help=f"comma list of {', '.join(ALL_SERVERS)}",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=d.pairs,
        help="socket pairs connected at once (default %(default)s)",
    )
    p.add_argument(
        "--messages",
        "--round-trips",
        dest="round_trips",
        type=int,
        default=d.round_trips,
        help="round trips per pair; each is 2 relayed messages (default %(default)s)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=d.window,
        help="offers in flight per pair (default %(default)s)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=d.size,
        help="bytes per signal frame (default %(default)s)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=d.warmup_round_trips,
        help="warm-up round trips on one extra pair",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=d.phase_timeout_s,
        help="bound on the message phase, s",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per server, interleaved; the table shows medians (default %(default)s)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=20.0,
        help=f"wait up to this many s for other work to drop below {BUSY_THRESHOLD_PCT:g}%% CPU before each run",
    )
    p.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per relayed message under valgrind instead (instructions.py)",
    )
    p.add_argument(
        "--joins",
        action="store_true",
        help="with --instructions: instructions per join (and leave and close) instead",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON path (default bench/results/signalling-<utc>.json)",
    )
    args = p.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in args.servers if s not in STARTERS]
    if unknown:
        p.error(f"unknown server(s): {', '.join(unknown)}")
    if args.joins:
        p.error("--joins goes with --instructions")
    if min(args.pairs, args.round_trips, args.window, args.repeat) < 1:
        p.error("--pairs, --messages, --window and --repeat must be >= 1")
    return args


async def run_all(
    args: argparse.Namespace, cfg: LoadConfig, log_dir: Path
) -> dict[str, list[dict[str, Any]]]:
    """Servers one after another (never two at once: they would share the CPUs)."""
    by_server: dict[str, list[dict[str, Any]]] = {name: [] for name in args.servers}
    for i in range(args.repeat):
        for name in args.servers:
            if by_server[name] and by_server[name][-1]["status"] == "not run":
                continue
            print(f"[{i + 1}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
            result = await bench_one(name, cfg, log_dir, i + 1, args.wait_idle)
            by_server[name].append(result)
            print(
                f"    {result['status']}"
                + (f": {result['error']}" if result.get("error") else ""),
                file=sys.stderr,
                flush=True,
            )
    return by_server


def main(argv: list[str] | None = None) -> int:
    if "--instructions" in (sys.argv[1:] if argv is None else argv):
        import instructions  # valgrind counts instead of CPU time: see its docstring

        return instructions.main(joins="--joins" in (sys.argv[1:] if argv is None else argv))
    args = parse_args(argv)
    cfg = LoadConfig(
        pairs=args.pairs,
        round_trips=args.round_trips,
        window=args.window,
        size=args.size,
        warmup_round_trips=args.warmup,
        phase_timeout_s=args.timeout,
    )
    raise_fd_limit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS / f"signalling-{stamp}-logs"
    log_dir.mkdir()
    out = args.out or RESULTS / f"signalling-{stamp}.json"

    loop = new_loop()
    main_task = loop.create_task(run_all(args, cfg, log_dir))
    # Ctrl-C and SIGTERM (CI timeouts) cancel the run, so the finally below stops the
    # servers (they run in their own session and would outlive us). uvloop only runs
    # handlers registered on the loop, hence not signal.signal.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, main_task.cancel)
    try:
        by_server = loop.run_until_complete(main_task)
    except asyncio.CancelledError:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        for proc in list(LIVE):
            kill_group(proc)
        loop.close()

    table = render_table(by_server, cfg)
    print(table)
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "config": asdict(cfg),
                "machine": machine_info(),
                "table": table,
                "median": {n: median_derived(runs) for n, runs in by_server.items()},
                "runs": by_server,
            },
            indent=2,
        )
    )
    print(f"\nJSON: {out}\nlogs: {log_dir}", file=sys.stderr)
    return (
        0
        if all(
            r["status"] in ("ok", "not run")
            for runs in by_server.values()
            for r in runs
        )
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
