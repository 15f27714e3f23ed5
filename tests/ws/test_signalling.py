"""The /ws edge against a real server on loopback: joins, refusals, moderation, resume, limits."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest

from roomserver.cli import CLI_PRINCIPAL
from roomserver.core.protocol import CloseCode
from roomserver.services import SERVICES_KEY, build_services
from roomserver.ws import SIGNALLING_KEY
from tests.support import WAIT, RawSocket, create_room, invite, joined


async def test_join_timeout_closes_4001(server_factory, api_headers):
    srv, _ = await server_factory(ROOMSERVER_SIGNALLING_JOIN_TIMEOUT_SECONDS="0.5")
    async with srv_client(srv) as http:
        sock = await RawSocket.open(http)
        error = await sock.next()
        assert error["type"] == "error" and error["code"] == "join_timeout"
        assert await sock.closed() == CloseCode.JOIN_TIMEOUT

        # A join that comes as the deadline passes is not read: the token is still unspent.
        room = await create_room(http, api_headers)
        token = (await invite(http, api_headers, room, "citizen"))["token"]
        late = await RawSocket.open(http)
        assert (await late.next())["code"] == "join_timeout"
        with contextlib.suppress(ConnectionError):
            await late.send({"type": "join", "token": token})
        assert await late.closed() == CloseCode.JOIN_TIMEOUT
        welcome = await (await RawSocket.open(http)).join(token)
        assert welcome["type"] == "welcome", welcome


async def test_first_message_must_be_join(http):
    sock = await RawSocket.open(http)
    await sock.send({"type": "signal", "to": "p_x", "data": {"candidate": None}})
    error = await sock.next()
    assert error["code"] == "not_joined"
    assert await sock.closed() == CloseCode.PROTOCOL_VIOLATION


@pytest.mark.parametrize("frame, code", [("not json", "bad_json"), ('{"type": "join"}', "bad_message"),
                                          ('{"type": "hello"}', "unknown_type"), ("[1]", "bad_json")])
async def test_malformed_first_message_is_refused(http, frame, code):
    sock = await RawSocket.open(http)
    await sock.send(frame)
    error = await sock.next()
    assert error["type"] == "error" and error["code"] == code
    assert await sock.closed() == CloseCode.PROTOCOL_VIOLATION


async def test_forged_and_garbage_tokens_are_refused_4401(http, api_headers):
    room = await create_room(http, api_headers)
    token = (await invite(http, api_headers, room, "expert"))["token"]
    head, payload, sig = token.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    for bad, code in ((forged, "token_bad_signature"), ("a.b.c", "token_malformed")):
        sock = await RawSocket.open(http)
        error = await sock.join(bad)
        assert error["type"] == "error" and error["code"] == code and error["message"]
        assert await sock.closed() == CloseCode.TOKEN_REFUSED


async def test_replayed_single_use_token_is_refused(http, api_headers):
    room = await create_room(http, api_headers)
    token = (await invite(http, api_headers, room, "expert", "Expertin"))["token"]
    first = await RawSocket.open(http)
    assert (await first.join(token))["type"] == "welcome"
    await first.send({"type": "leave"})
    assert await first.closed() == 1000
    second = await RawSocket.open(http)
    error = await second.join(token)
    assert error["code"] == "token_already_used"
    assert await second.closed() == CloseCode.TOKEN_REFUSED


async def test_a_join_costs_one_store_read_and_one_commit(http, api_headers, server):
    """The admission read, then one commit (spend, audit, snapshot): also the room's first join,
    which takes the room up from the row it just read and saves nothing for the empty room."""
    backend = server.app[SERVICES_KEY].store.backend
    trips: list[str] = []
    real = backend.run

    async def counted(unit, write):
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_qualname != "Gateway._first":
            frame = frame.f_back
        if frame is not None:  # a trip of the join itself, not of some background task
            trips.append("write" if write else "read")
        return await real(unit, write)

    backend.run = counted
    try:
        room = await create_room(http, api_headers)
        await joined(http, api_headers, room, "counsellor")  # the room's first join: taken up here
        assert trips == ["read", "write"]
        trips.clear()
        await joined(http, api_headers, room, "expert")
        assert trips == ["read", "write"]
    finally:
        backend.run = real


async def test_join_link_of_another_room_is_refused(http, api_headers):
    room_a = await create_room(http, api_headers)
    room_b = await create_room(http, api_headers)
    token = (await invite(http, api_headers, room_a, "citizen"))["token"]
    sock = await RawSocket.open(http)
    error = await sock.join(token, room=room_b)
    assert error["code"] == "token_wrong_room"


async def test_token_for_room_a_cannot_signal_into_room_b(http, api_headers):
    room_a = await create_room(http, api_headers)
    room_b = await create_room(http, api_headers)
    a, _ = await joined(http, api_headers, room_a, "expert")
    b1, _ = await joined(http, api_headers, room_b, "expert")
    b2, welcome_b2 = await joined(http, api_headers, room_b, "expert")
    await a.send({"type": "signal", "to": welcome_b2["self"]["id"],
                  "data": {"description": {"type": "offer", "sdp": "v=0"}}})
    error = await a.expect("error")
    assert error["code"] == "not_in_room"
    # room B saw nothing from A; its own relay still works
    await b1.send({"type": "signal", "to": welcome_b2["self"]["id"], "data": {"candidate": None}})
    relayed = await b2.expect("signal")
    assert relayed["data"] == {"candidate": None}


async def test_same_identity_twice_is_refused_without_resume_secret(http, api_headers):
    room = await create_room(http, api_headers)
    token = (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"]
    first = await RawSocket.open(http)
    assert (await first.join(token))["type"] == "welcome"
    hijack = await RawSocket.open(http)
    error = await hijack.join(token)
    assert error["code"] == "identity_in_use"
    assert await hijack.closed() == CloseCode.IDENTITY_IN_USE


async def test_waiting_room_admit_deny_and_citizen_cannot_admit(http, api_headers):
    room = await create_room(http, api_headers, waiting_room=True)
    counsellor, welcome = await joined(http, api_headers, room, "counsellor", "Frau Weber")
    citizen = await RawSocket.open(http)
    waiting = await citizen.join((await invite(http, api_headers, room, "citizen", "Ayşe"))["token"])
    assert waiting["type"] == "waiting" and "peers" not in waiting
    lobby = await counsellor.expect("lobby")
    while not lobby["waiting"]:
        lobby = await counsellor.expect("lobby")
    other = await RawSocket.open(http)
    other_waiting = await other.join((await invite(http, api_headers, room, "citizen", "Olena"))["token"])
    # a waiting citizen cannot admit anyone, nor signal
    await citizen.send({"type": "admit", "peer": other_waiting["self"]["id"]})
    assert (await citizen.expect("error"))["code"] in ("forbidden",)
    await counsellor.send({"type": "admit", "peer": waiting["self"]["id"]})
    admitted = await citizen.expect("welcome")
    assert [p["id"] for p in admitted["peers"]] == [welcome["self"]["id"]]
    assert (await counsellor.expect("peer-joined"))["peer"]["id"] == waiting["self"]["id"]
    # an admitted citizen still may not admit
    await citizen.send({"type": "admit", "peer": other_waiting["self"]["id"]})
    assert (await citizen.expect("error"))["code"] == "forbidden"
    await counsellor.send({"type": "deny", "peer": other_waiting["self"]["id"]})
    assert (await other.expect("denied"))["type"] == "denied"
    assert await other.closed() == CloseCode.DENIED


async def test_moderator_actions_refused_for_other_roles(http, api_headers):
    room = await create_room(http, api_headers)
    counsellor, cw = await joined(http, api_headers, room, "counsellor")
    for role in ("citizen", "expert", "interpreter"):
        sock, _ = await joined(http, api_headers, room, role)
        for action in ({"type": "remove", "peer": cw["self"]["id"]}, {"type": "end"}):
            await sock.send(action)
            error = await sock.expect("error")
            assert error["code"] == "forbidden", (role, action, error)
    await counsellor.send({"type": "ping", "id": 1})
    assert (await counsellor.expect("pong"))["id"] == 1  # the room went on


async def test_removed_participant_cannot_return(http, api_headers):
    room = await create_room(http, api_headers)
    counsellor, _ = await joined(http, api_headers, room, "counsellor")
    token = (await invite(http, api_headers, room, "citizen", "Ayşe"))["token"]
    citizen = await RawSocket.open(http)
    welcome = await citizen.join(token)
    await counsellor.send({"type": "remove", "peer": welcome["self"]["id"]})
    assert (await citizen.expect("removed"))["type"] == "removed"
    assert await citizen.closed() == CloseCode.REMOVED
    left = await counsellor.expect("peer-left")
    assert left == {"type": "peer-left", "peer": welcome["self"]["id"], "reason": "removed"}
    again = await RawSocket.open(http)
    assert (await again.join(token))["code"] == "token_revoked"
    resume = await RawSocket.open(http)
    await resume.send({"type": "resume", "secret": welcome["resume_secret"]})
    assert (await resume.next())["code"] == "resume_unknown"
    assert await resume.closed() == CloseCode.RESUME_UNKNOWN


async def test_end_disconnects_everyone_and_every_token_stops(http, api_headers):
    room = await create_room(http, api_headers)
    counsellor, _ = await joined(http, api_headers, room, "counsellor")
    spare = (await invite(http, api_headers, room, "citizen", "Spare"))["token"]
    citizen, _ = await joined(http, api_headers, room, "citizen")
    await counsellor.send({"type": "end"})
    for sock in (counsellor, citizen):
        assert (await sock.expect("ended"))["reason"] == "moderator"
        assert await sock.closed() == CloseCode.ROOM_ENDED
    late = await RawSocket.open(http)
    assert (await late.join(spare))["code"] == "room_ended"
    r = await http.get(f"/api/v1/rooms/{room}/invites", headers=api_headers)
    assert all(i["revoked_at"] for i in (await r.json())["invites"])


async def test_end_through_api_disconnects_everyone(http, api_headers):
    room = await create_room(http, api_headers)
    sock, _ = await joined(http, api_headers, room, "expert")
    r = await http.post(f"/api/v1/rooms/{room}/end", headers=api_headers)
    assert r.status == 200
    assert (await sock.expect("ended"))["reason"] == "api"
    assert await sock.closed() == CloseCode.ROOM_ENDED


async def test_end_room_from_another_process_disconnects_everyone(http, api_headers, settings):
    """``roomserver end-room`` runs in a process of its own: it ends the room in the store, and the
    server hosting the room notices in its next sweep (Gateway.sweep) and closes every seat."""
    room = await create_room(http, api_headers)
    sock, _ = await joined(http, api_headers, room, "expert")
    other = build_services(settings)  # what the command line builds: the same store, no sockets
    try:
        await other.consultations.end(CLI_PRINCIPAL, room, reason="api", now=other.now())
    finally:
        other.close()
    assert (await sock.expect("ended", timeout=2 * WAIT))["reason"] == "api"
    assert await sock.closed() == CloseCode.ROOM_ENDED


async def test_resume_restores_the_same_seat(http, api_headers):
    room = await create_room(http, api_headers)
    counsellor, _ = await joined(http, api_headers, room, "counsellor")
    citizen, welcome = await joined(http, api_headers, room, "citizen", "Ayşe")
    await citizen.ws.close()  # the network drops
    assert (await counsellor.expect("peer-reconnecting"))["peer"] == welcome["self"]["id"]
    back = await RawSocket.open(http)
    await back.send({"type": "resume", "secret": welcome["resume_secret"]})
    again = await back.expect("welcome")
    assert again["resumed"] is True and again["self"]["id"] == welcome["self"]["id"]
    assert (await counsellor.expect("peer-resumed"))["peer"] == welcome["self"]["id"]


async def test_after_grace_the_dropped_participant_has_left(server_factory, api_headers):
    srv, _ = await server_factory(ROOMSERVER_SIGNALLING_RESUME_GRACE_SECONDS="1")
    async with srv_client(srv) as http:
        room = await create_room(http, api_headers)
        counsellor, _ = await joined(http, api_headers, room, "counsellor")
        citizen, welcome = await joined(http, api_headers, room, "citizen")
        await citizen.ws.close()
        await counsellor.expect("peer-reconnecting")
        left = await counsellor.expect("peer-left")
        assert left["reason"] == "timeout"
        late = await RawSocket.open(http)
        await late.send({"type": "resume", "secret": welcome["resume_secret"]})
        assert (await late.next())["code"] == "resume_unknown"


async def test_oversize_and_flood_get_errors_and_the_socket_stays(server_factory, api_headers):
    srv, _ = await server_factory(ROOMSERVER_SIGNALLING_MAX_MESSAGE_BYTES="4096",
                                  ROOMSERVER_SIGNALLING_RATE_PER_SECOND="5",
                                  ROOMSERVER_SIGNALLING_RATE_BURST="5")
    async with srv_client(srv) as http:
        room = await create_room(http, api_headers)
        sock, _ = await joined(http, api_headers, room, "expert")
        await sock.send({"type": "ping", "id": "x" * 5000})
        assert (await sock.expect("error"))["code"] == "message_too_large"
        for i in range(20):
            await sock.send({"type": "ping", "id": i})
        codes = set()
        for _ in range(20):
            msg = await sock.next()
            codes.add(msg["type"] if msg["type"] != "error" else msg["code"])
        assert "rate_limited" in codes and "pong" in codes
        assert not sock.ws.closed


async def test_a_sustained_flood_is_closed_with_4429(server_factory, api_headers):
    """Over the rate for the bucket's patience (5 s): an error that says so, then close code 4429."""
    srv, _ = await server_factory(ROOMSERVER_SIGNALLING_RATE_PER_SECOND="5",
                                  ROOMSERVER_SIGNALLING_RATE_BURST="5")
    async with srv_client(srv) as http:
        room = await create_room(http, api_headers)
        sock, _ = await joined(http, api_headers, room, "expert")
        reader = asyncio.create_task(sock.closed(timeout=30))
        for i in range(2000):  # 100 a second, 20 s at most; the server gives up after about 5 s
            if reader.done():
                break
            try:
                await sock.send({"type": "ping", "id": i})
            except (ConnectionError, RuntimeError):
                break
            await asyncio.sleep(0.01)
        assert await reader == CloseCode.RATE_LIMITED
        errors = [m for m in sock.seen if m["type"] == "error"]
        assert {e["code"] for e in errors} == {"rate_limited"}
        assert errors[-1]["message"] == "Too many messages; closing."


