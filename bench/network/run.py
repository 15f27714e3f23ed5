"""Network benchmark: time to connected and to the first frame per network path, and the sent
bitrate before, during and after an impairment.

Needs root, ``ip``, ``nft``, ``tc`` and coturn (``tests/netlab.py`` builds the lab): one
network namespace joined to the host by a veth pair; the room server (in this process) and
coturn (TURN on 3478 UDP/TCP, TURN over TLS on 443 with a certificate made for the run)
listen on the host side of the link.

Paths (``--runs`` each, interleaved round by round). Each run: a counsellor (Python
participant, host side) is in a fresh room; an expert joins from inside the namespace (a
Python participant subprocess). t0 = the counsellor hears ``peer-joined``; the expert then
gathers candidates and offers. Measured on the counsellor's side: t0 → connection
``connected``, t0 → first decoded video frame of the expert. The namespace's nftables rules
force the path, and the path reported by the expert's ICE agent is checked:

    direct    no rules                                        (host candidates)
    turn-udp  only UDP 3478 to TURN (+ TCP to the web server)  TURN over UDP
    turn-tcp  all UDP dropped                                  TURN over TCP
    turn-tls  only TCP 443 to TURN (+ TCP to the web server)   TURN over TLS

Impairment (``--phase`` seconds each): Chromium (headless, in the namespace through
``ip netns exec``) is the citizen in a call with the counsellor; its sent video bitrate and
adaptation level are read from the page every 2 s: clean, then 300 kbit/s upload (tc tbf)
and 10 % random UDP loss each way (nftables), then clean again for two phases.

    ./run bench network --runs 10 --phase 40

Prints Markdown tables and writes bench/results/network-<time>.json. Everything stays on
this machine; every step is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from roomserver import bootstrap, config  # noqa: E402
from roomserver.app import create_app  # noqa: E402
from roomserver.peer.participant import Participant  # noqa: E402
from roomserver.services import build_services  # noqa: E402
from tests import netlab  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CHROMIUM = "/usr/bin/chromium"
STEP_TIMEOUT_S = 60
API_KEY = "rsk_bench_" + secrets.token_hex(16)
PATHS = ("direct", "turn-udp", "turn-tcp", "turn-tls")


def firewall_for(path: str, site: netlab.Site, web_port: int, turn: netlab.Turn) -> str | None:
    host = site.host_ip
    if path == "direct":
        return None
    if path == "turn-udp":
        return f"""
  chain output {{ type filter hook output priority 0; policy drop;
    oif "lo" accept; ct state established,related accept;
    ip daddr {host} tcp dport {web_port} accept; ip daddr {host} udp dport {turn.port} accept; }}
  chain input {{ type filter hook input priority 0; policy drop;
    iif "lo" accept; ct state established,related accept; }}
