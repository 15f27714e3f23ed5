"""Load generator for the signalling benchmark.

The same load for every server: P pairs of WebSockets join at once (joins/s), then
each pair ping-pongs SDP-sized signal messages (A offers, B answers, W offers in
flight per pair) for a fixed number of round trips (RTT, messages/s). Server CPU and
RSS are read from /proc/<pid> at the phase boundaries.

Only the wire protocol differs between servers, so each server gets one small
adapter class; ``Adapter`` below is the whole interface.

Standalone use against a server you started yourself (run.py does all of this):

    python load.py --adapter floor --port 8765 --pid 12345
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import WSMsgType

CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"


class BenchError(Exception):
    """The server refused or answered something that makes the run meaningless."""


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcSample:
    """CPU time (all threads) and resident memory of a process at one instant."""

    t: float
    cpu_s: float
    rss_kb: int


def sample_proc(pid: int | list[int]) -> ProcSample:
    """utime+stime from /proc/<pid>/stat and VmRSS from /proc/<pid>/status (summed over several pids)."""
    if isinstance(pid, list):
        samples = [sample_proc(one) for one in pid]
        return ProcSample(samples[-1].t, sum(s.cpu_s for s in samples), sum(s.rss_kb for s in samples))
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rindex(b")") + 2 :].split()
    utime, stime = int(rest[11]), int(rest[12])  # fields 14 and 15 of proc(5)
    rss_kb = 0
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                rss_kb = int(line.split()[1])
                break
    return ProcSample(time.perf_counter(), (utime + stime) / CLK_TCK, rss_kb)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat: was the box saturated?"""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def self_cpu_s() -> float:
    """CPU seconds of this (load generator) process, to show when the client is the bottleneck."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------- SDP

# The sequence number rides in the SDP origin line (o=- <sess-id> ...), because that
# is the one place every server passes through untouched: our server validates the
# envelope and would refuse extra fields. Fixed offset, so reading it is a slice.
SDP_PREFIX = "v=0\r\no=- "
SEQ_START = len(SDP_PREFIX)
SEQ_END = SEQ_START + 19
_SDP_BODY = (
    " 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS 7f0c3d2e-5b1a-4c8e-9d6f-2a3b4c5d6e7f\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Xk4f\r\na=ice-pwd:8bH3kQ1vR7tYwZ2pL9mN4sD6\r\n"
    "a=ice-options:trickle\r\na=fingerprint:sha-256 4B:1D:9E:0A:3C:77:12:5F:AE:90:"
    "6B:21:D4:C8:0E:33:F1:5A:92:7C:B0:E6:48:1F:DD:03:6A:9B:2E:71:C5:84\r\n"
    "a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45\r\nc=IN IP4 0.0.0.0\r\n"
    "a=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\n"
    "a=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 ccm fir\r\n"
    "a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\n"
)
SDP_BODY = _SDP_BODY * 8
MIN_SDP_LEN = SEQ_END + 1


def sdp_tail(length: int) -> str:
    """The part of an SDP of ``length`` characters that follows the sequence number."""
    length = max(MIN_SDP_LEN, min(length, SEQ_END + len(SDP_BODY)))
    return SDP_BODY[: length - SEQ_END]


def fit_tail(adapter: Adapter, to: str, size: int) -> str:
    """The SDP tail that makes this adapter's offer frame ``size`` bytes on the wire.

    Each server wraps the SDP differently (and JSON escapes CRLF as 4 bytes), so the
    SDP length is fitted per adapter: every server then relays frames of one size.
    """

    def frame_len(length: int) -> int:
        return len(adapter.offer(to, f"{SDP_PREFIX}{0:019d}{sdp_tail(length)}"))

    length = max(MIN_SDP_LEN, size - len(adapter.offer(to, "")))
    while length > MIN_SDP_LEN and frame_len(length) > size:
        length -= 1
    while length < SEQ_END + len(SDP_BODY) and frame_len(length + 1) <= size:
        length += 1
    return sdp_tail(length)


# --------------------------------------------------------------------------- adapters


class Adapter(Protocol):
    """What the load needs to know about one server's wire protocol.

    A *side* is whatever ``prepare`` hands out for one socket (ids, tokens); the load
    passes it back untouched. A *seat* is the id peers address each other by.
    """

    name: str

    async def prepare(
        self, session: aiohttp.ClientSession, count: int
    ) -> list[tuple[Any, Any]]:
        """Credentials for ``count`` pairs (A side, B side), made before any timing starts."""
        ...

    def ws_url(self, side: Any) -> str:
        """Where this side's socket connects."""
        ...

    def join_frame(self, side: Any) -> str | None:
        """The first frame to send after the upgrade, or None if the URL is the join."""
        ...

    def joined(self, side: Any, msg: dict[str, Any]) -> str | None:
        """The seat id if ``msg`` completes the join, None to keep waiting; raise on refusal."""
        ...

    def offer(self, to: str, sdp: str) -> str:
        """A signal frame carrying an offer to seat ``to``."""
        ...

    def answer(self, to: str, sdp: str) -> str:
        """A signal frame carrying an answer to seat ``to``."""
        ...

    def signal_sdp(self, msg: dict[str, Any]) -> str | None:
        """The SDP of a relayed signal, None for other traffic to skip; raise on errors."""
        ...

    def leave_frame(self) -> str | None:
        """Sent before closing, so the server frees the seat now, not after a grace period."""
        ...


