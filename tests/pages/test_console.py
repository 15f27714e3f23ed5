"""The counsellor console over real HTTP: the page, its JSON endpoints (list, join, QR), CSRF and roles."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from roomserver.pages import console
from roomserver.pages.render import STATIC_DIR, TEMPLATES_DIR
from tests.staff import add_staff, client, csrf_meta, sign_in
from tests.support import RawSocket

ROOMS = "/api/v1/rooms"


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def _today() -> dict[str, str]:
    start = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    return {"from": _iso(start), "to": _iso(start + timedelta(days=1))}


async def _create(http: aiohttp.ClientSession, csrf: str, title: str = "Beratung", **fields) -> dict:
    start = datetime.now(timezone.utc) + timedelta(minutes=5)
    body = {"title": title, "scheduled_start": _iso(start), "scheduled_end": _iso(start + timedelta(hours=1)),
            "waiting_room": True, **fields}
    r = await http.post(ROOMS, json=body, headers={"X-CSRF-Token": csrf})
    assert r.status == 201, await r.text()
    return await r.json()


@pytest.fixture
def counsellor(services):
    return add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")


async def test_console_page_for_counsellor(server, services, counsellor):
    async with client(server) as http:
        csrf = await sign_in(http, counsellor)
        r = await http.get("/console", allow_redirects=False)
        html = await r.text()
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        assert csrf_meta(html) == csrf
        assert "Ihre Beratungen heute" in html and "Neue Beratung anlegen" in html and "Clara Beraterin" in html
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts and all(re.search(r'src="/static/js/[\w.-]+\.js\?v=[0-9a-f]{12}"', s) for s in scripts)
        assert "style=" not in html and "<style" not in html
        assert re.search(r'href="/static/css/console\.css\?v=[0-9a-f]{12}"', html)
        # Every form control is labelled.
        for control_id in re.findall(r'<(?:input|select)\b[^>]*\bid="([^"]+)"', html):
            assert f'for="{control_id}"' in html, control_id
        assert '<dialog id="end-dialog"' in html
        for name in ("js/console.js", "js/invite.js", "js/staffapi.js", "css/console.css", "css/invite.css"):
            asset = await http.get(f"/static/{name}")
            assert asset.status == 200, name


async def test_admin_may_open_console_operator_may_not(server, services):
    admin = add_staff(services, "ada", "admin")
    operator = add_staff(services, "otto", "operator")
    async with client(server) as http:
        await sign_in(http, admin)
        assert (await http.get("/console", allow_redirects=False)).status == 200
    async with client(server) as http:
        await sign_in(http, operator)
        r = await http.get("/console", allow_redirects=False)
        assert r.status == 403 and "Kein Zugriff" in await r.text()


async def test_todays_list_holds_only_own_rooms_of_today(server, services, counsellor):
    other = add_staff(services, "olga", "counsellor")
    async with client(server) as http:
        csrf = await sign_in(http, counsellor)
        mine = await _create(http, csrf, "Heute")
        tomorrow = datetime.now(timezone.utc) + timedelta(days=2)
        later = await _create(http, csrf, "Übermorgen", scheduled_start=_iso(tomorrow),
                              scheduled_end=_iso(tomorrow + timedelta(hours=1)))
        r = await http.get("/console/rooms", params=_today())
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        listed = (await r.json())["rooms"]
        ids = [room["id"] for room in listed]
        assert mine["id"] in ids and later["id"] not in ids
        entry = next(room for room in listed if room["id"] == mine["id"])
        assert entry["title"] == "Heute" and entry["waiting_room"] is True and entry["state"] == "open"
        # Without a window: the server's today.
        assert mine["id"] in [room["id"] for room in (await (await http.get("/console/rooms")).json())["rooms"]]
        bad = await http.get("/console/rooms", params={"from": _today()["from"], "to": _iso(tomorrow + timedelta(days=5))})
        assert bad.status == 400
        bad = await http.get("/console/rooms", params={"from": "gestern", "to": "heute"})
        assert bad.status == 422
    async with client(server) as http:
        await sign_in(http, other)
        listed = (await (await http.get("/console/rooms", params=_today())).json())["rooms"]
        assert mine["id"] not in [room["id"] for room in listed]


async def test_join_mints_a_counsellor_token_the_socket_accepts(server, services, counsellor, http):
    async with client(server) as staff_http:
        csrf = await sign_in(staff_http, counsellor)
        room = await _create(staff_http, csrf, "Mit Warteraum", waiting_room=True)
        r = await staff_http.post(f"/console/rooms/{room['id']}/join", headers={"X-CSRF-Token": csrf})
        assert r.status == 200, await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        body = await r.json()
    assert body["room"] == room["id"] and body["name"] == "Clara Beraterin"
    claims = services.codec.decode(body["token"], services.now())
    assert claims.sub == counsellor.id and claims.role.value == "counsellor" and claims.room == room["id"]
    record = await services.store.tokens.get(claims.jti)
    assert record.identity == counsellor.id and not record.single_use

    sock = await RawSocket.open(http)
    try:
        welcome = await sock.join(body["token"])
        assert welcome["type"] == "welcome", welcome  # the counsellor skips the waiting room
        assert welcome["self"]["role"] == "counsellor" and welcome["self"]["name"] == "Clara Beraterin"
        assert welcome["room"]["id"] == room["id"]
    finally:
        await sock.close()
    # The seat is the signed-in person: the audit names the account, not a random identity.
    actions = [e.action for e in await services.store.audit.query(room_id=room["id"]) if e.actor == counsellor.id]
    assert "seat.join" in actions, actions


async def test_join_refusals(server, services, counsellor):
    other = add_staff(services, "olga", "counsellor")
    expert = add_staff(services, "erik", "expert")
    admin = add_staff(services, "ada", "admin")
    async with client(server) as http:
        csrf = await sign_in(http, counsellor)
        room = await _create(http, csrf)
        path = f"/console/rooms/{room['id']}/join"
        for headers in ({}, {"X-CSRF-Token": "falsch"}, {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}):
            r = await http.post(path, headers=headers)
            assert r.status == 403 and (await r.json())["error"]["code"] == "csrf_failed"
        r = await http.post("/console/rooms/r_nichtda/join", headers={"X-CSRF-Token": csrf})
        assert r.status == 404
        ended = await _create(http, csrf, "Vorbei")
        assert (await http.post(f"{ROOMS}/{ended['id']}/end", headers={"X-CSRF-Token": csrf})).status == 200
        r = await http.post(f"/console/rooms/{ended['id']}/join", headers={"X-CSRF-Token": csrf})
        assert r.status == 409 and (await r.json())["error"]["code"] == "room_ended"
    async with client(server) as anonymous:
        r = await anonymous.post(path)
        assert r.status == 401
    async with client(server) as http:
        csrf = await sign_in(http, other)
        r = await http.post(path, headers={"X-CSRF-Token": csrf})
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    async with client(server) as http:
        csrf = await sign_in(http, expert)
        r = await http.post(path, headers={"X-CSRF-Token": csrf})
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    async with client(server) as http:  # an admin may open any consultation, as themselves
        csrf = await sign_in(http, admin)
        r = await http.post(path, headers={"X-CSRF-Token": csrf})
        assert r.status == 200
        assert services.codec.decode((await r.json())["token"], services.now()).sub == admin.id


async def test_qr_code_is_svg(server, services, counsellor):
    async with client(server) as http:
        csrf = await sign_in(http, counsellor)
        url = f"{services.settings.base_url}/join/r_x#" + "e" * 600
        r = await http.post("/console/qr", json={"text": url}, headers={"X-CSRF-Token": csrf})
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("image/svg+xml")
        assert r.headers["Cache-Control"] == "no-store"  # the picture holds a join token
        svg = await r.text()
        assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg and "viewBox" in svg
        assert "<path" in svg and "<script" not in svg
        assert svg == console.qr_svg(url).decode()

        for body, status in (({"text": ""}, 422), ({"text": "x" * (console.MAX_QR_TEXT + 1)}, 422),
                             ({"text": 5}, 422), ({"text": "a\nb"}, 422), ([], 422), ({}, 422)):
            r = await http.post("/console/qr", json=body, headers={"X-CSRF-Token": csrf})
            assert r.status == status, body
        r = await http.post("/console/qr", data="text=x", headers={"X-CSRF-Token": csrf})
        assert r.status == 415
        r = await http.post("/console/qr", data=b"{nope", headers={"X-CSRF-Token": csrf,
                                                                  "Content-Type": "application/json"})
        assert r.status == 400
        r = await http.post("/console/qr", json={"text": url})
        assert r.status == 403
    expert = add_staff(services, "erik", "expert")
    async with client(server) as http:
        csrf = await sign_in(http, expert)
        r = await http.post("/console/qr", json={"text": url}, headers={"X-CSRF-Token": csrf})
        assert r.status == 403


async def test_rest_api_from_the_page_session_needs_the_csrf_header(server, services, counsellor):
    """What console.js and invite.js do: the API with the cookie and X-CSRF-Token."""
    async with client(server) as http:
        csrf = await sign_in(http, counsellor)
        room = await _create(http, csrf)
        invites = f"{ROOMS}/{room['id']}/invites"
        r = await http.post(invites, json={"role": "citizen", "name": "Frau M."})
        assert r.status == 403
        r = await http.post(invites, json={"role": "citizen", "name": "Frau M."}, headers={"X-CSRF-Token": csrf})
        assert r.status == 201
        invite = await r.json()
        assert invite["join_url"].endswith(f"/join/{room['id']}#{invite['token']}")
        r = await http.delete(f"{invites}/{invite['jti']}", headers={"X-CSRF-Token": csrf})
        assert r.status == 204


def _keys_used() -> set[str]:
    keys: set[str] = set()
    for path in [*(STATIC_DIR / "js").glob("*.js")]:
        if path.name not in ("console.js", "invite.js", "staffapi.js"):
            continue
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r'\bt\(\s*"([a-z0-9_.]+)"', text))
        keys |= set(re.findall(r'"((?:console|invite|signin)\.[a-z0-9_.]+)"', text))
    for name in ("signin.html", "console.html", "forbidden.html", "home.html", "_staffbar.html"):
        keys |= set(re.findall(r'\bt\(\s*"([a-z0-9_.]+)"', (TEMPLATES_DIR / name).read_text(encoding="utf-8")))
    for role in ("counsellor", "expert", "interpreter", "operator", "admin"):
        keys.add(f"signin.role.{role}")
    for role in ("citizen", "interpreter", "expert", "counsellor"):
        keys.add(f"invite.role.{role}")
    for state in ("open", "live", "ended"):
        keys.add(f"console.state.{state}")
    for reason in ("role", "csrf"):
        keys.add(f"signin.forbidden.{reason}")
    return {k for k in keys if not k.endswith(".")}  # prefixes of keys built in templates ("signin.role." ~ role)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_text_of_the_staff_pages_is_in_the_catalogs(lang):
    catalog = json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    keys = _keys_used()
    assert len(keys) > 50
    missing = sorted(k for k in keys if k not in catalog)
    assert not missing, missing


def test_qr_svg_scales():
    svg = console.qr_svg("https://beratung.example/join/r_1#t")
    assert b"viewBox" in svg and b"width=" not in svg.split(b">")[0]
