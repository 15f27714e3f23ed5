"""The counsellor console: today's consultations, create one, open its room, invite, end.

The page itself is rendered here; creating, ending and inviting go through the
REST API from ``console.js``/``invite.js`` with the session cookie and the
session's CSRF token. Three page JSON endpoints serve what the API does not:

  GET  /console/rooms?from=&to=      this person's consultations starting in [from, to)
                                     (the browser's "today"), plus their live ones
  POST /console/rooms/{room_id}/join a counsellor token for the signed-in person
                                     (identity = account id) → {"token", "room", "name"}
  POST /console/qr                   {"text": <url>} → the QR code as image/svg+xml

All need a session of a counsellor or admin; the POSTs also the X-CSRF-Token header.
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from typing import Any

import segno
from aiohttp import web

from ..api.handlers import parse_time, room_json
from ..core.errors import RoomServerError
from ..core.roles import Role
from ..domain.auth import Principal
from ..domain.consultations import MAX_NAME, check_owner
from ..services import services_of
from . import pageauth
from .render import render

CONSOLE_ROLES = ("counsellor", "admin")
MAX_QR_TEXT = 2048
MAX_WINDOW = 48 * 3600
MAX_ROOMS = 200


@pageauth.require_roles(*CONSOLE_ROLES)
async def console_page(request: web.Request, principal: Principal) -> web.StreamResponse:
    response = render(request, "console.html", principal=principal, csrf=principal.csrf)
    pageauth.no_store(response)
    return response


def _server_today() -> tuple[int, int]:
    """Midnight to midnight in the server's local time: the window when the browser names none."""
    start = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    begin = int(start.timestamp())
    return begin, begin + 24 * 3600


@pageauth.page_api(*CONSOLE_ROLES)
async def rooms_today(request: web.Request, principal: Principal) -> web.StreamResponse:
    svc = services_of(request.app)
    begin, end = parse_time(request.query.get("from"), "from"), parse_time(request.query.get("to"), "to")
    if begin is None or end is None:
        begin, end = _server_today()
    if not 0 < end - begin <= MAX_WINDOW:
        raise RoomServerError("bad_query", "The window from..to must be positive and at most 48 hours.", 400)
    rooms = await svc.store.rooms.list(created_by=principal.id, starts_from=begin, starts_before=end, limit=MAX_ROOMS)
    seen = {room.id for room in rooms}
    # A consultation that runs on from yesterday still belongs on today's list.
    running = [room for room in await svc.store.rooms.list(state="live", created_by=principal.id, limit=MAX_ROOMS)
               if room.id not in seen]
    return web.json_response({"rooms": [room_json(room) for room in running + rooms]})


@pageauth.page_api(*CONSOLE_ROLES)
async def join_room(request: web.Request, principal: Principal) -> web.StreamResponse:
    """Mint the signed-in counsellor's own token for the room (the in-room page reads it from sessionStorage)."""
    svc = services_of(request.app)
    room = await svc.consultations.get(request.match_info["room_id"])
    check_owner(principal, room)
    name = principal.display_name.strip()[:MAX_NAME] or principal.role
    invite = await svc.consultations.invite(principal, room.id, role=Role.COUNSELLOR, name=name, identity=principal.id,
                                      lifetime=None, single_use=False, now=svc.now())
    return web.json_response({"token": invite.token, "room": room.id, "name": name})


_SHORT_LINK = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+/[jJ]/[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}")


def qr_text(text: str) -> str:
    """A short link of ours in capitals: QR codes hold upper-case letters, digits and ``:/.-`` in the
    alphanumeric mode, far denser than bytes, so the code gets fewer, larger modules (``/J/`` is routed too)."""
    return text.upper() if _SHORT_LINK.fullmatch(text) else text


def qr_svg(text: str) -> bytes:
    """``text`` as a QR code in SVG, scalable (viewBox, no fixed size), black on white with a quiet zone."""
    try:
        code = segno.make(qr_text(text), error="l", micro=False)  # boosted to a higher level where it fits
    except (segno.DataOverflowError, ValueError):
        raise RoomServerError("qr_too_long", "The text does not fit in a QR code.", 422) from None
    out = io.BytesIO()
    code.save(out, kind="svg", border=4, omitsize=True, xmldecl=False, svgclass=None, lineclass=None,
              dark="#000", light="#fff", title="QR")
    return out.getvalue()


@pageauth.page_api(*CONSOLE_ROLES)
async def qr_code(request: web.Request, principal: Principal) -> web.StreamResponse:
    if request.content_type != "application/json":
        raise RoomServerError("unsupported_media_type", "The request body must be JSON (application/json).", 415)
    raw = await request.read()
    if len(raw) > 4 * MAX_QR_TEXT + 64:
        raise RoomServerError("payload_too_large", f"The text may be at most {MAX_QR_TEXT} characters.", 413)
    try:
        body: Any = json.loads(raw)
    except (ValueError, RecursionError):
        raise RoomServerError("bad_json", "The request body is not valid JSON.", 400) from None
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text or len(text) > MAX_QR_TEXT or not text.isprintable():
        raise RoomServerError("invalid_text", f"text must be 1 to {MAX_QR_TEXT} printable characters.", 422)
    return web.Response(body=qr_svg(text), content_type="image/svg+xml")


def setup_console(app: web.Application) -> None:
    app.router.add_get("/console", console_page)
    app.router.add_get("/console/rooms", rooms_today)
    app.router.add_post("/console/rooms/{room_id}/join", join_room)
    app.router.add_post("/console/qr", qr_code)

