"""Sign-in at an organisation's OpenID Provider: Authorization Code flow with PKCE, state and nonce.

One ``ProviderClient`` per ``[oidc.<name>]`` table talks to its provider with aiohttp (the event
loop never waits on a blocking call): discovery, the key set (read again at once when a token
names a key the server does not know: the provider rotated its keys), the token exchange. Token
checks are ``idtoken`` (joserfc). ``OidcSignIn`` is the use case: ``begin`` stores the sign-in in
progress in the store (any node of a cluster can take the callback), ``finish`` takes it once,
checks everything, maps the claims to a role and creates or updates the staff account
(just in time). Every refusal is an ``OidcError`` with a code the page and the audit log show.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlencode, urlsplit

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..config import OidcProviderSettings, Settings
from ..core.claimmap import Mapped, claim, map_claims, parse_rules
from ..store import Account, Store, Tx
from . import idtoken

log = logging.getLogger(__name__)

LOGIN_LIFETIME = 600  # seconds a person has at the provider before the sign-in in progress expires
DISCOVERY_TTL = 3600.0  # the discovery document and the key set are read again after this long
MIN_KEY_REFRESH = 1.0  # at most one key set read per second for tokens naming an unknown key
MAX_DOCUMENT = 512 * 1024


class OidcError(Exception):
    """A sign-in refused; ``code`` for IT and the audit log, ``kind`` picks the page's text.

    ``detail`` names no URL, address or token value, so it may go into the log; ``evidence``
    holds those (which issuer, which host was unreachable) for ``check-config --online``.
    """

    def __init__(self, code: str, kind: str, detail: str = "", *, account_id: str | None = None,
                 evidence: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.kind = kind
        self.detail = detail
        self.evidence = evidence
        self.account_id = account_id  # an account this refusal disabled (its desks must close too)


# kind of page for each ID token refusal code
_TOKEN_KINDS = {"clock_skew": "clock", "expired": "token", "wrong_audience": "token", "wrong_issuer": "token",
                "wrong_nonce": "token", "alg_not_allowed": "token", "unknown_key": "token",
                "bad_signature": "token", "malformed": "token", "missing_claim": "token"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) of RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    return verifier, _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def browser_hash(binding: str) -> str:
    return hashlib.sha256(("oidc-browser:" + binding).encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    iss_parameter: bool  # authorization_response_iss_parameter_supported (RFC 9207)
    backchannel_logout: bool


class ProviderClient:
    """One provider's endpoints and keys, read over HTTP and kept for a while."""

    def __init__(self, settings: OidcProviderSettings) -> None:
        self.settings = settings
        self.rules = parse_rules(settings.roles)
        self._discovery: Discovery | None = None
        self._discovery_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._forced_at = -MIN_KEY_REFRESH  # the last read for a token naming an unknown key
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.settings.name

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.settings.timeout_seconds)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with aiohttp.ClientSession(timeout=self._timeout()) as http:
                async with http.get(url, headers={"Accept": "application/json"}, allow_redirects=False) as r:
                    body = await r.content.read(MAX_DOCUMENT + 1)
                    if r.status != 200:
                        raise OidcError("provider_unreachable", "unreachable", f"{what}: HTTP {r.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise OidcError("provider_unreachable", "unreachable", f"{what}: {type(exc).__name__}",
                            evidence=str(exc)[:300]) from None
        try:
            data = json.loads(body) if len(body) <= MAX_DOCUMENT else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise OidcError("provider_misconfigured", "config", f"{what} is not a JSON object")
        return data

    async def discovery(self, *, fresh: bool = False) -> Discovery:
        if self._discovery is not None and not fresh and time.monotonic() - self._discovery_at < DISCOVERY_TTL:
            return self._discovery
        issuer = self.settings.issuer
        data = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery")
        if data.get("issuer") != issuer:
            raise OidcError("issuer_mismatch", "config", "discovery names another issuer than the configured one",
                            evidence=f"discovery names issuer {str(data.get('issuer'))[:200]!r}, "
                                     f"config says {issuer!r}")
        endpoints = {}
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = data.get(key)
            if not isinstance(value, str) or not _sound_url(value, issuer):
                raise OidcError("provider_misconfigured", "config", f"discovery: {key} missing or not https")
            endpoints[key] = value
        end_session = data.get("end_session_endpoint")
        self._discovery = Discovery(issuer=issuer, end_session_endpoint=end_session if isinstance(end_session, str)
                                    and _sound_url(end_session, issuer) else None,
                                    iss_parameter=data.get("authorization_response_iss_parameter_supported") is True,
                                    backchannel_logout=data.get("backchannel_logout_supported") is True,
                                    **endpoints)
        self._discovery_at = time.monotonic()
        return self._discovery

    async def keys(self, *, fresh: bool = False) -> KeySet:
        async with self._lock:
            now = time.monotonic()
            if self._keys is not None:
                if not fresh and now - self._keys_at < self.settings.keys_cache_seconds:
                    return self._keys
                if fresh and now - self._forced_at < MIN_KEY_REFRESH:
                    return self._keys  # tokens with made-up key ids must not make us hammer the provider
            if fresh:
                self._forced_at = now
            found = await self.discovery()
            data = await self._get_json(found.jwks_uri, "jwks")
            try:
                usable = [k for k in data.get("keys", []) if isinstance(k, dict) and k.get("use", "sig") == "sig"
                          and k.get("kty") in ("RSA", "EC", "OKP")]
                keys = KeySet.import_key_set({"keys": usable})
            except (JoseError, ValueError, TypeError) as exc:
                raise OidcError("provider_misconfigured", "config", f"jwks: {exc}") from None
            self._keys, self._keys_at = keys, time.monotonic()
            return keys

    async def check_id_token(self, token: str, nonce: str, now: int) -> dict[str, Any]:
        """The claims of a sound ID token; keys read again once when it names a key not (yet) known."""
        s = self.settings
        head = idtoken.header(token)
        keys = await self.keys()
        if head.kid is not None and not any(k.kid == head.kid for k in keys.keys):
            keys = await self.keys(fresh=True)
        return idtoken.check_id_token(token, keys, issuer=s.issuer, client_id=s.client_id, nonce=nonce,
                                      algorithms=s.algorithms, now=now, leeway=s.leeway_seconds)

    async def check_logout_token(self, token: str, now: int) -> dict[str, Any]:
        s = self.settings
        head = idtoken.header(token)
        keys = await self.keys()
        if head.kid is not None and not any(k.kid == head.kid for k in keys.keys):
            keys = await self.keys(fresh=True)
        return idtoken.check_logout_token(token, keys, issuer=s.issuer, client_id=s.client_id,
                                          algorithms=s.algorithms, now=now, leeway=s.leeway_seconds)

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token endpoint's answer for an authorization code (RFC 6749 4.1.3, PKCE)."""
        s = self.settings
        found = await self.discovery()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, "client_id": s.client_id}
        headers = {"Accept": "application/json"}
        if s.token_auth == "client_secret_basic":
            pair = f"{_form_quote(s.client_id)}:{_form_quote(s.client_secret or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            form.pop("client_id")
        elif s.token_auth == "client_secret_post":
            form["client_secret"] = s.client_secret or ""
        try:
            async with aiohttp.ClientSession(timeout=self._timeout()) as http:
                async with http.post(found.token_endpoint, data=form, allow_redirects=False, headers=headers) as r:
                    body = await r.content.read(MAX_DOCUMENT + 1)
                    status = r.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise OidcError("provider_unreachable", "unreachable", f"token: {type(exc).__name__}",
                            evidence=str(exc)[:300]) from None
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if status >= 500:
                raise OidcError("provider_unreachable", "unreachable", f"token: HTTP {status}")
            raise OidcError("token_failed", "config", f"token: HTTP {status}, not JSON")
        if status != 200:
            error = str(data.get("error", ""))[:100]
            if error in ("invalid_client", "unauthorized_client"):
                raise OidcError("client_rejected", "config", f"token endpoint: {error}")
            if error == "invalid_grant":  # the code is used, expired or was issued for another verifier
                raise OidcError("code_rejected", "expired", "token endpoint: invalid_grant")
            raise OidcError("token_failed", "config", f"token endpoint: HTTP {status} {error}")
        if not isinstance(data.get("id_token"), str):
            raise OidcError("no_id_token", "config", "the token answer has no id_token (is 'openid' a scope?)")
        return data


