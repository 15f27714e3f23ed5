"""The citizen's join page and its two page-level JSON endpoints.

The join link is ``/join/{room}#<token>``: the token lives in the fragment, so it
never reaches a server log or a Referer header. The page's script reads it,
removes it from the address bar, and talks to these endpoints with the token in
a POST body:

* ``GET  /join/{room_id}``          the page (German first, citizen languages).
* ``POST /join/{room_id}/check``    is this token good for this room right now?
  Decodes and checks it **without spending it** (a single-use link still works
  for the real join afterwards) and answers with the room, role and name.
* ``POST /join/{room_id}/consent``  records the consent to the data notice for
  this appointment: time, token id (jti) and notice version, no content, no name.
* ``POST /join/{room_id}/consent/withdraw``  withdraws it (the citizen answered
  "No" after having agreed): the rows stay, stamped ``withdrawn_at``.

The check answers whether this invite already carries a standing consent and to
which notice version: the page asks again only when there is none, or when it
was given to an older version (``notice.py`` derives the version from the text).
* ``GET  /j/{code}``                the same page for a short link (``/j/K7QM-3XWD-9FHT``,
  also ``/J/…``: upper case makes the QR code sparse); its script asks
* ``POST /j/resolve``               ``{"code"}`` → ``{"room", "token"}``, the invite the code
  stands for (``short_link_unknown``, ``token_revoked``), then goes on as for a long link.

These are page endpoints, not part of the public ``/api/v1`` (OpenAPI). Errors use
the common shape ``{"error": {"code", "message"}}``; a ``token_not_yet_valid``
refusal also carries ``not_before`` and ``scheduled_start`` so the page can say
when to come back.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import jwt
from aiohttp import web

from .. import i18n
from ..api.handlers import iso
from ..core.errors import RoomServerError, TokenError
from ..core.tokens import MAX_TOKEN_CHARS, Claims, check_admission
from ..core.turn import ice_servers, mint_credentials
from ..services import Services, services_of
from ..store import Consent, Tx
from .notice import build as build_notice
from .render import render

ROOM_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_ROOM_ID = re.compile(ROOM_ID_PATTERN)

# Page endpoints take small bodies: a token (<= 4096 chars), an SDP offer (<= 32 KiB).
MAX_SDP_CHARS = 32768


# --------------------------------------------------------------------------- body


async def read_object(request: web.Request, *, required: dict[str, type], optional: dict[str, type] | None = None,
                      max_bytes: int = 65536) -> dict[str, Any]:
    """The request body as a JSON object with exactly these fields of these types."""
    if request.content_type != "application/json":
        raise RoomServerError("unsupported_media_type", "The request body must be JSON (application/json).", 415)
    if request.content_length is not None and request.content_length > max_bytes:
        raise RoomServerError("payload_too_large", "The request body is too large.", 413)
    raw = await request.read()  # bounded by the app's client_max_size as well
    if len(raw) > max_bytes:
        raise RoomServerError("payload_too_large", "The request body is too large.", 413)
    try:
        body = json.loads(raw, parse_constant=_no_constant)
        json.dumps(body, ensure_ascii=False).encode("utf-8")  # lone surrogates are no text
    except (ValueError, RecursionError, UnicodeError):
        raise RoomServerError("bad_json", "The request body is not valid JSON.", 400) from None
    if not isinstance(body, dict):
        raise RoomServerError("invalid_request", "The request body must be a JSON object.", 422)
    allowed = {**required, **(optional or {})}
    for name in body:
        if name not in allowed:
            raise RoomServerError("invalid_request", f"Unknown field in body: {name[:64]!r}.", 422)
    for name, kind in allowed.items():
        if name not in body:
            if name in required:
                raise RoomServerError("invalid_request", f"Missing field in body: {name}.", 422)
            continue
        value = body[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RoomServerError("invalid_request", f"Invalid value for {name}: must be a {kind.__name__}.", 422)
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# --------------------------------------------------------------------------- tokens


async def admit(svc: Services, token: str, room_id: str | None) -> Claims:
    """The claims of a token usable now (for ``room_id``, or for its own room when None).

    Nothing is spent: this is the same check the WebSocket ``join`` makes, minus
    spending the jti and the room's occupancy.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("token_malformed", "The token is not a valid join token.")
    now = svc.now()
    try:
        claims = svc.codec.decode(token, now)
    except TokenError as exc:
        if exc.code == "token_not_yet_valid":
            await _refuse_early(svc, token, room_id, exc)
        raise
    await _check(svc, claims, room_id)
    return claims


