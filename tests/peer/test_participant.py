"""The Python participant against a minimal protocol-following relay.

The relay below is a stand-in for the real ``/ws`` (it checks no tokens and keeps no
rules): it accepts any ``join``, hands out seat ids and resume secrets, relays
``signal`` with ``from`` and announces joins, drops and resumes, all as in
docs/protocol.md. To point these tests at the real server, replace the ``relay``
fixture with one that has ``url`` and ``token(role, name)`` (and ``lobby_roles`` for the
waiting-room test). Relay-only knobs: ``hold_signals`` (glare test; without it the
offers still cross, just not provably), ``kick`` (auto-resume test), ``inject``
(browser-style candidates) and the ``stats`` it records.

Assertions are about behaviour (states reached, frames decoded), never about timing;
every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from roomserver.peer.participant import JoinRefused, Participant, turn_transport_of

WAIT = 20.0


# ------------------------------------------------------------------------ the relay


@dataclass
class Seat:
    id: str
    name: str
    role: str
    secret: str
    ws: web.WebSocketResponse | None = None
    state: dict[str, bool] = field(
        default_factory=lambda: {"mic": True, "camera": True, "screen": False, "hand": False}
    )

    @property
    def connection(self) -> str:
        return "online" if self.ws is not None and not self.ws.closed else "reconnecting"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role, "state": dict(self.state), "connection": self.connection}


class Relay:
    """One room, no rules: just enough server to drive real participants."""

    def __init__(self) -> None:
        self.seats: dict[str, Seat] = {}
        self.waiting: dict[str, Seat] = {}
        self.lobby_roles: set[str] = set()  # roles that go through the waiting room
        self.by_secret: dict[str, Seat] = {}
        self.stats: list[tuple[str, dict[str, Any]]] = []
        self.url = ""
        self._held: list[tuple[Seat, dict[str, Any]]] | None = None
        self._hold_offers = 0

    def token(self, role: str = "citizen", name: str = "Test") -> str:
        """Tokens are opaque to the participant; the relay reads role and name from them."""
        return f"{role}:{name}:{secrets.token_hex(4)}"

    def hold_signals(self, offers: int) -> None:
        """Buffer every signal until ``offers`` offers are in, then deliver them all:
        the offers cross in flight, which is glare by construction."""
        self._held, self._hold_offers = [], offers

    async def kick(self, seat_id: str, code: int = 1001) -> None:
        """Close a seat's socket from the server side (1001: shutting down, resume)."""
        ws = self.seats[seat_id].ws
        if ws is not None:
            await ws.close(code=code)

    async def inject(self, to: str, sender: str, data: dict[str, Any]) -> None:
        """Deliver a signal as if ``sender`` had sent it (browser-style candidates)."""
        await self._send(self.seats[to], {"type": "signal", "from": sender, "data": data})

    async def _send(self, seat: Seat, message: dict[str, Any]) -> None:
        if seat.ws is not None and not seat.ws.closed:
            with contextlib.suppress(ConnectionError):  # the peer's socket is going away
                await seat.ws.send_str(orjson.dumps(message).decode())

    async def _broadcast(self, sender: Seat, message: dict[str, Any]) -> None:
        for seat in list(self.seats.values()):
            if seat is not sender:
                await self._send(seat, message)

    async def _welcome(self, seat: Seat, resumed: bool) -> None:
        await self._send(
            seat,
            {
                "type": "welcome",
                "self": {"id": seat.id, "name": seat.name, "role": seat.role, "state": seat.state},
                "room": {"id": "r_test", "title": "Test", "ends_at": "2099-01-01T00:00:00+00:00", "waiting_room": False},
                "peers": [s.public() for s in self.seats.values() if s is not seat],
                "ice_servers": [],
                "resume_secret": seat.secret,
                "resumed": resumed,
            },
        )

    async def _admit(self, seat: Seat) -> None:
        self.seats[seat.id] = seat
        await self._welcome(seat, resumed=False)
        await self._broadcast(seat, {"type": "peer-joined", "peer": seat.public()})
        if seat.role == "counsellor":
            await self._send(seat, {"type": "lobby", "waiting": [self._lobby_entry(w) for w in self.waiting.values()]})

    @staticmethod
    def _lobby_entry(seat: Seat) -> dict[str, Any]:
        return {"id": seat.id, "name": seat.name, "role": seat.role, "since": "2099-01-01T00:00:00+00:00"}

    async def _send_lobby(self) -> None:
        lobby = {"type": "lobby", "waiting": [self._lobby_entry(w) for w in self.waiting.values()]}
        for seat in list(self.seats.values()):
            if seat.role == "counsellor":
                await self._send(seat, lobby)

    async def _leave(self, seat: Seat, reason: str, close_code: int, notice: dict[str, Any] | None) -> None:
        self.seats.pop(seat.id, None)
        self.by_secret.pop(seat.secret, None)
        if notice is not None:
            await self._send(seat, notice)
        if seat.ws is not None:
            await seat.ws.close(code=close_code)
        await self._broadcast(seat, {"type": "peer-left", "peer": seat.id, "reason": reason})

    async def _refuse(self, ws: web.WebSocketResponse, code: str, close_code: int) -> web.WebSocketResponse:
        await ws.send_str(orjson.dumps({"type": "error", "code": code, "message": code}).decode())
        await ws.close(code=close_code)
        return ws

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=5)
        except asyncio.TimeoutError:
            await ws.close(code=4001)
            return ws
        if first.type != WSMsgType.TEXT:
            return ws
        hello = orjson.loads(first.data)
        if hello.get("type") == "join":
            role, _, name = str(hello.get("token", "")).partition(":")
            if role not in ("counsellor", "citizen", "expert", "interpreter"):
                return await self._refuse(ws, "token_invalid", 4401)
            seat = Seat(id="p_" + secrets.token_hex(4), name=hello.get("name") or name.split(":")[0], role=role, secret="rs_" + secrets.token_hex(8), ws=ws)
            self.by_secret[seat.secret] = seat
            if role in self.lobby_roles:
                self.waiting[seat.id] = seat
                await self._send(seat, {"type": "waiting", "self": {"id": seat.id, "name": seat.name, "role": role}, "room": {"id": "r_test", "title": "Test"}, "resume_secret": seat.secret})
                await self._send_lobby()
            else:
                await self._admit(seat)
        elif hello.get("type") == "resume":
            seat = self.by_secret.get(str(hello.get("secret")))
            if seat is None or seat.id not in self.seats:
                return await self._refuse(ws, "resume_unknown", 4412)
            if seat.ws is not None and not seat.ws.closed:
                await seat.ws.close(code=4409)
            seat.ws = ws
            await self._welcome(seat, resumed=True)
            await self._broadcast(seat, {"type": "peer-resumed", "peer": seat.id})
        else:
            return await self._refuse(ws, "not_joined", 4002)

        try:
            return await self._serve(seat, ws)
        finally:
            # aiohttp cancels the handler when the client vanishes; announce the drop
            # from a task of its own so the cancellation cannot cut it short.
            if seat.ws is ws and seat.id in self.seats:  # dropped, not left: keep the seat
                seat.ws = None
                asyncio.get_running_loop().create_task(
                    self._broadcast(seat, {"type": "peer-reconnecting", "peer": seat.id})
                )

    async def _serve(self, seat: Seat, ws: web.WebSocketResponse) -> web.WebSocketResponse:
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            message = orjson.loads(frame.data)
            kind = message.get("type")
            if kind == "signal":
                target = self.seats.get(message.get("to"))
                if target is None:
                    await self._send(seat, {"type": "error", "code": "not_in_room", "message": "no such peer", "ref": "signal"})
                    continue
                await self._relay_signal(seat, target, message["data"])
            elif kind == "state":
                seat.state.update({k: v for k, v in message.items() if k != "type"})
                await self._broadcast(seat, {"type": "peer-state", "peer": seat.id, "state": seat.state})
            elif kind == "stats":
                self.stats.append((seat.id, message))
            elif kind == "ping":
                await self._send(seat, {"type": "pong", "id": message.get("id")})
            elif kind == "leave":
                await self._leave(seat, "left", 1000, None)
                return ws
            elif kind in ("admit", "deny") and seat.role == "counsellor" and message.get("peer") in self.waiting:
                guest = self.waiting.pop(message["peer"])
                if kind == "admit":
                    await self._admit(guest)
                else:
                    self.by_secret.pop(guest.secret, None)
                    await self._send(guest, {"type": "denied"})
                    if guest.ws is not None:
                        await guest.ws.close(code=4403)
                await self._send_lobby()
            elif kind == "remove" and seat.role == "counsellor" and message.get("peer") in self.seats:
                await self._leave(self.seats[message["peer"]], "removed", 4410, {"type": "removed"})
            elif kind == "end" and seat.role == "counsellor":
                for other in list(self.seats.values()):
                    await self._leave(other, "ended", 4411, {"type": "ended", "reason": "moderator"})
                return ws
            else:
                await self._send(seat, {"type": "error", "code": "unknown_type", "message": str(kind)})
        return ws

    async def _relay_signal(self, sender: Seat, target: Seat, data: dict[str, Any]) -> None:
        if self._held is not None:
            self._held.append((target, {"type": "signal", "from": sender.id, "data": data}))
            offers = sum(1 for _, m in self._held if (m["data"].get("description") or {}).get("type") == "offer")
            if offers < self._hold_offers:
                return
            held, self._held = self._held, None
            for seat, message in held:
                await self._send(seat, message)
            return
        await self._send(target, {"type": "signal", "from": sender.id, "data": data})


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    stand_in = Relay()
    app = web.Application()
    app.router.add_get("/ws", stand_in.handle)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server(access_log=None)  # a test stand-in, not the product's server: no access log
    stand_in.url = str(test_server.make_url("/ws")).replace("http://", "ws://")
    yield stand_in
    await test_server.close()


