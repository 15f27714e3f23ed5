"""The data notice and consent in Chromium, as a citizen meets them.

* The notice shows what the system does, with the controller, officer and authority from
  [privacy], both retention limits and its version; "yes" is recorded with that version.
* Coming back with the same link (reload) does not ask again: the page goes to camera and
  microphone and offers the notice to read again; "No" there withdraws the consent, and the
  next visit asks again.
* A consent given to an older version of the notice is asked again, with a line saying the
  notice changed; the new consent names the new version.
* Farsi: right to left, the numbers in Persian digits (as the browser writes them for "fa").
* The operator dashboard lists the consents with their versions, the old one marked.
"""

from __future__ import annotations

import re

from roomserver import i18n
from roomserver.pages.notice import build
from tests.browser.desks import sign_in
from tests.browser.test_join_flow import (
    no_page_errors,
    open_link,
    snapshot,
    visible_screen,
)
from tests.staff import add_staff
from tests.support import create_room, invite, sql

CONTROLLER = "Agentur für Arbeit Kreisstadt, Team Beratung"
DPO = "Frau Dr. Datenschutz"


def configure(services) -> str:
    services.settings.privacy.controller_name = CONTROLLER
    services.settings.privacy.dpo_name = DPO
    return build(services.settings).version


def consents(services, jti: str) -> list[tuple[str, bool]]:
    rows = sql(services, "SELECT notice, withdrawn_at FROM consents WHERE jti = ? ORDER BY id", jti)
    return [(r["notice"], r["withdrawn_at"] is not None) for r in rows]


async def test_the_notice_is_asked_once_per_version_and_no_withdraws(server, http, api_headers, services,
                                                                      new_page, artifacts) -> None:
    version = configure(services)
    room_id = await create_room(http, api_headers, title="Beratung Frau Kovalenko", waiting_room=True)
    inv = await invite(http, api_headers, room_id, "citizen", "Olena Kovalenko")
    page = await open_link(new_page, inv["join_url"], "citizen")
    await visible_screen(page, "notice")
    text = await page.inner_text("#screen-notice")
    for line in build(services.settings).lines("de"):
        assert line in text, line
    assert CONTROLLER in text and DPO in text
    assert "nach 90 Tagen" in text and "90 Tage nach dem Ende der Beratung" in text
    assert i18n.translate("de", "join.notice.version", version=version) in text
    assert not await page.is_visible("#notice-changed")  # nothing agreed before
    assert i18n.translate("de", "join.notice.relay") not in text  # no TURN server configured here
    await snapshot(page, artifacts, "notice-de")

    await page.click("#consent-yes")
    await visible_screen(page, "devices")
    assert await page.is_visible("#reread-notice")
    assert consents(services, inv["jti"]) == [(version, False)]

    # Back with the same link: no second question, straight to camera and microphone.
    await page.reload()
    await visible_screen(page, "devices")
    assert i18n.translate("de", "join.devices.agreed") in await page.inner_text("#screen-devices")
    assert consents(services, inv["jti"]) == [(version, False)]
    # Read it again, and say no this time: the consent is withdrawn, on record.
    await page.click("#reread-notice")
    await visible_screen(page, "notice")
    await page.click("#consent-no")
    await visible_screen(page, "declined")
    assert await page.is_visible("#declined-withdrawn")
    assert consents(services, inv["jti"]) == [(version, True)]
    assert await page.evaluate("document.getElementById('preview').srcObject") is None  # the camera is off
    # Next visit: asked again, as if for the first time.
    await page.reload()
    await visible_screen(page, "notice")
    assert not await page.is_visible("#notice-changed")
    await page.click("#consent-yes")
    await visible_screen(page, "devices")
    assert consents(services, inv["jti"]) == [(version, True), (version, False)]
    no_page_errors(page)


async def test_a_consent_to_an_older_notice_is_asked_again(server, http, api_headers, services, new_page,
                                                           artifacts) -> None:
    current = configure(services)
    room_id = await create_room(http, api_headers, title="Beratung Herr Demir")
    inv = await invite(http, api_headers, room_id, "citizen", "Mehmet Demir")
    await services.store.consents.record(room_id, inv["jti"], "join-notice-1", services.now() - 600)  # the old notice

    page = await open_link(new_page, inv["join_url"], "citizen-older")
    await visible_screen(page, "notice")
    assert await page.is_visible("#notice-changed")
    assert await page.inner_text("#notice-changed") == i18n.translate("de", "join.notice.changed")
    await snapshot(page, artifacts, "notice-changed")
    await page.click("#consent-yes")
    await visible_screen(page, "devices")
    assert consents(services, inv["jti"]) == [("join-notice-1", False), (current, False)]
    no_page_errors(page)

    # The operator sees both, the old one marked as given to an older version; no names.
    operator = add_staff(services, "otto", "operator")
    desk = await new_page("operator")
    await sign_in(server, desk, operator, "/operator")
    rows = desk.locator("#consents tbody tr")
    await rows.first.wait_for()
    assert await rows.count() == 2
    newest, oldest = rows.nth(0), rows.nth(1)
    assert await newest.get_attribute("data-notice") == current
    assert await oldest.get_attribute("data-notice") == "join-notice-1"
    assert i18n.translate("de", "operator.consent.current") in await newest.inner_text()
    assert i18n.translate("de", "operator.consent.older") in await oldest.inner_text()
    assert "Beratung Herr Demir" in await oldest.inner_text()
    assert current in await desk.inner_text("main")
    assert "Mehmet" not in await desk.content()
    no_page_errors(desk)


async def test_the_notice_in_farsi_reads_right_to_left_with_persian_digits(server, http, api_headers, services,
                                                                           new_page, artifacts) -> None:
    configure(services)
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "Reza")
    url = str(server.make_url(f"/join/{room_id}")) + f"?lang=fa#{inv['token']}"
    page = await open_link(new_page, url, "citizen-fa", locale="fa-IR")
    await visible_screen(page, "notice")
    assert await page.get_attribute("html", "dir") == "rtl"
    text = await page.inner_text("#screen-notice")
    assert "۹۰ روز" in text and not re.search(r"\b90\b", text)
    assert i18n.translate("fa", "join.notice.question") in text
    # The page's scripts write numbers as the server does: Persian digits for fa, Latin ones for ar.
    digits = await page.evaluate("""() => [new Intl.NumberFormat('fa', {useGrouping: false}).format(64),
                                          new Intl.NumberFormat('ar', {useGrouping: false}).format(64)]""")
    assert digits == [i18n.number("fa", 64), i18n.number("ar", 64)] == ["۶۴", "64"]
    await snapshot(page, artifacts, "notice-fa")
    await page.click("#consent-yes")
    await visible_screen(page, "devices")
    await page.wait_for_function("() => document.getElementById('camera-select').options.length > 0")
    no_page_errors(page)
