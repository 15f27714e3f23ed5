"""The citizen join page in headless Chromium with fake camera and microphone.

Happy path: the invite link opens the page, the token leaves the address bar, the
citizen consents (recorded on the server), sees the camera preview and the level
meter, passes the device and network check against the server's aiortc echo peer (a
round-trip figure, a verdict, and returned video decoded: ``framesDecoded > 0`` on the
echo connection) and is handed over to ``/room/{room}`` with the documented
sessionStorage object. The in-room page is stubbed here so the hand-over is looked at
exactly as the join page left it.

Every problem screen is reached the way a citizen would reach it: a link that expired,
was used, is early, belongs to an ended consultation, was withdrawn or is garbled; a
browser that denies the camera or has no devices (``getUserMedia`` replaced by an init
script, since the fake-media flags are per browser, not per context).
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime

from roomserver import i18n
from roomserver.core.roles import Role
from roomserver.core.tokens import TokenRecord
from roomserver.peer.echo import echo_of
from tests.support import create_room, invite, sql

WAIT_MS = 20_000

# Keep a handle on every RTCPeerConnection the page makes (for getStats in the test).
CAPTURE_PCS = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
})();
"""

# getUserMedia fails as the browser would when camera and microphone are blocked (or, with
# __media = "none", when the device has none); __media = "real" lets it through again.
FAKE_MEDIA_FAILURE = """
(() => {
  window.__media = "%s";
  const md = navigator.mediaDevices;
  const real = md.getUserMedia.bind(md);
  const realEnumerate = md.enumerateDevices.bind(md);
  md.getUserMedia = (constraints) => {
    if (window.__media === "denied") return Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
    if (window.__media === "none") return Promise.reject(new DOMException("Requested device not found", "NotFoundError"));
    return real(constraints);
  };
  md.enumerateDevices = () => (window.__media === "none" ? Promise.resolve([]) : realEnumerate());
})();
"""

ROOM_STUB = "<!doctype html><html lang=de><title>Raum</title><h1>Raum</h1></html>"


def no_page_errors(page) -> None:
    bad = [m for m in page.console_log if m.startswith("pageerror") or "Content Security Policy" in m]
    assert not bad, bad


async def open_link(new_page, url: str, name: str, *init_scripts: str, **context):
    page = await new_page(name, **context)
    for script in (CAPTURE_PCS, *init_scripts):
        await page.add_init_script(script)
    await page.route(re.compile(r".*/room/[^/?#]+(\?.*)?$"),
                     lambda route: route.fulfill(status=200, content_type="text/html", body=ROOM_STUB))
    await page.goto(url)
    return page


async def visible_screen(page, screen: str) -> None:
    await page.wait_for_selector(f"#screen-{screen}", state="visible", timeout=WAIT_MS)
    shown = await page.eval_on_selector_all(".screen", "els => els.filter(e => !e.hidden).map(e => e.id)")
    assert shown == [f"screen-{screen}"], shown


async def snapshot(page, artifacts, step: str) -> None:
    """Each screen of the happy path leaves a screenshot beside the fixture's final one."""
    path = artifacts / "screenshots" / f"join-{step}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)


