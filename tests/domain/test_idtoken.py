"""ID token and logout token checks (joserfc underneath): each failure its own code."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from roomserver.domain.idtoken import LOGOUT_EVENT, IdTokenError, check_id_token, check_logout_token

NOW = 1_800_000_000
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
KEYS = KeySet([KEY])
ARGS = {"issuer": "https://op.example", "client_id": "rs", "nonce": "n-123", "algorithms": ["RS256", "ES256"],
        "now": NOW, "leeway": 30}


def token(key=KEY, alg: str = "RS256", **changes) -> str:
    claims = {"iss": "https://op.example", "aud": "rs", "sub": "u1", "iat": NOW - 10, "exp": NOW + 300,
              "nonce": "n-123"}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid} if key.kid else {"alg": alg}, claims, key)


def code(value: str, keys: KeySet = KEYS, **args) -> str:
    with pytest.raises(IdTokenError) as caught:
        check_id_token(value, keys, **{**ARGS, **args})
    return caught.value.code


def test_a_sound_token_gives_its_claims() -> None:
    assert check_id_token(token(), KEYS, **ARGS)["sub"] == "u1"
    assert check_id_token(token(aud=["rs", "other"], azp="rs"), KEYS, **ARGS)["sub"] == "u1"


def test_each_failure_has_its_own_code() -> None:
    assert code(token(iss="https://evil.example")) == "wrong_issuer"
    assert code(token(aud="other")) == "wrong_audience"
    assert code(token(aud=["rs", "other"])) == "wrong_audience"  # several audiences and no azp
    assert code(token(exp=NOW - 31, iat=NOW - 600)) == "expired"
    assert code(token(iat=NOW + 600, exp=NOW + 900)) == "clock_skew"
    assert code(token(nonce="other")) == "wrong_nonce"
    assert code(token(nonce=None)) == "wrong_nonce"
    assert code(token(sub=None)) == "missing_claim"
    assert code("a.b") == "malformed" and code("x" * 20000) == "malformed" and code("e30.e30.") == "malformed"


def test_the_token_values_stay_out_of_the_message_that_is_logged() -> None:
    """The log gets ``str(exc)``; the foreign issuer or audience is only in ``evidence`` (check-config)."""
    for bad, value in ((token(iss="https://10.1.2.3/evil"), "10.1.2.3"), (token(aud="203.0.113.9"), "203.0.113.9")):
        with pytest.raises(IdTokenError) as caught:
            check_id_token(bad, KEYS, **ARGS)
        assert value not in str(caught.value) and value in caught.value.evidence


def test_a_token_within_the_leeway_passes() -> None:
    assert check_id_token(token(exp=NOW - 20, iat=NOW - 600), KEYS, **ARGS)["sub"] == "u1"


def test_algorithms_off_the_list_and_unknown_or_wrong_keys_are_refused() -> None:
    head = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps({"sub": "u1"}).encode()).rstrip(b"=").decode()
    assert code(f"{head}.{body}.") == "alg_not_allowed"
    assert code(token(key=OctKey.import_key("s" * 32), alg="HS256")) == "alg_not_allowed"
    assert code(token(key=RSAKey.generate_key(2048, parameters={"kid": "k9"}))) == "unknown_key"
    assert code(token(key=RSAKey.generate_key(2048, parameters={"kid": "k1"}))) == "bad_signature"
    ec = ECKey.generate_key("P-256", parameters={"kid": "e1"})
    assert code(token(key=ec, alg="ES256"), algorithms=["RS256"]) == "alg_not_allowed"


def test_a_logout_token_needs_the_event_and_no_nonce() -> None:
    args = {k: v for k, v in ARGS.items() if k != "nonce"}
    event = {LOGOUT_EVENT: {}}
    good = token(nonce=None, exp=None, jti="j1", sid="s1", events=event)
    assert check_logout_token(good, KEYS, **args)["sid"] == "s1"
    for bad in (token(nonce=None, jti="j1", sid="s1"), token(jti="j1", sid="s1", events=event)):
        with pytest.raises(IdTokenError) as caught:
            check_logout_token(bad, KEYS, **args)
        assert caught.value.code == "not_logout_token"