@pytest.fixture
async def make_participant(relay: Relay) -> AsyncIterator[Callable[..., Participant]]:
    """Factory that closes every participant it made, whatever the test did."""
    made: list[Participant] = []

    def make(name: str, role: str = "citizen", **kwargs: Any) -> Participant:
        participant = Participant(relay.url, relay.token(role, name), name=name, **kwargs)
        made.append(participant)
        return participant

    yield make
    await asyncio.gather(*(p.close() for p in made), return_exceptions=True)


async def assert_media_flows(a: Participant, b: Participant) -> None:
    """Both directions connected, and video and audio frames decoded both ways."""
    assert a.id and b.id
    await a.wait_connected(b.id, WAIT)
    await b.wait_connected(a.id, WAIT)
    for receiver, sender in ((a, b), (b, a)):
        for kind in ("video", "audio"):
            assert await receiver.wait_frames(sender.id, kind, 3, WAIT) >= 3


async def wait_replaced(a: Participant, b: Participant, old: dict[str, Any]) -> None:
    """Wait until both sides use a connection other than the ones in ``old``, so that
    frame counts (which restart with every connection) prove the new path."""
    assert a.id and b.id

    def replaced() -> bool:
        link_a, link_b = a.link(b.id), b.link(a.id)  # type: ignore[arg-type]
        return (
            link_a is not None and link_a.pc is not None and link_a.pc is not old["a"]
            and link_b is not None and link_b.pc is not None and link_b.pc is not old["b"]
        )

    await a.wait_until(replaced, WAIT, "new connections on both sides")


