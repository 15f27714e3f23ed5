"""The echo peer behind the join page's device and network check.

``POST /echo/offer`` with ``{"token", "sdp", "type": "offer"}`` starts a
server-side aiortc ``RTCPeerConnection`` that

* sends back every audio and video track it receives (frames are forwarded as
  they are decoded; video wider than ``MAX_WIDTH`` is scaled down first so one
  session's encoder cost stays bounded), and
* answers every message on a data channel labelled ``echo`` with the same
  message, so the browser can time round trips.

The answer is ``{"type": "answer", "sdp": ..., "expires_in": seconds}``. The
browser sends its offer with all ICE candidates in it (no trickling); the answer
carries the server's.

Limits (module constants; the config schema belongs to ``config.py``):
``MAX_SESSIONS`` concurrent sessions server-wide (the next offer gets 503
``echo_busy`` with ``Retry-After``), one session per token (a new offer with the
same token replaces the old session), each closed after ``SESSION_SECONDS``,
when its connection fails or closes, and on application shutdown.

Privacy: the peer only reflects. It keeps no frame, writes nothing to the store
and logs nothing about the media or the person; only session counts at debug
level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from ..core.errors import RoomServerError
from ..pages.join import MAX_SDP_CHARS, admit, ice_servers_for, read_object
from ..services import services_of

log = logging.getLogger("roomserver.peer.echo")

MAX_SESSIONS = 4  # concurrent echo sessions per server process
SESSION_SECONDS = 60.0  # a session is closed this long after its offer at the latest
ANSWER_TIMEOUT = 15.0  # setRemoteDescription + createAnswer + ICE gathering
MAX_WIDTH = 640  # wider incoming video is scaled down before it is sent back
MAX_PING_CHARS = 256  # longer data channel messages are not echoed
CHANNEL_LABEL = "echo"


class Reflection(MediaStreamTrack):
    """Sends back what a remote track delivers, frame by frame."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source

    async def recv(self) -> Any:
        frame = await self._source.recv()
        if self.kind == "video" and frame.width > MAX_WIDTH:
            height = max(2, int(frame.height * MAX_WIDTH / frame.width) // 2 * 2)
            scaled = frame.reformat(width=MAX_WIDTH, height=height)
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            frame = scaled
        return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class EchoSession:
    """One browser's echo connection."""

    def __init__(self, owner: "EchoService", jti: str, ice_servers: list[dict[str, Any]]) -> None:
        self.id = "e_" + secrets.token_urlsafe(6)
        self.jti = jti
        self.owner = owner
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                   for s in ice_servers if s.get("urls")]
        # Always a list: with None aiortc would fall back to a public STUN server.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self._tracks: list[Reflection] = []

    async def answer(self, sdp: str) -> RTCSessionDescription:
        pc = self.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind not in ("audio", "video"):
                return
            reflection = Reflection(track)
            self._tracks.append(reflection)
            pc.addTrack(reflection)

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if channel.label != CHANNEL_LABEL:
                channel.close()
                return

            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                if len(message) <= MAX_PING_CHARS and channel.readyState == "open":
                    channel.send(message)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.owner.discard(self)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        for track in self._tracks:
            track.stop()
        with contextlib.suppress(Exception):  # closing a half-negotiated connection may complain
            await self.pc.close()


class EchoService:
    """The bounded set of running echo sessions of one application."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, lifetime: float = SESSION_SECONDS) -> None:
        self.max_sessions = max_sessions
        self.lifetime = lifetime
        self.sessions: dict[str, EchoSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return len(self.sessions)

    async def open(self, jti: str, ice_servers: list[dict[str, Any]]) -> EchoSession:
        """A new session for this token, replacing the token's previous one; ``echo_busy`` when full."""
        for old in [s for s in self.sessions.values() if s.jti == jti]:
            await self.close_session(old)
        if len(self.sessions) >= self.max_sessions:  # no await between this check and the insert
            raise EchoBusy()
        session = EchoSession(self, jti, ice_servers)
        self.sessions[session.id] = session
        session.timer = asyncio.get_running_loop().call_later(self.lifetime, self.discard, session)
        log.debug("echo session opened (%d active)", len(self.sessions))
        return session

    def discard(self, session: EchoSession) -> None:
        """Close a session from a callback (timer, connection state)."""
        if session.closed:
            return
        task = asyncio.ensure_future(self.close_session(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close_session(self, session: EchoSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            log.debug("echo session closed (%d active)", len(self.sessions))
        await session.close()

    async def close_all(self) -> None:
        sessions = list(self.sessions.values())
        await asyncio.gather(*(self.close_session(s) for s in sessions), return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class EchoBusy(RoomServerError):
    def __init__(self) -> None:
        super().__init__("echo_busy", "The connection test is busy right now; try again in a moment.", 503)


ECHO_KEY: web.AppKey[EchoService] = web.AppKey("echo", EchoService)


def echo_of(app: web.Application) -> EchoService:
    return app[ECHO_KEY]


async def offer(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    body = await read_object(request, required={"token": str, "sdp": str, "type": str},
                             max_bytes=MAX_SDP_CHARS * 2 + 8192)
    if body["type"] != "offer":
        raise RoomServerError("invalid_request", "Invalid value for type: must be 'offer'.", 422)
    if not body["sdp"].strip() or len(body["sdp"]) > MAX_SDP_CHARS:
        raise RoomServerError("invalid_request", f"Invalid value for sdp: 1 to {MAX_SDP_CHARS} characters.", 422)
    if not body["sdp"].startswith("v=0") or "\nm=" not in body["sdp"]:
        raise RoomServerError("bad_offer", "The offer is not an SDP description with media.", 422)
    claims = await admit(svc, body["token"], None)
    echo = echo_of(request.app)
    try:
        session = await echo.open(claims.jti, ice_servers_for(svc))
    except EchoBusy as exc:
        return web.json_response(exc.to_dict(), status=exc.status,
                                 headers={"Retry-After": "10", "Cache-Control": "no-store"})
    try:
        answer = await asyncio.wait_for(session.answer(body["sdp"]), ANSWER_TIMEOUT)
    except asyncio.TimeoutError:
        await echo.close_session(session)
        raise RoomServerError("echo_failed", "The connection test could not be started.", 503) from None
    except asyncio.CancelledError:
        echo.discard(session)
        raise
    except Exception:  # noqa: BLE001 - aiortc raises many kinds for a bad SDP; none of them reaches the client
        await echo.close_session(session)
        raise RoomServerError("bad_offer", "The offer could not be answered.", 422) from None
    return web.json_response({"type": answer.type, "sdp": answer.sdp, "expires_in": echo.lifetime},
                             headers={"Cache-Control": "no-store"})


async def _shutdown(app: web.Application) -> None:
    await echo_of(app).close_all()


def setup_echo(app: web.Application) -> None:
    app[ECHO_KEY] = EchoService()
    app.router.add_post("/echo/offer", offer)
    app.on_shutdown.append(_shutdown)
