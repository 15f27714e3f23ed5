"""Accessibility (BITV 2.0 / EN 301 549 / WCAG 2.1 AA) in headless Chromium.

* axe-core on every page in every language the page offers: no violation of impact
  serious or critical (WCAG 2.0/2.1 A and AA rules). axe-core is an npm package pinned in
  ``tests/browser/axe/package.json``; the fixture runs ``npm ci`` there when it is missing
  and skips with the reason when npm is not available. The pages' strict CSP forbids
  injected scripts, so these contexts are made with ``bypass_csp=True``.
* A keyboard-only run through the citizen's whole path and the counsellor's
  (only ``page.keyboard``: Tab, Shift+Tab, Enter, Space, Escape; typing into fields).
* Right to left really is right to left in Arabic and Farsi (rendered page, screenshots).
"""

from __future__ import annotations

import json
import re
from contextlib import AsyncExitStack
from typing import Any

import pytest

from roomserver import i18n
from tests.browser.desks import DEPT, add_departments, add_expert, open_desk
from tests.browser.pages import open_pane
from tests.staff import add_staff
from tests.support import create_room, invite

WAIT_MS = 30_000
STAFF = i18n.STAFF_LANGUAGES
CITIZEN = i18n.CITIZEN_LANGUAGES


def base(server) -> str:
    return str(server.make_url("")).rstrip("/")


async def visible(page, selector: str, timeout: int = WAIT_MS) -> None:
    await page.wait_for_selector(selector, state="visible", timeout=timeout)


async def room_state(page, state: str) -> None:
    await page.wait_for_function("(s) => document.body.dataset.roomState === s", arg=state, timeout=WAIT_MS,
                                 polling=200)


async def sign_in(page, server, staff, lang: str, next_path: str = "/console") -> None:
    """The sign-in form in ``lang`` (the choice is remembered for the staff pages too)."""
    await page.goto(f"{base(server)}/signin?lang={lang}&next={next_path}")
    await page.fill("#signin-username", staff.username)
    await page.fill("#signin-password", staff.password)
    await page.press("#signin-password", "Enter")
    await page.wait_for_url(re.compile(re.escape(next_path) + "$"), timeout=WAIT_MS)


# ====================================================================== axe-core


@pytest.mark.parametrize("lang", STAFF)
async def test_axe_staff_pages(server, services, new_page, axe, lang) -> None:
    """Index, sign-in (with an error), console (list, create, invite dialog), the 403 page."""
    staff = add_staff(services, f"clara{lang}", "counsellor", display_name="Clara Beraterin")
    page = await new_page(f"staff-{lang}", bypass_csp=True)
    await page.goto(f"{base(server)}/?lang={lang}")
    assert await page.get_attribute("html", "lang") == lang
    await axe.check(page, f"index/{lang}")

    await page.goto(f"{base(server)}/signin?lang={lang}")
    await axe.check(page, f"signin/{lang}")
    await page.fill("#signin-username", staff.username)
    await page.fill("#signin-password", "wrong-password")
    await page.press("#signin-password", "Enter")
    await visible(page, "#signin-error")
    await axe.check(page, f"signin-error/{lang}")

    await sign_in(page, server, staff, lang)
    await page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    assert await page.get_attribute("html", "lang") == lang
    await axe.check(page, f"console-empty/{lang}")
    await page.fill("#create-name", "Beratung Aufenthalt")
    await page.click("#create-submit")
    row = page.locator("#rooms-body tr").first
    await row.wait_for(timeout=WAIT_MS)
    await axe.check(page, f"console-list/{lang}")
    await row.locator("button", has_text=i18n.translate(lang, "console.invite")).click()
    await visible(page, "#invite-dialog")
    await page.locator("#invite-dialog input[type=text]").first.fill("Frau M.")
    await page.locator("#invite-dialog button", has_text=i18n.translate(lang, "invite.create")).click()
    await page.wait_for_function(
        "() => (document.querySelector('.invite-link') || {}).value?.includes('/j/')", timeout=WAIT_MS)
    await axe.check(page, f"console-invite/{lang}")
    await page.keyboard.press("Escape")

    await page.goto(f"{base(server)}/home")
    await axe.check(page, f"home/{lang}")

    # A counsellor on the operators' page: the plain 403 page.
    response = await page.goto(f"{base(server)}/operator")
    assert response.status == 403
    await axe.check(page, f"forbidden/{lang}")
    axe.assert_clean()


