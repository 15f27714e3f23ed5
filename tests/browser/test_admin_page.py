"""In Chromium: an admin adds a department, an interpreter with German Sign Language, and disables an account."""

from __future__ import annotations

import re

from tests.staff import add_staff

TIMEOUT = 15000  # ms


async def test_admin_manages_departments_and_accounts(server, services, new_page):
    admin = add_staff(services, "root", "admin", display_name="Ada Admin")
    page = await new_page("admin")
    await page.goto(str(server.make_url("/admin")))
    await page.get_by_label("Benutzername").fill(admin.username)
    await page.get_by_label("Passwort").fill(admin.password)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(re.compile(r"/admin$"), timeout=TIMEOUT)
    await page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT)

    await page.locator("#dept-id").fill("sozialamt")
    await page.locator("#dept-name").fill("Sozialamt")
    await page.get_by_role("button", name="Dienststelle anlegen").click()
    await page.locator("#depts-body tr", has_text="Sozialamt").wait_for(timeout=TIMEOUT)
    assert await services.store.directory.department("sozialamt") is not None

    await page.locator("#account-username").fill("dgs-koch")
    await page.locator("#account-display").fill("Frau Koch")
    await page.locator("#account-role").select_option("interpreter")
    await page.get_by_label("Deutsche Gebärdensprache").check()
    await page.get_by_role("button", name="Konto anlegen").click()
    row = page.locator("#accounts-body tr", has_text="dgs-koch")
    await row.wait_for(timeout=TIMEOUT)
    password = await page.locator("#account-password-value").inner_text()
    assert re.fullmatch(r"[\w]{4}(-[\w]{4}){3}", password), password
    assert "Deutsche Gebärdensprache" in await row.inner_text()
    account = await services.store.directory.by_username("dgs-koch")
    assert account.role == "interpreter" and await services.store.directory.languages(account.id) == {"dgs"}

    await row.get_by_role("button", name="Frau Koch sperren").click()
    await page.get_by_text("Frau Koch ist gesperrt").wait_for(timeout=TIMEOUT)
    assert (await services.store.directory.account(account.id)).disabled
    errors = [m for m in page.console_log if "Content Security Policy" in m or m.startswith("pageerror")]
    assert not errors, errors
