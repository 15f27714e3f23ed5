"""Instructions per relayed message, counted by valgrind: a steady figure beside the CPU time.

CPU time per message on a shared 2-core VM moves by a factor of two between runs
of the same code (other tenants, loopback softirq time landing on whichever
process runs), which hides changes of 10-20 %. Instructions do not move: each
Python server runs under ``valgrind --tool=callgrind`` twice, with the same
pairs and a short and a long message phase, and the difference of the two
totals divided by the difference in relayed messages is what one more message
costs, start-up, joins and warm-up cancelling out. User space only (the kernel's
share is the same socket work for every server), and Python servers only: a
JIT-compiling node under valgrind says little about node at full speed.

    ./run bench signalling --instructions          # needs valgrind (apt-get install valgrind)

``--instructions --joins`` counts a socket's whole life without messages instead: the
server runs under callgrind with counting off; after start-up, preparing the rooms and
invites and a warm-up pair, counting is switched on (``callgrind_control -i on``) for
``JOIN_PAIRS`` pairs joining at once, leaving and closing, and off again; the total
divided by the sockets is what one join costs, start-up and the API calls left out.

Slow (each run is ~50x slower than native); loopback only, bounded like run.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

import run as bench
from load import LoadConfig, close_all, join_pairs, run_load, warm_up

SERVERS = ("roomserver", "floor")
PAIRS = 10
SHORT, LONG = 100, 600  # round trips per pair in the two runs
READY_TIMEOUT_S = 300
JOIN_PAIRS = 50  # pairs joining at once in --joins: 100 sockets
STOP_TIMEOUT_S = 180


@dataclass
class Count:
    """One run under callgrind: how many messages it relayed and what it cost in all."""

    server: str
    round_trips: int
    relayed: int
    instructions: int


def _total(out_file: Path) -> int:
    """The ``totals:`` (else ``summary:``) line of a callgrind output file.

    With counting switched on and off (``--joins``), ``summary:`` says 0 and only ``totals:`` counts.
    """
    text = out_file.read_text(errors="replace")
    found = re.search(r"^totals:\s*(\d+)", text, re.MULTILINE) or \
        re.search(r"^summary:\s*(\d+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no instruction total in {out_file}")
    return int(found.group(1))


def _stop_gracefully(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait: valgrind writes its counts only when the server exits by itself."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            bench.kill_group(proc)
    if proc in bench.LIVE:
        bench.LIVE.remove(proc)


@contextlib.asynccontextmanager
async def _under_callgrind(name: str, tag: str, work: Path, *options: str) -> AsyncIterator[tuple[Any, Path]]:
    """``name`` started under callgrind and ready; stopped on the way out, after which its count file is complete."""
    out_file = work / f"{name}-{tag}.callgrind"
    bench.COMMAND_PREFIX[:] = ["valgrind", "--tool=callgrind", *options, f"--callgrind-out-file={out_file}"]
    server = bench.STARTERS[name](bench.free_port(), work / f"{name}-{tag}.log")
    try:
        await bench.wait_ready(server, READY_TIMEOUT_S)
        yield server, out_file
    finally:
        _stop_gracefully(server.proc)
        server.cleanup()


async def count_one(name: str, round_trips: int, work: Path) -> Count:
    """Start ``name`` under callgrind, run the load with ``round_trips`` per pair, stop it, read the total."""
    async with _under_callgrind(name, str(round_trips), work) as (server, out_file):
        cfg = LoadConfig(pairs=PAIRS, round_trips=round_trips, phase_timeout_s=600, join_timeout_s=300,
                         prepare_timeout_s=300)
        res = await run_load(server.adapter, server.proc.pid, cfg)
        if res.status != "ok":
            raise RuntimeError(f"{name}: {res.error}")
    return Count(name, round_trips, res.relayed, _total(out_file))


async def count_all() -> list[tuple[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    try:
        per_message = []
        for name in SERVERS:
            print(f"{name} under callgrind ...", file=sys.stderr, flush=True)
            short, long = await count_one(name, SHORT, work), await count_one(name, LONG, work)
            per_message.append((name, (long.instructions - short.instructions) / (long.relayed - short.relayed)))
        return per_message
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _counting(pid: int, on: bool) -> None:
    """Switch callgrind's counting in a running server (it answers at its next wake-up)."""
    proc = await asyncio.create_subprocess_exec("callgrind_control", "-i", "on" if on else "off", str(pid),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    async with asyncio.timeout(120):
        _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind_control failed: {err.decode(errors='replace').strip()}")


async def count_joins_of(name: str, work: Path) -> float:
    """Instructions per socket that joins, leaves and closes, counted only around that."""
    async with _under_callgrind(name, "joins", work, "--instr-atstart=no") as (server, out_file):
        cfg = LoadConfig(pairs=JOIN_PAIRS, round_trips=0, warmup_round_trips=20, phase_timeout_s=600,
                         join_timeout_s=300, prepare_timeout_s=300)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as api, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as sockets:
            specs = await server.adapter.prepare(api, JOIN_PAIRS + 1)
            await warm_up(sockets, server.adapter, specs[-1], cfg)
            await asyncio.sleep(1)
            await _counting(server.proc.pid, True)
            pairs = await join_pairs(sockets, server.adapter, specs[:-1])
            await close_all([c for p in pairs for c in p])
            await asyncio.sleep(2)  # the server hears the last closes
            await _counting(server.proc.pid, False)
    return _total(out_file) / (2 * JOIN_PAIRS)


async def count_joins() -> list[tuple[str, float]]:
    # Pings would be counted in proportion to the (valgrind-slowed) wall time, not to the joins.
    os.environ["ROOMSERVER_SIGNALLING_HEARTBEAT_SECONDS"] = "120"
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    try:
        per_join = []
        for name in SERVERS:
            print(f"{name} under callgrind (joins) ...", file=sys.stderr, flush=True)
            per_join.append((name, await count_joins_of(name, work)))
        return per_join
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(joins: bool = False) -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    loop = bench.new_loop()
    try:
        figures = loop.run_until_complete(count_joins() if joins else count_all())
    finally:
        for proc in list(bench.LIVE):
            bench.kill_group(proc)
        loop.close()
    floor = dict(figures)["floor"]
    if joins:
        print(f"instructions per socket: join, leave and close, no messages ({2 * JOIN_PAIRS} sockets at once):\n")
        print("| server | instructions per join | × floor |\n| --- | ---: | ---: |")
    else:
        print(f"instructions per relayed message ({PAIRS} pairs, {LONG} - {SHORT} round trips each):\n")
        print("| server | instructions per relayed msg | × floor |\n| --- | ---: | ---: |")
    for name, value in figures:
        print(f"| {name} | {value:,.0f} | {value / floor:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
