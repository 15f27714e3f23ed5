"""The core flows in Firefox ESR as well as Chromium, and one mixed call Firefox ↔ Chromium ↔ aiortc.

Each flow runs once per browser (``kind``), with every browser page of the flow in that
browser: the citizen's join (notice, consent, devices, the echo network check, hand-over),
the waiting room and admission, the call with video decoded both ways, chat over the data
channel, a dropped socket resumed on the same seat, the end; and the expert patch-in from a
desk page. Pages are driven only through ``goto``/``evaluate``/``click``/``fill``, which
both harnesses offer (Playwright for Chromium, Marionette for Firefox, ``firefox.py``).
Every wait is bounded; nothing asserts on a time.
"""

from __future__ import annotations

import json
import re
from contextlib import AsyncExitStack

import pytest

from roomserver.peer.participant import Participant
from tests.browser.desks import DEPT, add_departments, add_expert
from tests.browser.pages import (
    base_url,
    self_id,
    video_of,
    wait_js,
    wait_state,
    wait_video,
)
from tests.support import create_room, invite

KINDS = ["chromium", "firefox"]


def ws_url(server) -> str:
    return str(server.make_url("/ws")).replace("http://", "ws://")


async def visible(page, selector: str, what: str | None = None) -> None:
    await wait_js(page, "(s) => { const n = document.querySelector(s); return !!n && !n.hidden"
                        " && n.getClientRects().length > 0; }", selector, what or selector)


async def by_fragment(open_page, kind: str, server, label: str, room: str, token: str):
    page = await open_page(kind, label)
    await page.goto(f"{base_url(server)}/room/{room}#{token}")
    return page


async def open_drawer(page, pane: str) -> None:
    """Open the room's side drawer on ``pane`` with its control-bar button (works in both browsers' pages)."""
    expanded = await page.evaluate("(p) => document.getElementById('ctl-' + p).getAttribute('aria-expanded')", pane)
    if expanded != "true":
        await page.click(f"#ctl-{pane}")
    await wait_js(page, "(p) => { const e = document.getElementById('pane-' + p); return !!e && e.offsetParent !== null; }",
                  pane, f"the {pane} pane")


async def send_chat(page, text: str) -> None:
    await open_drawer(page, "chat")
    await page.fill("#chat-input", text)
    await page.click("#chat-form button[type=submit]")


async def chat_arrives(page, text: str) -> None:
    await wait_js(page, """(text) => [...document.querySelectorAll('#chat-log .chat-text')]
        .some((n) => n.textContent === text)""", text, f"chat message {text!r}")


async def page_errors(page) -> list[str]:
    if hasattr(page, "page_errors"):
        return await page.page_errors()
    return [m for m in page.console_log if m.startswith("pageerror") or "Content Security Policy" in m]


async def join_as_citizen(page, join_url: str, name: str) -> None:
    """The join page as a citizen walks it: notice, consent, devices and name, network check, join."""
    await page.goto(join_url)
    await visible(page, "#screen-notice", "the data notice")
    assert await page.evaluate("() => location.hash") == ""  # the token left the address bar
    await page.click("#consent-yes")
    await visible(page, "#screen-devices", "the device screen")
    await wait_js(page, "() => document.getElementById('preview').videoWidth > 0", what="the camera preview")
    await page.fill("#name-input", name)
    await page.click("#devices-next")
    await visible(page, "#screen-check", "the network check")
    await visible(page, "#check-verdict", "the check's verdict")
    verdict = await page.evaluate("() => document.getElementById('check-verdict').dataset.verdict")
    assert verdict in ("good", "okay"), verdict  # loopback: nothing in the way
    await page.click("#join-button")
    await wait_js(page, "() => /\\/room\\/[^/]+$/.test(location.pathname)", what="the room page")


