"""Restrictive networks for real: a participant in its own network namespace behind nftables rules.

* UDP dropped both ways (many county offices): the browser gets into the call through TURN
  over TCP; the operator dashboard shows the connection as relayed.
* Nothing but TCP 443 to the TURN server (and the web server): TURN over TLS on 443, with a
  certificate the test made (coturn with ``--cert``); once with Chromium, once with the
  Python participant, which checks the certificate against the test's own CA.
* Signalling works but nothing else does (only the web server is reachable, as through an
  HTTP proxy): the page tells the participant plainly what to ask their IT department for.

The server and coturn run on the host side of the namespace's veth link; the other
participant is a Python (aiortc) peer on the host that counts the frames it decodes. A
browser runs inside the namespace through a wrapper (``ip netns exec``). Skips without
root, ``ip``, ``nft``, coturn or chromium. Every wait is bounded; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from roomserver.peer.participant import Participant
from tests import netlab
from tests.browser.conftest import _chromium_available
from tests.browser.netsites import (
    API,
    Net,
    citizen_in_call,
    citizen_page,
    room_with_counsellor,
)
from tests.browser.pages import wait_js, wait_state
from tests.staff import add_staff
from tests.support import invite

WAIT = 60.0  # seconds: TURN allocation over TCP/TLS from a namespace, and ICE, within this

_reason = netlab.unavailable_reason()
pytestmark = [
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    pytest.mark.skipif(not _chromium_available(), reason="Debian chromium is not installed"),
    pytest.mark.skipif(netlab._tool("turnserver") is None, reason="turnserver not installed (apt-get install coturn)"),
]
async def local_path(page, peer: str) -> dict:
    """The local candidate of the pair in use towards ``peer``: type and, for relays, the protocol to TURN."""
    return await page.evaluate("""async (peer) => {
        const pc = window.roomserverDebug.connections()[peer];
        const report = await pc.getStats();
        let pair = null;
        report.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId); });
        const local = pair && report.get(pair.localCandidateId);
        return local ? {type: local.candidateType, relayProtocol: local.relayProtocol || null} : {};
    }""", peer)


async def operator_sees_relay(net: Net, artifacts: Path, test: str, seat: str) -> None:
    """The operator dashboard (Chromium on the host) shows the seat's connection as relayed."""
    operator = add_staff(net.services, "otto", "operator")
    page = await net.page(await net.browser(inside=False), "operator", artifacts, test)
    await page.goto(f"{net.base}/operator")
    await page.fill("#signin-username", operator.username)
    await page.fill("#signin-password", operator.password)
    await page.click("form button[type=submit]")
    await wait_js(page, "() => document.body.dataset.ready === 'true'", what="the dashboard")
    await wait_js(page, "(seat) => document.querySelector(`tr[data-seat='${seat}'] .op-path`)?.dataset.path === 'relay'",
                  seat, "the relayed path on the dashboard")
    text = await page.evaluate("(seat) => document.querySelector(`tr[data-seat='${seat}'] .op-path`).textContent", seat)
    assert text == "über TURN-Relais"


async def frames_flow(counsellor: Participant, peer: str, more: int = 10) -> None:
    """Video and audio from ``peer`` keep arriving: ``more`` new frames of each."""
    for kind in ("video", "audio"):
        have = counsellor.frames_received(peer, kind)
        assert await counsellor.wait_frames(peer, kind, have + more, WAIT) >= have + more


@pytest.mark.parametrize("network, protocol", [("udp-blocked", "tcp"), ("only-tcp-443", "tls")])
async def test_restrictive_network_relays_over_turn(network, protocol, tmp_path, artifacts, request):
    """UDP dropped both ways: TURN over TCP. Only TCP 443 to TURN (and the web server): TURN over TLS."""
    async with AsyncExitStack() as stack:
        net = Net(tmp_path, stack)
        await net.start_server()
        net.site.firewall(netlab.block_udp() if network == "udp-blocked"
                          else netlab.only_tcp(net.site.host_ip, [net.turn.tls_port, net.server.port]))
        async with aiohttp.ClientSession(base_url=net.base) as http:
            room, counsellor, page, citizen = await citizen_in_call(net, http, artifacts, request.node.name)
            await frames_flow(counsellor, citizen)
            path = await local_path(page, counsellor.id)
            assert path == {"type": "relay", "relayProtocol": protocol}, path
            # The page reports the path; the server keeps it for the operator.
            await wait_js(page, "(p) => window.roomserverDebug.collectStats().then((s) => s[p]?.candidate_type === 'relay')",
                          counsellor.id, "relay in the page's stats")
            await operator_sees_relay(net, artifacts, request.node.name, citizen)


