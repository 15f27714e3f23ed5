"""Production pieces for the tests: a self-signed certificate, the server's own TLS, nginx running deploy/.

nginx runs the shipped ``deploy/nginx/roomserver.conf`` itself: the test replaces
only the listen ports, the upstream nodes, the certificate and the log paths (each
replacement must find its line, so a changed deploy file fails here loudly) and
runs Debian's nginx in the foreground with a prefix of its own on loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any, AsyncIterator

from aiohttp import web

from roomserver.tls import server_context
from tests.support import RoomServerTestServer, until

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx" / "roomserver.conf"
API_KEY = "rsk_production_" + "p" * 28
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def nginx_unavailable() -> str | None:
    return None if NGINX else "nginx is not installed (apt-get install nginx)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def certificate(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1; (cert, key) PEM paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def client_context(cert: Path | None = None) -> ssl.SSLContext:
    """A client that trusts exactly ``cert`` (or checks nothing, for refusal probes)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cert is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cert)
    return ctx


async def tls_server(app: web.Application, cert: Path, key: Path) -> RoomServerTestServer:
    """The app over its own HTTPS (the context ``roomserver serve`` builds), guarded as in production."""
    srv = RoomServerTestServer(app, host="127.0.0.1", port=0, scheme="https")
    await srv.start_server(ssl=server_context(str(cert), str(key)))
    return srv


