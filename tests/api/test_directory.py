"""Directory management over the REST API: departments, staff accounts, interpreter languages.

Real server, real store: an admin (session or the system API key) adds departments and
accounts; the account created gets a one-time password it can sign in with, opens its
desk and rings when called, an interpreter by language.
"""

from __future__ import annotations

import json
import re
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from roomserver.pages import admin as adminpage
from roomserver.peer.participant import Participant
from tests.staff import Staff, add_staff, client, sign_in
from tests.support import create_room, invite, sql

WAIT = 30.0
ABH = {"id": "auslaenderbehoerde", "name": "Ausländerbehörde", "kind": "county"}


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


def assert_error(body: Any, code: str | None = None) -> None:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body


async def session_of(stack: AsyncExitStack, server, services, username: str, role: str
                     ) -> tuple[aiohttp.ClientSession, dict[str, str]]:
    """A signed-in staff client and the headers its state-changing requests need."""
    staff = add_staff(services, username, role)
    http = await stack.enter_async_context(client(server))
    return http, {"X-CSRF-Token": await sign_in(http, staff)}


async def post(http: aiohttp.ClientSession, path: str, body: Any, headers: dict[str, str],
               method: str = "POST") -> tuple[int, Any]:
    async with http.request(method, path, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_departments_admin_creates_everyone_on_staff_lists(server, http, api_headers, services, stack):
    admin, admin_h = await session_of(stack, server, services, "root", "admin")
    status, body = await post(admin, "/api/v1/departments", ABH, admin_h)
    assert status == 201 and body == ABH
    status, body = await post(http, "/api/v1/departments", {"id": "jobcenter", "name": "Jobcenter",
                                                           "kind": "county"}, api_headers)
    assert status == 201
    for role in ("counsellor", "expert", "interpreter", "operator"):
        staff, _ = await session_of(stack, server, services, f"u-{role}", role)
        async with staff.get("/api/v1/departments") as r:
            assert r.status == 200, role
            assert [d["id"] for d in (await r.json())["departments"]] == ["auslaenderbehoerde", "jobcenter"]
    # only admins and systems create
    counsellor, c_h = await session_of(stack, server, services, "berater", "counsellor")
    status, body = await post(counsellor, "/api/v1/departments", {"id": "x-amt", "name": "X", "kind": "county"}, c_h)
    assert status == 403
    assert_error(body, "forbidden")
    # duplicate, bad slug, bad kind, unknown field, blank name
    status, body = await post(admin, "/api/v1/departments", ABH, admin_h)
    assert status == 409
    assert_error(body, "department_exists")
    for bad in ({"id": "Bad Slug", "name": "X", "kind": "county"}, {"id": "ok", "name": "X", "kind": "land"},
                {"id": "ok", "name": "X", "kind": "county", "extra": 1}, {"id": "ok", "name": "  ", "kind": "county"},
                {"id": "ok", "name": "X"}):
        status, body = await post(admin, "/api/v1/departments", bad, admin_h)
        assert status == 422, bad
        assert_error(body)
    # no credentials; a session without the CSRF header
    async with http.get("/api/v1/departments") as r:
        assert r.status == 401 and "WWW-Authenticate" in r.headers
        assert_error(await r.json(), "unauthenticated")
    status, body = await post(admin, "/api/v1/departments", {"id": "y", "name": "Y", "kind": "county"}, {})
    assert status == 403
    assert_error(body, "csrf_failed")
    rows = sql(services, "SELECT action, actor FROM audit_events WHERE action LIKE 'directory.%'")
    assert [r["action"] for r in rows] == ["directory.department_created"] * 2


async def test_accounts_create_list_update_disable(server, http, api_headers, services, stack):
    admin, admin_h = await session_of(stack, server, services, "root", "admin")
    await post(admin, "/api/v1/departments", ABH, admin_h)
    status, body = await post(admin, "/api/v1/accounts", {"username": "abh-mueller", "display_name": "Frau Müller",
                                                          "role": "expert", "department": "auslaenderbehoerde"},
                              admin_h)
    assert status == 201, body
    password, account = body["password"], body["account"]
    assert len(password) >= 16
    assert account == {"id": account["id"], "username": "abh-mueller", "display_name": "Frau Müller",
                       "role": "expert", "department": "auslaenderbehoerde", "languages": [], "disabled": False}
    stored = await services.store.directory.account(account["id"])
    assert stored.password_hash.startswith("$argon2id$") and password not in stored.password_hash
    # interpreter with languages, German Sign Language among them; via the system key
    status, body = await post(http, "/api/v1/accounts", {"username": "dolm1", "display_name": "Dolmetscherin",
                                                         "role": "interpreter", "languages": ["dgs", "ar"]},
                              api_headers)
    assert status == 201 and body["account"]["languages"] == ["ar", "dgs"]
    interpreter_id = body["account"]["id"]
    # the list: no hashes, no passwords anywhere
    async with admin.get("/api/v1/accounts") as r:
        assert r.status == 200
        text = await r.text()
    assert "argon2" not in text and password not in text and "password" not in text
    listed = {a["username"]: a for a in json.loads(text)["accounts"]}
    assert listed["dolm1"]["languages"] == ["ar", "dgs"] and listed["root"]["role"] == "admin"
    # refusals
    cases = [
        ({"username": "abh-mueller", "display_name": "X", "role": "counsellor"}, 409, "username_taken"),
        ({"username": "ABH-MUELLER", "display_name": "X", "role": "counsellor"}, 409, "username_taken"),
        ({"username": "e2", "display_name": "X", "role": "expert"}, 422, "department_required"),
        ({"username": "e3", "display_name": "X", "role": "expert", "department": "nowhere"}, 422,
         "unknown_department"),
        ({"username": "e4", "display_name": "X", "role": "counsellor", "languages": ["ar"]}, 422,
         "languages_for_interpreters"),
        ({"username": "e5", "display_name": "X", "role": "emperor"}, 422, "invalid_request"),
        ({"username": "e6", "display_name": "X", "role": "counsellor", "password": "mine"}, 422, "invalid_request"),
        ({"username": "e7", "display_name": "X", "role": "interpreter", "languages": ["DGS!"]}, 422,
         "invalid_request"),
        ({"username": "e8", "display_name": "\u0007", "role": "counsellor"}, 422, "invalid_request"),
    ]
    for body_, status_, code in cases:
        status, body = await post(admin, "/api/v1/accounts", body_, admin_h)
        assert status == status_, (body_, body)
        assert_error(body, code)
    # PATCH: rename, move, languages, disable
    path = f"/api/v1/accounts/{interpreter_id}"
    status, body = await post(admin, path, {"languages": ["dgs", "tr"], "display_name": "Frau Yıldız"}, admin_h,
                              "PATCH")
    assert status == 200 and body["languages"] == ["dgs", "tr"] and body["display_name"] == "Frau Yıldız"
    status, body = await post(admin, f"/api/v1/accounts/{account['id']}", {"department": None}, admin_h, "PATCH")
    assert status == 422
    assert_error(body, "department_required")
    status, body = await post(admin, "/api/v1/accounts/a_nobody", {"disabled": True}, admin_h, "PATCH")
    assert status == 404
    assert_error(body, "not_found")
    status, body = await post(admin, path, {}, admin_h, "PATCH")
    assert status == 422
    assert_error(body, "invalid_request")
    me = (await services.store.directory.by_username("root")).id
    status, body = await post(admin, f"/api/v1/accounts/{me}", {"disabled": True}, admin_h, "PATCH")
    assert status == 409
    assert_error(body, "cannot_disable_self")
    # who may: counsellors, experts and operators neither list nor create nor change accounts
    for role in ("counsellor", "expert", "operator"):
        other, other_h = await session_of(stack, server, services, f"x-{role}", role)
        async with other.get("/api/v1/accounts") as r:
            assert r.status == 403, role
            assert_error(await r.json(), "forbidden")
        status, body = await post(other, "/api/v1/accounts", {"username": "zz", "display_name": "Z",
                                                              "role": "admin"}, other_h)
        assert status == 403
        status, body = await post(other, path, {"disabled": True}, other_h, "PATCH")
        assert status == 403
    # the created expert signs in with the one-time password; disabling ends the session
    expert = await stack.enter_async_context(client(server))
    await sign_in(expert, Staff(account["id"], "abh-mueller", "Frau Müller", "expert", password))
    async with expert.get("/api/v1/session") as r:
        assert r.status == 200
    status, body = await post(admin, f"/api/v1/accounts/{account['id']}", {"disabled": True}, admin_h, "PATCH")
    assert status == 200 and body["disabled"] is True
    async with expert.get("/api/v1/session") as r:
        assert r.status == 401
    # audited, never with a password
    rows = sql(services, "SELECT action, detail FROM audit_events WHERE action LIKE 'directory.%'")
    assert [r["action"] for r in rows].count("directory.account_created") == 2
    assert "directory.account_updated" in [r["action"] for r in rows]
    assert all(password not in (r["detail"] or "") for r in rows)


async def test_created_expert_opens_desk_and_interpreter_rings_by_language(server, http, api_headers, services,
                                                                           stack):
    await post(http, "/api/v1/departments", ABH, api_headers)
    created = {}
    for username, body in (("abh-neu", {"role": "expert", "department": "auslaenderbehoerde"}),
                           ("gebaerden", {"role": "interpreter", "languages": ["dgs"]}),
                           ("arabisch", {"role": "interpreter", "languages": ["ar"]})):
        status, reply = await post(http, "/api/v1/accounts", {"username": username, "display_name": username,
                                                               **body}, api_headers)
        assert status == 201
        created[username] = reply
    desks = {}
    for username, reply in created.items():
        browser = await stack.enter_async_context(client(server))
        await sign_in(browser, Staff(reply["account"]["id"], username, username, reply["account"]["role"],
                                     reply["password"]))
        ws = await browser.ws_connect("/desk/ws", headers={"Origin": str(server.make_url("")).rstrip("/")})
        stack.push_async_callback(ws.close)
        hello = json.loads((await ws.receive(timeout=WAIT)).data)
        assert hello["type"] == "desk" and hello["status"] == "available"
        desks[username] = ws
    assert await services.store.directory.languages(created["gebaerden"]["account"]["id"]) == {"dgs"}
    room = await create_room(http, api_headers)
    counsellor = Participant(str(server.make_url("/ws")).replace("http://", "ws://"),
                             (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"])
    stack.push_async_callback(counsellor.close)
    await counsellor.connect()
    await counsellor.send({"type": "call", "language": "dgs"})
    ring = await next_of(desks["gebaerden"], "ring")
    assert ring["call"]["target_label"] == "Deutsche Gebärdensprache"
    status = await counsellor.wait_message("call-status", lambda m: m["call"]["state"] == "ringing", timeout=WAIT)
    assert status["call"]["ringing"] == 1  # the Arabic interpreter and the expert are not rung


async def next_of(ws: aiohttp.ClientWebSocketResponse, type_: str) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=WAIT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data["type"] == type_:
            return data


async def test_admin_page_for_admins_only_with_strict_csp(server, services, stack):
    anon = await stack.enter_async_context(client(server))
    async with anon.get("/admin", allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"].startswith("/signin")
    counsellor, _ = await session_of(stack, server, services, "berater", "counsellor")
    async with counsellor.get("/admin", allow_redirects=False) as r:
        assert r.status == 403
    admin, _ = await session_of(stack, server, services, "root", "admin")
    async with admin.get("/admin", allow_redirects=False) as r:
        assert r.status == 200
        html = await r.text()
        csp = r.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, "inline script"
    assert "<style" not in html and " style=" not in html
    assert 'value="dgs"' in html and "/static/js/admin.js" in html
    assert 'name="csrf-token"' in html


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_admin_text_is_in_the_catalogs(lang):
    root = Path(__file__).resolve().parents[2] / "web"
    catalog = json.loads((root / "static" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    sources = (root / "templates" / "admin.html").read_text() + (root / "static" / "js" / "admin.js").read_text()
    keys = set(re.findall(r"""["'`](admin\.[a-z_.]+[a-z_])["'`]""", sources))
    keys |= {f"admin.role.{r}" for r in adminpage.ROLES} | {f"admin.lang.{c}" for c in adminpage.LANGUAGES}
    keys |= {f"admin.kind.{k}" for k in ("agency", "county")}
    assert len(keys) > 40
    missing = sorted(k for k in keys if k not in catalog)
    assert not missing, missing
