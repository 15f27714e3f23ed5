"""Short join links /j/XXXX-XXXX-XXXX through the real server: minted with an invite, resolved by the
join page, withdrawn with the invite, never kept or logged in clear, and a sparse QR code."""

from __future__ import annotations

import logging
import re

import segno

from roomserver.core import shortcode
from roomserver.pages.console import qr_svg, qr_text
from tests.support import RawSocket, create_room, database_text, invite, sql

SHORT = re.compile(r"^http://127\.0\.0\.1:\d+/j/([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})$")


async def test_an_invite_has_a_short_link_that_leads_to_the_same_seat(server, http, api_headers, services):
    room = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room, "citizen", "Ayşe")
    code = SHORT.match(inv["short_url"]).group(1)
    assert len(inv["short_url"]) < 60 < len(inv["join_url"])

    page = await http.get(f"/j/{code}")
    assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
    assert code not in await page.text()  # the page reads the code from its address, the server never echoes it
    assert (await http.get(f"/J/{code}")).status == 200  # the QR code's capitals

    r = await http.post("/j/resolve", json={"code": code.lower().replace("-", " ")})
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    body = await r.json()
    assert body["room"] == room
    claims = services.codec.decode(body["token"], services.now())
    original = services.codec.decode(inv["token"], services.now())
    assert (claims.jti, claims.sub, claims.role, claims.name, claims.nbf, claims.exp) == \
        (original.jti, original.sub, original.role, original.name, original.nbf, original.exp)
    # The join page checks it like a long link, and it seats the person.
    r = await http.post(f"/join/{room}/check", json={"token": body["token"]})
    assert r.status == 200 and (await r.json())["name"] == "Ayşe"
    sock = await RawSocket.open(http)
    assert (await sock.join(body["token"], room=room))["type"] == "welcome"
    await sock.ws.close()

    # The database keeps a hash of the code, never the code or a token.
    rows = sql(services, "SELECT * FROM short_links")
    assert [r["code_hash"] for r in rows] == [shortcode.digest(code.replace("-", ""))]
    dump = database_text(services)
    assert code.replace("-", "") not in dump and code not in dump and inv["token"] not in dump


async def test_withdrawing_the_invite_withdraws_the_short_link(server, http, api_headers):
    room = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room, "citizen", "Ayşe")
    code = SHORT.match(inv["short_url"]).group(1)
    assert (await http.delete(f"/api/v1/rooms/{room}/invites/{inv['jti']}", headers=api_headers)).status == 204
    r = await http.post("/j/resolve", json={"code": code})
    assert r.status == 404 and (await r.json())["error"]["code"] == "short_link_unknown"


async def test_a_denied_citizens_short_link_says_withdrawn(server, http, api_headers):
    room = await create_room(http, api_headers, waiting_room=True)
    host = await RawSocket.open(http)
    await host.join((await invite(http, api_headers, room, "counsellor", "Frau Weber"))["token"], room=room)
    inv = await invite(http, api_headers, room, "citizen", "Ayşe")
    guest = await RawSocket.open(http)
    assert (await guest.join(inv["token"], room=room))["type"] == "waiting"
    lobby = await host.expect("lobby")
    while not lobby["waiting"]:
        lobby = await host.expect("lobby")
    await host.send({"type": "deny", "peer": lobby["waiting"][0]["id"]})
    assert await guest.closed() == 4403
    r = await http.post("/j/resolve", json={"code": SHORT.match(inv["short_url"]).group(1)})
    assert (await r.json())["error"]["code"] == "token_revoked"
    await host.ws.close()


async def test_bad_codes_get_a_clear_error(server, http):
    for body in ({"code": "ABCD-EFGH-JKMN"}, {"code": "nonsense"}, {"code": ""}):
        r = await http.post("/j/resolve", json=body)
        assert r.status == 404 and (await r.json())["error"]["code"] == "short_link_unknown"
    r = await http.post("/j/resolve", json={"code": 5})
    assert r.status == 422
    r = await http.post("/j/resolve", data="code=x")
    assert r.status == 415


async def test_counsellor_tokens_get_no_short_link(server, http, api_headers):
    room = await create_room(http, api_headers)
    assert (await invite(http, api_headers, room, "counsellor", "Frau Weber"))["short_url"] is None
    assert (await invite(http, api_headers, room, "interpreter", "Dana"))["short_url"]


async def test_the_code_never_reaches_the_access_log(server, http, api_headers, caplog):
    room = await create_room(http, api_headers)
    code = SHORT.match((await invite(http, api_headers, room, "citizen", "Ayşe"))["short_url"]).group(1)
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        await http.get(f"/j/{code}")
        await http.get(f"/J/{code.lower()}")
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any(line.startswith("GET /j/… 200") for line in lines), lines
    assert not [line for line in lines if code[:4] in line.upper()], lines


def test_the_qr_code_of_a_short_link_is_small_and_sparse():
    url = "https://beratung.landkreis-musterstadt.de/j/K7QM-3XWD-9FHT"
    assert qr_text(url) == url.upper()
    short = segno.make(qr_text(url), error="l", micro=False)
    long = segno.make("https://beratung.landkreis-musterstadt.de/join/r_abcdefgh1234#" + "e" * 520, error="l",
                      micro=False)
    assert short.mode == "alphanumeric" and short.version <= 3  # at most 29 x 29 modules
    assert long.version >= 15
    assert b'viewBox="0 0 37 37"' in qr_svg(url)  # 29 modules and the quiet zone
    # Anything else is encoded as it is.
    assert qr_text("https://beratung.example/join/r_1#t") == "https://beratung.example/join/r_1#t"
    assert qr_text("https://host/prefix/j/K7QM-3XWD-9FHT") == "https://host/prefix/j/K7QM-3XWD-9FHT"
