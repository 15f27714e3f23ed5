"""The answer-rate alert: a county office whose calls went unanswered too often in the last hour.

Every ``[reports] alert_check_seconds`` the calls placed to each department in the last
``alert_window_minutes`` are counted; a department whose answer rate (answered of the
calls that ended) is below ``alert_answer_rate`` is flagged: the event
``alert.answer_rate_low`` goes to the operator dashboard and the webhooks, and
``alert.answer_rate_recovered`` once it is no longer below. Like the reports, an office
is judged only on at least ``min_events`` ended calls: fewer say nothing, and would tell
too much about one afternoon. In a cluster only the node that runs the switchboard checks,
so each alert is sent once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Iterable

from aiohttp import web

from ..live import SWITCHBOARD, LiveUnavailable
from ..services import Services, services_of

log = logging.getLogger("roomserver.alerts")


@dataclass(frozen=True)
class Rate:
    department: str
    answered: int
    ended: int

    @property
    def rate(self) -> float:
        return self.answered / self.ended if self.ended else 1.0


def rates(calls: Iterable[tuple[str, str]]) -> dict[str, Rate]:
    """(department, state) of the window's calls -> answered and ended calls per department (ringing ones wait)."""
    answered: dict[str, int] = {}
    ended: dict[str, int] = {}
    for department, state in calls:
        if state == "ringing":
            continue
        ended[department] = ended.get(department, 0) + 1
        answered[department] = answered.get(department, 0) + (state == "accepted")
    return {d: Rate(d, answered[d], ended[d]) for d in ended}


def low(by_department: dict[str, Rate], threshold: float, min_events: int) -> dict[str, Rate]:
    """The departments below the threshold, judged on at least ``min_events`` ended calls."""
    return {d: r for d, r in by_department.items() if r.ended >= min_events and r.rate < threshold}


class AnswerRateWatch:
    """Remembers which departments are flagged; each check says what changed (pure, given the counts)."""

    def __init__(self) -> None:
        self.flagged: dict[str, Rate] = {}

    def update(self, by_department: dict[str, Rate], threshold: float,
               min_events: int) -> tuple[list[Rate], list[Rate]]:
        now_low = low(by_department, threshold, min_events)
        raised = [r for d, r in now_low.items() if d not in self.flagged]
        recovered = [by_department.get(d, Rate(d, 0, 0)) for d in self.flagged if d not in now_low]
        self.flagged = now_low
        return raised, recovered


async def check(svc: Services, watch: AnswerRateWatch) -> tuple[list[Rate], list[Rate]]:
    """One check: read the window's calls, publish what changed."""
    cfg = svc.settings.reports
    now = svc.now()
    window = cfg.alert_window_minutes * 60
    calls = await svc.store.reports.department_calls(now - window)
    raised, recovered = watch.update(rates(calls), cfg.alert_answer_rate, cfg.min_events)
    if raised or recovered:
        names = {d.id: d.name for d in await svc.store.directory.departments()}
        for kind, items in (("alert.answer_rate_low", raised), ("alert.answer_rate_recovered", recovered)):
            for r in items:
                data: dict[str, Any] = {"department": r.department, "label": names.get(r.department, r.department),
                                        "answer_rate": round(r.rate, 3) if r.ended else None, "calls": r.ended,
                                        "window_minutes": cfg.alert_window_minutes}
                svc.events.publish(kind, None, **data)
                log.warning("%s: %s answered %d of %d calls in the last %d minutes", kind, r.department,
                            r.answered, r.ended, cfg.alert_window_minutes)
    return raised, recovered


async def _runs_switchboard(svc: Services) -> bool:
    if not svc.live.clustered:
        return True
    try:
        return await svc.live.owner(SWITCHBOARD) == svc.live.node
    except LiveUnavailable:
        return False


def setup_alerts(app: web.Application) -> None:
    svc = services_of(app)
    if not svc.settings.reports.alert_answer_rate:
        return

    async def alerts(app: web.Application):  # type: ignore[no-untyped-def]
        watch = AnswerRateWatch()

        async def loop() -> None:
            while True:
                await asyncio.sleep(svc.settings.reports.alert_check_seconds)
                try:
                    if await _runs_switchboard(svc):
                        await check(svc, watch)
                    else:
                        watch.flagged = {}  # another node checks (and would say "recovered" itself)
                except Exception:  # noqa: BLE001 - try again at the next check
                    log.exception("answer-rate check failed")

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app.cleanup_ctx.append(alerts)
