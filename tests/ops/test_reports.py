"""The pilot evaluation from a real morning played through the server: rooms, desks, calls, callbacks, stats.

Counts are counted by hand from what the morning did; times (answer, accept to seat,
expert minutes, callback wait) are computed here from the stored rows, independently
of the report code, and must match. Small cells must read "< 5", and no name or id of
anyone may appear in the report or its CSV.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import statistics
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from roomserver.domain.demo import DEPARTMENTS
from roomserver.ops import reports as reports_ops
from tests.staff import add_staff
from tests.support import RawSocket, create_room, invite, sql
from tests.ws.test_desk import DeskSocket, open_desk

WAIT = 30.0
H = "< 5"


async def expect(sock: RawSocket, type_: str, pred=lambda m: True) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            data = await sock.next(WAIT)
            assert data is not None, f"socket closed ({sock.ws.close_code}) waiting for {type_}"
            if data["type"] == type_ and pred(data):
                return data
    return await asyncio.wait_for(read(), WAIT)


async def call_state(sock: RawSocket, call_id: str | None, *states: str) -> dict[str, Any]:
    msg = await expect(sock, "call-status", lambda m: m["call"]["state"] in states
                       and (call_id is None or m["call"]["id"] == call_id))
    return msg["call"]


class Morning:
    """The county's morning: two counselling teams, the foreigners' office's two desks, a job centre desk."""

    def __init__(self, stack: AsyncExitStack, srv, svc, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        self.stack, self.srv, self.svc, self.http, self.headers = stack, srv, svc, http, headers
        self.names: list[str] = []  # every name and id that must not appear in a report
        self.rooms: list[str] = []

    async def consultation(self, counsellor_id: str, n: int) -> tuple[str, RawSocket, RawSocket, str, str]:
        room = await create_room(self.http, self.headers, title=f"Beratung Familie Nowak {n}")
        sql(self.svc, "UPDATE rooms SET created_by = ? WHERE id = ?", counsellor_id, room)  # the counsellor's room
        socks = []
        for role, name in (("counsellor", f"Frau Weber {n}"), ("citizen", f"Ayşe Yılmaz {n}")):
            inv = await invite(self.http, self.headers, room, role, name)
            sock = await RawSocket.open(self.http)
            self.stack.push_async_callback(sock.close)
            welcome = await sock.join(inv["token"])
            assert welcome["type"] == "welcome", welcome
            socks.append((sock, welcome["self"]["id"] if isinstance(welcome["self"], dict) else welcome["self"]))
            self.names += [name, inv["jti"]]
        self.rooms.append(room)
        self.names += [room, f"Familie Nowak {n}"]
        (c, cid), (z, zid) = socks
        return room, c, z, cid, zid

    async def expert_comes_and_goes(self, desk: DeskSocket, accepted: dict[str, Any]) -> None:
        token = accepted["url"].split("#", 1)[1]
        expert = await RawSocket.open(self.http)
        welcome = await expert.join(token)
        assert welcome["type"] == "welcome", welcome
        await desk.next("presence")  # busy
        await asyncio.sleep(1.1)  # a second in the room, so the stored times differ
        await expert.send({"type": "leave"})
        await expert.closed()
        while (await desk.next("presence"))["status"] != "available":
            pass


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


async def play_morning(stack, server_factory, api_headers) -> tuple[Any, Any, Morning]:
    # raw sockets answer pings only while read: a long heartbeat keeps the idle ones of the morning seated
    srv, svc = await server_factory(ROOMSERVER_CALLS_RING_TIMEOUT_SECONDS="3",
                                    ROOMSERVER_SIGNALLING_HEARTBEAT_SECONDS="120")
    http = await stack.enter_async_context(aiohttp.ClientSession(base_url=str(srv.make_url(""))))
    m = Morning(stack, srv, svc, http, api_headers)
    for dept_id, name, kind in DEPARTMENTS:
        if await svc.store.directory.department(dept_id) is None:
            await svc.store.directory.add_department(dept_id, name, kind, svc.now())
    await svc.store.directory.add_department("team_nord", "Team Nord", "agency", svc.now())
    await svc.store.directory.add_department("team_sued", "Team Süd", "agency", svc.now())
    nord = add_staff(svc, "weber", "counsellor", display_name="Frau Weber")
    sued = add_staff(svc, "keller", "counsellor", display_name="Herr Keller")
    sql(svc, "UPDATE accounts SET department_id = 'team_nord' WHERE id = ?", nord.id)
    sql(svc, "UPDATE accounts SET department_id = 'team_sued' WHERE id = ?", sued.id)
    abh1 = await open_desk(stack, srv, svc, "abh1")
    abh2 = await open_desk(stack, srv, svc, "abh2")
    jc1 = await open_desk(stack, srv, svc, "jc1", dept="jobcenter")
    dgs1 = await open_desk(stack, srv, svc, "dgs1", role="interpreter", dept=None, languages={"dgs"})
    sql(svc, "DELETE FROM departments WHERE id = 'agentur'")  # this county's agency has two teams instead
    for desk in (jc1, dgs1):
        await desk.send({"type": "availability", "status": "away"})
        assert (await desk.next("presence"))["status"] == "away"
    m.names += [nord.id, sued.id, "Frau Weber", "Herr Keller", abh1.account_id, abh2.account_id,
                jc1.account_id, dgs1.account_id, "abh1", "abh2", "weber", "keller"]

    rooms = [await m.consultation(nord.id if n < 6 else sued.id, n) for n in range(7)]
    # Six calls to the foreigners' office, each answered by abh2; abh1 declines the first two.
    for n in range(6):
        room, c, z, cid, zid = rooms[n]
        await c.send({"type": "call", "department": "auslaenderbehoerde"})
        call_id = (await abh2.next("ring"))["call"]["id"]
        await abh1.next("ring")
        if n < 2:
            await abh1.send({"type": "decline", "call": call_id})
            assert (await abh1.next("ring-stop"))["reason"] == "declined"
        await abh2.send({"type": "accept", "call": call_id})
        accepted = await abh2.next("accepted")
        if n >= 2:
            await abh1.next("ring-stop")
        await call_state(c, call_id, "accepted")
        await m.expert_comes_and_goes(abh2, accepted)
    # Room 6 (team Süd) calls the foreigners' office and cancels.
    _, c6, *_ = rooms[6]
    await c6.send({"type": "call", "department": "auslaenderbehoerde"})
    call_id = (await abh1.next("ring"))["call"]["id"]
    await abh2.next("ring")
    await c6.send({"type": "call-cancel", "call": call_id})
    await call_state(c6, call_id, "cancelled")
    for desk in (abh1, abh2):
        await desk.next("ring-stop")
    # Room 0 calls again: nobody answers in time; a callback is requested and done by abh1.
    _, c0, *_ = rooms[0]
    await c0.send({"type": "call", "department": "auslaenderbehoerde"})
    call_id = (await abh1.next("ring"))["call"]["id"]
    await abh2.next("ring")
    await call_state(c0, call_id, "timed_out")
    await c0.send({"type": "callback", "call": call_id})
    callbacks = (await abh1.next("callbacks"))["callbacks"]
    await asyncio.sleep(1.1)
    await abh1.send({"type": "callback-done", "callback": callbacks[0]["id"]})
    assert (await abh1.next("callbacks"))["callbacks"] == []
    # The job centre's only desk is away: two calls find nobody; then it is back and answers one.
    for n in (1, 2):
        _, c, *_ = rooms[n]
        await c.send({"type": "call", "department": "jobcenter"})
        await call_state(c, None, "no_one")
    await jc1.send({"type": "availability", "status": "available"})
    assert (await jc1.next("presence"))["status"] == "available"
    _, c3, *_ = rooms[3]
    await c3.send({"type": "call", "department": "jobcenter"})
    call_id = (await jc1.next("ring"))["call"]["id"]
    await jc1.send({"type": "accept", "call": call_id})
    await m.expert_comes_and_goes(jc1, await jc1.next("accepted"))
    # A sign-language interpreter: the only one is away.
    _, c4, *_ = rooms[4]
    await c4.send({"type": "call", "language": "dgs"})
    await call_state(c4, None, "no_one")
    # Connection quality: both seats report on each other; the citizens of rooms 0-4 go through TURN;
    # in rooms 5 and 6 the counsellor's link is poor (1 report in 2: a poor consultation).
    for n, (room, c, z, cid, zid) in enumerate(rooms):
        await c.send({"type": "stats", "peers": {zid: {"rtt_ms": 650 if n >= 5 else 40, "loss": 0.0,
                                                       "state": "connected", "candidate_type": "host"}}})
        await z.send({"type": "stats", "peers": {cid: {"rtt_ms": 45, "state": "connected",
                                                       "candidate_type": "relay" if n < 5 else "srflx"}}})
        await c.send({"type": "ping"})
        await expect(c, "pong")
        await z.send({"type": "ping"})
        await expect(z, "pong")
    for room, *_ in rooms:
        r = await http.post(f"/api/v1/rooms/{room}/end", headers=api_headers)
        assert r.status == 200, await r.text()
    for room in m.rooms:
        async def ended(room=room) -> bool:
            return bool(sql(svc, "SELECT 1 FROM consultation_figures WHERE room_id = ? AND ended_at IS NOT NULL"
                               " AND reports > 0", room))
        for _ in range(300):
            if await ended():
                break
            await asyncio.sleep(0.05)
    return srv, svc, m


@pytest.fixture
async def stack():
    async with AsyncExitStack() as s:
        yield s


async def get(http, url: str, headers) -> tuple[int, Any]:
    r = await http.get(url, headers=headers)
    return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


def row(report: dict[str, Any], group: str, key: str = "") -> dict[str, Any]:
    return next(r["figures"] for r in report["rows"] if r["group"] == group and r["key"] == key)


async def test_a_real_morning_is_counted_right_and_hides_small_cells(server_factory, stack, api_headers) -> None:
    srv, svc, m = await play_morning(stack, server_factory, api_headers)
    http = m.http
    status, report = await get(http, "/api/v1/reports/figures?period=day", api_headers)
    assert status == 200, report
    assert report["min_events"] == 5 and report["hidden"] == H and report["timezone"] == "Europe/Berlin"
    county = row(report, "county")
    # hand-counted: 7 consultations; calls 8 to the office (6 answered, 1 cancelled, 1 timed out), 3 to the
    # job centre (2 nobody available, 1 answered), 1 for an interpreter (nobody available)
    assert county["consultations"] == 7
    assert county["calls_placed"] == 12 and county["calls_answered"] == 7
    assert county["calls_cancelled"] == H and county["calls_timed_out"] == H and county["calls_no_one"] == H
    assert county["calls_declined"] == H  # 2
    assert county["calls_ringing"] == 0
    assert county["answer_rate"] == round(7 / 12, 3)
    assert county["callbacks_requested"] == H and county["callbacks_done"] == H
    assert county["callback_wait_minutes_median"] == H
    # quality: 7 consultations with reports, 2 poor (hidden); 14 seats reported, 5 via TURN
    assert county["poor_quality_share"] == H
    assert county["relay_share"] == round(5 / 14, 3)

    # times, from the stored rows (not from the report code)
    calls = sql(svc, "SELECT * FROM expert_calls WHERE state = 'accepted'")
    answer = [c["accepted_at"] - c["requested_at"] for c in calls]
    assert county["answer_seconds_median"] == round(statistics.median(answer))
    assert county["answer_seconds_p90"] == round(_p90(answer))
    joins, stays = [], []
    for c in calls:
        seat = sql(svc, "SELECT action, at FROM audit_events WHERE room_id = ? AND subject = ?"
                        " AND action IN ('seat.join', 'seat.leave') ORDER BY id", c["room_id"], c["accepted_by"])
        assert [s["action"] for s in seat] == ["seat.join", "seat.leave"]
        joins.append(seat[0]["at"] - c["accepted_at"])
        stays.append(seat[1]["at"] - seat[0]["at"])
    assert county["join_seconds_median"] == round(statistics.median(joins))
    assert county["join_seconds_p90"] == round(_p90(joins))
    assert county["expert_minutes"] == round(sum(stays) / 60, 1) and sum(stays) >= 7

    office = row(report, "department", "auslaenderbehoerde")
    assert office["calls_placed"] == 8 and office["calls_answered"] == 6 and office["consultations"] == 7
    assert office["calls_cancelled"] == H and office["calls_timed_out"] == H
    assert office["answer_rate"] == H  # 6 of 8: the 2 not answered are a small cell
    office_calls = [c for c in calls if c["target"] == "auslaenderbehoerde"]
    assert office["answer_seconds_median"] == round(statistics.median(
        [c["accepted_at"] - c["requested_at"] for c in office_calls]))
    jobs = row(report, "department", "jobcenter")
    assert jobs["calls_placed"] == H and jobs["calls_answered"] == H and jobs["answer_seconds_median"] == H
    assert jobs["consultations"] == H
    # answered: 7 in the county = 6 office + 1 job centre (hidden) + 0 elsewhere: one hidden part of a shown
    # total, so the smallest other part (a 0) is hidden too, and no subtraction finds the job centre's 1
    answered = [r["figures"]["calls_answered"] for r in report["rows"] if r["group"] in ("department", "language")]
    assert answered.count(H) == 2
    language = row(report, "language", "dgs")
    assert language["calls_placed"] == H and language["calls_no_one"] == H
    # teams: Nord held 6, Süd 1 (hidden); with the county's 7 shown, Nord would give Süd away: hidden too
    assert row(report, "team", "team_sued")["consultations"] == H
    assert row(report, "team", "team_nord")["consultations"] == H
    assert [r["label"] for r in report["rows"] if r["group"] == "team"] == ["Team Nord", "Team Süd"]
    # busiest hours: 12 calls in one or two hours of the week, each shown as a count or hidden
    cells = report["hours"]["calls"]
    assert len(cells) == 168 and sum(c for c in cells if isinstance(c, int)) + 4 * cells.count(H) >= 12

    # CSV holds the same figures; neither format names anyone
    r = await http.get("/api/v1/reports/figures?period=day&format=csv", headers=api_headers)
    assert r.status == 200 and r.content_type == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    text = await r.text()
    table = list(csv.reader(io.StringIO(text)))
    header = table[0]
    for line in table[1:]:
        figures = next(x["figures"] for x in report["rows"] if x["group"] == line[0] and x["key"] == line[1])
        for name, cell in zip(header[3:], line[3:]):
            value = figures[name]
            assert cell == ("" if value is None else str(value)), (line[:2], name)
    status, hours = await get(http, "/api/v1/reports/hours?period=day", api_headers)
    assert status == 200 and hours["calls"] == cells
    whole = text + str(report) + str(hours)
    for secret in m.names:
        assert secret not in whole, f"{secret!r} appears in a report"

    # another day: nothing
    status, other = await get(http, "/api/v1/reports/figures?period=day&date=2020-01-01", api_headers)
    assert row(other, "county")["calls_placed"] == 0 and row(other, "county")["answer_rate"] is None
    assert other["incomplete"] is True  # before what retention keeps


async def test_the_period_ends_to_the_second(server_factory, stack, api_headers) -> None:
    """A call at the first second of a day counts on that day; one at its last second too; the next not."""
    srv, svc = await server_factory()
    from datetime import datetime
    from zoneinfo import ZoneInfo
    tz = ZoneInfo("Europe/Berlin")
    day_start = int(datetime(2026, 3, 29, tzinfo=tz).timestamp())  # the clocks go forward: 23 hours
    day_end = int(datetime(2026, 3, 30, tzinfo=tz).timestamp())
    assert day_end - day_start == 23 * 3600
    room = "r_boundary"
    sql(svc, "INSERT INTO rooms (id, title, waiting_room, max_participants, state, created_by, created_at)"
             " VALUES (?, 't', 0, 6, 'ended', 'system', ?)", room, day_start - 100)
    times = [day_start - 1] + [day_start] * 3 + [day_end - 1] * 2 + [day_end]
    for n, at in enumerate(times):
        sql(svc, "INSERT INTO expert_calls (id, room_id, requested_by, kind, target, state, requested_at,"
                 " accepted_at, accepted_by, ended_at) VALUES (?, ?, 'x', 'department', 'jobcenter', 'accepted',"
                 " ?, ?, 'y', ?)", f"c{n}", room, at, at + 10 + n, at + 10 + n)
    period = reports_ops.periods.parse("day", "2026-03-29", tz)
    report = await svc.store.read(lambda tx: reports_ops.report_of(tx, period, svc.settings, day_end))
    county = row(report, "county")
    assert county["calls_placed"] == 5 and county["calls_answered"] == 5 and county["answer_rate"] == 1.0
    assert county["answer_seconds_median"] == 13 and county["answer_seconds_p90"] == 15
    sunday = report["hours"]["calls"]
    assert sunday[6 * 24 + 0] == H and sunday[6 * 24 + 23] == H  # 3 at 00:00, 2 at 23:59:59 (hidden)
    assert sum(1 for c in sunday if c == H) == 2 and sum(c for c in sunday if c != H) == 0
    week = reports_ops.periods.parse("week", "2026-W13", tz)
    assert week.start == int(datetime(2026, 3, 23, tzinfo=tz).timestamp()) and week.end == day_end
    month = reports_ops.periods.parse("month", "2026-03", tz)
    report = await svc.store.read(lambda tx: reports_ops.report_of(tx, month, svc.settings, day_end))
    assert row(report, "county")["calls_placed"] == 7


async def test_who_may_read_reports_and_bad_input(server_factory, stack, api_headers) -> None:
    srv, svc = await server_factory()
    http = await stack.enter_async_context(aiohttp.ClientSession(base_url=str(srv.make_url(""))))
    assert (await get(http, "/api/v1/reports/figures", {}))[0] == 401
    for query, code in (("period=year", "bad_period"), ("period=day&date=2026-13-01", "bad_date"),
                        ("period=week&date=2026-W60", "bad_date"), ("period=month&date=11-2026", "bad_date"),
                        ("period=custom&from=2026-11-02&until=2026-11-01", "bad_range"),
                        ("period=custom&from=2025-01-01&until=2026-11-01", "bad_range"),
                        ("period=month&until=", "bad_date"), ("format=xml", "invalid_request")):
        status, body = await get(http, f"/api/v1/reports/figures?{query}", api_headers)
        assert (status, body["error"]["code"]) == (422, code), query
    status, body = await get(http, "/api/v1/reports/figures?period=custom&from=2026-11-01&until=2026-11-30",
                             api_headers)
    assert status == 200 and body["period"]["label"] == "2026-11-01..2026-11-30"
    status, body = await get(http, "/api/v1/reports/months", api_headers)
    assert status == 200 and body == {"months": []}


async def test_a_month_is_still_reported_after_retention_deleted_its_records(server_factory, stack,
                                                                             api_headers) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from roomserver.ops.auditlog import apply_retention
    from roomserver.ops.retention import apply_record_retention
    from tests.reportdata import NAMES, seed
    srv, svc = await server_factory()
    http = await stack.enter_async_context(aiohttp.ClientSession(base_url=str(srv.make_url(""))))
    tz = ZoneInfo("Europe/Berlin")
    seed(svc, int(datetime(2026, 10, 14, 11, tzinfo=tz).timestamp()))
    early = int(datetime(2026, 11, 2, 12, tzinfo=tz).timestamp())
    assert await reports_ops.store_finished_months(svc.store, svc.settings, early) == []  # not settled yet
    settled = int(datetime(2026, 11, 5, tzinfo=tz).timestamp())
    assert await reports_ops.store_finished_months(svc.store, svc.settings, settled) == ["2026-10"]
    assert await reports_ops.store_finished_months(svc.store, svc.settings, settled) == []  # kept once
    october = reports_ops.periods.parse("month", "2026-10", tz)
    live = await svc.store.read(lambda tx: reports_ops.report_of(tx, october, svc.settings, settled))
    assert row(live, "county")["calls_placed"] == 16
    later = settled + 200 * 86400
    await apply_retention(svc, later)
    await apply_record_retention(svc, later)
    assert sql(svc, "SELECT COUNT(*) AS n FROM expert_calls")[0]["n"] == 0
    assert sql(svc, "SELECT COUNT(*) AS n FROM consultation_figures")[0]["n"] == 0
    status, kept = await get(http, "/api/v1/reports/figures?period=month&date=2026-10", api_headers)
    assert status == 200 and kept["stored"] is True
    assert kept["rows"] == live["rows"] and kept["hours"] == live["hours"]
    status, months = await get(http, "/api/v1/reports/months", api_headers)
    assert [m["month"] for m in months["months"]] == ["2026-10"]
    r = await http.get("/api/v1/reports/months?format=csv", headers=api_headers)
    text = await r.text()
    assert text.startswith("month,group,key,label,") and "2026-10,county,," in text
    stored_text = str(sql(svc, "SELECT * FROM report_months")) + text
    assert not any(secret in stored_text for secret in NAMES)
    # a day of October went with its records: only the month was kept
    status, day = await get(http, "/api/v1/reports/figures?period=day&date=2026-10-14", api_headers)
    assert row(day, "county")["calls_placed"] == 0
