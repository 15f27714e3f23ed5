"""A small network lab: participants in their own network namespaces, made and removed by the test.

Each :class:`Site` is a namespace joined to the host by a veth pair (host side
``10.218.N.1``, namespace side ``10.218.N.2``); the server and coturn listen on the host side
address, so the namespace reaches them only over that link, and whatever the site's
nftables rules let through. Rate limits use ``tc qdisc … tbf`` (this kernel has no netem);
random loss uses nftables ``numgen random``. Everything needs root and the ``ip``, ``nft``
and ``tc`` tools; :func:`unavailable_reason` says why not when it cannot run.

A browser runs in a site through a wrapper script (``ip netns exec … chromium``): Playwright
drives Chromium over a pipe, which does not care about namespaces. A Python participant
runs in a site as a subprocess. Traffic never leaves the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = ("ip", "nft", "tc")


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [t for t in TOOLS if _tool(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install iproute2 nftables)"
    probe = f"rs18probe{os.getpid()}"
    done = subprocess.run([_tool("ip"), "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.strip()}"
    subprocess.run([_tool("ip"), "netns", "del", probe], capture_output=True)
    done = subprocess.run([_tool("nft"), "list", "tables"], capture_output=True, text=True)
    if done.returncode != 0:
        return f"nftables does not work here: {done.stderr.strip()}"
    return None


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = (_tool(argv[0]) or argv[0], *argv[1:])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class Site:
    """One namespace on its own veth link to the host."""

    name: str
    index: int
    rules: str = ""
    extra: list[str] = field(default_factory=list)

    @property
    def host_ip(self) -> str:
        return f"10.218.{self.index}.1"

    @property
    def ip(self) -> str:
        return f"10.218.{self.index}.2"

    @property
    def host_veth(self) -> str:
        return f"rs{self.index}h{os.getpid() % 10000}"

    @property
    def veth(self) -> str:
        return f"rs{self.index}n{os.getpid() % 10000}"

    def exec_argv(self, *argv: str) -> list[str]:
        return [_tool("ip") or "ip", "netns", "exec", self.name, *argv]

    def create(self) -> None:
        run("ip", "netns", "add", self.name)
        # No IPv6 in the site: a link-local address finishing its duplicate check a second after
        # the link came up is a "network change" to Chromium, which then aborts loads in flight
        # (net::ERR_NETWORK_CHANGED) and can leave a page without one of its scripts.
        # (A kernel without IPv6 has nothing to switch off.)
        run("ip", "netns", "exec", self.name, "sh", "-c", "[ -d /proc/sys/net/ipv6 ] || exit 0; "
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
        run("ip", "link", "add", self.host_veth, "type", "veth", "peer", "name", self.veth)
        run("ip", "link", "set", self.veth, "netns", self.name)
        host_ipv6 = Path(f"/proc/sys/net/ipv6/conf/{self.host_veth}/disable_ipv6")
        if host_ipv6.exists():
            host_ipv6.write_text("1\n")  # as above
        run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_veth)
        run("ip", "link", "set", self.host_veth, "up")
        run("ip", "netns", "exec", self.name, "ip", "addr", "add", f"{self.ip}/30", "dev", self.veth)
        run("ip", "netns", "exec", self.name, "ip", "link", "set", self.veth, "up")
        run("ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        run("ip", "netns", "exec", self.name, "ip", "route", "add", "default", "via", self.host_ip)

    def delete(self) -> None:
        run("ip", "link", "del", self.host_veth, check=False)  # removes both ends
        run("ip", "netns", "del", self.name, check=False)

    # -- what the site's network lets through ---------------------------------------------

    def firewall(self, rules: str) -> None:
        """Replace the site's nftables table ``inet lab`` by one whose chains hold ``rules``.

        ``rules`` is a dict-free snippet: ``{"output": [...], "input": [...]}`` in text form is
        overkill here, so it is the whole body of ``table inet lab { … }``.
        """
        self.flush_firewall()
        script = f"table inet lab {{\n{rules}\n}}\n"
        done = subprocess.run(self.exec_argv(_tool("nft") or "nft", "-f", "-"), input=script,
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"nft rules refused: {done.stderr.strip()}\n{script}")
        self.rules = rules

    def flush_firewall(self) -> None:
        subprocess.run(self.exec_argv(_tool("nft") or "nft", "delete", "table", "inet", "lab"),
                       capture_output=True, text=True, timeout=30)
        self.rules = ""

    def rate_limit(self, kbit: int) -> None:
        """Limit what the site sends to ``kbit`` kbit/s (a token bucket on its side of the link)."""
        self.clear_rate_limit()
        run(*self.exec_argv("tc", "qdisc", "add", "dev", self.veth, "root", "tbf", "rate", f"{kbit}kbit",
                            "burst", "4kb", "latency", "200ms"))

    def clear_rate_limit(self) -> None:
        subprocess.run(self.exec_argv(_tool("tc") or "tc", "qdisc", "del", "dev", self.veth, "root"),
                       capture_output=True, text=True, timeout=30)


# Firewall bodies for the usual restrictive networks. ``{host}`` is the host side address.

def block_udp() -> str:
    """The network drops every UDP packet, both ways (many county offices)."""
    return """
  chain output { type filter hook output priority 0; policy accept; meta l4proto udp drop; }
  chain input { type filter hook input priority 0; policy accept; meta l4proto udp drop; }
"""


def only_tcp(host: str, ports: list[int]) -> str:
    """Nothing but TCP to ``host`` on ``ports`` (e.g. 443 for TURN over TLS, and the web server)."""
    allowed = ", ".join(str(p) for p in ports)
    return f"""
  chain output {{ type filter hook output priority 0; policy drop;
    oif "lo" accept; ct state established,related accept;
    ip daddr {host} tcp dport {{ {allowed} }} accept; }}
  chain input {{ type filter hook input priority 0; policy drop;
    iif "lo" accept; ct state established,related accept; }}