@pytest.mark.parametrize("kind", KINDS)
async def test_citizen_join_admit_call_chat_resume_end(kind, server, http, api_headers, open_page):
    room = await create_room(http, api_headers, title="Beratung 10:30", waiting_room=True)
    counsellor_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    citizen_link = (await invite(http, api_headers, room, "citizen", "Ayşe"))["join_url"]

    counsellor = await by_fragment(open_page, kind, server, "counsellor", room, counsellor_token)
    await wait_state(counsellor, "in-call")
    citizen = await open_page(kind, "citizen")
    await join_as_citizen(citizen, citizen_link, "Ayşe Yılmaz")
    await wait_state(citizen, "waiting")

    # Admission from the counsellor's waiting-room list.
    await wait_js(counsellor, "() => document.querySelectorAll('#lobby button.admit').length === 1",
                  what="the citizen in the waiting room")
    await open_drawer(counsellor, "people")
    await page_click_text(counsellor, "#lobby li", "Ayşe Yılmaz", "button.admit")
    await wait_state(citizen, "in-call")
    c_id, z_id = await self_id(counsellor), await self_id(citizen)
    await wait_video(counsellor, z_id)
    await wait_video(citizen, c_id)

    # Chat both ways over the data channel.
    await wait_js(counsellor, "() => window.roomserverDebug.chatOpen() === 1", what="chat channel")
    await wait_js(citizen, "() => window.roomserverDebug.chatOpen() === 1", what="chat channel")
    await send_chat(counsellor, "Guten Tag – wie geht es Ihnen?")
    await chat_arrives(citizen, "Guten Tag – wie geht es Ihnen?")
    await send_chat(citizen, "Gut, danke. Ümlaut & <b>kein HTML</b>")
    await chat_arrives(counsellor, "Gut, danke. Ümlaut & <b>kein HTML</b>")

    # The citizen's socket drops: she comes back on the same seat and video flows on a fresh connection.
    generation = (await video_of(counsellor, z_id))["generation"]
    await citizen.evaluate("() => window.roomserverDebug.drop()")
    await wait_state(citizen, "in-call")
    assert await self_id(citizen) == z_id
    after = await wait_video(counsellor, z_id, generation=generation + 1)
    await wait_video(counsellor, z_id, more_than=after["framesDecoded"], generation=after["generation"])
    await wait_video(citizen, c_id)

    # The counsellor ends the consultation after confirming; the citizen is told.
    await counsellor.click("#ctl-end")
    await visible(counsellor, "#confirm", "the confirmation")
    await counsellor.click("#confirm-ok")
    await wait_state(citizen, "ended")
    await wait_state(counsellor, "ended")
    assert await citizen.evaluate("(r) => sessionStorage.getItem('roomserver.resume.' + r)", room) is None
    for page in (counsellor, citizen):
        assert not await page_errors(page)


@pytest.mark.parametrize("kind", KINDS)
async def test_screen_sharing(kind, server, http, api_headers, open_page):
    """The outgoing video track is swapped for the screen; the peer keeps decoding and sees the flag."""
    room = await create_room(http, api_headers)
    counsellor_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    expert_token = (await invite(http, api_headers, room, "expert", "Herr Kaya"))["token"]
    counsellor = await open_page(kind, "counsellor-sharing", screen=True)
    await counsellor.goto(f"{base_url(server)}/room/{room}#{counsellor_token}")
    expert = await by_fragment(open_page, kind, server, "expert", room, expert_token)
    await wait_state(counsellor, "in-call")
    await wait_state(expert, "in-call")
    c_id = await self_id(counsellor)
    before = (await wait_video(expert, c_id))["framesDecoded"]

    await counsellor.click("#ctl-screen")
    await wait_js(counsellor, "() => document.getElementById('ctl-screen').getAttribute('aria-pressed') === 'true'",
                  what="screen sharing on")
    await wait_js(expert, "(id) => !!document.querySelector(`.tile[data-peer='${id}'] .flag-screen`)", c_id,
                  "the screen-sharing flag")
    await wait_video(expert, c_id, more_than=before)
    await counsellor.click("#ctl-screen")
    await wait_js(expert, "(id) => !document.querySelector(`.tile[data-peer='${id}'] .flag-screen`)", c_id,
                  "the screen-sharing flag gone")
    after = (await video_of(expert, c_id))["framesDecoded"]
    await wait_video(expert, c_id, more_than=after)  # the camera again
    for page in (counsellor, expert):
        assert not await page_errors(page)


async def page_click_text(page, rows: str, text: str, button: str) -> None:
    """Click ``button`` inside the row of ``rows`` that shows ``text``."""
    selector = await page.evaluate("""([rows, text, button]) => {
        const row = [...document.querySelectorAll(rows)].find((r) => r.textContent.includes(text));
        const target = row && row.querySelector(button);
        if (!target) return null;
        target.dataset.clickMe = "1";
        return `${button}[data-click-me="1"]`;
    }""", [rows, text, button])
    assert selector, f"no {button} in a row with {text!r}"
    await page.click(selector)


