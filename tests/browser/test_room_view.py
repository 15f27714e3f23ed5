"""The in-room page in real Chromium against the real server on loopback.

Rooms and tokens come from the REST API; pages enter as the entry contract of
``web/static/js/room.js`` says: experts and counsellors by the URL fragment, citizens by
``sessionStorage["roomserver.join"]`` (what the citizen join page puts there). Media is
Chromium's fake camera and microphone; that video is really decoded is read from
``getStats()`` in the page through ``window.roomserverDebug``. Every wait is bounded;
nothing asserts on timing. Each page leaves a screenshot (the ``new_page`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack
from typing import Any

import pytest

from roomserver import i18n
from roomserver.peer.participant import Participant
from roomserver.ws import SIGNALLING_KEY
from tests.browser.pages import (
    WAIT_MS,
    base_url,
    open_pane,
    self_id,
    video_of,
    wait_js,
    wait_state,
    wait_video,
)
from tests.support import create_room, invite


async def by_fragment(new_page, server, label: str, room: str, token: str):
    """Open the room like a direct link: /room/{room}#<token>."""
    page = await new_page(label)
    await page.goto(f"{base_url(server)}/room/{room}#{token}")
    return page


async def by_storage(new_page, server, label: str, room: str, token: str, name: str | None = None, page=None):
    """Open the room like the citizen join page does: sessionStorage, then navigate."""
    if page is None:
        page = await new_page(label)
        await page.goto(f"{base_url(server)}/")  # same origin, so the storage is the room page's
    entry = {"room": room, "token": token, "name": name, "audioInput": None, "videoInput": None, "audioOutput": None}
    await page.evaluate("(e) => sessionStorage.setItem('roomserver.join', e)", json.dumps(entry))
    await page.goto(f"{base_url(server)}/room/{room}")
    return page


async def counsellor_and_citizen_in_call(server, http, api_headers, new_page):
    """A room without waiting room; the counsellor by link, the citizen as the join page sends her; both in the call.

    Returns the room id, the citizen's token and the two pages.
    """
    room = await create_room(http, api_headers)
    counsellor_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    citizen_token = (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"]
    counsellor = await by_fragment(new_page, server, "counsellor", room, counsellor_token)
    citizen = await by_storage(new_page, server, "citizen", room, citizen_token)
    await wait_state(counsellor, "in-call")
    await wait_state(citizen, "in-call")
    return room, citizen_token, counsellor, citizen


async def chat(page, text: str) -> None:
    await open_pane(page, "chat")
    await page.get_by_label("Nachricht", exact=True).fill(text)
    await page.get_by_role("button", name="Senden").click()


async def chat_arrives(page, text: str) -> None:
    await wait_js(page, """(text) => [...document.querySelectorAll('#chat-log .chat-text')]
        .some((n) => n.textContent === text)""", text, f"chat message {text!r}")


def csp_violations(page) -> list[str]:
    return [m for m in page.console_log if "Content Security Policy" in m or m.startswith("pageerror")]


class Recorder:
    """Every frame the server's signalling received and sent, as text (to show what it never saw)."""

    def __init__(self, server) -> None:
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.raw: list[str] = []
        server.app[SIGNALLING_KEY].tap = self.on_frame

    def on_frame(self, direction: str, data: str | bytes) -> None:
        self.note(self.received if direction == "in" else self.sent, data)

    def note(self, into: list[dict[str, Any]], data: str | bytes) -> None:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        self.raw.append(text)
        try:
            into.append(json.loads(text))
        except ValueError:
            into.append({"type": None})

    def contains(self, text: str) -> bool:
        return any(text in f or json.dumps(text)[1:-1] in f for f in self.raw)

    async def wait_for(self, predicate, what: str, timeout: float = WAIT_MS / 1000) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            assert loop.time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.25)


# --------------------------------------------------------------------------------- tests