"""
    if path == "turn-tcp":
        return netlab.block_udp()
    if path == "turn-tls":
        return netlab.only_tcp(host, [turn.tls_port, web_port])
    raise ValueError(path)


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.lab = netlab.Lab()
        self.site = self.lab.site("bench")
        self.turn = netlab.start_coturn(tmp, self.site.host_ip, secrets.token_hex(16))
        self.runner: web.AppRunner | None = None
        self.services = None
        self.port = 0

    async def start(self) -> None:
        env = {"ROOMSERVER_SERVER_DATA_DIR": str(self.tmp / "data"), "ROOMSERVER_SERVER_PORT": "0",
               "ROOMSERVER_SERVER_LOG_LEVEL": "WARNING", "ROOMSERVER_STORE_SYNCHRONOUS": "normal",
               "ROOMSERVER_AUTH_API_KEYS": f"bench:{API_KEY}", "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false",
               "ROOMSERVER_ICE_TURN_URLS": ",".join(self.turn.urls()), "ROOMSERVER_ICE_TURN_SECRET": self.turn.secret}
        settings = config.load(ROOT / "config" / "roomserver.toml", env=env)
        bootstrap.prepare(settings, 0)
        self.services = build_services(settings)
        self.runner = web.AppRunner(create_app(self.services), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.site.host_ip, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        settings.server.public_url = self.base

    @property
    def base(self) -> str:
        return f"http://{self.site.host_ip}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.site.host_ip}:{self.port}/ws"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.services is not None:
            self.services.close()
        self.turn.stop()
        self.lab.close()

    async def invite(self, http: aiohttp.ClientSession, room: str, role: str, name: str) -> str:
        async with http.post(f"/api/v1/rooms/{room}/invites", json={"role": role, "name": name}) as r:
            body = await r.json()
            assert r.status == 201, body
            return body["token"]

    async def room(self, http: aiohttp.ClientSession) -> str:
        async with http.post("/api/v1/rooms", json={"title": "Messung", "waiting_room": False}) as r:
            body = await r.json()
            assert r.status == 201, body
            return body["id"]


# -- paths ------------------------------------------------------------------------------------


async def one_path_run(bench: Bench, http: aiohttp.ClientSession, path: str) -> dict[str, Any]:
    rules = firewall_for(path, bench.site, bench.port, bench.turn)
    if rules is None:
        bench.site.flush_firewall()
    else:
        bench.site.firewall(rules)
    room = await bench.room(http)
    counsellor = Participant(bench.ws, await bench.invite(http, room, "counsellor", "Beraterin"))
    joined: dict[str, float] = {}
    counsellor.on_message(lambda m: joined.setdefault(m["peer"]["id"], time.monotonic())
                          if m.get("type") == "peer-joined" else None)
    await counsellor.connect()
    token = await bench.invite(http, room, "expert", "Experte")
    transport = {"direct": None, "turn-udp": "udp", "turn-tcp": "tcp", "turn-tls": "tls"}[path]
    argv = [sys.executable, "-m", "roomserver.peer.participant", "--url", bench.ws, "--token", token,
            "--duration", str(STEP_TIMEOUT_S), "--report", "0.25"]
    if transport:
        argv += ["--turn-transport", transport]
    env = {**os.environ, "SSL_CERT_FILE": str(bench.turn.cert), "PYTHONPATH": str(ROOT)}
    probe = await asyncio.create_subprocess_exec(*bench.site.exec_argv(*argv), stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.DEVNULL, env=env)
    try:
        await counsellor.wait_until(lambda: bool(joined), STEP_TIMEOUT_S, "the expert joining")
        expert, t0 = next(iter(joined.items()))
        await counsellor.wait_connected(expert, STEP_TIMEOUT_S)
        t_connected = time.monotonic()
        await counsellor.wait_frames(expert, "video", 1, STEP_TIMEOUT_S)
        t_frame = time.monotonic()
        kind = await probe_path(probe)
        return {"path": path, "connected_ms": (t_connected - t0) * 1000, "first_frame_ms": (t_frame - t0) * 1000,
                "candidate_type": kind}
    finally:
        await netlab.stop_async(probe)
        await counsellor.close()


async def probe_path(probe) -> str | None:
    """The expert's local candidate type, from its JSON reports (bounded)."""
    try:
        report = await netlab.probe_report(probe, lambda r: any(p.get("candidate_type") for p in r["peers"].values()), 10)
    except AssertionError:
        return None
    return next(p["candidate_type"] for p in report["peers"].values() if p.get("candidate_type"))


# -- impairment -------------------------------------------------------------------------------


async def impairment(bench: Bench, http: aiohttp.ClientSession, phase_s: float) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    bench.site.flush_firewall()
    room = await bench.room(http)
    counsellor = Participant(bench.ws, await bench.invite(http, room, "counsellor", "Beraterin"))
    await counsellor.connect()
    token = await bench.invite(http, room, "citizen", "Bürgerin")
    wrapper = netlab.chromium_wrapper(bench.site, CHROMIUM, bench.tmp)
    args = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
            f"--unsafely-treat-insecure-origin-as-secure={bench.base}"]
    samples: list[dict[str, Any]] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(wrapper), args=args, headless=True)
        try:
            context = await browser.new_context(permissions=["camera", "microphone"], locale="de-DE")
            page = await context.new_page()
            await page.goto(f"{bench.base}/room/{room}#{token}")
            await page.wait_for_function("() => document.body.dataset.roomState === 'in-call'", timeout=30_000)
            citizen = await page.evaluate("() => window.roomserverDebug.selfId")
            await counsellor.wait_frames(citizen, "video", 10, STEP_TIMEOUT_S)
            started = time.monotonic()
            # The climb back takes longer than the fall (slower up than down, and the browser's
            # own bandwidth estimate ramps up again): two phases after the impairment.
            for name, setup in (("before", None), ("during", "impair"), ("after", "clear"), ("after, later", None)):
                if setup == "impair":
                    bench.site.rate_limit(300)
                    bench.site.firewall(netlab.random_udp_loss(10))
                elif setup == "clear":
                    bench.site.clear_rate_limit()
                    bench.site.flush_firewall()
                audio_before = counsellor.frames_received(citizen, "audio")
                end = time.monotonic() + phase_s
                while time.monotonic() < end:
                    await asyncio.sleep(2)
                    snap = await page.evaluate("() => window.roomserverDebug.quality()")
                    link = snap["links"].get(counsellor.id) or {}
                    samples.append({"phase": name, "t": round(time.monotonic() - started, 1),
                                    "sent_kbps": link.get("sentKbps"), "level": link.get("level"),
                                    "loss": link.get("sendLoss"), "rtt_ms": link.get("rttMs"),
                                    "width": link.get("frameWidth")})
                samples.append({"phase": name, "audio_frames": counsellor.frames_received(citizen, "audio") - audio_before})
        finally:
            await browser.close()
            await counsellor.close()
            bench.site.clear_rate_limit()
            bench.site.flush_firewall()
    return samples


