"""In Chromium: an operator reads the pilot evaluation, picks a period, downloads the figures; axe-core in de and en."""

from __future__ import annotations

import re

import pytest

from tests.reportdata import NAMES, seed
from tests.staff import add_staff

TIMEOUT = 15000  # ms


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_operator_reads_the_report_and_downloads_it(server, services, new_page, axe, lang) -> None:
    seed(services, services.now())
    operator = add_staff(services, "ops", "operator", display_name="Otto Operator")
    # axe-core is injected: that context bypasses the CSP; the downloads below run under it
    page = await signed_in(server, new_page, operator, f"reports-{lang}", lang, bypass_csp=True)
    await page.locator("#offices").wait_for(timeout=TIMEOUT)
    # the tables and the charts render: rows of the county and its offices, bars with a width
    assert await page.locator("#offices tbody tr").count() >= 3
    assert await page.locator("#hours tbody tr").count() == 7
    for chart in ("#chart-answer-rate", "#chart-answer-time"):
        box = await page.locator(chart).bounding_box()
        assert box and box["width"] > 200 and box["height"] > 20, chart
    assert await page.locator("#chart-answer-time rect.chart-bar").count() >= 1
    assert await page.locator("#months, .panel >> text=/gespeichert|stored/").count() >= 1
    await axe.check(page, f"reports/{lang}")
    # the period picker: a day of no calls, then a bad one
    await page.locator("#period-kind").select_option("day")
    await page.locator("#period-date").fill("2020-01-01")
    await page.locator("form.reports-picker button[type=submit]").click()
    await page.wait_for_url(re.compile(r"date=2020-01-01"), timeout=TIMEOUT)
    assert await page.locator("#incomplete").count() == 1
    await axe.check(page, f"reports-empty/{lang}")
    await page.locator("#period-kind").select_option("month")
    await page.locator("#period-date").fill("2026-13")
    await page.locator("form.reports-picker button[type=submit]").click()
    await page.locator("#period-error").wait_for(timeout=TIMEOUT)
    await axe.check(page, f"reports-error/{lang}")
    axe.assert_clean()
    # under the CSP: today's report, the CSV download; page and download scanned for names and ids
    page = await signed_in(server, new_page, operator, f"reports-csp-{lang}", lang, accept_downloads=True)
    await page.goto(str(server.make_url("/reports?period=day")))
    text = await page.content()
    async with page.expect_download() as info:
        await page.locator("#download-csv").click()
    download = await info.value
    csv_text = open(await download.path(), encoding="utf-8").read()
    assert csv_text.startswith("group,key,label,consultations,calls_placed")
    assert "county" in csv_text and "auslaenderbehoerde" in csv_text
    for secret in NAMES:
        assert secret not in text and secret not in csv_text, secret
    errors = [m for m in page.console_log if "Content Security Policy" in m or m.startswith("pageerror")]
    assert not errors, errors


async def signed_in(server, new_page, staff, name: str, lang: str, **context):  # type: ignore[no-untyped-def]
    page = await new_page(name, locale="de-DE" if lang == "de" else "en-GB", **context)
    await page.goto(str(server.make_url(f"/reports?lang={lang}")))
    await page.locator("input[name=username]").fill(staff.username)
    await page.locator("input[name=password]").fill(staff.password)
    await page.locator("form button[type=submit]").click()
    await page.wait_for_url(re.compile(r"/reports"), timeout=TIMEOUT)
    await page.goto(str(server.make_url(f"/reports?lang={lang}")))
    return page


async def test_the_dashboard_flags_an_office_that_answers_too_few_calls(server, services, new_page, axe) -> None:
    from roomserver.ops.alerts import AnswerRateWatch, check
    from tests.support import sql
    seed(services, services.now())
    # every one of the job centre's 8 calls went unanswered five minutes ago
    sql(services, "UPDATE expert_calls SET state = 'timed_out', requested_at = ? WHERE target = 'jobcenter'",
        services.now() - 300)
    operator = add_staff(services, "ops", "operator")
    page = await new_page("operator-alert", bypass_csp=True)
    await page.goto(str(server.make_url("/operator")))
    await page.locator("input[name=username]").fill(operator.username)
    await page.locator("input[name=password]").fill(operator.password)
    await page.locator("form button[type=submit]").click()
    await page.wait_for_selector("body[data-ready=true]", timeout=TIMEOUT)
    assert await page.locator("#alerts").is_hidden()
    raised, _ = await check(services, AnswerRateWatch())
    assert [r.department for r in raised] == ["jobcenter"]
    item = page.locator("#alerts-list li[data-department=jobcenter]")
    await item.wait_for(timeout=TIMEOUT)
    assert "Jobcenter: nur 0 % der Anrufe angenommen (8 Anrufe" in await item.inner_text()
    await axe.check(page, "operator-alert/de")
    axe.assert_clean()