def current_pcs(a: Participant, b: Participant) -> dict[str, Any]:
    return {"a": a.link(b.id).pc, "b": b.link(a.id).pc}  # type: ignore[arg-type,union-attr]


# ----------------------------------------------------------------------------- tests


async def test_two_participants_exchange_audio_and_video(make_participant: Callable[..., Participant]) -> None:
    a = make_participant("Frau Weber", "counsellor")
    b = make_participant("Ayşe")
    welcome_a = await a.connect()
    assert welcome_a["type"] == "welcome" and welcome_a["peers"] == []
    welcome_b = await b.connect()
    assert [p["id"] for p in welcome_b["peers"]] == [a.id]
    joined = await a.wait_message("peer-joined", lambda m: m["peer"]["id"] == b.id, timeout=WAIT)
    assert joined["peer"]["name"] == "Ayşe"

    await assert_media_flows(a, b)
    assert a.link(b.id).polite == (a.id < b.id)  # type: ignore[union-attr,operator]
    assert a.link(b.id).polite != b.link(a.id).polite  # type: ignore[union-attr]

    await b.leave()
    await a.wait_message("peer-left", lambda m: m["peer"] == b.id, timeout=WAIT)
    await a.wait_until(lambda: a.link(b.id) is None, WAIT, "link to the leaver closed")
    assert b.state == "left"


