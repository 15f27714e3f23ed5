"""The room API over real HTTP: a real aiohttp server on loopback, a real SQLite store.

Every response any test here receives goes through ``call``, which also checks
what must hold for every response: the strict security headers, no stack trace
in the body, ``Cache-Control: no-store`` on the API, and for errors exactly the
common shape ``{"error": {"code": str, "message": str}}``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from roomserver.domain.auth import hash_password
from roomserver.services import Services

ROOMS = "/api/v1/rooms"
SESSION = "/api/v1/session"
ROOM_ID_OF_NOBODY = "r_doesNotExist1"


# helpers ----------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: Any
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


def check_invariants(reply: Reply, path: str) -> None:
    """What every response of the server must satisfy."""
    assert "Traceback" not in reply.text
    csp = reply.headers.get("Content-Security-Policy", "")
    assert "default-src" in csp and "'unsafe-inline'" not in csp, csp
    assert reply.headers.get("X-Content-Type-Options") == "nosniff"
    assert reply.headers.get("Referrer-Policy") == "no-referrer"
    if path.startswith("/api/") or path in ("/healthz", "/readyz"):
        assert "no-store" in reply.headers.get("Cache-Control", "")
    if reply.status >= 400:
        assert reply.headers.get("Content-Type", "").startswith("application/json")
        body = reply.json
        assert isinstance(body, dict) and list(body) == ["error"], body
        assert isinstance(body["error"], dict) and sorted(body["error"]) == ["code", "message"], body
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


async def call(http: aiohttp.ClientSession, method: str, path: str, expect: int, **kwargs: Any) -> Reply:
    async with http.request(method, path, **kwargs) as resp:
        reply = Reply(resp.status, resp.headers, await resp.text())
    assert reply.status == expect, f"{method} {path}: {reply.status} {reply.text}"
    check_invariants(reply, path)
    return reply


def error_code(reply: Reply) -> str:
    return reply.json["error"]["code"]


async def refused(http: aiohttp.ClientSession, method: str, path: str, status: int, code: str,
                  **kwargs: Any) -> Reply:
    reply = await call(http, method, path, status, **kwargs)
    assert error_code(reply) == code, reply.text
    return reply


def rfc3339(ts: datetime) -> str:
    return ts.isoformat()


def parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


@dataclass
class Staff:
    id: str
    username: str
    password: str
    display_name: str
    role: str


async def add_staff(services: Services, role: str, username: str | None = None,
                    department_id: str | None = None) -> Staff:
    username = username or f"{role}-{len(await services.store.directory.accounts())}"
    password = f"pw-{username}-long-enough"
    display_name = f"{role.title()} Displayname{len(username)}"
    account = await services.store.directory.add_account(
        username=username, display_name=display_name, role=role, department_id=department_id,
        password_hash=hash_password(password), now=services.now())
    return Staff(account.id, username, password, display_name, role)


@dataclass
class SignedIn:
    session_id: str
    csrf: str
    body: dict[str, Any]
    set_cookie: str

    def headers(self, *, csrf: bool = True) -> dict[str, str]:
        headers = {"Cookie": f"rs_session={self.session_id}"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return headers


async def sign_in(http: aiohttp.ClientSession, staff: Staff) -> SignedIn:
    async with http.post(SESSION, json={"username": staff.username, "password": staff.password}) as resp:
        reply = Reply(resp.status, resp.headers, await resp.text())
        assert resp.status == 200, reply.text
        session_id = resp.cookies["rs_session"].value
        set_cookie = resp.headers["Set-Cookie"]
    check_invariants(reply, SESSION)
    return SignedIn(session_id, reply.json["csrf_token"], reply.json, set_cookie)


async def create_room(http: aiohttp.ClientSession, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("title", "Beratung")
    return (await call(http, "POST", ROOMS, 201, json=body, headers=headers)).json


async def invite(http: aiohttp.ClientSession, headers: dict[str, str], room_id: str, role: str,
                 name: str = "Person", **body: Any) -> dict[str, Any]:
    return (await call(http, "POST", f"{ROOMS}/{room_id}/invites", 201, json={"role": role, "name": name, **body},
                       headers=headers)).json


def in_hours(hours: float) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=hours)


async def raw_request(server: TestServer, request: bytes) -> tuple[int, str]:
    """Bytes on the wire, for header values no HTTP client library will send."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode("utf-8", "replace")


# health and the document ------------------------------------------------------

async def test_healthz_answers_without_credentials(http: aiohttp.ClientSession) -> None:
    reply = await call(http, "GET", "/healthz", 200)
    assert reply.json == {"status": "ok"}


async def test_readyz_is_ready_with_a_database_and_keys(http: aiohttp.ClientSession) -> None:
    reply = await call(http, "GET", "/readyz", 200)
    assert reply.json == {"status": "ready"}


async def test_readyz_is_not_ready_without_a_database(http: aiohttp.ClientSession, services: Services) -> None:
    services.store.close()
    reply = await refused(http, "GET", "/readyz", 503, "not_ready")
    assert "database" in reply.json["error"]["message"]
    assert (await call(http, "GET", "/healthz", 200)).json == {"status": "ok"}


async def test_openapi_document_is_served(http: aiohttp.ClientSession) -> None:
    reply = await call(http, "GET", "/api/v1/openapi.json", 200)
    assert reply.headers["Content-Type"].startswith("application/json")
    doc = reply.json
    assert doc["openapi"].startswith("3.")
    assert {"/api/v1/rooms", "/api/v1/session", "/api/v1/rooms/{room_id}/invites/{jti}"} <= set(doc["paths"])


