"""The desk page and the call panel's directory endpoint (roomserver/pages/desk.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from roomserver.domain.demo import DEPARTMENTS
from tests.staff import add_staff, client, post_signin, sign_in
from tests.support import sql


def _departments(services) -> None:
    for dept_id, name, kind in DEPARTMENTS:
        if services.store.blocking.directory.department(dept_id) is None:
            services.store.blocking.directory.add_department(dept_id, name, kind, services.now())


async def test_desk_page_for_experts_and_interpreters_only(server, services):
    _departments(services)
    expert = add_staff(services, "erika", "expert", display_name="Erika Expertin")
    sql(services, "UPDATE accounts SET department_id = ? WHERE id = ?", "auslaenderbehoerde", expert.id)
    interpreter = add_staff(services, "ivo", "interpreter", display_name="Ivo Dolmetscher")
    await services.store.directory.set_languages(interpreter.id, {"dgs", "ar"})
    counsellor = add_staff(services, "clara", "counsellor")
    async with client(server) as http:
        r = await http.get("/desk", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/signin?next=/desk"
        await sign_in(http, expert)
        r = await http.get("/desk")
        html = await r.text()
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        assert "Erika Expertin" in html and "Ausländerbehörde" in html and "js/desk.js" in html
        assert "<script>" not in html and "style=" not in html  # strict CSP: no inline script or style
        for label in ("Verfügbar", "Beschäftigt", "Abwesend"):
            assert label in html
        english = await (await http.get("/desk?lang=en")).text()
        assert "My desk" in english and "Available" in english and 'lang="en"' in english
    async with client(server) as http:
        await sign_in(http, interpreter)
        html = await (await http.get("/desk")).text()
        assert "Deutsche Gebärdensprache" in html and "Arabisch" in html
    async with client(server) as http:
        await sign_in(http, counsellor)
        r = await http.get("/desk")
        assert r.status == 403 and "Kein Zugriff" in await r.text()


async def test_signin_lands_experts_on_their_desk(server, services):
    expert = add_staff(services, "erika", "expert")
    async with client(server) as http:
        r = await post_signin(http, expert.username, expert.password)
        assert r.status == 303 and r.headers["Location"] == "/desk"


async def test_directory_for_counsellors_counts_available_desks(server, services):
    _departments(services)
    interpreter = add_staff(services, "ivo", "interpreter")
    await services.store.directory.set_languages(interpreter.id, {"dgs", "tr"})
    counsellor = add_staff(services, "clara", "counsellor")
    expert = add_staff(services, "erika", "expert")
    sql(services, "UPDATE accounts SET department_id = ? WHERE id = ?", "auslaenderbehoerde", expert.id)
    async with client(server) as anonymous:
        r = await anonymous.get("/desk/directory")
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthenticated"
    async with client(server) as http, client(server) as desk_http:
        await sign_in(http, counsellor)
        body = await (await http.get("/desk/directory")).json()
        depts = {d["id"]: d for d in body["departments"]}
        assert depts["auslaenderbehoerde"] == {"id": "auslaenderbehoerde", "name": "Ausländerbehörde",
                                               "kind": "county", "available": 0}
        assert [lang["code"] for lang in body["languages"]][0] == "dgs"
        assert {lang["code"]: lang["label"] for lang in body["languages"]}["tr"] == "Türkisch"
        # an expert opens the desk: one available for the foreigners' office
        await sign_in(desk_http, expert)
        origin = str(server.make_url("")).rstrip("/")
        ws = await desk_http.ws_connect("/desk/ws", headers={"Origin": origin})
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "desk"
        body = await (await http.get("/desk/directory")).json()
        assert {d["id"]: d["available"] for d in body["departments"]}["auslaenderbehoerde"] == 1
        await ws.send_json({"type": "availability", "status": "away"})
        assert (await ws.receive_json(timeout=10))["type"] == "presence"
        body = await (await http.get("/desk/directory")).json()
        assert {d["id"]: d["available"] for d in body["departments"]}["auslaenderbehoerde"] == 0
        await ws.close()
    async with client(server) as http:
        await sign_in(http, expert)
        r = await http.get("/desk/directory")
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"


def test_desk_and_call_texts_are_in_the_staff_catalogs():
    root = Path(__file__).resolve().parents[2]
    used: set[str] = set()
    for name in ("web/static/js/desk.js", "web/static/js/callpanel.js", "web/templates/desk.html"):
        used |= set(re.findall(r'"((?:desk|call)\.[a-z0-9_.]+)"', (root / name).read_text(encoding="utf-8")))
    for reason in ("taken", "cancelled", "timed_out", "declined", "accepted_elsewhere", "unavailable"):
        used.add(f"desk.stop.{reason}")
    for state in ("connecting", "connected", "reconnecting", "reconnected"):
        used.add(f"desk.connection.{state}")
    for status in ("available", "busy", "away"):
        used.add(f"desk.status.{status}")
    for code in ("not_returnable", "already_in_room", "in_other_consultation"):
        used.add(f"desk.error.{code}")
    if "call.ringing" in used:  # a plural: tn("call.ringing", n) picks call.ringing.one / .other
        used = (used - {"call.ringing"}) | {"call.ringing.one", "call.ringing.other"}
    used = {k for k in used if not k.endswith(".")}
    assert len(used) > 40
    for lang in ("de", "en"):
        catalog = json.loads((root / f"web/static/i18n/{lang}.json").read_text(encoding="utf-8"))
        assert not sorted(k for k in used if k not in catalog), lang
