"""Join tokens: forgery, alg none, key confusion, expiry, wrong room, role and identity, replay."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from roomserver.core.roles import Role
from tests.attacks.loopback import Target, join_refused, target
from tests.attacks.verdict import Verdict

TOPIC = "jwt"
REFUSED = {"token_bad_signature", "token_algorithm_not_allowed", "token_unknown_kid", "token_malformed",
           "token_expired", "token_not_yet_valid", "token_wrong_room", "token_wrong_issuer",
           "token_wrong_audience", "token_revoked", "token_already_used", "room_ended", "room_not_found",
           "bad_message"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def unpart(text: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    signing = f"{part(header)}.{part(payload)}"
    return f"{signing}.{b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())}"


def public_secrets(t: Target) -> list[tuple[str, bytes]]:
    """What an attacker knows of the server's public key, as an HMAC secret."""
    public = t.services.keyset.active.public
    if isinstance(public, bytes):  # an HS256 key set has no public half
        return []
    out = [("PEM", public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
           ("DER", public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))]
    if isinstance(public, ed25519.Ed25519PublicKey):
        out.append(("raw", public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)))
    return out


async def run() -> list[Verdict]:
    verdicts: list[Verdict] = []

    async def check(attack: str, token: Any, expected: set[str] = REFUSED, **fields: Any) -> None:
        blocked, detail = await join_refused(t, token, expected, **fields)
        verdicts.append(Verdict(TOPIC, attack, blocked, detail))

    async with target() as t:
        room = await t.room()
        other = await t.room()
        issued = await t.invite(room, "citizen", "Frau X")
        token = issued["token"]
        head, body, sig = token.split(".")
        header, claims = unpart(head), unpart(body)
        kid = header["kid"]
        codec = t.services.codec
        now = int(time.time())

        # Forgery: the payload changed under the real signature.
        for field, value in (("role", "counsellor"), ("room", other), ("exp", now + 86400), ("sub", "counsellor:x"),
                             ("name", "Admin")):
            await check(f"payload {field} changed, signature kept", f"{head}.{part({**claims, field: value})}.{sig}")
        await check("signature bit flipped", f"{head}.{body}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}")
        await check("signature removed", f"{head}.{body}.")
        # alg none in every spelling.
        for alg in ("none", "None", "NONE", "nOnE"):
            await check(f"alg {alg}", f"{part({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{body}.")
        # Key confusion: HS256 signed with what is public.
        for name, secret in public_secrets(t):
            await check(f"HS256 signed with the public key ({name})",
                        hs256({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, secret))
        await check("HS256 signed with a guessed secret", hs256({"alg": "HS256", "kid": kid}, claims, b"secret"))
        # Other algorithms and keys of the attacker's, under the server's kid.
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        await check("RS256 signed by the attacker's RSA key", pyjwt.encode(claims, rsa_key, "RS256", {"kid": kid}))
        await check("ES256 signed by the attacker's EC key",
                    pyjwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256", {"kid": kid}))
        await check("EdDSA signed by the attacker's Ed25519 key",
                    pyjwt.encode(claims, ed25519.Ed25519PrivateKey.generate(), "EdDSA", {"kid": kid}))
        await check("unknown kid", pyjwt.encode(claims, ed25519.Ed25519PrivateKey.generate(), "EdDSA",
                                                {"kid": "attacker"}))
        await check("no kid", f"{part({'alg': header['alg']})}.{body}.{sig}")
        await check("kid pointing at a file", f"{part({**header, 'kid': '../../keys/keyset.json'})}.{body}.{sig}")
        await check("jku/x5u header to an attacker's key set",
                    f"{part({**header, 'jku': 'http://127.0.0.1:1/jwks.json', 'x5u': 'http://127.0.0.1:1/x'})}"
                    f".{body}.{sig[:-2]}AA")
        # Garbage.
        for label, junk in (("a.b.c", "a.b.c"), ("empty", ""), ("a number", 12345), ("5000 characters", "a." * 2500),
                            ("four parts", f"{token}.x"), ("null", None)):
            await check(f"malformed token: {label}", junk)

        # Signed by the server's own key, but not a token it may accept (a key holder's mistakes).
        def mint(**over: Any) -> str:
            fields: dict[str, Any] = {"sub": "citizen:c1", "room": room, "role": Role.CITIZEN, "name": "X",
                                      "nbf": now - 60, "exp": now + 600, "now": now}
            fields.update(over)
            return codec.mint(**fields)[0]

        await check("expired", mint(nbf=now - 7200, exp=now - 3600), {"token_expired"})
        await check("not yet valid", mint(nbf=now + 3600, exp=now + 7200), {"token_not_yet_valid"})
        await check("never issued (no ledger row)", mint(), {"token_revoked"})
        for field, value in (("role", Role.COUNSELLOR), ("sub", "counsellor:boss"), ("exp", now + 40000)):
            forged = codec.mint(**{**{"sub": claims["sub"], "room": room, "role": Role.CITIZEN, "name": "X",
                                      "nbf": claims["nbf"], "exp": claims["exp"], "now": now},
                                   field: value, "jti": claims["jti"]})[0]
            await check(f"issued jti signed again with another {field}", forged, {"token_revoked"})
        wrong_iss = pyjwt.encode({**claims, "iss": "evil"}, t.services.keyset.active.private, header["alg"],
                                 {"kid": kid})
        await check("wrong issuer", wrong_iss, {"token_wrong_issuer"})
        wrong_aud = pyjwt.encode({**claims, "aud": "other"}, t.services.keyset.active.private, header["alg"],
                                 {"kid": kid})
        await check("wrong audience", wrong_aud, {"token_wrong_audience"})
        await check("token for room A used to enter room B", token, {"token_wrong_room"}, room=other)

        # Replay of a single-use token.
        expert = await t.invite(room, "expert", "Herr Y")
        sock = await t.socket()
        first = await sock.join(expert["token"])
        await sock.send({"type": "leave"})
        await sock.closed(5.0)
        if first.get("type") != "welcome":
            verdicts.append(Verdict(TOPIC, "replay of a single-use token", False, f"first join failed: {first}"))
        else:
            await check("replay of a single-use token after leaving", expert["token"], {"token_already_used"})
        # Withdrawn, and ended.
        gone = await t.invite(room, "citizen", "Z")
        await t.http.delete(f"/api/v1/rooms/{room}/invites/{gone['jti']}", headers=_api())
        await check("withdrawn invite", gone["token"], {"token_revoked"})
        late = await t.invite(other, "citizen", "Late")
        await t.http.post(f"/api/v1/rooms/{other}/end", headers=_api())
        await check("token of an ended room", late["token"], {"room_ended"})
        await check("random jti on a copied token", f"{head}.{part({**claims, 'jti': secrets.token_urlsafe(16)})}.{sig}")
    return verdicts


def _api() -> dict[str, str]:
    from tests.attacks.loopback import API
    return API
