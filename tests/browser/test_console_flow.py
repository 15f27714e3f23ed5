"""In Chromium: a counsellor signs in through the form, creates a consultation, invites, opens and ends rooms."""

from __future__ import annotations

import json
import re

from tests.staff import add_staff
from tests.support import sql

TIMEOUT = 15000  # ms, every wait in these tests


def _csp_errors(page) -> list[str]:
    return [m for m in page.console_log if "Content Security Policy" in m or m.startswith("pageerror")]


async def _sign_in_through_form(server, page, staff) -> None:
    response = await page.goto(str(server.make_url("/console")))
    assert response.status == 200
    assert re.search(r"/signin\?next=/console$", page.url), page.url  # anonymous: sent to the form
    await page.get_by_label("Benutzername").fill(staff.username)
    await page.get_by_label("Passwort").fill(staff.password)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(re.compile(r"/console$"), timeout=TIMEOUT)
    await page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT)


async def _create_consultation(page, title: str) -> str:
    await page.get_by_label("Titel").fill(title)
    assert re.fullmatch(r"\d{2}:\d{2}", await page.locator("#create-start").input_value())  # prefilled
    await page.get_by_role("button", name="Beratung anlegen").click()
    row = page.locator("#rooms-body tr", has_text=title)
    await row.wait_for(timeout=TIMEOUT)
    await page.get_by_text(f"Die Beratung „{title}“ ist angelegt.").wait_for(timeout=TIMEOUT)
    assert "Geplant" in await row.inner_text() and "Warteraum an" in await row.inner_text()
    room_id = await row.get_attribute("data-room-id")
    assert room_id
    return room_id


async def test_counsellor_signs_in_creates_invites_and_opens_the_room(server, services, new_page, artifacts):
    staff = add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")
    page = await new_page("console")
    await _sign_in_through_form(server, page, staff)
    assert "Clara Beraterin" in await page.locator("header").inner_text()

    room_id = await _create_consultation(page, "Beratung Aufenthalt")
    row = page.locator(f'#rooms-body tr[data-room-id="{room_id}"]')

    # Invite a citizen: a short link (read out, sent by SMS), copy button, a small QR code, validity window.
    await row.get_by_role("button", name=re.compile("^Einladen")).click()
    dialog = page.locator("#invite-dialog")
    await dialog.get_by_label("Name der eingeladenen Person").fill("Frau M.")
    assert await dialog.get_by_label("Rolle").input_value() == "citizen"
    await dialog.get_by_role("button", name="Link erstellen").click()
    link = dialog.get_by_role("textbox", name="Einladungslink", exact=True)
    await page.wait_for_function(
        "() => (document.querySelector('.invite-link') || {}).value?.includes('/j/')", timeout=TIMEOUT)
    short_url = await link.input_value()
    code = re.fullmatch(r"http://127\.0\.0\.1:\d+/j/([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", short_url).group(1)
    qr = dialog.get_by_role("img", name="QR-Code des Einladungslinks")
    await qr.wait_for(state="visible", timeout=TIMEOUT)
    assert (await qr.get_attribute("src")).startswith("data:image/svg+xml")
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
    copy = dialog.get_by_role("button", name="Link kopieren")
    assert await copy.is_visible()
    await copy.click()
    await page.wait_for_function(
        "() => /kopiert|markiert/.test(document.querySelector('.invite-status').textContent)", timeout=TIMEOUT)
    assert "Gültig von" in await dialog.locator(".invite-validity").inner_text()
    assert "Frau M." in await dialog.locator(".invite-list").inner_text()
    shots = artifacts / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(shots / "console-invite-dialog.png"))
    token = (await services.consultations.resolve_short(code, services.now()))[1]
    claims = services.codec.decode(token, services.now() + 3600)  # a citizen's link may start before the appointment
    assert claims.role.value == "citizen" and claims.room == room_id and claims.name == "Frau M."

    # Withdraw it: the ledger says so, the panel too.
    await dialog.locator(".invite-result").get_by_role("button", name="Zurückziehen").click()
    await page.wait_for_function(
        "() => /zurückgezogen/.test(document.querySelector('.invite-status').textContent)", timeout=TIMEOUT)
    assert (await services.store.tokens.get(claims.jti)).revoked_at is not None
    assert sql(services, "SELECT COUNT(*) AS n FROM short_links")[0]["n"] == 0  # gone with it
    await dialog.get_by_role("button", name="Schließen").click()
    assert not await dialog.is_visible()

    # Open the room: the console mints the counsellor's token and hands it to the room page.
    await page.route(re.compile(r"/room/[^/?#]+$"),
                     lambda route: route.fulfill(status=200, content_type="text/html",
                                                 body="<!doctype html><title>Raum</title><p>Raum</p>"))
    await row.get_by_role("button", name=re.compile("^Raum öffnen")).click()
    await page.wait_for_url(re.compile(rf"/room/{room_id}$"), timeout=TIMEOUT)
    stored = json.loads(await page.evaluate("() => sessionStorage.getItem('roomserver.join')"))
    assert set(stored) == {"room", "token", "name", "audioInput", "videoInput", "audioOutput"}
    assert stored["room"] == room_id and stored["name"] == "Clara Beraterin"
    assert stored["audioInput"] is None and stored["videoInput"] is None and stored["audioOutput"] is None
    own = services.codec.decode(stored["token"], services.now())
    assert own.sub == staff.id and own.role.value == "counsellor" and own.room == room_id
    assert not _csp_errors(page), page.console_log


