"""Sign-in that resists guessing without a lock anybody could trigger (the attack run's first finding).

Real servers on loopback, the real store; the clock is the services' own, moved by hand.
"""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from roomserver.app import create_app
from roomserver.core import throttle
from roomserver.services import build_services
from tests.staff import add_staff, client

SESSION = "/api/v1/session"
WRONG = "not-the-password"


async def attempt(http: aiohttp.ClientSession, username: str, password: str) -> tuple[int, str, str | None]:
    async with http.post(SESSION, json={"username": username, "password": password}) as r:
        body = await r.json()
        code = body["error"]["code"] if r.status != 200 else "ok"
        return r.status, code, r.headers.get("Retry-After")


def test_the_delay_grows_and_has_a_ceiling():
    assert [throttle.delay(n, 5, 300) for n in range(4, 16)] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert throttle.wait(6, 1000, 1001, 5, 300) == 1
    assert throttle.wait(6, 1000, 1002, 5, 300) == 0


async def test_strangers_guessing_never_keep_the_owner_out_of_her_browser(server, services):
    """The old lock-out: five wrong passwords every five minutes kept the admin out for good."""
    admin = add_staff(services, "ada", "admin")
    async with client(server) as owner, client(server) as stranger:
        assert (await attempt(owner, "ada", admin.password))[0] == 200  # her browser gets a device cookie
        assert "rs_device" in {c.key for c in owner.cookie_jar}
        t = services.now()
        services.clock = lambda: t
        for _ in range(40):
            status, code, _ = await attempt(stranger, "ada", WRONG)
            assert status in (401, 429) and code in ("login_failed", "sign_in_throttled")
        assert (await attempt(stranger, "ada", admin.password))[:2] == (429, "sign_in_throttled")
        assert (await attempt(owner, "ada", admin.password))[0] == 200  # at once, no wait


async def test_failures_make_the_next_attempt_wait_longer_and_never_lock(server, services):
    clara = add_staff(services, "clara", "counsellor")
    free = services.settings.auth.signin_free_failures
    t = services.now()
    services.clock = lambda: t
    async with client(server) as http:
        for _ in range(free):
            assert (await attempt(http, "clara", WRONG))[:2] == (401, "login_failed")
        assert await attempt(http, "clara", clara.password) == (429, "sign_in_throttled", "1")
        services.clock = lambda: t + 1
        assert (await attempt(http, "clara", WRONG))[:2] == (401, "login_failed")
        assert await attempt(http, "clara", clara.password) == (429, "sign_in_throttled", "2")
        services.clock = lambda: t + 3  # the wait is over by itself: the right password works
        assert (await attempt(http, "clara", clara.password))[0] == 200
    codes = [e.detail["code"] for e in await services.store.audit.query(action="auth.sign_in_failed")]
    assert codes == ["login_failed"] * free + ["sign_in_throttled", "login_failed", "sign_in_throttled"]


async def test_password_spraying_from_one_address_is_slowed_down(server, services):
    """25 usernames × 1 password from one client was free; now the address runs out of free failures."""
    for n in range(5):
        add_staff(services, f"staff{n}", "counsellor")
    other = services.settings.auth.signin_free_failures_other
    t = services.now()
    services.clock = lambda: t  # argon2 takes time: a real clock would let the first delays run out
    answers = []
    async with client(server) as http:
        for n in range(25):
            answers.append((await attempt(http, f"staff{n}" if n < 5 else f"guess{n}", "Sommer2026!"))[1])
    assert answers[:other] == ["login_failed"] * other
    assert set(answers[other:]) == {"sign_in_throttled"}


async def test_unknown_and_known_usernames_get_the_same_answers(server, services):
    add_staff(services, "clara", "counsellor")
    free = services.settings.auth.signin_free_failures
    t = services.now()
    services.clock = lambda: t
    async with client(server) as a, client(server) as b:
        known = [await attempt(a, "clara", WRONG) for _ in range(free + 1)]
        unknown = [await attempt(b, "nobody", WRONG) for _ in range(free + 1)]
    assert known == unknown
    assert known[-1] == (429, "sign_in_throttled", "1")


async def test_audit_stays_bounded_under_a_flood(server, services):
    t = services.now() // 60 * 60
    services.clock = lambda: t
    async with client(server) as http:
        for n in range(45):
            assert (await attempt(http, f"user{n}", WRONG))[0] in (401, 429)
        services.clock = lambda: t + 60
        await attempt(http, "late", WRONG)
    failed = await services.store.audit.query(action="auth.sign_in_failed")
    assert len(failed) == 31  # 30 a minute one by one, then the next minute's first
    (summary,) = await services.store.audit.query(action="auth.sign_in_failures_not_itemised")
    assert summary.detail == {"count": 15}


async def test_cluster_nodes_share_the_counters(server, services, settings):
    """A second node on the same store sees the failures made on the first."""
    clara = add_staff(services, "clara", "counsellor")
    second = build_services(settings)
    t = services.now()
    services.clock = second.clock = lambda: t
    other = TestServer(create_app(second), host="127.0.0.1", port=0)
    await other.start_server()
    try:
        async with client(server) as one, client(other) as two:
            for _ in range(settings.auth.signin_free_failures):
                assert (await attempt(one, "clara", WRONG))[1] == "login_failed"
            assert (await attempt(two, "clara", clara.password))[:2] == (429, "sign_in_throttled")
    finally:
        await other.close()
        second.close()
