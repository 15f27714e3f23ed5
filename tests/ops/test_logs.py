"""Logs at INFO hold no names, no IP addresses and no tokens — across roomserver and aiohttp."""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import AsyncExitStack

from tests.staff import add_staff, client, sign_in
from tests.support import RawSocket
from tests.ws.test_desk import open_desk

CITIZEN = "Ayşe Yılmaz-Testname"
COUNSELLOR = "Clara Beraterin-Testname"
IP = re.compile(r"\b127\.0\.0\.1\b|\b::1\b|\b\d{1,3}(?:\.\d{1,3}){3}\b")


async def test_a_realistic_flow_logs_no_names_addresses_or_tokens(server, services, http, api_headers, caplog):
    # The raw test sockets answer pings only while read; on a slow machine the sign-ins (argon2) take long.
    services.settings.signalling.heartbeat_seconds = 120
    caplog.set_level(logging.INFO)
    for name in ("roomserver", "aiohttp", "aiohttp.access", "aiohttp.server", "aiohttp.web"):
        logging.getLogger(name).setLevel(logging.INFO)
    secrets: list[str] = []
    counsellor = add_staff(services, "clara", "counsellor", display_name=COUNSELLOR)
    async with AsyncExitStack() as stack:
        staff = await stack.enter_async_context(client(server))
        csrf = await sign_in(staff, counsellor)
        secrets.append(csrf)
        secrets.append(staff.cookie_jar.filter_cookies(server.make_url("/"))["rs_session"].value)
        h = {"X-CSRF-Token": csrf}
        r = await staff.post("/api/v1/rooms", json={"title": "Beratung", "waiting_room": True}, headers=h)
        room = (await r.json())["id"]
        c = await (await staff.post(f"/api/v1/rooms/{room}/invites", headers=h,
                                    json={"role": "counsellor", "name": COUNSELLOR})).json()
        z = await (await staff.post(f"/api/v1/rooms/{room}/invites", headers=h,
                                    json={"role": "citizen", "name": CITIZEN})).json()
        secrets += [c["token"], z["token"]]
        # Query strings never reach the log, even when a careless client puts a token or a name there.
        await http.get(f"/join/{room}", params={"token": z["token"], "name": CITIZEN})
        await staff.get("/console/rooms", params={"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"})
        await http.get("/signin", params={"next": f"/console?who={CITIZEN}"})

        mod = await RawSocket.open(http)
        welcome = await mod.join(c["token"])
        secrets.append(welcome["resume_secret"])
        citizen = await RawSocket.open(http)
        wait = await citizen.join(z["token"], name=CITIZEN)
        secrets.append(wait["resume_secret"])
        await mod.send({"type": "admit", "peer": wait["self"]["id"]})
        await citizen.expect("welcome")
        await citizen.send({"type": "stats", "peers": {welcome["self"]["id"]: {"rtt_ms": 20, "loss": 0}}})
        # A refused join: a token that does not verify.
        bad = await RawSocket.open(http)
        await bad.join("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
        # A call to an expert desk.
        desk = await open_desk(stack, server, services, "abh1")
        await mod.send({"type": "call", "department": "auslaenderbehoerde"})
        ring = await desk.next("ring")
        await desk.send({"type": "accept", "call": ring["call"]["id"]})
        accepted = await desk.next("accepted")
        secrets.append(accepted["url"].split("#", 1)[1])
        # Drop and resume, then the metrics and the end.
        await citizen.ws.close()
        again = await RawSocket.open(http)
        await again.send({"type": "resume", "secret": wait["resume_secret"]})
        await again.expect("welcome")
        await http.get("/metrics")
        await mod.send({"type": "end"})
        await mod.closed()
        await staff.post("/signout", data={"csrf_token": csrf}, allow_redirects=False)
        # A malformed HTTP request: aiohttp logs it as an error, without the client's address.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        await writer.drain()
        assert b" 400 " in (await asyncio.wait_for(reader.read(200), 10)).split(b"\r\n", 1)[0]
        writer.close()

    lines = [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records]
    assert any(line.startswith("aiohttp.access") for line in lines), "the access log was not captured"
    assert any(f"GET /join/{room} " in line for line in lines)  # the path, without its query string
    assert any(line.startswith("aiohttp.server ERROR Error handling request") for line in lines)
    text = "\n".join(lines) + "\n" + caplog.text
    for secret in secrets:
        assert secret not in text
    for name in (CITIZEN, COUNSELLOR, "Ay%C5%9Fe", "Clara", "Testname"):
        assert name not in text, name
    assert not IP.search(text), IP.search(text)
    assert "?" not in "\n".join(line for line in lines if line.startswith("aiohttp.access"))