async def test_room_two_pages(server, http, api_headers, new_page):
    recorder = Recorder(server)
    room = await create_room(http, api_headers, title="Beratung 10:30")
    counsellor_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    expert_token = (await invite(http, api_headers, room, "expert", "Herr Kaya"))["token"]

    counsellor = await by_fragment(new_page, server, "counsellor", room, counsellor_token)
    await wait_state(counsellor, "in-call")
    # The token left the address bar at once and is not in the page's URL.
    assert "#" not in counsellor.url and counsellor_token not in counsellor.url
    expert = await by_fragment(new_page, server, "expert", room, expert_token)
    await wait_state(expert, "in-call")

    c_id, e_id = await self_id(counsellor), await self_id(expert)
    await wait_video(counsellor, e_id)
    await wait_video(expert, c_id)

    # Tiles with name and role label, a pin button per tile that is keyboard operable.
    tile = counsellor.locator(f'.tile[data-peer="{e_id}"]')
    await tile.get_by_text("Herr Kaya").wait_for(timeout=WAIT_MS)
    await tile.get_by_text(i18n.translate("de", "room.role.expert")).wait_for(timeout=WAIT_MS)
    pin = tile.get_by_role("button", name="Anheften und vergrößern: Herr Kaya")
    await pin.focus()
    await counsellor.keyboard.press("Enter")
    assert await pin.get_attribute("aria-pressed") == "true"
    assert await tile.evaluate("(n) => n.classList.contains('pinned')")
    # The counsellor's panel lists both with role and connection state.
    await open_pane(counsellor, "people")
    people = counsellor.locator("#people")
    await people.get_by_text("Herr Kaya").wait_for(timeout=WAIT_MS)
    await wait_js(counsellor, "(id) => document.querySelector(`#people li[data-peer='${id}']`)"
                              "?.dataset.connection === 'connected'", e_id, "connected in the participant list")
    assert await expert.locator("#ctl-people").is_hidden() and await expert.locator("#ctl-end").is_hidden()

    # Chat both ways, over the data channel only.
    await wait_js(counsellor, "() => window.roomserverDebug.chatOpen() === 1", what="chat channel")
    await wait_js(expert, "() => window.roomserverDebug.chatOpen() === 1", what="chat channel")
    await chat(counsellor, "Guten Tag, Herr Kaya – Frage zum Aufenthaltstitel")
    await chat_arrives(expert, "Guten Tag, Herr Kaya – Frage zum Aufenthaltstitel")
    assert "Neue Nachrichten: 1" in await expert.inner_text("#ctl-chat")  # counted while her chat is closed
    await chat(expert, "Gern, ich höre zu. Ümlaut & <b>kein HTML</b>")
    await chat_arrives(counsellor, "Gern, ich höre zu. Ümlaut & <b>kein HTML</b>")
    assert await counsellor.locator("#chat-log b").count() == 0  # text, never markup

    # Mute is a state message; the peer's tile shows it.
    await counsellor.get_by_role("button", name="Mikrofon aus").click()
    await wait_js(expert, "(id) => !!document.querySelector(`.tile[data-peer='${id}'] .flag-mic-off`)", c_id,
                  "the counsellor's mute on the expert's page")

    # Screen sharing swaps the outgoing video track; the expert keeps decoding and sees the flag.
    before = (await video_of(expert, c_id))["framesDecoded"]
    share = counsellor.get_by_role("button", name="Bildschirm teilen")
    await share.click()
    await wait_js(counsellor, "() => document.getElementById('ctl-screen').getAttribute('aria-pressed') === 'true'",
                  what="screen sharing on")
    await wait_js(expert, "(id) => !!document.querySelector(`.tile[data-peer='${id}'] .flag-screen`)", c_id,
                  "the screen-sharing flag")
    await wait_video(expert, c_id, more_than=before)
    await share.click()
    await wait_js(expert, "(id) => !document.querySelector(`.tile[data-peer='${id}'] .flag-screen`)", c_id,
                  "the screen-sharing flag gone")

    # The client reports connection figures in the documented shape; the server takes them.
    await recorder.wait_for(lambda: any(m.get("type") == "stats" for m in recorder.received), "a stats message")
    stats = next(m for m in recorder.received if m.get("type") == "stats")
    assert set(stats["peers"]) <= {c_id, e_id}
    for entry in stats["peers"].values():
        assert set(entry) <= {"rtt_ms", "jitter_ms", "loss", "bitrate_kbps", "fps", "state", "candidate_type"}

    # The server relayed signalling, never the chat; it had to refuse nothing.
    assert not recorder.contains("Frage zum Aufenthaltstitel")
    assert not recorder.contains("ich höre zu")
    assert any(m.get("type") == "signal" for m in recorder.sent)
    assert not [m for m in recorder.sent if m.get("type") == "error"], recorder.sent
    for page in (counsellor, expert):
        assert not csp_violations(page), page.console_log


