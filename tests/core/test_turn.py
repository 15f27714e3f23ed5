"""TURN credentials: the scheme itself, and a real coturn that accepts or refuses them.

The integration tests start ``turnserver`` (Debian package ``coturn``) on
127.0.0.1 with ``use-auth-secret`` and talk to it with aioice's TURN client, the
one aiortc uses. They skip when turnserver is not installed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import TurnTransport, create_turn_endpoint
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from roomserver.core.turn import TurnCredentials, ice_servers, mint_credentials
from tests.netlab import stop

REALM = "roomserver.test"
LOOPBACK = "127.0.0.1"
WAIT = 5.0  # seconds; the bound on every single wait against coturn


# --- the scheme --------------------------------------------------------------


def _reference_credential(secret: bytes, username: str) -> str:
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_known_vector() -> None:
    creds = mint_credentials(b"s3cret", "p_Kd93h2", ttl_seconds=3600, now=1764066600.9)
    assert creds.username == "1764070200:p_Kd93h2"
    assert creds.expires_at == 1764070200
    # Computed outside Python:
    # printf %s '1764070200:p_Kd93h2' | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert creds.credential == "jZ3q/fsFnqfQLsaWYnawTxTs/Kk="
    assert creds.credential == _reference_credential(b"s3cret", creds.username)


def test_expiry_is_now_plus_ttl_in_whole_seconds() -> None:
    creds = mint_credentials(b"k", "p_A", ttl_seconds=60, now=1000.999)
    assert creds.expires_at == 1060
    expiry, identity = creds.username.split(":")
    assert (int(expiry), identity) == (1060, "p_A")


def test_credential_depends_on_secret_and_identity() -> None:
    base = mint_credentials(b"k1", "p_A", 60, now=0)
    assert mint_credentials(b"k2", "p_A", 60, now=0).credential != base.credential
    assert mint_credentials(b"k1", "p_B", 60, now=0).credential != base.credential
    assert mint_credentials(b"k1", "p_A", 60, now=0) == base


@pytest.mark.parametrize("ttl", [0, -1])
def test_rejects_non_positive_ttl(ttl: int) -> None:
    with pytest.raises(ValueError):
        mint_credentials(b"k", "p_A", ttl, now=0)


def test_rejects_empty_secret() -> None:
    with pytest.raises(ValueError):
        mint_credentials(b"", "p_A", 60, now=0)


@pytest.mark.parametrize("identity", ["", "p:A", "p A", "p_\u00e4", "p\n", "x" * 65])
def test_rejects_identity_that_is_not_a_plain_seat_id(identity: str) -> None:
    with pytest.raises(ValueError):
        mint_credentials(b"k", identity, 60, now=0)


def test_ice_servers_shape() -> None:
    creds = TurnCredentials(
        username="1764070200:p_Kd93h2", credential="q0x=", expires_at=1764070200
    )
    servers = ice_servers(
        ["stun:stun.example.org:3478"],
        ["turn:turn.example.org:3478?transport=udp"],
        creds,
    )
    assert servers == [
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": ["turn:turn.example.org:3478?transport=udp"],
            "username": "1764070200:p_Kd93h2",
            "credential": "q0x=",
        },
    ]
    assert json.loads(json.dumps(servers)) == servers
    # aiortc (the Python participant) accepts each entry as it is.
    for entry in servers:
        RTCIceServer(**entry)


def test_ice_servers_empty_lists_give_no_entry() -> None:
    creds = mint_credentials(b"k", "p_A", 60, now=0)
    assert ice_servers([], [], creds) == []
    assert ice_servers([], [], None) == []
    assert ice_servers(["stun:s:3478"], [], None) == [{"urls": ["stun:s:3478"]}]
    assert [e["urls"] for e in ice_servers([], ["turn:t:3478"], creds)] == [
        ["turn:t:3478"]
    ]


def test_ice_servers_turn_without_credentials_is_an_error() -> None:
    with pytest.raises(ValueError):
        ice_servers([], ["turn:t:3478"], None)


def test_ice_servers_rejects_a_bare_string() -> None:
    with pytest.raises(ValueError):
        ice_servers("stun:s:3478", [], None)  # type: ignore[arg-type]


# --- a real coturn on loopback -----------------------------------------------


@dataclass(frozen=True)
class Coturn:
    port: int
    secret: bytes
    log: Path

    @property
    def addr(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)


def _free_port() -> int:
    """A loopback port free for both UDP and TCP (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((LOOPBACK, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free loopback port")


def _answers_stun(port: int, timeout: float) -> bool:
    """True once a STUN Binding request to the port gets a success response."""
    request = stun.Message(
        message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(bytes(request), (LOOPBACK, port))
            data, _ = sock.recvfrom(2048)
        except OSError:  # timeout, or ICMP port unreachable before it listens
            return False
    try:
        response = stun.parse_message(data)
    except ValueError:
        return False
    return (
        response.transaction_id == request.transaction_id
        and response.message_class == stun.Class.RESPONSE
    )


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    binary = shutil.which("turnserver") or shutil.which(
        "turnserver", path="/usr/bin:/usr/sbin"
    )
    if binary is None:
        pytest.skip("turnserver not installed (apt-get install coturn)")
    workdir = tmp_path_factory.mktemp("coturn")
    port = _free_port()
    secret = secrets.token_hex(16)
    log = workdir / "turnserver.log"
    args = [
        binary,
        "-n",  # no config file: ignore /etc/turnserver.conf
        f"--listening-ip={LOOPBACK}",
        f"--relay-ip={LOOPBACK}",
        f"--listening-port={port}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--allow-loopback-peers",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--no-rfc5780",  # else it would also take port + 1
        "--relay-threads=1",
        "--log-file=stdout",
        "--simple-log",
        f"--pidfile={workdir / 'turnserver.pid'}",
        f"--userdb={workdir / 'turndb'}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        while not _answers_stun(port, timeout=0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-4000:]
                pytest.fail(
                    f"turnserver did not answer on {LOOPBACK}:{port} "
                    f"(exit code {proc.poll()}); log:\n{tail}"
                )
            time.sleep(0.05)
        yield Coturn(port=port, secret=secret.encode(), log=log)
    finally:
        stop(proc)


class _Receiver(asyncio.DatagramProtocol):
    """Collects what arrives through the relay and notices when it is closed."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.closed: asyncio.Future[None] = loop.create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _allocate(
    server: Coturn, username: str, password: str, transport: str = "udp"
) -> tuple[TurnTransport, _Receiver]:
    return await asyncio.wait_for(
        create_turn_endpoint(
            _Receiver,
            server.addr,
            username=username,
            password=password,
            transport=transport,
        ),
        WAIT,
    )


async def _release(turn: TurnTransport, receiver: _Receiver) -> None:
    turn.close()  # deletes the allocation, then calls connection_lost
    await asyncio.wait_for(receiver.closed, WAIT)


async def _refused_with(server: Coturn, username: str, password: str) -> int | None:
    with pytest.raises(stun.TransactionFailed) as failure:
        turn, receiver = await _allocate(server, username, password)
        await _release(turn, receiver)
    return failure.value.response.error_code


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_minted_credentials_allocate_a_relay(
    coturn: Coturn, transport: str
) -> None:
    creds = mint_credentials(
        coturn.secret, "p_Kd93h2", ttl_seconds=600, now=time.time()
    )
    turn, receiver = await _allocate(
        coturn, creds.username, creds.credential, transport
    )
    try:
        relay_host, relay_port = turn.get_extra_info("sockname")
        assert relay_host == LOOPBACK
        assert relay_port > 0
    finally:
        await _release(turn, receiver)


async def test_relay_carries_datagrams_both_ways(coturn: Coturn) -> None:
    creds = mint_credentials(
        coturn.secret, "p_Kd93h2", ttl_seconds=600, now=time.time()
    )
    turn, receiver = await _allocate(coturn, creds.username, creds.credential)
    loop = asyncio.get_running_loop()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((LOOPBACK, 0))
    peer.setblocking(False)
    try:
        relay = turn.get_extra_info("sockname")
        peer_addr = peer.getsockname()

        turn.sendto(
            b"hello peer", peer_addr
        )  # binds a channel, which grants the permission
        data, source = await asyncio.wait_for(loop.sock_recvfrom(peer, 2048), WAIT)
        assert (data, source) == (b"hello peer", relay)

        await loop.sock_sendto(peer, b"hello client", relay)
        data, source = await asyncio.wait_for(receiver.received.get(), WAIT)
        assert (data, source) == (b"hello client", peer_addr)
    finally:
        peer.close()
        await _release(turn, receiver)


async def test_wrong_credential_is_refused(coturn: Coturn) -> None:
    creds = mint_credentials(
        b"not-the-secret", "p_Kd93h2", ttl_seconds=600, now=time.time()
    )
    assert await _refused_with(coturn, creds.username, creds.credential) == 401


async def test_expired_credentials_are_refused(coturn: Coturn) -> None:
    creds = mint_credentials(
        coturn.secret, "p_Kd93h2", ttl_seconds=60, now=time.time() - 3600
    )
    assert creds.expires_at < time.time()
    assert await _refused_with(coturn, creds.username, creds.credential) == 401


async def test_credential_of_another_identity_is_refused(coturn: Coturn) -> None:
    mine = mint_credentials(coturn.secret, "p_Kd93h2", ttl_seconds=600, now=time.time())
    theirs = mint_credentials(
        coturn.secret, "p_W8x1Qe", ttl_seconds=600, now=time.time()
    )
    assert await _refused_with(coturn, theirs.username, mine.credential) == 401


async def test_welcome_ice_servers_give_aiortc_a_relay_candidate(
    coturn: Coturn,
) -> None:
    """The list as sent in ``welcome`` works in a real WebRTC stack (aiortc)."""
    creds = mint_credentials(
        coturn.secret, "p_Kd93h2", ttl_seconds=600, now=time.time()
    )
    servers = ice_servers([], [f"turn:{LOOPBACK}:{coturn.port}?transport=udp"], creds)
    pc = RTCPeerConnection(
        RTCConfiguration(iceServers=[RTCIceServer(**s) for s in servers])
    )
    try:
        pc.createDataChannel("probe")
        offer = await pc.createOffer()
        await asyncio.wait_for(
            pc.setLocalDescription(offer), 2 * WAIT
        )  # gathers candidates
        relay_candidates = [
            line
            for line in pc.localDescription.sdp.splitlines()
            if line.startswith("a=candidate:") and " typ relay" in line
        ]
        assert relay_candidates, pc.localDescription.sdp
        assert all(f" {LOOPBACK} " in line for line in relay_candidates)
    finally:
        await asyncio.wait_for(pc.close(), WAIT)
