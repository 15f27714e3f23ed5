"""Helpers for tests of the staff pages: accounts with known passwords, a cookie-keeping client, form sign-in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http.cookies import SimpleCookie

import aiohttp
from aiohttp.test_utils import TestServer

from roomserver.domain.auth import hash_password
from roomserver.services import Services

PASSWORD = "richtig-Pferd-Batterie-42"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclass
class Staff:
    id: str
    username: str
    display_name: str
    role: str
    password: str = PASSWORD


def add_staff(services: Services, username: str, role: str, *, display_name: str | None = None,
              password: str = PASSWORD) -> Staff:
    account = services.store.blocking.directory.add_account(
        username=username, display_name=display_name or f"{username.title()} ({role})", role=role,
        department_id=None, password_hash=hash_password(password), now=services.now())
    return Staff(account.id, username, account.display_name, role, password)


def client(server: TestServer) -> aiohttp.ClientSession:
    """A browser-like client: keeps cookies (also for 127.0.0.1) and does not follow redirects by itself."""
    return aiohttp.ClientSession(base_url=str(server.make_url("")), cookie_jar=aiohttp.CookieJar(unsafe=True))



def csrf_field(html: str) -> str:
    match = _CSRF_FIELD.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def csrf_meta(html: str) -> str:
    match = _CSRF_META.search(html)
    assert match, "no csrf-token meta in the page"
    return match.group(1)


def set_cookies(response: aiohttp.ClientResponse) -> dict[str, SimpleCookie]:
    """The Set-Cookie headers of a response by cookie name (each parsed on its own, attributes kept)."""
    found: dict[str, SimpleCookie] = {}
    for header in response.headers.getall("Set-Cookie", []):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


async def signin_token(http: aiohttp.ClientSession, next_path: str | None = None) -> str:
    """Open the sign-in form (which sets the double-submit cookie); its CSRF field."""
    r = await http.get("/signin", params={"next": next_path} if next_path else None, allow_redirects=False)
    assert r.status == 200, await r.text()
    return csrf_field(await r.text())


async def post_signin(http: aiohttp.ClientSession, username: str, password: str, *, next_path: str | None = None,
                      token: str | None = None) -> aiohttp.ClientResponse:
    if token is None:
        token = await signin_token(http)
    form = {"username": username, "password": password, "csrf_token": token}
    if next_path is not None:
        form["next"] = next_path
    return await http.post("/signin", data=form, allow_redirects=False)


async def sign_in(http: aiohttp.ClientSession, staff: Staff) -> str:
    """Sign ``staff`` in through the form; the session's CSRF token (from the page's meta tag or /api/v1/session)."""
    r = await post_signin(http, staff.username, staff.password)
    assert r.status == 303, await r.text()
    r = await http.get("/api/v1/session")
    assert r.status == 200, await r.text()
    return (await r.json())["csrf_token"]
