"""deploy/nginx/roomserver.conf in a real nginx: TLS, forwarded headers, WebSockets, limits, several nodes.

Debian's nginx runs the shipped file itself (tests/production.py swaps only ports,
nodes, certificate and log paths) in the foreground on loopback ports.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.attacks.tls import _client, _handshake
from tests.production import HEADERS, Nginx, certificate, client_context, loopback_server, nginx_unavailable

pytestmark = pytest.mark.skipif(nginx_unavailable() is not None, reason=nginx_unavailable() or "")


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return certificate(tmp_path / "tls")


@pytest.fixture
async def echo(tmp_path: Path) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """An upstream that records the headers nginx sends it."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)  # aiohttp's own access log names the client
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_forwarded_headers_are_replaced_not_appended(tmp_path: Path, cert, echo) -> None:
    upstream, seen = echo
    nginx = Nginx(tmp_path, [upstream], *cert).start()
    try:
        await nginx.wait_ready()
        async with aiohttp.ClientSession() as http:
            forged = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Real-IP": "127.0.0.1",
                      "Forwarded": "for=127.0.0.1", "X-Forwarded-Host": "evil.example"}
            async with http.get(f"{nginx.base}/anything?x=secret", headers=forged, ssl=client_context(cert[0])) as r:
                assert r.status == 200, nginx.logs()
        got = seen[-1]
        assert got["x-forwarded-for"] == "127.0.0.1"  # nginx's view of the client, the forged one dropped
        assert got["x-forwarded-proto"] == "https"
        assert got["x-forwarded-host"] == "127.0.0.1"
        assert "forwarded" not in got and "x-real-ip" not in got
        log = await nginx.access_log_with("GET /anything 200")
        assert "GET /anything 200" in log and "127.0.0.1" not in log and "secret" not in log
    finally:
        nginx.stop()


async def test_tls_of_the_proxy_follows_the_same_rules(tmp_path: Path, cert, echo) -> None:
    nginx = Nginx(tmp_path, [echo[0]], *cert).start()
    try:
        await nginx.wait_ready()
        good = await _handshake(nginx.https_port, _client(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2,
                                                         "ECDHE-ECDSA-AES128-GCM-SHA256"))
        assert good.startswith("accepted"), good
        for ctx in (_client(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1),
                    _client(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256"),
                    _client(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305")):
            if ctx is not None:
                detail = await _handshake(nginx.https_port, ctx)
                assert detail.startswith("refused"), detail
        async with aiohttp.ClientSession() as http:  # plain HTTP on the other port: sent to HTTPS
            async with http.get(f"http://127.0.0.1:{nginx.http_port}/join/x", allow_redirects=False) as r:
                assert r.status == 301 and r.headers["Location"].startswith("https://")
    finally:
        nginx.stop()


async def test_in_front_of_the_server(tmp_path: Path, cert) -> None:
    """The real server behind nginx: HSTS and Secure cookies from the forwarded HTTPS, /metrics closed,
    a WebSocket join through the proxy, nginx's own errors in the JSON shape."""
    from tests.support import RawSocket, create_room, invite

    async with loopback_server(tmp_path / "node", ROOMSERVER_SERVER_TRUSTED_PROXIES="127.0.0.1",
                               ROOMSERVER_AUTH_COOKIE_SECURE="never") as (srv, services):
        nginx = Nginx(tmp_path, [f"127.0.0.1:{srv.port}"], *cert).start()
        try:
            await nginx.wait_ready()
            services.settings.server.public_url = nginx.base
            ctx = client_context(cert[0])
            async with aiohttp.ClientSession(base_url=nginx.base, connector=aiohttp.TCPConnector(ssl=ctx)) as http:
                async with http.get("/signin") as r:
                    assert r.status == 200
                    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
                    assert r.headers["Server"] == "nginx"
                    assert all("Secure" in c for c in r.headers.getall("Set-Cookie"))
                async with http.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}) as r:
                    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
                async with http.get("/api/v1/nothing") as r:  # the server's own 404 passes through
                    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
                room = await create_room(http, HEADERS)
                token = (await invite(http, HEADERS, room, "counsellor", "Frau Weber"))["token"]
                sock = await RawSocket.open(http)
                welcome = await sock.join(token)
                assert welcome["type"] == "welcome", welcome
                await sock.close()
        finally:
            nginx.stop()
        assert "127.0.0.1" not in nginx.access_log()
    # the node is gone: nginx answers in the JSON shape
    nginx.start()
    try:
        await nginx.wait_ready()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{nginx.base}/healthz", ssl=client_context(cert[0])) as r:
                assert r.status == 502
                assert (await r.json())["error"]["code"] == "unavailable"
    finally:
        nginx.stop()


async def test_round_robin_over_three_real_nodes(tmp_path: Path, cert) -> None:
    """Three ``roomserver serve`` processes (PostgreSQL + Redis) behind nginx: requests reach every node,
    and two participants whose sockets land on different nodes meet in one room."""
    from tests.cluster.harness import HEADERS as CLUSTER_HEADERS, Cluster, why_not
    from tests.support import RawSocket

    reason = why_not()
    if reason:
        pytest.skip(reason)
    (tmp_path / "cluster").mkdir()
    cluster = Cluster(tmp_path / "cluster", 3, ROOMSERVER_SERVER_TRUSTED_PROXIES="127.0.0.1")
    nginx = None
    try:
        await cluster.start()
        nginx = Nginx(tmp_path, [f"127.0.0.1:{node.port}" for node in cluster.nodes], *cert).start()
        await nginx.wait_ready()
        ctx = client_context(cert[0])
        async with aiohttp.ClientSession(base_url=nginx.base, connector=aiohttp.TCPConnector(ssl=ctx)) as http:
            for _ in range(9):
                async with http.get("/healthz", headers={"Connection": "close"}) as r:
                    assert r.status == 200
            async with http.post("/api/v1/rooms", json={"title": "Beratung", "waiting_room": False},
                                 headers=CLUSTER_HEADERS) as r:
                assert r.status == 201, await r.text()
                room = (await r.json())["id"]
            sockets = []
            for role, name in (("counsellor", "Frau Weber"), ("citizen", "Ayşe")):
                async with http.post(f"/api/v1/rooms/{room}/invites", json={"role": role, "name": name},
                                     headers=CLUSTER_HEADERS) as r:
                    token = (await r.json())["token"]
                sock = await RawSocket.open(http)
                assert (await sock.join(token))["type"] == "welcome"
                sockets.append(sock)
            joined = await sockets[0].expect("peer-joined")
            assert joined["peer"]["name"] == "Ayşe" or "Ayşe" in json.dumps(joined)
            for sock in sockets:
                await sock.close()
        served = [node.log.read_text(errors="replace").count("GET /healthz 200") for node in cluster.nodes]
        assert all(count >= 1 for count in served), served
    finally:
        if nginx is not None:
            nginx.stop()
        cluster.stop()
    await asyncio.sleep(0)
