"""Connections that cannot hold the server: slowloris, the per-client cap, forwarded headers, broken requests.

The attack modules (``tests/attacks/slowloris.py``, ``headers.py``) run against
real servers on loopback; every verdict must say blocked. The rest pins the
rules underneath: what counts as one client, who is exempt, whose
X-Forwarded-For is believed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import tempfile
from pathlib import Path

import aiohttp

from roomserver.connections import ConnectionGuard, Proxies, client_key, parse_address
from tests.attacks import headers as header_attacks
from tests.attacks import slowloris
from tests.production import ServerProcess, certificate, client_context, loopback_server


async def test_every_slowloris_attack_is_blocked() -> None:
    verdicts = await slowloris.run()
    assert len(verdicts) >= 9
    breached = [v for v in verdicts if not v.blocked]
    assert not breached, breached


async def test_every_header_attack_is_blocked() -> None:
    verdicts = await header_attacks.run()
    assert len(verdicts) >= 20
    breached = [v for v in verdicts if not v.blocked]
    assert not breached, breached


def test_an_ipv6_64_is_one_client_and_trusted_proxies_are_exempt() -> None:
    a, b = parse_address("2001:db8:1:2::10"), parse_address("[2001:db8:1:2:ffff::1]:443")
    other = parse_address("2001:db8:1:3::10")
    assert client_key(a) == client_key(b) == "2001:db8:1:2::/64" != client_key(other)
    assert parse_address("::ffff:192.0.2.1") == ipaddress.ip_address("192.0.2.1")
    guard = ConnectionGuard(15, 2, Proxies(["10.0.0.5", "2001:db8:ffff::/48"]))
    assert guard.admit(a) and guard.admit(b)
    assert guard.admit(other)
    assert guard.admit(a) is None and guard.refused == 1  # the third from the same /64
    for _ in range(10):
        assert guard.admit(parse_address("10.0.0.5")) == ""  # the proxy: never counted, never refused
        assert guard.admit(parse_address("2001:db8:ffff:1::9")) == ""
    guard.release(client_key(a))
    assert guard.admit(b) == "2001:db8:1:2::/64"


async def test_a_trusted_proxy_sets_the_client_address() -> None:
    """The right-most hop that is not a trusted proxy is the client (here once outside, once loopback)."""
    with tempfile.TemporaryDirectory() as tmp:
        async with loopback_server(Path(tmp), ROOMSERVER_SERVER_TRUSTED_PROXIES="127.0.0.1,10.1.0.0/16") as (srv, _):
            async with aiohttp.ClientSession() as http:
                async def metrics(xff: str) -> int:
                    async with http.get(srv.make_url("/metrics"), headers={"X-Forwarded-For": xff}) as r:
                        return r.status
                assert await metrics("127.0.0.1") == 200  # a monitoring client on the proxy's host itself
                assert await metrics("127.0.0.1, 10.1.2.3") == 200  # two proxies in a row, client on the first
                assert await metrics("203.0.113.9, 10.1.2.3") == 403
                assert await metrics("127.0.0.1, 203.0.113.9, 10.1.2.3") == 403
                assert await metrics("127.0.0.1, garbage, 10.1.2.3") == 403  # unknown client: not the proxy
                async with http.get(srv.make_url("/metrics"), headers={"X-Forwarded-Proto": "https"}) as r:
                    assert r.status == 403  # a forwarded request that names no client


async def test_the_real_server_process_serves_https_and_drops_unfinished_handshakes(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path / "tls")
    server = ServerProcess(tmp_path / "server", ROOMSERVER_SERVER_TLS_CERT_FILE=str(cert),
                           ROOMSERVER_SERVER_TLS_KEY_FILE=str(key),
                           ROOMSERVER_SERVER_IDLE_TIMEOUT_SECONDS="1").start()
    try:
        await server.wait_ready(client_context(cert))
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(10)]
        closed = 0
        for reader, writer in idle:
            try:
                if await asyncio.wait_for(reader.read(100), 15) == b"":
                    closed += 1
            except (asyncio.TimeoutError, ConnectionError):
                pass
            writer.close()
        assert closed == len(idle)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.base}/healthz", ssl=client_context(cert)) as r:
                assert r.status == 200 and r.headers["Strict-Transport-Security"]
        assert "https://127.0.0.1:" in server.tail()  # the banner names the https URL
    finally:
        server.stop()


async def test_a_seated_websocket_outlives_the_idle_timeout(tmp_path: Path) -> None:
    """The idle limit is for connections that have not sent a request: a joined socket stays."""
    from tests.production import HEADERS
    from tests.support import RawSocket, create_room, invite

    async with loopback_server(tmp_path, ROOMSERVER_SERVER_IDLE_TIMEOUT_SECONDS="1") as (srv, _):
        async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
            room = await create_room(http, HEADERS)
            sock = await RawSocket.open(http)
            assert (await sock.join((await invite(http, HEADERS, room, "counsellor"))["token"]))["type"] == "welcome"
            await asyncio.sleep(3)  # three idle timeouts
            await sock.send({"type": "no-such-type"})
            assert (await sock.expect("error"))["code"]
            await sock.close()


async def test_a_broken_request_is_logged_without_its_bytes(tmp_path: Path, caplog) -> None:
    """aiohttp's traceback would quote the offending header line (a name, a token): one line instead."""
    import logging

    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    async with loopback_server(tmp_path) as (srv, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: Clara Zeugin\x00\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(1000), 10)
        writer.close()
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")) and b'"bad_request"' in answer
    lines = [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records if r.name == "aiohttp.server"]
    assert lines == ["aiohttp.server ERROR Error handling request: 400 BadHttpMessage"], lines
    assert "Clara" not in caplog.text
