"""Header attacks: forged X-Forwarded-*, and requests broken below the application.

Two real servers on loopback: one with no trusted proxy (every forwarded header
is a forgery), one that trusts 127.0.0.1 as its proxy (a client's own
X-Forwarded-For must not count). ``/metrics`` is open to loopback peers there,
so a forgery that worked would show. Then raw bytes aiohttp's parser refuses:
every answer must be the documented JSON error shape with ``Server: roomserver``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import aiohttp

from tests.attacks.verdict import Verdict
from tests.production import loopback_server

TOPIC = "headers"
METRICS_TOKEN = "metrics-token-" + "m" * 24


async def _get(base: str, path: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}{path}", headers=headers) as r:
            await r.read()
            return r


async def _forwarded(base_plain: str, base_proxied: str) -> list[Verdict]:
    verdicts = []
    # A same-host proxy that is not configured as trusted: its requests come from 127.0.0.1 like the
    # monitoring's, but carry X-Forwarded-For; they must not open /metrics.
    r = await _get(base_plain, "/metrics", {"X-Forwarded-For": "203.0.113.7"})
    verdicts.append(Verdict(TOPIC, "/metrics through an untrusted same-host proxy (X-Forwarded-For set)",
                            r.status == 403, f"status {r.status}"))
    r = await _get(base_plain, "/metrics", {"X-Forwarded-For": "127.0.0.1"})
    verdicts.append(Verdict(TOPIC, "/metrics with a forged X-Forwarded-For: 127.0.0.1 (no trusted proxy)",
                            r.status == 403, f"status {r.status}"))
    r = await _get(base_plain, "/healthz", {"X-Forwarded-Proto": "https"})
    verdicts.append(Verdict(TOPIC, "forged X-Forwarded-Proto: https from an untrusted peer (fake HTTPS)",
                            "Strict-Transport-Security" not in r.headers,
                            f"HSTS sent: {'Strict-Transport-Security' in r.headers}"))
    # Behind the trusted proxy (the test client plays it): the client's own header came first, the proxy
    # appended the real address; the right-most untrusted hop is the client.
    r = await _get(base_proxied, "/metrics", {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"})
    verdicts.append(Verdict(TOPIC, "/metrics via the trusted proxy with a client-forged 127.0.0.1 hop",
                            r.status == 403, f"status {r.status}"))
    r = await _get(base_proxied, "/metrics", {"X-Forwarded-For": "203.0.113.7"})
    verdicts.append(Verdict(TOPIC, "/metrics via the trusted proxy from an outside client",
                            r.status == 403, f"status {r.status}"))
    r = await _get(base_proxied, "/metrics", {"X-Forwarded-For": "not-an-address, 203.0.113.7"})
    verdicts.append(Verdict(TOPIC, "/metrics via the trusted proxy with a garbage hop before the client",
                            r.status == 403, f"status {r.status}"))
    r = await _get(base_proxied, "/metrics", {"X-Forwarded-For": "127.0.0.1, not-an-address"})
    verdicts.append(Verdict(TOPIC, "/metrics via the trusted proxy with garbage as the last hop (proxy as client)",
                            r.status == 403, f"status {r.status}"))
    r = await _get(base_proxied, "/metrics", {"X-Forwarded-Proto": "https"})
    verdicts.append(Verdict(TOPIC, "/metrics via the trusted proxy naming no client at all",
                            r.status == 403, f"status {r.status}"))
    r = await _get(base_proxied, "/metrics", {"X-Forwarded-For": "203.0.113.7",
                                              "Authorization": f"Bearer {METRICS_TOKEN}"})
    if r.status != 200:  # the control: the token must still open it, else the 403s above prove nothing
        raise AssertionError(f"/metrics with the token via the trusted proxy answered {r.status}")
    r = await _get(base_proxied, "/signin", {"X-Forwarded-For": "203.0.113.7",
                                             "X-Forwarded-Host": "evil.example/<x> @y"})
    verdicts.append(Verdict(TOPIC, "X-Forwarded-Host with junk via the trusted proxy", r.status == 200,
                            f"status {r.status}"))
    return verdicts


# Requests aiohttp's parser refuses before any handler runs.
BROKEN = [
    ("request line that is not HTTP", b"HELLO\r\n\r\n"),
    ("TLS ClientHello to the plain HTTP port", bytes.fromhex("160301020001000200030312") + b"\x00" * 32 + b"\r\n\r\n"),
    ("unknown HTTP version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("method with illegal characters", b"G(E)T / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("header name with a space", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"),
    ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("bare LF line endings with obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
    ("header line of 64 KiB", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"),
    ("request target of 64 KiB", b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("Content-Length and Transfer-Encoding together (smuggling)",
     b"POST /api/v1/rooms HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two different Content-Length headers",
     b"POST /api/v1/rooms HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"),
    ("negative Content-Length", b"POST /api/v1/rooms HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
    ("Transfer-Encoding other than chunked",
     b"POST /api/v1/rooms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, identity\r\n\r\n"),
    ("broken chunk size", b"POST /api/v1/rooms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("a thousand headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(1000))
     + b"\r\n"),
    ("space before the header colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
]


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        got = b""
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                return got
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    return got
    except (ConnectionError, asyncio.TimeoutError, TimeoutError):
        return got
    finally:
        writer.close()


def _shape(answer: bytes) -> tuple[bool, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")[1] if lines and lines[0].count(" ") >= 1 else "none"
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    try:
        error = json.loads(body)["error"]
        shaped = isinstance(error["code"], str) and isinstance(error["message"], str)
        code = error["code"]
    except (ValueError, KeyError, TypeError):
        shaped, code = False, "not JSON"
    server = headers.get("server", "none")
    ok = status.startswith("4") and shaped and server == "roomserver"
    return ok, f"status {status}, code {code}, Server: {server}"


async def _broken(port: int) -> list[Verdict]:
    verdicts = []
    for attack, data in BROKEN:
        ok, detail = _shape(await _raw(port, data))
        verdicts.append(Verdict(TOPIC, f"malformed request: {attack} (answer in the JSON shape, no versions)",
                                ok, detail))
    return verdicts


async def run() -> list[Verdict]:
    with tempfile.TemporaryDirectory(prefix="attack-headers-") as tmp:
        work = Path(tmp)
        async with loopback_server(work / "plain", ROOMSERVER_METRICS_TOKEN=METRICS_TOKEN) as (plain, _), \
                loopback_server(work / "proxied", ROOMSERVER_SERVER_TRUSTED_PROXIES="127.0.0.1",
                                ROOMSERVER_METRICS_TOKEN=METRICS_TOKEN) as (proxied, _):
            control = await _get(str(plain.make_url("")).rstrip("/"), "/metrics", {})
            if control.status != 200:  # loopback without forwarding opens /metrics: the attacks below matter
                raise AssertionError(f"/metrics from loopback answered {control.status}")
            verdicts = await _forwarded(str(plain.make_url("")).rstrip("/"), str(proxied.make_url("")).rstrip("/"))
            verdicts += await _broken(plain.port)
    return verdicts
