"""Real aiortc participants through the real server on loopback: mesh, waiting room, resume, end.

Every participant is ``roomserver.peer.participant.Participant``: real WebSockets, real
tokens from the API, real WebRTC connections that reach ``connected`` and carry
synthetic audio and video peer to peer.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import AsyncIterator

import pytest

from roomserver.core.protocol import CloseCode
from roomserver.peer.participant import JoinRefused, Participant
from tests.support import create_room, invite

WAIT = 30.0


def ws_url(server) -> str:
    return str(server.make_url("/ws")).replace("http://", "ws://")


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def participant(stack: AsyncExitStack, server, token: str, **kwargs) -> Participant:
    p = Participant(ws_url(server), token, **kwargs)
    stack.push_async_callback(p.close)
    await p.connect()
    return p


async def test_three_participants_full_mesh_with_audio_and_video(server, http, api_headers, stack):
    room = await create_room(http, api_headers)
    people = []
    for role, name in (("counsellor", "Frau Weber"), ("citizen", "Ayşe"), ("expert", "Herr Kaya")):
        token = (await invite(http, api_headers, room, role, name))["token"]
        people.append(await participant(stack, server, token))
    for me in people:
        for other in people:
            if other is me:
                continue
            await me.wait_connected(other.id, WAIT)
            assert await me.wait_frames(other.id, "video", 5, WAIT) >= 5
            assert await me.wait_frames(other.id, "audio", 5, WAIT) >= 5
    roles = {p.id: p.role for p in people}
    assert sorted(roles.values()) == ["citizen", "counsellor", "expert"]


async def test_waiting_citizen_is_admitted_and_media_flows(server, http, api_headers, stack):
    room = await create_room(http, api_headers, waiting_room=True)
    counsellor = await participant(stack, server, (await invite(http, api_headers, room, "counsellor"))["token"])
    citizen = Participant(ws_url(server), (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"])
    stack.push_async_callback(citizen.close)
    waiting = await citizen.connect()
    assert waiting["type"] == "waiting" and "peers" not in waiting
    await counsellor.wait_until(lambda: any(w["id"] == citizen.id for w in counsellor.lobby), WAIT, "lobby")
    await counsellor.admit(citizen.id)
    await citizen.wait_admitted(WAIT)
    await counsellor.wait_connected(citizen.id, WAIT)
    assert await citizen.wait_frames(counsellor.id, "video", 3, WAIT) >= 3
    assert await counsellor.wait_frames(citizen.id, "video", 3, WAIT) >= 3


async def test_denied_citizen_is_refused(server, http, api_headers, stack):
    room = await create_room(http, api_headers, waiting_room=True)
    counsellor = await participant(stack, server, (await invite(http, api_headers, room, "counsellor"))["token"])
    citizen = Participant(ws_url(server), (await invite(http, api_headers, room, "citizen"))["token"])
    stack.push_async_callback(citizen.close)
    await citizen.connect()
    await counsellor.wait_until(lambda: bool(counsellor.lobby), WAIT, "lobby")
    await counsellor.deny(citizen.id)
    with pytest.raises(JoinRefused):
        await citizen.wait_admitted(WAIT)
    assert citizen.close_code == CloseCode.DENIED


async def test_resume_keeps_the_seat_and_media_flows_again(server, http, api_headers, stack):
    room = await create_room(http, api_headers)
    counsellor = await participant(stack, server, (await invite(http, api_headers, room, "counsellor"))["token"])
    citizen = await participant(stack, server, (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"])
    await counsellor.wait_connected(citizen.id, WAIT)
    await counsellor.wait_frames(citizen.id, "video", 3, WAIT)
    seat = citizen.id
    await citizen.drop(media=True)  # the network is gone: socket and peer connections
    await counsellor.wait_message("peer-reconnecting", lambda m: m["peer"] == seat, timeout=WAIT)
    welcome = await citizen.resume()
    assert welcome["resumed"] is True and citizen.id == seat
    await counsellor.wait_message("peer-resumed", lambda m: m["peer"] == seat, timeout=WAIT)
    before = counsellor.frames_received(seat, "video")
    await counsellor.wait_until(lambda: counsellor.frames_received(seat, "video") >= before + 5, WAIT,
                                "video after resume")
    await citizen.wait_connected(counsellor.id, WAIT)
    assert await citizen.wait_frames(counsellor.id, "video", 3, WAIT) >= 3


async def test_after_the_grace_period_the_others_see_it_leave(server_factory, api_headers, stack):
    srv, _ = await server_factory(ROOMSERVER_SIGNALLING_RESUME_GRACE_SECONDS="1")
    import aiohttp

    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers)
        counsellor = await participant(stack, srv, (await invite(http, api_headers, room, "counsellor"))["token"])
        citizen = await participant(stack, srv, (await invite(http, api_headers, room, "citizen"))["token"])
        await counsellor.wait_connected(citizen.id, WAIT)
        secret, seat = citizen.resume_secret, citizen.id
        await citizen.drop(media=True)
        left = await counsellor.wait_message("peer-left", lambda m: m["peer"] == seat, timeout=WAIT)
        assert left["reason"] == "timeout"
        late = Participant(ws_url(srv), resume_secret=secret)
        stack.push_async_callback(late.close)
        with pytest.raises(JoinRefused) as refused:
            await late.connect()
        assert refused.value.code == "resume_unknown"


async def test_removed_participant_cannot_return_with_token_or_secret(server, http, api_headers, stack):
    room = await create_room(http, api_headers)
    counsellor = await participant(stack, server, (await invite(http, api_headers, room, "counsellor"))["token"])
    token = (await invite(http, api_headers, room, "citizen"))["token"]
    citizen = await participant(stack, server, token)
    await counsellor.wait_connected(citizen.id, WAIT)
    secret = citizen.resume_secret
    await counsellor.remove(citizen.id)
    await citizen.wait_until(lambda: citizen.state == "removed", WAIT, "removed")
    assert citizen.close_code == CloseCode.REMOVED
    for again in (Participant(ws_url(server), token), Participant(ws_url(server), resume_secret=secret)):
        stack.push_async_callback(again.close)
        with pytest.raises(JoinRefused) as refused:
            await again.connect()
        assert refused.value.code in ("token_revoked", "resume_unknown")


async def test_ending_the_room_disconnects_everyone(server, http, api_headers, stack):
    room = await create_room(http, api_headers)
    counsellor = await participant(stack, server, (await invite(http, api_headers, room, "counsellor"))["token"])
    expert = await participant(stack, server, (await invite(http, api_headers, room, "expert"))["token"])
    spare = (await invite(http, api_headers, room, "citizen"))["token"]
    await counsellor.wait_connected(expert.id, WAIT)
    await counsellor.end()
    for p in (counsellor, expert):
        await p.wait_until(lambda p=p: p.state == "ended", WAIT, "ended")
        assert p.close_code == CloseCode.ROOM_ENDED
    late = Participant(ws_url(server), spare)
    stack.push_async_callback(late.close)
    with pytest.raises(JoinRefused) as refused:
        await late.connect()
    assert refused.value.code == "room_ended"