def _form_quote(value: str) -> str:
    """client_secret_basic sends id and secret form-urlencoded before base64 (RFC 6749 2.3.1)."""
    from urllib.parse import quote_plus
    return quote_plus(value)


def _sound_url(url: str, issuer: str) -> bool:
    """https, or http when the issuer itself is http (loopback, allowed by the config check)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.hostname) and (parts.scheme == "https" or
                                     (parts.scheme == "http" and issuer.startswith("http://")))


@dataclass(frozen=True)
class Started:
    url: str  # where the browser goes: the provider's authorization endpoint with our parameters


@dataclass(frozen=True)
class Finished:
    account: Account
    mapped: Mapped
    claims: dict[str, Any]
    id_token: str
    lifetime: int
    next_path: str | None
    created: bool


class OidcSignIn:
    """The providers of ``[oidc.<name>]`` and the sign-in use case."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.providers = {name: ProviderClient(p) for name, p in settings.oidc.items()}

    def redirect_uri(self, name: str) -> str:
        return f"{self.settings.base_url}/signin/oidc/{name}/callback"

    def provider(self, name: str) -> ProviderClient:
        found = self.providers.get(name)
        if found is None:
            raise OidcError("unknown_provider", "invalid", f"no provider {name[:40]!r}")
        return found

    async def begin(self, name: str, *, binding: str, next_path: str | None, now: int) -> Started:
        client = self.provider(name)
        found = await client.discovery()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        await self.store.oidclogins.begin(state=state, provider=name, nonce=nonce, code_verifier=verifier,
                                          browser_hash=browser_hash(binding), next_path=next_path, now=now,
                                          lifetime=LOGIN_LIFETIME)
        scopes = ["openid"] + [s for s in client.settings.scopes if s != "openid"]
        query = urlencode({"response_type": "code", "client_id": client.settings.client_id,
                           "redirect_uri": self.redirect_uri(name), "scope": " ".join(scopes), "state": state,
                           "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"})
        sep = "&" if "?" in found.authorization_endpoint else "?"
        return Started(found.authorization_endpoint + sep + query)

    async def finish(self, name: str, params: Mapping[str, str], *, binding: str, now: int) -> Finished:
        client = self.provider(name)
        state = params.get("state", "")
        if not state or len(state) > 200:
            raise OidcError("missing_state", "invalid", "the callback carries no state")
        login = await self.store.oidclogins.take(state, now)
        if login is None:
            raise OidcError("unknown_state", "invalid", "no sign-in with this state (tampered or from elsewhere)")
        if login.used_at is not None:
            raise OidcError("replayed_callback", "replayed", "this sign-in has already been finished")
        if login.provider != name:
            raise OidcError("wrong_provider", "invalid", "the state belongs to another provider")
        if not binding or not hmac.compare_digest(login.browser_hash, browser_hash(binding)):
            raise OidcError("wrong_browser", "invalid", "the sign-in began in another browser")
        if login.expires_at <= now:
            raise OidcError("login_expired", "expired", "the sign-in took too long")
        error = params.get("error")
        if error:
            if error in ("access_denied", "login_required", "interaction_required", "consent_required"):
                raise OidcError("cancelled", "cancelled", f"provider: {error[:60]}")
            raise OidcError("provider_error", "config", f"provider: {error[:60]}")
        found = await client.discovery()
        iss = params.get("iss")
        if (iss is not None or found.iss_parameter) and iss != client.settings.issuer:
            raise OidcError("wrong_issuer", "token", "the callback's iss is not this provider (RFC 9207)")
        code = params.get("code", "")
        if not code or len(code) > 2048:
            raise OidcError("missing_code", "invalid", "the callback carries no code")
        answer = await client.exchange(code, login.code_verifier, self.redirect_uri(name))
        token = answer["id_token"]
        try:
            claims = await client.check_id_token(token, login.nonce, now)
        except idtoken.IdTokenError as exc:
            raise OidcError(exc.code, _TOKEN_KINDS.get(exc.code, "token"), exc.detail,
                            evidence=exc.evidence) from None
        s = client.settings
        mapped = map_claims(claims, client.rules, roles_claim=s.roles_claim, languages_claim=s.languages_claim)
        subject = claims["sub"]
        if mapped is None:
            disabled = await self.store.write(lambda tx: _unmapped(tx, name, subject))
            raise OidcError("unmapped", "unmapped", f"no roles entry matches {s.roles_claim}", account_id=disabled)
        if mapped.department_id is not None and await self.store.directory.department(mapped.department_id) is None:
            raise OidcError("unknown_department", "config", f"department {mapped.department_id!r} does not exist")
        username = _text(claim(claims, s.username_claim)) or subject
        display = _text(claim(claims, s.name_claim)) or username
        account, created = await self.store.write(
            lambda tx: _provision(tx, name, subject, f"{name}:{username}"[:150], display[:200], mapped, now))
        if account.disabled:
            raise OidcError("account_disabled", "disabled", "an administrator disabled this account")
        lifetime = self.settings.auth.session_lifetime_seconds
        if s.session_lifetime_seconds:
            lifetime = min(lifetime, s.session_lifetime_seconds)
        return Finished(account, mapped, claims, token, lifetime, login.next_path, created)

    async def backchannel_logout(self, name: str, token: str, now: int) -> tuple[int, str | None]:
        """End the sessions a provider's logout token names; (how many, the account id if known)."""
        client = self.provider(name)
        try:
            claims = await client.check_logout_token(token, now)
        except idtoken.IdTokenError as exc:
            raise OidcError(exc.code, "token", exc.detail, evidence=exc.evidence) from None
        sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None

        def unit(tx: Tx) -> tuple[int, str | None]:
            account = tx.directory.by_subject(name, subject) if subject else None
            if sid is None and account is None:
                return 0, None
            return (tx.sessions.delete_by_provider_session(name, sid=sid, account_id=account.id if account else None),
                    account.id if account else None)
        return await self.store.write(unit)

    async def end_session_url(self, name: str, id_token: str | None, post_logout: str) -> str | None:
        """The provider's end-session URL for RP-initiated logout, or None when it offers none."""
        client = self.providers.get(name)
        if client is None:
            return None
        try:
            found = await client.discovery()
        except OidcError as exc:
            log.warning("oidc %s: no sign-out at the provider: %s", name, exc.code)
            return None
        if not found.end_session_endpoint:
            return None
        query = {"client_id": client.settings.client_id, "post_logout_redirect_uri": post_logout}
        if id_token:
            query["id_token_hint"] = id_token
        sep = "&" if "?" in found.end_session_endpoint else "?"
        return found.end_session_endpoint + sep + urlencode(query)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _unmapped(tx: Tx, provider: str, subject: str) -> str | None:
    """A person whose claims map to nothing: an existing account is disabled and its sessions end; its id."""
    account = tx.directory.by_subject(provider, subject)
    if account is None:
        return None
    tx.directory.disable_by_provider(account.id)
    tx.sessions.delete_for_account(account.id)
    if not account.disabled:
        tx.audit.append(at=int(time.time()), actor=f"oidc:{provider}", action="directory.account_updated",
                        subject=account.id, detail={"disabled": True, "by": "provider"})
    return account.id


def _provision(tx: Tx, provider: str, subject: str, username: str, display: str, mapped: Mapped,
               now: int) -> tuple[Account, bool]:
    """Create or update the account of ``provider``+``subject`` (one transaction)."""
    account = tx.directory.by_subject(provider, subject)
    created = account is None
    if account is None:
        taken = tx.directory.by_username(username)
        if taken is not None:  # a local account of that name: keep it apart
            username = f"{username[:140]}#{secrets.token_hex(3)}"
        account = tx.directory.add_account(username=username, display_name=display, role=mapped.role,
                                           department_id=mapped.department_id, password_hash=None, now=now)
        tx.directory.link_subject(account.id, provider, subject)
    else:
        if account.role != mapped.role or account.department_id != mapped.department_id:
            tx.sessions.delete_for_account(account.id)  # a changed role: old sessions end
        tx.directory.provision(account.id, display_name=display, role=mapped.role,
                               department_id=mapped.department_id, enable=True)
    if mapped.role == "interpreter":
        tx.directory.set_languages(account.id, mapped.languages)
    fresh = tx.directory.account(account.id)
    assert fresh is not None
    return fresh, created
