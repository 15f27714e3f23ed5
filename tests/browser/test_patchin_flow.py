"""Expert patch-in in Chromium: the counsellor calls from the room page, two desk pages ring, one accepts.

The counsellor signs in through the form, creates the consultation in the console and
opens its room (so the room page has a staff session and shows the call panel); the
citizen is a Python participant; two experts of the foreigners' office have their desk
pages open. Every wait is bounded; nothing asserts on timing. Each page leaves a
screenshot (the ``new_page`` fixture).
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack

from roomserver.peer.participant import Participant
from roomserver.ws.desks import DESKS_KEY
from tests.browser.desks import (
    DEPT,
    add_departments,
    add_expert,
    counsellor_in_room,
    open_desk,
)
from tests.browser.pages import (
    WAIT_MS,
    open_pane,
    self_id,
    wait_js,
    wait_state,
    wait_video,
)
from tests.staff import add_staff
from tests.support import invite


def _page_log(page) -> str:
    return "\n".join(page.console_log[-30:])


def _csp_errors(page) -> list[str]:
    return [m for m in page.console_log if "Content Security Policy" in m or m.startswith("pageerror")]


async def test_counsellor_calls_two_desks_ring_one_accepts_and_is_seen(server, http, api_headers, services,
                                                                       new_page, artifacts):
    add_departments(services)
    counsellor_staff = add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")
    erika = add_expert(services, "erika", "Erika Expertin")
    emil = add_expert(services, "emil", "Emil Experte")

    async with AsyncExitStack() as stack:
        counsellor, room = await counsellor_in_room(server, new_page, counsellor_staff, "Beratung Aufenthalt")
        ws_url = str(server.make_url("/ws")).replace("http://", "ws://")
        citizen = Participant(ws_url, (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"])
        stack.push_async_callback(citizen.close)
        await citizen.connect()
        await wait_video(counsellor, citizen.id)

        # Nobody is at a desk yet: the counsellor is told at once and leaves a callback request.
        await open_pane(counsellor, "expert")
        panel = counsellor.locator("#call-panel")
        await panel.wait_for(state="visible", timeout=WAIT_MS)
        await wait_js(counsellor, """() => [...document.querySelectorAll('#call-panel option')]
            .some((o) => o.value === 'department:auslaenderbehoerde')""", what="departments in the call panel")
        await panel.get_by_label("Amt oder Dolmetschsprache").select_option(f"department:{DEPT}")
        await panel.get_by_role("button", name="Anrufen").click()
        missed = panel.locator('.call-status[data-state="no_one"]')
        await missed.wait_for(timeout=WAIT_MS)
        assert "Niemand hat angenommen" in await missed.inner_text()
        for name in ("Erneut anrufen", "Andere Stelle anrufen"):
            assert await missed.get_by_role("button", name=name).is_visible()
        await missed.get_by_role("button", name="Rückruf erbitten").click()
        await missed.get_by_text("Die Rückrufbitte ist bei Ausländerbehörde hinterlegt.").wait_for(timeout=WAIT_MS)

        desk_a = await open_desk(server, new_page, erika, "desk-erika")
        desk_b = await open_desk(server, new_page, emil, "desk-emil")
        assert "Ausländerbehörde" in await desk_a.locator(".desk-me").inner_text()
        callback = desk_b.locator(".desk-callback")
        await callback.wait_for(timeout=WAIT_MS)
        assert "Clara Beraterin" in await callback.inner_text() and "Beratung Aufenthalt" in await callback.inner_text()

        # "Erneut anrufen": now both desks ring; the counsellor cancels, the desks stop and say so.
        await missed.get_by_role("button", name="Erneut anrufen").click()
        first = panel.locator('.call-status[data-state="ringing"]')
        await first.wait_for(timeout=WAIT_MS)
        for desk in (desk_a, desk_b):
            await desk.locator(".desk-call").wait_for(timeout=WAIT_MS)
        await first.get_by_role("button", name="Abbrechen").click()
        await panel.locator('.call-status[data-state="cancelled"]').wait_for(timeout=WAIT_MS)
        for desk in (desk_a, desk_b):
            await wait_js(desk, "() => !document.querySelector('.desk-call') && !window.deskDebug.ringtone",
                          what="ringing stopped after the cancel")
            assert "Der Anruf wurde abgebrochen." in await desk.locator("#calls-notice").inner_text()

        # Called again from the list: both desks of the office ring.
        await panel.get_by_role("button", name="Anrufen").click()
        status = panel.locator('.call-status[data-state="ringing"]')
        await status.wait_for(timeout=WAIT_MS)
        await wait_js(counsellor, """() => /Ausländerbehörde: Es klingelt an 2 Arbeitsplätzen[.]/.test(
            document.querySelector('#call-panel .call-status')?.textContent || '')""", what="ringing for 2")
        assert await status.get_by_role("button", name="Abbrechen").is_visible()
        assert re.search(r"Noch \d+ Sekunden", await status.inner_text())

        # Both desks ring: the card with the consultation, the counsellor, the office; focus on it;
        # an assertive announcement; a browser notification; the ring tone.
        for desk in (desk_a, desk_b):
            card = desk.locator(".desk-call")
            await card.wait_for(timeout=WAIT_MS)
            text = await card.inner_text()
            assert "Beratung Aufenthalt" in text and "Clara Beraterin" in text and "Ausländerbehörde" in text
            assert "Eingehender Anruf" in text and re.search(r"Noch \d+ Sekunden", text)
            assert await desk.evaluate("() => document.activeElement?.classList.contains('desk-call')")
            assert "Eingehender Anruf" in await desk.locator("#desk-alert").inner_text()
            assert await desk.evaluate("() => window.deskDebug.ringtone")
            await wait_js(desk, "() => window.deskDebug.audio === 'running'", what="the ring tone sounding")
            notes = await desk.evaluate("() => window.__notifications")
            assert notes and notes[0]["title"] == "Eingehender Anruf", notes
            assert "Beratung Aufenthalt" in notes[0]["body"] and "Clara Beraterin" in notes[0]["body"]

        shots = artifacts / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        await desk_a.screenshot(path=str(shots / "desk-ringing.png"), full_page=True)
        await counsellor.screenshot(path=str(shots / "callpanel-ringing.png"), full_page=True)
        call_id = await desk_a.locator(".desk-call").get_attribute("data-call")
        assert call_id == await desk_b.locator(".desk-call").get_attribute("data-call")
        # Erika accepts: her tab goes into the room at once, without another click.
        await desk_a.locator(".desk-call").get_by_role("button", name="Annehmen").click()
        await desk_a.wait_for_url(re.compile(rf"/room/{room}$"), timeout=WAIT_MS)
        assert "#" not in desk_a.url  # the token left the address bar
        await wait_state(desk_a, "in-call")
        expert_seat = await self_id(desk_a)
        assert await desk_a.evaluate("() => window.roomserverDebug.role") == "expert"

        # Her video is decoded on the counsellor's page; the citizen gets her media too.
        info = await wait_video(counsellor, expert_seat)
        assert info["framesDecoded"] > 0
        assert await citizen.wait_frames(expert_seat, "video", 3, WAIT_MS / 1000) >= 3

        # The counsellor's panel followed the call: accepted, then in the room, then the box goes away.
        await wait_js(counsellor, """() => !document.querySelector('#call-panel .call-status[data-call]')
            || /Erika Expertin ist jetzt in der Beratung/.test(document.querySelector('#call-panel .call-status').textContent)""",
                      what="the expert in the room, in the panel")
        await wait_js(counsellor, "() => !document.querySelector('#call-panel .call-status[data-call]')",
                      what="the call's box gone")

        # Emil's desk stops ringing and says a colleague took it.
        await wait_js(desk_b, "() => !document.querySelector('.desk-call') && !window.deskDebug.ringtone",
                      what="the second desk stops ringing")
        notice = desk_b.locator("#calls-notice")
        await notice.wait_for(state="visible", timeout=WAIT_MS)
        assert "Eine Kollegin/ein Kollege hat den Anruf übernommen" in await notice.inner_text()
        assert await notice.get_attribute("data-reason") == "taken"

        row = await services.store.calls.get(call_id)
        assert row.state == "accepted" and row.accepted_by == erika.id
        # The callback request is done: it leaves every desk of the office.
        await desk_b.get_by_role("button", name=re.compile("^Rückrufbitte von Clara Beraterin")).click()
        await wait_js(desk_b, "() => !document.querySelector('.desk-callback')", what="callback list empty")
        assert await desk_b.locator("#callbacks-empty").is_visible()
        for page in (counsellor, desk_a, desk_b):
            assert not _csp_errors(page), _page_log(page)


async def test_desk_availability_buttons_and_reconnect_indicator(server, services, new_page):
    add_departments(services)
    erika = add_expert(services, "erika", "Erika Expertin")
    page = await open_desk(server, new_page, erika, "desk-availability")
    desks = server.app[DESKS_KEY]

    available = page.get_by_role("button", name="Verfügbar")
    busy = page.get_by_role("button", name="Beschäftigt")
    away = page.get_by_role("button", name="Abwesend")
    assert await available.get_attribute("aria-pressed") == "true"
    assert "Sie sind verfügbar" in await page.locator("#desk-status-text").inner_text()

    # Keyboard: on "Abwesend", press Enter.
    await away.focus()
    await page.keyboard.press("Enter")
    await wait_js(page, "() => document.querySelector('.desk-status[data-status=away]')"
                        ".getAttribute('aria-pressed') === 'true'", what="away pressed")
    assert desks.host.board.desks[erika.id].availability.value == "away"
    assert "abwesend" in await page.locator("#desk-status-text").inner_text()
    await busy.click()
    await wait_js(page, "() => document.body.dataset.status === 'busy'", what="busy")
    assert desks.host.board.desks[erika.id].availability.value == "busy"
    assert await available.get_attribute("aria-pressed") == "false"

    # The server drops the desk socket: the page shows it, reconnects by itself and says so.
    assert "verbunden" in await page.locator("#desk-connection").inner_text()
    await page.evaluate("""() => {
        window.__connection = [];
        new MutationObserver(() => window.__connection.push(document.body.dataset.connection))
          .observe(document.body, { attributes: true, attributeFilter: ['data-connection'] });
    }""")
    for conn in list(desks.sockets.get(erika.id, ())):
        await conn.ws.close()
    await wait_js(page, "() => document.body.dataset.connection === 'reconnected'", what="reconnected")
    seen = await page.evaluate("() => window.__connection")
    assert "reconnecting" in seen and seen.index("reconnecting") < seen.index("reconnected"), seen
    assert "wieder verbunden" in await page.locator("#desk-connection").inner_text()
    # The chosen availability survived the drop.
    assert await busy.get_attribute("aria-pressed") == "true"
    await available.click()
    await wait_js(page, "() => document.body.dataset.status === 'available'", what="available again")
    assert desks.host.board.desks[erika.id].sockets == 1

    # In a consultation (joined from another tab or device): busy automatically, available after.
    desks.entered_room(erika.id, "r_elsewhere")
    await wait_js(page, "() => document.body.dataset.status === 'busy'", what="busy while in a consultation")
    assert "in einer Beratung" in await page.locator("#desk-status-text").inner_text()
    assert await available.get_attribute("aria-pressed") == "true"  # the own choice stays
    desks.left_room(erika.id, "r_elsewhere", "left")
    await wait_js(page, "() => document.body.dataset.status === 'available'", what="available after it")
    assert not _csp_errors(page), _page_log(page)
