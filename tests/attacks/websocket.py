"""Abuse of the signalling WebSocket: floods, oversize and malformed frames, spoofing, role abuse."""

from __future__ import annotations

import asyncio
import json

from tests.attacks.loopback import Sock, Target, target
from tests.attacks.verdict import Verdict

TOPIC = "websocket"
BURST = 200  # docs/protocol.md: 50 messages/s sustained, bursts of 200


async def first_frame(t: Target, frame: str | bytes, codes: set[int]) -> tuple[bool, str]:
    """Send ``frame`` as a fresh socket's first message: refused with an error and closed."""
    sock = await t.socket()
    await sock.send(frame)
    reply = await sock.next(5.0) or {}
    closed = await sock.closed(5.0)
    return closed in codes, f"{reply.get('code', reply.get('type'))} close {closed}"


async def pongs_of(sock: Sock, sent: int, wait: float = 3.0) -> tuple[int, int]:
    """Read what ``sent`` pings brought back: (pongs, rate_limited errors)."""
    pongs = limited = 0
    while True:
        msg = await sock.next(wait)
        if msg is None or msg.get("type") == "timeout":
            return pongs, limited
        if msg.get("type") == "pong":
            pongs += 1
        elif msg.get("code") == "rate_limited":
            limited += 1
        if pongs + limited >= sent:
            return pongs, limited


