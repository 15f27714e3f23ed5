"""Minting and checking join tokens.

A join token is a JWT that lets exactly one person into exactly one room in
exactly one role. Checking happens in two steps, both free of I/O:

* ``TokenCodec.decode`` proves the token is ours and current: known ``kid``,
  allowed algorithm (the one of that key, so ``none`` and HS/RS confusion are
  refused), good signature, issuer, audience, ``nbf`` and ``exp``. The signature
  is checked by libraries (Ed25519 by libsodium through PyNaCl, the others by
  pyjwt's algorithm objects over ``cryptography``); the parsing around it is
  ours, because this runs on every join and pyjwt's general ``decode`` spent as
  long again as the signature check itself.
* ``check_admission`` decides whether it may be used *now* for *this* room,
  given what the ledger of issued tokens and the room say: wrong room, room
  ended, revoked, already used (single-use), room full.

Every refusal is a ``TokenError`` with its own code.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from ..keys import ALGORITHMS, KeySet, SigningKey
from .errors import TokenError
from .roles import Role

MAX_TOKEN_CHARS = 4096
REQUIRED = ("iss", "aud", "sub", "room", "role", "name", "iat", "nbf", "exp", "jti")
_SIGNATURES = jwt.algorithms.get_default_algorithms()  # alg name -> the library's signature check
_COMPACT = re.compile(r"[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]*\.[A-Za-z0-9_=-]*")  # three base64url segments

# code -> message; the codes are part of the public API (README, Token errors).
REFUSALS: dict[str, str] = {
    "token_malformed": "The token is not a valid join token.",
    "token_bad_signature": "The token's signature is not valid.",
    "token_unknown_kid": "The token was signed with a key this server does not know.",
    "token_algorithm_not_allowed": "The token uses a signing algorithm that is not allowed.",
    "token_wrong_issuer": "The token was issued by someone else.",
    "token_wrong_audience": "The token is meant for another service.",
    "token_expired": "The link has expired.",
    "token_not_yet_valid": "The link is not valid yet; the consultation has not started.",
    "token_wrong_room": "The link belongs to another consultation.",
    "token_already_used": "The link has already been used.",
    "token_revoked": "The link has been withdrawn.",
    "room_ended": "The consultation has ended.",
    "room_full": "The consultation is full.",
    "room_not_found": "The consultation does not exist.",
}


def refuse(code: str) -> TokenError:
    """The ``TokenError`` for a refusal code; room_* codes map to fitting statuses."""
    status = {"room_ended": 410, "room_full": 409, "room_not_found": 404,
              "token_already_used": 409}.get(code, 401)
    return TokenError(code, REFUSALS[code], status)


@dataclass(frozen=True)
class Claims:
    """The checked claims of a join token."""

    iss: str
    aud: str
    sub: str
    room: str
    role: Role
    name: str
    dept: str | None
    iat: int
    nbf: int
    exp: int
    jti: str
    kid: str


@dataclass(frozen=True)
class TokenRecord:
    """What the ledger knows of an issued token (one row of ``issued_tokens``)."""

    jti: str
    room_id: str
    role: str
    identity: str
    not_before: int
    expires_at: int
    single_use: bool
    used_at: int | None
    revoked_at: int | None


class TokenCodec:
    """Signs with the active key of a ``KeySet``; verifies with any key in it."""

    def __init__(self, keyset: KeySet, issuer: str, audience: str, leeway: int = 10) -> None:
        self.keyset = keyset
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._verifiers: dict[str, Callable[[bytes, bytes], bool]] = {}  # kid -> its check (a kid is one key for ever)

    def mint(self, *, sub: str, room: str, role: Role, name: str, nbf: int, exp: int,
             now: int, dept: str | None = None, jti: str | None = None) -> tuple[str, Claims]:
        """A signed token and its claims."""
        if exp <= nbf:
            raise ValueError("exp must be after nbf")
        key = self.keyset.active
        claims = Claims(iss=self.issuer, aud=self.audience, sub=sub, room=room, role=role, name=name,
                        dept=dept, iat=now, nbf=nbf, exp=exp, jti=jti or secrets.token_urlsafe(16),
                        kid=key.kid)
        payload: dict[str, Any] = {
            "iss": claims.iss, "aud": claims.aud, "sub": sub, "room": room, "role": role.value,
            "name": name, "iat": now, "nbf": nbf, "exp": exp, "jti": claims.jti,
        }
        if dept is not None:
            payload["dept"] = dept
        token = jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid})
        return token, claims

    def decode(self, token: object, now: float) -> Claims:
        """The claims of a token this server signed and that is current at ``now``."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise refuse("token_malformed")
        header = _header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise refuse("token_algorithm_not_allowed")
        if not isinstance(kid, str):
            raise refuse("token_unknown_kid")
        key = self.keyset.get(kid)
        if key is None:
            raise refuse("token_unknown_kid")
        if alg != key.alg:
            raise refuse("token_algorithm_not_allowed")
        if "crit" in header or "b64" in header:  # never issued here: extensions we would have to honour
            raise refuse("token_malformed")
        signing_input, _, signature = token.rpartition(".")
        verify = self._verifiers.get(kid)
        if verify is None:
            verify = self._verifiers[kid] = _verifier(key)
        try:
            good = verify(signing_input.encode("ascii"), _b64(signature))
        except (binascii.Error, ValueError, jwt.PyJWTError):
            raise refuse("token_malformed") from None
        if not good:
            raise refuse("token_bad_signature")
        try:
            payload = orjson.loads(_b64(signing_input.partition(".")[2]))
        except (binascii.Error, ValueError):
            raise refuse("token_malformed") from None
        if not isinstance(payload, dict) or any(name not in payload for name in REQUIRED):
            raise refuse("token_malformed")
        if payload["iss"] != self.issuer:
            raise refuse("token_wrong_issuer")
        aud = payload["aud"]
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud
                                         and all(isinstance(a, str) for a in aud))):
            raise refuse("token_wrong_audience")
        claims = _claims_from(payload, kid)
        if now + self.leeway < claims.nbf:
            raise refuse("token_not_yet_valid")
        if now - self.leeway >= claims.exp:
            raise refuse("token_expired")
        return claims


