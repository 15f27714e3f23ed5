"""Experts' desks in Chromium, shared by the browser tests: departments, expert accounts, a signed-in desk page."""

from __future__ import annotations

import re

from roomserver.demo import DEPARTMENTS
from tests.browser.pages import WAIT_MS, base_url, wait_js
from tests.staff import add_staff

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
        if services.store.directory.department(dept_id) is None:
            services.store.directory.add_department(dept_id, name, kind, services.now())


def add_expert(services, username: str, name: str):
    staff = add_staff(services, username, "expert", display_name=name)
    services.store.conn.execute("UPDATE accounts SET department_id = ? WHERE id = ?", (DEPT, staff.id))
    return staff


async def sign_in(server, page, staff, path: str) -> None:
    await page.goto(f"{base_url(server)}{path}")
    assert re.search(r"/signin\?next=", page.url), page.url  # anonymous: sent to the form
    await page.get_by_label("Benutzername").fill(staff.username)
    await page.get_by_label("Passwort").fill(staff.password)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(re.compile(re.escape(path) + "$"), timeout=WAIT_MS)


async def open_desk(server, new_page, staff, label: str):
    page = await new_page(label)
    await page.context.grant_permissions(["notifications"], origin=base_url(server))
    await page.add_init_script(NOTIFICATION_SPY)
    await sign_in(server, page, staff, "/desk")
    await wait_js(page, "() => document.body.dataset.connection === 'connected'", what="desk connected")
    return page
