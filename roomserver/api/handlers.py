"""The REST API under ``/api/v1``: rooms, invites, staff sessions; and health checks.

Handlers only translate HTTP to calls on ``Consultations``/``Authenticator``
and back; rules live there. Bodies are validated against the OpenAPI
document, so the document and the handlers cannot disagree.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from ..core.errors import RoomServerError
from ..core.roles import ApiAction, Role, api_may
from ..domain.auth import Principal
from ..domain.consultations import Consultations, check_owner
from ..services import Services, services_of
from ..store import Account, Department, RoomRow, Tx
from . import openapi

SESSION_COOKIE = "rs_session"
DEVICE_COOKIE = "rs_device"  # a browser that signed in before: its failures count against itself only
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def iso(ts: int | None) -> str | None:
    """Unix seconds as an RFC 3339 UTC timestamp."""
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def parse_time(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RoomServerError("invalid_request", f"Invalid value for {field}: not an RFC 3339 date-time.",
                              422) from None
    if parsed.tzinfo is None:
        raise RoomServerError("invalid_request", f"Invalid value for {field}: the time zone is missing.", 422)
    try:
        ts = int(parsed.timestamp())
        # Must also be writable back as a UTC date-time: 9999-12-31T23:00:00-05:00 is in the year 10000.
        datetime.fromtimestamp(ts, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise RoomServerError("invalid_request", f"Invalid value for {field}: out of range.", 422) from None
    return ts


def room_json(room: RoomRow) -> dict[str, Any]:
    return {
        "id": room.id, "title": room.title, "scheduled_start": iso(room.scheduled_start),
        "scheduled_end": iso(room.scheduled_end), "waiting_room": room.waiting_room,
        "max_participants": room.max_participants, "state": room.state, "created_by": room.created_by,
        "created_at": iso(room.created_at), "ended_at": iso(room.ended_at), "ended_reason": room.ended_reason,
        "join_path": f"/join/{room.id}",
    }


async def read_json(request: web.Request, schema: str, *, optional: bool = False) -> dict[str, Any]:
    """The request body as a validated JSON object."""
    if optional and not request.body_exists:
        return {}
    if request.content_type != "application/json":
        raise RoomServerError("unsupported_media_type", "The request body must be JSON (application/json).", 415)
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise RoomServerError("bad_json", "The request body is not valid JSON.", 400) from None
    try:
        # A lone surrogate ("\ud800") is legal JSON syntax but no text: nothing downstream can store it.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise RoomServerError("bad_json", "The request body contains text that is not valid Unicode.",
                              400) from None
    return openapi.validate(schema, body)


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259), though Python's parser accepts them."""
    raise ValueError(f"{name} is not a JSON value")


def _opt_int(value: Any) -> int | None:
    """A schema-checked integer as an int: JSON Schema also counts 4.0 as an integer."""
    return None if value is None else int(value)


async def authenticate(request: web.Request) -> Principal:
    """The caller, from a Bearer API key or a staff session cookie (with CSRF check)."""
    svc = services_of(request.app)
    header = request.headers.get("Authorization")
    if header is not None:  # present, even empty: judged by it alone, never by a cookie beside it
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise RoomServerError("unauthenticated", "Use 'Authorization: Bearer <API key>'.", 401)
        principal = svc.auth.from_api_key(value.strip())
        if principal is None:
            raise RoomServerError("bad_api_key", "The API key is not valid.", 401)
        return principal
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        principal = await svc.auth.from_session(session_id, svc.now())
        if principal is None:
            raise RoomServerError("session_expired", "The session has expired; sign in again.", 401)
        sent = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogateescape")
        if request.method not in _SAFE_METHODS and not hmac.compare_digest(sent, (principal.csrf or "").encode()):
            raise RoomServerError("csrf_failed", "The request lacks a valid X-CSRF-Token header.", 403)
        return principal
    raise RoomServerError("unauthenticated", "Sign in or send an API key.", 401)


