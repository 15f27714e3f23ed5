"""A site (network namespace) with the server and coturn on its host side, and browsers to put in it.

Shared by the network tests (``test_networks.py``, ``test_poor_connection.py``): the server
listens on the host side of the site's veth link, so a browser or a Python participant in
the site reaches it only through the site's rules; another participant on the host is a
Python (aiortc) peer that counts frames, or a Chromium page.
"""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from roomserver import bootstrap
from roomserver.app import create_app
from roomserver.peer.participant import Participant
from roomserver.services import build_services
from tests import netlab
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import TEST_API_KEY, make_settings
from tests.support import create_room, invite

API = {"Authorization": f"Bearer {TEST_API_KEY}"}


class Net:
    """One site (namespace) with a server and coturn on its host side, and browsers to open."""

    def __init__(self, tmp_path: Path, stack: AsyncExitStack, turn: bool = True) -> None:
        self.tmp = tmp_path
        self.stack = stack
        self.lab = netlab.Lab()
        stack.callback(self.lab.close)
        self.site = self.lab.site("a")
        self.turn = netlab.start_coturn(tmp_path, self.site.host_ip, secrets.token_hex(16)) if turn else None
        if self.turn is not None:
            stack.callback(self.turn.stop)
        self.server: TestServer | None = None
        self.services = None
        self.pw = None

    async def start_server(self) -> TestServer:
        ice = ({"ROOMSERVER_ICE_TURN_URLS": ",".join(self.turn.urls()), "ROOMSERVER_ICE_TURN_SECRET": self.turn.secret}
               if self.turn is not None else {})
        settings = make_settings(self.tmp / "data", **ice)
        bootstrap.prepare(settings, 0)
        self.services = build_services(settings)
        self.stack.callback(self.services.close)
        self.server = TestServer(create_app(self.services), host=self.site.host_ip, port=0)
        await self.server.start_server()
        self.stack.push_async_callback(self.server.close)
        settings.server.public_url = self.base
        return self.server

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://") + "/ws"

    async def browser(self, inside: bool):
        """Chromium inside the site (through the wrapper) or on the host."""
        if self.pw is None:
            from playwright.async_api import async_playwright

            self.pw = await async_playwright().start()
            self.stack.push_async_callback(self.pw.stop)
        # The page is served over plain HTTP on the link's address: treat it as secure (camera).
        # The TURN server's certificate is the test's own: trust exactly its key.
        args = CHROMIUM_ARGS + [f"--unsafely-treat-insecure-origin-as-secure={self.base}"]
        if self.turn is not None:
            args.append(f"--ignore-certificate-errors-spki-list={netlab.spki_sha256(self.turn.cert)}")
        executable = netlab.chromium_wrapper(self.site, CHROMIUM, self.tmp) if inside else Path(CHROMIUM)
        browser = await self.pw.chromium.launch(executable_path=str(executable), args=args, headless=True)
        self.stack.push_async_callback(browser.close)
        return browser

    async def page(self, browser, label: str, artifacts: Path, test: str):
        context = await browser.new_context(permissions=["camera", "microphone"], locale="de-DE")
        page = await context.new_page()
        page.console_log = []
        page.on("console", lambda m: page.console_log.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: page.console_log.append(f"pageerror: {e}"))

        async def shot() -> None:
            try:
                (artifacts / "screenshots").mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(artifacts / "screenshots" / f"{test}-{label}.png"), full_page=True)
            except Exception:  # noqa: BLE001 - a closed page has no screenshot
                pass
        self.stack.push_async_callback(shot)
        return page


async def room_with_counsellor(net: Net, http: aiohttp.ClientSession) -> tuple[str, Participant]:
    room = await create_room(http, API, title="Beratung hinter der Firewall")
    counsellor = Participant(net.ws, (await invite(http, API, room, "counsellor", "Frau Weber"))["token"],
                             stats_interval=1)
    net.stack.push_async_callback(counsellor.close)
    await counsellor.connect()
    return room, counsellor


async def citizen_page(net: Net, http, room: str, artifacts: Path, test: str):
    token = (await invite(http, API, room, "citizen", "Ayşe"))["token"]
    page = await net.page(await net.browser(inside=True), "citizen-in-namespace", artifacts, test)
    await page.goto(f"{net.base}/room/{room}#{token}")
    return page




async def citizen_in_call(net: Net, http, artifacts: Path, test: str, wait: float = 60.0):
    """A room with the Python counsellor and the citizen's Chromium in the site, connected with video.

    Returns the room id, the counsellor, the citizen's page and her seat id.
    """
    from tests.browser.pages import self_id, wait_state, wait_video

    room, counsellor = await room_with_counsellor(net, http)
    page = await citizen_page(net, http, room, artifacts, test)
    await wait_state(page, "in-call")
    citizen = await self_id(page)
    await wait_video(page, counsellor.id)
    await counsellor.wait_connected(citizen, wait)
    return room, counsellor, page, citizen
