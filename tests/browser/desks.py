"""Experts' desks in Chromium, shared by the browser tests: departments, expert accounts, a signed-in desk page."""

from __future__ import annotations

import re

from roomserver.domain.demo import DEPARTMENTS
from tests.browser.pages import WAIT_MS, base_url, wait_js, wait_state
from tests.staff import add_staff
from tests.support import sql

DEPT = "auslaenderbehoerde"

# Records the browser notifications a page raises (the desk's notification is part of the alert).
NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification;
  window.__notifications = [];
  if (!Real) return;
  class Spy extends Real {
    constructor(title, options = {}) {
      super(title, options);
      window.__notifications.push({ title, body: options.body || "" });
    }
  }
  Object.defineProperty(Spy, "permission", { get: () => Real.permission });
  Spy.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Spy;
})();
"""


def add_departments(services) -> None:
    for dept_id, name, kind in DEPARTMENTS:
        if services.store.blocking.directory.department(dept_id) is None:
            services.store.blocking.directory.add_department(dept_id, name, kind, services.now())


def add_expert(services, username: str, name: str):
    staff = add_staff(services, username, "expert", display_name=name)
    sql(services, "UPDATE accounts SET department_id = ? WHERE id = ?", DEPT, staff.id)
    return staff


async def sign_in(server, page, staff, path: str) -> None:
    await page.goto(f"{base_url(server)}{path}")
    assert re.search(r"/signin\?next=", page.url), page.url  # anonymous: sent to the form
    await page.get_by_label("Benutzername").fill(staff.username)
    await page.get_by_label("Passwort").fill(staff.password)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(re.compile(re.escape(path) + "$"), timeout=WAIT_MS)


async def open_desk(server, new_page, staff, label: str, **context):
    page = await new_page(label, **context)
    await page.context.grant_permissions(["notifications"], origin=base_url(server))
    await page.add_init_script(NOTIFICATION_SPY)
    await sign_in(server, page, staff, "/desk")
    await wait_js(page, "() => document.body.dataset.connection === 'connected'", what="desk connected")
    return page


async def counsellor_in_room(server, new_page, staff, title: str, *, label: str = "counsellor", waiting_room: bool = False,
                             **context):
    """A counsellor signs in, creates a consultation in the console and opens its room."""
    page = await new_page(label, **context)
    await sign_in(server, page, staff, "/console")
    await page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    await page.get_by_label("Titel").fill(title)
    await page.locator("#create-waiting").set_checked(waiting_room)
    await page.get_by_role("button", name="Beratung anlegen").click()
    row = page.locator("#rooms-body tr", has_text=title)
    await row.wait_for(timeout=WAIT_MS)
    room_id = await row.get_attribute("data-room-id")
    await row.get_by_role("button", name=re.compile("^Raum öffnen")).click()
    await page.wait_for_url(re.compile(rf"/room/{room_id}$"), timeout=WAIT_MS)
    await wait_state(page, "in-call")
    return page, room_id
