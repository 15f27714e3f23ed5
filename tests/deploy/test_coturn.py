"""deploy/coturn/turnserver.conf in a real coturn, with credentials the server mints from the same secret.

The test swaps only addresses, ports, certificate, secret and state paths (each
swap must find its line) and keeps every other line: the TLS rules, the quotas,
and the refusal to relay into private networks.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint

from roomserver import config
from roomserver.core.turn import mint_credentials
from tests.conftest import ROOT
from tests.netlab import stop
from tests.production import certificate, free_port

CONF = ROOT / "deploy" / "coturn" / "turnserver.conf"
TURNSERVER = shutil.which("turnserver") or shutil.which("turnserver", path="/usr/bin:/usr/sbin")
SECRET = "turn-secret-" + "t" * 20


def _free_udp_tcp_port() -> int:
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def render(workdir: Path, port: int, tls_port: int, cert: Path, key: Path) -> str:
    text = CONF.read_text()
    swaps = [
        ("listening-port=3478\n", f"listening-port={port}\nlistening-ip=127.0.0.1\nrelay-ip=127.0.0.1\n"),
        ("tls-listening-port=443\n", f"tls-listening-port={tls_port}\n"),
        ("static-auth-secret=CHANGE-ME-to-the-value-of-ROOMSERVER_ICE_TURN_SECRET\n", f"static-auth-secret={SECRET}\n"),
        ("/etc/letsencrypt/live/turn.example.org/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/turn.example.org/privkey.pem", str(key)),
        ("log-file=/dev/null\n", f"log-file=/dev/null\npidfile={workdir / 'turnserver.pid'}\n"
                                 f"userdb={workdir / 'turndb'}\nno-rfc5780\n"),
    ]
    for old, new in swaps:
        assert old in text, f"deploy/coturn/turnserver.conf no longer has {old.strip()!r}"
        text = text.replace(old, new)
    return text


def test_the_servers_turn_settings_match_coturn() -> None:
    text = CONF.read_text()
    settings = config.load(ROOT / "deploy" / "roomserver.toml", env={"ROOMSERVER_ICE_TURN_SECRET": SECRET})
    port = re.search(r"^listening-port=(\d+)$", text, re.M).group(1)
    tls_port = re.search(r"^tls-listening-port=(\d+)$", text, re.M).group(1)
    assert f"turn:turn.example.org:{port}?transport=udp" in settings.ice.turn_urls
    assert f"turn:turn.example.org:{port}?transport=tcp" in settings.ice.turn_urls
    assert f"turns:turn.example.org:{tls_port}?transport=tcp" in settings.ice.turn_urls
    assert tls_port == "443" and "use-auth-secret" in text.splitlines()
    for private in ("10.0.0.0-10.255.255.255", "172.16.0.0-172.31.255.255", "192.168.0.0-192.168.255.255",
                    "127.0.0.0-127.255.255.255", "169.254.0.0-169.254.255.255", "::1",
                    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"):
        assert f"denied-peer-ip={private}" in text.splitlines(), private
    assert "allow-loopback-peers" not in text and "no-tlsv1" in text.splitlines()


@pytest.mark.skipif(TURNSERVER is None, reason="turnserver not installed (apt-get install coturn)")
async def test_coturn_runs_the_deploy_file_and_refuses_private_peers(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path / "tls")
    port, tls_port = _free_udp_tcp_port(), free_port()
    conf = tmp_path / "turnserver.conf"
    conf.write_text(render(tmp_path, port, tls_port, cert, key))
    out = (tmp_path / "stdout.log").open("wb")
    proc = subprocess.Popen([TURNSERVER, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT)
    out.close()
    try:
        deadline = time.monotonic() + 15
        ctx = ssl.create_default_context(cafile=str(cert))
        version = None
        while version is None:
            try:
                with socket.create_connection(("127.0.0.1", tls_port), timeout=0.5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                        version = tls.version()
            except (OSError, ssl.SSLError):
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "stdout.log").read_text(errors="replace")[-2000:]
                time.sleep(0.1)
        assert version in ("TLSv1.2", "TLSv1.3")
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_2
        old.set_ciphers("ECDHE-ECDSA-AES128-SHA")
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection(("127.0.0.1", tls_port), timeout=2) as raw:
                old.wrap_socket(raw).close()
        creds = mint_credentials(SECRET.encode(), "p_Kd93h2", ttl_seconds=600, now=time.time())
        for transport in ("udp", "tcp"):
            turn, _ = await asyncio.wait_for(create_turn_endpoint(
                asyncio.DatagramProtocol, ("127.0.0.1", port), username=creds.username, password=creds.credential,
                transport=transport), 5)
            try:
                assert turn.get_extra_info("sockname")[1] > 0
                # A permission towards a loopback peer (the host itself) must be refused: 403 Forbidden IP.
                # (a channel binding installs the permission; aioice keeps its client protocol private)
                client = turn._TurnTransport__inner_protocol  # type: ignore[attr-defined]
                with pytest.raises(stun.TransactionFailed) as refused:
                    await asyncio.wait_for(client.channel_bind(0x4000, ("127.0.0.1", 9)), 5)
                assert refused.value.response.attributes["ERROR-CODE"][0] == 403
            finally:
                turn.close()
        wrong = mint_credentials(b"another secret", "p_Kd93h2", ttl_seconds=600, now=time.time())
        with pytest.raises(stun.TransactionFailed):
            turn, _ = await asyncio.wait_for(create_turn_endpoint(
                asyncio.DatagramProtocol, ("127.0.0.1", port), username=wrong.username, password=wrong.credential), 5)
            turn.close()
    finally:
        stop(proc)