@pytest.mark.parametrize("lang", CITIZEN)
async def test_axe_join_page(server, http, api_headers, new_page, axe, lang) -> None:
    """Every join screen a citizen sees on the happy path, the refusal of consent, a problem screen."""
    room_id = await create_room(http, api_headers, title="Beratung")
    inv = await invite(http, api_headers, room_id, "citizen", name="Ayşe")
    page = await new_page(f"join-{lang}", bypass_csp=True)
    await page.goto(f"{base(server)}/join/{room_id}?lang={lang}#{inv['token']}")
    await visible(page, "#screen-notice")
    assert await page.get_attribute("html", "dir") == i18n.direction(lang)
    await axe.check(page, f"join-notice/{lang}")
    await page.click("#consent-no")
    await visible(page, "#screen-declined")
    await axe.check(page, f"join-declined/{lang}")
    await page.click("#declined-back")
    await visible(page, "#screen-notice")
    await page.click("#consent-yes")
    await visible(page, "#screen-devices")
    await page.wait_for_function("() => document.getElementById('level-meter') && "
                                 "document.getElementById('camera-select').options.length > 0", timeout=WAIT_MS)
    await page.fill("#name-input", "")
    await page.click("#devices-next")
    await visible(page, "#name-error")
    await axe.check(page, f"join-devices-error/{lang}")
    await page.fill("#name-input", "Ayşe")
    await page.click("#devices-next")
    await visible(page, "#screen-check")
    await page.wait_for_selector("#check-verdict:not([hidden])", timeout=WAIT_MS)
    await axe.check(page, f"join-check/{lang}")

    bad = await new_page(f"join-invalid-{lang}", bypass_csp=True)
    await bad.goto(f"{base(server)}/join/{room_id}?lang={lang}#not-a-token")
    await visible(bad, "#screen-invalid")
    await axe.check(bad, f"join-invalid/{lang}")
    axe.assert_clean()


@pytest.mark.parametrize("lang", CITIZEN)
async def test_axe_room_page(server, http, api_headers, new_page, axe, lang) -> None:
    """The room for a citizen (waiting, in the call, chat open, ended) and a counsellor (lobby, call, dialog)."""
    room_id = await create_room(http, api_headers, title="Beratung", waiting_room=True)
    counsellor = await invite(http, api_headers, room_id, "counsellor", name="Clara")
    citizen = await invite(http, api_headers, room_id, "citizen", name="Ayşe")

    host = await new_page(f"room-counsellor-{lang}", bypass_csp=True)
    await host.goto(f"{base(server)}/room/{room_id}?lang={lang}#{counsellor['token']}")
    await room_state(host, "in-call")
    assert await host.get_attribute("html", "dir") == i18n.direction(lang)
    await axe.check(host, f"room-counsellor-alone/{lang}")

    guest = await new_page(f"room-citizen-{lang}", bypass_csp=True)
    await guest.goto(f"{base(server)}/join/{room_id}?lang={lang}")  # the citizen's pick, remembered in rs_lang
    entry = {"room": room_id, "token": citizen["token"], "name": "Ayşe", "audioInput": None, "videoInput": None,
             "audioOutput": None}
    await guest.evaluate("(e) => sessionStorage.setItem('roomserver.join', e)", json.dumps(entry))
    await guest.goto(f"{base(server)}/room/{room_id}")  # no ?lang: the remembered choice decides
    assert await guest.get_attribute("html", "lang") == lang
    await room_state(guest, "waiting")
    await axe.check(guest, f"room-citizen-waiting/{lang}")
    await host.wait_for_selector("#people-badge:not(:empty)", timeout=WAIT_MS)
    await axe.check(host, f"room-counsellor-knock/{lang}")
    await open_pane(host, "people")
    await host.wait_for_selector("#lobby li button", timeout=WAIT_MS)
    await axe.check(host, f"room-counsellor-lobby/{lang}")
    await host.locator("#lobby li button").first.click()  # admit
    await room_state(guest, "in-call")
    await host.wait_for_selector("#tiles li:nth-child(2)", timeout=WAIT_MS)
    await axe.check(guest, f"room-citizen-call/{lang}")
    await guest.wait_for_function("() => window.roomserverDebug.chatOpen() > 0", timeout=WAIT_MS)
    await open_pane(guest, "chat")
    await guest.fill("#chat-input", "Hallo")
    await guest.press("#chat-input", "Enter")
    await host.wait_for_selector("#chat-badge:not(:empty)", timeout=WAIT_MS)
    await axe.check(guest, f"room-citizen-chat/{lang}")
    await axe.check(host, f"room-counsellor-call/{lang}")
    await host.click("#ctl-end")
    await visible(host, "#confirm")
    await axe.check(host, f"room-counsellor-confirm/{lang}")
    await host.click("#confirm-ok")
    await room_state(guest, "ended")
    await axe.check(guest, f"room-citizen-ended/{lang}")
    await axe.check(host, f"room-counsellor-ended/{lang}")
    axe.assert_clean()


