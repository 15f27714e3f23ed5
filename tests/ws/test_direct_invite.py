"""Direct links for a named expert: minted for that account, pushed to its desk, single-use, bounded in time."""

from __future__ import annotations

import time
import types
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any, AsyncIterator

import aiohttp
import pytest

from roomserver.ws import signalling
from tests.staff import add_staff, client, sign_in
from tests.support import RawSocket, create_room, sql
from tests.ws.test_desk import open_desk

WAIT = 30.0


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def counsellor_session(stack: AsyncExitStack, server, services, username: str = "weber"
                             ) -> tuple[aiohttp.ClientSession, dict[str, str]]:
    staff = add_staff(services, username, "counsellor", display_name=f"Frau {username.title()}")
    http = await stack.enter_async_context(client(server))
    return http, {"X-CSRF-Token": await sign_in(http, staff)}


async def direct(http: aiohttp.ClientSession, headers: dict[str, str], room: str, body: dict[str, Any]
                 ) -> tuple[int, dict[str, Any]]:
    async with http.post(f"/api/v1/rooms/{room}/direct-invites", json=body, headers=headers) as r:
        return r.status, await r.json()


def token_of(url: str) -> str:
    return url.split("#", 1)[1]


async def test_direct_link_is_pushed_to_the_desk_and_works_once_for_that_expert(server, services, stack):
    desk = await open_desk(stack, server, services, "abh1")
    http, headers = await counsellor_session(stack, server, services)
    room = await create_room(http, headers, title="Aufenthalt klären")
    before = int(time.time())
    status, body = await direct(http, headers, room, {"account_id": desk.account_id, "lifetime_seconds": 600})
    assert status == 201, body
    base = services.settings.base_url
    assert body["join_url"].startswith(f"{base}/room/{room}#") and body["pushed"] == 1
    assert body["account_id"] == desk.account_id and body["room_id"] == room
    expires = int(datetime.fromisoformat(body["expires_at"]).timestamp())
    assert before + 600 <= expires <= int(time.time()) + 600
    pushed = await desk.next("direct-invite")
    assert pushed == {"type": "direct-invite", "room_title": "Aufenthalt klären", "caller_name": "Frau Weber",
                      "url": f"/room/{room}#{token_of(body['join_url'])}", "expires_at": expires}
    # the token is the expert's own: identity = account, role and department from the account
    claims = services.codec.decode(token_of(body["join_url"]), time.time())
    assert claims.sub == desk.account_id and claims.role.value == "expert" and claims.dept == "auslaenderbehoerde"
    record = await services.store.tokens.get(body["jti"])
    assert record.single_use and record.identity == desk.account_id
    sock = await RawSocket.open(http)
    welcome = await sock.join(token_of(body["join_url"]))
    assert welcome["type"] == "welcome" and welcome["self"]["role"] == "expert"
    presence = await desk.next("presence")  # it is this expert who is in the room now
    assert presence["in_consultation"] is True and presence["status"] == "busy"
    again = await RawSocket.open(http)
    refused = await again.join(token_of(body["join_url"]))
    assert refused["type"] == "error" and refused["code"] in ("token_already_used", "identity_in_use")
    await sock.close()
    # once more after the expert left: still spent
    third = await RawSocket.open(http)
    refused = await third.join(token_of(body["join_url"]))
    assert refused["type"] == "error" and refused["code"] == "token_already_used"
    rows = sql(services, "SELECT actor, subject, detail FROM audit_events WHERE action = ?", "invite.direct_sent")
    assert len(rows) == 1 and rows[0]["subject"] == body["jti"] and desk.account_id in rows[0]["detail"]


