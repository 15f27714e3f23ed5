"""Join tokens: a valid round trip, one test per refusal with its own code, key rotation.

Real keys in a real key-set directory, a real SQLite ledger; forged tokens are
built by hand (base64url and HMAC) so that pyjwt's own guards cannot hide a gap
in ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path
from typing import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from roomserver.core.errors import TokenError
from roomserver.core.roles import Role
from roomserver.core.tokens import (
    REFUSALS,
    Claims,
    TokenCodec,
    TokenRecord,
    check_admission,
)
from roomserver.keys import KeySet, KeySetError
from roomserver.store import Store

NOW = 1_800_000_000
LEEWAY = 10
ISS = AUD = "roomserver"


# --- helpers -------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: object) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {"iss": ISS, "aud": AUD, "sub": "citizen:abc", "room": "r_room1",
                                 "role": "citizen", "name": "Frau X", "iat": NOW, "nbf": NOW - 60,
                                 "exp": NOW + 600, "jti": "jti-1"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def hs256_by_hand(header: dict[str, object], body: dict[str, object], secret: bytes) -> str:
    signing_input = f"{b64url_json(header)}.{b64url_json(body)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def mint(codec: TokenCodec, *, room: str = "r_room1", role: Role = Role.CITIZEN, nbf: int = NOW - 60,
         exp: int = NOW + 600, jti: str | None = None) -> tuple[str, Claims]:
    return codec.mint(sub=f"{role.value}:abc", room=room, role=role, name="Frau X", nbf=nbf, exp=exp, now=NOW,
                      jti=jti)


def assert_refused(code: str, call, *args, **kwargs) -> TokenError:
    """``call`` raises a TokenError with exactly ``code`` and its documented message."""
    with pytest.raises(TokenError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}"
    assert info.value.message == REFUSALS[code]
    return info.value


@pytest.fixture(params=["EdDSA", "ES256", "HS256"])
def alg(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def keyset(tmp_path: Path, alg: str) -> KeySet:
    return KeySet.open(tmp_path / "keys", create_alg=alg)


@pytest.fixture
def codec(keyset: KeySet) -> TokenCodec:
    return TokenCodec(keyset, ISS, AUD, leeway=LEEWAY)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open_sqlite(tmp_path / "ledger.sqlite3", synchronous="normal")
    yield s.blocking  # type: ignore[misc] # the same calls, each run to its end
    s.close()


def add_room(store: Store, capacity: int = 6) -> str:
    return store.rooms.create(title="Beratung", scheduled_start=None, scheduled_end=None, waiting_room=True,
                              max_participants=capacity, created_by="test", now=NOW).id


def record(store: Store, claims: Claims, *, single_use: bool) -> TokenRecord:
    store.tokens.record(TokenRecord(jti=claims.jti, room_id=claims.room, role=claims.role.value,
                                    identity=claims.sub, not_before=claims.nbf, expires_at=claims.exp,
                                    single_use=single_use, used_at=None, revoked_at=None),
                        issued_by="test", issued_at=NOW)
    got = store.tokens.get(claims.jti)
    assert got is not None
    return got


def admit(store: Store, claims: Claims, *, room_id: str | None = None, occupancy: int = 0) -> None:
    """check_admission with what the store says now about the token and its room."""
    room = store.rooms.get(claims.room)
    check_admission(claims, room_id=room_id, record=store.tokens.get(claims.jti),
                    room_state=room.state if room else None, occupancy=occupancy,
                    capacity=room.max_participants if room else 6)


# --- a valid round trip ----------------------------------------------------------


def test_round_trip(codec: TokenCodec, keyset: KeySet, store: Store, alg: str) -> None:
    room = add_room(store)
    token, minted = codec.mint(sub="expert:e1", room=room, role=Role.EXPERT, name="Herr Y", dept="jobcenter",
                               nbf=NOW, exp=NOW + 120, now=NOW)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["kid"] == keyset.active.kid
    claims = codec.decode(token, NOW + 1)
    assert claims == minted
    assert (claims.iss, claims.aud, claims.sub, claims.room, claims.role, claims.name, claims.dept) == \
        (ISS, AUD, "expert:e1", room, Role.EXPERT, "Herr Y", "jobcenter")
    assert (claims.iat, claims.nbf, claims.exp, claims.kid) == (NOW, NOW, NOW + 120, keyset.active.kid)
    assert claims.jti and len(claims.jti) >= 16
    record(store, claims, single_use=True)
    admit(store, claims, room_id=room)
    assert store.tokens.spend(claims.jti, NOW + 2)


def test_jtis_are_unique(codec: TokenCodec) -> None:
    assert len({mint(codec)[1].jti for _ in range(50)}) == 50


# --- refusals from decode ---------------------------------------------------------


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_bad_signature(codec: TokenCodec, part: str) -> None:
    token, _ = mint(codec)
    head, body, sig = token.split(".")
    if part == "payload":
        claims = json.loads(unb64url(body))
        claims["role"] = "counsellor"
        body = b64url_json(claims)
    else:
        raw = bytearray(unb64url(sig))
        raw[0] ^= 0x01
        sig = b64url(bytes(raw))
    assert_refused("token_bad_signature", codec.decode, f"{head}.{body}.{sig}", NOW)


def test_unknown_kid(codec: TokenCodec, tmp_path: Path, alg: str) -> None:
    stranger = TokenCodec(KeySet.open(tmp_path / "other-keys", create_alg=alg), ISS, AUD)
    token, _ = mint(stranger)
    assert_refused("token_unknown_kid", codec.decode, token, NOW)
    head, body, sig = token.split(".")
    without_kid = b64url_json({"alg": alg, "typ": "JWT"})
    assert_refused("token_unknown_kid", codec.decode, f"{without_kid}.{body}.{sig}", NOW)


@pytest.mark.parametrize("name", ["none", "None", "NONE"])
def test_alg_none_is_not_allowed(codec: TokenCodec, keyset: KeySet, name: str) -> None:
    header = {"alg": name, "typ": "JWT", "kid": keyset.active.kid}
    forged = f"{b64url_json(header)}.{b64url_json(payload())}."
    assert_refused("token_algorithm_not_allowed", codec.decode, forged, NOW)


@pytest.mark.parametrize("encoding", ["pem", "raw"])
@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])  # overrides the fixture: public-key sets only
def test_hs256_signed_with_the_public_key_is_not_allowed(codec: TokenCodec, keyset: KeySet, encoding: str) -> None:
    """HS/RS confusion: an attacker HMACs with the public key, which they know."""
    public = keyset.active.public
    if encoding == "pem":
        secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        secret = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        secret = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    forged = hs256_by_hand({"alg": "HS256", "typ": "JWT", "kid": keyset.active.kid}, payload(), secret)
    assert_refused("token_algorithm_not_allowed", codec.decode, forged, NOW)


@pytest.mark.parametrize("alg", ["HS256"])
def test_asymmetric_alg_on_an_hmac_key_is_not_allowed(codec: TokenCodec, keyset: KeySet) -> None:
    """The other direction: a token naming EdDSA or ES256 with the kid of an HMAC key."""
    for claimed in ("EdDSA", "ES256"):
        header = {"alg": claimed, "typ": "JWT", "kid": keyset.active.kid}
        forged = f"{b64url_json(header)}.{b64url_json(payload())}.{b64url(b'x' * 64)}"
        assert_refused("token_algorithm_not_allowed", codec.decode, forged, NOW)


def test_rs256_is_not_allowed(codec: TokenCodec, keyset: KeySet) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(payload(), rsa_key, algorithm="RS256", headers={"kid": keyset.active.kid})
    assert_refused("token_algorithm_not_allowed", codec.decode, token, NOW)


def test_wrong_issuer(codec: TokenCodec, keyset: KeySet) -> None:
    token, _ = mint(TokenCodec(keyset, "someone-else", AUD))
    assert_refused("token_wrong_issuer", codec.decode, token, NOW)


def test_wrong_audience(codec: TokenCodec, keyset: KeySet) -> None:
    token, _ = mint(TokenCodec(keyset, ISS, "another-service"))
    assert_refused("token_wrong_audience", codec.decode, token, NOW)


def test_expired_respects_leeway(codec: TokenCodec) -> None:
    token, _ = mint(codec, nbf=NOW - 600, exp=NOW)
    assert codec.decode(token, NOW + LEEWAY - 1).exp == NOW  # within the tolerated skew
    assert_refused("token_expired", codec.decode, token, NOW + LEEWAY)
    assert_refused("token_expired", codec.decode, token, NOW + 3600)


def test_not_yet_valid_respects_leeway(codec: TokenCodec) -> None:
    token, _ = mint(codec, nbf=NOW + 60, exp=NOW + 600)
    assert_refused("token_not_yet_valid", codec.decode, token, NOW)
    assert_refused("token_not_yet_valid", codec.decode, token, NOW + 60 - LEEWAY - 1)
    assert codec.decode(token, NOW + 60 - LEEWAY).nbf == NOW + 60


@pytest.mark.parametrize("garbage", [
    None, 12345, b"a.b.c", "", "not-a-token", "a.b.c", "..", "a.b", "a.b.c.d",
    "eyJhbGciOiJFZERTQSJ9.%%%.abc", "x" * 5000 + ".y.z",
])
def test_malformed_garbage(codec: TokenCodec, garbage: object) -> None:
    assert_refused("token_malformed", codec.decode, garbage, NOW)


@pytest.mark.parametrize("overrides", [
    {"room": 5}, {"role": "pilot"}, {"role": None}, {"name": ""}, {"name": ["Frau X"]}, {"sub": None},
    {"exp": "tomorrow"}, {"nbf": 1.5}, {"iat": True}, {"jti": None}, {"dept": 7}, {"sub": "x" * 300},
], ids=lambda o: ",".join(f"{k}={v!r}"[:24] for k, v in o.items()))
def test_malformed_claims_with_a_good_signature(codec: TokenCodec, keyset: KeySet,
                                                overrides: dict[str, object]) -> None:
    key = keyset.active
    token = jwt.encode(payload(**overrides), key.private, algorithm=key.alg, headers={"kid": key.kid})
    assert_refused("token_malformed", codec.decode, token, NOW)


def test_malformed_header(codec: TokenCodec) -> None:
    token, _ = mint(codec)
    _, body, sig = token.split(".")
    assert_refused("token_malformed", codec.decode, f"{b64url(b'not json')}.{body}.{sig}", NOW)


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "room", "role", "name", "iat", "nbf", "exp", "jti"])
def test_each_required_claim_missing_under_a_good_signature(codec: TokenCodec, keyset: KeySet, claim: str) -> None:
    key = keyset.active
    token = jwt.encode(payload(**{claim: None}), key.private, algorithm=key.alg, headers={"kid": key.kid})
    assert_refused("token_malformed", codec.decode, token, NOW)


@pytest.mark.parametrize("headers", [{"crit": ["exp"]}, {"b64": False, "crit": ["b64"]}], ids=["crit", "b64"])
def test_header_extensions_we_never_issue_are_refused(codec: TokenCodec, keyset: KeySet,
                                                      headers: dict[str, object]) -> None:
    key = keyset.active
    signed = jwt.encode(payload(), key.private, algorithm=key.alg, headers={"kid": key.kid, **headers})
    assert_refused("token_malformed", codec.decode, signed, NOW)


def test_payload_that_is_not_an_object_under_a_good_signature(codec: TokenCodec, keyset: KeySet) -> None:
    key = keyset.active
    algorithm = jwt.algorithms.get_default_algorithms()[key.alg]
    signing_input = f"{b64url_json({'alg': key.alg, 'kid': key.kid})}.{b64url_json(['iss', 'aud'])}"
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key.private))
    assert_refused("token_malformed", codec.decode, f"{signing_input}.{b64url(signature)}", NOW)


def test_audience_as_a_list(codec: TokenCodec, keyset: KeySet) -> None:
    key = keyset.active
    ours = jwt.encode(payload(aud=["elsewhere", AUD]), key.private, algorithm=key.alg, headers={"kid": key.kid})
    assert codec.decode(ours, NOW).room == "r_room1"
    theirs = jwt.encode(payload(aud=["elsewhere"]), key.private, algorithm=key.alg, headers={"kid": key.kid})
    assert_refused("token_wrong_audience", codec.decode, theirs, NOW)


def test_signature_that_is_not_base64(codec: TokenCodec) -> None:
    token, _ = mint(codec)
    head, body, _ = token.split(".")
    assert_refused("token_malformed", codec.decode, f"{head}.{body}.a", NOW)  # one character: no whole byte
    assert_refused("token_bad_signature", codec.decode, f"{head}.{body}.", NOW)


# --- refusals from admission (with the real ledger) -----------------------------------


def test_wrong_room(codec: TokenCodec, store: Store) -> None:
    room, other = add_room(store), add_room(store)
    _, claims = mint(codec, room=room)
    record(store, claims, single_use=False)
    admit(store, claims, room_id=room)
    assert_refused("token_wrong_room", admit, store, claims, room_id=other)


def test_already_used(codec: TokenCodec, store: Store) -> None:
    room = add_room(store)
    _, claims = mint(codec, room=room, role=Role.EXPERT)
    record(store, claims, single_use=True)
    admit(store, claims)
    assert store.tokens.spend(claims.jti, NOW) is True
    assert store.tokens.spend(claims.jti, NOW + 1) is False
    assert store.tokens.get(claims.jti).used_at == NOW
    error = assert_refused("token_already_used", admit, store, claims)
    assert error.status == 409


def test_multi_use_token_can_be_spent_again(codec: TokenCodec, store: Store) -> None:
    room = add_room(store)
    _, claims = mint(codec, room=room)
    record(store, claims, single_use=False)
    assert store.tokens.spend(claims.jti, NOW) and store.tokens.spend(claims.jti, NOW + 1)
    admit(store, claims)


def test_revoked(codec: TokenCodec, store: Store) -> None:
    room = add_room(store)
    _, claims = mint(codec, room=room)
    record(store, claims, single_use=False)
    assert store.tokens.revoke(claims.jti, NOW) is True
    assert store.tokens.revoke(claims.jti, NOW) is False
    assert_refused("token_revoked", admit, store, claims)
    assert store.tokens.spend(claims.jti, NOW) is False  # a withdrawn token cannot be spent either


def test_unrecorded_token_counts_as_revoked(codec: TokenCodec, store: Store) -> None:
    room = add_room(store)
    _, claims = mint(codec, room=room)  # valid signature, but never entered in the ledger
    assert_refused("token_revoked", admit, store, claims)


def test_removed_participant_is_revoked(codec: TokenCodec, store: Store) -> None:
    room = add_room(store)
    _, claims = mint(codec, room=room)
    record(store, claims, single_use=False)
    assert store.tokens.revoke_identity(room, claims.sub, NOW) == 1
    assert_refused("token_revoked", admit, store, claims)


def test_room_ended(codec: TokenCodec, store: Store) -> None:
    room = add_room(store)
    _, claims = mint(codec, room=room)
    record(store, claims, single_use=False)
    assert store.rooms.end(room, reason="api", now=NOW)
    error = assert_refused("room_ended", admit, store, claims)
    assert error.status == 410


def test_room_full(codec: TokenCodec, store: Store) -> None:
    room = add_room(store, capacity=3)
    _, claims = mint(codec, room=room)
    record(store, claims, single_use=False)
    admit(store, claims, occupancy=2)
    assert_refused("room_full", admit, store, claims, occupancy=3)


def test_room_not_found(codec: TokenCodec, store: Store) -> None:
    _, claims = mint(codec, room="r_nosuchroom")
    assert_refused("room_not_found", admit, store, claims)


# --- rotation ---------------------------------------------------------------------


def test_rotation_keeps_old_tokens_until_their_key_is_removed(tmp_path: Path, alg: str) -> None:
    directory = tmp_path / "keys"
    keyset = KeySet.open(directory, create_alg=alg)
    codec = TokenCodec(keyset, ISS, AUD, leeway=LEEWAY)
    old_kid = keyset.active.kid
    old_token, _ = mint(codec)

    new_key = keyset.rotate("ES256" if alg == "EdDSA" else "EdDSA")  # rotating may change algorithm too
    assert keyset.active.kid == new_key.kid != old_kid
    assert [k.kid for k in keyset.keys() if not k.active] == [old_kid]
    assert codec.decode(old_token, NOW).kid == old_kid
    new_token, new_claims = mint(codec)
    assert new_claims.kid == new_key.kid == jwt.get_unverified_header(new_token)["kid"]

    # A restart (the set read back from its directory) sees the same keys.
    reloaded = TokenCodec(KeySet.open(directory), ISS, AUD, leeway=LEEWAY)
    assert [(k.kid, k.alg, k.active) for k in reloaded.keyset.keys()] == \
        [(k.kid, k.alg, k.active) for k in keyset.keys()]
    assert reloaded.decode(old_token, NOW).kid == old_kid
    assert reloaded.decode(new_token, NOW).kid == new_key.kid

    with pytest.raises(KeySetError, match="active"):
        keyset.remove(new_key.kid)
    keyset.remove(old_kid)
    assert_refused("token_unknown_kid", codec.decode, old_token, NOW)
    assert_refused("token_unknown_kid", TokenCodec(KeySet.open(directory), ISS, AUD).decode, old_token, NOW)
    assert codec.decode(new_token, NOW).kid == new_key.kid
    with pytest.raises(KeySetError):
        keyset.remove(old_kid)


def test_key_files_are_private(tmp_path: Path, alg: str) -> None:
    directory = tmp_path / "keys"
    keyset = KeySet.open(directory, create_alg=alg)
    keyset.rotate(alg)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(directory.iterdir())
    assert len(files) == 3  # keyset.json and two keys
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_open_without_a_key_set_says_so(tmp_path: Path) -> None:
    with pytest.raises(KeySetError, match="no key set"):
        KeySet.open(tmp_path / "empty")


def test_a_tampered_key_file_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    kid = KeySet.open(directory, create_alg="EdDSA").active.kid
    (directory / f"{kid}.pem").write_text("not a key", encoding="utf-8")
    with pytest.raises(KeySetError, match="not a valid EdDSA key"):
        KeySet.open(directory)


@pytest.mark.parametrize("change", [{"role": Role.COUNSELLOR}, {"sub": "citizen:someone-else"},
                                    {"exp": NOW + 86_400}, {"nbf": NOW - 3600}])
def test_a_token_signed_again_with_another_role_identity_or_window_is_refused(
        codec: TokenCodec, store: Store, change: dict[str, object]) -> None:
    """Defence in depth: even a holder of the signing key cannot turn an issued jti into another token."""
    room = add_room(store)
    fields: dict[str, object] = {"sub": "citizen:c1", "room": room, "role": Role.CITIZEN, "name": "Frau X",
                                 "nbf": NOW - 60, "exp": NOW + 600}
    _, issued = codec.mint(**fields, now=NOW)  # type: ignore[arg-type]
    record(store, issued, single_use=False)
    admit(store, issued, room_id=room)
    _, forged = codec.mint(**{**fields, **change}, now=NOW, jti=issued.jti)  # type: ignore[arg-type]
    assert_refused("token_revoked", admit, store, forged, room_id=room)