async def test_python_participant_behind_tcp_443_only_relays_over_tls(tmp_path):
    """The aiortc participant in the namespace, as a subprocess: TURN over TLS with the certificate checked."""
    async with AsyncExitStack() as stack:
        net = Net(tmp_path, stack)
        await net.start_server()
        net.site.firewall(netlab.only_tcp(net.site.host_ip, [net.turn.tls_port, net.server.port]))
        async with aiohttp.ClientSession(base_url=net.base) as http:
            room, counsellor = await room_with_counsellor(net, http)
            token = (await invite(http, API, room, "expert", "Herr Kaya"))["token"]
            probe = await asyncio.create_subprocess_exec(
                *net.site.exec_argv(*probe_argv(net.ws, token)), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=probe_env(net.turn.cert))
            stack.push_async_callback(netlab.stop_async, probe)
            expert = await netlab.probe_report(probe, lambda r: any(
                p["state"] == "connected" and p["video"] >= 10 and p.get("candidate_type") == "relay"
                for p in r["peers"].values()), WAIT)
            assert expert["self"] in counsellor.peers
            await counsellor.wait_connected(expert["self"], WAIT)
            await frames_flow(counsellor, expert["self"])
            # The server's view, which the dashboard shows: the expert's seat goes through a relay.
            monitor_rows = await seat_figures(net, room)
            assert monitor_rows[expert["self"]]["candidate_type"] == "relay"
            # coturn's own account: the expert's allocation was on the TLS port, from the namespace.
            await netlab.stop_async(probe)
            session = re.compile(rf"user <\d+:{re.escape(expert['self'])}> .*local {re.escape(net.site.host_ip)}:443, "
                                 rf"remote {re.escape(net.site.ip)}:")
            for _ in range(100):
                if session.search(net.turn.allocations()):
                    break
                await asyncio.sleep(0.1)
            assert session.search(net.turn.allocations()), net.turn.allocations()[-2000:]


async def test_only_the_web_server_reachable_tells_what_to_ask_it_for(tmp_path, artifacts, request):
    """As behind an HTTP proxy: the web server answers, nothing else gets through. The join page's
    network check and the room both say plainly what to ask the IT department to open."""
    async with AsyncExitStack() as stack:
        net = Net(tmp_path, stack)
        await net.start_server()
        net.site.firewall(netlab.only_tcp(net.site.host_ip, [net.server.port]))
        host = net.site.host_ip
        expected = {"role": "alert", "title": "Ihr Netzwerk lässt Bild und Ton nicht durch", "rules": [
            ["rule_tls", f"TCP-Port 443 zu {host} (TURN über TLS, direkt, nicht über den Proxy)"],
            ["rule_turn", f"UDP- und TCP-Port 3478 zu {host} (TURN)"]]}
        async with aiohttp.ClientSession(base_url=net.base) as http:
            room, counsellor = await room_with_counsellor(net, http)

            link = (await invite(http, API, room, "citizen", "Ayşe"))["join_url"]
            join = await net.page(await net.browser(inside=True), "join-in-namespace", artifacts, request.node.name)
            await join.goto(link)
            await join.click("#consent-yes")
            await join.wait_for_selector("#screen-devices", state="visible")
            await join.fill("#name-input", "Ayşe")
            await join.click("#devices-next")
            await wait_js(join, "() => document.getElementById('check-verdict').dataset.verdict === 'failed'",
                          what="the failed network check", timeout_ms=int(WAIT * 1000))
            assert await read_advice(join) == expected

            page = await citizen_page(net, http, room, artifacts, request.node.name)
            await wait_state(page, "in-call")  # the signalling got through
            await wait_js(page, "() => !!document.getElementById('network-advice')", what="the network advice",
                          timeout_ms=int(WAIT * 1000 * 2))
            assert await read_advice(page) == expected


async def read_advice(page) -> dict:
    return await page.evaluate("""() => ({
        title: document.querySelector('#network-advice h2').textContent,
        rules: [...document.querySelectorAll('#network-advice li')].map((li) => [li.dataset.rule, li.textContent]),
        role: document.getElementById('network-advice').getAttribute('role')})""")


# -- the Python participant in a namespace ----------------------------------------------------


def probe_argv(ws: str, token: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "roomserver.peer.participant", "--url", ws, "--token", token,
            "--duration", "120", "--stats-interval", "1", "--report", "0.5", "--turn-transport", "tls"]


def probe_env(cert: Path) -> dict[str, str]:
    import os

    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "SSL_CERT_FILE": str(cert), "PYTHONPATH": root}


async def seat_figures(net: Net, room: str) -> dict[str, dict]:
    """The figures the operator dashboard gets for each seat of ``room`` (the monitor's snapshot)."""
    from roomserver.ops.monitor import MONITOR_KEY

    monitor = net.server.app[MONITOR_KEY]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        rows = {p["seat"]: p["figures"] for r in (await monitor.snapshot())["rooms"] if r["id"] == room
                for p in r["participants"]}
        if rows and all(f.get("candidate_type") for f in rows.values()):
            return rows
        assert loop.time() < deadline, f"no path in the figures: {rows}"
        await asyncio.sleep(0.5)