async def test_without_an_open_desk_the_link_is_still_made_and_an_admin_may_send_it(server, services, stack):
    desk = await open_desk(stack, server, services, "abh1")
    await desk.ws.close()
    admin = add_staff(services, "root", "admin")
    http = await stack.enter_async_context(client(server))
    headers = {"X-CSRF-Token": await sign_in(http, admin)}
    room = await create_room(http, headers)
    status, body = await direct(http, headers, room, {"account_id": desk.account_id})
    assert status == 201 and body["pushed"] == 0
    lifetime = int(datetime.fromisoformat(body["expires_at"]).timestamp()) - int(time.time())
    assert 3590 <= lifetime <= 3600  # the default: one hour


async def test_expiry_is_honoured(server, services, stack, monkeypatch):
    desk = await open_desk(stack, server, services, "abh1")
    http, headers = await counsellor_session(stack, server, services)
    room = await create_room(http, headers)
    status, body = await direct(http, headers, room, {"account_id": desk.account_id, "lifetime_seconds": 60})
    assert status == 201
    later = types.SimpleNamespace(time=lambda: time.time() + 60 + services.settings.tokens.leeway_seconds + 5,
                                  monotonic=time.monotonic)
    monkeypatch.setattr(signalling, "time", later)  # the signalling edge's clock, a minute and more on
    sock = await RawSocket.open(http)
    refused = await sock.join(token_of(body["join_url"]))
    assert refused["type"] == "error" and refused["code"] == "token_expired"


async def test_wrong_room_and_refusals(server, http, api_headers, services, stack):
    desk = await open_desk(stack, server, services, "abh1")
    weber, weber_h = await counsellor_session(stack, server, services, "weber")
    other, other_h = await counsellor_session(stack, server, services, "schulz")
    room = await create_room(weber, weber_h)
    others_room = await create_room(other, other_h)
    # a counsellor sends links into their own rooms only
    status, body = await direct(other, other_h, room, {"account_id": desk.account_id})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await direct(weber, weber_h, "no-such-room", {"account_id": desk.account_id})
    assert status == 404 and body["error"]["code"] == "not_found"
    # the link for one room does not open another
    status, body = await direct(weber, weber_h, room, {"account_id": desk.account_id})
    assert status == 201
    sock = await RawSocket.open(weber)
    refused = await sock.join(token_of(body["join_url"]), room=others_room)
    assert refused["type"] == "error" and refused["code"] == "token_wrong_room"
    # only experts and interpreters, only enabled accounts, lifetimes in bounds
    counsellor_id = (await services.store.directory.by_username("schulz")).id
    for payload, code, status_ in (
            ({"account_id": counsellor_id}, "not_an_expert", 422),
            ({"account_id": "a_nobody"}, "unknown_account", 422),
            ({"account_id": desk.account_id, "lifetime_seconds": 59}, "invalid_request", 422),
            ({"account_id": desk.account_id, "lifetime_seconds": 86401}, "invalid_request", 422),
            ({"account_id": desk.account_id, "note": "x"}, "invalid_request", 422),
            ({}, "invalid_request", 422)):
        got, body = await direct(weber, weber_h, room, payload)
        assert (got, body["error"]["code"]) == (status_, code), payload
        assert set(body["error"]) == {"code", "message"}
    await services.store.directory.update_account(desk.account_id, disabled=True)
    status, body = await direct(weber, weber_h, room, {"account_id": desk.account_id})
    assert status == 409 and body["error"]["code"] == "account_disabled"
    # experts and operators may not send links; nobody without credentials
    for role in ("expert", "operator"):
        staff = add_staff(services, f"x-{role}", role)
        session = await stack.enter_async_context(client(server))
        h = {"X-CSRF-Token": await sign_in(session, staff)}
        status, body = await direct(session, h, room, {"account_id": desk.account_id})
        assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await direct(http, {}, room, {"account_id": desk.account_id})
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    # an ended room takes no more links
    async with http.post(f"/api/v1/rooms/{room}/end", headers=api_headers) as r:
        assert r.status == 200
    await services.store.directory.update_account(desk.account_id, disabled=False)
    status, body = await direct(http, api_headers, room, {"account_id": desk.account_id})
    assert status == 409 and body["error"]["code"] == "room_ended"
