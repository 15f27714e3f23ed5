"""Slowloris and friends: connections that hold the server's file handles without finishing a request.

A real server on loopback with a 2 s idle timeout. Each attack opens its
connections at once, waits a bounded time (several idle timeouts) and counts
how many the server closed; ``/healthz`` must answer while they hang. Nothing
is judged by how fast: only by what got through.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp

from tests.attacks.verdict import Verdict
from tests.production import HEADERS, certificate, loopback_server

TOPIC = "slowloris"
IDLE = 2.0  # the server's idle_timeout_seconds and body_timeout_seconds here
N = 40  # connections per attack
BOUND = IDLE * 4 + 5  # the longest a test waits for the server to close one


async def _closed_by_server(reader: asyncio.StreamReader) -> tuple[bool, bytes]:
    """Read until the server closes (True) or the bound passes (False); what it sent."""
    got = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    try:
        while loop.time() < deadline:
            chunk = await asyncio.wait_for(reader.read(65536), max(0.01, deadline - loop.time()))
            if not chunk:
                return True, got
            got += chunk
    except (asyncio.TimeoutError, TimeoutError):
        return False, got
    except (ConnectionError, ssl.SSLError, OSError):
        return True, got
    return False, got


async def _flood(port: int, opener: Callable[[asyncio.StreamWriter], Awaitable[None]],
                 tls: bool = False) -> int:
    """Open N connections, let each do ``opener``; how many the server closed within the bound."""
    async def one() -> bool:
        if tls:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)  # TCP only: TLS never finishes
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            sender = asyncio.create_task(opener(writer))
            closed, _ = await _closed_by_server(reader)
            sender.cancel()
            return closed
        finally:
            writer.close()
    results = await asyncio.gather(*(one() for _ in range(N)), return_exceptions=True)
    return sum(1 for r in results if r is True)


async def _healthy(base: str, ssl_ctx: ssl.SSLContext | bool = True) -> bool:
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz", ssl=ssl_ctx, timeout=aiohttp.ClientTimeout(total=5)) as r:
                return r.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return False


async def _during(port: int, base: str, opener: Callable[[asyncio.StreamWriter], Awaitable[None]],
                  attack: str, tls: bool = False, ssl_ctx: ssl.SSLContext | bool = True) -> Verdict:
    flood = asyncio.create_task(_flood(port, opener, tls))
    await asyncio.sleep(IDLE / 2)  # the connections are open and hanging now
    healthy = await _healthy(base, ssl_ctx)
    closed = await flood
    return Verdict(TOPIC, f"{N} connections: {attack}", closed == N and healthy,
                   f"{closed}/{N} closed by the server; /healthz during the attack: {'200' if healthy else 'no'}")


async def _nothing(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def _half_head(writer: asyncio.StreamWriter) -> None:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    await writer.drain()
    await asyncio.sleep(3600)


async def _dribble(writer: asyncio.StreamWriter) -> None:
    """One header byte every quarter second: never idle, never done."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    while True:
        await asyncio.sleep(0.25)
        writer.write(b"X")
        await writer.drain()


async def _idle_keepalive(writer: asyncio.StreamWriter) -> None:
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(3600)


async def _half_body(writer: asyncio.StreamWriter) -> None:
    writer.write(b"POST /api/v1/rooms HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 + f"Authorization: {HEADERS['Authorization']}\r\nContent-Length: 1000\r\n\r\n".encode() + b'{"title": ')
    await writer.drain()
    await asyncio.sleep(3600)


async def _half_client_hello(writer: asyncio.StreamWriter) -> None:
    writer.write(bytes.fromhex("16030100c8010000c40303") + b"\x00" * 16)  # a ClientHello cut short
    await writer.drain()
    await asyncio.sleep(3600)


async def _slow_body_answer(port: int) -> Verdict:
    """One slow body, read to the end: the answer must be 408 in the JSON shape."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        sender = asyncio.create_task(_half_body(writer))
        closed, got = await _closed_by_server(reader)
        sender.cancel()
    finally:
        writer.close()
    head, _, body = got.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if head.count(b" ") >= 2 else "none"
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "not JSON"
    return Verdict(TOPIC, "body that never finishes (answer read)", closed and status == "408"
                   and code == "request_timeout", f"status {status}, code {code}, closed {closed}")


async def _connection_cap(port: int, base: str, cap: int) -> Verdict:
    """cap + 10 idle connections from one client: the extra ones get 503 JSON at once; after, service again."""
    opened = []
    refused = 0
    try:
        for _ in range(cap + 10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            opened.append(writer)
            try:
                first = await asyncio.wait_for(reader.read(4096), 0.3)
            except (asyncio.TimeoutError, TimeoutError):
                continue
            if first.startswith(b"HTTP/1.1 503") and b'"too_many_connections"' in first:
                refused += 1
        over_cap_healthy = await _healthy(base)
    finally:
        for writer in opened:
            writer.close()
    await asyncio.sleep(0.2)
    healthy_after = await _healthy(base)
    return Verdict(TOPIC, f"{cap + 10} connections from one client (cap {cap})",
                   refused == 10 and not over_cap_healthy and healthy_after,
                   f"{refused} refused with 503 too_many_connections; this client served while over: "
                   f"{over_cap_healthy}; after closing: {healthy_after}")


async def run() -> list[Verdict]:
    verdicts: list[Verdict] = []
    env = {"ROOMSERVER_SERVER_IDLE_TIMEOUT_SECONDS": str(IDLE), "ROOMSERVER_SERVER_BODY_TIMEOUT_SECONDS": str(IDLE),
           "ROOMSERVER_SERVER_MAX_CONNECTIONS_PER_CLIENT": "1000"}
    with tempfile.TemporaryDirectory(prefix="attack-slowloris-") as tmp:
        work = Path(tmp)
        async with loopback_server(work / "http", **env) as (srv, _):
            base = str(srv.make_url("")).rstrip("/")
            for opener, attack in ((_nothing, "connect and send nothing"),
                                   (_half_head, "half a request head, then nothing"),
                                   (_dribble, "a request head dribbled one byte at a time"),
                                   (_idle_keepalive, "one request, then idle keep-alive"),
                                   (_half_body, "a body that never finishes")):
                verdicts.append(await _during(srv.port, base, opener, attack))
            verdicts.append(await _slow_body_answer(srv.port))
        cert, key = certificate(work / "tls")
        async with loopback_server(work / "https", tls=(cert, key), **env) as (srv, _):
            base = str(srv.make_url("")).rstrip("/")
            ctx = ssl.create_default_context(cafile=str(cert))
            verdicts.append(await _during(srv.port, base, _nothing, "TLS: connect, never start the handshake",
                                          tls=True, ssl_ctx=ctx))
            verdicts.append(await _during(srv.port, base, _half_client_hello, "TLS: half a ClientHello",
                                          tls=True, ssl_ctx=ctx))
        async with loopback_server(work / "cap", ROOMSERVER_SERVER_MAX_CONNECTIONS_PER_CLIENT="8",
                                   ROOMSERVER_SERVER_IDLE_TIMEOUT_SECONDS="30") as (srv, _):
            verdicts.append(await _connection_cap(srv.port, str(srv.make_url("")).rstrip("/"), 8))
    return verdicts
