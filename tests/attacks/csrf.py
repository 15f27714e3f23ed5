"""Cross-site request forgery against a signed-in staff member's browser, and login CSRF."""

from __future__ import annotations

import re

from tests.attacks.loopback import target
from tests.attacks.verdict import Verdict

TOPIC = "csrf"
PASSWORD = "richtig-Pferd-Batterie-42"
EVIL = {"Origin": "https://evil.example", "Referer": "https://evil.example/page"}


async def run() -> list[Verdict]:
    v: list[Verdict] = []
    async with target() as t:
        t.staff("clara", "counsellor", PASSWORD)
        t.staff("carl", "counsellor", PASSWORD)
        async with t.client() as victim, t.client() as other:
            r = await victim.post("/api/v1/session", json={"username": "clara", "password": PASSWORD})
            csrf = (await r.json())["csrf_token"]
            cookie = next((h for h in r.headers.getall("Set-Cookie", []) if h.startswith("rs_session=")), "")
            v.append(Verdict(TOPIC, "session cookie readable or sent cross-site",
                             "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie.split(";", 1)[-1].strip()))
            theirs = (await (await other.post("/api/v1/session", json={"username": "carl", "password": PASSWORD}))
                      .json())["csrf_token"]

            async def api(attack: str, method: str, path: str, headers: dict[str, str], **kw: object) -> None:
                async with victim.request(method, path, headers=headers, **kw) as resp:
                    body = await resp.json(content_type=None)
                    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
                    v.append(Verdict(TOPIC, attack, resp.status == 403 and code == "csrf_failed",
                                     f"{resp.status} {code}"))

            room = {"json": {"title": "Forged"}}
            await api("create a room with the session cookie, no CSRF header", "POST", "/api/v1/rooms", EVIL, **room)
            await api("create a room with a wrong CSRF header", "POST", "/api/v1/rooms",
                      {**EVIL, "X-CSRF-Token": "x" * 43}, **room)
            await api("create a room with another session's CSRF token", "POST", "/api/v1/rooms",
                      {**EVIL, "X-CSRF-Token": theirs}, **room)
            await api("sign the victim out (DELETE session) without the header", "DELETE", "/api/v1/session", EVIL)
            await api("CSRF token in the query string instead of the header", "POST",
                      f"/api/v1/rooms?csrf_token={csrf}", EVIL, **room)
            form = await victim.post("/signout", data={"csrf_token": "forged"}, headers=EVIL, allow_redirects=False)
            v.append(Verdict(TOPIC, "sign-out form posted from another site", form.status == 403, f"{form.status}"))
            still = await victim.get("/api/v1/session")
            v.append(Verdict(TOPIC, "the victim's session survived every forged request", still.status == 200,
                             f"GET /api/v1/session {still.status}"))
        async with t.client() as login:
            # Login CSRF: a foreign site signs the victim's browser in to the attacker's account.
            r = await login.post("/signin", data={"username": "carl", "password": PASSWORD}, headers=EVIL,
                                 allow_redirects=False)
            v.append(Verdict(TOPIC, "login CSRF: sign-in form without token", r.status == 403, f"{r.status}"))
            page = await (await login.get("/signin")).text()
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            login.cookie_jar.clear()
            r = await login.post("/signin", data={"username": "carl", "password": PASSWORD,
                                                  "csrf_token": token.group(1) if token else ""},
                                 headers=EVIL, allow_redirects=False)
            v.append(Verdict(TOPIC, "login CSRF: a form token without its cookie", r.status == 403, f"{r.status}"))
    return v
