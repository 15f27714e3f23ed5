"""The Python participant: a real WebRTC client that speaks docs/protocol.md.

Tests, benchmarks and scripted probes use it exactly like a browser: one WebSocket to
``/ws``, ``join`` (token in the first message, never in the URL) or ``resume``, one
``RTCPeerConnection`` per peer (mesh), synthetic audio and video out, remote frames
counted in.

How the protocol's negotiation rules map onto aiortc 1.16 (which has neither
``restartIce()`` nor a working ``rollback``: ``setLocalDescription(type="rollback")``
is silently a no-op that leaves the state at ``have-local-offer``):

* Every offer, answer and candidate for one peer is handled by one task, in order, so
  the perfect-negotiation flag ``makingOffer`` reduces to
  ``signalingState != "stable"`` when a remote offer is looked at.
* Glare, impolite side: ignore the colliding offer (and its candidates). So does the side
  whose pending offer was made for its own ``welcome`` when the peer has not joined or
  resumed since: it came in later, its offer is the current session, and the peer (which
  has heard ``peer-joined``/``peer-resumed`` of it since its own offer) answers it.
* Glare, polite side: instead of rolling back, close the connection that only holds an
  unanswered local offer and answer the remote offer on a fresh one. This client only
  ever offers on a fresh connection (newcomer, resume, :meth:`Participant.restart_peer`),
  so the discarded connection never carried media and the result is what a rollback
  would give.
* ICE restart: the resumed side opens a fresh connection to every online peer and
  offers. The other side answers an offer that starts a new session (its ``ice-ufrag``
  differs from the one in use, or the peer sent ``peer-resumed`` since) on a fresh
  connection too. docs/protocol.md, *Resume*, states the rule for the browser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import inspect
import itertools
import logging
import math
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, Sequence

import aiohttp
import av
import orjson
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

logger = logging.getLogger(__name__)

__all__ = [
    "JoinRefused",
    "Participant",
    "PeerLink",
    "SyntheticAudioTrack",
    "SyntheticVideoTrack",
]

DEFAULT_WAIT = 20.0
MEDIA_KINDS = ("audio", "video")
# Close codes after which resuming is pointless (protocol.md, *Close codes*).
FINAL_CLOSE_CODES = {1000, 4403, 4409, 4410, 4411, 4412}
TRY_AGAIN = 1013  # the node cannot serve the room right now: resume again (on another node)

MessageHook = Callable[[dict[str, Any]], "Awaitable[None] | None"]


class JoinRefused(Exception):
    """The server refused ``join``/``resume`` (or admission): ``code`` is the protocol
    error code (``token_expired``, ``resume_unknown``, ``denied`` …) and ``close_code``
    the WebSocket close code the server used (``4401``, ``4412`` …), if it closed."""

    def __init__(self, code: str | None, close_code: int | None, message: str = "") -> None:
        super().__init__(f"join refused: code={code} close_code={close_code} {message}".strip())
        self.code = code
        self.close_code = close_code
        self.message = message


# --------------------------------------------------------------------------- media


class _Clock:
    """Paces a synthetic track in real time so encoders see a live source."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.index = 0
        self.start: float | None = None

    async def tick(self) -> int:
        """Sleep until the next frame is due and return its index."""
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.index += 1
            delay = self.start + self.index / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return self.index


class SyntheticVideoTrack(MediaStreamTrack):
    """A moving diagonal gradient (default 320x240 at 15 fps, 90 kHz pts).

    Moving content keeps the VP8 encoder producing real inter frames, which makes
    frame counts and bitrates in benchmarks meaningful; numpy is not needed.
    """

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: float = 15.0) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._clock = _Clock(fps)
        self._fps = fps
        self._time_base = fractions.Fraction(1, 90000)
        self._gradient = bytes((i * 3) & 0xFF for i in range(width + height + 256))

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._clock.tick()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma, cb, cr = frame.planes
        shift = (index * 4) % 256
        pad = b"\x00" * (luma.line_size - self.width)
        luma.update(
            b"".join(self._gradient[shift + y : shift + y + self.width] + pad for y in range(self.height))
        )
        tint = (index * 2) & 0xFF
        cb.update(bytes([tint]) * cb.buffer_size)
        cr.update(bytes([255 - tint]) * cr.buffer_size)
        frame.pts = int(index * 90000 / self._fps)
        frame.time_base = self._time_base
        return frame


class SyntheticAudioTrack(MediaStreamTrack):
    """A quiet 400 Hz sine, 48 kHz mono s16 in 20 ms frames.

    400 Hz divides 48 kHz exactly, so one precomputed frame repeats seamlessly.
    """

    kind = "audio"
    sample_rate = 48000
    samples = 960  # 20 ms

    def __init__(self, frequency: int = 400, amplitude: float = 0.1) -> None:
        super().__init__()
        self._clock = _Clock(self.sample_rate / self.samples)
        self._time_base = fractions.Fraction(1, self.sample_rate)
        peak = int(32767 * amplitude)
        self._pcm = b"".join(
            struct.pack("<h", int(peak * math.sin(2 * math.pi * frequency * i / self.sample_rate)))
            for i in range(self.samples)
        )

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index = await self._clock.tick()
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(self._pcm)
        frame.sample_rate = self.sample_rate
        frame.pts = index * self.samples
        frame.time_base = self._time_base
        return frame