class PeerJSAdapter:
    """PeerJS server (npm `peer` 1.0.x): the join is the URL, the answer is OPEN.

    The server copies ``type``/``dst``/``payload`` and adds ``src``; unknown types are
    dropped silently; HEARTBEAT is never answered, so the bench sends none (run.py
    raises the server's alive_timeout instead).
    """

    name = "peerjs"

    def __init__(self, port: int) -> None:
        self.port = port

    async def prepare(
        self, session: aiohttp.ClientSession, count: int
    ) -> list[tuple[Any, Any]]:
        def side() -> dict[str, str]:
            return {"id": "p_" + secrets.token_hex(6), "token": secrets.token_hex(8)}

        return [(side(), side()) for _ in range(count)]

    def ws_url(self, side: dict[str, str]) -> str:
        return f"ws://{HOST}:{self.port}/peerjs?key=peerjs&id={side['id']}&token={side['token']}"

    def join_frame(self, side: dict[str, str]) -> str | None:
        return None

    def joined(self, side: dict[str, str], msg: dict[str, Any]) -> str | None:
        kind = msg.get("type")
        if kind == "OPEN":
            return side["id"]
        if kind in ("ERROR", "ID-TAKEN"):
            raise BenchError(f"peerjs refused the join: {msg}")
        return None

    def _frame(self, kind: str, to: str, sdp: str) -> str:
        # The payload the PeerJS browser client sends for a media connection.
        payload = {
            "sdp": {"type": kind.lower(), "sdp": sdp},
            "type": "media",
            "connectionId": "mc_bench0123456",
            "browser": "chrome",
        }
        return orjson.dumps({"type": kind, "dst": to, "payload": payload}).decode()

    def offer(self, to: str, sdp: str) -> str:
        return self._frame("OFFER", to, sdp)

    def answer(self, to: str, sdp: str) -> str:
        return self._frame("ANSWER", to, sdp)

    def signal_sdp(self, msg: dict[str, Any]) -> str | None:
        kind = msg.get("type")
        if kind == "OFFER" or kind == "ANSWER":
            return msg["payload"]["sdp"]["sdp"]
        if kind in ("ERROR", "LEAVE", "EXPIRE", "ID-TAKEN"):
            raise BenchError(f"peerjs: {msg}")
        return None

    def leave_frame(self) -> str | None:
        return None  # the PeerJS client just closes; the server drops the id on close