async def test_state_is_broadcast_and_stats_are_not_relayed(http, api_headers, server):
    room = await create_room(http, api_headers)
    a, wa = await joined(http, api_headers, room, "counsellor")
    b, wb = await joined(http, api_headers, room, "expert")
    await b.send({"type": "stats", "peers": {wa["self"]["id"]: {"rtt_ms": 20.5, "loss": 0.01}}})
    await b.send({"type": "state", "mic": False, "hand": True})
    state = await a.expect("peer-state")
    assert state["peer"] == wb["self"]["id"] and state["state"]["mic"] is False and state["state"]["hand"] is True
    assert not [m for m in a.seen if m["type"] == "stats"]
    seat = server.app[SIGNALLING_KEY].room(room).seat(wb["self"]["id"])
    assert seat.stats[wa["self"]["id"]].rtt_ms == 20.5  # kept for monitoring


class srv_client:
    """``async with srv_client(server) as http``: a client based at a server from server_factory."""

    def __init__(self, srv) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(base_url=str(srv.make_url("")))

    async def __aenter__(self):
        return self._session

    async def __aexit__(self, *exc) -> None:
        await self._session.close()


async def test_messages_after_leave_are_ignored(http, api_headers):
    room = await create_room(http, api_headers)
    a, _ = await joined(http, api_headers, room, "counsellor")
    b, wb = await joined(http, api_headers, room, "expert")
    await b.send({"type": "leave"})
    assert await b.closed() == 1000
    left = await a.expect("peer-left")
    assert left["peer"] == wb["self"]["id"] and left["reason"] == "left"


