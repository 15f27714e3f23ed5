"""The outbox as operators see it: the list and counts by role, retry of failed messages (audited), the
metrics, and the e-mail address erased once the appointment is over."""

from __future__ import annotations

import time

import aiohttp

from roomserver.ops.outbox import OUTBOX_KEY
from tests.ops.test_mailer import iso, mail_env, until_states
from tests.staff import add_staff, client, sign_in
from tests.support import create_room, sql


async def test_operators_see_failed_messages_without_addresses_and_send_them_again(
        server_factory, api_headers, smtp) -> None:
    smtp.refuse = "550 5.1.1 no such mailbox"
    srv, svc = await server_factory(**mail_env(smtp.port), ROOMSERVER_MAIL_REMINDERS="")
    operator = add_staff(svc, "olga", "operator")
    counsellor = add_staff(svc, "clara", "counsellor")
    start = int(time.time()) + 86400
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        r = await http.post(f"/api/v1/rooms/{room}/invites", headers=api_headers,
                            json={"role": "citizen", "name": "Ayşe", "email": "ayse@example.org"})
        jti = (await r.json())["jti"]
        await until_states(svc, jti, lambda s: s == [("invitation", "failed")], "failed at once")
    async with client(srv) as ops, client(srv) as staff:
        await sign_in(ops, operator)
        r = await ops.get("/api/v1/outbox", params={"state": "failed"})
        assert r.status == 200
        body = await r.json()
        assert body["counts"]["email"]["failed"] == 1 and body["counts"]["webhook"] == {
            "pending": 0, "sent": 0, "failed": 0, "cancelled": 0}
        [message] = body["messages"]
        assert (message["kind"], message["type"], message["state"], message["last_error"]) == (
            "email", "invitation", "failed", "550")
        assert "example.org" not in str(body) and jti not in str(body)
        # Counsellors may not; bad filters are refused with a code.
        csrf = await sign_in(staff, counsellor)
        r = await staff.get("/api/v1/outbox")
        assert (r.status, (await r.json())["error"]["code"]) == (403, "forbidden")
        r = await ops.get("/api/v1/outbox", params={"state": "lost"})
        assert (r.status, (await r.json())["error"]["code"]) == (422, "invalid_request")
        # The mailbox exists now: "send again" delivers it, and the operator's retry is audited.
        smtp.refuse = None
        ops_csrf = (await (await ops.get("/api/v1/session")).json())["csrf_token"]
        r = await ops.post(f"/api/v1/outbox/{message['id']}/retry", headers={"X-CSRF-Token": ops_csrf})
        assert r.status == 200, await r.text()
        await smtp.wait(1)
        await until_states(svc, jti, lambda s: s == [("invitation", "sent")], "sent after the retry")
        r = await ops.post(f"/api/v1/outbox/{message['id']}/retry", headers={"X-CSRF-Token": ops_csrf})
        assert (r.status, (await r.json())["error"]["code"]) == (409, "message_not_failed")
        r = await ops.post("/api/v1/outbox/999999/retry", headers={"X-CSRF-Token": ops_csrf})
        assert (r.status, (await r.json())["error"]["code"]) == (404, "not_found")
        r = await ops.post("/api/v1/outbox/retry-failed", headers={"X-CSRF-Token": ops_csrf})
        assert (r.status, await r.json()) == (200, {"retried": 0})
        assert csrf
    audited = [(e.action, e.actor) for e in await svc.store.audit.query(action="outbox.retried")]
    assert audited == [("outbox.retried", operator.id)]
    # The metrics: the cluster's counts by kind and state, and this node's outcomes.
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        text = await (await http.get("/metrics")).text()
    assert 'roomserver_outbox_messages{kind="email",state="sent"} 1.0' in text
    assert 'roomserver_outbox_deliveries_total{kind="email",outcome="failed"} 1.0' in text
    assert 'roomserver_outbox_deliveries_total{kind="email",outcome="sent"} 1.0' in text


async def test_the_address_is_erased_once_the_appointment_is_over(server_factory, api_headers, smtp) -> None:
    srv, svc = await server_factory(**mail_env(smtp.port))
    start = int(time.time()) + 86400
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        r = await http.post(f"/api/v1/rooms/{room}/invites", headers=api_headers,
                            json={"role": "citizen", "name": "Ayşe", "email": "ayse@example.org"})
        assert r.status == 201
        jti = (await r.json())["jti"]
        await until_states(svc, jti, lambda s: s[0] == ("invitation", "sent"), "sent")
        worker = srv.app[OUTBOX_KEY]
        await worker._forget()  # not over yet: kept
        assert sql(svc, "SELECT address FROM invite_emails") == [{"address": "ayse@example.org"}]
        r = await http.post(f"/api/v1/rooms/{room}/end", headers=api_headers)
        assert r.status == 200
    await until_states(svc, jti, lambda s: s[-1] == ("cancel", "sent"), "the CANCEL sent")  # ended before its start
    await worker._forget()
    assert sql(svc, "SELECT address, name, language FROM invite_emails") == [
        {"address": None, "name": "Ayşe", "language": "de"}]
    assert "ayse@example.org" not in str(sql(svc, "SELECT * FROM outbox"))