# sessions ---------------------------------------------------------------------

async def test_sign_in_sets_a_strict_http_only_cookie_and_returns_the_account(
        http: aiohttp.ClientSession, services: Services) -> None:
    staff = await add_staff(services, "counsellor", "clara")
    signed = await sign_in(http, staff)
    assert signed.body["account"] == {"id": staff.id, "username": "clara", "display_name": staff.display_name,
                                      "role": "counsellor", "department": None}
    assert signed.csrf and signed.csrf != signed.session_id
    flags = [part.strip().lower() for part in signed.set_cookie.split(";")]
    assert flags[0].startswith("rs_session=")
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/" in flags
    assert f"max-age={services.settings.auth.session_lifetime_seconds}" in flags
    assert "secure" not in flags  # plain http on loopback; "auto" sets it behind https


async def test_get_session_returns_the_signed_in_account(http: aiohttp.ClientSession, services: Services) -> None:
    staff = await add_staff(services, "operator", "olga")
    signed = await sign_in(http, staff)
    reply = await call(http, "GET", SESSION, 200, headers=signed.headers(csrf=False))
    assert reply.json == signed.body


async def test_get_session_with_an_api_key_is_refused(http: aiohttp.ClientSession,
                                                      api_headers: dict[str, str]) -> None:
    await refused(http, "GET", SESSION, 403, "forbidden", headers=api_headers)
    await refused(http, "DELETE", SESSION, 403, "forbidden", headers=api_headers)


async def test_sign_out_ends_the_session(http: aiohttp.ClientSession, services: Services) -> None:
    staff = await add_staff(services, "counsellor", "clara")
    signed = await sign_in(http, staff)
    async with http.delete(SESSION, headers=signed.headers()) as resp:
        reply = Reply(resp.status, resp.headers, await resp.text())
        cleared = resp.headers.get("Set-Cookie", "")
    assert reply.status == 204 and reply.text == ""
    check_invariants(reply, SESSION)
    assert cleared.startswith("rs_session=") and "max-age=0" in cleared.lower()
    await refused(http, "GET", SESSION, 401, "session_expired", headers=signed.headers())
    await refused(http, "GET", ROOMS, 401, "session_expired", headers=signed.headers())


async def test_sign_out_needs_the_csrf_token(http: aiohttp.ClientSession, services: Services) -> None:
    signed = await sign_in(http, await add_staff(services, "counsellor", "clara"))
    await refused(http, "DELETE", SESSION, 403, "csrf_failed", headers=signed.headers(csrf=False))
    await call(http, "GET", SESSION, 200, headers=signed.headers(csrf=False))


async def test_wrong_password_and_unknown_user_are_the_same_refusal(http: aiohttp.ClientSession,
                                                                   services: Services) -> None:
    await add_staff(services, "counsellor", "clara")
    wrong = await refused(http, "POST", SESSION, 401, "login_failed",
                          json={"username": "clara", "password": "not-her-password"})
    unknown = await refused(http, "POST", SESSION, 401, "login_failed",
                            json={"username": "nobody", "password": "not-her-password"})
    assert wrong.json == unknown.json
    assert "Set-Cookie" not in wrong.headers