NO_SOCKET = """window.WebSocket = class { constructor() { this.readyState = 0; }
    addEventListener() {} send() {} close() {} };"""


async def test_axe_every_state_of_the_room_page(server, http, api_headers, services, new_page, axe) -> None:
    """Each state of the room page, as the counsellor (with the staff panels), a citizen on a phone and an
    expert at a desk see it: connecting, alone, a knock, every pane of the drawer, both views, the dialog,
    the end screens, an error; 0 serious or critical."""
    from roomserver.peer.participant import Participant

    add_departments(services)
    staff = add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")
    erika = add_expert(services, "erika", "Erika Expertin")
    ws_url = str(server.make_url("/ws")).replace("http://", "ws://")

    # connecting: a socket that never answers keeps the page on its first screen
    stuck = await new_page("axe-connecting", bypass_csp=True)
    await stuck.add_init_script(NO_SOCKET)
    room0 = await create_room(http, api_headers)
    await stuck.goto(f"{base(server)}/room/{room0}#{(await invite(http, api_headers, room0, 'citizen', 'A'))['token']}")
    await visible(stuck, "#screen-connecting")
    await axe.check(stuck, "room-connecting")
    bad = await new_page("axe-error", bypass_csp=True)
    await bad.goto(f"{base(server)}/room/{room0}#not-a-token")
    await room_state(bad, "error")
    await axe.check(bad, "room-error")

    host = await new_page("axe-counsellor", bypass_csp=True)
    await sign_in(host, server, staff, "de")
    await host.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    await host.fill("#create-name", "Beratung Aufenthalt")
    await host.click("#create-submit")
    row = host.locator("#rooms-body tr").first
    await row.wait_for(timeout=WAIT_MS)
    room = await row.get_attribute("data-room-id")
    await row.locator("button[data-action=open]").click()
    await room_state(host, "in-call")
    await axe.check(host, "room-alone")

    async with AsyncExitStack() as stack:
        citizen = Participant(ws_url, (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"], fps=5)
        stack.push_async_callback(citizen.close)
        await citizen.connect()
        await host.wait_for_selector("#people-badge:not(:empty)", timeout=WAIT_MS)
        await axe.check(host, "room-knock")
        await open_pane(host, "people")
        await axe.check(host, "room-people-lobby")
        await host.locator("#lobby button.admit").click()
        interpreter = Participant(ws_url, (await invite(http, api_headers, room, "interpreter", "Dana DGS"))["token"],
                                  fps=5)
        stack.push_async_callback(interpreter.close)
        await interpreter.connect()
        await host.wait_for_selector("#people button.release", timeout=WAIT_MS)
        await axe.check(host, "room-people-in-call")

        await open_pane(host, "expert")
        await host.select_option("#call-panel select", "department:jobcenter")  # nobody at that desk
        await host.click("#call-panel .call-start")
        await host.wait_for_selector(".call-status[data-state=no_one]", timeout=WAIT_MS)
        await axe.check(host, "room-expert-nobody")
        desk = await open_desk(server, new_page, erika, "axe-desk", bypass_csp=True)
        await host.select_option("#call-panel select", f"department:{DEPT}")
        await host.click("#call-panel .call-start")
        await host.wait_for_selector(".call-status[data-state=ringing]", timeout=WAIT_MS)
        await axe.check(host, "room-expert-ringing")
        await desk.wait_for_selector(".desk-call", timeout=WAIT_MS)
        await axe.check(desk, "desk-ringing")
        await desk.locator(".desk-accept").click()
        await room_state(desk, "in-call")

        await open_pane(host, "invite")
        await host.fill("#invite-panel input[type=text]", "Herr Yıldız")
        await host.click("#invite-panel button[type=submit]")
        await host.wait_for_selector(".invite-qr-figure:not([hidden])", timeout=WAIT_MS)
        await axe.check(host, "room-invite")

        await open_pane(host, "chat")
        await host.wait_for_function("() => window.roomserverDebug.chatOpen() > 0", timeout=WAIT_MS)
        await host.fill("#chat-input", "Haben Sie Ihren Pass dabei?")
        await host.press("#chat-input", "Enter")
        await axe.check(host, "room-chat")
        await host.click("#drawer-close")

        await host.click("#ctl-layout")
        await host.locator("#tiles button.pin").first.click()
        await axe.check(host, "room-speaker-view-pinned")
        await open_pane(host, "people")
        await host.locator("#people button.release").first.click()
        await visible(host, "#confirm")
        await axe.check(host, "room-release-dialog")
        await host.click("#confirm-cancel")

        # the expert leaves by mistake: her end screen, and her desk with the way back
        await desk.click("#ctl-leave")
        await room_state(desk, "left")
        await axe.check(desk, "room-expert-left")
        await desk.click("#end-actions a")
        await desk.wait_for_selector("#returns-section:not([hidden])", timeout=WAIT_MS)
        await axe.check(desk, "desk-returns")

        # a citizen on a phone: the call and the chat sheet
        phone = await new_page("axe-phone", bypass_csp=True, viewport={"width": 390, "height": 844}, is_mobile=True,
                               has_touch=True)
        token = (await invite(http, api_headers, room, "citizen", "Olena"))["token"]
        await phone.goto(f"{base(server)}/room/{room}#{token}")
        await room_state(phone, "waiting")
        await axe.check(phone, "room-phone-waiting")
        await host.locator("#lobby button.admit").click()
        await room_state(phone, "in-call")
        await axe.check(phone, "room-phone")
        await phone.tap("#ctl-chat")
        await visible(phone, "#pane-chat")
        await axe.check(phone, "room-phone-chat")

        await host.click("#ctl-end")
        await host.click("#confirm-ok")
        await room_state(host, "ended")
        await axe.check(host, "room-counsellor-ended")
        await room_state(phone, "ended")
        await axe.check(phone, "room-phone-ended")
    axe.assert_clean()


async def test_axe_reports_a_planted_violation(server, new_page, axe) -> None:
    """The harness really finds something: a nameless button and a low-contrast text are reported."""
    page = await new_page("axe-planted", bypass_csp=True)
    await page.goto(f"{base(server)}/")
    await page.evaluate("""() => {
        const b = document.createElement('button'); document.querySelector('main').append(b);
        const p = document.createElement('p'); p.textContent = 'kaum lesbar'; p.style.color = '#ccc';
        document.querySelector('main').append(p);
    }""")
    await axe.check(page, "planted")
    found = "\n".join(axe.found)
    assert "button-name" in found and "color-contrast" in found, found


# ====================================================================== keyboard only

FOCUSED = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const ring = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2) || style.boxShadow !== 'none';
    const byIds = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
        .map((id) => document.getElementById(id)?.textContent || '').join(' ');
    const name = (el.getAttribute('aria-label') || byIds || (el.labels && el.labels[0] && el.labels[0].textContent)
        || el.textContent || el.getAttribute('title') || '').trim();
    return {id: el.id, tag: el.tagName.toLowerCase(), cls: el.className, name: name.slice(0, 80), ring};
}"""


async def tab_to(page, selector: str, *, max_tabs: int = 80) -> dict[str, Any]:
    """Press Tab until ``selector`` has the focus; it must show a focus ring and have an accessible name."""
    path = []
    for _ in range(max_tabs):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            info = await page.evaluate(FOCUSED)
            assert info["ring"], f"no visible focus on {selector}: {info}"
            assert info["name"], f"no accessible name on {selector}: {info}"
            return info
        info = await page.evaluate(FOCUSED)
        path.append(f"{info['tag']}#{info['id']}" if info else "body")
    raise AssertionError(f"Tab never reached {selector}; went through: {path}")


async def press(page, selector: str, key: str = "Enter") -> None:
    await tab_to(page, selector)
    await page.keyboard.press(key)


ACTIVE = "() => document.activeElement ? (document.activeElement.id || document.activeElement.className) : null"


async def tabs_to(page, selector: str, *, max_tabs: int = 30) -> int:
    """How many Tab presses from the current focus reach ``selector`` (the focus stays there)."""
    for n in range(1, max_tabs + 1):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            return n
    raise AssertionError(f"Tab never reached {selector}")


async def test_keyboard_only_citizen_and_counsellor(server, http, api_headers, services, new_page, artifacts,
                                                    axe) -> None:
    """Both whole paths with the keyboard alone; the citizen in Turkish, the counsellor in German.

    Admitting a citizen, calling an expert, chatting and leaving work without a mouse, and after
    every change of state the focus is where a screen-reader user needs it. On the way, axe-core
    also looks at the states only this path reaches (the staff panels while an expert call is on).
    """
    from roomserver.peer.participant import Participant

    staff = add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")
    add_departments(services)
    expert = add_expert(services, "erika", "Erika Expertin")

    # --- the counsellor: sign in, create (with a waiting room), invite (keyboard only)
    host = await new_page("kbd-counsellor", bypass_csp=True)
    await host.goto(f"{base(server)}/signin?next=/console")
    await tab_to(host, "#signin-username")
    await host.keyboard.type(staff.username)
    await tab_to(host, "#signin-password")
    await host.keyboard.type(staff.password)
    await host.keyboard.press("Enter")
    await host.wait_for_url(re.compile(r"/console$"), timeout=WAIT_MS)
    await host.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    await tab_to(host, "#create-name")
    await host.keyboard.type("Beratung Aufenthalt")
    await press(host, "#create-submit")
    await host.wait_for_selector("#rooms-body tr[data-room-id]", timeout=WAIT_MS)
    room_id = await host.get_attribute("#rooms-body tr[data-room-id]", "data-room-id")
    await press(host, "#rooms-body button[data-action=invite]")
    await visible(host, "#invite-dialog")
    assert await host.evaluate("() => document.getElementById('invite-dialog').contains(document.activeElement)")
    await host.keyboard.type("Ayşe Yılmaz")
    await press(host, "#invite-panel button[type=submit]")
    await host.wait_for_function(
        "() => (document.querySelector('.invite-link') || {}).value?.includes('/j/')", timeout=WAIT_MS)
    join_url = await host.locator(".invite-link").input_value()
    await host.keyboard.press("Escape")
    assert not await host.evaluate("() => document.getElementById('invite-dialog').open")
    await press(host, "#rooms-body button[data-action=open]")
    await host.wait_for_url(re.compile(rf"/room/{room_id}$"), timeout=WAIT_MS)
    await room_state(host, "in-call")
    # Entering the room: the focus is on the call's heading; the first Tab reaches the first control.
    assert await host.evaluate(ACTIVE) == "call-title"
    assert await tabs_to(host, "#ctl-mic") == 1

    # --- the citizen: short link, language, consent, devices, check (keyboard only)
    guest = await new_page("kbd-citizen")
    await guest.goto(join_url)
    await visible(guest, "#screen-notice")
    # The heading has the focus and comes first; the languages right after it, before the notice.
    assert await guest.evaluate(ACTIVE) == "notice-title"
    await guest.keyboard.press("Tab")
    assert await guest.evaluate("() => document.activeElement.closest('nav.languages') !== null")
    await press(guest, "nav.languages a[lang=tr]")
    await guest.wait_for_function("() => document.documentElement.lang === 'tr'", timeout=WAIT_MS)
    await visible(guest, "#screen-notice")
    await press(guest, "#consent-yes", " ")  # Space activates a button as well
    await visible(guest, "#screen-devices")
    await guest.wait_for_function("() => document.getElementById('camera-select').options.length > 0",
                                  timeout=WAIT_MS)
    await tab_to(guest, "#name-input")
    await guest.keyboard.press("Control+A")
    await guest.keyboard.type("Ayşe")
    await press(guest, "#devices-next")
    await visible(guest, "#screen-check")
    await guest.wait_for_selector("#check-verdict:not([hidden])", timeout=WAIT_MS)
    assert await guest.inner_text("#join-status")  # the live region said what happened
    await press(guest, "#join-button")

    # --- waiting room: the room page keeps the language; the counsellor hears the knock, admits by keyboard
    await guest.wait_for_url(re.compile(rf"/room/{room_id}$"), timeout=WAIT_MS)
    assert await guest.get_attribute("html", "lang") == "tr"
    await room_state(guest, "waiting")
    assert await guest.evaluate(ACTIVE) == "waiting-title"
    await host.wait_for_selector("#people-badge:not(:empty)", timeout=WAIT_MS)
    await press(host, "#ctl-people")
    admit = i18n.translate("de", "room.lobby.admit_label", name="Ayşe")
    await host.wait_for_selector(f'#lobby button[aria-label="{admit}"]', timeout=WAIT_MS)
    # The pane opened on the one waiting: Enter admits her.
    assert await host.evaluate("() => document.activeElement.getAttribute('aria-label')") == admit
    await host.keyboard.press("Enter")
    await room_state(guest, "in-call")
    # Admitted: the focus is on the call's heading (read out), not on the page or a tile.
    assert await guest.evaluate(ACTIVE) == "call-title"
    await guest.wait_for_function("(t) => document.getElementById('announcer').textContent.includes(t)",
                                  arg=i18n.translate("tr", "room.announce.entered_with", count=1).split(".")[0],
                                  timeout=WAIT_MS)
    # On the counsellor's side the focus stays in the waiting room's list: on its heading, now it is empty.
    await host.wait_for_function("() => document.activeElement?.id === 'lobby-title'", timeout=WAIT_MS)

    # --- the sign-language interpreter joins; the citizen pins the tile by keyboard
    ws_url = str(server.make_url("/ws")).replace("http://", "ws://")
    interpreter = Participant(ws_url, (await invite(http, api_headers, room_id, "interpreter", "Dana DGS"))["token"])
    try:
        await interpreter.connect()
        # "Someone joined" reaches the citizen's screen reader through the chat log (role=log, polite).
        joined = i18n.translate("tr", "room.event.joined", name="Dana DGS",
                                role=i18n.translate("tr", "room.role.interpreter"))
        await guest.wait_for_function("(t) => document.getElementById('chat-log').textContent"
                                      ".replace(/[\u2068\u2069]/g, '').includes(t)", arg=joined, timeout=WAIT_MS)
        pin = i18n.translate("tr", "room.tile.pin_label", name="Dana DGS")
        await guest.wait_for_selector(f'#tiles button[aria-label="{pin}"]', timeout=WAIT_MS)
        await press(guest, f'#tiles button[aria-label="{pin}"]', " ")
        assert await guest.get_attribute(f'#tiles button[aria-label="{pin}"]', "aria-pressed") == "true"
        assert await guest.locator("#tiles li.pinned").count() == 1
        await guest.wait_for_function("(t) => document.getElementById('announcer').textContent.includes(t)",
                                      arg=i18n.translate("tr", "room.announce.pinned", name="Dana DGS"),
                                      timeout=WAIT_MS)

        # --- chat both ways: the chat is a few Tabs from the call's heading, and opens on its input
        for page in (guest, host):  # the chat reaches the others once their channels are open
            await page.wait_for_function("() => window.roomserverDebug.chatOpen() > 0", timeout=WAIT_MS)
        await guest.focus("#call-title")
        assert await tabs_to(guest, "#ctl-chat") <= 5
        await guest.keyboard.press("Enter")
        assert await guest.evaluate(ACTIVE) == "chat-input"
        assert await guest.get_attribute("#chat-log", "role") == "log"
        await guest.keyboard.type("Merhaba")
        await guest.keyboard.press("Enter")
        await host.wait_for_function("() => [...document.querySelectorAll('#chat-log .chat-text')]"
                                     ".some((n) => n.textContent === 'Merhaba')", timeout=WAIT_MS)
        await press(host, "#ctl-chat")
        assert await host.evaluate(ACTIVE) == "chat-input"
        await host.keyboard.type("Guten Tag")
        await host.keyboard.press("Enter")
        await guest.wait_for_function("() => [...document.querySelectorAll('#chat-log .chat-text')]"
                                      ".some((n) => n.textContent === 'Guten Tag')", timeout=WAIT_MS)
        await host.keyboard.press("Escape")  # the drawer closes; the focus goes back to its button
        assert await host.evaluate(ACTIVE) == "ctl-chat"

        # --- the counsellor switches in an expert of the foreigners' office; she accepts at her desk
        desk = await open_desk(server, new_page, expert, "kbd-desk")
        await press(host, "#ctl-expert")
        assert await host.evaluate("() => document.activeElement.matches('#call-panel select')")
        await host.wait_for_function(f"""() => [...document.querySelectorAll('#call-panel option')]
            .some((o) => o.value === 'department:{DEPT}')""", timeout=WAIT_MS)
        for _ in range(20):  # arrow through the closed list to the office
            if await host.eval_on_selector("#call-panel select", "s => s.value") == f"department:{DEPT}":
                break
            await host.keyboard.press("ArrowDown")
        assert await host.eval_on_selector("#call-panel select", "s => s.value") == f"department:{DEPT}"
        await press(host, "#call-panel button.call-start")
        await host.wait_for_selector(".call-status[data-state=ringing]", timeout=WAIT_MS)
        await axe.check(host, "room-counsellor-call-ringing/de")
        await desk.wait_for_selector(".desk-call", timeout=WAIT_MS)
        accept = desk.locator(".desk-call button").first
        await desk.wait_for_function("() => document.activeElement?.classList.contains('desk-call')",
                                     timeout=WAIT_MS)
        await desk.keyboard.press("Tab")
        assert await accept.evaluate("b => b === document.activeElement")
        await desk.keyboard.press("Enter")
        await desk.wait_for_url(re.compile(rf"/room/{room_id}$"), timeout=WAIT_MS)
        await room_state(desk, "in-call")
        assert await desk.evaluate(ACTIVE) == "call-title"
        await host.wait_for_selector("#tiles li:nth-child(4)", timeout=WAIT_MS)
        await axe.check(host, "room-counsellor-with-call-panel/de")
        await press(host, "#ctl-invite")
        assert await host.evaluate("() => document.activeElement.matches('#invite-panel input[type=text]')")
        await axe.check(host, "room-counsellor-invite-pane/de")
        await host.keyboard.press("Escape")

        # --- the citizen leaves (focus on the end's heading); the counsellor ends (dialog by keyboard)
        await press(guest, "#ctl-leave")
        await room_state(guest, "left")
        assert await guest.evaluate(ACTIVE) == "end-title"
        assert await guest.inner_text("#end-title") == i18n.translate("tr", "room.end.left.title")
        left = i18n.translate("de", "room.event.left_left", name="Ayşe")
        await host.wait_for_function("(t) => document.getElementById('chat-log').textContent"
                                     ".replace(/[\u2068\u2069]/g, '').includes(t)", arg=left, timeout=WAIT_MS)
        await press(host, "#ctl-end")
        await host.wait_for_function("() => document.getElementById('confirm').open", timeout=WAIT_MS)
        assert await host.evaluate(ACTIVE) == "confirm-cancel"  # the safe choice first
        await press(host, "#confirm-ok")
        await room_state(host, "ended")
        assert await host.evaluate(ACTIVE) == "end-title"
        await tab_to(host, "#end-actions a")  # and on to the console
        assert await host.evaluate("() => document.activeElement.getAttribute('href')") == "/console"
        axe.assert_clean()
    finally:
        await interpreter.close()


# ====================================================================== right to left


@pytest.mark.parametrize("lang", sorted(i18n.RTL))
async def test_right_to_left_really_is_right_to_left(server, http, api_headers, new_page, artifacts, lang) -> None:
    room_id = await create_room(http, api_headers, title="Beratung", waiting_room=True)
    inv = await invite(http, api_headers, room_id, "citizen", name="Ayşe")
    shots = artifacts / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page = await new_page(f"rtl-{lang}", locale={"ar": "ar-SY", "fa": "fa-IR"}[lang])
    await page.goto(f"{base(server)}/join/{room_id}#{inv['token']}")  # Accept-Language picks it
    await visible(page, "#screen-notice")

    async def check_rtl(heading: str, where: str) -> None:
        assert await page.evaluate("() => document.documentElement.dir") == "rtl", where
        assert await page.get_attribute("html", "lang") == lang
        box = await page.evaluate("""(sel) => {
            const h = document.querySelector(sel);
            const range = document.createRange(); range.selectNodeContents(h);
            const text = range.getBoundingClientRect(), main = document.querySelector('main').getBoundingClientRect();
            return {direction: getComputedStyle(h).direction, align: getComputedStyle(h).textAlign,
                    textLeft: text.left, textRight: text.right, mainLeft: main.left, mainRight: main.right,
                    width: document.documentElement.clientWidth};
        }""", heading)
        assert box["direction"] == "rtl", (where, box)
        # The heading's text hugs the right edge of the content, not the left one.
        assert box["mainRight"] - box["textRight"] < box["textLeft"] - box["mainLeft"], (where, box)
        assert box["textRight"] > box["width"] / 2, (where, box)
        await page.screenshot(path=str(shots / f"rtl-{lang}-{where}.png"), full_page=True)

    await check_rtl("#notice-title", "join-notice")
    # The language picker lists the languages from the right: German (the first) right of English.
    first, second = await page.evaluate("""() => [...document.querySelectorAll('nav.languages a')]
        .slice(0, 2).map((a) => a.getBoundingClientRect().left)""")
    assert first > second
    await page.click("#consent-yes")
    await visible(page, "#screen-devices")
    await check_rtl("#devices-title", "join-devices")

    entry = {"room": room_id, "token": inv["token"], "name": "Ayşe", "audioInput": None, "videoInput": None,
             "audioOutput": None}
    await page.evaluate("(e) => sessionStorage.setItem('roomserver.join', e)", json.dumps(entry))
    await page.goto(f"{base(server)}/room/{room_id}")
    await room_state(page, "waiting")
    # The waiting room's heading is centred by design and reads right to left; in the header, the brand
    # starts on the right and the recording notice sits at the (left) end, its marker line on its right edge.
    assert await page.evaluate("() => getComputedStyle(document.getElementById('waiting-title')).direction") == "rtl"
    await check_rtl(".brand", "room-waiting")
    sides = await page.evaluate("""() => { const n = document.getElementById('recording-notice'), s = getComputedStyle(n);
        const b = document.querySelector('.brand').getBoundingClientRect(), r = n.getBoundingClientRect();
        return {right: parseFloat(s.borderRightWidth), left: parseFloat(s.borderLeftWidth), notice: r.left, brand: b.left}; }""")
    assert sides["right"] > 0 and sides["left"] == 0 and sides["notice"] < sides["brand"], sides


@pytest.mark.parametrize("lang", STAFF)
@pytest.mark.parametrize(("path", "role"), [("/desk", "expert"), ("/operator", "operator"), ("/admin", "admin")])
async def test_axe_other_staff_pages(server, services, new_page, axe, lang, path, role) -> None:
    """The expert desk, the operators' dashboard and the admin page, as their role sees them."""
    staff = add_staff(services, f"{role}{lang}", role, display_name=f"{role.title()} Test")
    page = await new_page(f"{role}-{lang}", bypass_csp=True)
    await sign_in(page, server, staff, lang, next_path=path)
    assert await page.get_attribute("html", "lang") == lang
    await page.wait_for_load_state("networkidle")
    await axe.check(page, f"{path.strip('/')}/{lang}")
    axe.assert_clean()
