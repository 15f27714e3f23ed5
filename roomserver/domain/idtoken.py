"""Checking an ID token (and a back-channel logout token) from an OpenID Provider, with joserfc.

joserfc parses the JWS, chooses the key by ``kid`` from the provider's key set, enforces the
algorithm allow-list (``none`` and HMAC are never on it) and verifies the signature; its claims
registry checks issuer, audience and times. This module only names each failure, so that the
person sees what went wrong and IT finds the code in the audit log.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

MAX_TOKEN = 16384
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class IdTokenError(Exception):
    """A token refused; ``code`` says why (``wrong_audience``, ``expired``, ``unknown_key`` …).

    ``detail`` is free of the token's values and goes into the log; ``evidence`` holds them
    (an issuer URL, an audience) for the administrator's ``check-config`` and tests only.
    """

    def __init__(self, code: str, detail: str = "", *, evidence: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.evidence = evidence


@dataclass(frozen=True)
class Header:
    alg: str
    kid: str | None


def header(token: str) -> Header:
    """The token's protected header, unverified: to see which key it names before choosing keys."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN or token.count(".") != 2:
        raise IdTokenError("malformed", "not a compact JWS")
    try:
        fields = extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise IdTokenError("malformed", str(exc)) from None
    alg = fields.get("alg")
    kid = fields.get("kid")
    if not isinstance(alg, str):
        raise IdTokenError("malformed", "no alg in the header")
    return Header(alg, kid if isinstance(kid, str) else None)


def _verified(token: str, keys: KeySet, algorithms: list[str]) -> dict[str, Any]:
    head = header(token)
    if head.alg not in algorithms:
        raise IdTokenError("alg_not_allowed", "the token's alg is not allowed",
                           evidence=f"alg {head.alg[:20]!r} is not in {algorithms}")
    try:
        decoded = jwt.decode(token, keys, algorithms=algorithms)
    except UnsupportedAlgorithmError as exc:
        raise IdTokenError("alg_not_allowed", str(exc)) from None
    except InvalidKeyIdError as exc:
        raise IdTokenError("unknown_key", str(exc)) from None
    except BadSignatureError:
        raise IdTokenError("bad_signature", "the signature does not match the provider's key") from None
    except (JoseError, ValueError, TypeError) as exc:
        raise IdTokenError("malformed", str(exc)) from None
    if not isinstance(decoded.claims, dict):
        raise IdTokenError("malformed", "claims are not an object")
    return decoded.claims


def _registry(issuer: str, client_id: str, now: int, leeway: int, **extra: Any) -> jwt.JWTClaimsRegistry:
    return jwt.JWTClaimsRegistry(now=now, leeway=leeway, iss={"essential": True, "value": issuer},
                                 aud={"essential": True, "value": client_id}, iat={"essential": True}, **extra)


def _validate(registry: jwt.JWTClaimsRegistry, claims: dict[str, Any]) -> None:
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise IdTokenError("expired", "the token has expired") from None
    except MissingClaimError as exc:
        raise IdTokenError("missing_claim", f"claim {exc.claim!r} is missing") from None
    except InvalidClaimError as exc:
        name = getattr(exc, "claim", "")
        if name == "iss":
            raise IdTokenError("wrong_issuer", "iss is not the configured issuer",
                               evidence=f"iss is {str(claims.get('iss'))[:200]!r}") from None
        if name == "aud":
            raise IdTokenError("wrong_audience", "aud does not name this client",
                               evidence=f"aud is {str(claims.get('aud'))[:200]!r}") from None
        if name in ("iat", "nbf"):
            raise IdTokenError("clock_skew", f"{name} lies in the future; check the clocks") from None
        raise IdTokenError("malformed", f"claim {name!r} is invalid") from None
    except JoseError as exc:
        raise IdTokenError("malformed", str(exc)) from None


def check_id_token(token: str, keys: KeySet, *, issuer: str, client_id: str, nonce: str, algorithms: list[str],
                   now: int, leeway: int) -> dict[str, Any]:
    """The claims of a sound ID token (OpenID Connect Core 3.1.3.7), else ``IdTokenError``."""
    claims = _verified(token, keys, algorithms)
    _validate(_registry(issuer, client_id, now, leeway, exp={"essential": True}, sub={"essential": True}), claims)
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise IdTokenError("wrong_audience", "several audiences and azp is not this client")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise IdTokenError("wrong_nonce", "the nonce is not the one this sign-in sent")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise IdTokenError("missing_claim", "sub must be a non-empty string")
    return claims


def check_logout_token(token: str, keys: KeySet, *, issuer: str, client_id: str, algorithms: list[str],
                       now: int, leeway: int) -> dict[str, Any]:
    """The claims of a sound back-channel logout token (OpenID Connect Back-Channel Logout 2.6)."""
    claims = _verified(token, keys, algorithms)
    _validate(_registry(issuer, client_id, now, leeway, jti={"essential": True}), claims)
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise IdTokenError("not_logout_token", "no back-channel logout event")
    if "nonce" in claims:
        raise IdTokenError("not_logout_token", "a logout token carries no nonce")
    if not isinstance(claims.get("sub"), str) and not isinstance(claims.get("sid"), str):
        raise IdTokenError("missing_claim", "a logout token names sub or sid")
    return claims
