"""In Chromium: a counsellor e-mails an invitation from the console's dialog; the citizen opens the link from
the message that arrived at a real SMTP server on loopback and joins through it."""

from __future__ import annotations

import re

from tests.browser.test_console_flow import TIMEOUT, _create_consultation, _sign_in_through_form
from tests.browser.test_join_flow import no_page_errors, open_link, visible_screen
from tests.ops.test_mailer import mail_env
from tests.staff import add_staff


async def test_an_emailed_invitation_brings_the_citizen_in(server_factory, new_page, smtp) -> None:
    # A citizen's link is valid well before the appointment here, so she can open it at once.
    srv, svc = await server_factory(**mail_env(smtp.port), ROOMSERVER_TOKENS_CITIZEN_LEAD_SECONDS="86400")
    staff = add_staff(svc, "clara", "counsellor", display_name="Clara Beraterin")
    page = await new_page("console-email")
    await _sign_in_through_form(srv, page, staff)
    room_id = await _create_consultation(page, "Beratung Aufenthalt")
    row = page.locator(f'#rooms-body tr[data-room-id="{room_id}"]')
    await row.get_by_role("button", name=re.compile("^Einladen")).click()
    dialog = page.locator("#invite-dialog")
    await dialog.get_by_label("Name der eingeladenen Person").fill("Olena K.")
    address = dialog.get_by_label("E-Mail-Adresse (freiwillig)")
    assert await address.is_visible()
    # Only a citizen's invite is e-mailed: the fields go for an expert and come back.
    await dialog.get_by_label("Rolle").select_option("expert")
    assert not await address.is_visible()
    await dialog.get_by_label("Rolle").select_option("citizen")
    await address.fill("olena@example")
    await dialog.get_by_role("button", name="Link erstellen").click()
    await dialog.get_by_text("Bitte prüfen Sie die E-Mail-Adresse").wait_for(timeout=TIMEOUT)
    assert await address.get_attribute("aria-invalid") == "true"
    await address.fill("olena@example.org")
    await dialog.get_by_label("Sprache der E-Mail").select_option("uk")
    await dialog.get_by_role("button", name="Link erstellen").click()
    await dialog.get_by_text("geht per E-Mail an olena@example.org").wait_for(timeout=TIMEOUT)
    no_page_errors(page)

    await smtp.wait(1)
    [message] = smtp.messages
    assert message["To"] == "olena@example.org" and message["Content-Language"] == "uk"
    text = message.get_body(("plain",)).get_content()
    [url] = re.findall(r"http://\S+/join/\S+", text)
    # She opens the link from the e-mail: the data notice, her consent, her devices.
    citizen = await open_link(new_page, url, "citizen-from-email")
    await visible_screen(citizen, "notice")
    assert room_id in citizen.url
    await citizen.click("#consent-yes")
    await visible_screen(citizen, "devices")
    assert await citizen.input_value("#name-input") == "Olena K."
    await citizen.click("#devices-next")
    await visible_screen(citizen, "check")
    await citizen.wait_for_selector("#check-verdict:not([hidden])", timeout=30_000)
    await citizen.click("#join-button")
    await citizen.wait_for_url(re.compile(rf".*/room/{room_id}$"), timeout=TIMEOUT)
    no_page_errors(citizen)


async def test_the_operator_sees_a_failed_invitation_and_sends_it_again(
        server_factory, api_headers, new_page, smtp) -> None:
    import time

    import aiohttp

    from tests.ops.test_mailer import iso, until_states
    from tests.support import create_room
    smtp.refuse = "550 5.1.1 no such mailbox"
    srv, svc = await server_factory(**mail_env(smtp.port), ROOMSERVER_MAIL_REMINDERS="")
    operator = add_staff(svc, "olga", "operator")
    start = int(time.time()) + 86400
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        r = await http.post(f"/api/v1/rooms/{room}/invites", headers=api_headers,
                            json={"role": "citizen", "name": "Ayşe", "email": "ayse@example.org"})
        jti = (await r.json())["jti"]
    await until_states(svc, jti, lambda s: s == [("invitation", "failed")], "failed")
    page = await new_page("operator-outbox")
    await page.goto(str(srv.make_url("/signin?next=/operator")))
    await page.get_by_label("Benutzername").fill(operator.username)
    await page.get_by_label("Passwort").fill(operator.password)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(re.compile(r"/operator$"), timeout=TIMEOUT)
    await page.wait_for_selector('#outbox-counts[data-failed="1"]', timeout=TIMEOUT)
    assert "Fehlgeschlagen: 1" in await page.inner_text("#outbox-counts")
    row = page.locator("#outbox tbody tr")
    assert "E-Mail (invitation)" in await row.inner_text() and "550" in await row.inner_text()
    assert "ayse@example.org" not in await page.content()
    smtp.refuse = None
    await row.get_by_role("button", name="Erneut senden").click()
    await page.get_by_text("Die Nachricht wird erneut gesendet.").wait_for(timeout=TIMEOUT)
    await smtp.wait(1)
    await until_states(svc, jti, lambda s: s == [("invitation", "sent")], "sent")
    await page.click("#outbox-refresh")
    await page.wait_for_selector('#outbox-counts[data-failed="0"]', timeout=TIMEOUT)
    assert await page.is_visible("#outbox-empty")
    no_page_errors(page)