async def test_sign_in_body_is_validated(http: aiohttp.ClientSession) -> None:
    await refused(http, "POST", SESSION, 422, "invalid_request", json={"username": "clara"})
    await refused(http, "POST", SESSION, 422, "invalid_request", json={"username": "", "password": "x"})
    await refused(http, "POST", SESSION, 422, "invalid_request",
                  json={"username": "clara", "password": "x", "remember": True})
    await refused(http, "POST", SESSION, 415, "unsupported_media_type", data="username=clara&password=x",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    await refused(http, "POST", SESSION, 400, "bad_json", data=b'{"username": "\\ud800", "password": "x"}',
                  headers={"Content-Type": "application/json"})


# CSRF ---------------------------------------------------------------------------

async def test_cookie_authenticated_post_needs_the_right_csrf_token(http: aiohttp.ClientSession,
                                                                   services: Services) -> None:
    staff = await add_staff(services, "counsellor", "clara")
    signed = await sign_in(http, staff)
    await refused(http, "POST", ROOMS, 403, "csrf_failed", json={"title": "x"}, headers=signed.headers(csrf=False))
    await refused(http, "POST", ROOMS, 403, "csrf_failed", json={"title": "x"},
                  headers={**signed.headers(csrf=False), "X-CSRF-Token": signed.csrf[:-1] + ("y" if signed.csrf.endswith("x") else "x")})
    await refused(http, "POST", ROOMS, 403, "csrf_failed", json={"title": "x"},
                  headers={**signed.headers(csrf=False), "X-CSRF-Token": "ümlaut"})
    assert await services.store.rooms.list() == []
    room = await create_room(http, signed.headers(), title="Mit Token")
    assert room["created_by"] == staff.id
    # Reading needs no CSRF token.
    listed = await call(http, "GET", ROOMS, 200, headers=signed.headers(csrf=False))
    assert [r["id"] for r in listed.json["rooms"]] == [room["id"]]


async def test_a_csrf_token_belongs_to_its_session(http: aiohttp.ClientSession, services: Services) -> None:
    first = await sign_in(http, await add_staff(services, "counsellor", "clara"))
    second = await sign_in(http, await add_staff(services, "counsellor", "carl"))
    await refused(http, "POST", ROOMS, 403, "csrf_failed", json={"title": "x"},
                  headers={**first.headers(csrf=False), "X-CSRF-Token": second.csrf})


# rooms --------------------------------------------------------------------------

async def test_create_room_with_defaults(http: aiohttp.ClientSession, services: Services,
                                         api_headers: dict[str, str]) -> None:
    reply = await call(http, "POST", ROOMS, 201, json={"title": "  Beratung Frau K.  "}, headers=api_headers)
    room = reply.json
    assert reply.headers["Location"] == f"{ROOMS}/{room['id']}"
    assert room["title"] == "Beratung Frau K."
    assert room["state"] == "open"
    assert room["waiting_room"] is services.settings.rooms.waiting_room
    assert room["max_participants"] == services.settings.rooms.max_participants
    assert room["scheduled_start"] is None and room["scheduled_end"] is None
    assert room["ended_at"] is None and room["ended_reason"] is None
    assert room["created_by"] == "apikey:tests"
    assert room["join_path"] == f"/join/{room['id']}"
    assert abs(parse(room["created_at"]).timestamp() - services.now()) < 3600
    fetched = await call(http, "GET", reply.headers["Location"], 200, headers=api_headers)
    assert fetched.json == room


async def test_create_room_with_every_field(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    start = in_hours(24)
    local = timezone(timedelta(hours=2))
    room = await create_room(http, api_headers, title="Termin", scheduled_start=rfc3339(start.astimezone(local)),
                             scheduled_end=rfc3339(start + timedelta(minutes=45)), waiting_room=False,
                             max_participants=2)
    assert parse(room["scheduled_start"]) == start
    assert parse(room["scheduled_start"]).utcoffset() == timedelta(0)
    assert parse(room["scheduled_end"]) == start + timedelta(minutes=45)
    assert room["waiting_room"] is False and room["max_participants"] == 2


async def test_a_start_without_an_end_gets_the_default_duration(http: aiohttp.ClientSession, services: Services,
                                                                 api_headers: dict[str, str]) -> None:
    start = in_hours(3)
    room = await create_room(http, api_headers, scheduled_start=start.isoformat().replace("+00:00", "Z"))
    duration = timedelta(minutes=services.settings.rooms.default_duration_minutes)
    assert parse(room["scheduled_end"]) - parse(room["scheduled_start"]) == duration


async def test_integral_floats_are_stored_as_integers(http: aiohttp.ClientSession,
                                                     api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers, max_participants=4.0)
    assert room["max_participants"] == 4 and isinstance(room["max_participants"], int)
    issued = await invite(http, api_headers, room["id"], "expert", lifetime_seconds=600.0)
    claims = jwt.decode(issued["token"], options={"verify_signature": False})
    assert isinstance(claims["exp"], int) and claims["exp"] - claims["nbf"] == 600


async def test_list_rooms_a_counsellor_sees_only_their_own(http: aiohttp.ClientSession, services: Services,
                                                           api_headers: dict[str, str]) -> None:
    clara = await sign_in(http, await add_staff(services, "counsellor", "clara"))
    carl = await sign_in(http, await add_staff(services, "counsellor", "carl"))
    olga = await sign_in(http, await add_staff(services, "operator", "olga"))
    claras = {(await create_room(http, clara.headers(), title=f"Clara {n}"))["id"] for n in range(2)}
    carls = {(await create_room(http, carl.headers(), title="Carl"))["id"]}
    system = {(await create_room(http, api_headers, title="System"))["id"]}

    async def listed(headers: dict[str, str], query: str = "") -> list[str]:
        return [r["id"] for r in (await call(http, "GET", ROOMS + query, 200, headers=headers)).json["rooms"]]

    assert set(await listed(clara.headers(csrf=False))) == claras
    assert set(await listed(carl.headers(csrf=False))) == carls
    everything = claras | carls | system
    assert set(await listed(api_headers)) == everything
    assert set(await listed(olga.headers(csrf=False))) == everything
    # Paging walks the same list without gaps or repeats.
    paged = [room_id for offset in range(4) for room_id in await listed(api_headers, f"?limit=1&offset={offset}")]
    assert paged == await listed(api_headers) and len(paged) == 4
    assert await listed(api_headers, "?offset=4") == []


async def test_list_rooms_by_state(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    kept = await create_room(http, api_headers, title="Bleibt")
    ended = await create_room(http, api_headers, title="Endet")
    await call(http, "POST", f"{ROOMS}/{ended['id']}/end", 200, headers=api_headers)
    for state, expected in (("open", [kept["id"]]), ("ended", [ended["id"]]), ("live", [])):
        reply = await call(http, "GET", ROOMS, 200, params={"state": state}, headers=api_headers)
        assert [r["id"] for r in reply.json["rooms"]] == expected, state
        assert all(r["state"] == state for r in reply.json["rooms"])


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=abc", "limit=", "offset=-1", "offset=1.5",
                                   "state=closed", "state="])
async def test_list_rooms_bad_query(http: aiohttp.ClientSession, api_headers: dict[str, str], query: str) -> None:
    await refused(http, "GET", f"{ROOMS}?{query}", 400, "bad_query", headers=api_headers)


async def test_get_unknown_room_is_404(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    for room_id in (ROOM_ID_OF_NOBODY, "x" * 65, "r_%2F..", "r_%C3%A9t%C3%A9", "r_%00"):
        await refused(http, "GET", f"{ROOMS}/{room_id}", 404, "not_found", headers=api_headers)
    await refused(http, "POST", f"{ROOMS}/{ROOM_ID_OF_NOBODY}/end", 404, "not_found", headers=api_headers)
    await refused(http, "GET", f"{ROOMS}/{ROOM_ID_OF_NOBODY}/invites", 404, "not_found", headers=api_headers)
    await refused(http, "POST", f"{ROOMS}/{ROOM_ID_OF_NOBODY}/invites", 404, "not_found", headers=api_headers,
                  json={"role": "citizen", "name": "Person"})
    await refused(http, "DELETE", f"{ROOMS}/{ROOM_ID_OF_NOBODY}/invites/abc", 404, "not_found",
                  headers=api_headers)
    await refused(http, "GET", "/api/v1/nothing-here", 404, "not_found", headers=api_headers)


async def test_end_room_revokes_every_invite_and_cannot_be_repeated(
        http: aiohttp.ClientSession, services: Services, api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    path = f"{ROOMS}/{room['id']}"
    issued = [await invite(http, api_headers, room["id"], role) for role in ("citizen", "expert", "interpreter")]
    ended = (await call(http, "POST", f"{path}/end", 200, headers=api_headers)).json
    assert ended["state"] == "ended" and ended["ended_reason"] == "api" and ended["ended_at"] is not None
    assert {k: v for k, v in ended.items() if k not in ("state", "ended_at", "ended_reason")} == \
        {k: v for k, v in room.items() if k not in ("state", "ended_at", "ended_reason")}
    assert (await call(http, "GET", path, 200, headers=api_headers)).json == ended
    await refused(http, "POST", f"{path}/end", 409, "room_ended", headers=api_headers)
    invites = (await call(http, "GET", f"{path}/invites", 200, headers=api_headers)).json["invites"]
    assert {i["jti"] for i in invites} == {i["jti"] for i in issued}
    assert all(i["revoked_at"] == ended["ended_at"] for i in invites)
    for one in issued:
        record = await services.store.tokens.get(one["jti"])
        assert record is not None and record.revoked_at is not None
    # No more invites into an ended room, and revoking what ending revoked is a conflict.
    await refused(http, "POST", f"{path}/invites", 409, "room_ended", json={"role": "citizen", "name": "Spät"},
                  headers=api_headers)
    await refused(http, "DELETE", f"{path}/invites/{issued[0]['jti']}", 409, "token_revoked", headers=api_headers)


async def test_end_room_with_a_reason(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    path = f"{ROOMS}/{room['id']}/end"
    await refused(http, "POST", path, 422, "invalid_request", json={"why": "done"}, headers=api_headers)
    await refused(http, "POST", path, 422, "invalid_request", json={"reason": ""}, headers=api_headers)
    await refused(http, "POST", path, 415, "unsupported_media_type", data="done",
                  headers={**api_headers, "Content-Type": "text/plain"})
    # free text never reaches the audit log: a name in the reason is refused
    await refused(http, "POST", path, 422, "invalid_request", json={"reason": "Ayşe was late"}, headers=api_headers)
    ended = (await call(http, "POST", path, 200, json={"reason": "completed"}, headers=api_headers)).json
    assert ended["ended_reason"] == "completed"


# invites ------------------------------------------------------------------------

async def test_citizen_invite_runs_from_before_the_appointment_to_its_end(
        http: aiohttp.ClientSession, services: Services, api_headers: dict[str, str]) -> None:
    start = in_hours(2)
    end = start + timedelta(minutes=50)
    room = await create_room(http, api_headers, scheduled_start=rfc3339(start), scheduled_end=rfc3339(end))
    issued = await invite(http, api_headers, room["id"], "citizen", name="Frau Yilmaz")
    lead = timedelta(seconds=services.settings.tokens.citizen_lead_seconds)
    assert parse(issued["not_before"]) == start - lead
    assert parse(issued["expires_at"]) == end
    assert issued["single_use"] is False and issued["role"] == "citizen" and issued["room_id"] == room["id"]
    claims = services.codec.decode(issued["token"], start.timestamp())
    assert (claims.room, claims.role.value, claims.name, claims.jti) == \
        (room["id"], "citizen", "Frau Yilmaz", issued["jti"])
    assert claims.nbf == (start - lead).timestamp() and claims.exp == end.timestamp()


async def test_citizen_invite_for_an_unscheduled_room(http: aiohttp.ClientSession, services: Services,
                                                      api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    before = services.now()
    issued = await invite(http, api_headers, room["id"], "citizen")
    after = services.now()
    t = services.settings.tokens
    not_before = parse(issued["not_before"]).timestamp()
    expires_at = parse(issued["expires_at"]).timestamp()
    assert before - t.citizen_lead_seconds <= not_before <= after - t.citizen_lead_seconds
    assert before + t.citizen_lifetime_seconds <= expires_at <= after + t.citizen_lifetime_seconds


@pytest.mark.parametrize("role", ["expert", "interpreter"])
async def test_patch_in_invites_are_single_use_and_short(http: aiohttp.ClientSession, services: Services,
                                                         api_headers: dict[str, str], role: str) -> None:
    room = await create_room(http, api_headers)
    issued = await invite(http, api_headers, room["id"], role, name="Herr Schmidt")
    lifetime = parse(issued["expires_at"]) - parse(issued["not_before"])
    assert lifetime == timedelta(seconds=getattr(services.settings.tokens, f"{role}_lifetime_seconds"))
    assert timedelta(seconds=60) <= lifetime <= timedelta(seconds=180)  # "about two minutes"
    assert issued["single_use"] is True
    claims = services.codec.decode(issued["token"], services.now())
    assert claims.role.value == role and claims.name == "Herr Schmidt"
    record = await services.store.tokens.get(issued["jti"])
    assert record is not None and record.single_use and record.room_id == room["id"]


async def test_counsellor_invite_and_explicit_lifetime_and_use(http: aiohttp.ClientSession, services: Services,
                                                               api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    counsellor = await invite(http, api_headers, room["id"], "counsellor")
    assert counsellor["single_use"] is False
    assert (parse(counsellor["expires_at"]) - parse(counsellor["not_before"])).total_seconds() == \
        services.settings.tokens.counsellor_lifetime_seconds
    custom = await invite(http, api_headers, room["id"], "expert", lifetime_seconds=900, single_use=False)
    assert (parse(custom["expires_at"]) - parse(custom["not_before"])).total_seconds() == 900
    assert custom["single_use"] is False


async def test_join_url_carries_the_token_only_in_the_fragment(http: aiohttp.ClientSession, server: TestServer,
                                                               api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    issued = await invite(http, api_headers, room["id"], "citizen")
    url = urlsplit(issued["join_url"])
    assert f"{url.scheme}://{url.netloc}" == str(server.make_url("")).rstrip("/")
    assert url.path == f"/join/{room['id']}" == room["join_path"]
    assert url.fragment == issued["token"]
    assert issued["token"] not in url.path + url.query


async def test_list_invites_never_shows_a_token(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    issued = [await invite(http, api_headers, room["id"], role, name=f"Name {role}")
              for role in ("citizen", "expert", "interpreter", "counsellor")]
    reply = await call(http, "GET", f"{ROOMS}/{room['id']}/invites", 200, headers=api_headers)
    listed = reply.json["invites"]
    assert sorted(i["jti"] for i in listed) == sorted(i["jti"] for i in issued)
    for one in issued:
        assert one["token"] not in reply.text
        assert one["token"].split(".")[1] not in reply.text  # not even the claims part
    for entry in listed:
        assert "token" not in entry and "join_url" not in entry
        assert entry["used_at"] is None and entry["revoked_at"] is None
        assert entry["label"] == f"Name {entry['role']}"
    # Invites are per room.
    other = await create_room(http, api_headers)
    assert (await call(http, "GET", f"{ROOMS}/{other['id']}/invites", 200, headers=api_headers)).json == \
        {"invites": []}


async def test_revoke_invite(http: aiohttp.ClientSession, services: Services, api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    other = await create_room(http, api_headers)
    issued = await invite(http, api_headers, room["id"], "citizen")
    foreign = await invite(http, api_headers, other["id"], "citizen")
    path = f"{ROOMS}/{room['id']}/invites"
    # The jti of another room's invite is not found under this room, and stays valid.
    await refused(http, "DELETE", f"{path}/{foreign['jti']}", 404, "not_found", headers=api_headers)
    await refused(http, "DELETE", f"{path}/unknown-jti", 404, "not_found", headers=api_headers)
    await refused(http, "DELETE", f"{path}/{'j' * 65}", 404, "not_found", headers=api_headers)
    reply = await call(http, "DELETE", f"{path}/{issued['jti']}", 204, headers=api_headers)
    assert reply.text == ""
    await refused(http, "DELETE", f"{path}/{issued['jti']}", 409, "token_revoked", headers=api_headers)
    listed = {i["jti"]: i for i in (await call(http, "GET", path, 200, headers=api_headers)).json["invites"]}
    assert listed[issued["jti"]]["revoked_at"] is not None
    record = await services.store.tokens.get(foreign["jti"])
    assert record is not None and record.revoked_at is None


async def test_invite_bodies_are_validated(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    path = f"{ROOMS}/{room['id']}/invites"
    for body, code in (({"role": "operator", "name": "x"}, "invalid_request"),
                       ({"role": "citizen"}, "invalid_request"),
                       ({"role": "citizen", "name": ""}, "invalid_request"),
                       ({"role": "citizen", "name": "x" * 65}, "invalid_request"),
                       ({"role": "citizen", "name": "   "}, "invalid_name"),
                       ({"role": "citizen", "name": "Bell\u0007"}, "invalid_name"),
                       ({"role": "citizen", "name": "RTL\u202e"}, "invalid_name"),
                       ({"role": "expert", "name": "x", "lifetime_seconds": 29}, "invalid_request"),
                       ({"role": "expert", "name": "x", "lifetime_seconds": 31536000}, "invalid_lifetime"),
                       ({"role": "expert", "name": "x", "single_use": "yes"}, "invalid_request"),
                       ({"role": "expert", "name": "x", "token": "mine"}, "invalid_request")):
        await refused(http, "POST", path, 422, code, json=body, headers=api_headers)
    assert (await call(http, "GET", path, 200, headers=api_headers)).json == {"invites": []}


async def test_no_citizen_invite_after_the_scheduled_end(http: aiohttp.ClientSession, services: Services,
                                                         api_headers: dict[str, str]) -> None:
    start = in_hours(1)
    room = await create_room(http, api_headers, scheduled_start=rfc3339(start),
                             scheduled_end=rfc3339(start + timedelta(minutes=30)))
    after_the_end = start.timestamp() + 31 * 60
    services.clock = lambda: after_the_end
    await refused(http, "POST", f"{ROOMS}/{room['id']}/invites", 409, "room_over",
                  json={"role": "citizen", "name": "Zu spät"}, headers=api_headers)
    # Patch-in tokens start now, so they are still possible while the room is open.
    await invite(http, api_headers, room["id"], "expert")


# authentication -----------------------------------------------------------------

PROTECTED = [("GET", ROOMS), ("POST", ROOMS), ("GET", f"{ROOMS}/{{room}}"), ("POST", f"{ROOMS}/{{room}}/end"),
             ("GET", f"{ROOMS}/{{room}}/invites"), ("POST", f"{ROOMS}/{{room}}/invites"),
             ("DELETE", f"{ROOMS}/{{room}}/invites/{{jti}}"), ("GET", SESSION), ("DELETE", SESSION)]


@pytest.fixture
async def existing(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> dict[str, str]:
    room = await create_room(http, api_headers)
    issued = await invite(http, api_headers, room["id"], "citizen")
    return {"room": room["id"], "jti": issued["jti"]}


@pytest.mark.parametrize(("method", "template"), PROTECTED)
async def test_401_without_or_with_bad_credentials(http: aiohttp.ClientSession, existing: dict[str, str],
                                                   method: str, template: str) -> None:
    path = template.format(**existing)
    body = {"json": {"title": "x"}} if method == "POST" else {}
    reply = await refused(http, method, path, 401, "unauthenticated", **body)
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    await refused(http, method, path, 401, "bad_api_key", headers={"Authorization": "Bearer rsk_wrong"}, **body)
    for header in ("Basic dGVzdHM6cnNrX3Rlc3Q=", "Bearer", "Bearer   ", "Token rsk_test", ""):
        await refused(http, method, path, 401, "unauthenticated", headers={"Authorization": header}, **body)
    await refused(http, method, path, 401, "session_expired", headers={"Cookie": "rs_session=forged"}, **body)


async def test_an_authorization_header_is_never_overridden_by_a_cookie(
        http: aiohttp.ClientSession, services: Services) -> None:
    signed = await sign_in(http, await add_staff(services, "counsellor", "clara"))
    await call(http, "GET", ROOMS, 200, headers=signed.headers())
    for header in ("", "Bearer rsk_wrong"):
        await call(http, "GET", ROOMS, 401, headers={**signed.headers(), "Authorization": header})


async def test_credentials_that_are_not_utf8_are_refused_cleanly(server: TestServer,
                                                                 api_headers: dict[str, str]) -> None:
    host = f"{server.host}:{server.port}".encode()
    for header in (b"Authorization: Bearer rsk_\xff\xfe", b"Cookie: rs_session=\xc3\x28abc",
                   b"Authorization: Bearer \xc3\xa9t\xc3\xa9"):
        request = b"GET /api/v1/rooms HTTP/1.1\r\nHost: " + host + b"\r\n" + header + b"\r\nConnection: close\r\n\r\n"
        status, body = await raw_request(server, request)
        assert status == 401, body
        assert "Traceback" not in body and json.loads(body)["error"]["code"] in ("bad_api_key", "session_expired")


# authorization --------------------------------------------------------------------

@pytest.mark.parametrize("role", ["expert", "interpreter"])
async def test_experts_and_interpreters_may_not_use_the_room_api(http: aiohttp.ClientSession, services: Services,
                                                                 existing: dict[str, str], role: str) -> None:
    signed = await sign_in(http, await add_staff(services, role, f"{role}1"))
    headers = signed.headers()
    await refused(http, "POST", ROOMS, 403, "forbidden", json={"title": "x"}, headers=headers)
    await refused(http, "POST", f"{ROOMS}/{existing['room']}/invites", 403, "forbidden",
                  json={"role": "citizen", "name": "x"}, headers=headers)
    await refused(http, "GET", ROOMS, 403, "forbidden", headers=headers)
    await refused(http, "GET", f"{ROOMS}/{existing['room']}", 403, "forbidden", headers=headers)
    await refused(http, "POST", f"{ROOMS}/{existing['room']}/end", 403, "forbidden", headers=headers)
    await refused(http, "DELETE", f"{ROOMS}/{existing['room']}/invites/{existing['jti']}", 403, "forbidden",
                  headers=headers)
    # They may still look at their own session.
    assert (await call(http, "GET", SESSION, 200, headers=headers)).json["account"]["role"] == role
    assert (await services.store.rooms.get(existing["room"])).state == "open"  # type: ignore[union-attr]


async def test_an_operator_may_read_and_end_but_not_invite(http: aiohttp.ClientSession, services: Services,
                                                           existing: dict[str, str]) -> None:
    signed = await sign_in(http, await add_staff(services, "operator", "olga"))
    headers = signed.headers()
    room_path = f"{ROOMS}/{existing['room']}"
    await refused(http, "POST", ROOMS, 403, "forbidden", json={"title": "x"}, headers=headers)
    await refused(http, "POST", f"{room_path}/invites", 403, "forbidden", json={"role": "citizen", "name": "x"},
                  headers=headers)
    await refused(http, "GET", f"{room_path}/invites", 403, "forbidden", headers=headers)
    await refused(http, "DELETE", f"{room_path}/invites/{existing['jti']}", 403, "forbidden", headers=headers)
    assert [r["id"] for r in (await call(http, "GET", ROOMS, 200, headers=headers)).json["rooms"]] == \
        [existing["room"]]
    assert (await call(http, "GET", room_path, 200, headers=headers)).json["id"] == existing["room"]
    ended = (await call(http, "POST", f"{room_path}/end", 200, headers=headers)).json
    assert ended["state"] == "ended" and ended["ended_reason"] == "operator"


async def test_a_counsellor_cannot_touch_another_counsellors_room(http: aiohttp.ClientSession,
                                                                  services: Services) -> None:
    clara = await sign_in(http, await add_staff(services, "counsellor", "clara"))
    carl = await sign_in(http, await add_staff(services, "counsellor", "carl"))
    room = await create_room(http, clara.headers(), title="Claras")
    issued = await invite(http, clara.headers(), room["id"], "citizen")
    path = f"{ROOMS}/{room['id']}"
    headers = carl.headers()
    await refused(http, "GET", path, 403, "forbidden", headers=headers)
    await refused(http, "POST", f"{path}/end", 403, "forbidden", headers=headers)
    await refused(http, "GET", f"{path}/invites", 403, "forbidden", headers=headers)
    await refused(http, "POST", f"{path}/invites", 403, "forbidden", json={"role": "expert", "name": "x"},
                  headers=headers)
    await refused(http, "DELETE", f"{path}/invites/{issued['jti']}", 403, "forbidden", headers=headers)
    # Clara can do all of it; an admin can too.
    await call(http, "GET", f"{path}/invites", 200, headers=clara.headers())
    admin = await sign_in(http, await add_staff(services, "admin", "ada"))
    await call(http, "DELETE", f"{path}/invites/{issued['jti']}", 204, headers=admin.headers())
    await call(http, "POST", f"{path}/end", 200, headers=clara.headers())


# request validation ---------------------------------------------------------------

@pytest.mark.parametrize(("body", "code"), [
    ({"title": "x", "colour": "red"}, "invalid_request"),
    ({}, "invalid_request"),
    ({"title": 5}, "invalid_request"),
    ({"title": ""}, "invalid_request"),
    ({"title": "x" * 201}, "invalid_request"),
    ({"title": "   "}, "invalid_title"),
    ({"title": "Tab\tinside"}, "invalid_title"),
    ({"title": "x", "max_participants": 7}, "invalid_request"),
    ({"title": "x", "max_participants": 1}, "invalid_request"),
    ({"title": "x", "max_participants": "6"}, "invalid_request"),
    ({"title": "x", "waiting_room": "yes"}, "invalid_request"),
    ({"title": "x", "scheduled_start": "2030-01-01T10:00:00"}, "invalid_request"),
    ({"title": "x", "scheduled_start": "tomorrow"}, "invalid_request"),
    ({"title": "x", "scheduled_start": "9999-12-31T23:00:00-23:00"}, "invalid_request"),
    ({"title": "x", "scheduled_start": "2030-01-01T10:00:00Z", "scheduled_end": "2030-01-01T09:00:00Z"},
     "invalid_schedule"),
    ({"title": "x", "scheduled_start": "2030-01-01T10:00:00Z", "scheduled_end": "2030-01-01T10:00:00Z"},
     "invalid_schedule"),
    ({"title": "x", "scheduled_start": "2030-01-01T10:00:00Z", "scheduled_end": "2030-01-03T10:00:00Z"},
     "invalid_schedule"),
    ({"title": "x", "scheduled_start": "2001-01-01T10:00:00Z"}, "invalid_schedule"),
    (["title", "x"], "invalid_request"),
    ("x", "invalid_request"),
])
async def test_room_schema_violations_are_422(http: aiohttp.ClientSession, services: Services,
                                             api_headers: dict[str, str], body: Any, code: str) -> None:
    reply = await refused(http, "POST", ROOMS, 422, code, json=body, headers=api_headers)
    assert reply.json["error"]["message"]
    assert await services.store.rooms.list() == []
    await call(http, "GET", ROOMS, 200, headers=api_headers)


async def test_the_field_is_named_in_the_message(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    reply = await refused(http, "POST", ROOMS, 422, "invalid_request", json={"title": "x", "colour": "red"},
                          headers=api_headers)
    assert "colour" in reply.json["error"]["message"]
    reply = await refused(http, "POST", ROOMS, 422, "invalid_request", json={}, headers=api_headers)
    assert "title" in reply.json["error"]["message"]
    reply = await refused(http, "POST", ROOMS, 422, "invalid_request",
                          json={"title": "x", "scheduled_end": "2030-01-01 10:00"}, headers=api_headers)
    assert "scheduled_end" in reply.json["error"]["message"]


@pytest.mark.parametrize("raw", [b"{", b"", b"{'title': 'x'}", b'{"title": NaN}',
                                 b'{"title": "x", "max_participants": Infinity}', b'{"title": "\\udc00"}',
                                 b"\xff\xfe{", b"[" * 30000], ids=lambda raw: repr(raw[:40]))
async def test_malformed_json_is_400(http: aiohttp.ClientSession, services: Services,
                                     api_headers: dict[str, str], raw: bytes) -> None:
    await refused(http, "POST", ROOMS, 400, "bad_json", data=raw,
                  headers={**api_headers, "Content-Type": "application/json"})
    assert await services.store.rooms.list() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml", "application/json-patch+json"])
async def test_a_body_that_is_not_json_is_415(http: aiohttp.ClientSession, api_headers: dict[str, str],
                                              content_type: str) -> None:
    await refused(http, "POST", ROOMS, 415, "unsupported_media_type", data=b'{"title": "x"}',
                  headers={**api_headers, "Content-Type": content_type})


async def test_json_with_a_charset_is_json(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    await call(http, "POST", ROOMS, 201, data='{"title": "Größe"}'.encode(),
               headers={**api_headers, "Content-Type": "application/json; charset=utf-8"})


async def test_an_oversize_body_is_413(http: aiohttp.ClientSession, services: Services,
                                       api_headers: dict[str, str]) -> None:
    room = await create_room(http, api_headers)
    limit = services.settings.server.max_body_bytes
    big = json.dumps({"title": "x" * (limit + 1)}).encode()
    await refused(http, "POST", ROOMS, 413, "payload_too_large", data=big,
                  headers={**api_headers, "Content-Type": "application/json"})
    await refused(http, "POST", f"{ROOMS}/{room['id']}/invites", 413, "payload_too_large", data=big,
                  headers={**api_headers, "Content-Type": "application/json"})
    await refused(http, "POST", SESSION, 413, "payload_too_large", data=big,
                  headers={"Content-Type": "application/json"})
    assert [r.id for r in await services.store.rooms.list()] == [room["id"]]


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", ROOMS, {"GET", "POST"}),
    ("DELETE", ROOMS, {"GET", "POST"}),
    ("PUT", f"{ROOMS}/{ROOM_ID_OF_NOBODY}", {"GET", "PATCH"}),
    ("GET", f"{ROOMS}/{ROOM_ID_OF_NOBODY}/end", {"POST"}),
    ("PUT", f"{ROOMS}/{ROOM_ID_OF_NOBODY}/invites/abc", {"DELETE"}),
    ("POST", "/healthz", {"GET"}),
    ("PUT", SESSION, {"GET", "POST", "DELETE"}),
])
async def test_a_wrong_method_is_405(http: aiohttp.ClientSession, api_headers: dict[str, str], method: str,
                                     path: str, allowed: set[str]) -> None:
    reply = await refused(http, method, path, 405, "method_not_allowed", headers=api_headers)
    assert {m.strip() for m in reply.headers["Allow"].split(",")} - {"HEAD"} == allowed


# headers everywhere ---------------------------------------------------------------

async def test_security_headers_on_pages_and_errors_too(http: aiohttp.ClientSession) -> None:
    for path, status in (("/", 200), ("/no-such-page", 404)):
        reply = await call(http, "GET", path, status)
        assert reply.headers.get("X-Frame-Options") == "DENY"


async def test_no_stored_value_breaks_the_list(http: aiohttp.ClientSession, api_headers: dict[str, str]) -> None:
    """A date in the year 10000 once made a room whose listing answered 500 from then on."""
    await refused(http, "POST", ROOMS, 422, "invalid_request", headers=api_headers,
                  json={"title": "x", "scheduled_start": "9999-12-31T23:00:00-23:00",
                        "scheduled_end": "9999-12-31T23:30:00-23:00"})
    latest = (datetime(9999, 12, 30, tzinfo=timezone.utc)).isoformat()
    room = await create_room(http, api_headers, scheduled_start=latest)
    assert parse(room["scheduled_start"]).year == 9999
    assert (await call(http, "GET", ROOMS, 200, headers=api_headers)).json["rooms"] == [room]


# audit ------------------------------------------------------------------------------

async def test_the_audit_log_records_who_did_what_without_names(http: aiohttp.ClientSession, services: Services,
                                                                api_headers: dict[str, str]) -> None:
    staff = await add_staff(services, "counsellor", "clara")
    signed = await sign_in(http, staff)
    room = await create_room(http, signed.headers(), title="Audit")
    citizen = await invite(http, signed.headers(), room["id"], "citizen", name="Ayşe Unverwechselbar")
    expert = await invite(http, api_headers, room["id"], "expert", name="Dr. Einzigartig")
    await call(http, "DELETE", f"{ROOMS}/{room['id']}/invites/{citizen['jti']}", 204, headers=signed.headers())
    await call(http, "POST", f"{ROOMS}/{room['id']}/end", 200, headers=signed.headers())

    events = await services.store.audit.query()
    actions = [e.action for e in events]
    for action in ("auth.signed_in", "room.created", "token.issued", "token.revoked", "room.ended"):
        assert action in actions, actions
    signed_in = next(e for e in events if e.action == "auth.signed_in")
    assert signed_in.actor == staff.id and signed_in.actor_role == "counsellor"
    created = next(e for e in events if e.action == "room.created")
    assert (created.actor, created.room_id) == (staff.id, room["id"])
    issued = [e for e in events if e.action == "token.issued"]
    assert [(e.subject, e.actor) for e in issued] == [(citizen["jti"], staff.id), (expert["jti"], "apikey:tests")]
    assert [e.detail["role"] for e in issued] == ["citizen", "expert"]
    revoked = next(e for e in events if e.action == "token.revoked")
    assert (revoked.subject, revoked.room_id) == (citizen["jti"], room["id"])
    ended = next(e for e in events if e.action == "room.ended")
    assert ended.room_id == room["id"] and ended.actor == staff.id
    everything = repr(events)
    for name in ("Ayşe", "Unverwechselbar", "Einzigartig", staff.display_name, staff.password, citizen["token"]):
        assert name not in everything