async def test_welcome_carries_stun_and_minted_turn_credentials(server_factory, api_headers):
    srv, _ = await server_factory(ROOMSERVER_ICE_STUN_URLS="stun:stun.example.org:3478",
                                  ROOMSERVER_ICE_TURN_URLS="turn:turn.example.org:3478?transport=udp",
                                  ROOMSERVER_ICE_TURN_SECRET="shared-secret-for-tests")
    async with srv_client(srv) as http:
        room = await create_room(http, api_headers)
        _, welcome = await joined(http, api_headers, room, "expert")
    stun, turn = welcome["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    expiry, seat = turn["username"].split(":")
    assert seat == welcome["self"]["id"] and int(expiry) > 0
    import base64
    import hashlib
    import hmac
    expected = base64.b64encode(hmac.new(b"shared-secret-for-tests", turn["username"].encode(),
                                         hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected


async def test_a_socket_that_stops_answering_pings_is_noticed(server_factory, api_headers):
    srv, _ = await server_factory(ROOMSERVER_SIGNALLING_HEARTBEAT_SECONDS="1")
    async with srv_client(srv) as http:
        room = await create_room(http, api_headers)
        watcher, _ = await joined(http, api_headers, room, "counsellor")
        token = (await invite(http, api_headers, room, "expert"))["token"]
        silent = RawSocket(await http.ws_connect("/ws", autoping=False, heartbeat=None))
        welcome = await silent.join(token)
        # the silent client never answers the server's pings: the server declares it dead
        reconnecting = await watcher.expect("peer-reconnecting")
        assert reconnecting["peer"] == welcome["self"]["id"]


async def test_the_heartbeat_pings_are_real_frames_and_an_answering_socket_keeps_its_seat(server_factory,
                                                                                           api_headers):
    """A client sees the server's PINGs, answers them, and keeps its seat past the point where a silent
    one is dropped (two intervals)."""
    import aiohttp

    srv, _ = await server_factory(ROOMSERVER_SIGNALLING_HEARTBEAT_SECONDS="1")
    async with srv_client(srv) as http:
        room = await create_room(http, api_headers)
        token = (await invite(http, api_headers, room, "expert"))["token"]
        ws = await http.ws_connect("/ws", autoping=False, heartbeat=None)
        await ws.send_json({"type": "join", "token": token})
        texts, pings = [], 0
        while pings < 4:
            msg = await ws.receive(timeout=10)
            assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING), msg
            if msg.type is aiohttp.WSMsgType.PING:
                pings += 1
                await ws.pong(msg.data)
            else:
                texts.append(msg.json()["type"])
        await ws.send_json({"type": "ping", "id": 1})
        while (msg := await ws.receive(timeout=10)).type is aiohttp.WSMsgType.PING:
            await ws.pong(msg.data)
        assert msg.type is aiohttp.WSMsgType.TEXT and msg.json()["type"] == "pong", msg
        assert texts[0] == "welcome" and "ended" not in texts and not ws.closed, texts
        await ws.close()


async def test_room_ends_at_its_scheduled_end(server_factory, api_headers):
    from datetime import datetime, timedelta, timezone

    srv, svc = await server_factory(ROOMSERVER_ROOMS_OVERRUN_MINUTES="0")
    async with srv_client(srv) as http:
        end = datetime.now(timezone.utc) + timedelta(seconds=3)
        room = await create_room(http, api_headers, scheduled_start=(end - timedelta(minutes=30)).isoformat(),
                                 scheduled_end=end.isoformat())
        sock, _ = await joined(http, api_headers, room, "counsellor")
        ended = await sock.expect("ended")
        assert ended["reason"] == "scheduled_end"
        assert await sock.closed() == CloseCode.ROOM_ENDED
    assert (await svc.store.rooms.get(room)).state == "ended"


async def test_each_resume_rotates_the_secret_over_the_wire(http, api_headers):
    """A leaked secret stops working: refused while the seat is online again, and for good once the
    seat has resumed with its successor (core/room.py keeps the one before it only for a lost welcome)."""
    room = await create_room(http, api_headers)
    await joined(http, api_headers, room, "counsellor")
    citizen, welcome = await joined(http, api_headers, room, "citizen", "Ayşe")
    await citizen.ws.close()
    back = await RawSocket.open(http)
    await back.send({"type": "resume", "secret": welcome["resume_secret"]})
    again = await back.expect("welcome")
    assert again["resume_secret"] != welcome["resume_secret"]
    thief = await RawSocket.open(http)
    await thief.send({"type": "resume", "secret": welcome["resume_secret"]})
    answer = await thief.next()
    assert answer.get("code") == "resume_unknown", answer
    assert await thief.closed() == CloseCode.RESUME_UNKNOWN
    await back.ws.close()  # a second drop: the seat resumes with the rotated secret
    third = await RawSocket.open(http)
    await third.send({"type": "resume", "secret": again["resume_secret"]})
    assert (await third.expect("welcome"))["resumed"] is True
    await third.ws.close()
    thief = await RawSocket.open(http)
    await thief.send({"type": "resume", "secret": welcome["resume_secret"]})
    assert (await thief.next()).get("code") == "resume_unknown"


async def test_resume_into_an_ended_room_answers_room_ended_4411(http, api_headers):
    """docs/protocol.md: ``room_ended`` answering a ``resume`` closes 4411."""
    room = await create_room(http, api_headers)
    counsellor, _ = await joined(http, api_headers, room, "counsellor")
    citizen, welcome = await joined(http, api_headers, room, "citizen")
    await counsellor.send({"type": "end"})
    assert await citizen.closed() == CloseCode.ROOM_ENDED
    late = await RawSocket.open(http)
    await late.send({"type": "resume", "secret": welcome["resume_secret"]})
    assert (await late.next())["code"] == "room_ended"
    assert await late.closed() == CloseCode.ROOM_ENDED == 4411


async def test_withdrawing_an_invite_ends_the_seat_that_joined_with_it(http, api_headers):
    """The attack run: ``DELETE …/invites/{jti}`` answered 204 but the seat stayed, and resume let it back."""
    room = await create_room(http, api_headers)
    counsellor, _ = await joined(http, api_headers, room, "counsellor")
    issued = await invite(http, api_headers, room, "expert", "Expertin")
    expert = await RawSocket.open(http)
    welcome = await expert.join(issued["token"])
    r = await http.delete(f"/api/v1/rooms/{room}/invites/{issued['jti']}", headers=api_headers)
    assert r.status == 204
    assert (await expert.expect("removed"))["type"] == "removed"
    assert await expert.closed() == CloseCode.REMOVED
    left = await counsellor.expect("peer-left")
    assert left == {"type": "peer-left", "peer": welcome["self"]["id"], "reason": "removed"}
    back = await RawSocket.open(http)
    await back.send({"type": "resume", "secret": welcome["resume_secret"]})
    assert (await back.next())["code"] == "resume_unknown"
    again = await RawSocket.open(http)
    assert (await again.join(issued["token"]))["code"] == "token_revoked"


async def test_a_plain_request_to_the_socket_address_gets_the_error_shape(http):
    """``/ws`` answers its own errors (no error middleware around a socket): still the documented shape."""
    async with http.get("/ws") as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"].startswith("application/json")
        body = await resp.json()
    assert body["error"]["code"] == "bad_request"
    assert "Traceback" not in str(body) and "UPGRADE" not in str(body)
    async with http.post("/ws", data=b"x") as resp:
        assert resp.status == 405
        assert (await resp.json())["error"]["code"] == "method_not_allowed"
