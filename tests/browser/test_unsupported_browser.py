"""A browser without WebRTC gets a clear page instead of a broken call (docs/browsers.md).

Simulated in Chromium by removing ``RTCPeerConnection`` before any page script runs; and a
browser without screen sharing (every phone) gets no screen-sharing button.
"""

from __future__ import annotations

from roomserver import i18n
from tests.browser.pages import base_url, wait_js, wait_state
from tests.support import create_room, invite

NO_WEBRTC = """
delete window.RTCPeerConnection;
delete window.webkitRTCPeerConnection;
Object.defineProperty(window, "RTCPeerConnection", { value: undefined, configurable: true });
"""
NO_SCREEN_SHARING = "delete MediaDevices.prototype.getDisplayMedia;"


async def test_room_page_without_webrtc_shows_the_clear_page(server, http, api_headers, new_page, services):
    room = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room, "expert", "Herr Kaya")
    page = await new_page("room-no-webrtc")
    await page.add_init_script(NO_WEBRTC)
    await page.goto(f"{base_url(server)}/room/{room}#{inv['token']}")
    await wait_state(page, "error")
    assert await page.evaluate("() => document.body.dataset.errorCode") == "unsupported_browser"
    assert await page.inner_text("#end-title") == i18n.translate("de", "room.error.unsupported_browser.title")
    assert "Firefox, Chrome, Edge oder Safari" in await page.inner_text("#end-text")
    assert await page.is_hidden("#screen-call")
    # Nothing was tried: no socket, so the single-use link is still unspent.
    assert (await services.store.tokens.get(inv["jti"])).used_at is None
    assert not [m for m in page.console_log if m.startswith("pageerror")], page.console_log


async def test_join_page_without_webrtc_shows_the_clear_page(server, http, api_headers, new_page):
    room = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room, "citizen", "Ayşe")
    page = await new_page("join-no-webrtc", locale="tr-TR")
    await page.add_init_script(NO_WEBRTC)
    await page.goto(inv["join_url"].replace("#", "?lang=tr#"))
    await page.wait_for_selector("#screen-unsupported", state="visible", timeout=20_000)
    assert await page.inner_text("#unsupported-title") == i18n.translate("tr", "join.unsupported.title")


async def test_no_screen_sharing_button_where_the_browser_cannot_share(server, http, api_headers, new_page):
    room = await create_room(http, api_headers)
    token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    page = await new_page("room-no-screen-sharing")
    await page.add_init_script(NO_SCREEN_SHARING)
    await page.goto(f"{base_url(server)}/room/{room}#{token}")
    await wait_state(page, "in-call")
    await wait_js(page, "() => document.getElementById('ctl-screen').hidden", what="the screen button hidden")
    assert await page.is_visible("#ctl-camera") and await page.is_visible("#ctl-mic")