class FloorAdapter:
    """floor_relay.py: join by id, signals forwarded verbatim (no ``from`` added)."""

    name = "floor"

    def __init__(self, port: int) -> None:
        self.port = port

    async def prepare(
        self, session: aiohttp.ClientSession, count: int
    ) -> list[tuple[Any, Any]]:
        return [
            ("p_" + secrets.token_hex(6), "p_" + secrets.token_hex(6))
            for _ in range(count)
        ]

    def ws_url(self, side: str) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    def join_frame(self, side: str) -> str | None:
        return orjson.dumps({"type": "join", "id": side}).decode()

    def joined(self, side: str, msg: dict[str, Any]) -> str | None:
        return side if msg.get("type") == "welcome" else None

    def offer(self, to: str, sdp: str) -> str:
        return orjson.dumps(
            {
                "type": "signal",
                "to": to,
                "data": {"description": {"type": "offer", "sdp": sdp}},
            }
        ).decode()

    def answer(self, to: str, sdp: str) -> str:
        return orjson.dumps(
            {
                "type": "signal",
                "to": to,
                "data": {"description": {"type": "answer", "sdp": sdp}},
            }
        ).decode()

    def signal_sdp(self, msg: dict[str, Any]) -> str | None:
        if msg.get("type") == "signal":
            return msg["data"]["description"]["sdp"]
        return None

    def leave_frame(self) -> str | None:
        return None


