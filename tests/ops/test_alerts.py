"""The answer-rate alert: judged on enough calls only, raised once, recovered once, on the dashboard and webhooks."""

from __future__ import annotations

from roomserver.ops.alerts import AnswerRateWatch, Rate, check, low, rates
from roomserver.ops.monitor import MONITOR_KEY
from roomserver.ops.webhooks import payload
from tests.support import sql


def test_rates_count_ended_calls_and_low_needs_enough_of_them() -> None:
    calls = [("abh", "accepted")] * 2 + [("abh", "timed_out")] * 3 + [("abh", "ringing")] + \
            [("jc", "no_one")] * 4 + [("soz", "accepted")] * 5
    by = rates(calls)
    assert by["abh"] == Rate("abh", 2, 5) and by["jc"] == Rate("jc", 0, 4) and by["soz"].rate == 1.0
    assert set(low(by, 0.5, 5)) == {"abh"}  # the job centre's 4 calls are too few to judge
    assert set(low(by, 0.3, 5)) == set()  # 40 % is not below 30 %


def test_the_watch_raises_once_and_recovers_once() -> None:
    watch = AnswerRateWatch()
    bad = rates([("abh", "timed_out")] * 5)
    assert [r.department for r in watch.update(bad, 0.5, 5)[0]] == ["abh"]
    assert watch.update(bad, 0.5, 5) == ([], [])  # still low: said once
    raised, recovered = watch.update(rates([("abh", "accepted")] * 5), 0.5, 5)
    assert raised == [] and [r.department for r in recovered] == ["abh"]
    raised, recovered = watch.update(bad, 0.5, 5)
    assert [r.department for r in raised] == ["abh"]
    assert [r.department for r in watch.update({}, 0.5, 5)[1]] == ["abh"]  # the window emptied: recovered


async def test_a_low_office_is_published_shown_on_the_dashboard_and_sent_as_webhook(server, services) -> None:
    now = services.now()
    sql(services, "INSERT INTO departments (id, name, kind, created_at) VALUES ('jobcenter', 'Jobcenter',"
                  " 'county', ?)", now)
    sql(services, "INSERT INTO rooms (id, title, waiting_room, max_participants, state, created_by, created_at)"
                  " VALUES ('r1', 'Familie Nowak', 0, 6, 'live', 'system', ?)", now)
    states = ["timed_out"] * 4 + ["no_one"] * 2 + ["accepted"] + ["timed_out"] * 5
    for n, state in enumerate(states):
        at = now - 4000 if n >= 7 else now - 600 + n  # the last five are older than the hour
        sql(services, "INSERT INTO expert_calls (id, room_id, requested_by, kind, target, state, requested_at)"
                      " VALUES (?, 'r1', 'x', 'department', 'jobcenter', ?, ?)", f"c{n}", state, at)
    seen = []
    services.events.subscribe(seen.append)
    watch = AnswerRateWatch()
    raised, _ = await check(services, watch)
    assert [(r.answered, r.ended) for r in raised] == [(1, 7)]
    event = next(e for e in seen if e.kind == "alert.answer_rate_low")
    body = payload(event)
    assert body["type"] == "alert.answer_rate_low" and body["room"] is None
    assert body["data"] == {"department": "jobcenter", "label": "Jobcenter", "answer_rate": round(1 / 7, 3),
                            "calls": 7, "window_minutes": 60}
    snapshot = await server.app[MONITOR_KEY].snapshot()
    assert [a["department"] for a in snapshot["alerts"]] == ["jobcenter"]
    assert await check(services, watch) == ([], [])  # said once
    sql(services, "UPDATE expert_calls SET state = 'accepted'")
    _, recovered = await check(services, watch)
    assert [r.department for r in recovered] == ["jobcenter"]
    assert (await server.app[MONITOR_KEY].snapshot())["alerts"] == []
    assert [e.kind for e in seen if e.kind.startswith("alert.")] == ["alert.answer_rate_low",
                                                                    "alert.answer_rate_recovered"]
