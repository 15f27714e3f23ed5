"""The in-room page at ``/room/{room_id}``: the shell that the browser client fills in.

The page carries no token and no room state: the token comes from the URL fragment
(never sent to the server) or from ``sessionStorage`` (put there by the citizen join page
or the counsellor console), and the WebSocket's first message carries it (see
``web/static/js/room.js`` for the entry contract). The server only renders the shell in
the person's language. A signed-in staff member additionally gets the session's CSRF
token in ``<meta name="csrf-token">`` for the counsellor's invite panel, and
``<body data-staff="<role>">``: the page then offers the way back to the console or the
desk when the consultation is over for them, and a counsellor's rejoin mints a fresh token.
"""

from __future__ import annotations

import re

from aiohttp import web

from .. import i18n
from ..domain.auth import Principal
from ..services import services_of
from .render import render

# Room ids are opaque ``r_…`` strings; anything else cannot be a room of ours.
_ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch
_SESSION_COOKIE = "rs_session"  # the staff session cookie (roomserver/api.py, SESSION_COOKIE)


async def _staff(request: web.Request) -> Principal | None:
    """The signed-in staff member looking at the page, if any."""
    session_id = request.cookies.get(_SESSION_COOKIE)
    if not session_id:
        return None
    svc = services_of(request.app)
    try:
        principal = await svc.auth.from_session(session_id, svc.now())
    except Exception:  # noqa: BLE001 - a broken session must never break the page
        return None
    return principal if principal is not None and principal.kind == "staff" else None


async def room_page(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    if not _ROOM_ID(room_id):
        raise web.HTTPNotFound()
    staff = await _staff(request)
    response = render(request, "room.html", offered=i18n.CITIZEN_LANGUAGES, room_id=room_id,
                      csrf_token=staff.csrf if staff else None, staff_role=staff.role if staff else None)
    # The shell holds nothing secret, but a shared computer's back button should not
    # show a consultation's page from cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def setup_roompage(app: web.Application) -> None:
    app.router.add_get("/room/{room_id}", room_page)