def _verifier(key: SigningKey) -> Callable[[bytes, bytes], bool]:
    """``(signing input, signature) -> good`` for one key of the set.

    Ed25519 by libsodium (PyNaCl): the same RFC 8032 check as OpenSSL's in about 60 % of
    its CPU time, and this runs on every join.
    ES256 and HS256 by pyjwt's algorithm objects (``cryptography``, ``hmac``).
    """
    if key.alg == "EdDSA":
        sodium = VerifyKey(key.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

        def ed25519(message: bytes, signature: bytes) -> bool:
            try:
                sodium.verify(message, signature)
            except CryptoError:  # forged, corrupt, or not 64 bytes
                return False
            return True

        return ed25519
    algorithm = _SIGNATURES[key.alg]
    prepared = algorithm.prepare_key(key.public)
    return lambda message, signature: bool(algorithm.verify(message, prepared, signature))


def _claims_from(payload: dict[str, Any], kid: str) -> Claims:
    def text(name: str) -> str:
        value = payload.get(name)
        if not isinstance(value, str) or not value or len(value) > 256:
            raise refuse("token_malformed")
        return value

    def number(name: str) -> int:
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("token_malformed")
        return value

    try:
        role = Role(payload.get("role"))
    except ValueError:
        raise refuse("token_malformed") from None
    dept = payload.get("dept")
    if dept is not None and not isinstance(dept, str):
        raise refuse("token_malformed")
    aud = payload.get("aud")
    return Claims(iss=text("iss"), aud=aud if isinstance(aud, str) else str(aud), sub=text("sub"),
                  room=text("room"), role=role, name=text("name"), dept=dept, iat=number("iat"),
                  nbf=number("nbf"), exp=number("exp"), jti=text("jti"), kid=kid)


def bound(claims: Claims, record: TokenRecord) -> bool:
    """The ledger row binds its ``jti`` to one room, role, identity and validity window: a token
    signed again with any of them changed (by a holder of a key) is not the token that was issued."""
    return (record.room_id == claims.room and record.role == claims.role.value and record.identity == claims.sub
            and record.not_before == claims.nbf and record.expires_at == claims.exp)


def check_admission(claims: Claims, *, room_id: str | None, record: TokenRecord | None,
                    room_state: str | None, occupancy: int | None = None, capacity: int | None = None) -> None:
    """Refuse a decoded token that may not be used now for ``room_id``.

    ``room_id`` None means "the room the token names". ``room_state`` None means
    the room does not exist. ``record`` None means the ledger never saw this
    token: it was not issued by this server's API, so it is treated as revoked.
    """
    if room_id is not None and claims.room != room_id:
        raise refuse("token_wrong_room")
    if room_state is None:
        raise refuse("room_not_found")
    if room_state == "ended":
        raise refuse("room_ended")
    if record is None or record.revoked_at is not None or not bound(claims, record):
        raise refuse("token_revoked")
    if record.single_use and record.used_at is not None:
        raise refuse("token_already_used")
    if occupancy is not None and capacity is not None and occupancy >= capacity:
        raise refuse("room_full")


def _header(token: str) -> dict[str, Any]:
    """The unverified header, only to choose the key; pyjwt then checks the whole token once.

    (``jwt.get_unverified_header`` would parse and check every character of the token a second
    time on each join, a quarter of a join's CPU.)
    """
    if _COMPACT.fullmatch(token) is None:
        raise refuse("token_malformed")
    try:
        header = orjson.loads(_b64(token.partition(".")[0]))
    except (binascii.Error, ValueError):
        raise refuse("token_malformed") from None
    if not isinstance(header, dict):
        raise refuse("token_malformed")
    return header


def _b64(segment: str) -> bytes:
    """A base64url segment of a token that already matched ``_COMPACT`` (so no foreign characters)."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
