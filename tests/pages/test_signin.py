"""Staff sign-in and sign-out pages over real HTTP: cookies and their flags, refusals, CSRF, roles, next=."""

from __future__ import annotations

import re

import pytest

from roomserver.pages import pageauth
from tests.staff import (
    add_staff,
    client,
    csrf_field,
    post_signin,
    set_cookies,
    sign_in,
    signin_token,
)

WRONG = "Benutzername oder Passwort ist falsch"


def _no_inline_script(html: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, f"inline script: {tag}"
    assert "style=" not in html and "<style" not in html


async def test_signin_form_sets_double_submit_cookie(server):
    async with client(server) as http:
        r = await http.get("/signin")
        html = await r.text()
        assert r.status == 200
        assert 'lang="de"' in html and "Anmelden" in html and "Benutzername" in html and "Passwort" in html
        token = csrf_field(html)
        cookie = set_cookies(r)[pageauth.SIGNIN_CSRF_COOKIE][pageauth.SIGNIN_CSRF_COOKIE]
        assert cookie.value == token and len(token) >= 40
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/signin"
        assert r.headers["Cache-Control"] == "no-store"
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        _no_inline_script(html)
        assert 'autocomplete="current-password"' in html and 'for="signin-username"' in html
        # A second visit keeps the token, so two open tabs both work.
        again = await http.get("/signin")
        assert csrf_field(await again.text()) == token


async def test_signin_success_sets_session_cookie_and_redirects_counsellor(server, services):
    staff = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        r = await post_signin(http, "clara", staff.password)
        assert r.status == 303
        assert r.headers["Location"] == "/console"
        cookies = set_cookies(r)
        session = cookies["rs_session"]["rs_session"]
        assert session.value
        assert session["httponly"] and session["samesite"] == "Strict" and session["path"] == "/"
        assert not session["secure"]  # served over plain http in this test
        assert cookies[pageauth.SIGNIN_CSRF_COOKIE][pageauth.SIGNIN_CSRF_COOKIE]["max-age"] == "0"
        who = await http.get("/api/v1/session")
        assert who.status == 200
        assert (await who.json())["account"]["id"] == staff.id
    events = [e for e in await services.store.audit.query() if e.action == "auth.signed_in"]
    assert [e.actor for e in events] == [staff.id]


async def test_session_cookie_is_secure_when_configured(server_factory):
    srv, svc = await server_factory(ROOMSERVER_AUTH_COOKIE_SECURE="always")
    add_staff(svc, "clara", "counsellor")
    async with client(srv) as http:
        r = await http.get("/signin")
        token = csrf_field(await r.text())
        assert set_cookies(r)[pageauth.SIGNIN_CSRF_COOKIE][pageauth.SIGNIN_CSRF_COOKIE]["secure"]
        # The client jar keeps a Secure cookie away from http://; send it by hand as a browser on https would.
        r = await http.post("/signin", data={"username": "clara", "password": "richtig-Pferd-Batterie-42",
                                             "csrf_token": token},
                            headers={"Cookie": f"{pageauth.SIGNIN_CSRF_COOKIE}={token}"}, allow_redirects=False)
        assert r.status == 303
        session = set_cookies(r)["rs_session"]["rs_session"]
        assert session["secure"] and session["httponly"] and session["samesite"] == "Strict"


@pytest.mark.parametrize("role, landing", [("counsellor", "/console"), ("admin", "/console"), ("expert", "/desk"),
                                           ("interpreter", "/desk"), ("operator", "/operator")])
async def test_redirect_by_role(server, services, role, landing):
    add_staff(services, f"user-{role}", role, display_name=f"Person {role}")
    async with client(server) as http:
        r = await post_signin(http, f"user-{role}", "richtig-Pferd-Batterie-42")
        assert r.status == 303 and r.headers["Location"] == landing
        page = await http.get(landing, allow_redirects=False)
        assert page.status == 200
        if landing == "/home":
            html = await page.text()
            assert f"Person {role}" in html and "Abmelden" in html and 'action="/signout"' in html


async def test_wrong_password_and_unknown_user_look_the_same(server, services):
    add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        wrong = await post_signin(http, "clara", "falsch")
        unknown = await post_signin(http, "niemand", "falsch")
        for r in (wrong, unknown):
            html = await r.text()
            assert r.status == 401
            assert WRONG in html and 'role="alert"' in html
            assert "rs_session" not in set_cookies(r)
        # No hint which usernames exist: the two pages differ only in the echoed username.
        a = (await wrong.text()).replace("clara", "X")
        b = (await unknown.text()).replace("niemand", "X")
        assert a == b
    codes = [e.detail["code"] for e in await services.store.audit.query() if e.action == "auth.sign_in_failed"]
    assert codes == ["login_failed", "login_failed"]


async def test_a_throttled_attempt_gets_429_in_german(server, services):
    staff = add_staff(services, "clara", "counsellor")
    limit = services.settings.auth.signin_free_failures
    t = services.now()
    services.clock = lambda: t  # argon2 is slow: on a real clock the first one-second wait may be over already
    async with client(server) as http:
        for _ in range(limit):
            r = await post_signin(http, "clara", "falsch")
            assert r.status == 401
        r = await post_signin(http, "clara", staff.password)  # even the right password must wait a moment
        html = await r.text()
        assert r.status == 429
        assert "Bitte warten Sie einen Moment" in html
        assert int(r.headers["Retry-After"]) == 1  # the first delay; no lock
        assert "rs_session" not in set_cookies(r)


async def test_missing_fields_are_a_plain_400(server, services):
    async with client(server) as http:
        r = await post_signin(http, "", "")
        assert r.status == 400
        assert "Bitte geben Sie Benutzername und Passwort ein" in await r.text()


async def test_signin_csrf_failures_are_403(server, services):
    staff = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        token = await signin_token(http)
        missing = await http.post("/signin", data={"username": "clara", "password": staff.password},
                                  allow_redirects=False)
        wrong = await post_signin(http, "clara", staff.password, token=token[:-2] + "xx")
        other_origin = await http.post("/signin", data={"username": "clara", "password": staff.password,
                                                        "csrf_token": token},
                                       headers={"Origin": "https://evil.example"}, allow_redirects=False)
        for r in (missing, wrong, other_origin):
            assert r.status == 403
            assert "abgelaufen" in await r.text()
            assert "rs_session" not in set_cookies(r)
    async with client(server) as fresh:  # a field without its cookie (another browser's token)
        r = await post_signin(fresh, "clara", staff.password, token=token)
        assert r.status == 403
    async with client(server) as json_client:  # not a form at all
        await signin_token(json_client)
        r = await json_client.post("/signin", json={"username": "clara", "password": staff.password},
                                   allow_redirects=False)
        assert r.status == 403
    # None of the refused attempts counted as a failed password: the account is not closer to a lock-out.
    assert (await services.store.directory.account(staff.id)).failed_logins == 0


@pytest.mark.parametrize("evil", ["//evil.example", "https://evil.example", "/\\evil.example", "\\\\evil.example",
                                  "javascript:alert(1)", "http:/evil.example", "/\r\nSet-Cookie: x=1", " /console",
                                  "//evil.example/console", "/signin", "evil.example"])
async def test_open_redirects_are_ignored(server, services, evil):
    staff = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        token = await signin_token(http, evil)
        r = await post_signin(http, "clara", staff.password, next_path=evil, token=token)
        assert r.status == 303
        assert r.headers["Location"] == "/console"


async def test_safe_next_is_followed(server, services):
    staff = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        r = await http.get("/console?x=1", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/signin?next=/console%3Fx%3D1"
        page = await http.get(r.headers["Location"])
        assert 'name="next" value="/console?x=1"' in await page.text()
        r = await post_signin(http, "clara", staff.password, next_path="/console?x=1")
        assert r.headers["Location"] == "/console?x=1"
        # Signed in, the form sends one straight on.
        again = await http.get("/signin?next=/home", allow_redirects=False)
        assert again.status == 303 and again.headers["Location"] == "/home"


def test_safe_next_unit():
    assert pageauth.safe_next("/console") == "/console"
    assert pageauth.safe_next("/room/abc?x=1#y") == "/room/abc?x=1#y"
    for bad in (None, "", "//x", "/\\x", "https://x", "x", "/a b", "/a\tb", "/signin?next=/x", "/" + "a" * 600,
                "/\x00", "/\u2028"):
        assert pageauth.safe_next(bad) is None, bad


async def test_anonymous_pages_redirect_to_signin(server):
    async with client(server) as http:
        for path in ("/console", "/home"):
            r = await http.get(path, allow_redirects=False)
            assert r.status == 303
            assert r.headers["Location"] == f"/signin?next={path}"


async def test_stale_session_cookie_is_cleared(server, services):
    staff = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        await sign_in(http, staff)
        await services.store.sessions.delete_for_account(staff.id)
        r = await http.get("/console", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/signin?next=/console"
        assert set_cookies(r)["rs_session"]["rs_session"]["max-age"] == "0"


async def test_expert_may_not_open_console(server, services):
    expert = add_staff(services, "erik", "expert", display_name="Erik Experte")
    async with client(server) as http:
        await sign_in(http, expert)
        r = await http.get("/console", allow_redirects=False)
        html = await r.text()
        assert r.status == 403
        assert "Kein Zugriff" in html and "nicht freigegeben" in html and "Erik Experte" in html
        assert r.headers["Content-Type"].startswith("text/html")
        _no_inline_script(html)


async def test_signout_needs_csrf(server, services):
    staff = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        csrf = await sign_in(http, staff)
        missing = await http.post("/signout", allow_redirects=False)
        other = ("y" if csrf.startswith("x") else "x") + csrf[1:]  # never the token itself (1 in 64 starts with x)
        wrong = await http.post("/signout", data={"csrf_token": other}, allow_redirects=False)
        cross = await http.post("/signout", data={"csrf_token": csrf}, headers={"Origin": "http://evil.example"},
                                allow_redirects=False)
        for r in (missing, wrong, cross):
            assert r.status == 403
            assert "veraltet" in await r.text()
        assert (await http.get("/api/v1/session")).status == 200  # still signed in

        r = await http.post("/signout", data={"csrf_token": csrf}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/signin?signed_out=1"
        assert set_cookies(r)["rs_session"]["rs_session"]["max-age"] == "0"
        assert (await http.get("/api/v1/session")).status == 401
        page = await http.get("/signin?signed_out=1")
        assert "Sie haben sich abgemeldet" in await page.text()
    actions = [e.action for e in await services.store.audit.query() if e.actor == staff.id]
    assert actions[-2:] == ["auth.signed_in", "auth.signed_out"]


async def test_signout_with_header_token_and_old_session_is_ended(server, services):
    staff = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        csrf = await sign_in(http, staff)
        old_cookie = http.cookie_jar.filter_cookies(server.make_url("/"))["rs_session"].value
        r = await http.post("/signout", headers={"X-CSRF-Token": csrf}, allow_redirects=False)
        assert r.status == 303
    async with client(server) as other:  # the ended session stays ended even if someone replays the old cookie
        r = await other.get("/console", headers={"Cookie": f"rs_session={old_cookie}"}, allow_redirects=False)
        assert r.status == 303
    async with client(server) as http:
        # Signing out with no session is harmless.
        r = await http.post("/signout", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/signin"


async def test_new_signin_ends_previous_session(server, services):
    staff = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        await sign_in(http, staff)
        first = http.cookie_jar.filter_cookies(server.make_url("/"))["rs_session"].value
        # A second form still open in another tab: its double-submit pair, sent while signed in.
        http.cookie_jar.update_cookies({"rs_signin_csrf": "t" * 43}, server.make_url("/signin"))
        r = await post_signin(http, "clara", staff.password, token="t" * 43)
        assert r.status == 303
        second = http.cookie_jar.filter_cookies(server.make_url("/"))["rs_session"].value
        assert first != second
    async with client(server) as other:
        r = await other.get("/api/v1/session", headers={"Cookie": f"rs_session={first}"})
        assert r.status == 401
        r = await other.get("/api/v1/session", headers={"Cookie": f"rs_session={second}"})
        assert r.status == 200


async def test_english_form(server):
    async with client(server) as http:
        r = await http.get("/signin", headers={"Accept-Language": "en-GB,en;q=0.8"})
        html = await r.text()
        assert 'lang="en"' in html and "Sign in" in html and "Username" in html