async def test_three_participants_form_a_full_mesh(make_participant: Callable[..., Participant]) -> None:
    people = [make_participant(n) for n in ("Counsellor", "Citizen", "Expert")]
    for p in people:
        await p.connect()
    for i, x in enumerate(people):
        for y in people[i + 1 :]:
            await assert_media_flows(x, y)
    for p in people:
        assert sorted(p.links) == sorted(q.id for q in people if q is not p)  # type: ignore[type-var]


async def test_drop_and_resume_renegotiates_media(make_participant: Callable[..., Participant]) -> None:
    a = make_participant("Dropper")
    b = make_participant("Stayer")
    await a.connect()
    await b.connect()
    await assert_media_flows(a, b)
    seat, secret = a.id, a.resume_secret
    old = current_pcs(a, b)

    mark = len(b.messages)
    await a.drop(media=True)  # a network loss: socket and media gone
    assert a.state == "dropped"
    await b.wait_message("peer-reconnecting", lambda m: m["peer"] == seat, timeout=WAIT, after=mark)

    welcome = await a.resume()
    assert welcome["resumed"] is True and a.id == seat and a.resume_secret == secret
    await b.wait_message("peer-resumed", lambda m: m["peer"] == seat, timeout=WAIT, after=mark)
    await wait_replaced(a, b, old)
    await assert_media_flows(a, b)  # counted on the new connections only
    assert b.link(a.id).restarts >= 1  # type: ignore[union-attr]


async def test_resume_while_media_still_up(make_participant: Callable[..., Participant]) -> None:
    """Only the socket drops; the resumed side still renegotiates and media flows on."""
    a = make_participant("Flaky socket")
    b = make_participant("Other")
    await a.connect()
    await b.connect()
    await assert_media_flows(a, b)
    old = current_pcs(a, b)
    await a.drop()
    await a.resume()
    await wait_replaced(a, b, old)
    await assert_media_flows(a, b)


async def test_rapid_drop_resume_cycles_converge(make_participant: Callable[..., Participant]) -> None:
    """Drop again before the previous renegotiation finished, several times: offers made
    for an earlier socket must not be sent on a later one (their answers would land on
    the wrong connection), and the pair must end up connected with media both ways."""
    a = make_participant("Flapping")
    b = make_participant("Other")
    await a.connect()
    await b.connect()
    await assert_media_flows(a, b)
    old = current_pcs(a, b)
    for _ in range(6):
        await a.drop()
        await a.resume()
    await wait_replaced(a, b, old)
    await assert_media_flows(a, b)


async def test_glare_both_sides_offer_at_once(relay: Relay, make_participant: Callable[..., Participant]) -> None:
    a = make_participant("Left")
    b = make_participant("Right")
    await a.connect()
    await b.connect()
    await assert_media_flows(a, b)

    old = current_pcs(a, b)
    relay.hold_signals(offers=2)  # both offers are in flight before either arrives
    await asyncio.gather(a.restart_peer(b.id), b.restart_peer(a.id))  # type: ignore[arg-type]
    await wait_replaced(a, b, old)
    await assert_media_flows(a, b)

    polite, impolite = (a, b) if a.id < b.id else (b, a)  # type: ignore[operator]
    assert polite.link(impolite.id).rollbacks == 1  # type: ignore[arg-type,union-attr]
    assert impolite.link(polite.id).ignored_offers == 1  # type: ignore[arg-type,union-attr]
    assert polite.link(impolite.id).ignored_offers == 0  # type: ignore[arg-type,union-attr]


