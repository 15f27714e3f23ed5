"""Headless Debian Chromium driven by Playwright, and Debian Firefox ESR over Marionette, with fake media.

Never ``playwright install``: the browsers are Debian's ``/usr/bin/chromium`` and
``/usr/bin/firefox-esr`` (``firefox.py``). Where one is missing, its tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.browser.axecore import axe, axe_js  # noqa: F401 - fixtures for every browser test module
from tests.oidc.world import oidc_world  # noqa: F401 - fixture of test_oidc_signin.py
from tests.ops.test_mailer import smtp  # noqa: F401 - the SMTP server fixture of test_email_invite.py
from tests.browser.firefox import XVFB, FirefoxLauncher, unavailable_reason

CHROMIUM = os.environ.get("ROOMSERVER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]


def _chromium_available() -> bool:
    return Path(CHROMIUM).exists()


pytestmark = pytest.mark.skipif(not _chromium_available(),
                                reason="Debian chromium is not installed (apt-get install chromium)")


@pytest.fixture
async def browser() -> AsyncIterator:
    if not _chromium_available():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def new_page(browser, artifacts: Path, request: pytest.FixtureRequest):
    """``await new_page(name)``: a page in its own context (own cookies and storage).

    Console messages and page errors are collected on ``page.console_log`` so a
    failing test can show them; every page gets a screenshot in the artifacts
    folder at the end of the test.
    """
    contexts = []

    async def make(name: str, **context_args):
        context_args.setdefault("locale", "de-DE")  # the office's browsers; override per test for other languages
        context = await browser.new_context(permissions=["camera", "microphone"], **context_args)
        contexts.append((name, context))
        page = await context.new_page()
        page.console_log = []  # type: ignore[attr-defined]
        page.on("console", lambda m: page.console_log.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: page.console_log.append(f"pageerror: {e}"))
        return page

    yield make
    for name, context in contexts:
        for index, page in enumerate(context.pages):
            try:
                shot = artifacts / "screenshots" / f"{request.node.name}-{name}{'-' + str(index) if index else ''}.png"
                shot.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(shot), full_page=True)
            except Exception:  # noqa: BLE001 - a closed page has no screenshot; the test result stands
                pass
        await context.close()


@pytest.fixture
async def new_firefox(artifacts: Path, request: pytest.FixtureRequest):
    """``await new_firefox(name)``: a headless Firefox ESR page of its own (own profile and storage).

    Every page leaves a screenshot in the artifacts folder; profiles are removed at the end.
    """
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    launcher = FirefoxLauncher()
    try:
        yield launcher
    finally:
        await launcher.close_all(artifacts / "screenshots", request.node.name)


@pytest.fixture
async def open_page(artifacts: Path, request: pytest.FixtureRequest):
    """``await open_page(kind, name)``: a page in ``chromium`` (Playwright) or ``firefox`` (Marionette).

    Both offer ``goto``, ``evaluate``, ``wait_for_function``, ``click``, ``fill``, ``reload``
    and ``console_log``, which is what the cross-browser tests use. Each browser starts on
    first use, so a test skips only for the browser it asks for.
    """
    chromium: dict = {}
    firefox: list[FirefoxLauncher] = []
    pages: list[tuple[str, object]] = []

    async def make(kind: str, name: str, screen: bool = False, **context_args):
        """``screen=True``: the page must be able to share a screen (Firefox then runs on Xvfb)."""
        if kind == "chromium":
            if not _chromium_available():
                pytest.skip("Debian chromium is not installed (apt-get install chromium)")
            if not chromium:
                from playwright.async_api import async_playwright

                chromium["pw"] = await async_playwright().start()
                chromium["browser"] = await chromium["pw"].chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS + context_args.pop("extra_args", []), headless=True)
            context_args.setdefault("locale", "de-DE")
            context = await chromium["browser"].new_context(permissions=["camera", "microphone"], **context_args)
            page = await context.new_page()
            page.console_log = []  # type: ignore[attr-defined]
            page.on("console", lambda m: page.console_log.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: page.console_log.append(f"pageerror: {e}"))
            pages.append((name, page))
            return page
        if kind == "firefox":
            reason = unavailable_reason()
            if reason:
                pytest.skip(reason)
            if not firefox:
                firefox.append(FirefoxLauncher())
            if screen and XVFB is None:
                pytest.skip("Xvfb is not installed (apt-get install xvfb): headless Firefox has no screen to share")
            return await firefox[0](name, screen=screen, **context_args)
        raise ValueError(kind)

    try:
        yield make
    finally:
        shots = artifacts / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        for name, page in pages:
            try:
                await page.screenshot(path=str(shots / f"{request.node.name}-{name}.png"), full_page=True)
            except Exception:  # noqa: BLE001 - a closed page has no screenshot; the result stands
                pass
        if firefox:
            await firefox[0].close_all(shots, request.node.name)
        if chromium:
            await chromium["browser"].close()
            await chromium["pw"].stop()