@pytest.mark.parametrize("kind", KINDS)
async def test_expert_desk_rings_accepts_and_is_in_the_call(kind, server, http, api_headers, services, open_page):
    add_departments(services)
    expert = add_expert(services, "erika", "Erika Expertin")
    room = await create_room(http, api_headers, title="Beratung Aufenthalt")
    async with AsyncExitStack() as stack:
        counsellor = Participant(ws_url(server), (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"])
        stack.push_async_callback(counsellor.close)
        await counsellor.connect()

        desk = await open_page(kind, "desk")
        await desk.goto(f"{base_url(server)}/desk")
        await visible(desk, "#signin-username", "the sign-in form")
        await desk.fill("#signin-username", expert.username)
        await desk.fill("#signin-password", expert.password)
        await desk.click("form button[type=submit]")
        await wait_js(desk, "() => location.pathname === '/desk' && document.body.dataset.connection === 'connected'",
                      what="the desk online")

        await counsellor.send({"type": "call", "department": DEPT})
        await visible(desk, ".desk-call", "the ringing call")
        text = await desk.evaluate("() => document.querySelector('.desk-call').textContent")
        assert "Beratung Aufenthalt" in text and "Frau Weber" in text
        await desk.click(".desk-accept")

        # The desk tab goes straight into the consultation; media flows both ways.
        await wait_js(desk, "(r) => location.pathname === '/room/' + r", room, "the room page")
        await wait_state(desk, "in-call")
        assert await desk.evaluate("() => window.roomserverDebug.role") == "expert"
        expert_id = await self_id(desk)
        await wait_video(desk, counsellor.id)
        await counsellor.wait_connected(expert_id, 30)
        assert await counsellor.wait_frames(expert_id, "video", 5, 30) >= 5
        assert await counsellor.wait_frames(expert_id, "audio", 5, 30) >= 5
        assert not await page_errors(desk)


async def test_mixed_call_firefox_chromium_aiortc(server, http, api_headers, open_page):
    """A Firefox citizen, a Chromium counsellor and a Python (aiortc) expert in one mesh: everyone sees everyone."""
    room = await create_room(http, api_headers)
    counsellor_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    citizen_token = (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"]
    expert_token = (await invite(http, api_headers, room, "expert", "Herr Kaya"))["token"]
    async with AsyncExitStack() as stack:
        counsellor = await by_fragment(open_page, "chromium", server, "counsellor-chromium", room, counsellor_token)
        await wait_state(counsellor, "in-call")
        citizen = await open_page("firefox", "citizen-firefox")
        await citizen.goto(f"{base_url(server)}/")
        entry = {"room": room, "token": citizen_token, "name": "Ayşe", "audioInput": None, "videoInput": None,
                 "audioOutput": None}
        await citizen.evaluate("(e) => sessionStorage.setItem('roomserver.join', e)", json.dumps(entry))
        await citizen.goto(f"{base_url(server)}/room/{room}")
        await wait_state(citizen, "in-call")
        python = Participant(ws_url(server), expert_token)
        stack.push_async_callback(python.close)
        await python.connect()

        c_id, z_id = await self_id(counsellor), await self_id(citizen)
        for page, others in ((counsellor, (z_id, python.id)), (citizen, (c_id, python.id))):
            for other in others:
                await wait_video(page, other)
        for other in (c_id, z_id):
            await python.wait_connected(other, 30)
            assert await python.wait_frames(other, "video", 5, 30) >= 5
            assert await python.wait_frames(other, "audio", 5, 30) >= 5

        # Chat between the two browsers (the Python participant opens no chat channel).
        await wait_js(citizen, "() => window.roomserverDebug.chatOpen() === 1", what="chat channel")
        await send_chat(citizen, "Merhaba aus Firefox")
        await chat_arrives(counsellor, "Merhaba aus Firefox")
        await send_chat(counsellor, "Hallo aus Chromium")
        await chat_arrives(citizen, "Hallo aus Chromium")

        # Both browsers report figures, with the path of each connection, in the documented shape.
        for page in (counsellor, citizen):
            entries = await page.evaluate("() => window.roomserverDebug.collectStats()")
            assert set(entries) == {p for p in (c_id, z_id, python.id) if p != await self_id(page)}
            for entry in entries.values():
                assert entry["state"] == "connected"
                assert entry["candidate_type"] == "host", entry  # loopback: direct
                assert re.fullmatch(r"[a-z]+", entry["candidate_type"])
                assert entry.get("bitrate_kbps", 1) >= 0
        for page in (counsellor, citizen):
            assert not await page_errors(page)
