"""Staff sign-in: lock-out by strangers, guessing, spraying, username probing, flooding the audit log."""

from __future__ import annotations

import re

import aiohttp

from tests.attacks.loopback import target
from tests.attacks.verdict import Verdict

TOPIC = "signin"
SESSION = "/api/v1/session"
PASSWORD = "richtig-Pferd-Batterie-42"


async def attempt(http: aiohttp.ClientSession, username: str, password: str) -> tuple[int, str, str | None]:
    async with http.post(SESSION, json={"username": username, "password": password}) as r:
        body = await r.json(content_type=None)
        code = body.get("error", {}).get("code", "ok") if isinstance(body, dict) else "?"
        cookie = "rs_session" if "rs_session" in r.cookies else None
        return r.status, code, r.headers.get("Retry-After") or cookie


async def run() -> list[Verdict]:
    v: list[Verdict] = []
    async with target() as t:
        fixed = t.services.now()
        t.services.clock = lambda: fixed  # argon2 is slow: a real clock would let the first short waits pass
        t.staff("ada", "admin", PASSWORD)
        t.staff("clara", "counsellor", PASSWORD)
        async with t.client() as owner, t.client() as stranger:
            good = await attempt(owner, "ada", PASSWORD)
            answers = [await attempt(stranger, "ada", "Passwort123") for _ in range(30)]
            throttled = sum(a[1] == "sign_in_throttled" for a in answers)
            v.append(Verdict(TOPIC, "30 wrong passwords for the admin from one client", throttled > 0,
                             f"{30 - throttled} checked, {throttled} answered 429 sign_in_throttled"))
            back = await attempt(owner, "ada", PASSWORD)
            v.append(Verdict(TOPIC, "lock the admin out: her own browser signs in right after",
                             good[0] == 200 and back[0] == 200, f"owner before {good[0]}, after the attack {back[0]}"))
            right = await attempt(stranger, "ada", PASSWORD)
            v.append(Verdict(TOPIC, "the right password from the guessing client while it must wait",
                             right[:2] == (429, "sign_in_throttled"), f"{right[0]} {right[1]}"))
            v.append(Verdict(TOPIC, "a throttled answer gives no session and says when to retry",
                             right[2] is not None and right[2].isdigit(), f"Retry-After {right[2]}"))
        # Every client here shares 127.0.0.1: each attack below runs in an hour of its own (counters forgotten).
        def hour(n: int) -> None:
            t.services.clock = lambda: fixed + n * 4000

        hour(1)
        async with t.client() as sprayer:
            sprayed = [(await attempt(sprayer, f"user{n}" if n % 2 else "clara", "Sommer2026!"))[1] for n in range(30)]
            v.append(Verdict(TOPIC, "password spraying: 30 usernames, one password, one client",
                             "sign_in_throttled" in sprayed[-5:],
                             f"{sprayed.count('login_failed')} checked, {sprayed.count('sign_in_throttled')} throttled"))
        async with t.client() as a, t.client() as b:
            hour(2)
            known = [await attempt(a, "clara", "x-wrong") for _ in range(7)]
            hour(3)
            unknown = [await attempt(b, "nobody-here", "x-wrong") for _ in range(7)]
            v.append(Verdict(TOPIC, "username probing: known and unknown usernames answered alike",
                             known == unknown, f"known {[k[:2] for k in known[-2:]]}, unknown {[u[:2] for u in unknown[-2:]]}"))
        async with t.client() as form:
            hour(4)
            page = await (await form.get("/signin")).text()
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            statuses = []
            for _ in range(8):
                r = await form.post("/signin", data={"username": "clara", "password": "x", "csrf_token":
                                                     token.group(1) if token else ""}, allow_redirects=False)
                statuses.append(r.status)
            v.append(Verdict(TOPIC, "guessing through the sign-in form", 429 in statuses, f"statuses {statuses}"))
        async with t.client() as odd:
            hour(5)
            inj = await attempt(odd, "' OR '1'='1' --", "' OR '1'='1")
            v.append(Verdict(TOPIC, "SQL injection in username and password", inj[0] == 401, f"{inj[0]} {inj[1]}"))
            big = await attempt(odd, "clara", "x" * 200_000)
            v.append(Verdict(TOPIC, "a 200 kB password (hashing cost)", big[0] in (401, 413, 422),
                             f"{big[0]} {big[1]}"))
        before = len(await t.services.store.audit.query(action="auth.sign_in_failed"))
        hour(6)
        async with t.client() as flood:
            for n in range(80):
                await attempt(flood, f"flood{n}", "x")
        after = len(await t.services.store.audit.query(action="auth.sign_in_failed"))
        v.append(Verdict(TOPIC, "80 failures in a minute to flood the audit log", after - before <= 30,
                         f"{after - before} itemised audit events"))
    return v
