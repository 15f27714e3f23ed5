"""Expert patch-in through the real server: desks ring, first accept wins, the expert joins with media."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any, AsyncIterator

import aiohttp
import pytest

from roomserver.domain.demo import DEPARTMENTS
from roomserver.peer.participant import JoinRefused, Participant
from tests.staff import add_staff, client, sign_in
from tests.support import create_room, invite, sql

WAIT = 30.0


class DeskSocket:
    """An expert's desk, signed in through the sign-in form like a browser."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http, self.ws = http, ws
        self.seen: list[dict[str, Any]] = []

    async def next(self, type_: str, timeout: float = WAIT) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                msg = await self.ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, f"desk socket closed: {msg}"
                data = json.loads(msg.data)
                self.seen.append(data)
                if data["type"] == type_:
                    return data
        return await asyncio.wait_for(read(), timeout)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_json(message)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def open_desk(stack: AsyncExitStack, server, services, username: str, role: str = "expert",
                    dept: str | None = "auslaenderbehoerde", languages: set[str] | None = None) -> DeskSocket:
    for dept_id, name, kind in DEPARTMENTS:  # the service's departments, as the demo data has them
        if await services.store.directory.department(dept_id) is None:
            await services.store.directory.add_department(dept_id, name, kind, services.now())
    staff = add_staff(services, username, role)
    if dept is not None:
        sql(services, "UPDATE accounts SET department_id = ? WHERE id = ?", dept, staff.id)
    if languages:
        await services.store.directory.set_languages(staff.id, languages)
    http = await stack.enter_async_context(client(server))
    await sign_in(http, staff)
    ws = await http.ws_connect("/desk/ws", headers={"Origin": str(server.make_url("")).rstrip("/")})
    stack.push_async_callback(ws.close)
    desk = DeskSocket(http, ws)
    hello = await desk.next("desk")
    assert hello["status"] == "available"
    desk.account_id = staff.id  # type: ignore[attr-defined]
    return desk


def ws_url(server) -> str:
    return str(server.make_url("/ws")).replace("http://", "ws://")