# -- report -----------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


def tables(result: dict[str, Any]) -> str:
    out = ["| path | runs | connected: median (min–max) | first frame: median (min–max) | path seen |",
           "| --- | ---: | ---: | ---: | --- |"]
    for path in PATHS:
        runs = [r for r in result["runs"] if r["path"] == path and "connected_ms" in r]
        if not runs:
            continue
        c = summary([r["connected_ms"] for r in runs])
        f = summary([r["first_frame_ms"] for r in runs])
        seen = ", ".join(sorted({str(r["candidate_type"]) for r in runs}))
        out.append(f"| {path} | {len(runs)} | {c['median']:.0f} ms ({c['min']:.0f}–{c['max']:.0f}) | "
                   f"{f['median']:.0f} ms ({f['min']:.0f}–{f['max']:.0f}) | {seen} |")
    if result.get("impairment"):
        out += ["", "| phase | sent video kbit/s: median (min–max) | level: median (max) | audio frames received |",
                "| --- | ---: | ---: | ---: |"]
        for phase in ("before", "during", "after", "after, later"):
            rows = [s for s in result["impairment"] if s["phase"] == phase and s.get("sent_kbps") is not None]
            audio = next((s["audio_frames"] for s in result["impairment"] if s["phase"] == phase and "audio_frames" in s), 0)
            if not rows:
                continue
            kbps = [s["sent_kbps"] for s in rows]
            levels = [s["level"] or 0 for s in rows]
            out.append(f"| {phase} | {statistics.median(kbps):.0f} ({min(kbps)}–{max(kbps)}) | "
                       f"{statistics.median(levels):.0f} ({max(levels)}) | {audio} |")
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    reason = netlab.unavailable_reason()
    if reason:
        raise SystemExit(f"network benchmark: {reason}")
    with tempfile.TemporaryDirectory(prefix="roomserver-bench-network-") as folder:
        bench = Bench(Path(folder))
        try:
            await bench.start()
            result: dict[str, Any] = {"runs": [], "impairment": []}
            async with aiohttp.ClientSession(base_url=bench.base,
                                             headers={"Authorization": f"Bearer {API_KEY}"}) as http:
                paths = [p for p in PATHS if p in args.paths]
                for round_no in range(args.runs):
                    order = paths[round_no % len(paths):] + paths[:round_no % len(paths)]
                    for path in order:
                        try:
                            run = await one_path_run(bench, http, path)
                        except (TimeoutError, AssertionError) as exc:
                            run = {"path": path, "error": str(exc)[:300]}
                        result["runs"].append(run)
                        print(f"round {round_no + 1} {path}: {run}", file=sys.stderr, flush=True)
                bench.site.flush_firewall()
                if args.phase > 0:
                    result["impairment"] = await impairment(bench, http, args.phase)
        finally:
            await bench.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per path (default 10)")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--phase", type=float, default=40.0,
                        help="seconds of each impairment phase (0: skip the impairment)")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    result["meta"] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
                      "cpus": os.cpu_count(), "runs": args.runs, "phase_s": args.phase}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"network-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(tables(result))
    print(f"\nraw figures: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