async def test_both_resume_at_once_the_later_offer_wins(relay: Relay, make_participant: Callable[..., Participant]) -> None:
    """Both sockets drop and both resume, the second before the first one's offer is
    through (a server restart or a Redis outage closes everyone at once). Each offers for
    its own welcome; the one that resumed first has heard ``peer-resumed`` of the other
    since its offer, the other has not. The later one's offer must win on both sides,
    whichever side is polite: when each side let the other's offer win, both answered on
    fresh connections and ignored each other's answers, and the picture never came back."""
    a = make_participant("Left")
    b = make_participant("Right")
    await a.connect()
    await b.connect()
    await assert_media_flows(a, b)
    # The later one is the polite one: the case where politeness alone decided wrongly.
    late, early = (a, b) if a.id < b.id else (b, a)  # type: ignore[operator]
    old = current_pcs(a, b)

    relay.hold_signals(offers=2)  # the early offer reaches the late side's new socket
    await early.drop()
    await early.resume()
    await late.drop()
    await late.resume()
    await wait_replaced(a, b, old)
    await assert_media_flows(a, b)
    assert late.link(early.id).ignored_offers == 1  # type: ignore[arg-type,union-attr]
    assert early.link(late.id).ignored_offers == 0  # type: ignore[arg-type,union-attr]


async def test_refused_join_and_resume_raise_with_codes(relay: Relay) -> None:
    p = Participant(relay.url, "not-a-role:x")
    with pytest.raises(JoinRefused) as refused:
        await p.connect()
    assert (refused.value.code, refused.value.close_code) == ("token_invalid", 4401)

    q = Participant(relay.url, resume_secret="rs_unknown")
    with pytest.raises(JoinRefused) as refused:
        await q.connect()
    assert (refused.value.code, refused.value.close_code) == ("resume_unknown", 4412)
    await p.close()
    await q.close()


async def test_stats_ping_state_and_browser_candidates(relay: Relay, make_participant: Callable[..., Participant]) -> None:
    a = make_participant("Browser-like")
    b = make_participant("Python")
    await a.connect()
    await b.connect()
    await assert_media_flows(a, b)

    # Trickled candidates as a browser sends them, then end-of-candidates.
    link = b.link(a.id)
    assert link is not None
    await relay.inject(b.id, a.id, {"candidate": {"candidate": "candidate:1 1 UDP 2122260223 192.0.2.1 54321 typ host", "sdpMid": "0", "sdpMLineIndex": 0}})  # type: ignore[arg-type]
    await relay.inject(b.id, a.id, {"candidate": None})  # type: ignore[arg-type]
    await relay.inject(b.id, a.id, {"candidate": {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}})  # type: ignore[arg-type]
    assert await b.ping(WAIT) >= 0  # the injected signals were read before the pong
    await b.wait_until(lambda: link._ops.empty(), WAIT, "signals handled")
    await link._ops.join()
    assert link.last_error is None
    assert b.connection_state(a.id) == "connected"

    sent = await b.send_stats()
    entry = sent["peers"][a.id]
    assert entry["state"] == "connected" and 0.0 <= entry["loss"] <= 1.0
    assert entry["candidate_type"] == "host"  # loopback: the nominated pair is direct
    await b.ping(WAIT)
    assert any(seat == b.id and a.id in m["peers"] for seat, m in relay.stats)

    await b.set_state(mic=False, hand=True)
    update = await a.wait_message("peer-state", lambda m: m["peer"] == b.id, timeout=WAIT)
    assert update["state"]["mic"] is False and update["state"]["hand"] is True
    assert a.peers[b.id]["state"]["mic"] is False  # type: ignore[index]