def require(principal: Principal, action: ApiAction) -> None:
    if not api_may(principal.role, action):
        raise RoomServerError("forbidden", f"The role {principal.role} may not do this.", 403)


# health ---------------------------------------------------------------------

async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    problems = []
    if not await svc.store.ping():
        problems.append("database")
    if not svc.live.healthy:
        problems.append("cluster state (Redis)")
    if svc.draining:
        problems.append("shutting down")
    try:
        svc.keyset.active
    except Exception:  # noqa: BLE001 - any failure means not ready
        problems.append("signing keys")
    if problems:
        raise RoomServerError("not_ready", "Not ready: " + ", ".join(problems) + ".", 503)
    return web.json_response({"status": "ready"})


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


# sessions -------------------------------------------------------------------

async def _session_json(svc: Services, principal: Principal) -> dict[str, Any]:
    account = await svc.store.directory.account(principal.id)
    return {"account": {"id": principal.id, "username": account.username if account else "",
                        "display_name": principal.display_name, "role": principal.role,
                        "department": principal.department_id},
            "csrf_token": principal.csrf}


async def sign_in(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    body = await read_json(request, "LoginRequest")
    now = svc.now()
    signed = await svc.auth.sign_in(body["username"], body["password"], now, address=request.remote or "",
                                    device=request.cookies.get(DEVICE_COOKIE, ""))
    response = web.json_response(await _session_json(svc, signed.principal))
    response.set_cookie(SESSION_COOKIE, signed.session_id, max_age=svc.settings.auth.session_lifetime_seconds,
                        httponly=True, samesite="Strict", secure=svc.cookie_secure, path="/")
    set_device_cookie(response, svc, signed.device)
    return response


def set_device_cookie(response: web.StreamResponse, svc: Services, device: str | None) -> None:
    """The device cookie a good sign-in gives a browser that had none (90 days, like the store keeps it)."""
    if device is not None:
        response.set_cookie(DEVICE_COOKIE, device, max_age=90 * 86400, httponly=True, samesite="Strict",
                            secure=svc.cookie_secure, path="/")


async def who_am_i(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    if principal.kind != "staff":
        raise RoomServerError("forbidden", "An API key has no session.", 403)
    return web.json_response(await _session_json(services_of(request.app), principal))


async def sign_out(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    if principal.kind != "staff":
        raise RoomServerError("forbidden", "An API key has no session.", 403)
    await svc.auth.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    await svc.store.audit.append(at=svc.now(), actor=principal.id, actor_role=principal.role, action="auth.signed_out")
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# rooms ----------------------------------------------------------------------

def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RoomServerError("bad_query", f"The query parameter {name} must be an integer.", 400) from None
    if not lo <= value <= hi:
        raise RoomServerError("bad_query", f"The query parameter {name} must be from {lo} to {hi}.", 400)
    return value


async def list_rooms(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.ROOM_READ)
    state = request.query.get("state")
    if state is not None and state not in ("open", "live", "ended"):
        raise RoomServerError("bad_query", "The query parameter state must be open, live or ended.", 400)
    limit = _int_query(request, "limit", 100, 1, 500)
    offset = _int_query(request, "offset", 0, 0, 1_000_000)
    created_by = principal.id if principal.role == "counsellor" else None
    rooms = await svc.store.rooms.list(state=state, created_by=created_by, limit=limit, offset=offset)
    return web.json_response({"rooms": [room_json(r) for r in rooms]})


async def create_room(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.ROOM_CREATE)
    body = await read_json(request, "RoomCreate")
    room = await svc.consultations.create(
        principal, title=body["title"], scheduled_start=parse_time(body.get("scheduled_start"), "scheduled_start"),
        scheduled_end=parse_time(body.get("scheduled_end"), "scheduled_end"),
        waiting_room=body.get("waiting_room"), max_participants=_opt_int(body.get("max_participants")),
        now=svc.now())
    return web.json_response(room_json(room), status=201, headers={"Location": f"/api/v1/rooms/{room.id}"})


async def reschedule_room(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.ROOM_CREATE)
    body = await read_json(request, "RoomUpdate")
    room = await _owned_room(request, principal, svc.consultations)
    start = parse_time(body["scheduled_start"], "scheduled_start")
    assert start is not None
    moved = await svc.consultations.reschedule(principal, room.id, scheduled_start=start,
                                               scheduled_end=parse_time(body.get("scheduled_end"), "scheduled_end"),
                                               now=svc.now())
    return web.json_response(room_json(moved))


async def _owned_room(request: web.Request, principal: Principal, consultations: Consultations) -> RoomRow:
    room = await consultations.get(request.match_info["room_id"])
    check_owner(principal, room)
    return room


async def get_room(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.ROOM_READ)
    return web.json_response(room_json(await _owned_room(request, principal, svc.consultations)))


async def end_room(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.ROOM_END)
    body = await read_json(request, "EndRequest", optional=True)
    room = await _owned_room(request, principal, svc.consultations)
    reason = body.get("reason") or ("operator" if principal.role == "operator" else "api")
    ended = await svc.consultations.end(principal, room.id, reason=reason, now=svc.now())
    return web.json_response(room_json(ended))


# invites --------------------------------------------------------------------

async def create_invite(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.INVITE_ISSUE)
    body = await read_json(request, "InviteCreate")
    room = await _owned_room(request, principal, svc.consultations)
    role = Role(body["role"])
    invite = await svc.consultations.invite(principal, room.id, role=role, name=body["name"],
                                      lifetime=_opt_int(body.get("lifetime_seconds")),
                                      single_use=body.get("single_use"), now=svc.now(),
                                      short=role is not Role.COUNSELLOR,  # links people send on; not the host's own
                                      email=body.get("email"), language=body.get("language"))
    return web.json_response({
        "jti": invite.jti, "token": invite.token, "room_id": invite.room_id, "role": invite.role.value,
        "not_before": iso(invite.not_before), "expires_at": iso(invite.expires_at),
        "single_use": invite.single_use, "join_url": invite.join_url, "short_url": invite.short_url,
    }, status=201)


async def list_invites(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.INVITE_READ)
    room = await _owned_room(request, principal, svc.consultations)
    invites = [{"jti": r.jti, "role": r.role, "label": label, "not_before": iso(r.not_before),
                "expires_at": iso(r.expires_at), "single_use": r.single_use, "issued_at": iso(issued_at),
                "used_at": iso(r.used_at), "revoked_at": iso(r.revoked_at)}
               for r, label, _issuer, issued_at in await svc.store.tokens.for_room(room.id)]
    return web.json_response({"invites": invites})


async def revoke_invite(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.INVITE_REVOKE)
    room = await _owned_room(request, principal, svc.consultations)
    await svc.consultations.revoke(principal, room.id, request.match_info["jti"], svc.now())
    return web.Response(status=204)


# direct links -----------------------------------------------------------------

DIRECT_LIFETIME = 3600


async def create_direct_invite(request: web.Request) -> web.Response:
    """A single-use link into the room for one named expert or interpreter, also pushed to their desk."""
    from ..ws.desks import (
        DESKS_KEY,  # the desk edge imports this module (through pageauth)
    )

    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.INVITE_DIRECT)
    body = await read_json(request, "DirectInviteCreate")
    room = await _owned_room(request, principal, svc.consultations)
    account = await svc.store.directory.account(body["account_id"])
    if account is None:
        raise RoomServerError("unknown_account", "There is no such staff account.", 422)
    if account.role not in ("expert", "interpreter"):
        raise RoomServerError("not_an_expert", "Direct links go to experts and interpreters only.", 422)
    if account.disabled:
        raise RoomServerError("account_disabled", "This account is disabled.", 409)
    now = svc.now()
    lifetime = _opt_int(body.get("lifetime_seconds")) or DIRECT_LIFETIME
    invite = await svc.consultations.invite(principal, room.id, role=Role(account.role), name=account.display_name[:64],
                                      lifetime=lifetime, single_use=True, now=now, identity=account.id,
                                      dept=account.department_id, label=f"direct: {account.display_name[:48]}")
    path = f"/room/{room.id}#{invite.token}"
    pushed = await request.app[DESKS_KEY].push_direct(account.id, {
        "type": "direct-invite", "room_title": room.title, "caller_name": principal.display_name, "url": path,
        "expires_at": invite.expires_at})
    await svc.store.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                                 action="invite.direct_sent", room_id=room.id, subject=invite.jti,
                           detail={"account": account.id, "pushed": pushed})
    return web.json_response({"jti": invite.jti, "room_id": room.id, "account_id": account.id,
                              "join_url": f"{svc.settings.base_url}{path}", "expires_at": iso(invite.expires_at),
                              "pushed": pushed}, status=201)


# directory ------------------------------------------------------------------

def department_json(dept: Any) -> dict[str, Any]:
    return {"id": dept.id, "name": dept.name, "kind": dept.kind}


def account_json(account: Any, languages: Any) -> dict[str, Any]:
    """An account as the API shows it: never the password hash, the lock-out counters or the sessions."""
    return {"id": account.id, "username": account.username, "display_name": account.display_name,
            "role": account.role, "department": account.department_id,
            "languages": sorted(languages), "disabled": account.disabled}


def _accounts_with_languages(tx: Tx, accounts: list[Account]) -> list[dict[str, Any]]:
    return [account_json(a, tx.directory.languages(a.id)) for a in accounts]


async def _account_json(svc: Services, account: Account) -> dict[str, Any]:
    return account_json(account, await svc.store.directory.languages(account.id))


def _printable(value: str, field: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit or not value.isprintable():
        raise RoomServerError("invalid_request", f"Invalid value for {field}: 1 to {limit} printable characters.",
                              422)
    return value


async def _check_assignment(svc: Services, role: str, department: str | None, languages: list[str] | None) -> None:
    """The rules JSON Schema cannot state: experts belong to an existing department, only interpreters have
    languages."""
    if department is not None and await svc.store.directory.department(department) is None:
        raise RoomServerError("unknown_department", "There is no such department.", 422)
    if role == "expert" and department is None:
        raise RoomServerError("department_required", "An expert must belong to a department.", 422)
    if languages and role != "interpreter":
        raise RoomServerError("languages_for_interpreters", "Only interpreters have languages.", 422)


async def list_departments(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    require(await authenticate(request), ApiAction.DIRECTORY_READ)
    return web.json_response({"departments": [department_json(d) for d in await svc.store.directory.departments()]})


async def create_department(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.DIRECTORY_MANAGE)
    body = await read_json(request, "DepartmentCreate")
    name = _printable(body["name"], "name", 100)
    if await svc.store.directory.department(body["id"]) is not None:
        raise RoomServerError("department_exists", "A department with this id exists already.", 409)
    now = svc.now()

    def unit(tx: Tx) -> Department:
        dept = tx.directory.add_department(body["id"], name, body["kind"], now)
        tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                        action="directory.department_created", subject=dept.id, detail={"kind": dept.kind})
        return dept
    dept = await svc.store.write(unit)
    return web.json_response(department_json(dept), status=201)


async def list_accounts(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    require(await authenticate(request), ApiAction.DIRECTORY_MANAGE)
    accounts = await svc.store.read(lambda tx: _accounts_with_languages(tx, tx.directory.accounts()))
    return web.json_response({"accounts": accounts})


async def create_account(request: web.Request) -> web.Response:
    from ..domain.auth import generate_password, hash_password

    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.DIRECTORY_MANAGE)
    body = await read_json(request, "AccountCreate")
    display_name = _printable(body["display_name"], "display_name", 64)
    role, department, languages = body["role"], body.get("department"), body.get("languages")
    await _check_assignment(svc, role, department, languages)
    if await svc.store.directory.by_username(body["username"]) is not None:
        raise RoomServerError("username_taken", "This username is taken.", 409)
    password = generate_password()
    now = svc.now()
    password_hash = await asyncio.to_thread(hash_password, password)  # argon2: never on the event loop

    def unit(tx: Tx) -> Account:
        account = tx.directory.add_account(username=body["username"], display_name=display_name, role=role,
                                           department_id=department, password_hash=password_hash, now=now)
        if languages:
            tx.directory.set_languages(account.id, set(languages))
        tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                        action="directory.account_created", subject=account.id,
                        detail={"role": role, "department": department, "languages": sorted(languages or [])})
        return account
    account = await svc.store.write(unit)
    return web.json_response({"account": await _account_json(svc, account), "password": password}, status=201,
                             headers={"Location": f"/api/v1/accounts/{account.id}"})


async def update_account(request: web.Request) -> web.Response:
    from ..ws.desks import (
        DESKS_KEY,  # the desk edge imports this module (through pageauth)
    )

    svc = services_of(request.app)
    principal = await authenticate(request)
    require(principal, ApiAction.DIRECTORY_MANAGE)
    body = await read_json(request, "AccountUpdate")
    account_id = request.match_info["account_id"]
    account = await svc.store.directory.account(account_id)
    if account is None:
        raise RoomServerError("not_found", "The account was not found.", 404)
    display_name = _printable(body["display_name"], "display_name", 64) if "display_name" in body else None
    department = body["department"] if "department" in body else account.department_id
    languages = body.get("languages")
    await _check_assignment(svc, account.role, department, languages)
    disabled = body.get("disabled")
    if disabled and account.id == principal.id:
        raise RoomServerError("cannot_disable_self", "You cannot disable your own account.", 409)
    signed_out = bool(disabled and not account.disabled)
    now = svc.now()

    def unit(tx: Tx) -> Account | None:
        updated = tx.directory.update_account(account.id, display_name=display_name, department_id=department,
                                              set_department="department" in body, disabled=disabled)
        if languages is not None:
            tx.directory.set_languages(account.id, set(languages))
        if signed_out:
            tx.sessions.delete_for_account(account.id)  # signed out everywhere, desks included
        tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                        action="directory.account_updated", subject=account.id,
                        detail={"fields": sorted(body), **({"disabled": disabled} if disabled is not None else {})})
        return updated
    updated = await svc.store.write(unit)
    assert updated is not None
    if signed_out:
        await request.app[DESKS_KEY].close_account(account.id)
    return web.json_response(await _account_json(svc, updated))


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/api/v1/openapi.json", openapi_document)
    r.add_post("/api/v1/session", sign_in)
    r.add_get("/api/v1/session", who_am_i)
    r.add_delete("/api/v1/session", sign_out)
    r.add_get("/api/v1/rooms", list_rooms)
    r.add_post("/api/v1/rooms", create_room)
    r.add_get("/api/v1/rooms/{room_id}", get_room)
    r.add_patch("/api/v1/rooms/{room_id}", reschedule_room)
    r.add_post("/api/v1/rooms/{room_id}/end", end_room)
    r.add_get("/api/v1/rooms/{room_id}/invites", list_invites)
    r.add_post("/api/v1/rooms/{room_id}/invites", create_invite)
    r.add_delete("/api/v1/rooms/{room_id}/invites/{jti}", revoke_invite)
    r.add_post("/api/v1/rooms/{room_id}/direct-invites", create_direct_invite)
    r.add_get("/api/v1/departments", list_departments)
    r.add_post("/api/v1/departments", create_department)
    r.add_get("/api/v1/accounts", list_accounts)
    r.add_post("/api/v1/accounts", create_account)
    r.add_patch("/api/v1/accounts/{account_id}", update_account)