async def test_room_waiting_admit(server, http, api_headers, new_page):
    room = await create_room(http, api_headers, waiting_room=True)
    counsellor_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    citizen_token = (await invite(http, api_headers, room, "citizen", "Einladung"))["token"]

    counsellor = await by_fragment(new_page, server, "counsellor", room, counsellor_token)
    await wait_state(counsellor, "in-call")
    citizen = await by_storage(new_page, server, "citizen", room, citizen_token, name="Ayşe Yılmaz")
    await wait_state(citizen, "waiting")
    await citizen.get_by_role("heading", name="Sie sind im Warteraum").wait_for(timeout=WAIT_MS)

    # A knock: heard, seen on the people button, and in the tab's title.
    await wait_js(counsellor, "() => window.roomserverDebug.knocks >= 1", what="the knock")
    await counsellor.locator("#people-badge", has_text="1").wait_for(timeout=WAIT_MS)
    people = await counsellor.get_by_role("button", name=re.compile("^Teilnehmende")).inner_text()
    assert "Im Warteraum: 1" in people, people  # the count in words, for a screen reader
    assert (await counsellor.title()).startswith("(1) ")
    await open_pane(counsellor, "people")
    entry = counsellor.locator("#lobby li", has_text="Ayşe Yılmaz")
    await entry.wait_for(timeout=WAIT_MS)
    await entry.get_by_role("button", name="Einlassen: Ayşe Yılmaz").click()

    await wait_state(citizen, "in-call")
    c_id, z_id = await self_id(counsellor), await self_id(citizen)
    await wait_video(counsellor, z_id)
    await wait_video(citizen, c_id)
    await counsellor.locator(f'.tile[data-peer="{z_id}"]').get_by_text("Bürgerin/Bürger").wait_for(timeout=WAIT_MS)
    await wait_js(counsellor, "() => document.querySelectorAll('#lobby li').length === 0", what="empty lobby")
    assert await counsellor.locator("#people-badge").inner_text() == ""
    assert not (await counsellor.title()).startswith("(")
    for page in (counsellor, citizen):
        assert not csp_violations(page), page.console_log


async def test_room_reconnect(server, http, api_headers, new_page):
    _, _, counsellor, citizen = await counsellor_and_citizen_in_call(server, http, api_headers, new_page)
    c_id, z_id = await self_id(counsellor), await self_id(citizen)
    await wait_video(counsellor, z_id)
    await wait_video(citizen, c_id)
    generation = (await video_of(counsellor, z_id))["generation"]
    sockets = await citizen.evaluate("() => window.roomserverDebug.sockets")

    # The network goes away: the socket drops and new connections fail until it is back.
    await citizen.context.set_offline(True)
    await citizen.evaluate("() => window.roomserverDebug.drop()")
    await wait_state(citizen, "reconnecting")
    await citizen.locator("#status", has_text="Die Verbindung ist unterbrochen").wait_for(timeout=WAIT_MS)
    await wait_js(counsellor, "(id) => document.querySelector(`.tile[data-peer='${id}']`)"
                              "?.dataset.connection === 'reconnecting'", z_id, "the citizen shown as reconnecting")
    await citizen.context.set_offline(False)

    # Back on the same seat, with the resume secret (no new token), and video flows again
    # on a fresh connection.
    await wait_state(citizen, "in-call")
    assert await self_id(citizen) == z_id
    assert await citizen.evaluate("() => window.roomserverDebug.sockets") > sockets
    after = await wait_video(counsellor, z_id, generation=generation + 1)
    await wait_video(counsellor, z_id, more_than=after["framesDecoded"], generation=after["generation"])
    await wait_video(citizen, c_id)
    await wait_js(counsellor, "(id) => document.querySelector(`.tile[data-peer='${id}']`)"
                              "?.dataset.connection === 'connected'", z_id, "the citizen connected again")
    # A reload within the grace period resumes too (the secret is in sessionStorage).
    await citizen.reload()
    await wait_state(citizen, "in-call")
    assert await self_id(citizen) == z_id
    await wait_video(counsellor, z_id, generation=after["generation"] + 1)