class RoomserverAdapter:
    """Our server, per docs/protocol.md and the REST API (/api/v1).

    Assumes: ``POST /api/v1/rooms`` {"title", "waiting_room": false} with a Bearer API
    key answers 200/201 {"id": ...}; ``POST /api/v1/rooms/{id}/invites`` {"role":
    "expert", "name"} answers {"token": ...}; each invite is a distinct identity (two
    experts per room must not collide as ``identity_in_use``); role ``expert`` is
    admitted straight away (``welcome``, never ``waiting``). One room per pair.
    """

    name = "roomserver"

    def __init__(self, port: int, api_key: str, prepare_concurrency: int = 8) -> None:
        self.port = port
        self.api_key = api_key
        self.prepare_concurrency = prepare_concurrency

    async def _post(
        self, session: aiohttp.ClientSession, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        url = f"http://{HOST}:{self.port}/api/v1{path}"
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with session.post(url, json=body, headers=headers) as resp:
            text = await resp.text()
            if resp.status not in (200, 201):
                raise BenchError(
                    f"roomserver: POST {path} -> {resp.status}: {text[:300]}"
                )
            return orjson.loads(text)

    async def _pair(self, session: aiohttp.ClientSession, i: int) -> tuple[Any, Any]:
        room = await self._post(
            session, "/rooms", {"title": f"Bench {i}", "waiting_room": False}
        )
        invites = f"/rooms/{room['id']}/invites"
        a = await self._post(session, invites, {"role": "expert", "name": "Bench A"})
        b = await self._post(session, invites, {"role": "expert", "name": "Bench B"})
        return a["token"], b["token"]

    async def prepare(
        self, session: aiohttp.ClientSession, count: int
    ) -> list[tuple[Any, Any]]:
        gate = asyncio.Semaphore(self.prepare_concurrency)

        async def one(i: int) -> tuple[Any, Any]:
            async with gate:
                return await self._pair(session, i)

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    def ws_url(self, side: str) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    def join_frame(self, side: str) -> str | None:
        return orjson.dumps({"type": "join", "token": side}).decode()

    def joined(self, side: str, msg: dict[str, Any]) -> str | None:
        kind = msg.get("type")
        if kind == "welcome":
            return msg["self"]["id"]
        if kind in ("waiting", "error", "denied", "ended"):
            raise BenchError(f"roomserver refused the join: {msg}")
        return None  # lobby, peer-joined, peer-state, ...

    def offer(self, to: str, sdp: str) -> str:
        return orjson.dumps(
            {
                "type": "signal",
                "to": to,
                "data": {"description": {"type": "offer", "sdp": sdp}},
            }
        ).decode()

    def answer(self, to: str, sdp: str) -> str:
        return orjson.dumps(
            {
                "type": "signal",
                "to": to,
                "data": {"description": {"type": "answer", "sdp": sdp}},
            }
        ).decode()

    def signal_sdp(self, msg: dict[str, Any]) -> str | None:
        kind = msg.get("type")
        if kind == "signal":
            return msg["data"]["description"]["sdp"]
        if kind in ("error", "removed", "ended"):
            # rate_limited here means the bench config did not lift signalling.rate_*.
            raise BenchError(f"roomserver: {msg}")
        return None

    def leave_frame(self) -> str | None:
        # Without it a closed socket keeps its seat for the resume grace (30 s).
        return '{"type":"leave"}'


class RoomserverClusterAdapter(RoomserverAdapter):
    """Our server as a cluster: each pair's two sockets on two different nodes, so every signal crosses
    Redis (node A's gateway relays to node B's socket). Rooms and invites are made through node 0."""

    name = "roomserver-2n"

    def __init__(self, ports: list[int], api_key: str, prepare_concurrency: int = 8) -> None:
        super().__init__(ports[0], api_key, prepare_concurrency)
        self.ports = ports
        self.where: dict[str, int] = {}

    async def _pair(self, session: aiohttp.ClientSession, i: int) -> tuple[Any, Any]:
        a, b = await super()._pair(session, i)
        self.where[a] = self.ports[0]
        self.where[b] = self.ports[1 % len(self.ports)]
        return a, b

    def ws_url(self, side: str) -> str:
        return f"ws://{HOST}:{self.where.get(side, self.port)}/ws"


# --------------------------------------------------------------------------- load


@dataclass
class LoadConfig:
    """One run's load; the same for every server."""

    pairs: int = 50
    round_trips: int = 2000
    window: int = 1
    size: int = 600  # target bytes of a client->server signal frame
    warmup_round_trips: int = 1000
    settle_s: float = 0.5
    prepare_timeout_s: float = 120.0
    join_timeout_s: float = 60.0
    phase_timeout_s: float = 120.0


@dataclass
class LoadResult:
    """Raw figures of one run; run.py derives the table from these."""

    server: str
    status: str = "ok"  # ok | timeout | error
    error: str | None = None
    sockets: int = 0
    join_wall_s: float = 0.0
    join_latency_ms: dict[str, float] = field(default_factory=dict)
    join_server_cpu_s: float = 0.0
    rss_idle_kb: int = 0
    rss_connected_kb: int = 0
    rss_after_kb: int = 0
    relayed: int = 0
    round_trips: int = 0
    phase_wall_s: float = 0.0
    phase_server_cpu_s: float = 0.0
    phase_load_cpu_s: float = 0.0
    phase_machine_busy_pct: float = 0.0  # of all CPUs together
    rtt_ms: dict[str, float] = field(default_factory=dict)
    frame_sent_bytes: int = 0
    frame_delivered_bytes: int = 0


@dataclass
class Conn:
    """A joined socket."""

    ws: aiohttp.ClientWebSocketResponse
    seat: str
    join_s: float
    leave: str | None = None


class Counters:
    """Shared tallies; plain attributes because every message touches them."""

    __slots__ = ("relayed", "round_trips", "delivered_bytes")

    def __init__(self) -> None:
        self.relayed = 0
        self.round_trips = 0
        self.delivered_bytes = 0


def percentiles(
    values: list[float], points: tuple[float, ...] = (50, 90, 99, 99.9)
) -> dict[str, float]:
    """Nearest-rank percentiles plus max; empty dict for no data."""
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)
    out = {
        f"p{p:g}": ordered[min(n - 1, max(0, int(round(p / 100 * n + 0.5)) - 1))]
        for p in points
    }
    out["max"] = ordered[-1]
    out["n"] = n
    return out


