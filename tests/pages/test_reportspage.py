"""/reports: who may see it, what it shows, bad periods, downloads with the session cookie."""

from __future__ import annotations

import re

from tests.reportdata import NAMES, seed
from tests.staff import add_staff, client, sign_in


async def test_operators_and_admins_see_the_report_counsellors_do_not(server, services) -> None:
    seed(services, services.now())
    async with client(server) as anonymous:
        r = await anonymous.get("/reports", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/signin")
    for role, status in (("counsellor", 403), ("expert", 403), ("operator", 200), ("admin", 200)):
        async with client(server) as http:
            await sign_in(http, add_staff(services, f"u{role}", role))
            r = await http.get("/reports?period=day", allow_redirects=False)
            assert r.status == status, role
            api = await http.get("/api/v1/reports/figures?period=day")
            assert api.status == (200 if status == 200 else 403), role
            if status != 200:
                continue
            page = await r.text()
            assert r.headers["Cache-Control"] == "no-store"
            assert 'href="/reports"' in page  # the staff bar links to it
            assert "<script" not in page
            assert 'id="offices"' in page and 'id="teams"' in page and 'id="hours"' in page
            assert page.count("<svg") == 2 and 'id="chart-answer-rate"' in page
            # county: 16 calls, 11 answered: 68,8 %; the office: 8 placed, 6 answered (2 not: hidden)
            assert "68,8\u00a0%" in page and "Ausländerbehörde" in page and "&lt; 5" in page
            assert "Team Nord" in page
            for secret in NAMES[:3] + NAMES[3:]:
                assert secret not in page.replace(f"u{role}", ""), secret
            for link in re.findall(r'id="download-[a-z]+" href="([^"]+)"', page):
                d = await http.get(link.replace("&amp;", "&"))
                assert d.status == 200, link
                body = await d.text()
                assert not any(secret in body for secret in NAMES), link


async def test_a_bad_period_is_told_and_the_current_month_shown(server, services) -> None:
    async with client(server) as http:
        await sign_in(http, add_staff(services, "op", "operator"))
        for query in ("period=day&date=2026-02-30", "period=year", "period=custom&from=2026-11-02&until=2026-11-01"):
            r = await http.get(f"/reports?{query}")
            assert r.status == 422, query
            page = await r.text()
            assert 'id="period-error"' in page and 'id="glance"' in page
        r = await http.get("/reports?period=week&date=2026-W48&lang=en")
        assert r.status == 200 and "At a glance: 2026-W48" in await r.text()