async def test_room_end(server, http, api_headers, new_page):
    room, citizen_token, counsellor, citizen = await counsellor_and_citizen_in_call(server, http, api_headers, new_page)
    await wait_video(counsellor, await self_id(citizen))

    await counsellor.get_by_role("button", name="Beratung beenden").click()
    dialog = counsellor.get_by_role("dialog", name="Beratung beenden?")
    await dialog.wait_for(timeout=WAIT_MS)
    await dialog.get_by_role("button", name="Beratung beenden").click()

    await wait_state(citizen, "ended")
    await citizen.get_by_role("heading", name="Die Beratung ist beendet.").wait_for(timeout=WAIT_MS)
    await wait_state(counsellor, "ended")
    assert await citizen.evaluate("(r) => sessionStorage.getItem('roomserver.resume.' + r)", room) is None

    # The citizen's link no longer works: in the same tab (reload) and in a new one.
    await citizen.reload()
    await wait_state(citizen, "error")
    assert await citizen.evaluate("() => document.body.dataset.errorCode") == "room_ended"
    again = await by_storage(new_page, server, "citizen-again", room, citizen_token)
    await wait_state(again, "error")
    assert await again.evaluate("() => document.body.dataset.errorCode") == "room_ended"
    await again.get_by_role("heading", name="Die Beratung ist beendet.").wait_for(timeout=WAIT_MS)


async def browser_and_python(server, http, api_headers) -> tuple[str, str, Participant]:
    """A room, the counsellor token its page joins with, and a Python participant (an expert) for it."""
    room = await create_room(http, api_headers)
    counsellor_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    expert_token = (await invite(http, api_headers, room, "expert", "Sonde"))["token"]
    return room, counsellor_token, Participant(str(server.make_url("/ws")).replace("http://", "ws://"), expert_token)


@pytest.mark.parametrize("first", ["browser", "python"])
async def test_room_with_aiortc(server, http, api_headers, new_page, first):
    """Browser and Python participant interoperate: either may be the newcomer who offers,
    and either may drop and resume (a fresh connection per peer, docs/protocol.md)."""
    room, counsellor_token, python = await browser_and_python(server, http, api_headers)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(python.close)
        if first == "python":
            await python.connect()
        page = await by_fragment(new_page, server, f"browser-{first}-first", room, counsellor_token)
        await wait_state(page, "in-call")
        if first == "browser":
            await python.connect()
        browser_id = await self_id(page)
        info = await wait_video(page, python.id)
        await python.wait_connected(browser_id, 30)
        assert await python.wait_frames(browser_id, "video", 5, 30) >= 5
        assert await python.wait_frames(browser_id, "audio", 5, 30) >= 5
        await page.locator(f'.tile[data-peer="{python.id}"]').get_by_text("Sonde").wait_for(timeout=WAIT_MS)

        # The Python side drops and resumes: the browser answers on a fresh connection.
        await python.drop(media=True)
        await python.resume()
        info = await wait_video(page, python.id, generation=info["generation"] + 1)
        await python.wait_connected(browser_id, 30)
        assert await python.wait_frames(browser_id, "video", 3, 30) >= 3

        # The browser drops and resumes: it offers on a fresh connection, Python answers.
        generation = python.link(browser_id).generation
        await page.evaluate("() => window.roomserverDebug.drop()")
        await wait_state(page, "in-call")
        await python.wait_until(lambda: python.link(browser_id) is not None
                                and python.link(browser_id).generation > generation, 30, "a fresh connection")
        await python.wait_connected(browser_id, 30)
        assert await python.wait_frames(browser_id, "video", 3, 30) >= 3
        # the resumed page made new links (their generation counts afresh): video is decoded again
        await wait_video(page, python.id)
        assert await self_id(page) == browser_id


# Holds every signal the page sends (in order) until window.__releaseSignals(): a test
# stand-in for a message still in flight. Injected by the test, not part of the page.
HOLD_PAGE_SIGNALS = """() => {
  const send = WebSocket.prototype.send;
  const held = [];
  window.__heldSignals = held;
  window.__holdingSignals = true;
  WebSocket.prototype.send = function (data) {
    if (window.__holdingSignals && typeof data === "string" && data.includes('"type":"signal"')) {
      held.push([this, data]);
      return;
    }
    return send.call(this, data);
  };
  window.__releaseSignals = () => {
    window.__holdingSignals = false;
    for (const [ws, data] of held.splice(0)) send.call(ws, data);
  };
}"""