def _fail_on(
    msg: aiohttp.WSMessage, ws: aiohttp.ClientWebSocketResponse, what: str
) -> None:
    """Any non-text frame mid-run means the server dropped us."""
    if msg.type in (
        WSMsgType.CLOSE,
        WSMsgType.CLOSING,
        WSMsgType.CLOSED,
        WSMsgType.ERROR,
    ):
        raise BenchError(
            f"socket closed during {what}: code={ws.close_code} {msg.extra or ''} {ws.exception() or ''}"
        )


async def connect(session: aiohttp.ClientSession, adapter: Adapter, side: Any) -> Conn:
    """Open one socket and complete the protocol handshake; the latency is the join time."""
    t0 = time.perf_counter()
    ws = await session.ws_connect(
        adapter.ws_url(side),
        autoping=True,
        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
        max_msg_size=1 << 20,
    )
    try:
        frame = adapter.join_frame(side)
        if frame is not None:
            await ws.send_str(frame)
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                seat = adapter.joined(side, orjson.loads(msg.data))
                if seat is not None:
                    elapsed = time.perf_counter() - t0
                    return Conn(ws, seat, elapsed, adapter.leave_frame())
            else:
                _fail_on(msg, ws, "join")
    except BaseException:
        await ws.close()
        raise


async def initiator(
    adapter: Adapter,
    a: Conn,
    b_seat: str,
    n: int,
    window: int,
    tail: str,
    c: Counters,
    rtts: list[float],
) -> None:
    """Side A: keep ``window`` offers in flight until ``n`` answers came back."""
    ws, offer, sdp_of, loads = a.ws, adapter.offer, adapter.signal_sdp, orjson.loads
    clock = time.perf_counter_ns
    sent: dict[int, int] = {}
    nxt = 0
    for _ in range(min(window, n)):
        sent[nxt] = clock()
        await ws.send_str(offer(b_seat, f"{SDP_PREFIX}{nxt:019d}{tail}"))
        nxt += 1
    done = 0
    while done < n:
        msg = await ws.receive()
        if msg.type is not WSMsgType.TEXT:
            _fail_on(msg, ws, "ping-pong")
            continue
        sdp = sdp_of(loads(msg.data))
        if sdp is None:
            continue
        rtts.append((clock() - sent.pop(int(sdp[SEQ_START:SEQ_END]))) / 1e6)
        done += 1
        c.relayed += 1
        c.round_trips += 1
        if nxt < n:
            sent[nxt] = clock()
            await ws.send_str(offer(b_seat, f"{SDP_PREFIX}{nxt:019d}{tail}"))
            nxt += 1


async def responder(
    adapter: Adapter, b: Conn, a_seat: str, n: int, c: Counters
) -> None:
    """Side B: answer each offer with the same SDP, ``n`` times."""
    ws, answer, sdp_of, loads = b.ws, adapter.answer, adapter.signal_sdp, orjson.loads
    got = 0
    while got < n:
        msg = await ws.receive()
        if msg.type is not WSMsgType.TEXT:
            _fail_on(msg, ws, "ping-pong")
            continue
        sdp = sdp_of(loads(msg.data))
        if sdp is None:
            continue
        if not c.delivered_bytes:
            c.delivered_bytes = len(msg.data.encode())
        got += 1
        c.relayed += 1
        await ws.send_str(answer(a_seat, sdp))


async def exchange(
    adapter: Adapter,
    pairs: list[tuple[Conn, Conn]],
    cfg: LoadConfig,
    c: Counters,
    rtts: list[float],
    tail: str,
) -> None:
    """All pairs ping-pong at once; the first failure cancels the rest."""
    async with asyncio.TaskGroup() as tg:
        for a, b in pairs:
            tg.create_task(
                initiator(
                    adapter, a, b.seat, cfg.round_trips, cfg.window, tail, c, rtts
                )
            )
            tg.create_task(responder(adapter, b, a.seat, cfg.round_trips, c))