async def test_invite_link_to_handover(server, http, api_headers, services, new_page, artifacts) -> None:
    room_id = await create_room(http, api_headers, title="Beratung Frau Yılmaz", waiting_room=True)
    inv = await invite(http, api_headers, room_id, "citizen", "Ayşe")
    assert inv["join_url"].endswith(f"/join/{room_id}#{inv['token']}")

    page = await open_link(new_page, inv["join_url"], "citizen")
    await visible_screen(page, "notice")
    # The token left the address bar (and never was in a request URL).
    assert await page.evaluate("location.hash") == ""
    assert inv["token"] not in page.url
    assert "Beratung Frau Yılmaz" in await page.inner_text("#notice-appointment")
    assert await page.evaluate("document.activeElement.id") == "notice-title"  # focus moved to the screen
    await snapshot(page, artifacts, "1-notice")

    # (a) consent, by keyboard
    await page.focus("#consent-yes")
    await page.keyboard.press("Enter")
    await visible_screen(page, "devices")
    consents = sql(services, "SELECT room_id, jti FROM consents")
    assert [(r["room_id"], r["jti"]) for r in consents] == [(room_id, inv["jti"])]

    # (b) preview, level meter, devices, name
    await page.wait_for_function("() => document.getElementById('preview').videoWidth > 0", timeout=WAIT_MS)
    await page.wait_for_function("() => Number(document.getElementById('level-meter').dataset.peak || 0) > 0",
                                 timeout=WAIT_MS)
    assert await page.eval_on_selector("#camera-select", "s => s.options.length") >= 1
    assert await page.eval_on_selector("#microphone-select", "s => s.options.length") >= 1
    assert await page.input_value("#name-input") == "Ayşe"
    # Keyboard: from the screen's heading, Tab walks every control in order, each with a visible ring.
    expected = ["reread-notice", "camera-select", "microphone-select", "speaker-select", "speaker-test", "name-input",
                "devices-next"]
    if not await page.is_visible("#speaker-field"):  # no setSinkId or no output device listed
        expected = [e for e in expected if not e.startswith("speaker")]
    await page.focus("#devices-title")
    order = []
    for _ in expected:
        await page.keyboard.press("Tab")
        order.append(await page.evaluate("""() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return [el.id, style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2];
        }"""))
    assert order == [[control, True] for control in expected], order
    assert "bereit" in await page.inner_text("#join-status")
    await page.fill("#name-input", "   ")
    await page.click("#devices-next")
    assert await page.is_visible("#name-error")
    assert await page.get_attribute("#name-input", "aria-invalid") == "true"
    await page.fill("#name-input", "Ayşe Yılmaz")
    await snapshot(page, artifacts, "2-devices")
    await page.click("#devices-next")

    # (c) the echo check: a round-trip figure, a verdict, and our video came back and was decoded
    await visible_screen(page, "check")
    await page.wait_for_selector("#check-verdict:not([hidden])", timeout=30_000)
    verdict = await page.get_attribute("#check-verdict", "data-verdict")
    assert verdict in ("good", "okay"), verdict  # loopback: nothing in the way
    rtt_ms = await page.get_attribute("#check-rtt", "data-ms")
    assert rtt_ms is not None and 0 <= int(rtt_ms) < 1000
    # in words a citizen understands, not "3 ms"
    assert await page.inner_text("#check-rtt") == i18n.translate("de", "join.check.speed.fast")
    assert "ms" not in await page.inner_text("#screen-check")
    assert await page.inner_text("#verdict-title") == i18n.translate("de", f"join.check.{verdict}.title")
    assert await page.inner_text("#check-video") == i18n.translate("de", "join.check.video_yes")
    decoded = await page.evaluate("""async () => {
        const pc = window.__pcs[window.__pcs.length - 1];
        let frames = 0;
        (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded; });
        return {frames, state: pc.connectionState};
    }""")
    assert decoded["frames"] > 0 and decoded["state"] == "connected", decoded
    await page.wait_for_function("() => document.getElementById('echo-video').videoWidth > 0", timeout=WAIT_MS)
    assert echo_of(server.app).active == 1
    await snapshot(page, artifacts, "3-check")

    # (d) hand-over
    await page.click("#join-button")
    await page.wait_for_url(re.compile(rf".*/room/{room_id}$"), timeout=WAIT_MS)
    handover = json.loads(await page.evaluate("sessionStorage.getItem('roomserver.join')"))
    assert set(handover) == {"room", "token", "name", "audioInput", "videoInput", "audioOutput"}
    assert (handover["room"], handover["token"], handover["name"]) == (room_id, inv["token"], "Ayşe Yılmaz")
    assert isinstance(handover["videoInput"], str) and handover["videoInput"]
    assert isinstance(handover["audioInput"], str) and handover["audioInput"]
    assert handover["audioOutput"] is None or isinstance(handover["audioOutput"], str)
    # Leaving the page closed the echo connection; the link is still unspent for the real join.
    for _ in range(200):
        if echo_of(server.app).active == 0:
            break
        await asyncio.sleep(0.05)
    assert echo_of(server.app).active == 0
    assert (await services.store.tokens.get(inv["jti"])).used_at is None
    no_page_errors(page)


async def test_language_switch_keeps_the_link(server, http, api_headers, new_page) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "Olena")
    page = await open_link(new_page, inv["join_url"], "citizen-en")
    await visible_screen(page, "notice")
    await page.click("nav.languages a[lang=en]")
    await page.wait_for_url(re.compile(r".*\?lang=en$"))
    await visible_screen(page, "notice")  # the token came from sessionStorage, not the (gone) fragment
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.inner_text("#notice-title") == i18n.translate("en", "join.notice.title")
    await page.click("#consent-no")
    await visible_screen(page, "declined")
    await page.click("#declined-back")
    await visible_screen(page, "notice")
    no_page_errors(page)


def _record(services, room_id: str, *, nbf: int, exp: int, role: Role = Role.CITIZEN,
            single_use: bool = False) -> tuple[str, str]:
    token, claims = services.codec.mint(sub=f"{role.value}:b", room=room_id, role=role, name="B", nbf=nbf,
                                        exp=exp, now=min(nbf, services.now()))
    services.store.blocking.tokens.record(TokenRecord(jti=claims.jti, room_id=room_id, role=role.value,
                                             identity=f"{role.value}:b", not_before=nbf, expires_at=exp,
                                             single_use=single_use, used_at=None, revoked_at=None),
                                 issued_by="tests", issued_at=services.now())
    return token, claims.jti