async def test_waiting_room_admit_and_deny(relay: Relay, make_participant: Callable[..., Participant]) -> None:
    relay.lobby_roles = {"citizen"}
    counsellor = make_participant("Frau Weber", "counsellor")
    citizen = make_participant("Ayşe")
    stranger = make_participant("Unknown")
    await counsellor.connect()

    waiting = await citizen.connect()
    assert waiting["type"] == "waiting" and citizen.state == "waiting"
    await counsellor.wait_until(lambda: [w["id"] for w in counsellor.lobby] == [citizen.id], WAIT, "citizen in lobby")
    await counsellor.admit(citizen.id)  # type: ignore[arg-type]
    welcome = await citizen.wait_admitted(WAIT)
    assert [p["id"] for p in welcome["peers"]] == [counsellor.id]
    await assert_media_flows(counsellor, citizen)

    await stranger.connect()
    await counsellor.wait_until(lambda: [w["id"] for w in counsellor.lobby] == [stranger.id], WAIT, "stranger in lobby")
    await counsellor.deny(stranger.id)  # type: ignore[arg-type]
    with pytest.raises(JoinRefused) as refused:
        await stranger.wait_admitted(WAIT)
    assert refused.value.code == "denied"
    await stranger.wait_until(lambda: stranger.close_code == 4403, WAIT, "close 4403")


async def test_remove_and_end(make_participant: Callable[..., Participant]) -> None:
    counsellor = make_participant("Frau Weber", "counsellor")
    expert = make_participant("Jobcenter", "expert")
    citizen = make_participant("Ayşe")
    for p in (counsellor, expert, citizen):
        await p.connect()
    await assert_media_flows(counsellor, expert)

    await counsellor.remove(expert.id)  # type: ignore[arg-type]
    await expert.wait_until(lambda: expert.state == "removed" and expert.close_code == 4410, WAIT, "removal")
    await citizen.wait_message("peer-left", lambda m: m["peer"] == expert.id and m["reason"] == "removed", timeout=WAIT)
    await counsellor.wait_until(lambda: counsellor.link(expert.id) is None, WAIT, "link to removed expert closed")  # type: ignore[arg-type]
    assert expert.links == {}

    await counsellor.end()
    for p in (counsellor, citizen):
        await p.wait_until(lambda p=p: p.state == "ended" and p.close_code == 4411, WAIT, "end of room")  # type: ignore[misc]
        assert p.end_reason == "moderator"


async def test_auto_resume_after_server_side_close(relay: Relay, make_participant: Callable[..., Participant]) -> None:
    a = make_participant("Steady")
    b = make_participant("Auto", auto_resume=True)
    await a.connect()
    await b.connect()
    await assert_media_flows(a, b)
    mark = len(b.messages)

    old = current_pcs(a, b)
    await relay.kick(b.id, 1001)  # type: ignore[arg-type]
    welcome = await b.wait_message("welcome", lambda m: m["resumed"] is True, timeout=WAIT, after=mark)
    assert welcome["self"]["id"] == b.id and b.state == "joined"
    await wait_replaced(a, b, old)
    await assert_media_flows(a, b)


def test_turn_transport_choice_keeps_only_that_kind_of_turn_url() -> None:
    """aiortc uses only the first TURN URL it gets: the participant picks the transport asked for."""
    assert [turn_transport_of(u) for u in ("turn:t:3478", "turn:t:3478?transport=udp", "turn:t:3478?transport=tcp",
                                           "turns:t:443?transport=tcp", "turns:t")] == ["udp", "udp", "tcp", "tls", "tls"]
    servers = [{"urls": ["stun:s:3478"]},
               {"urls": ["turn:t:3478?transport=udp", "turn:t:3478?transport=tcp", "turns:t:443?transport=tcp"],
                "username": "1:p_A", "credential": "c"}]
    for transport, kept in (("tls", "turns:t:443?transport=tcp"), ("tcp", "turn:t:3478?transport=tcp"),
                            ("udp", "turn:t:3478?transport=udp")):
        p = Participant("ws://127.0.0.1:9/ws", "t", ice_servers=servers, turn_transport=transport)
        chosen = p._rtc_ice_servers()
        assert [s.urls for s in chosen] == [["stun:s:3478"], [kept]]
        assert chosen[1].username == "1:p_A" and chosen[1].credential == "c"
    everything = Participant("ws://127.0.0.1:9/ws", "t", ice_servers=servers)._rtc_ice_servers()
    assert everything[1].urls == servers[1]["urls"]
    with pytest.raises(ValueError):
        Participant("ws://127.0.0.1:9/ws", "t", turn_transport="quic")
