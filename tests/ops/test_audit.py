"""The audit log: a whole consultation leaves every event; export as CSV and JSON; retention."""

from __future__ import annotations

import csv
import io
import json
from contextlib import AsyncExitStack

from aiohttp.test_utils import TestServer

from roomserver.app import create_app
from roomserver.ops.auditlog import apply_retention
from tests.staff import add_staff, client, sign_in
from tests.support import RawSocket
from tests.ws.test_desk import open_desk

DAY = 86400


async def test_a_full_consultation_is_audited_and_exported(server, services, http, api_headers):
    # The raw test sockets answer pings only while read; on a slow machine the sign-ins (argon2) take long.
    services.settings.signalling.heartbeat_seconds = 120
    counsellor = add_staff(services, "clara", "counsellor", display_name="Clara Beraterin")
    operator = add_staff(services, "otto", "operator")
    admin = add_staff(services, "ada", "admin")
    async with AsyncExitStack() as stack:
        staff = await stack.enter_async_context(client(server))
        csrf = await sign_in(staff, counsellor)
        h = {"X-CSRF-Token": csrf}
        r = await staff.post("/api/v1/rooms", json={"title": "Beratung", "waiting_room": True}, headers=h)
        assert r.status == 201
        room = (await r.json())["id"]
        # Invites: the counsellor's own, a citizen's, one withdrawn again.
        c_token = (await (await staff.post(f"/api/v1/rooms/{room}/invites", headers=h,
                                           json={"role": "counsellor", "name": "Clara Beraterin"})).json())["token"]
        z = await (await staff.post(f"/api/v1/rooms/{room}/invites", headers=h,
                                    json={"role": "citizen", "name": "Frau Mustermann"})).json()
        w = await (await staff.post(f"/api/v1/rooms/{room}/invites", headers=h,
                                    json={"role": "citizen", "name": "Herr Zweiter"})).json()
        d = await (await staff.post(f"/api/v1/rooms/{room}/invites", headers=h,
                                    json={"role": "citizen", "name": "Herr Dritter"})).json()
        assert (await staff.delete(f"/api/v1/rooms/{room}/invites/{d['jti']}", headers=h)).status == 204

        mod = await RawSocket.open(http)
        welcome = await mod.join(c_token)
        assert welcome["type"] == "welcome"
        # The withdrawn invite is refused (and audited: the token was genuine).
        refused = await RawSocket.open(http)
        assert (await refused.join(d["token"]))["code"] == "token_revoked"
        # A citizen waits and is admitted; another waits and is denied.
        citizen = await RawSocket.open(http)
        wait = await citizen.join(z["token"])
        assert wait["type"] == "waiting"
        await mod.send({"type": "admit", "peer": wait["self"]["id"]})
        await citizen.expect("welcome")
        second = await RawSocket.open(http)
        wait2 = await second.join(w["token"])
        await mod.send({"type": "deny", "peer": wait2["self"]["id"]})
        await second.closed()
        # An expert is called, accepts, joins and leaves.
        desk = await open_desk(stack, server, services, "abh1")
        await mod.send({"type": "call", "department": "auslaenderbehoerde"})
        ring = await desk.next("ring")
        await desk.send({"type": "accept", "call": ring["call"]["id"]})
        accepted = await desk.next("accepted")
        expert = await RawSocket.open(http)
        assert (await expert.join(accepted["url"].split("#", 1)[1]))["type"] == "welcome"
        await expert.send({"type": "leave"})
        await expert.closed()
        # An operator removes the citizen; the counsellor ends the room.
        ops = await stack.enter_async_context(client(server))
        ops_csrf = await sign_in(ops, operator)
        r = await ops.post(f"/operator/rooms/{room}/seats/{wait['self']['id']}/remove",
                           headers={"X-CSRF-Token": ops_csrf})
        assert r.status == 200
        await citizen.closed()
        await mod.send({"type": "end"})
        await mod.closed()

        actions = [e.action for e in await services.store.audit.query(room_id=room)]
        for expected in ("room.created", "token.issued", "token.revoked", "seat.join", "seat.refused", "seat.wait",
                         "seat.admit", "seat.deny", "call.requested", "call.rung", "call.accepted", "seat.leave",
                         "seat.remove", "operator.remove", "room.end"):
            assert expected in actions, (expected, actions)
        assert actions.count("token.issued") >= 5  # four invites and the expert's patch-in token
        every = await services.store.audit.query()
        signed_in = [e.actor for e in every if e.action == "auth.signed_in"]
        assert signed_in == [counsellor.id, desk.account_id, operator.id]
        text = json.dumps([e.__dict__ for e in every])
        for name in ("Clara", "Mustermann", "Zweiter", "Dritter"):
            assert name not in text  # who, when, what — never names
        assert c_token not in text and z["token"] not in text

        # Export: admins and the system key; JSON and CSV of a period.
        adm = await stack.enter_async_context(client(server))
        await sign_in(adm, admin)
        r = await adm.get("/api/v1/audit", params={"format": "json"})
        assert r.status == 200
        body = await r.json()
        assert body["truncated"] is False
        exported = [e["action"] for e in body["events"] if e["room_id"] == room]
        assert exported == actions
        r = await http.get("/api/v1/audit", params={"format": "csv"}, headers=api_headers)
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(await r.text())))
        assert [row["action"] for row in rows if row["room_id"] == room] == actions
        assert set(rows[0]) == {"id", "at", "actor", "actor_role", "action", "room_id", "subject", "detail"}
        # A period: nothing before it, nothing after it.
        first_at = body["events"][0]["at"]
        r = await http.get("/api/v1/audit", params={"until": first_at}, headers=api_headers)
        assert (await r.json())["events"] == []
        r = await http.get("/api/v1/audit", params={"since": "2099-01-01T00:00:00Z"}, headers=api_headers)
        assert (await r.json())["events"] == []
        r = await http.get("/api/v1/audit", params={"limit": "2"}, headers=api_headers)
        limited = await r.json()
        assert len(limited["events"]) == 2 and limited["truncated"] is True
        # Nobody else.
        r = await ops.get("/api/v1/audit")
        assert r.status == 403
        r = await staff.get("/api/v1/audit")
        assert r.status == 403
        assert (await http.get("/api/v1/audit")).status == 401
        r = await http.get("/api/v1/audit", params={"format": "xml"}, headers=api_headers)
        assert r.status == 422
        r = await http.get("/api/v1/audit", params={"since": "yesterday"}, headers=api_headers)
        assert r.status == 422


