"""Property-based fuzzing of every message type against a live room with media flowing.

Hypothesis generates messages of every client type with random shapes, types,
sizes and unicode, plus raw garbage and messages in the wrong order, and sends
them from a joined socket. The server may answer only with documented messages
(``error`` and the ordinary room traffic) or close with a documented code; it
must log no exception; and the two aiortc participants in the same room must
keep receiving each other's video throughout.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomserver.core.roles import Role
from roomserver.peer.participant import Participant
from tests.support import create_room, invite

TYPES = ["join", "resume", "signal", "state", "stats", "admit", "deny", "remove", "end", "ping", "leave"]
DOCUMENTED_CLOSES = {1000, 1009, 4001, 4002, 4401, 4409, 4412, 4429}
ALLOWED_REPLIES = {"error", "pong", "peer-joined", "peer-left", "peer-state", "peer-reconnecting", "peer-resumed",
                   "signal", "welcome", "waiting", "lobby"}

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=False),
                        st.text(max_size=50))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
field_names = st.sampled_from(["token", "secret", "to", "data", "peer", "peers", "mic", "camera", "screen",
                               "hand", "id", "name", "room", "description", "candidate", "sdp"]) | st.text(max_size=8)


@st.composite
def typed_message(draw: Any, peers: list[str]) -> str:
    """A message of a real type whose fields are random in name, type and size."""
    message: dict[str, Any] = {"type": draw(st.sampled_from(TYPES))}
    for _ in range(draw(st.integers(0, 4))):
        message[draw(field_names)] = draw(json_value)
    if message["type"] == "signal" and draw(st.booleans()):
        message["to"] = draw(st.sampled_from(peers + ["p_unknown", ""]))
        message["data"] = draw(st.one_of(
            st.fixed_dictionaries({"description": st.fixed_dictionaries(
                {"type": st.sampled_from(["offer", "answer", "rollback", "pranswer", "x"]),
                 "sdp": st.text(max_size=200)})}),
            st.fixed_dictionaries({"candidate": st.one_of(st.none(), st.fixed_dictionaries(
                {"candidate": st.text(max_size=100), "sdpMid": st.one_of(st.none(), st.text(max_size=5)),
                 "sdpMLineIndex": st.one_of(st.none(), st.integers(-5, 70000))}))}),
            json_value))
    if message["type"] in ("admit", "deny", "remove") and draw(st.booleans()):
        message["peer"] = draw(st.sampled_from(peers))
    if draw(st.integers(0, 20)) == 0:
        message["padding"] = "ü" * draw(st.integers(30000, 40000))  # over the 64 KiB limit in UTF-8
    return json.dumps(message, ensure_ascii=draw(st.booleans()))


def frames(peers: list[str]) -> st.SearchStrategy[str | bytes]:
    garbage = st.one_of(st.text(max_size=300), st.binary(max_size=300), st.just("null"), st.just("[]"),
                        st.just('{"type": 1}'), st.just('{"type": "signal"'))
    return st.one_of(typed_message(peers), garbage)


async def free_seat(http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, secret: str) -> None:
    """Leave the fuzzing seat so the next example finds room: directly, or by resume then leave."""
    if not ws.closed:
        await ws.send_json({"type": "leave"})
        await asyncio.wait_for(ws.receive(), 10)
        await ws.close()
        return
    again = await http.ws_connect("/ws")
    await again.send_json({"type": "resume", "secret": secret})
    reply = json.loads((await asyncio.wait_for(again.receive(), 10)).data)
    if reply["type"] == "welcome":
        await again.send_json({"type": "leave"})
        while (await asyncio.wait_for(again.receive(), 10)).type == aiohttp.WSMsgType.TEXT:
            pass
    await again.close()


@pytest.fixture
async def live_room(server, http, api_headers, services):
    """A room with a counsellor and a citizen exchanging media, and a way to seat a fuzzing expert."""
    room = await create_room(http, api_headers)
    url = str(server.make_url("/ws")).replace("http://", "ws://")
    a = Participant(url, (await invite(http, api_headers, room, "counsellor"))["token"])
    b = Participant(url, (await invite(http, api_headers, room, "citizen"))["token"])
    await a.connect()
    await b.connect()
    await a.wait_connected(b.id, 30)
    await a.wait_frames(b.id, "video", 5, 30)
    yield room, a, b
    await a.close()
    await b.close()


@pytest.mark.timeout(240)
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_fuzzed_messages_get_only_errors_and_media_keeps_flowing(live_room, http, services, caplog, data):
    room, a, b = live_room
    caplog.set_level(logging.WARNING, logger="roomserver")
    batch = data.draw(st.lists(frames([a.id, b.id]), min_size=1, max_size=12))
    invite_ = services.consultations.invite
    from roomserver.domain.auth import Principal

    system = Principal(kind="api_key", id="apikey:tests", role="system", display_name="tests")
    token = (await invite_(system, room, role=Role.EXPERT, name="Fuzz", lifetime=None, single_use=True,
                           now=services.now())).token
    ws = await http.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token})
    welcome = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
    assert welcome["type"] == "welcome", welcome
    for frame in batch:
        if ws.closed:
            break
        await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
    await ws.send_json({"type": "ping", "id": "last"}) if not ws.closed else None
    while True:  # read everything the server says until our last ping is answered or it closes
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type == aiohttp.WSMsgType.TEXT:
            reply = json.loads(msg.data)
            assert reply["type"] in ALLOWED_REPLIES, reply
            if reply["type"] == "error":
                assert set(reply) <= {"type", "code", "message", "ref"} and reply["code"] and reply["message"]
            if reply == {"type": "pong", "id": "last"}:
                break
        else:
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
            if msg.type == aiohttp.WSMsgType.CLOSE:
                assert msg.data in DOCUMENTED_CLOSES, msg
            break
    await free_seat(http, ws, welcome["resume_secret"])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    # the room goes on: both participants still receive each other's video
    before_a, before_b = a.frames_received(b.id, "video"), b.frames_received(a.id, "video")
    await a.wait_until(lambda: a.frames_received(b.id, "video") > before_a, 20, "video b->a")
    await b.wait_until(lambda: b.frames_received(a.id, "video") > before_b, 20, "video a->b")
