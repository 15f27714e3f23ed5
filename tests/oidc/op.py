"""A real OpenID Provider for the tests: npm ``oidc-provider`` (pinned in provider/package-lock.json) in a Node
process on a loopback port, with test users, group claims and a login form.

``OpenIDProvider`` starts, stops and restarts one provider (a restart with other keys is a key
rotation at the provider); ``Browser`` is a cookie-keeping HTTP client that walks through the
provider's real login form and stops at the room server's callback, so that a test can replay or
tamper with it. The keys are made here (joserfc), so a test can also sign a token the provider
would never issue (wrong audience, alg none, a foreign key …) and have the provider's token
endpoint hand it out (``next_id_token``).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
CLIENT_ID = "roomserver"
CLIENT_SECRET = "test-client-secret-" + "s" * 24


def ensure_installed() -> None:
    """``npm ci`` from the lock file when node_modules is missing; skip when npm or node cannot."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (the OpenID Provider of the tests runs on Node.js)")
    if (PROVIDER_DIR / "node_modules" / "oidc-provider").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not available to install oidc-provider (tests/oidc/provider/package.json)")
    try:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, capture_output=True,
                              text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"npm ci for oidc-provider failed: {exc}")
    if done.returncode != 0:
        pytest.skip(f"npm ci for oidc-provider failed (no registry?): {done.stderr[-800:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class OpenIDProvider:
    """One oidc-provider process: ``issuer``, its signing ``keys`` (first signs), users and the room server client."""

    def __init__(self, name: str, rp_url: str, users: dict[str, dict[str, Any]], workdir: Path,
                 passwords: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.rp_url = rp_url
        self.users = users
        self.passwords = passwords
        self.keys = [new_key(f"{name}-1")]
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []

    def client(self) -> dict[str, Any]:
        return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{self.rp_url}/signin/oidc/{self.name}/callback"],
                "post_logout_redirect_uris": [f"{self.rp_url}/signin/oidc/signed-out"],
                "backchannel_logout_uri": f"{self.rp_url}/signin/oidc/{self.name}/backchannel-logout",
                "backchannel_logout_session_required": True,
                "response_types": ["code"], "grant_types": ["authorization_code"],
                "token_endpoint_auth_method": "client_secret_basic"}

    async def start(self) -> None:
        config = {"issuer": self.issuer, "port": self.port, "clients": [self.client()], "users": self.users,
                  "keys": [k.as_dict(private=True) for k in self.keys]}
        if self.passwords:
            config["passwords"] = self.passwords
        path = self.workdir / f"op-{self.name}.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        self.proc = await asyncio.create_subprocess_exec(
            "node", str(PROVIDER_DIR / "server.mjs"), str(path), cwd=str(PROVIDER_DIR),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
            if not line:
                raise RuntimeError(f"oidc-provider {self.name} exited: {' '.join(self.log)[-2000:]}")
            text = line.decode(errors="replace").strip()
            self.log.append(text)
            if text.startswith("ready "):
                break
        asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        proc = self.proc
        while proc is not None and proc.stdout is not None:
            line = await proc.stdout.readline()
            if not line:
                return
            self.log.append(line.decode(errors="replace").rstrip())

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        self.proc = None

    async def restart(self, keys: list[RSAKey] | None = None) -> None:
        """Stop and start again (same issuer and port), with ``keys`` if given: a key rotation."""
        await self.stop()
        if keys is not None:
            self.keys = keys
        await self.start()

    async def next_id_token(self, token: str) -> None:
        """The provider's next token response carries ``token`` as its ID token."""
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.issuer}/__test/next-id-token", json={"id_token": token}) as r:
                assert r.status == 204, await r.text()

    def claims(self, login: str, nonce: str, /, **changes: Any) -> dict[str, Any]:
        """The claims the provider would put in an ID token for ``login``, with ``changes`` (None deletes)."""
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": login, "iat": now, "exp": now + 300,
                  "nonce": nonce, **self.users.get(login, {})}
        for key, value in changes.items():
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        return claims

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None, alg: str = "RS256") -> str:
        key = key or self.keys[0]
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.I)


class Browser:
    """A cookie-keeping client that follows redirects by hand, for both the room server and the provider."""

    def __init__(self, rp_url: str) -> None:
        self.rp_url = rp_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.rp_url + path

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        r = await self.http.get(self.url(path), allow_redirects=False, **kw)
        await r.read()
        return r

    async def post(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        r = await self.http.post(self.url(path), allow_redirects=False, **kw)
        await r.read()
        return r

    async def begin(self, provider: str, next_path: str | None = None) -> str:
        """Press the provider's button: the authorization URL the room server sends the browser to."""
        r = await self.get(f"/signin/oidc/{provider}" + (f"?next={next_path}" if next_path else ""))
        assert r.status == 303, await r.text()
        return r.headers["Location"]

    async def login_at_provider(self, auth_url: str, login: str, password: str = "any") -> str:
        """Walk through the provider's login form; the callback URL it sends the browser back to (not opened)."""
        url = auth_url
        for _ in range(12):
            r = await self.http.get(url, allow_redirects=False)
            html = await r.text()
            if r.status in (302, 303):
                url = urljoin(url, r.headers["Location"])
                if url.startswith(self.rp_url):
                    return url
                continue
            match = _FORM.search(html)
            assert r.status == 200 and match, f"{r.status} at {url}: {html[:500]}"
            action = urljoin(url, unescape(match.group(1)))
            if 'name="login"' in html:
                form = {"prompt": "login", "login": login, "password": password}
            else:
                form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
            r = await self.http.post(action, data=form, allow_redirects=False)
            text = await r.text()
            assert r.status in (302, 303), f"{r.status} from {action}: {text[:500]}"
            url = urljoin(action, r.headers["Location"])
            if url.startswith(self.rp_url):
                return url
        raise AssertionError("the provider never sent the browser back")

    async def cancel_at_provider(self, auth_url: str) -> str:
        """Open the provider's login form and press its cancel link; the callback URL (not opened)."""
        r = await self.http.get(auth_url, allow_redirects=True)
        html = await r.text()
        match = re.search(r'href="([^"]*/abort)"', html)
        assert match, html[:500]
        url = urljoin(str(r.url), unescape(match.group(1)))
        for _ in range(6):
            r = await self.http.get(url, allow_redirects=False)
            await r.read()
            assert r.status in (302, 303), r.status
            url = urljoin(url, r.headers["Location"])
            if url.startswith(self.rp_url):
                return url
        raise AssertionError("the provider never sent the browser back")

    async def sign_in(self, provider: str, login: str, password: str = "any") -> aiohttp.ClientResponse:
        """The whole sign-in; the room server's answer to the callback."""
        callback = await self.login_at_provider(await self.begin(provider), login, password)
        return await self.get(callback)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