async def _check(svc: Services, claims: Claims, room_id: str | None) -> None:
    row, record = await svc.store.read(lambda tx: (tx.rooms.get(claims.room), tx.tokens.get(claims.jti)))
    check_admission(claims, room_id=room_id, record=record, room_state=row.state if row else None)


class NotYetValid(TokenError):
    """``token_not_yet_valid`` with the times the page needs to say when to come back."""

    def __init__(self, not_before: int, scheduled_start: int | None) -> None:
        super().__init__("token_not_yet_valid", "The link is not valid yet; the consultation has not started.")
        self.not_before = not_before
        self.scheduled_start = scheduled_start

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = super().to_dict()
        body["error"]["not_before"] = iso(self.not_before)
        body["error"]["scheduled_start"] = iso(self.scheduled_start)
        return body


async def _refuse_early(svc: Services, token: str, room_id: str | None, original: TokenError) -> None:
    """A signed token that is not valid yet: refuse it with its start, unless it is dead anyway.

    ``decode`` checks key, algorithm, signature, issuer and audience before the
    times, so reaching ``token_not_yet_valid`` means the token is ours; decoding
    it again at its own ``nbf`` gives its verified claims.
    """
    try:
        nbf = jwt.decode(token, options={"verify_signature": False}).get("nbf")
        if isinstance(nbf, bool) or not isinstance(nbf, int):
            raise original
        claims = svc.codec.decode(token, nbf + svc.codec.leeway)
    except (jwt.PyJWTError, TokenError):
        raise original from None
    # A cancelled appointment or a withdrawn link says so, not "come back later".
    await _check(svc, claims, room_id)
    row = await svc.store.rooms.get(claims.room)
    raise NotYetValid(claims.nbf, row.scheduled_start if row else None)


def ice_servers_for(svc: Services) -> list[dict[str, Any]]:
    """ICE servers for a join-page peer connection (the echo check), as signalling hands them out.

    TURN credentials are minted for a throwaway identity: they open nothing but
    the TURN server, for ``ice.turn_credential_lifetime_seconds``.
    """
    s = svc.settings
    creds = None
    if s.ice.turn_urls and s.turn_secret:
        creds = mint_credentials(s.turn_secret, "echo-" + secrets.token_urlsafe(9),
                                 s.ice.turn_credential_lifetime_seconds, time.time())
    return ice_servers(s.ice.stun_urls, s.ice.turn_urls, creds)


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    if not _ROOM_ID.fullmatch(room_id):  # the route pattern already ensures it
        raise RoomServerError("not_found", "There is nothing at this address.", 404)
    return room_id


