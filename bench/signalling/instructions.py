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

Slow (each run is ~50x slower than native); loopback only, bounded like run.py.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import run as bench
from load import LoadConfig, run_load

SERVERS = ("roomserver", "floor")
PAIRS = 10
SHORT, LONG = 100, 600  # round trips per pair in the two runs
READY_TIMEOUT_S = 300
STOP_TIMEOUT_S = 180


@dataclass
class Count:
    """One run under callgrind: how many messages it relayed and what it cost in all."""

    server: str
    round_trips: int
    relayed: int
    instructions: int


def _total(out_file: Path) -> int:
    """The ``totals:`` (or ``summary:``) line of a callgrind output file."""
    text = out_file.read_text(errors="replace")
    found = re.search(r"^(?:totals|summary):\s*(\d+)", text, re.MULTILINE)
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


async def count_one(name: str, round_trips: int, work: Path) -> Count:
    """Start ``name`` under callgrind, run the load with ``round_trips`` per pair, stop it, read the total."""
    out_file = work / f"{name}-{round_trips}.callgrind"
    bench.COMMAND_PREFIX[:] = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
    server = bench.STARTERS[name](bench.free_port(), work / f"{name}-{round_trips}.log")
    try:
        await bench.wait_ready(server, READY_TIMEOUT_S)
        cfg = LoadConfig(pairs=PAIRS, round_trips=round_trips, phase_timeout_s=600, join_timeout_s=300,
                         prepare_timeout_s=300)
        res = await run_load(server.adapter, server.proc.pid, cfg)
        if res.status != "ok":
            raise RuntimeError(f"{name}: {res.error}")
    finally:
        _stop_gracefully(server.proc)
        server.cleanup()
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


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    loop = bench.new_loop()
    try:
        per_message = loop.run_until_complete(count_all())
    finally:
        for proc in list(bench.LIVE):
            bench.kill_group(proc)
        loop.close()
    floor = dict(per_message)["floor"]
    print(f"instructions per relayed message ({PAIRS} pairs, {LONG} - {SHORT} round trips each):\n")
    print("| server | instructions per relayed msg | × floor |\n| --- | ---: | ---: |")
    for name, value in per_message:
        print(f"| {name} | {value:,.0f} | {value / floor:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
