"""Chromium signs in through each real OpenID Provider's login form (oidc-provider, "Agentur" and "Kreis").

The counsellor of the agency lands on the console, the expert of the county on the desk of her
office, which rings when a counsellor calls it; signing out ends the session here and at the
provider, and comes back to the sign-in page.
"""

from __future__ import annotations

import re

import aiohttp

from tests.browser.desks import NOTIFICATION_SPY
from tests.browser.pages import WAIT_MS, wait_js
from tests.conftest import TEST_API_KEY
from tests.oidc.world import PASSWORDS
from tests.support import RawSocket, create_room, invite


async def sign_in_through(page, rp_url: str, button: str, login: str, landing: str) -> None:
    await page.goto(f"{rp_url}/signin")
    await page.get_by_role("link", name=button).click()
    await page.locator("input[name=login]").fill(login)  # the provider's own form, on the provider's origin
    await page.locator("input[name=password]").fill(PASSWORDS[login])
    await page.get_by_role("button", name="Sign-in").click()
    await page.wait_for_url(re.compile(re.escape(rp_url + landing) + "$"), timeout=WAIT_MS)


async def test_staff_sign_in_through_their_providers_land_on_their_pages_and_sign_out_there(oidc_world, new_page):
    world = await oidc_world()
    rp = world.rp_url

    counsellor = await new_page("counsellor-agentur")
    await sign_in_through(counsellor, rp, "Anmelden mit Agentur für Arbeit", "clara", "/console")
    await counsellor.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    assert "Clara Beraterin" in await counsellor.locator("header").inner_text()

    expert = await new_page("expert-kreis")
    await expert.context.grant_permissions(["notifications"], origin=rp)
    await expert.add_init_script(NOTIFICATION_SPY)
    await sign_in_through(expert, rp, "Anmelden mit Kreisverwaltung", "erik", "/desk")
    await wait_js(expert, "() => document.body.dataset.connection === 'connected'", what="desk connected")
    assert "Ausländerbehörde" in await expert.locator(".desk-me").inner_text()

    # A counsellor calls the foreigners' office: the desk of the expert who signed in at the county rings.
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    async with aiohttp.ClientSession(base_url=rp) as http:
        room = await create_room(http, headers, title="Beratung Aufenthalt")
        sock = await RawSocket.open(http)
        welcome = await sock.join((await invite(http, headers, room, "counsellor", "Clara Beraterin"))["token"])
        assert welcome["type"] == "welcome", welcome
        await sock.send({"type": "call", "department": "auslaenderbehoerde"})
        card = expert.locator(".desk-call")
        await card.wait_for(timeout=WAIT_MS)
        assert "Beratung Aufenthalt" in await card.inner_text()
        await sock.close()

    # Signing out: the session ends here, the provider asks to confirm, then back to the sign-in page.
    await counsellor.get_by_role("button", name="Abmelden").click()
    await counsellor.wait_for_url(re.compile(re.escape(world.agentur.issuer) + "/session/end"), timeout=WAIT_MS)
    cookies = {c["name"] for c in await counsellor.context.cookies(rp)}
    assert "rs_session" not in cookies
    await counsellor.get_by_role("button", name=re.compile("Yes, sign me out", re.I)).click()
    await counsellor.wait_for_url(re.compile(re.escape(rp) + r"/signin\?signed_out=1$"), timeout=WAIT_MS)
    assert "abgemeldet" in (await counsellor.locator("main").inner_text()).lower()
    events = await world.audit("auth.signed_in")
    assert sorted(e.detail["provider"] for e in events) == ["agentur", "kreis"]


async def test_the_sign_in_page_with_providers_and_a_refusal_page_pass_axe(oidc_world, new_page, axe) -> None:
    world = await oidc_world()
    for lang in ("de", "en"):
        page = await new_page(f"signin-providers-{lang}", locale="de-DE" if lang == "de" else "en-GB",
                              bypass_csp=True)  # axe-core is an injected script
        await page.goto(f"{world.rp_url}/signin?lang={lang}")
        await axe.check(page, f"signin-providers/{lang}")
        await sign_in_through_refused(page, world.rp_url, "nemo", lang)
        await axe.check(page, f"oidc-refused/{lang}")
    axe.assert_clean()


async def sign_in_through_refused(page, rp_url: str, login: str, lang: str) -> None:
    label = "Anmelden mit Agentur für Arbeit" if lang == "de" else "Sign in with Agentur für Arbeit"
    await page.get_by_role("link", name=label).click()
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill(PASSWORDS[login])
    await page.get_by_role("button", name="Sign-in").click()
    await page.locator("#oidc-error-code").wait_for(timeout=WAIT_MS)
    assert await page.locator("#oidc-error-code").inner_text() == "unmapped"