class Nginx:
    """deploy/nginx/roomserver.conf in a real nginx on loopback, in front of ``upstreams`` (host:port)."""

    def __init__(self, workdir: Path, upstreams: list[str], cert: Path, key: Path) -> None:
        self.prefix = workdir / "nginx"
        self.upstreams = upstreams
        self.cert, self.key = cert, key
        self.https_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def render(self) -> str:
        """The deploy file with loopback ports, these nodes, this certificate and logs in the prefix."""
        text = NGINX_CONF.read_text()
        nodes = "".join(f"    server {u} max_fails=2 fail_timeout=5s;\n" for u in self.upstreams)
        swaps = [
            ("    server 127.0.0.1:8080 max_fails=2 fail_timeout=5s;\n", nodes),
            ("    listen 80;\n", f"    listen 127.0.0.1:{self.http_port};\n"),
            ("    listen [::]:80;\n", ""),
            ("    listen 443 ssl http2;\n", f"    listen 127.0.0.1:{self.https_port} ssl http2;\n"),
            ("    listen [::]:443 ssl http2;\n", ""),
            ("/etc/letsencrypt/live/rooms.example.org/fullchain.pem", str(self.cert)),
            ("/etc/letsencrypt/live/rooms.example.org/privkey.pem", str(self.key)),
            ("/var/log/nginx/roomserver.access.log", str(self.prefix / "access.log")),
            ("/var/log/nginx/roomserver.error.log", str(self.prefix / "error.log")),
        ]
        for old, new in swaps:
            assert old in text, f"deploy/nginx/roomserver.conf no longer has {old.strip()!r}"
            text = text.replace(old, new)
        return text

    def start(self) -> "Nginx":
        assert NGINX, nginx_unavailable()
        self.prefix.mkdir(parents=True, exist_ok=True)
        (self.prefix / "roomserver.conf").write_text(self.render())
        temp = "".join(f"    {kind}_temp_path {self.prefix / kind};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.prefix / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {self.prefix / 'nginx.pid'};\n"
            f"error_log {self.prefix / 'main-error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n    default_type application/octet-stream;\n"
            f"{temp}    include {self.prefix / 'roomserver.conf'};\n}}\n")
        log = (self.prefix / "stderr.log").open("ab")
        self.proc = subprocess.Popen([NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                                      "-e", str(self.prefix / "main-error.log")],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self

    async def wait_ready(self, timeout: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}: {self.logs()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.https_port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise AssertionError(f"nginx did not listen in {timeout}s: {self.logs()}")

    def logs(self) -> str:
        out = []
        for name in ("stderr.log", "main-error.log", "error.log"):
            path = self.prefix / name
            if path.exists():
                out.append(f"{name}: {path.read_text(errors='replace')[-2000:]}")
        return "\n".join(out)

    def access_log(self) -> str:
        path = self.prefix / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def access_log_with(self, needle: str) -> str:
        """The access log once it holds ``needle``: nginx writes a request's line after its answer
        has gone out, so a client can read the answer first."""
        await until(lambda: needle in self.access_log(), f"{needle!r} in nginx's access log")
        return self.access_log()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)



@contextlib.asynccontextmanager
async def loopback_server(workdir: Path, *, tls: tuple[Path, Path] | None = None,
                          **env: str) -> AsyncIterator[tuple[RoomServerTestServer, Any]]:
    """A real server (SQLite in ``workdir``) on a free loopback port, guarded as in production; over its own
    HTTPS when ``tls`` is (cert, key). ``env``: ROOMSERVER_* settings. Yields (server, services)."""
    from roomserver import bootstrap, config
    from roomserver.app import create_app
    from roomserver.services import build_services

    base = {"ROOMSERVER_SERVER_DATA_DIR": str(workdir / "data"), "ROOMSERVER_SERVER_PORT": "0",
            "ROOMSERVER_STORE_SYNCHRONOUS": "normal", "ROOMSERVER_AUTH_API_KEYS": f"tests:{API_KEY}",
            "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false"}
    if tls:
        base.update(ROOMSERVER_SERVER_TLS_CERT_FILE=str(tls[0]), ROOMSERVER_SERVER_TLS_KEY_FILE=str(tls[1]))
    base.update(env)
    database = ""
    if os.environ.get("ROOMSERVER_TEST_STORE") == "postgresql" and "ROOMSERVER_STORE_URL" not in env:
        from tests import pg  # the PostgreSQL pass of ./run test: a database of its own
        database = base["ROOMSERVER_STORE_URL"] = pg.new_database()
    try:
        settings = config.load(ROOT / "config" / "roomserver.toml", env=base)
        bootstrap.prepare(settings, 0)
        services = build_services(settings)
        app = create_app(services)
        if tls:
            srv = await tls_server(app, *tls)
        else:
            srv = RoomServerTestServer(app, host="127.0.0.1", port=0)
            await srv.start_server()
        settings.server.public_url = str(srv.make_url("")).rstrip("/")
        try:
            yield srv, services
        finally:
            await srv.close()
            services.close()
    finally:
        if database:
            from tests import pg
            pg.drop_database(database)


class ServerProcess:
    """``python -m roomserver serve`` as a real process on a free loopback port (``env``: ROOMSERVER_*)."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.env = env
        self.https = bool(env.get("ROOMSERVER_SERVER_TLS_CERT_FILE"))
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        import sys

        self.workdir.mkdir(parents=True, exist_ok=True)
        full = {k: v for k, v in os.environ.items() if not k.startswith("ROOMSERVER_")}
        full.update({"ROOMSERVER_SERVER_DATA_DIR": str(self.workdir / "data"), "ROOMSERVER_SERVER_PORT": str(self.port),
                     "ROOMSERVER_AUTH_API_KEYS": f"tests:{API_KEY}", "ROOMSERVER_DEMO_SEED_ON_FIRST_START": "false",
                     "ROOMSERVER_STORE_SYNCHRONOUS": "normal", "ROOMSERVER_SERVER_PUBLIC_URL": self.base})
        full.update(self.env)
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "roomserver", "serve"], cwd=ROOT, env=full,
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        return self

    async def wait_ready(self, ssl_ctx: ssl.SSLContext | bool = True, timeout: float = 30.0) -> None:
        import aiohttp

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(f"server exited with {self.proc.returncode}: {self.tail()}")
                try:
                    async with http.get(f"{self.base}/readyz", ssl=ssl_ctx,
                                        timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout}s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