def test_csv_cells_never_start_a_formula():
    from roomserver.ops.auditlog import to_csv
    from roomserver.store.audit import AuditEvent
    text = to_csv([AuditEvent(1, 0, "=cmd()", None, "x", None, "+1", {})])
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row[2] == "'=cmd()" and row[6] == "'+1"


async def test_retention_deletes_exactly_what_is_older_than_the_limit(services):
    now = 1_800_000_000
    limit = services.settings.audit.retention_days * DAY
    assert services.settings.audit.retention_days == 90
    for at in (now - limit - 1, now - limit - DAY, now - limit, now - limit + 1, now):
        services.store.blocking.audit.append(at=at, actor="t", action="test.event")
    assert await apply_retention(services, now) == 2
    left = [e.at for e in services.store.blocking.audit.query(action="test.event")]
    assert left == [now - limit, now - limit + 1, now]
    kept = services.store.blocking.audit.query(action="audit.retention")
    assert len(kept) == 1 and kept[0].detail["deleted"] == 2
    assert await apply_retention(services, now) == 0


async def test_retention_runs_at_start(services):
    now = services.now()
    await services.store.audit.append(at=now - 91 * DAY, actor="t", action="test.old")
    await services.store.audit.append(at=now - 89 * DAY, actor="t", action="test.young")
    srv = TestServer(create_app(services), host="127.0.0.1", port=0)
    await srv.start_server()
    try:
        assert await services.store.audit.query(action="test.old") == []
        assert len(await services.store.audit.query(action="test.young")) == 1
    finally:
        await srv.close()