async def room_with_people(stack, server, http, api_headers):
    """A running consultation: a counsellor and a citizen exchanging media."""
    room = await create_room(http, api_headers)
    counsellor = Participant(ws_url(server), (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"])
    citizen = Participant(ws_url(server), (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"])
    for p in (counsellor, citizen):
        stack.push_async_callback(p.close)
        await p.connect()
    await counsellor.wait_connected(citizen.id, WAIT)
    return room, counsellor, citizen


async def call_status(p: Participant, state: str, after: int = 0) -> dict[str, Any]:
    msg = await p.wait_message("call-status", lambda m: m["call"]["state"] == state, timeout=WAIT, after=after)
    return msg["call"]


async def test_call_rings_both_desks_first_accept_joins_with_media(server, http, api_headers, services, stack):
    room, counsellor, citizen = await room_with_people(stack, server, http, api_headers)
    desk_a = await open_desk(stack, server, services, "abh1")
    desk_b = await open_desk(stack, server, services, "abh2")
    await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
    ringing = await call_status(counsellor, "ringing")
    assert ringing["ringing"] == 2 and ringing["target_label"] == "Ausländerbehörde"
    ring_a, ring_b = await desk_a.next("ring"), await desk_b.next("ring")
    assert ring_a["call"]["id"] == ring_b["call"]["id"] == ringing["id"]
    assert ring_a["call"]["caller_name"] == "Frau Weber" and ring_a["call"]["room_title"] == "Beratung"
    await desk_a.send({"type": "accept", "call": ringing["id"]})
    accepted = await desk_a.next("accepted")
    stopped = await desk_b.next("ring-stop")
    assert stopped["reason"] == "taken"
    assert (await call_status(counsellor, "accepted"))["accepted_by"]
    token = accepted["url"].split("#", 1)[1]
    assert accepted["url"].startswith(f"/room/{room}#")
    expert = Participant(ws_url(server), token)
    stack.push_async_callback(expert.close)
    await expert.connect()
    for other in (counsellor, citizen):
        await expert.wait_connected(other.id, WAIT)
        assert await expert.wait_frames(other.id, "video", 3, WAIT) >= 3
        assert await expert.wait_frames(other.id, "audio", 3, WAIT) >= 3
        assert await other.wait_frames(expert.id, "video", 3, WAIT) >= 3
    assert expert.role == "expert"
    presence = await desk_a.next("presence")
    assert presence["status"] == "busy" and presence["in_consultation"] is True
    events = [e for e, _, _ in await services.store.calls.events(ringing["id"])]
    assert events[:1] == ["requested"] and events.count("rung") == 2 and "accepted" in events
    row = await services.store.calls.get(ringing["id"])
    assert row.state == "accepted" and row.accepted_by == desk_a.account_id
    # the patch-in token is single-use, and only for this room
    again = Participant(ws_url(server), token)
    stack.push_async_callback(again.close)
    with pytest.raises(JoinRefused) as refused:
        await again.connect()
    assert refused.value.code in ("token_already_used", "identity_in_use")


async def test_two_accepts_at_the_same_instant_exactly_one_wins(server, http, api_headers, services, stack):
    room, counsellor, _ = await room_with_people(stack, server, http, api_headers)
    desk_a = await open_desk(stack, server, services, "abh1")
    desk_b = await open_desk(stack, server, services, "abh2")
    await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
    call_id = (await desk_a.next("ring"))["call"]["id"]
    await desk_b.next("ring")
    await asyncio.gather(desk_a.send({"type": "accept", "call": call_id}),
                         desk_b.send({"type": "accept", "call": call_id}))

    async def outcome(desk: DeskSocket) -> str:
        while True:
            msg = await _any(desk, ("accepted", "error", "ring-stop"))
            if msg["type"] == "accepted":
                return "won"
            if msg["type"] == "error":
                assert msg["code"] == "call_taken"
                return "told"
            if msg["reason"] == "taken":
                return "told"

    results = sorted(await asyncio.gather(outcome(desk_a), outcome(desk_b)))
    assert results == ["told", "won"]
    assert [e for e, _, _ in await services.store.calls.events(call_id)].count("accepted") == 1


async def _any(desk: DeskSocket, types: tuple[str, ...]) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            msg = await desk.ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT
            data = json.loads(msg.data)
            if data["type"] in types:
                return data
    return await asyncio.wait_for(read(), WAIT)


async def test_no_one_available_is_told_at_once_and_away_is_not_rung(server, http, api_headers, services, stack):
    _, counsellor, _ = await room_with_people(stack, server, http, api_headers)
    desk = await open_desk(stack, server, services, "abh1")
    await desk.send({"type": "availability", "status": "away"})
    assert (await desk.next("presence"))["status"] == "away"
    await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
    assert (await call_status(counsellor, "no_one"))["ringing"] == 0
    assert not [m for m in desk.seen if m["type"] == "ring"]


async def test_timeout_and_callback_request_on_the_desk(server_factory, api_headers, services, stack):
    srv, svc = await server_factory(ROOMSERVER_CALLS_RING_TIMEOUT_SECONDS="1")
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        _, counsellor, _ = await room_with_people(stack, srv, http, api_headers)
        desk = await open_desk(stack, srv, svc, "abh1")
        await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
        call_id = (await desk.next("ring"))["call"]["id"]
        assert (await desk.next("ring-stop"))["reason"] == "timed_out"
        await call_status(counsellor, "timed_out")
        await counsellor.send({"type": "callback", "call": call_id})
        callbacks = (await desk.next("callbacks"))["callbacks"]
        assert [c["caller_name"] for c in callbacks] == ["Frau Weber"]
        await desk.send({"type": "callback-done", "callback": callbacks[0]["id"]})
        assert (await desk.next("callbacks"))["callbacks"] == []


async def test_cancel_and_decline(server, http, api_headers, services, stack):
    _, counsellor, _ = await room_with_people(stack, server, http, api_headers)
    desk_a = await open_desk(stack, server, services, "abh1")
    desk_b = await open_desk(stack, server, services, "abh2")
    await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
    call_id = (await desk_a.next("ring"))["call"]["id"]
    await desk_b.next("ring")
    await desk_a.send({"type": "decline", "call": call_id})
    assert (await desk_a.next("ring-stop"))["reason"] == "declined"
    mark = len(counsellor.messages)
    await counsellor.send({"type": "call-cancel", "call": call_id})
    assert (await desk_b.next("ring-stop"))["reason"] == "cancelled"
    await call_status(counsellor, "cancelled", after=mark)
    await desk_a.send({"type": "accept", "call": call_id})
    assert (await desk_a.next("error"))["code"] == "call_over"


async def test_citizens_and_experts_may_not_call(server, http, api_headers, services, stack):
    room, counsellor, citizen = await room_with_people(stack, server, http, api_headers)
    await open_desk(stack, server, services, "abh1")  # departments exist
    await citizen.send({"type": "call", "department": "auslaenderbehoerde"})
    error = await citizen.wait_message("error", timeout=WAIT)
    assert error["code"] == "forbidden"
    await counsellor.send({"type": "call", "department": "no-such-office"})
    assert (await counsellor.wait_message("error", timeout=WAIT))["code"] == "unknown_department"


async def test_interpreter_is_called_by_language(server, http, api_headers, services, stack):
    _, counsellor, _ = await room_with_people(stack, server, http, api_headers)
    desk = await open_desk(stack, server, services, "dgs1", role="interpreter", dept=None, languages={"dgs"})
    await counsellor.send({"type": "call", "language": "dgs"})
    ring = await desk.next("ring")
    assert ring["call"]["target_label"] == "Deutsche Gebärdensprache"


async def test_desk_socket_is_for_signed_in_experts_of_this_site(server, services, stack):
    anon = await stack.enter_async_context(client(server))
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await anon.ws_connect("/desk/ws")
    assert refused.value.status == 401
    counsellor = add_staff(services, "berater", "counsellor")
    http = await stack.enter_async_context(client(server))
    await sign_in(http, counsellor)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/desk/ws")
    assert refused.value.status == 403
    expert = add_staff(services, "abh9", "expert")
    http2 = await stack.enter_async_context(client(server))
    await sign_in(http2, expert)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # cross-site WebSocket hijacking
        await http2.ws_connect("/desk/ws", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


async def test_an_expert_who_left_goes_back_from_the_desk_with_a_fresh_token(server, http, api_headers, services,
                                                                           stack):
    """ "Zurück in die Beratung": the desk offers it while the call stands, and mints a fresh single-use token."""
    room, counsellor, _ = await room_with_people(stack, server, http, api_headers)
    desk = await open_desk(stack, server, services, "abh1")
    await counsellor.send({"type": "call", "department": "auslaenderbehoerde"})
    call_id = (await desk.next("ring"))["call"]["id"]
    await desk.send({"type": "accept", "call": call_id})
    first = (await desk.next("accepted"))["url"].split("#", 1)[1]
    expert = Participant(ws_url(server), first, send_media=False)
    stack.push_async_callback(expert.close)
    await expert.connect()
    assert (await call_status(counsellor, "accepted"))["presence"] in ("joining", "in_room")
    await counsellor.wait_message("call-status", lambda m: m["call"]["presence"] == "in_room", timeout=WAIT)
    await expert.leave()

    offered = await desk.next("returns")
    while not offered["calls"]:  # the first one came when she entered: nothing to go back to then
        offered = await desk.next("returns")
    assert [c["id"] for c in offered["calls"]] == [call_id] and offered["calls"][0]["room_title"] == "Beratung"
    await counsellor.wait_message("call-status", lambda m: m["call"]["presence"] == "left", timeout=WAIT)
    again = Participant(ws_url(server), first, send_media=False)  # the spent token stays spent
    stack.push_async_callback(again.close)
    with pytest.raises(JoinRefused) as spent:
        await again.connect()
    assert spent.value.code == "token_already_used"

    await desk.send({"type": "rejoin", "call": call_id})
    back = await desk.next("accepted")
    fresh = back["url"].split("#", 1)[1]
    assert back["url"].startswith(f"/room/{room}#") and fresh != first
    assert (await desk.next("returns"))["calls"] == []
    returning = Participant(ws_url(server), fresh, send_media=False)
    stack.push_async_callback(returning.close)
    await returning.connect()
    assert returning.role == "expert"
    assert "rejoined" in [e for e, _, _ in await services.store.calls.events(call_id)]

    # Released by the counsellor: the call is over, the desk offers nothing, a rejoin is refused.
    await counsellor.remove(returning.id)
    await counsellor.wait_message("call-status", lambda m: m["call"]["presence"] == "released", timeout=WAIT)
    await desk.send({"type": "rejoin", "call": call_id})
    error = await desk.next("error")
    assert (error["code"], error["ref"]) == ("not_returnable", "rejoin")
