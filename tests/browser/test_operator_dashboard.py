"""In Chromium: the operator dashboard follows Python participants live and ends their room."""

from __future__ import annotations

import re

import aiohttp

from roomserver.peer.participant import Participant
from tests.staff import add_staff
from tests.support import create_room, invite

TIMEOUT = 20000  # ms


def _csp_errors(page) -> list[str]:
    return [m for m in page.console_log if "Content Security Policy" in m or m.startswith("pageerror")]


async def test_dashboard_follows_participants_live_and_ends_the_room(server, services, new_page, api_headers,
                                                                    artifacts):
    operator = add_staff(services, "otto", "operator", display_name="Otto Operator")
    page = await new_page("operator")
    await page.goto(str(server.make_url("/operator")))
    assert re.search(r"/signin\?next=/operator$", page.url), page.url
    await page.get_by_label("Benutzername").fill(operator.username)
    await page.get_by_label("Passwort").fill(operator.password)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(re.compile(r"/operator$"), timeout=TIMEOUT)
    await page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT)
    await page.get_by_text("Gerade läuft kein Raum.").wait_for(timeout=TIMEOUT)

    ws_url = str(server.make_url("/ws")).replace("http://", "ws://")
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        room = await create_room(http, api_headers, title="Beratung Aufenthalt")
        c_token = (await invite(http, api_headers, room, "counsellor", "Clara Beraterin"))["token"]
        z_token = (await invite(http, api_headers, room, "citizen", "Frau Mustermann"))["token"]
    counsellor = Participant(ws_url, c_token, stats_interval=1)
    citizen = Participant(ws_url, z_token, name="Frau Mustermann", stats_interval=1)
    try:
        await counsellor.connect()
        await citizen.connect()

        card = page.locator(f'.op-room[data-room-id="{room}"]')
        await card.wait_for(timeout=TIMEOUT)
        assert "Beratung Aufenthalt" in await card.inner_text()
        rows = card.locator("tbody tr")
        await page.wait_for_function(
            f"""() => document.querySelectorAll('.op-room[data-room-id="{room}"] tbody tr').length === 2""",
            timeout=TIMEOUT)
        # Figures reported by the clients' getStats arrive on the dashboard (loss and bitrate are always sent).
        for seat in (counsellor.id, citizen.id):
            row = card.locator(f'tr[data-seat="{seat}"]')
            await page.wait_for_function(
                f"""() => /kbit\\/s/.test(document.querySelector('tr[data-seat="{seat}"] .op-bitrate')?.textContent || '')
                       && /%/.test(document.querySelector('tr[data-seat="{seat}"] .op-loss')?.textContent || '')""",
                timeout=TIMEOUT)
            assert "verbunden" in await row.inner_text()
        text = await card.inner_text()
        assert "Beraterin/Berater: 1" in text and "Bürgerin/Bürger: 1" in text and "läuft" in text
        assert "Clara" not in await page.content() and "Mustermann" not in await page.content()
        events = page.locator("#events")
        await events.get_by_text("Raum begonnen").first.wait_for(timeout=TIMEOUT)
        assert await events.get_by_text(re.compile("beigetreten")).count() >= 2
        # The dashboard carries no media and offers no way in.
        assert await page.locator("video, audio").count() == 0
        assert await page.locator("a[href*='/room/'], a[href*='/join/']").count() == 0

        shots = artifacts / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shots / "operator-dashboard.png"), full_page=True)

        # The citizen leaves: their row goes, the event list says so.
        citizen_seat = citizen.id
        await citizen.leave()
        await card.locator(f'tr[data-seat="{citizen_seat}"]').wait_for(state="detached", timeout=TIMEOUT)
        await events.get_by_text(re.compile("gegangen")).first.wait_for(timeout=TIMEOUT)
        assert await rows.count() == 1

        # End the room from the dashboard: confirm first (cancel does nothing), then it ends.
        end = card.get_by_role("button", name="Raum Beratung Aufenthalt beenden")
        await end.click()
        dialog = page.locator("#confirm")
        await dialog.wait_for(state="visible", timeout=TIMEOUT)
        assert "Beratung Aufenthalt" in await dialog.inner_text()
        await dialog.get_by_role("button", name="Abbrechen").click()
        await dialog.wait_for(state="hidden", timeout=TIMEOUT)
        assert counsellor.connected and (await services.store.rooms.get(room)).state == "live"
        await end.click()
        await dialog.get_by_role("button", name="Ja, ausführen").click()
        await counsellor.wait_until(lambda: not counsellor.connected, timeout=TIMEOUT / 1000,
                                    what="counsellor disconnected")
        assert counsellor.close_code == 4411
        await card.wait_for(state="detached", timeout=TIMEOUT)
        await page.get_by_text("Gerade läuft kein Raum.").wait_for(timeout=TIMEOUT)
        await events.get_by_text("Raum beendet").first.wait_for(timeout=TIMEOUT)
        assert (await services.store.rooms.get(room)).ended_reason == "operator"
        assert [e.actor for e in await services.store.audit.query(action="operator.end_room")] == [operator.id]
        assert not _csp_errors(page), page.console_log
    finally:
        await citizen.close()
        await counsellor.close()


async def test_dashboard_passes_axe_with_a_room_and_the_dialog_open(server, services, new_page, api_headers, axe):
    """axe-core (WCAG 2.1 AA) on the dashboard in German and English: a live room, then the confirmation."""
    from tests.support import joined

    add_staff(services, "otto", "operator")
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        room = await create_room(http, api_headers, title="Beratung Aufenthalt")
        a, wa = await joined(http, api_headers, room, "counsellor")
        b, wb = await joined(http, api_headers, room, "citizen")
        await b.send({"type": "stats", "peers": {wa["self"]["id"]: {"rtt_ms": 35, "loss": 0.2, "bitrate_kbps": 900}}})
        for lang in ("de", "en"):
            page = await new_page(f"operator-axe-{lang}", bypass_csp=True)
            await page.goto(str(server.make_url(f"/signin?lang={lang}&next=/operator")))
            await page.fill("#signin-username", "otto")
            await page.fill("#signin-password", "richtig-Pferd-Batterie-42")
            await page.press("#signin-password", "Enter")
            await page.wait_for_url(re.compile(r"/operator$"), timeout=TIMEOUT)
            await page.wait_for_selector(f'.op-room[data-room-id="{room}"] tbody tr', timeout=TIMEOUT)
            assert await page.get_attribute("html", "lang") == lang
            await axe.check(page, f"operator/{lang}")
            await page.locator(f'.op-room[data-room-id="{room}"] button[data-action="end"]').click()
            await page.wait_for_selector("#confirm[open]", timeout=TIMEOUT)
            await axe.check(page, f"operator-confirm/{lang}")
            await page.keyboard.press("Escape")  # cancels: nothing happens
            await page.wait_for_selector("#confirm[open]", state="detached", timeout=TIMEOUT)
        assert (await services.store.rooms.get(room)).state == "live"
        await a.close()
        await b.close()
    axe.assert_clean()