def _no_store(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------- handlers


def citizen_languages() -> tuple[str, ...]:
    """The citizen languages that have a catalog (German always): the picker offers only these."""
    have = set(i18n.available())
    return tuple(code for code in i18n.CITIZEN_LANGUAGES if code == i18n.DEFAULT or code in have)


async def join_page(request: web.Request) -> web.Response:
    room_id = _room_id(request)
    response = render(request, "join.html", offered=citizen_languages(), room_id=room_id,
                      notice=build_notice(services_of(request.app).settings))
    return _no_store(response)  # type: ignore[return-value]


def consent_json(consent: Consent | None, current: str) -> dict[str, Any] | None:
    """A standing consent as the page needs it (None: none, or withdrawn)."""
    if consent is None or consent.withdrawn_at is not None:
        return None
    return {"notice": consent.notice, "given_at": iso(consent.given_at), "current": consent.notice == current}


async def short_page(request: web.Request) -> web.Response:
    """A short link: the join page, which resolves the code from its own address (never rendered into it)."""
    response = render(request, "join.html", offered=citizen_languages(), room_id="",
                      notice=build_notice(services_of(request.app).settings))
    return _no_store(response)  # type: ignore[return-value]


async def resolve_short(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    body = await read_object(request, required={"code": str}, max_bytes=512)
    room_id, token = await svc.consultations.resolve_short(body["code"], svc.now())
    return _no_store(web.json_response({"room": room_id, "token": token}))  # type: ignore[return-value]


async def check(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    room_id = _room_id(request)
    body = await read_object(request, required={"token": str}, max_bytes=8192)
    claims = await admit(svc, body["token"], room_id)
    row = await svc.store.rooms.get(room_id)
    assert row is not None  # admit() refused otherwise
    version = build_notice(svc.settings).version
    return _no_store(web.json_response({  # type: ignore[return-value]
        "room": {"id": row.id, "title": row.title, "scheduled_start": iso(row.scheduled_start),
                 "scheduled_end": iso(row.scheduled_end)},
        "role": claims.role.value,
        "name": claims.name,
        "expires_at": iso(claims.exp),
        "notice": version,
        "consent": consent_json(await svc.store.consents.latest(claims.jti), version),
        "ice_servers": ice_servers_for(svc),
    }))


async def consent(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    room_id = _room_id(request)
    body = await read_object(request, required={"token": str, "notice": str}, max_bytes=8192)
    if body["notice"] != build_notice(svc.settings).version:
        raise RoomServerError("unknown_notice", "The notice version is not the current one; reload the page.", 422)
    claims = await admit(svc, body["token"], room_id)
    now = svc.now()

    def unit(tx: Tx) -> None:
        tx.consents.record(room_id, claims.jti, body["notice"], now)
        tx.audit.append(at=now, actor=claims.sub, actor_role=claims.role.value, action="consent.given",
                        room_id=room_id, subject=claims.jti, detail={"notice": body["notice"]})
    await svc.store.write(unit)
    return _no_store(web.json_response(  # type: ignore[return-value]
        {"notice": body["notice"], "given_at": iso(now)}, status=201))


async def withdraw(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    room_id = _room_id(request)
    body = await read_object(request, required={"token": str}, max_bytes=8192)
    claims = await admit(svc, body["token"], room_id)
    now = svc.now()

    def unit(tx: Tx) -> int:
        withdrawn = tx.consents.withdraw(claims.jti, now)
        if withdrawn:
            tx.audit.append(at=now, actor=claims.sub, actor_role=claims.role.value, action="consent.withdrawn",
                            room_id=room_id, subject=claims.jti)
        return withdrawn
    withdrawn = await svc.store.write(unit)
    return _no_store(web.json_response(  # type: ignore[return-value]
        {"withdrawn": withdrawn, "at": iso(now)}))


def setup_joinpage(app: web.Application) -> None:
    r = app.router
    r.add_get(f"/join/{{room_id:{ROOM_ID_PATTERN}}}", join_page)
    r.add_post(f"/join/{{room_id:{ROOM_ID_PATTERN}}}/check", check)
    r.add_post(f"/join/{{room_id:{ROOM_ID_PATTERN}}}/consent", consent)
    r.add_post(f"/join/{{room_id:{ROOM_ID_PATTERN}}}/consent/withdraw", withdraw)
    for prefix in ("/j", "/J"):
        r.add_get(prefix + "/{code:[0-9A-Za-z -]{1,40}}", short_page)
    r.add_post("/j/resolve", resolve_short)
