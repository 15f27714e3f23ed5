"""Chromium joins a consultation over HTTPS: through nginx (deploy/) in front of the server, and through the
server's own TLS. Cameras need a secure context; this is the set-up a citizen's phone meets.

The certificate is self-signed and made by the test; only the Chromium started here
ignores certificate errors (``--ignore-certificate-errors``), for that certificate's sake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, _chromium_available
from tests.browser.pages import wait_state, wait_video, self_id
from tests.production import HEADERS, Nginx, certificate, client_context, loopback_server, nginx_unavailable


@pytest.fixture
async def tls_browser() -> AsyncIterator:
    if not _chromium_available():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS + ["--ignore-certificate-errors"])
        try:
            yield browser
        finally:
            await browser.close()


async def _call(browser, base: str, cert: Path, artifacts: Path, name: str) -> None:
    """A counsellor (by link) and a citizen (as the join page sends her) reach a connected call at ``base``."""
    async with aiohttp.ClientSession(base_url=base, connector=aiohttp.TCPConnector(ssl=client_context(cert))) as http:
        async with http.post("/api/v1/rooms", json={"title": "Beratung", "waiting_room": False}, headers=HEADERS) as r:
            assert r.status == 201, await r.text()
            room = (await r.json())["id"]
        tokens = {}
        for role, person in (("counsellor", "Frau Weber"), ("citizen", "Ayşe")):
            async with http.post(f"/api/v1/rooms/{room}/invites", json={"role": role, "name": person},
                                 headers=HEADERS) as r:
                tokens[role] = (await r.json())["token"]
    pages = []
    try:
        for role in ("counsellor", "citizen"):
            context = await browser.new_context(permissions=["camera", "microphone"], locale="de-DE")
            page = await context.new_page()
            page.console_log = []
            page.on("console", lambda m, p=page: p.console_log.append(f"{m.type}: {m.text}"))
            pages.append(page)
            if role == "counsellor":
                await page.goto(f"{base}/room/{room}#{tokens[role]}")
            else:
                await page.goto(f"{base}/")
                entry = {"room": room, "token": tokens[role], "name": None, "audioInput": None,
                         "videoInput": None, "audioOutput": None}
                await page.evaluate("(e) => sessionStorage.setItem('roomserver.join', e)", json.dumps(entry))
                await page.goto(f"{base}/room/{room}")
            assert await page.evaluate("() => window.isSecureContext && location.protocol") == "https:"
        counsellor, citizen = pages
        await wait_state(counsellor, "in-call")
        await wait_state(citizen, "in-call")
        video = await wait_video(counsellor, await self_id(citizen))
        assert video["state"] == "connected" and video["framesDecoded"] > 0
    finally:
        shots = artifacts / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        for index, page in enumerate(pages):
            try:
                await page.screenshot(path=str(shots / f"https-{name}-{index}.png"))
            except Exception:  # noqa: BLE001 - a closed page has no screenshot; the result stands
                pass
            await page.context.close()


async def test_call_over_https_through_nginx(tmp_path: Path, tls_browser, artifacts: Path) -> None:
    if nginx_unavailable():
        pytest.skip(nginx_unavailable())
    cert, key = certificate(tmp_path / "tls")
    async with loopback_server(tmp_path / "node", ROOMSERVER_SERVER_TRUSTED_PROXIES="127.0.0.1") as (srv, services):
        nginx = Nginx(tmp_path, [f"127.0.0.1:{srv.port}"], cert, key).start()
        try:
            await nginx.wait_ready()
            services.settings.server.public_url = nginx.base
            await _call(tls_browser, nginx.base, cert, artifacts, "nginx")
        finally:
            nginx.stop()


async def test_call_over_the_servers_own_https(tmp_path: Path, tls_browser, artifacts: Path) -> None:
    cert, key = certificate(tmp_path / "tls")
    async with loopback_server(tmp_path / "node", tls=(cert, key)) as (srv, _):
        await _call(tls_browser, str(srv.make_url("")).rstrip("/"), cert, artifacts, "own-tls")