"""


def random_udp_loss(percent: int) -> str:
    """``percent`` % of UDP packets lost at random, each way."""
    return f"""
  chain output {{ type filter hook output priority 0; policy accept;
    meta l4proto udp numgen random mod 100 < {percent} drop; }}
  chain input {{ type filter hook input priority 0; policy accept;
    meta l4proto udp numgen random mod 100 < {percent} drop; }}
"""


class Lab:
    """The sites of one test; removed again by :meth:`close` (also after a failure)."""

    def __init__(self) -> None:
        self.sites: list[Site] = []
        base = os.getpid() % 50
        self._next = 100 + base * 2  # 10.218.100–199.x: apart from other runs on the machine

    def site(self, label: str) -> Site:
        index = self._next
        self._next += 1
        site = Site(name=f"rs18-{label}-{os.getpid()}", index=index)
        site.delete()  # a leftover of a killed run
        site.create()
        self.sites.append(site)
        return site

    def close(self) -> None:
        for site in reversed(self.sites):
            site.delete()
        self.sites.clear()


# -- processes -------------------------------------------------------------------------------


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s: only the process we started."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def stop_async(process: asyncio.subprocess.Process) -> None:
    """The same for an asyncio subprocess (the Python participant in a site)."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


async def probe_report(process: asyncio.subprocess.Process, predicate, timeout: float) -> dict:
    """Read the Python participant's ``--report`` lines until one satisfies ``predicate``; that report.

    Raises AssertionError with the last report when the probe ends or ``timeout`` passes first.
    """
    last = None

    async def read() -> dict:
        nonlocal last
        while True:
            line = await process.stdout.readline()
            if not line:
                raise AssertionError(f"the probe ended (last report {last})")
            try:
                report = json.loads(line)
            except ValueError:
                continue  # a server message the probe printed
            if report.get("probe") == "links":
                last = report
                if predicate(report):
                    return report
    try:
        return await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out; the probe's last report: {last}") from None


# -- a browser in a site ------------------------------------------------------------------


def chromium_wrapper(site: Site, chromium: str, folder: Path) -> Path:
    """An executable that starts ``chromium`` inside ``site`` (for Playwright's ``executable_path``)."""
    script = folder / f"chromium-in-{site.name}"
    script.write_text(f"#!/bin/sh\nexec {' '.join(site.exec_argv())} {chromium} \"$@\"\n")
    script.chmod(0o755)
    return script


# -- coturn with a self-signed certificate ---------------------------------------------------


def self_signed(folder: Path, ip: str) -> tuple[Path, Path]:
    """A key and a certificate for ``ip`` (as its subjectAltName), made with openssl."""
    key, cert = folder / "turn.key", folder / "turn.crt"
    ipaddress.ip_address(ip)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "1", "-subj", "/CN=roomserver-test-turn", "-addext", f"subjectAltName=IP:{ip}",
        "-keyout", str(key), "-out", str(cert))
    return key, cert


def spki_sha256(cert: Path) -> str:
    """The base64 SHA-256 of the certificate's public key, as Chromium's
    ``--ignore-certificate-errors-spki-list`` takes it (trust exactly this key, nothing else)."""
    import base64
    import hashlib

    pem = run("openssl", "x509", "-in", str(cert), "-pubkey", "-noout").stdout
    der = subprocess.run([_tool("openssl") or "openssl", "pkey", "-pubin", "-outform", "der"], input=pem.encode(),
                         capture_output=True, timeout=30, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@dataclass
class Turn:
    """A running coturn: TURN on ``port`` (UDP and TCP) and TURN over TLS on ``tls_port``."""

    process: subprocess.Popen
    host: str
    port: int
    tls_port: int
    secret: str
    cert: Path
    log: Path

    def urls(self) -> list[str]:
        return [f"turn:{self.host}:{self.port}?transport=udp", f"turn:{self.host}:{self.port}?transport=tcp",
                f"turns:{self.host}:{self.tls_port}?transport=tcp"]

    def allocations(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop(self.process)


def start_coturn(folder: Path, host: str, secret: str, port: int = 3478, tls_port: int = 443) -> Turn:
    binary = _tool("turnserver")
    if binary is None:
        raise FileNotFoundError("turnserver not installed (apt-get install coturn)")
    key, cert = self_signed(folder, host)
    log = folder / "turnserver.log"
    args = [binary, "-n", f"--listening-ip={host}", f"--relay-ip={host}", f"--listening-port={port}",
            f"--tls-listening-port={tls_port}", f"--cert={cert}", f"--pkey={key}", "--use-auth-secret",
            f"--static-auth-secret={secret}", "--realm=roomserver.test", "--no-cli", "--no-dtls",
            "--no-rfc5780", "--relay-threads=1", "--log-file=stdout", "--simple-log", "--verbose",
            f"--pidfile={folder / 'turnserver.pid'}", f"--userdb={folder / 'turndb'}", "--min-port=49152",
            "--max-port=65535"]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    turn = Turn(process, host, port, tls_port, secret, cert, log)
    deadline = time.monotonic() + 15
    context = ssl.create_default_context(cafile=str(cert))
    import socket

    while True:
        try:
            with socket.create_connection((host, tls_port), timeout=0.5) as raw:
                with context.wrap_socket(raw, server_hostname=host):
                    break
        except (OSError, ssl.SSLError):
            if process.poll() is not None or time.monotonic() > deadline:
                turn.stop()
                raise RuntimeError(f"coturn did not come up on {host}:{tls_port}:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
    return turn
