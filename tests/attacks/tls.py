"""TLS attacks on the server's own HTTPS, testssl-style from Python's ``ssl`` module.

A real server with a self-signed certificate on loopback. Each old protocol and
each cipher outside BSI TR-02102-2 is offered alone; the handshake must fail.
Then the answers over HTTPS: HSTS present, every cookie ``Secure``.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import warnings
from pathlib import Path

import aiohttp

from tests.attacks.verdict import Verdict
from tests.production import certificate, client_context, loopback_server

TOPIC = "tls"

OLD_PROTOCOLS = [ssl.TLSVersion.SSLv3, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1]
# TLS 1.2 suites a client may offer that TR-02102-2 does not allow here: CBC, SHA-1, no forward secrecy,
# ChaCha20 (not in the guideline), anonymous and export leftovers, NULL encryption.
WEAK_TLS12 = [
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-AES256-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA", "AES128-SHA256", "AES256-SHA256",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-SHA", "DHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-CAMELLIA128-SHA256", "ECDHE-ECDSA-ARIA128-GCM-SHA256",
    "DES-CBC3-SHA", "ECDHE-ECDSA-DES-CBC3-SHA", "ECDHE-ECDSA-NULL-SHA", "AECDH-AES128-SHA",
    "ADH-AES128-GCM-SHA256", "PSK-AES128-GCM-SHA256", "ECDHE-ECDSA-RC4-SHA", "RC4-SHA",
]
WEAK_TLS13 = ["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"]


async def _handshake(port: int, ctx: ssl.SSLContext) -> str:
    """'refused: …' or 'accepted: protocol cipher'."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                                   server_hostname="localhost"), 10)
    except (ssl.SSLError, ConnectionError, asyncio.TimeoutError, OSError) as exc:
        return f"refused: {type(exc).__name__}: {str(exc)[:80]}"
    obj = writer.get_extra_info("ssl_object")
    detail = f"accepted: {obj.version()} {obj.cipher()[0]}"
    writer.close()
    try:
        await writer.wait_closed()
    except (ssl.SSLError, ConnectionError, OSError):
        pass
    return detail


def _client(minimum: ssl.TLSVersion, maximum: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext | None:
    """A client offering only what is named; None when this OpenSSL cannot even offer it."""
    ctx = client_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            ctx.minimum_version, ctx.maximum_version = minimum, maximum
            if ciphers:
                ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
            elif maximum < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers("ALL:@SECLEVEL=0")
        except (ssl.SSLError, ValueError):
            return None
    return ctx


async def _attacks(port: int, base: str, cert: Path) -> list[Verdict]:
    from roomserver.tls import restrict_tls13

    good = [_client(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"),
            _client(ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)]
    for ctx in good:  # the control: without it every refusal below could be a server that refuses all
        detail = await _handshake(port, ctx) if ctx else "no client"
        if not detail.startswith("accepted"):
            raise AssertionError(f"the server refuses a good TLS client ({detail}): the verdicts would mean nothing")
    verdicts: list[Verdict] = []
    for version in OLD_PROTOCOLS:
        ctx = _client(version, version)
        attack = f"handshake offering only {version.name}"
        if ctx is None:
            verdicts.append(Verdict(TOPIC, attack, True, "this client cannot offer it at all"))
            continue
        detail = await _handshake(port, ctx)
        verdicts.append(Verdict(TOPIC, attack, detail.startswith("refused"), detail))
    for cipher in WEAK_TLS12:
        ctx = _client(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, cipher)
        attack = f"TLS 1.2 offering only {cipher}"
        if ctx is None:
            verdicts.append(Verdict(TOPIC, attack, True, "this client's OpenSSL cannot offer it at all"))
            continue
        detail = await _handshake(port, ctx)
        verdicts.append(Verdict(TOPIC, attack, detail.startswith("refused"), detail))
    for suite in WEAK_TLS13:
        ctx = _client(ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
        attack = f"TLS 1.3 offering only {suite}"
        if ctx is None or not restrict_tls13(ctx, (suite,)):
            verdicts.append(Verdict(TOPIC, attack, True, "this client's OpenSSL cannot offer it alone"))
            continue
        detail = await _handshake(port, ctx)
        verdicts.append(Verdict(TOPIC, attack, detail.startswith("refused"), detail))
    # What a plain browser gets: HTTPS answers carry HSTS, cookies are Secure.
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz", ssl=client_context(cert)) as r:
            hsts = r.headers.get("Strict-Transport-Security", "")
            verdicts.append(Verdict(TOPIC, "HTTPS answer without HSTS (downgrade to http:// later)",
                                    hsts.startswith("max-age=") and int(hsts[8:].split(";")[0]) >= 15_552_000,
                                    f"Strict-Transport-Security: {hsts or 'missing'}"))
        async with http.get(f"{base}/signin", ssl=client_context(cert)) as r:
            cookies = r.headers.getall("Set-Cookie", [])
            insecure = [c.split("=", 1)[0] for c in cookies if "secure" not in c.lower()]
            verdicts.append(Verdict(TOPIC, "cookie set over HTTPS without Secure (leaks over http://)",
                                    bool(cookies) and not insecure,
                                    f"{len(cookies)} cookies, without Secure: {insecure or 'none'}"))
    return verdicts


async def run() -> list[Verdict]:
    with tempfile.TemporaryDirectory(prefix="attack-tls-") as tmp:
        work = Path(tmp)
        cert, key = certificate(work / "tls")
        # cookie_secure=never: the Secure flag must come from the request being HTTPS, not from the setting.
        async with loopback_server(work, tls=(cert, key), ROOMSERVER_AUTH_COOKIE_SECURE="never") as (srv, _):
            return await _attacks(srv.port, str(srv.make_url("")).rstrip("/"), cert)
