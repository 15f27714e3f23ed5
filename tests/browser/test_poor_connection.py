"""A poor connection for real: Chromium in a network namespace whose link is rate-limited and lossy.

The citizen's browser sits in a site (``tests/netlab.py``) on a veth link to the host; the
counsellor is a Python (aiortc) peer on the host that counts the frames it decodes. Then
the site's upload is limited to 300 kbit/s (``tc … tbf``) and 10 % of UDP packets are
dropped at random each way (nftables ``numgen random``; this kernel has no netem):

* the sender steps its video down (resolution and bitrate, ``setParameters``) and the bitrate
  it sends drops, while audio keeps arriving at the counsellor;
* the person's tile says "Verbindung schwach"; at the lowest level audio only is offered,
  taken, and given back;
* when the impairment is lifted the sender climbs back up and sends more again.

Only directions are asserted (lower, higher, still flowing), never a time; every wait is bounded.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import aiohttp
import pytest

from tests import netlab
from tests.browser.conftest import _chromium_available
from tests.browser.netsites import Net, citizen_in_call
from tests.browser.pages import wait_js

WAIT = 150.0  # seconds: the ladder moves one step per few samples of 2 s; every wait is bounded by this

_reason = netlab.unavailable_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.skipif(not _chromium_available(), reason="Debian chromium is not installed"),
]


async def quality(page, peer: str) -> dict:
    snapshot = await page.evaluate("() => window.roomserverDebug.quality()")
    return {"audioOnly": snapshot["audioOnly"], "offered": snapshot["offered"], **(snapshot["links"].get(peer) or {})}


async def until(page, peer: str, predicate, what: str) -> list[dict]:
    """Sample the page's quality figures every second until ``predicate(sample)``; every sample so far."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    seen: list[dict] = []
    while True:
        sample = await quality(page, peer)
        seen.append(sample)
        if predicate(sample):
            return seen
        assert loop.time() < deadline, f"timed out waiting for {what}; last samples {seen[-5:]}"
        await asyncio.sleep(1.0)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


async def test_poor_link_steps_down_keeps_audio_offers_audio_only_and_recovers(tmp_path, artifacts, request):
    async with AsyncExitStack() as stack:
        net = Net(tmp_path, stack, turn=False)
        await net.start_server()
        async with aiohttp.ClientSession(base_url=net.base) as http:
            _, counsellor, page, citizen = await citizen_in_call(net, http, artifacts, request.node.name, WAIT)
            peer = counsellor.id
            await counsellor.wait_frames(citizen, "video", 10, WAIT)

            # A clean link: full level, and the sender ramps up to a real bitrate.
            steady: list[int] = []
            clean = await until(page, peer, lambda s: steady.append(s.get("sentKbps") or 0) or len(
                [k for k in steady[-3:] if k > 50]) == 3, "a steady bitrate on the clean link")
            before = median([s["sentKbps"] for s in clean[-3:]])
            assert clean[-1]["level"] == 0 and clean[-1]["indicator"] == "good"
            assert not await page.evaluate("() => !!document.querySelector('.quality-badge')")

            # Impaired: 300 kbit/s up, 10 % of UDP lost each way.
            net.site.rate_limit(300)
            net.site.firewall(netlab.random_udp_loss(10))
            audio = counsellor.frames_received(citizen, "audio")
            down = await until(page, peer, lambda s: s.get("level", 0) >= 2 and s.get("sentKbps") is not None,
                               "a lower video level")
            assert down[-1]["scale"] > 1 and down[-1]["maxKbps"] is not None
            # The tile of the person on the other end of the bad link says so.
            await wait_js(page, "(p) => document.querySelector(`.tile[data-peer='${p}'] .quality-badge`)"
                                "?.textContent === 'Verbindung schwach'", peer, "the weak-connection badge")
            during = await until(page, peer, lambda s: s.get("sentKbps") is not None and s["sentKbps"] < before,
                                 "a lower sent bitrate")
            assert during[-1]["sentKbps"] < before
            # Audio keeps flowing on the bad link.
            assert await counsellor.wait_frames(citizen, "audio", audio + 100, WAIT) >= audio + 100

            # At the lowest level and still bad: audio only is offered; taking it stops our video.
            await wait_js(page, "() => document.getElementById('quality-offer')?.dataset.mode === 'offer'",
                          what="the audio-only offer", timeout_ms=int(WAIT * 1000))
            offer = await page.evaluate("() => document.getElementById('quality-offer').textContent")
            assert "Nur mit Ton weiter" in offer and "Video behalten" in offer
            shot = artifacts / "screenshots" / f"{request.node.name}-offer.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot), full_page=True)
            # The bar is readable over the video (its own background) and its buttons are on top.
            look = await page.evaluate("""() => {
                const bar = document.getElementById('quality-offer');
                const button = bar.querySelector('.quality-accept').getBoundingClientRect();
                const top = document.elementFromPoint(button.x + button.width / 2, button.y + button.height / 2);
                return {background: getComputedStyle(bar).backgroundColor,
                        onTop: !!top && !!top.closest('.quality-accept')};
            }""")
            assert look["background"] not in ("rgba(0, 0, 0, 0)", "transparent") and look["onTop"], look
            await page.click("#quality-offer .quality-accept")
            await until(page, peer, lambda s: s["audioOnly"], "audio only")
            await wait_js(page, "() => document.getElementById('ctl-camera').getAttribute('aria-pressed') === 'true'",
                          what="the camera shown as off")
            await counsellor.wait_until(lambda: counsellor.peers[citizen].get("state", {}).get("camera") is False,
                                        WAIT, "the peers told the camera is off")
            audio = counsellor.frames_received(citizen, "audio")
            assert await counsellor.wait_frames(citizen, "audio", audio + 50, WAIT) >= audio + 50
            await page.click("#quality-offer .quality-video-again")
            await until(page, peer, lambda s: not s["audioOnly"], "video again")
            await counsellor.wait_until(lambda: counsellor.peers[citizen].get("state", {}).get("camera") is True,
                                        WAIT, "the peers told the camera is on")
            impaired = median([s["sentKbps"] for s in down + during
                               if s.get("sentKbps") is not None and s.get("level", 0) >= 2])
            assert impaired < before

            # The impairment is lifted: the sender climbs back and sends more again.
            net.site.clear_rate_limit()
            net.site.flush_firewall()
            await until(page, peer, lambda s: s.get("level") == 0, "the full video level again")
            up = await until(page, peer, lambda s: s.get("sentKbps") is not None and s["sentKbps"] > impaired,
                             "a higher sent bitrate")
            assert up[-1]["sentKbps"] > impaired and up[-1]["level"] == 0
            await wait_js(page, "(p) => !document.querySelector(`.tile[data-peer='${p}'] .quality-badge`)", peer,
                          "the badge gone")
            frames = counsellor.frames_received(citizen, "video")
            assert await counsellor.wait_frames(citizen, "video", frames + 30, WAIT) >= frames + 30
