"""The operator dashboard's edges: who may open the page, its feed and its actions; CSRF; what the feed shows."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.staff import add_staff, client, sign_in
from tests.support import WAIT, create_room, invite, joined


async def _next_sse(response: aiohttp.ClientResponse, name: str) -> dict[str, Any]:
    """Read the feed until an event called ``name``; its data."""
    async def read() -> dict[str, Any]:
        current = None
        while True:
            line = (await response.content.readline()).decode()
            assert line, "feed closed"
            line = line.rstrip("\n")
            if line.startswith("event: "):
                current = line[len("event: "):]
            elif line.startswith("data: ") and current == name:
                return json.loads(line[len("data: "):])
    return await asyncio.wait_for(read(), WAIT)


async def _snapshot_until(response: aiohttp.ClientResponse, predicate) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            snap = await _next_sse(response, "snapshot")
            if predicate(snap):
                return snap
    return await asyncio.wait_for(read(), WAIT)


async def test_non_operators_get_403_on_page_feed_and_actions(server, services, http, api_headers):
    room = await create_room(http, api_headers)
    sock, welcome = await joined(http, api_headers, room, "counsellor", "Clara Beraterin")
    seat = welcome["self"]["id"]
    for role in ("counsellor", "admin", "expert"):
        staff = add_staff(services, f"user-{role}", role)
        async with client(server) as browser:
            csrf = await sign_in(browser, staff)
            r = await browser.get("/operator", allow_redirects=False)
            assert r.status == 403, role
            r = await browser.get("/operator/feed")
            assert r.status == 403, role
            assert (await r.json())["error"]["code"] == "forbidden"
            for path in (f"/operator/rooms/{room}/end", f"/operator/rooms/{room}/seats/{seat}/remove"):
                r = await browser.post(path, headers={"X-CSRF-Token": csrf})
                assert r.status == 403, (role, path)
                assert (await r.json())["error"]["code"] == "forbidden"
    # Anonymous: the page sends to the sign-in form, the feed and actions say 401.
    r = await http.get("/operator", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/signin?next=/operator")
    assert (await http.get("/operator/feed")).status == 401
    assert (await http.post(f"/operator/rooms/{room}/end")).status == 401
    # An API key is not an operator session.
    assert (await http.get("/operator/feed", headers=api_headers)).status == 401
    # Nothing happened to the room.
    assert (await services.store.rooms.get(room)).state == "live"
    await sock.close()


async def test_actions_need_the_csrf_header_and_same_origin(server, services, http, api_headers):
    room = await create_room(http, api_headers)
    sock, welcome = await joined(http, api_headers, room, "counsellor")
    operator = add_staff(services, "otto", "operator")
    async with client(server) as browser:
        csrf = await sign_in(browser, operator)
        for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}):
            r = await browser.post(f"/operator/rooms/{room}/end", headers=headers)
            assert r.status == 403, headers
            assert (await r.json())["error"]["code"] == "csrf_failed"
        r = await browser.get("/operator/feed", headers={"Origin": "https://evil.example"})
        assert r.status == 403
        assert (await services.store.rooms.get(room)).state == "live"
        assert not await services.store.audit.query(action="operator.end_room")
    await sock.close()


async def test_feed_shows_rooms_participants_figures_and_events_without_names(server, services, http, api_headers):
    operator = add_staff(services, "otto", "operator")
    async with client(server) as browser:
        csrf = await sign_in(browser, operator)
        page = await browser.get("/operator")
        assert page.status == 200
        html = await page.text()
        assert "<script type=\"module\"" in html and "<script>" not in html and "style=" not in html
        feed = await browser.get("/operator/feed")
        assert feed.status == 200 and feed.headers["Content-Type"].startswith("text/event-stream")
        first = await _next_sse(feed, "snapshot")
        assert first["rooms"] == []

        room = await create_room(http, api_headers, title="Beratung Aufenthalt")
        counsellor, welcome = await joined(http, api_headers, room, "counsellor", "Clara Beraterin")
        citizen, cw = await joined(http, api_headers, room, "citizen", "Frau Mustermann")
        await citizen.send({"type": "stats", "peers": {welcome["self"]["id"]: {
            "rtt_ms": 42.5, "loss": 0.01, "bitrate_kbps": 800, "state": "connected", "candidate_type": "relay"}}})
        snap = await _snapshot_until(feed, lambda s: s["rooms"] and any(
            p["figures"]["rtt_ms"] for p in s["rooms"][0]["participants"]))
        text = json.dumps(snap)
        assert "Clara" not in text and "Mustermann" not in text  # operators see roles, not names
        r = snap["rooms"][0]
        assert r["id"] == room and r["title"] == "Beratung Aufenthalt" and r["state"] == "live"
        assert r["by_role"] == {"counsellor": 1, "citizen": 1} and r["waiting"] == 0 and r["started_at"]
        citizen_row = next(p for p in r["participants"] if p["role"] == "citizen")
        assert citizen_row["figures"]["rtt_ms"] == 42.5 and citizen_row["figures"]["loss"] == 0.01
        assert citizen_row["figures"]["bitrate_kbps"] == 800 and citizen_row["connection"] == "online"
        assert citizen_row["figures"]["candidate_type"] == "relay"  # the path: through TURN
        counsellor_row = next(p for p in r["participants"] if p["role"] == "counsellor")
        assert counsellor_row["figures"]["candidate_type"] is None  # nothing reported yet
        kinds = [e["kind"] for e in snap["events"]]
        assert kinds.count("participant.joined") == 2 and "room.started" in kinds

        # Remove the citizen: the socket closes with 4410, the audit says who did it.
        r2 = await browser.post(f"/operator/rooms/{room}/seats/{cw['self']['id']}/remove",
                                headers={"X-CSRF-Token": csrf})
        assert r2.status == 200, await r2.text()
        assert await citizen.closed() == 4410
        snap = await _snapshot_until(feed, lambda s: len(s["rooms"][0]["participants"]) == 1)
        removed = await services.store.audit.query(action="operator.remove")
        assert [(e.actor, e.actor_role, e.room_id, e.detail["seat"]) for e in removed] == [
            (operator.id, "operator", room, cw["self"]["id"])]

        # End the room: the counsellor is disconnected, the room is gone from the feed, audited.
        r3 = await browser.post(f"/operator/rooms/{room}/end", headers={"X-CSRF-Token": csrf})
        assert r3.status == 200
        assert await counsellor.closed() == 4411
        await _snapshot_until(feed, lambda s: s["rooms"] == [])
        assert (await services.store.rooms.get(room)).state == "ended"
        assert (await services.store.rooms.get(room)).ended_reason == "operator"
        assert [e.actor for e in await services.store.audit.query(action="operator.end_room")] == [operator.id]
        # A second end: not live any more.
        r4 = await browser.post(f"/operator/rooms/{room}/end", headers={"X-CSRF-Token": csrf})
        assert r4.status == 404
        feed.close()


async def test_operators_see_which_notice_version_each_consent_was_given_to(server, services, http, api_headers):
    from roomserver.pages.notice import build as build_notice

    room = await create_room(http, api_headers, title="Beratung Aufenthalt")
    first = await invite(http, api_headers, room, "citizen", "Frau Mustermann")
    second = await invite(http, api_headers, room, "interpreter", "Herr Dolmetscher")
    old = build_notice(services.settings).version
    assert (await http.post(f"/join/{room}/consent", json={"token": first["token"], "notice": old})).status == 201
    services.settings.privacy.dpo_contact = "neu@kreisstadt.example"  # a new notice from now on
    new = build_notice(services.settings).version
    assert (await http.post(f"/join/{room}/consent", json={"token": second["token"], "notice": new})).status == 201
    assert (await http.post(f"/join/{room}/consent/withdraw", json={"token": second["token"]})).status == 200

    operator = add_staff(services, "otto", "operator")
    async with client(server) as browser:
        await sign_in(browser, operator)
        r = await browser.get("/operator/consents")
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        body = await r.json()
        assert body["current"] == new
        rows = [(c["room"], c["room_title"], c["role"], c["notice"], c["current"], c["withdrawn_at"] is not None)
                for c in body["consents"]]
        assert rows == [(room, "Beratung Aufenthalt", "interpreter", new, True, True),
                        (room, "Beratung Aufenthalt", "citizen", old, False, False)]  # newest first
        assert "Mustermann" not in await r.text() and "Dolmetscher" not in await r.text()  # metadata only
        filtered = await (await browser.get(f"/operator/consents?room={room}")).json()
        assert len(filtered["consents"]) == 2
        assert (await (await browser.get("/operator/consents?room=r_other")).json())["consents"] == []
        r = await browser.get("/operator/consents?room=../../etc")
        assert r.status == 422 and (await r.json())["error"]["code"] == "invalid_request"
        page = await (await browser.get("/operator")).text()
        assert new in page  # the page names the current version
    for role in ("counsellor", "expert"):
        staff = add_staff(services, f"user-{role}", role)
        async with client(server) as browser:
            await sign_in(browser, staff)
            assert (await browser.get("/operator/consents")).status == 403
    assert (await http.get("/operator/consents")).status == 401