async def test_room_both_resume_at_once(server, http, api_headers, new_page):
    """A restart or a Redis outage closes every socket at once and both sides resume, the
    second before the first one's offer is through. The later side's offer is the current
    session on both ends, whichever side is polite (docs/protocol.md, *Renegotiation after a
    resume*, rule 4). The later side here is the polite one, where politeness alone decided
    wrongly: both answered, both ignored the answers, and the picture never came back."""
    room, counsellor_token, python = await browser_and_python(server, http, api_headers)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(python.close)
        await python.connect()
        page = await by_fragment(new_page, server, "both-resume", room, counsellor_token)
        await wait_state(page, "in-call")
        browser_id = await self_id(page)
        await wait_video(page, python.id)
        await python.wait_connected(browser_id, 30)
        link = python.link(browser_id)
        generation, restarts = link.generation, link.restarts
        sockets = await page.evaluate("() => window.roomserverDebug.sockets")

        async def page_resumed() -> None:
            await wait_js(page, "(n) => window.roomserverDebug.sockets > n", sockets, "a new socket")
            await wait_state(page, "in-call")

        if python.id < browser_id:
            # The browser resumes first; its offer is still on the way when the (polite)
            # Python participant resumes and offers too.
            await page.evaluate(HOLD_PAGE_SIGNALS)
            await page.evaluate("() => window.roomserverDebug.drop()")
            await page_resumed()
            await wait_js(page, "() => window.__heldSignals.some(([, d]) => d.includes('\"offer\"'))",
                          what="the browser's offer")
            await python.drop()
            await python.resume()
            await python.wait_until(lambda: link.generation > generation and link.pc is not None
                                    and link.pc.signalingState == "have-local-offer", 30, "the Python offer")
            await page.evaluate("() => window.__releaseSignals()")
        else:
            # The Python participant resumes first; its offer is still on the way when the
            # (polite) browser resumes and offers too.
            held: list[dict[str, Any]] = []
            send = python.send

            async def hold(message: dict[str, Any]) -> None:
                if message.get("type") == "signal":
                    held.append(message)
                else:
                    await send(message)

            python.send = hold  # type: ignore[method-assign]
            await python.drop()
            await python.resume()
            await python.wait_until(lambda: any(m["data"].get("description", {}).get("type") == "offer" for m in held),
                                    30, "the Python offer")
            await page.evaluate("() => window.roomserverDebug.drop()")
            await page_resumed()
            await python.wait_until(lambda: link.restarts > restarts, 30, "the browser's offer answered")
            python.send = send  # type: ignore[method-assign]
            for message in held:
                await send(message)

        await wait_video(page, python.id)
        await python.wait_connected(browser_id, 30)
        assert await python.wait_frames(browser_id, "video", 3, 30) >= 3
        assert link.generation > generation
        # The later side ignored the earlier side's offer, and only that one.
        if python.id < browser_id:
            assert link.ignored_offers == 1
        else:
            counters = await page.evaluate("() => window.roomserverDebug.counters()")
            assert counters[python.id]["ignoredOffers"] == 1