def _first_error(exc: BaseException) -> BaseException:
    """The first leaf of an exception group (TaskGroup wraps everything)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def close_one(conn: Conn) -> None:
    """Leave (where the protocol has it), then close."""
    if conn.leave is not None and not conn.ws.closed:
        try:
            await conn.ws.send_str(conn.leave)
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            pass
    await conn.ws.close()


async def close_all(conns: list[Conn]) -> None:
    """Close every socket, bounded in time (a stuck close must not hang the run)."""
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(*(close_one(c) for c in conns), return_exceptions=True)
    except TimeoutError:
        pass


async def join_pairs(
    session: aiohttp.ClientSession, adapter: Adapter, specs: list[tuple[Any, Any]]
) -> list[tuple[Conn, Conn]]:
    """Join every socket at once; on any failure close the ones that made it."""
    tasks = [
        asyncio.ensure_future(connect(session, adapter, side))
        for spec in specs
        for side in spec
    ]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        await close_all([c for c in done if isinstance(c, Conn)])
        raise
    conns = [t.result() for t in tasks]
    return [(conns[i], conns[i + 1]) for i in range(0, len(conns), 2)]


async def warm_up(
    session: aiohttp.ClientSession,
    adapter: Adapter,
    spec: tuple[Any, Any],
    cfg: LoadConfig,
) -> None:
    """One pair's worth of traffic first, so lazy imports and JIT are not measured."""
    if cfg.warmup_round_trips <= 0:
        return
    pairs = await join_pairs(session, adapter, [spec])
    try:
        tail = fit_tail(adapter, pairs[0][1].seat, cfg.size)
        warm = LoadConfig(
            **{**asdict(cfg), "round_trips": cfg.warmup_round_trips, "window": 1}
        )
        async with asyncio.timeout(cfg.phase_timeout_s):
            await exchange(adapter, pairs, warm, Counters(), [], tail)
    finally:
        await close_all([c for p in pairs for c in p])


