"""Helpers for driving the room page in Chromium, shared by the browser tests.

Every wait is bounded by ``WAIT_MS`` and fails with the page's console in the message.
"""

from __future__ import annotations

import asyncio
from typing import Any

WAIT_MS = 30_000  # every wait in the page is bounded by this


def base_url(server) -> str:
    return str(server.make_url("")).rstrip("/")


async def wait_js(page, expression: str, arg: Any = None, what: str = "condition", timeout_ms: int = WAIT_MS) -> Any:
    """``page.wait_for_function`` with the page's console in the failure message."""
    try:
        handle = await page.wait_for_function(expression, arg=arg, timeout=timeout_ms, polling=250)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        state = await page.evaluate("() => document.body.dataset.roomState")
        log = "\n".join(page.console_log[-40:])
        raise AssertionError(f"timed out waiting for {what} (room state {state}):\n{log}") from exc
    return await handle.json_value()


async def wait_state(page, state: str) -> None:
    await wait_js(page, "(s) => document.body.dataset.roomState === s", state, f"state {state}")


async def self_id(page) -> str:
    return await wait_js(page, "() => window.roomserverDebug && window.roomserverDebug.selfId", what="seat id")


async def wait_video(page, peer: str, more_than: int = 0, generation: int | None = None) -> dict[str, Any]:
    """Until the connection to ``peer`` is connected and has decoded more than ``more_than`` video frames.

    Polls with ``page.evaluate``, which awaits the stats (``wait_for_function`` would take the
    async predicate's Promise as true at once), and returns the reading that met the condition.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_MS / 1000
    info = None
    while loop.time() < deadline:
        info = await video_of(page, peer)
        if (info and info["state"] == "connected" and info["framesDecoded"] > more_than
                and (generation is None or info["generation"] >= generation)):
            return info
        await asyncio.sleep(0.25)
    state = await page.evaluate("() => document.body.dataset.roomState")
    log = "\n".join(page.console_log[-40:])
    raise AssertionError(f"timed out waiting for video from {peer} (last {info}, room state {state}):\n{log}")


async def video_of(page, peer: str) -> dict[str, Any] | None:
    """The video received from ``peer`` (None while the page has no connection to it yet)."""
    return (await page.evaluate("() => window.roomserverDebug.inboundVideo()")).get(peer)


async def open_pane(page, pane: str) -> None:
    """Open the room's side drawer on ``pane`` (people, expert, invite, chat) with its control-bar button."""
    if await page.get_attribute(f"#ctl-{pane}", "aria-expanded") != "true":
        await page.click(f"#ctl-{pane}")
    await page.wait_for_selector(f"#pane-{pane}", state="visible", timeout=WAIT_MS)


def plain(text: str) -> str:
    """Text without the direction isolates (FSI, PDI) the room puts around names in sentences."""
    return text.replace("\u2068", "").replace("\u2069", "")