async def test_room_deny_and_remove(server, http, api_headers, new_page):
    """The counsellor's panel: deny from the waiting room; release an expert after a confirmation."""
    room = await create_room(http, api_headers, waiting_room=True)
    counsellor_token = (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"]
    citizen_token = (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"]
    expert_token = (await invite(http, api_headers, room, "expert", "Herr Kaya"))["token"]
    counsellor = await by_fragment(new_page, server, "counsellor", room, counsellor_token)
    await wait_state(counsellor, "in-call")

    citizen = await by_storage(new_page, server, "citizen", room, citizen_token)
    await wait_state(citizen, "waiting")
    await open_pane(counsellor, "people")
    await counsellor.get_by_role("button", name="Abweisen: Ayşe").click()
    await wait_state(citizen, "denied")
    await citizen.get_by_role("heading", name="Sie wurden nicht eingelassen.").wait_for(timeout=WAIT_MS)

    expert = await by_fragment(new_page, server, "expert", room, expert_token)
    await wait_state(expert, "in-call")
    e_id = await self_id(expert)
    await wait_video(counsellor, e_id)
    # An expert is released, not removed: its own action and words.
    release = counsellor.get_by_role("button", name="Verabschieden: Herr Kaya")
    # Cancel first: nothing happens.
    await release.click()
    dialog = counsellor.get_by_role("dialog", name="Herr Kaya verabschieden?")
    assert "am Arbeitsplatz wieder" in await dialog.inner_text()
    await dialog.get_by_role("button", name="Abbrechen").click()
    await dialog.wait_for(state="hidden", timeout=WAIT_MS)
    assert await expert.evaluate("() => document.body.dataset.roomState") == "in-call"
    # Then confirm with the keyboard.
    await release.click()
    await dialog.get_by_role("button", name="Verabschieden").focus()
    await counsellor.keyboard.press("Enter")
    await wait_state(expert, "removed")
    await expert.get_by_role("heading", name="Sie wurden aus der Beratung verabschiedet.").wait_for(timeout=WAIT_MS)
    assert await expert.locator("#end-actions button, #end-actions a").count() == 0  # a link, not a desk: no way back
    await wait_js(counsellor, "() => document.getElementById('chat-log').textContent.includes('wurde verabschiedet')",
                  what="the release in the counsellor's log")
    await wait_js(counsellor, "(id) => !document.querySelector(`.tile[data-peer='${id}']`)", e_id, "the tile gone")
    assert await counsellor.evaluate("() => document.body.dataset.roomState") == "in-call"


async def test_room_page_shell_and_texts(server, http):
    """The shell: strict CSP, no caching, no inline script or style, every text in both catalogs."""
    from pathlib import Path

    r = await http.get("/room/r_abc123", headers={"Accept-Language": "de"})
    assert r.status == 200
    html = await r.text()
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    assert 'data-room="r_abc123"' in html and i18n.translate("de", "room.recording.text") in html
    assert "technisch nicht möglich" not in html  # anyone can film a screen: no such promise
    assert html.count(i18n.translate("de", "room.recording.title")) == 1  # said once (no footer saying it again)
    assert "data-staff" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html and "<style" not in html
    assert 'name="csrf-token"' not in html  # only for a signed-in staff member
    assert (await http.get("/room/..%2Fetc")).status == 404

    root = Path(__file__).resolve().parents[2] / "web"
    catalogs = {lang: json.loads((root / "static" / "i18n" / f"{lang}.json").read_text("utf-8")) for lang in ("de", "en")}
    used: set[str] = set()
    for name in ("static/js/room.js", "static/js/roomview.js", "static/js/tiles.js", "static/js/moderation.js",
                 "static/js/chatview.js", "templates/room.html"):
        used |= set(re.findall(r"""\bt\(\s*["'](room\.[A-Za-z0-9_.]+)["']""", (root / name).read_text("utf-8")))
    # Keys built at run time from protocol values.
    used |= {f"room.role.{r}" for r in ("counsellor", "citizen", "expert", "interpreter", "unknown")}
    used |= {f"room.end.{k}.{p}" for k in ("ended", "removed", "denied", "left", "replaced") for p in ("title", "text")}
    used |= {f"room.error.{c}.{p}" for p in ("title", "text") for c in (
        "unknown", "no_token", "token_invalid", "token_expired", "token_not_yet_valid", "token_wrong_room",
        "token_already_used", "token_revoked", "room_ended", "room_full", "room_not_found", "identity_in_use",
        "resume_unknown", "protocol")}
    used |= {f"room.people.{s}" for s in ("connected", "connecting", "reconnecting")}
    used |= {f"room.tile.{s}" for s in ("connecting", "reconnecting")}
    used |= {f"room.event.left_{r}" for r in ("left", "removed", "timeout", "ended", "released")}
    used |= {f"room.corner.{c}" for c in ("bottom-right", "bottom-left", "top-left", "top-right")}
    used |= {f"room.media.{m}" for m in ("NotAllowedError", "NotFoundError", "NotReadableError",
                                         "OverconstrainedError", "partial", "unsupported", "other")}
    for lang, catalog in catalogs.items():
        assert not sorted(k for k in used if k not in catalog), lang


async def test_room_page_carries_csrf_for_staff(server, services):
    """A signed-in counsellor's room page carries the session's CSRF token for the invite panel."""
    from tests.staff import add_staff, client, csrf_meta

    staff = add_staff(services, "weber", "counsellor")
    async with client(server) as session:
        r = await session.post("/api/v1/session", json={"username": staff.username, "password": staff.password})
        assert r.status == 200, await r.text()
        csrf = (await r.json())["csrf_token"]
        page = await session.get("/room/r_abc123")
        html = await page.text()
        assert csrf_meta(html) == csrf
        assert 'data-staff="counsellor"' in html  # the way back to the console when it is over
        assert "css/invite.css" in html and "css/callpanel.css" in html
