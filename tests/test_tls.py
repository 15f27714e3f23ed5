"""The server's own HTTPS: BSI TR-02102-2 settings, HSTS, Secure cookies, and the settings that refuse to start.

The attack module ``tests/attacks/tls.py`` offers every old protocol and weak
cipher alone to a real server; here each of its verdicts must say blocked, and
the good clients a browser is must get through.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest

from roomserver import config
from roomserver.tls import TLS13_SUITES, server_context
from tests.attacks import tls as tls_attacks
from tests.conftest import ROOT
from tests.production import certificate, client_context, loopback_server


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return certificate(tmp_path / "tls")


async def test_every_tls_attack_is_blocked() -> None:
    verdicts = await tls_attacks.run()
    assert len(verdicts) >= 30
    breached = [v for v in verdicts if not v.blocked]
    assert not breached, breached


def test_context_offers_only_aes_gcm_with_ecdhe(cert: tuple[Path, Path]) -> None:
    ctx = server_context(str(cert[0]), str(cert[1]))
    names = {c["name"]: c for c in ctx.get_ciphers()}
    assert {n for n, c in names.items() if c["protocol"] == "TLSv1.3"} == set(TLS13_SUITES)
    tls12 = [c for c in names.values() if c["protocol"] != "TLSv1.3"]
    assert tls12 and all(c["kea"] == "kx-ecdhe" and c["aead"] and "GCM" in c["name"] for c in tls12)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_browser_like_client_gets_through(tmp_path: Path, cert: tuple[Path, Path],
                                                  version: ssl.TLSVersion) -> None:
    async with loopback_server(tmp_path, tls=cert) as (srv, _):
        ctx = client_context(cert[0])  # verifies the certificate and the host name
        ctx.minimum_version = ctx.maximum_version = version
        async with aiohttp.ClientSession() as http:
            async with http.get(srv.make_url("/healthz"), ssl=ctx) as r:
                assert r.status == 200
                assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
        async with aiohttp.ClientSession() as http:
            async with http.get(srv.make_url("/signin"), ssl=ctx) as r:
                assert r.status == 200
                assert all("Secure" in c for c in r.headers.getall("Set-Cookie"))


async def test_plain_http_has_no_hsts_and_hsts_can_be_switched_off(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    async with loopback_server(tmp_path / "a") as (srv, _), aiohttp.ClientSession() as http:
        async with http.get(srv.make_url("/healthz")) as r:
            assert "Strict-Transport-Security" not in r.headers
    async with loopback_server(tmp_path / "b", tls=cert, ROOMSERVER_SERVER_HSTS_SECONDS="0") as (srv, _):
        async with aiohttp.ClientSession() as http:
            async with http.get(srv.make_url("/healthz"), ssl=client_context(cert[0])) as r:
                assert r.status == 200 and "Strict-Transport-Security" not in r.headers


async def test_https_through_a_trusted_proxy_gets_hsts_and_secure_cookies(tmp_path: Path) -> None:
    async with loopback_server(tmp_path, ROOMSERVER_SERVER_TRUSTED_PROXIES="127.0.0.1/32",
                               ROOMSERVER_AUTH_COOKIE_SECURE="never") as (srv, _):
        async with aiohttp.ClientSession() as http:
            forwarded = {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
            async with http.get(srv.make_url("/signin"), headers=forwarded) as r:
                assert r.headers["Strict-Transport-Security"].startswith("max-age=")
                cookies = r.headers.getall("Set-Cookie")
                assert cookies and all("Secure" in c for c in cookies)
            async with http.get(srv.make_url("/signin"), headers={"X-Forwarded-Proto": "http"}) as r:
                assert "Strict-Transport-Security" not in r.headers
                assert all("Secure" not in c for c in r.headers.getall("Set-Cookie"))


def _load(**env: str) -> config.Settings:
    return config.load(ROOT / "config" / "roomserver.toml", env=env)


def test_settings_refuse_broken_tls_and_proxies(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    crt, key = str(cert[0]), str(cert[1])
    other_cert, other_key = certificate(tmp_path / "other", "other")
    cases = {
        "tls_key_file must be set too": {"ROOMSERVER_SERVER_TLS_CERT_FILE": crt},
        "tls_cert_file must be set too": {"ROOMSERVER_SERVER_TLS_KEY_FILE": key},
        "does not exist": {"ROOMSERVER_SERVER_TLS_CERT_FILE": str(tmp_path / "missing.crt"),
                           "ROOMSERVER_SERVER_TLS_KEY_FILE": key},
        "not a PEM certificate and its matching key": {"ROOMSERVER_SERVER_TLS_CERT_FILE": crt,
                                                        "ROOMSERVER_SERVER_TLS_KEY_FILE": str(other_key)},
        "trusted_proxies entry": {"ROOMSERVER_SERVER_TRUSTED_PROXIES": "127.0.0.1,nginx.local"},
        "idle_timeout_seconds must be": {"ROOMSERVER_SERVER_IDLE_TIMEOUT_SECONDS": "0"},
        "max_connections_per_client must be": {"ROOMSERVER_SERVER_MAX_CONNECTIONS_PER_CLIENT": "0"},
    }
    for expected, env in cases.items():
        with pytest.raises(config.ConfigError) as err:
            _load(**env)
        assert expected in str(err.value) and "\n" not in str(err.value), (expected, str(err.value))
    assert other_cert.exists()
    settings = _load(ROOMSERVER_SERVER_TLS_CERT_FILE=crt, ROOMSERVER_SERVER_TLS_KEY_FILE=key,
                     ROOMSERVER_SERVER_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8")
    assert settings.base_url.startswith("https://")
    assert settings.server.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