async def run() -> list[Verdict]:
    v: list[Verdict] = []
    async with target(ROOMSERVER_SIGNALLING_JOIN_TIMEOUT_SECONDS="1") as t:
        sock = await t.socket()
        closed = await sock.closed(5.0)
        v.append(Verdict(TOPIC, "a socket that never joins", closed == 4001, f"close {closed}"))
        idle = [await t.socket() for _ in range(30)]
        codes = [await s.closed(5.0) for s in idle]
        v.append(Verdict(TOPIC, "30 sockets that never join", all(c == 4001 for c in codes),
                         f"closes {sorted(set(codes), key=str)}"))
        for attack, frame in (("not JSON", "not json {"), ("JSON array", "[1,2,3]"),
                              ("unknown type", '{"type": "hello"}'), ("signal before join", json.dumps(
                                  {"type": "signal", "to": "p_x", "data": {"candidate": None}})),
                              ("NaN in JSON", '{"type": "ping", "id": NaN}'),
                              ("binary garbage", b"\xff\xfe\x00\x01" * 64),
                              ("10 000 nested arrays", "[" * 10000 + "]" * 10000),
                              ("join with an object as token", '{"type": "join", "token": {"a": 1}}'),
                              ("join with a 100-character control-laden name",
                               json.dumps({"type": "join", "token": "a.b.c", "name": "\u202e\x00" * 50}))):
            ok, detail = await first_frame(t, frame, {4002, 4401, 1003, 1007})
            v.append(Verdict(TOPIC, f"first message: {attack}", ok, detail))
        ok, detail = await first_frame(t, "x" * (4 * 65536 + 10), {1009})
        v.append(Verdict(TOPIC, "first frame over the frame limit (256 kB)", ok, detail))

    async with target() as t:
        room = await t.room()
        counsellor, cw = await t.seated(room, "counsellor")
        citizen, zw = await t.seated(room, "citizen", "Ayşe")
        await counsellor.expect("peer-joined", 5.0)
        other_room = await t.room()
        stranger, sw = await t.seated(other_room, "counsellor")

        async def answer(sock: Sock, message: object) -> dict:
            await sock.send(message)
            return await sock.next(5.0) or {"type": "closed", "code": sock.close_code}

        r = await answer(citizen, {"type": "signal", "to": sw["self"]["id"], "data": {"candidate": None}})
        v.append(Verdict(TOPIC, "signal to a peer of another room", r.get("code") == "not_in_room",
                         f"{r.get('code')}"))
        leak = await stranger.expect("signal", 1.0)
        v.append(Verdict(TOPIC, "…and nothing reached that peer", leak is None, f"{leak or 'no signal'}"))
        r = await answer(citizen, {"type": "signal", "to": zw["self"]["id"], "data": {"candidate": None}})
        v.append(Verdict(TOPIC, "signal to oneself", r.get("code") == "not_in_room", f"{r.get('code')}"))
        await citizen.send({"type": "signal", "to": cw["self"]["id"], "from": sw["self"]["id"],
                            "data": {"candidate": None}})
        got = await counsellor.expect("signal", 5.0)
        err = await citizen.next(1.0)
        spoofed = got is not None and got.get("from") == sw["self"]["id"]
        v.append(Verdict(TOPIC, "signal with a forged 'from'", not spoofed,
                         f"delivered from {got.get('from') if got else None}, sender got {err.get('code', err.get('type'))}"))
        for action in ({"type": "remove", "peer": cw["self"]["id"]}, {"type": "end"},
                       {"type": "admit", "peer": zw["self"]["id"]}):
            r = await answer(citizen, action)
            v.append(Verdict(TOPIC, f"citizen sends moderator action {action['type']}",
                             r.get("code") in ("forbidden", "not_waiting"), f"{r.get('code')}"))
        r = await answer(citizen, {"type": "join", "token": "a.b.c"})
        v.append(Verdict(TOPIC, "a second join on a seated socket", r.get("code") == "already_joined",
                         f"{r.get('code')}"))
        r = await answer(citizen, {"type": "signal", "to": cw["self"]["id"],
                                   "data": {"description": {"type": "offer", "sdp": "v" * 40000}}})
        v.append(Verdict(TOPIC, "an SDP over 32 768 characters", r.get("code") in ("bad_message", "too_large"),
                         f"{r.get('code')}"))
        r = await answer(citizen, "x" * 70000)
        v.append(Verdict(TOPIC, "a message over the 64 kB message limit", r.get("type") == "error",
                         f"{r.get('code', r.get('type'))}"))
        r = await answer(citizen, {"type": "ping", "id": 2 ** 60})
        v.append(Verdict(TOPIC, "ping id over 2^53", r.get("code") == "bad_message", f"{r.get('code')}"))
        r = await answer(citizen, b"\xff\xfe\xfd")
        v.append(Verdict(TOPIC, "binary garbage from a seated socket", r.get("type") == "error",
                         f"{r.get('code')}"))
        ping = await answer(citizen, {"type": "ping", "id": 1})
        v.append(Verdict(TOPIC, "the seat survives all of that (ping answered)", ping.get("type") == "pong",
                         f"{ping.get('type')}"))

        # Burst after a quiet spell: the socket holds credit, waits 6 s (its reader keeps answering the
        # server's pings), then floods. At most the documented burst may come back.
        flooder, _ = await t.seated(room, "expert", "Flood")
        await flooder.send({"type": "ping", "id": 0})
        await flooder.expect("pong", 5.0)
        await asyncio.sleep(6.0)
        for n in range(1000):
            await flooder.send({"type": "ping", "id": n + 1})
        pongs, limited = await pongs_of(flooder, 1000)
        v.append(Verdict(TOPIC, "1000 messages at once after 6 s of quiet", pongs <= BURST + 10 and limited > 0,
                         f"{pongs} answered, {limited} rate_limited (burst {BURST})"))
        # A sustained flood closes the socket 4429; the room goes on.
        async def flood() -> None:
            for n in range(20000):
                if flooder.ws.closed:
                    return
                await flooder.send({"type": "ping", "id": n})
                if n % 100 == 0:
                    await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(flood(), 15.0)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            pass
        closed = await flooder.closed(10.0)
        v.append(Verdict(TOPIC, "a sustained flood (2000 messages/s)", closed == 4429, f"close {closed}"))
        await counsellor.send({"type": "ping", "id": 9})
        pong = await counsellor.expect("pong", 5.0)
        v.append(Verdict(TOPIC, "the room goes on after the flood", pong is not None, f"{pong}"))
    return v