async def _problem(new_page, server, room_id: str, token: str, screen: str, name: str, lang: str = "de"):
    url = str(server.make_url(f"/join/{room_id}")) + (f"?lang={lang}" if lang != "de" else "") + f"#{token}"
    page = await open_link(new_page, url, name)
    await visible_screen(page, screen)
    title = i18n.translate(lang, f"join.{screen}.title")
    assert await page.inner_text(f"#screen-{screen} h1") == title
    assert await page.evaluate("document.activeElement.tagName") == "H1"
    no_page_errors(page)
    return page


async def test_expired_link(server, http, api_headers, services, new_page) -> None:
    room_id = await create_room(http, api_headers)
    now = services.now()
    token, _ = _record(services, room_id, nbf=now - 7200, exp=now - 3600)
    await _problem(new_page, server, room_id, token, "expired", "expired")


async def test_used_link(server, http, api_headers, services, new_page) -> None:
    room_id = await create_room(http, api_headers)
    now = services.now()
    token, jti = _record(services, room_id, nbf=now - 60, exp=now + 600, role=Role.INTERPRETER, single_use=True)
    await services.store.tokens.spend(jti, now)
    await _problem(new_page, server, room_id, token, "used", "used")


async def test_not_started_yet_says_when(server, http, api_headers, services, new_page) -> None:
    start = services.now() + 3 * 3600
    room_id = await create_room(http, api_headers, scheduled_start=datetime.fromtimestamp(start).astimezone().isoformat())
    inv = await invite(http, api_headers, room_id, "citizen", "A")
    page = await _problem(new_page, server, room_id, inv["token"], "notyet", "notyet")
    when = await page.inner_text("#notyet-start")
    expected = await page.evaluate(
        "s => new Intl.DateTimeFormat('de', {dateStyle: 'full', timeStyle: 'short'}).format(new Date(s * 1000))", start)
    assert when == i18n.translate("de", "join.notyet.start", time=expected)
    assert await page.is_visible("#notyet-from")
    # "Check again" asks the server again (still early: same screen).
    await page.click("#screen-notyet button.recheck")
    await visible_screen(page, "notyet")


async def test_ended_consultation(server, http, api_headers, new_page) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "A")
    assert (await http.post(f"/api/v1/rooms/{room_id}/end", headers=api_headers)).status == 200
    await _problem(new_page, server, room_id, inv["token"], "ended", "ended", lang="en")


async def test_withdrawn_and_invalid_links(server, http, api_headers, new_page) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "A")
    assert (await http.delete(f"/api/v1/rooms/{room_id}/invites/{inv['jti']}", headers=api_headers)).status == 204
    await _problem(new_page, server, room_id, inv["token"], "revoked", "revoked")
    await _problem(new_page, server, room_id, inv["token"][:-6], "invalid", "garbled")
    other = await create_room(http, api_headers)
    fresh = await invite(http, api_headers, room_id, "citizen", "B")
    await _problem(new_page, server, other, fresh["token"], "invalid", "wrong-room")
    page = await new_page("no-token")
    await page.goto(str(server.make_url(f"/join/{room_id}")))
    await visible_screen(page, "invalid")


async def test_camera_permission_denied_then_allowed(server, http, api_headers, new_page) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "A")
    page = await open_link(new_page, inv["join_url"], "denied", FAKE_MEDIA_FAILURE % "denied")
    await visible_screen(page, "notice")
    await page.click("#consent-yes")
    await visible_screen(page, "permission")
    assert await page.inner_text("#permission-title") == i18n.translate("de", "join.permission.title")
    assert i18n.translate("de", "join.permission.step2") in await page.inner_text("#screen-permission")
    # Still blocked: "try again" comes back to the same help.
    await page.click("#screen-permission button.retry-media")
    await visible_screen(page, "permission")
    # The person allows it in the browser and tries again: on to the preview.
    await page.evaluate("window.__media = 'real'")
    await page.click("#screen-permission button.retry-media")
    await visible_screen(page, "devices")
    await page.wait_for_function("() => document.getElementById('preview').videoWidth > 0", timeout=WAIT_MS)
    no_page_errors(page)


async def test_no_camera_or_microphone(server, http, api_headers, new_page) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "A")
    page = await open_link(new_page, inv["join_url"], "nodevice", FAKE_MEDIA_FAILURE % "none")
    await visible_screen(page, "notice")
    await page.click("#consent-yes")
    await visible_screen(page, "nodevice")
    assert await page.inner_text("#nodevice-title") == i18n.translate("de", "join.nodevice.title")
    no_page_errors(page)
