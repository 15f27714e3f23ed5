"""The join page and its endpoints: /join/{room} (page), /join/{room}/check, /join/{room}/consent.

Against a real server on loopback with a real SQLite store: every token refusal gets its
code in the common error shape; a check never spends a token; a consent is recorded
with its time, token id and notice version and nothing else.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from roomserver import i18n
from roomserver.core.roles import Role
from roomserver.core.tokens import TokenRecord
from roomserver.pages.notice import build as build_notice
from tests.support import RawSocket, create_room, invite, sql

ROOT = Path(__file__).resolve().parents[2]


async def post(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    r = await http.post(path, json=body)
    assert r.headers.get("Cache-Control") == "no-store" or r.status >= 400
    return r.status, await r.json()


def code_of(body: dict[str, Any]) -> str:
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]
    return body["error"]["code"]


def mint_recorded(services, room_id: str, *, nbf: int, exp: int, role: Role = Role.CITIZEN,
                  single_use: bool = False) -> tuple[str, str]:
    """A token minted directly with the codec and recorded in the ledger, as the API would."""
    token, claims = services.codec.mint(sub=f"{role.value}:t", room=room_id, role=role, name="Test",
                                        nbf=nbf, exp=exp, now=min(nbf, services.now()))
    services.store.blocking.tokens.record(TokenRecord(jti=claims.jti, room_id=room_id, role=role.value,
                                             identity=f"{role.value}:t", not_before=nbf, expires_at=exp,
                                             single_use=single_use, used_at=None, revoked_at=None),
                                 issued_by="tests", issued_at=services.now())
    return token, claims.jti


# ----------------------------------------------------------------- the page


def notice_version(services) -> str:
    return build_notice(services.settings).version


async def test_page_renders_german_first_under_csp(server, http, services) -> None:
    r = await http.get("/join/r_abc123")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"
    html = await r.text()
    assert '<html lang="de" dir="ltr">' in html
    assert i18n.translate("de", "join.notice.title") in html
    assert 'data-room="r_abc123"' in html and f'data-notice="{notice_version(services)}"' in html
    # Only external same-origin scripts and styles: nothing inline (the CSP would block it).
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="/static/' in tag and 'type="module"' in tag
    assert all(not body.strip() for body in re.findall(r"<script[^>]*>(.*?)</script>", html, re.S))
    assert "<style" not in html and " style=" not in html
    assert "http://" not in html.replace(str(server.make_url("")), "") and "https://" not in html
    # Every control has a label; a polite live region exists.
    for control_id in re.findall(r'<(?:select|input)[^>]*\bid="([^"]+)"', html):
        assert f'for="{control_id}"' in html, control_id
    assert 'aria-live="polite"' in html
    # The language picker switches with ?lang= and offers the citizen languages that have a catalog.
    assert 'href="?lang=en"' in html and 'href="?lang=de"' in html
    for code in i18n.CITIZEN_LANGUAGES:
        has_catalog = code in i18n.available()
        assert (f'href="?lang={code}"' in html) == has_catalog, code


async def test_page_language_switch(server, http) -> None:
    r = await http.get("/join/r_abc123?lang=en")
    html = await r.text()
    assert '<html lang="en" dir="ltr">' in html
    assert i18n.translate("en", "join.notice.title") in html
    assert 'aria-current="true">English<' in html
    r = await http.get("/join/r_abc123", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en"' in await r.text()


async def test_page_refuses_implausible_room_ids(server, http) -> None:
    for path in ("/join/" + "x" * 65, "/join/a%20b", "/join/r.x"):
        r = await http.get(path)
        assert r.status == 404, path
        assert (await r.json())["error"]["code"] == "not_found"


def test_every_join_key_is_in_both_catalogs() -> None:
    used: set[str] = set()
    for path in [ROOT / "web/templates/join.html", *sorted((ROOT / "web/static/js").glob("*.js"))]:
        if path.name in ("join.html", "join.js", "devicecheck.js", "echocheck.js"):
            used |= set(re.findall(r'"(join\.[a-z_.]+)"', path.read_text(encoding="utf-8")))
    # Keys built from a verdict or screen name.
    used |= {f"join.check.{v}.{p}" for v in ("good", "okay", "poor", "failed", "busy") for p in ("title", "advice")}
    used |= {f"join.{s}.{p}" for s in ("expired", "used", "ended", "revoked", "invalid") for p in ("title", "text")}
    for lang in ("de", "en"):
        catalog = json.loads((ROOT / f"web/static/i18n/{lang}.json").read_text(encoding="utf-8"))
        missing = sorted(k for k in used if k not in catalog)
        assert not missing, (lang, missing)
        join_keys = {k for k in catalog if k.startswith("join.")}
        assert join_keys == {k for k in json.loads((ROOT / "web/static/i18n/de.json").read_text()) if
                             k.startswith("join.")}, lang


# ----------------------------------------------------------------- check


async def test_check_answers_room_role_name_without_spending(server, http, api_headers, services) -> None:
    # An appointment that started ten minutes ago (whole minutes, UTC): the link works now.
    start = (services.now() - 600) // 60 * 60
    start_iso = datetime.fromtimestamp(start, timezone.utc).isoformat()
    end_iso = datetime.fromtimestamp(start + 3600, timezone.utc).isoformat()
    room_id = await create_room(http, api_headers, title="Beratung 10:30", scheduled_start=start_iso)
    room_id2 = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "Ayşe Yılmaz")
    status, body = await post(http, f"/join/{room_id}/check", {"token": inv["token"]})
    assert status == 200, body
    assert body["room"] == {"id": room_id, "title": "Beratung 10:30", "scheduled_start": start_iso,
                            "scheduled_end": end_iso}
    assert body["role"] == "citizen" and body["name"] == "Ayşe Yılmaz"
    assert body["notice"] == notice_version(services)
    assert body["consent"] is None  # nothing agreed with this invite yet
    assert body["ice_servers"] == []

    # A single-use link can be checked again and again; it is spent only by the real join.
    expert = await invite(http, api_headers, room_id2, "expert", "Herr Kaya")
    for _ in range(3):
        status, body = await post(http, f"/join/{room_id2}/check", {"token": expert["token"]})
        assert status == 200 and body["role"] == "expert"
    assert (await services.store.tokens.get(expert["jti"])).used_at is None
    sock = await RawSocket.open(http)
    assert (await sock.join(expert["token"], room=room_id2))["type"] == "welcome"
    await sock.close()
    status, body = await post(http, f"/join/{room_id2}/check", {"token": expert["token"]})
    assert (status, code_of(body)) == (409, "token_already_used")


async def test_check_hands_out_ice_servers_with_turn_credentials(server_factory) -> None:
    from tests.conftest import TEST_API_KEY

    srv, _ = await server_factory(ROOMSERVER_ICE_STUN_URLS="stun:stun.example.org:3478",
                                  ROOMSERVER_ICE_TURN_URLS="turn:turn.example.org:3478",
                                  ROOMSERVER_ICE_TURN_SECRET="s3cret")
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room_id = await create_room(http, headers)
        inv = await invite(http, headers, room_id, "citizen", "A")
        status, body = await post(http, f"/join/{room_id}/check", {"token": inv["token"]})
    assert status == 200
    stun, turn = body["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    assert turn["urls"] == ["turn:turn.example.org:3478"]
    assert re.fullmatch(r"\d+:echo-[A-Za-z0-9_-]+", turn["username"]) and turn["credential"]


async def test_check_refusal_codes(server, http, api_headers, services) -> None:
    now = services.now()
    room_id = await create_room(http, api_headers)
    other_room = await create_room(http, api_headers)

    async def refused(token: Any, room: str = room_id) -> tuple[int, str]:
        status, body = await post(http, f"/join/{room}/check", {"token": token})
        return status, code_of(body)

    assert await refused("") == (401, "token_malformed")
    assert await refused("nonsense") == (401, "token_malformed")
    assert await refused("x" * 5000) == (401, "token_malformed")

    good = (await invite(http, api_headers, room_id, "citizen", "A"))["token"]
    head, payload, sig = good.split(".")
    assert await refused(f"{head}.{payload}.{'A' * len(sig)}") == (401, "token_bad_signature")

    expired, _ = mint_recorded(services, room_id, nbf=now - 7200, exp=now - 3600)
    assert await refused(expired) == (401, "token_expired")

    assert await refused(good, other_room) == (401, "token_wrong_room")

    ghost, _ = services.codec.mint(sub="citizen:g", room="r_doesnotexist", role=Role.CITIZEN, name="G",
                                   nbf=now - 60, exp=now + 600, now=now)
    assert await refused(ghost, "r_doesnotexist") == (404, "room_not_found")

    stray, _ = services.codec.mint(sub="citizen:s", room=room_id, role=Role.CITIZEN, name="S",
                                   nbf=now - 60, exp=now + 600, now=now)
    assert await refused(stray) == (401, "token_revoked")  # never issued through the ledger

    withdrawn = await invite(http, api_headers, room_id, "citizen", "W")
    assert (await http.delete(f"/api/v1/rooms/{room_id}/invites/{withdrawn['jti']}", headers=api_headers)).status == 204
    assert await refused(withdrawn["token"]) == (401, "token_revoked")

    used, jti = mint_recorded(services, room_id, nbf=now - 60, exp=now + 600, role=Role.EXPERT, single_use=True)
    await services.store.tokens.spend(jti, now)
    assert await refused(used) == (409, "token_already_used")

    assert (await http.post(f"/api/v1/rooms/{room_id}/end", headers=api_headers)).status == 200
    assert await refused(good) == (410, "room_ended")


async def test_check_not_yet_valid_says_when(server, http, api_headers, services) -> None:
    start = services.now() + 3 * 3600
    start_iso = datetime.fromtimestamp(start).astimezone().isoformat()
    room_id = await create_room(http, api_headers, scheduled_start=start_iso)
    inv = await invite(http, api_headers, room_id, "citizen", "A")
    status, body = await post(http, f"/join/{room_id}/check", {"token": inv["token"]})
    assert status == 401 and body["error"]["code"] == "token_not_yet_valid"
    assert datetime.fromisoformat(body["error"]["scheduled_start"]).timestamp() == start
    assert body["error"]["not_before"] == inv["not_before"]
    assert datetime.fromisoformat(body["error"]["not_before"]).timestamp() == start - 900

    # Early, but for another room: says wrong room, and reveals no times.
    other = await create_room(http, api_headers)
    status, body = await post(http, f"/join/{other}/check", {"token": inv["token"]})
    assert (status, body) == (401, {"error": {"code": "token_wrong_room", "message": body["error"]["message"]}})

    # Early, but withdrawn or the appointment cancelled: says so, not "come back later".
    assert (await http.delete(f"/api/v1/rooms/{room_id}/invites/{inv['jti']}", headers=api_headers)).status == 204
    status, body = await post(http, f"/join/{room_id}/check", {"token": inv["token"]})
    assert (status, code_of(body)) == (401, "token_revoked")
    second = await invite(http, api_headers, room_id, "citizen", "B")
    assert (await http.post(f"/api/v1/rooms/{room_id}/end", headers=api_headers)).status == 200
    status, body = await post(http, f"/join/{room_id}/check", {"token": second["token"]})
    assert (status, code_of(body)) == (410, "room_ended")


async def test_check_validates_the_body(server, http, api_headers) -> None:
    room_id = await create_room(http, api_headers)
    path = f"/join/{room_id}/check"
    for body, status, code in [
        ({}, 422, "invalid_request"),
        ({"token": 5}, 422, "invalid_request"),
        ({"token": None}, 422, "invalid_request"),
        ({"token": "x", "room": room_id}, 422, "invalid_request"),
        ("token", 422, "invalid_request"),
    ]:
        got_status, got = await post(http, path, body)
        assert (got_status, code_of(got)) == (status, code), body
    for data, ctype, status, code in [
        ("{", "application/json", 400, "bad_json"),
        ('{"token": NaN}', "application/json", 400, "bad_json"),
        ('{"token": "\\ud800"}', "application/json", 400, "bad_json"),
        ('{"token": "x"}', "text/plain", 415, "unsupported_media_type"),
        ('{"token": "' + "x" * 9000 + '"}', "application/json", 413, "payload_too_large"),
    ]:
        r = await http.post(path, data=data, headers={"Content-Type": ctype})
        assert (r.status, code_of(await r.json())) == (status, code), data[:40]
    assert (await http.get(path)).status == 405


# ----------------------------------------------------------------- consent


async def test_consent_is_recorded_with_time_and_jti_only(server, http, api_headers, services) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "Ayşe Yılmaz")
    before = services.now()
    version = notice_version(services)
    status, body = await post(http, f"/join/{room_id}/consent", {"token": inv["token"], "notice": version})
    assert status == 201, body
    assert body["notice"] == version
    given = int(datetime.fromisoformat(body["given_at"]).timestamp())
    assert before <= given <= services.now()

    rows = sql(services, "SELECT * FROM consents")
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {"id", "room_id", "jti", "notice", "given_at", "withdrawn_at"}  # no content, no name
    assert (row["room_id"], row["jti"], row["notice"], row["given_at"]) == (room_id, inv["jti"], version, given)

    events = await services.store.audit.query(action="consent.given")
    assert len(events) == 1
    event = events[0]
    assert (event.room_id, event.subject, event.actor_role, event.detail) == (room_id, inv["jti"], "citizen",
                                                                              {"notice": version})
    assert "Ayşe" not in json.dumps(event.__dict__) and "Yılmaz" not in json.dumps(event.__dict__)
    assert (await services.store.tokens.get(inv["jti"])).used_at is None  # consenting does not spend the link


async def test_consent_refusals_record_nothing(server, http, api_headers, services) -> None:
    now = services.now()
    room_id = await create_room(http, api_headers)
    other = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "A")
    path = f"/join/{room_id}/consent"
    version = notice_version(services)

    status, body = await post(http, path, {"token": inv["token"], "notice": "made-up"})
    assert (status, code_of(body)) == (422, "unknown_notice")
    status, body = await post(http, path, {"token": inv["token"]})
    assert (status, code_of(body)) == (422, "invalid_request")
    status, body = await post(http, path, {"token": inv["token"], "notice": 1})
    assert (status, code_of(body)) == (422, "invalid_request")

    expired, _ = mint_recorded(services, room_id, nbf=now - 7200, exp=now - 3600)
    used, jti = mint_recorded(services, room_id, nbf=now - 60, exp=now + 600, role=Role.EXPERT, single_use=True)
    await services.store.tokens.spend(jti, now)
    cases = [("garbage", room_id, 401, "token_malformed"), (expired, room_id, 401, "token_expired"),
             (used, room_id, 409, "token_already_used"), (inv["token"], other, 401, "token_wrong_room")]
    for token, room, status_, code in cases:
        status, body = await post(http, f"/join/{room}/consent", {"token": token, "notice": version})
        assert (status, code_of(body)) == (status_, code), code
    assert (await http.post(f"/api/v1/rooms/{room_id}/end", headers=api_headers)).status == 200
    status, body = await post(http, path, {"token": inv["token"], "notice": version})
    assert (status, code_of(body)) == (410, "room_ended")

    assert sql(services, "SELECT COUNT(*) AS n FROM consents")[0]["n"] == 0
    assert await services.store.audit.query(action="consent.given") == []