# ----------------------------------------------------------------------- peer link


def _ice_ufrag(sdp: str) -> str | None:
    """First ``a=ice-ufrag`` of an SDP: a change means a new ICE session."""
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line.split(":", 1)[1].strip()
    return None


class PeerLink:
    """Everything about one remote seat: its connection and negotiation state.

    The link outlives connections: when a connection is replaced (resume, polite glare,
    restart) ``generation`` goes up and the per-connection frame counters restart, so
    ``frames`` always describes the connection that is current now.
    """

    def __init__(self, owner: Participant, peer_id: str) -> None:
        self.owner = owner
        self.peer_id = peer_id
        self.pc: RTCPeerConnection | None = None
        self.generation = 0
        self.frames: dict[str, int] = {kind: 0 for kind in MEDIA_KINDS}
        self.frames_total: dict[str, int] = {kind: 0 for kind in MEDIA_KINDS}
        # Perfect negotiation.
        self.making_offer = False
        self.ignore_offer = False
        self.expect_fresh = False  # the peer resumed: its next offer starts a new session
        self.offer_wins = False  # our pending offer is for our latest welcome: it beats a colliding one
        # What happened, for tests, probes and the report.
        self.ignored_offers = 0  # impolite side of a glare
        self.rollbacks = 0  # polite side of a glare (fresh connection instead of rollback)
        self.restarts = 0  # fresh connection for a new ICE session of the peer
        self.last_error: BaseException | None = None
        self._ops: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tracks: list[MediaStreamTrack] = []
        self._stats_mark: tuple[float, int] | None = None

    @property
    def polite(self) -> bool:
        """Polite towards the peer when our seat id sorts first (protocol.md)."""
        return (self.owner.id or "") < self.peer_id

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState if self.pc is not None else "new"

    # -- queue: one task per peer keeps offers and incoming signals in order

    def submit(self, op: str, arg: Any = None) -> None:
        self._ops.put_nowait((op, arg))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"link-{self.peer_id}")

    async def _work(self) -> None:
        while True:
            op, arg = await self._ops.get()
            try:
                if op == "offer":
                    epoch, wins = arg
                    if epoch == self.owner._epoch:
                        await self._offer(epoch, wins=wins)
                    else:
                        logger.info("peer %s: offer of an earlier socket skipped", self.peer_id)
                elif op == "signal":
                    await self._on_signal(arg)
            except Exception as exc:  # one bad message must not end the link
                self.last_error = exc
                logger.warning("peer %s: %s failed: %r", self.peer_id, op, exc)
            finally:
                self._ops.task_done()
            self.owner._notify()

    # -- connections

    async def _new_pc(self) -> RTCPeerConnection:
        """Replace the current connection (if any) with a fresh one."""
        await self._close_pc()
        self.generation += 1
        self.frames = {kind: 0 for kind in MEDIA_KINDS}
        self.making_offer = self.ignore_offer = self.offer_wins = False
        self._stats_mark = None
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.owner._rtc_ice_servers()))
        frames = self.frames
        if self.owner.send_media:
            video = SyntheticVideoTrack(*self.owner.video_size, fps=self.owner.fps)
            audio = SyntheticAudioTrack()
            self._tracks = [audio, video]
            pc.addTrack(audio)
            pc.addTrack(video)
        else:
            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            task = asyncio.create_task(self._consume(track, frames))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            logger.debug("peer %s gen %d: %s", self.peer_id, self.generation, pc.connectionState)
            self.owner._notify()

        self.pc = pc
        self.owner._notify()
        return pc

    async def _consume(self, track: MediaStreamTrack, frames: dict[str, int]) -> None:
        """Drain a remote track (aiortc only decodes what is read) and count frames."""
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()
                frames[track.kind] += 1
                self.frames_total[track.kind] += 1
                self.owner._notify()

    async def _close_pc(self) -> None:
        pc, self.pc = self.pc, None
        for track in self._tracks:
            track.stop()
        self._tracks = []
        if pc is not None:
            await pc.close()

    async def close(self) -> None:
        """End the link: worker, consumers and connection."""
        tasks = [t for t in [self._worker, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._worker = None
        await self._close_pc()
        self.owner._notify()

    # -- negotiation

    async def _offer(self, epoch: int, *, wins: bool) -> None:
        """Offer on a fresh connection (this client never re-offers on a live one).

        ``wins``: the offer is for our own ``welcome``, so a colliding offer of a peer
        that has not joined or resumed since is older and gives way (protocol.md)."""
        pc = await self._new_pc()
        self.offer_wins = wins and not self.expect_fresh  # a peer that resumed since is newer
        self.making_offer = True
        try:
            # aiortc gathers all candidates here; they travel inside the SDP.
            await pc.setLocalDescription(await pc.createOffer())
        finally:
            self.making_offer = False
        if epoch != self.owner._epoch:
            # The socket was replaced meanwhile: the peer would answer this offer and the
            # one the new welcome triggers, and the first answer would land on the wrong
            # connection. The offer queued by the new welcome supersedes it.
            logger.info("peer %s: offer of an earlier socket not sent", self.peer_id)
            return
        await self._signal({"description": _description(pc.localDescription)})

    async def _on_signal(self, data: dict[str, Any]) -> None:
        if "description" in data:
            await self._on_description(data["description"])
        elif "candidate" in data:
            await self._on_candidate(data["candidate"])

    async def _on_description(self, raw: dict[str, Any]) -> None:
        kind, sdp = raw.get("type"), raw.get("sdp") or ""
        if kind == "offer":
            await self._on_offer(sdp)
        elif kind == "answer":
            pc = self.pc
            if pc is None or pc.signalingState != "have-local-offer":
                # An answer to an offer of a connection we have since replaced.
                logger.info("peer %s: stale answer ignored", self.peer_id)
                return
            self.ignore_offer = False
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        else:
            # "rollback" is local in perfect negotiation; a peer withdrawing an offer
            # that we already answered needs nothing from us.
            logger.info("peer %s: description %r ignored", self.peer_id, kind)

    async def _on_offer(self, sdp: str) -> None:
        pc = self.pc
        new_session = False
        if pc is None or pc.connectionState in ("closed", "failed"):
            new_session = True
        elif self.expect_fresh:
            new_session = True  # our pending offer may never have reached the old socket
        elif pc.remoteDescription is not None:
            # aiortc cannot restart ICE in place: a new ufrag needs a new connection.
            new_session = _ice_ufrag(pc.remoteDescription.sdp) != _ice_ufrag(sdp)
        if new_session:
            self.expect_fresh = False
            if pc is not None:
                self.restarts += 1
            pc = await self._new_pc()
        else:
            collision = self.making_offer or pc.signalingState != "stable"
            self.ignore_offer = collision and (self.offer_wins or not self.polite)
            if self.ignore_offer:
                self.ignored_offers += 1
                logger.info("peer %s: colliding offer ignored (%s)", self.peer_id,
                            "ours is for a later welcome" if self.offer_wins else "impolite")
                return
            if collision:
                # Polite side. aiortc has no rollback: drop the connection holding only
                # our unanswered offer and answer on a fresh one (same end state).
                self.rollbacks += 1
                logger.info("peer %s: glare, polite side answers on a fresh connection", self.peer_id)
                pc = await self._new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self._signal({"description": _description(pc.localDescription)})

    async def _on_candidate(self, raw: dict[str, Any] | None) -> None:
        pc = self.pc
        if pc is None or self.ignore_offer:
            return
        if raw is None or not raw.get("candidate"):
            return  # end of candidates: aiortc needs no marker, checks run on their own
        text = raw["candidate"]
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        candidate = candidate_from_sdp(text)
        candidate.sdpMid = raw.get("sdpMid")
        candidate.sdpMLineIndex = raw.get("sdpMLineIndex")
        if pc.remoteDescription is None:
            logger.info("peer %s: candidate before any description dropped", self.peer_id)
            return
        await pc.addIceCandidate(candidate)

    async def _signal(self, data: dict[str, Any]) -> None:
        try:
            await self.owner.send({"type": "signal", "to": self.peer_id, "data": data})
        except ConnectionError:
            # The socket dropped; a resume renegotiates from scratch anyway.
            logger.info("peer %s: signal lost, socket is down", self.peer_id)

    # -- stats

    async def stats(self) -> dict[str, Any]:
        """One entry of the ``stats`` message, from ``getStats()``."""
        entry: dict[str, Any] = {"state": self.connection_state}
        pc = self.pc
        if pc is None:
            return entry
        report = await pc.getStats()
        rtts: list[float] = []
        received = lost = 0
        transport_bytes = 0
        for s in report.values():
            if s.type == "remote-inbound-rtp" and getattr(s, "roundTripTime", None) is not None:
                rtts.append(s.roundTripTime)
            elif s.type == "inbound-rtp":
                received += max(s.packetsReceived, 0)
                lost += max(s.packetsLost, 0)
            elif s.type == "transport":
                transport_bytes += s.bytesReceived
        if rtts:
            entry["rtt_ms"] = round(1000 * sum(rtts) / len(rtts), 1)
        path = candidate_type(pc)
        if path is not None:
            entry["candidate_type"] = path
        entry["loss"] = round(lost / (received + lost), 4) if received + lost else 0.0
        now = time.monotonic()
        if self._stats_mark is not None and now > self._stats_mark[0]:
            bits = 8 * (transport_bytes - self._stats_mark[1])
            entry["bitrate_kbps"] = round(max(bits, 0) / (now - self._stats_mark[0]) / 1000, 1)
        else:
            entry["bitrate_kbps"] = 0.0
        self._stats_mark = (now, transport_bytes)
        return entry


def turn_transport_of(url: str) -> str:
    """``udp``, ``tcp`` or ``tls`` for a ``turn:``/``turns:`` URL (RFC 7065; no transport means UDP)."""
    if url.startswith("turns:"):
        return "tls"
    return "tcp" if url.rsplit("?transport=", 1)[-1] == "tcp" else "udp"


def candidate_type(pc: RTCPeerConnection) -> str | None:
    """The local candidate type of the pair in use (``relay``: through TURN), or None before one is chosen.

    aiortc reports no candidate-pair stats, so this reads the nominated pair of aioice's
    connection under the ICE transport (``RTCIceTransport._connection._nominated``).
    """
    for transceiver in pc.getTransceivers():
        ice = getattr(transceiver.sender.transport, "transport", None)
        nominated = getattr(getattr(ice, "_connection", None), "_nominated", None) or {}
        for pair in nominated.values():
            kind = getattr(pair.local_candidate, "type", None)
            if kind in ("host", "srflx", "prflx", "relay"):
                return kind
    return None


def _description(desc: RTCSessionDescription) -> dict[str, str]:
    return {"type": desc.type, "sdp": desc.sdp}


# ---------------------------------------------------------------------- participant


class Participant:
    """One seat in a room, driven from Python.

    ``state`` is ``new`` → ``waiting`` / ``joined`` → one of ``dropped``,
    ``disconnected``, ``left``, ``denied``, ``removed``, ``ended``, ``closed``.
    Every wait is bounded and raises ``TimeoutError`` with what it was waiting for.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        resume_secret: str | None = None,
        name: str | None = None,
        send_media: bool = True,
        video_size: tuple[int, int] = (320, 240),
        fps: float = 15.0,
        ice_servers: list[dict[str, Any]] | None = None,
        turn_transport: str | None = None,
        stats_interval: float | None = None,
        auto_resume: bool = False,
        reply_timeout: float = 10.0,
        fallback_urls: Sequence[str] = (),
    ) -> None:
        """``ice_servers`` overrides the ones from ``welcome`` (probes behind odd
        networks); ``turn_transport`` (``udp``, ``tcp`` or ``tls``) picks which of the TURN
        URLs to use, since aiortc uses only the first one it is given (a browser tries them
        all); ``stats_interval`` sends ``stats`` periodically while joined;
        ``auto_resume`` resumes by itself after an unexpected socket loss, as the
        browser does; ``fallback_urls`` are other nodes of a cluster it then tries in
        turn (a browser behind a load balancer gets that from the balancer)."""
        self.url = url
        self.token = token
        self.resume_secret = resume_secret
        self.name = name
        self.send_media = send_media
        self.video_size = video_size
        self.fps = fps
        self.ice_servers_override = ice_servers
        if turn_transport not in (None, "udp", "tcp", "tls"):
            raise ValueError("turn_transport must be udp, tcp or tls")
        self.turn_transport = turn_transport
        self.stats_interval = stats_interval
        self.auto_resume = auto_resume
        self.fallback_urls = list(fallback_urls)
        self.reply_timeout = reply_timeout

        self.state = "new"
        self.self_info: dict[str, Any] = {}
        self.room: dict[str, Any] = {}
        self.peers: dict[str, dict[str, Any]] = {}
        self.lobby: list[dict[str, Any]] = []
        self.ice_servers: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.end_reason: str | None = None
        self.errors: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.links: dict[str, PeerLink] = {}
        self.stats_sent: int = 0
        self.resumes = 0  # successful automatic resumes

        self._hooks: list[MessageHook] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._resume_task: asyncio.Task[None] | None = None
        self._first_reply: asyncio.Future[dict[str, Any] | None] | None = None
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._ping_ids = itertools.count(1)
        # One per welcome: offers made for an earlier socket are never sent on a later one.
        self._epoch = 0
        self._closing = False

    # ------------------------------------------------------------------ identity

    @property
    def id(self) -> str | None:
        """Our seat id (the same across a resume)."""
        return self.self_info.get("id")

    @property
    def role(self) -> str | None:
        return self.self_info.get("role")

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    # ---------------------------------------------------------------- lifecycle

    async def connect(self) -> dict[str, Any]:
        """Open the socket and send ``join`` (or ``resume`` when only a secret is known).

        Returns the ``welcome`` or ``waiting`` message; raises :class:`JoinRefused`.
        """
        if self.connected:
            raise RuntimeError("already connected")
        if self.token is not None:
            first: dict[str, Any] = {"type": "join", "token": self.token}
            if self.name is not None:
                first["name"] = self.name
        elif self.resume_secret is not None:
            first = {"type": "resume", "secret": self.resume_secret}
        else:
            raise ValueError("a token or a resume secret is needed")
        return await self._open(first)

    async def resume(self) -> dict[str, Any]:
        """Reconnect with the saved resume secret; the ``welcome`` (``resumed: true``)
        then renegotiates every peer on fresh connections."""
        if not self.resume_secret:
            raise ValueError("no resume secret: join first")
        if self.connected:
            raise RuntimeError("still connected; drop() first")
        return await self._open({"type": "resume", "secret": self.resume_secret})

    async def drop(self, *, media: bool = False) -> None:
        """Kill the socket abruptly, with no WebSocket close frame, as a network drop
        would. ``media=True`` also tears down the peer connections."""
        await self._stop_stats()
        session, self._session = self._session, None
        self.state = "dropped"
        if session is not None:
            await session.close()  # closes the TCP transport under the WebSocket
        await self._join_reader()
        if media:
            await self._close_links()
        self._notify()

    async def leave(self, timeout: float = 5.0) -> None:
        """Say ``leave``, wait (bounded) for the server's close, release everything."""
        self._closing = True
        if self.state in ("joined", "waiting", "new"):
            self.state = "left"
        if self.connected:
            with contextlib.suppress(ConnectionError):
                await self.send({"type": "leave"})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader_done()), timeout)
        await self._teardown()

    async def close(self) -> None:
        """Leave if still in the room, then release every resource. Idempotent."""
        if self.connected and self.state in ("joined", "waiting"):
            await self.leave()
        else:
            self._closing = True
            await self._teardown()
        if self.state not in ("left", "denied", "removed", "ended"):
            self.state = "closed"

    async def __aenter__(self) -> Participant:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- sending

    async def send(self, message: dict[str, Any]) -> None:
        """Send one protocol message as-is (also for probes of the server's validation)."""
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("the signalling socket is not open")
        async with self._send_lock:
            try:
                await ws.send_str(orjson.dumps(message).decode())
            except (aiohttp.ClientError, RuntimeError) as exc:
                raise ConnectionError(str(exc)) from exc

    async def admit(self, peer_id: str) -> None:
        await self.send({"type": "admit", "peer": peer_id})

    async def deny(self, peer_id: str) -> None:
        await self.send({"type": "deny", "peer": peer_id})

    async def remove(self, peer_id: str) -> None:
        await self.send({"type": "remove", "peer": peer_id})

    async def end(self) -> None:
        """End the room for everyone; the server answers with ``ended`` and a close."""
        await self.send({"type": "end"})

    async def set_state(
        self,
        *,
        mic: bool | None = None,
        camera: bool | None = None,
        screen: bool | None = None,
        hand: bool | None = None,
    ) -> None:
        """Send only the fields given; the others keep their value (protocol.md)."""
        fields = {k: v for k, v in {"mic": mic, "camera": camera, "screen": screen, "hand": hand}.items() if v is not None}
        self.self_info.setdefault("state", {}).update(fields)
        await self.send({"type": "state", **fields})

    async def ping(self, timeout: float = 5.0) -> float:
        """Application-level ping; returns the round trip in seconds."""
        ping_id = next(self._ping_ids)
        mark = len(self.messages)
        started = time.monotonic()
        await self.send({"type": "ping", "id": ping_id})
        await self.wait_message("pong", lambda m: m.get("id") == ping_id, timeout=timeout, after=mark)
        return time.monotonic() - started

    async def collect_stats(self) -> dict[str, dict[str, Any]]:
        """Per-peer figures from ``getStats()``, in the shape of the ``stats`` message."""
        return {peer_id: await link.stats() for peer_id, link in list(self.links.items())}

    async def send_stats(self) -> dict[str, Any]:
        """Read ``getStats()`` of every connection and send one ``stats`` message."""
        message = {"type": "stats", "peers": await self.collect_stats()}
        await self.send(message)
        self.stats_sent += 1
        return message

    async def restart_peer(self, peer_id: str) -> None:
        """Open a fresh connection to one peer and offer, as a resume does for all.

        Returns once the offer is sent. Useful to recover a ``failed`` connection and
        to provoke glare on purpose."""
        link = self._link(peer_id)
        link.submit("offer", (self._epoch, False))
        await link._ops.join()

    # ------------------------------------------------------------- observing

    def link(self, peer_id: str) -> PeerLink | None:
        return self.links.get(peer_id)

    def connection_state(self, peer_id: str) -> str:
        link = self.links.get(peer_id)
        return link.connection_state if link is not None else "new"

    def frames_received(self, peer_id: str, kind: str) -> int:
        """Frames of ``kind`` decoded from ``peer_id`` on the current connection."""
        link = self.links.get(peer_id)
        return link.frames[kind] if link is not None else 0

    def on_message(self, hook: MessageHook) -> None:
        """Call ``hook(message)`` (sync or async) for every server message."""
        self._hooks.append(hook)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = DEFAULT_WAIT, what: str = "condition") -> None:
        """Wait, bounded, until ``predicate()`` holds; re-checked on every change."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.id or self.name}: timed out after {timeout}s waiting for {what}")
            changed = self._changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 1.0))

    async def wait_connected(self, peer_id: str, timeout: float = DEFAULT_WAIT) -> None:
        await self.wait_until(
            lambda: self.connection_state(peer_id) == "connected",
            timeout,
            f"connection to {peer_id} (now {self.connection_state(peer_id)})",
        )

    async def wait_frames(self, peer_id: str, kind: str, n: int = 1, timeout: float = DEFAULT_WAIT) -> int:
        if kind not in MEDIA_KINDS:
            raise ValueError(f"kind must be one of {MEDIA_KINDS}")
        await self.wait_until(
            lambda: self.frames_received(peer_id, kind) >= n,
            timeout,
            f"{n} {kind} frames from {peer_id} (have {self.frames_received(peer_id, kind)})",
        )
        return self.frames_received(peer_id, kind)

    async def wait_message(
        self,
        type_: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        timeout: float = DEFAULT_WAIT,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first received message of ``type_`` (matching ``predicate``) at index
        ``after`` or later in :attr:`messages`; use ``len(p.messages)`` as a mark."""
        found: list[dict[str, Any]] = []

        def check() -> bool:
            for message in self.messages[after:]:
                if message.get("type") == type_ and (predicate is None or predicate(message)):
                    found.append(message)
                    return True
            return False

        await self.wait_until(check, timeout, f"message {type_!r}")
        return found[0]

    async def wait_admitted(self, timeout: float = DEFAULT_WAIT) -> dict[str, Any]:
        """From the waiting room: the ``welcome`` of admission, or JoinRefused."""
        await self.wait_until(lambda: self.state != "waiting", timeout, "admission")
        if self.state != "joined":
            raise JoinRefused(self.state, self.close_code)
        return next(m for m in reversed(self.messages) if m.get("type") == "welcome")

    # ------------------------------------------------------------- internals

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _link(self, peer_id: str) -> PeerLink:
        link = self.links.get(peer_id)
        if link is None:
            link = self.links[peer_id] = PeerLink(self, peer_id)
        return link

    def _rtc_ice_servers(self) -> list[RTCIceServer]:
        """Always a list: with ``None`` aiortc would fall back to Google's STUN."""
        servers = self.ice_servers_override if self.ice_servers_override is not None else self.ice_servers
        result = []
        for s in servers:
            urls = s.get("urls")
            urls = [urls] if isinstance(urls, str) else list(urls or [])
            if self.turn_transport is not None:
                urls = [u for u in urls if not u.startswith("turn") or turn_transport_of(u) == self.turn_transport]
            if urls:
                result.append(RTCIceServer(urls=urls, username=s.get("username"), credential=s.get("credential")))
        return result

    async def _open(self, first: dict[str, Any]) -> dict[str, Any]:
        await self._join_reader()
        self._closing = False
        self.close_code = None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        try:
            ws = await self._session.ws_connect(self.url, autoping=True, max_msg_size=4 * 65536)
        except Exception:
            await self._session.close()
            self._session = None
            raise
        self._ws = ws
        self._first_reply = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(ws), name=f"participant-reader-{self.name}")
        await self.send(first)
        try:
            reply = await asyncio.wait_for(asyncio.shield(self._first_reply), self.reply_timeout)
        except asyncio.TimeoutError:
            await self._teardown_socket()
            raise TimeoutError(f"no reply to {first['type']} within {self.reply_timeout}s") from None
        if reply is not None and reply.get("type") in ("welcome", "waiting"):
            if self.stats_interval and reply["type"] == "welcome":
                self._start_stats()
            return reply
        # Refused: the server normally sends `error` and then closes; take the code.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader_done()), 2.0)
        close_code = ws.close_code if ws.closed else None
        await self._teardown_socket()
        if reply is None:
            raise JoinRefused(None, close_code, "socket closed before any reply")
        code = reply.get("code") if reply.get("type") == "error" else reply.get("type")
        raise JoinRefused(code, close_code, reply.get("message", ""))

    async def _reader_done(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _join_reader(self) -> None:
        await self._reader_done()
        self._reader = None

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    message = orjson.loads(frame.data)
                except orjson.JSONDecodeError:
                    logger.warning("server sent a frame that is not JSON: %.200r", frame.data)
                    continue
                if isinstance(message, dict):
                    await self._receive(message)
        except (aiohttp.ClientError, ConnectionError) as exc:
            logger.info("signalling socket lost: %r", exc)
        finally:
            await self._on_socket_closed(ws)

    async def _on_socket_closed(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.close_code = ws.close_code
        if self._first_reply is not None and not self._first_reply.done():
            self._first_reply.set_result(None)
        if self._ws is ws:
            self._ws = None
        if self.state in ("joined", "waiting"):
            self.state = "disconnected"
            logger.info("socket closed unexpectedly (code %s)", ws.close_code)
            if self.auto_resume and not self._closing and self.resume_secret and ws.close_code not in FINAL_CLOSE_CODES:
                self._resume_task = asyncio.create_task(self._auto_resume())
        if self.state in ("removed", "ended", "denied"):
            await self._stop_stats()
            await self._close_links()
        self._notify()

    async def _auto_resume(self, grace: float = 30.0) -> None:
        """Retry ``resume`` with backoff for the protocol's grace period, on each known URL in turn.

        A refusal ends it, except ``1013`` (try again: that node cannot serve the room
        right now), which is retried like a network failure.
        """
        deadline = time.monotonic() + grace
        delay = 0.25
        urls = [self.url, *[u for u in self.fallback_urls if u != self.url]]
        attempt = 0
        while time.monotonic() < deadline and not self._closing:
            await asyncio.sleep(delay)
            self.url = urls[attempt % len(urls)]
            attempt += 1
            try:
                await self.resume()
                self.resumes += 1
                return
            except JoinRefused as exc:
                if exc.close_code != TRY_AGAIN:
                    logger.warning("auto resume refused: %s", exc)
                    return
                logger.info("auto resume: node busy, retrying: %s", exc)
            except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                logger.info("auto resume failed, retrying: %r", exc)
            delay = min(delay * 2, 2.0)

    async def _receive(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.events.put_nowait(message)
        try:
            self._dispatch(message)
        except Exception:  # a malformed server message must not kill the reader
            logger.exception("cannot handle %.200r", message)
        for hook in list(self._hooks):
            try:
                result = hook(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("message hook failed")
        self._notify()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        handler = getattr(self, "_on_" + str(kind).replace("-", "_"), None)
        if handler is not None:
            handler(message)
        first = self._first_reply
        if first is not None and not first.done() and kind in ("welcome", "waiting", "error", "denied", "removed", "ended"):
            first.set_result(message)

    # -- server messages

    def _on_welcome(self, m: dict[str, Any]) -> None:
        self.state = "joined"
        self._epoch += 1
        self.self_info = dict(m.get("self") or {})
        self.room = dict(m.get("room") or {})
        self.ice_servers = list(m.get("ice_servers") or [])
        self.resume_secret = m.get("resume_secret") or self.resume_secret
        self.peers = {p["id"]: dict(p) for p in m.get("peers") or []}
        for peer_id in list(self.links):
            if peer_id not in self.peers:
                asyncio.create_task(self.links.pop(peer_id).close())
        # Newcomer (or resumed): offer to every online peer on a fresh connection. A
        # peer that is itself reconnecting offers to us when it resumes.
        for peer_id, peer in self.peers.items():
            link = self._link(peer_id)
            link.expect_fresh = False
            if peer.get("connection", "online") == "online":
                link.submit("offer", (self._epoch, True))
            else:
                link.expect_fresh = True

    def _on_waiting(self, m: dict[str, Any]) -> None:
        self.state = "waiting"
        self.self_info = dict(m.get("self") or {})
        self.room = dict(m.get("room") or {})
        self.resume_secret = m.get("resume_secret") or self.resume_secret

    def _on_lobby(self, m: dict[str, Any]) -> None:
        self.lobby = list(m.get("waiting") or [])

    def _on_peer_joined(self, m: dict[str, Any]) -> None:
        peer = dict(m["peer"])
        self.peers[peer["id"]] = peer
        # The newcomer offers; a stale link from an earlier seat with this id is reset.
        link = self._link(peer["id"])
        link.expect_fresh, link.offer_wins = True, False

    def _on_peer_left(self, m: dict[str, Any]) -> None:
        peer_id = m.get("peer")
        self.peers.pop(peer_id, None)
        link = self.links.pop(peer_id, None)
        if link is not None:
            asyncio.create_task(link.close())

    def _on_peer_reconnecting(self, m: dict[str, Any]) -> None:
        if m.get("peer") in self.peers:
            self.peers[m["peer"]]["connection"] = "reconnecting"

    def _on_peer_resumed(self, m: dict[str, Any]) -> None:
        peer_id = m.get("peer")
        if peer_id in self.peers:
            self.peers[peer_id]["connection"] = "online"
        # Keep the old connection until the resumed side's offer arrives; it is newer
        # than any offer of ours still pending.
        link = self._link(peer_id)
        link.expect_fresh, link.offer_wins = True, False

    def _on_peer_state(self, m: dict[str, Any]) -> None:
        if m.get("peer") in self.peers:
            self.peers[m["peer"]].setdefault("state", {}).update(m.get("state") or {})

    def _on_signal(self, m: dict[str, Any]) -> None:
        peer_id, data = m.get("from"), m.get("data")
        if not isinstance(peer_id, str) or not isinstance(data, dict):
            logger.warning("malformed signal: %.200r", m)
            return
        self._link(peer_id).submit("signal", data)

    def _on_error(self, m: dict[str, Any]) -> None:
        self.errors.append(m)
        logger.info("server error %s: %s", m.get("code"), m.get("message"))

    def _on_denied(self, m: dict[str, Any]) -> None:
        self.state = "denied"

    def _on_removed(self, m: dict[str, Any]) -> None:
        self.state = "removed"

    def _on_ended(self, m: dict[str, Any]) -> None:
        self.state = "ended"
        self.end_reason = m.get("reason")

    # -- periodic stats and teardown

    def _start_stats(self) -> None:
        if self._stats_task is None or self._stats_task.done():
            self._stats_task = asyncio.create_task(self._stats_loop())

    async def _stats_loop(self) -> None:
        assert self.stats_interval
        while self.connected and self.state == "joined":
            await asyncio.sleep(self.stats_interval)
            try:
                await self.send_stats()
            except ConnectionError:
                return
            except Exception:
                logger.exception("stats failed")

    async def _stop_stats(self) -> None:
        task, self._stats_task = self._stats_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _close_links(self) -> None:
        links, self.links = list(self.links.values()), {}
        for link in links:
            await link.close()

    async def _teardown_socket(self) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
        await self._join_reader()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _teardown(self) -> None:
        self._closing = True
        task, self._resume_task = self._resume_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._stop_stats()
        await self._teardown_socket()
        await self._close_links()


# ------------------------------------------------------------------------------ CLI


async def _probe(args: argparse.Namespace) -> int:
    """Join, print every server message as a JSON line, report frames, leave."""
    participant = Participant(
        args.url,
        args.token,
        resume_secret=args.resume_secret,
        name=args.name,
        send_media=not args.no_media,
        turn_transport=args.turn_transport,
        stats_interval=args.stats_interval,
        auto_resume=True,
    )
    participant.on_message(lambda m: print(orjson.dumps(m).decode(), flush=True))
    try:
        await participant.connect()
    except JoinRefused as exc:
        print(f"refused: {exc.code} (close {exc.close_code}) {exc.message}", file=sys.stderr)
        return 2
    reporter = asyncio.create_task(_report_links(participant, args.report)) if args.report else None
    try:
        with contextlib.suppress(TimeoutError):
            await participant.wait_until(
                lambda: participant.state in ("left", "denied", "removed", "ended"), args.duration, "end of probe"
            )
        summary = {
            peer_id: {"state": link.connection_state, **{k: link.frames_total[k] for k in MEDIA_KINDS}}
            for peer_id, link in participant.links.items()
        }
        print(orjson.dumps({"probe": "summary", "self": participant.id, "peers": summary}).decode(), file=sys.stderr)
    finally:
        if reporter is not None:
            reporter.cancel()
        await participant.close()
    return 0


async def _report_links(participant: Participant, every: float) -> None:
    """Every ``every`` seconds one JSON line: each link's state, frames so far and path (for probes in a lab)."""
    started = time.monotonic()
    while True:
        peers = {}
        for peer_id, link in list(participant.links.items()):
            peers[peer_id] = {"state": link.connection_state, "generation": link.generation,
                              **{kind: link.frames[kind] for kind in MEDIA_KINDS}}
            path = candidate_type(link.pc) if link.pc is not None else None
            if path is not None:
                peers[peer_id]["candidate_type"] = path
        line = {"probe": "links", "self": participant.id, "t": round(time.monotonic() - started, 3), "peers": peers}
        print(orjson.dumps(line).decode(), flush=True)
        await asyncio.sleep(every)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roomserver.peer.participant", description=_probe.__doc__)
    parser.add_argument("--url", required=True, help="signalling WebSocket, e.g. ws://127.0.0.1:8080/ws")
    parser.add_argument("--token", help="join token (sent in the first message, never in the URL)")
    parser.add_argument("--resume-secret", help="resume instead of join")
    parser.add_argument("--name", help="display name (citizens only)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to stay (default 30)")
    parser.add_argument("--no-media", action="store_true", help="receive only")
    parser.add_argument("--stats-interval", type=float, default=5.0, help="seconds between stats messages")
    parser.add_argument("--turn-transport", choices=("udp", "tcp", "tls"),
                        help="use only the TURN URLs of this transport (aiortc takes one TURN server)")
    parser.add_argument("--report", type=float, default=0.0,
                        help="print each link's state, frames and path as a JSON line every N seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.token and not args.resume_secret:
        parser.error("--token or --resume-secret is required")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    return asyncio.run(_probe(args))


if __name__ == "__main__":
    raise SystemExit(main())
