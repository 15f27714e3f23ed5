"""Headless Debian Chromium driven by Playwright, with fake camera and microphone.

Never ``playwright install``: the browser is Debian's ``/usr/bin/chromium``.
Where it is missing, every browser test skips with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.browser.axecore import axe, axe_js  # noqa: F401 - fixtures for every browser test module

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