async def test_counsellor_ends_a_consultation_after_confirming(server, services, new_page):
    staff = add_staff(services, "clara", "counsellor")
    page = await new_page("console-end")
    await _sign_in_through_form(server, page, staff)
    room_id = await _create_consultation(page, "Kurze Beratung")
    row = page.locator(f'#rooms-body tr[data-room-id="{room_id}"]')
    end_dialog = page.locator("#end-dialog")

    # Cancel first: nothing happens.
    await row.get_by_role("button", name=re.compile("^Beenden")).click()
    assert await end_dialog.is_visible()
    assert "Kurze Beratung" in await end_dialog.inner_text()
    await page.keyboard.press("Escape")
    assert not await end_dialog.is_visible()
    assert (await services.store.rooms.get(room_id)).state != "ended"

    await row.get_by_role("button", name=re.compile("^Beenden")).click()
    await end_dialog.get_by_role("button", name="Ja, beenden").click()
    await page.get_by_text("Die Beratung „Kurze Beratung“ ist beendet.").wait_for(timeout=TIMEOUT)
    await page.wait_for_function(
        f"() => document.querySelector('tr[data-room-id=\"{room_id}\"]')?.dataset.state === 'ended'", timeout=TIMEOUT)
    assert "Beendet" in await row.inner_text()
    assert await row.get_by_role("button").count() == 0
    assert (await services.store.rooms.get(room_id)).state == "ended"
    assert not _csp_errors(page), page.console_log


async def test_signin_failure_and_forbidden_page_in_the_browser(server, services, new_page):
    add_staff(services, "clara", "counsellor")
    expert = add_staff(services, "erik", "expert", display_name="Erik Experte")
    page = await new_page("signin-failure")
    await page.goto(str(server.make_url("/signin")))
    await page.get_by_label("Benutzername").fill("clara")
    await page.get_by_label("Passwort").fill("falsch")
    await page.get_by_role("button", name="Anmelden").click()
    alert = page.get_by_role("alert")
    await alert.wait_for(timeout=TIMEOUT)
    assert "Benutzername oder Passwort ist falsch" in await alert.inner_text()

    await page.get_by_label("Benutzername").fill(expert.username)
    await page.get_by_label("Passwort").fill(expert.password)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(re.compile(r"/(desk|home)$"), timeout=TIMEOUT)  # experts land on their desk
    assert "Erik Experte" in await page.locator("body").inner_text()
    response = await page.goto(str(server.make_url("/console")))
    assert response.status == 403
    assert "Kein Zugriff" in await page.locator("h1").inner_text()
    await page.get_by_role("button", name="Abmelden").click()
    await page.wait_for_url(re.compile(r"/signin\?signed_out=1$"), timeout=TIMEOUT)
    assert "Sie haben sich abgemeldet" in await page.locator("main").inner_text()
    assert not _csp_errors(page), page.console_log