async def run_load(adapter: Adapter, server_pid: int | list[int], cfg: LoadConfig) -> LoadResult:
    """Warm up, join all pairs (joins/s, memory), ping-pong (RTT, msgs/s, CPU); never raises."""
    res = LoadResult(server=adapter.name)
    connector = aiohttp.TCPConnector(limit=0)
    # API calls share pooled keep-alive connections; every WebSocket opens a connection of its own
    # (a session that pools nothing), as browsers do: reusing the connection of an API call would
    # keep that call's answer alive on the server for the socket's life and skew the memory figure.
    async with aiohttp.ClientSession(connector=connector) as session, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as sockets:
        pairs: list[tuple[Conn, Conn]] = []
        phase = "prepare"
        try:
            async with asyncio.timeout(cfg.prepare_timeout_s):
                specs = await adapter.prepare(session, cfg.pairs + 1)
            phase = "warm-up"
            await warm_up(sockets, adapter, specs[-1], cfg)
            gc.collect()
            await asyncio.sleep(cfg.settle_s)

            phase = "join"
            s0 = sample_proc(server_pid)
            t0 = time.perf_counter()
            async with asyncio.timeout(cfg.join_timeout_s):
                pairs = await join_pairs(sockets, adapter, specs[:-1])
            t1 = time.perf_counter()
            s1 = sample_proc(server_pid)
            conns = [c for p in pairs for c in p]
            res.sockets = len(conns)
            res.join_wall_s = t1 - t0
            res.join_latency_ms = percentiles([c.join_s * 1e3 for c in conns])
            res.join_server_cpu_s = s1.cpu_s - s0.cpu_s
            res.rss_idle_kb = s0.rss_kb

            await asyncio.sleep(cfg.settle_s)
            gc.collect()
            gc.freeze()  # keep the collector off the long-lived sockets during the phase
            res.rss_connected_kb = sample_proc(server_pid).rss_kb

            phase = "messages"
            tail = fit_tail(adapter, pairs[0][1].seat, cfg.size)
            res.frame_sent_bytes = len(
                adapter.offer(pairs[0][1].seat, f"{SDP_PREFIX}{0:019d}{tail}")
            )
            c = Counters()
            rtts: list[float] = []
            load0 = self_cpu_s()
            busy0, total0 = machine_ticks()
            s2 = sample_proc(server_pid)
            try:
                async with asyncio.timeout(cfg.phase_timeout_s):
                    await exchange(adapter, pairs, cfg, c, rtts, tail)
            except TimeoutError:
                res.status = "timeout"
                res.error = f"message phase hit the {cfg.phase_timeout_s:g} s bound"
            except BaseException as exc:  # an ExceptionGroup from the TaskGroup
                first = _first_error(exc)
                if isinstance(
                    first, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)
                ):
                    raise
                res.status = "error"
                res.error = f"messages: {type(first).__name__}: {first}"
            s3 = sample_proc(server_pid)
            res.phase_load_cpu_s = self_cpu_s() - load0
            busy1, total1 = machine_ticks()
            res.phase_machine_busy_pct = 100 * (busy1 - busy0) / max(1, total1 - total0)
            res.phase_wall_s = s3.t - s2.t
            res.phase_server_cpu_s = s3.cpu_s - s2.cpu_s
            res.rss_after_kb = s3.rss_kb
            res.relayed = c.relayed
            res.round_trips = c.round_trips
            res.frame_delivered_bytes = c.delivered_bytes
            res.rtt_ms = percentiles(rtts)
        except Exception as exc:
            first = _first_error(exc)
            res.status = "error"
            what = (
                f"{type(first).__name__}: {first}"
                if str(first)
                else type(first).__name__
            )
            res.error = f"{phase}: {what}"
        finally:
            gc.unfreeze()
            await close_all([c for p in pairs for c in p])
    return res


# --------------------------------------------------------------------------- CLI


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: the load shares two cores with the server, so be cheap."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def make_adapter(name: str, port: int, api_key: str | None = None) -> Adapter:
    """The adapter for a server name."""
    if name == "peerjs":
        return PeerJSAdapter(port)
    if name == "floor":
        return FloorAdapter(port)
    if name == "roomserver":
        if not api_key:
            raise SystemExit("roomserver needs --api-key")
        return RoomserverAdapter(port, api_key)
    raise SystemExit(f"unknown adapter {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Run the signalling load against a server that is already up."
    )
    parser.add_argument(
        "--adapter", required=True, choices=["peerjs", "floor", "roomserver"]
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--pid", type=int, required=True, help="server process to sample in /proc"
    )
    parser.add_argument("--api-key", default=os.environ.get("ROOMSERVER_BENCH_API_KEY"))
    parser.add_argument("--pairs", type=int, default=LoadConfig.pairs)
    parser.add_argument(
        "--messages",
        "--round-trips",
        dest="round_trips",
        type=int,
        default=LoadConfig.round_trips,
    )
    parser.add_argument("--window", type=int, default=LoadConfig.window)
    parser.add_argument("--size", type=int, default=LoadConfig.size)
    args = parser.parse_args()
    cfg = LoadConfig(
        pairs=args.pairs,
        round_trips=args.round_trips,
        window=args.window,
        size=args.size,
    )
    adapter = make_adapter(args.adapter, args.port, args.api_key)
    loop = new_loop()
    try:
        res = loop.run_until_complete(run_load(adapter, args.pid, cfg))
    finally:
        loop.close()
    print(json.dumps(asdict(res), indent=2))


if __name__ == "__main__":
    main()
