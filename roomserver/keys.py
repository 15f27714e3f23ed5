"""The token signing key set: one active key signs, every key in the set verifies.

Keys carry an id (``kid``) that goes into every token header, so rotating in a
new active key keeps every token signed by an older key valid until that key is
removed from the set. The set lives in a directory: ``keyset.json`` lists the
keys, each private key sits beside it in its own file, readable by the owner
only. Nothing here is ever logged.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ALGORITHMS = ("EdDSA", "ES256", "HS256")
KEYSET_FILE = "keyset.json"


class KeySetError(Exception):
    """The key set cannot be read or changed; the message says why in one line."""


@dataclass(frozen=True)
class SigningKey:
    """One key of the set. ``private`` signs; ``public`` verifies (same for HS256)."""

    kid: str
    alg: str
    created_at: int
    active: bool
    private: Any
    public: Any


def _generate(alg: str) -> tuple[Any, bytes]:
    """A new private key and its serialised form."""
    if alg == "EdDSA":
        key: Any = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "HS256":
        raw = secrets.token_bytes(32)
        return raw, base64.b64encode(raw)
    else:
        raise KeySetError(f"keys: unknown algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return key, pem


def _load_private(alg: str, data: bytes, path: Path) -> tuple[Any, Any]:
    try:
        if alg == "HS256":
            raw = base64.b64decode(data.strip(), validate=True)
            if len(raw) < 32:
                raise ValueError("secret shorter than 32 bytes")
            return raw, raw
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise KeySetError(f"keys: {path} is not a valid {alg} key: {exc}") from None
    expected = ed25519.Ed25519PrivateKey if alg == "EdDSA" else ec.EllipticCurvePrivateKey
    if not isinstance(key, expected):
        raise KeySetError(f"keys: {path} does not hold an {alg} key")
    return key, key.public_key()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class KeySet:
    """The keys in one directory. Load with ``KeySet.open``."""

    def __init__(self, directory: Path, keys: list[SigningKey]) -> None:
        self.directory = directory
        self._keys = {k.kid: k for k in keys}

    @classmethod
    def open(cls, directory: Path, *, create_alg: str | None = None) -> "KeySet":
        """Load the set; with ``create_alg``, generate a first key when there is none."""
        index = directory / KEYSET_FILE
        if not index.exists():
            if create_alg is None:
                raise KeySetError(f"keys: no key set in {directory} (run 'roomserver keys rotate')")
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
            keyset = cls(directory, [])
            keyset.rotate(create_alg)
            return keyset
        try:
            entries = json.loads(index.read_text(encoding="utf-8"))
            if not isinstance(entries, list):
                raise ValueError("not a list")
        except (ValueError, OSError) as exc:
            raise KeySetError(f"keys: {index} is unreadable: {exc}") from None
        keys = []
        for entry in entries:
            try:
                kid, alg = str(entry["kid"]), str(entry["alg"])
                created, active = int(entry["created_at"]), bool(entry["active"])
            except (KeyError, TypeError, ValueError):
                raise KeySetError(f"keys: {index} has a malformed entry") from None
            if alg not in ALGORITHMS:
                raise KeySetError(f"keys: key {kid} in {index} has unknown algorithm {alg!r}")
            path = directory / _key_file(kid, alg)
            try:
                data = path.read_bytes()
            except OSError:
                raise KeySetError(f"keys: key file {path} is missing") from None
            private, public = _load_private(alg, data, path)
            keys.append(SigningKey(kid, alg, created, active, private, public))
        keyset = cls(directory, keys)
        if sum(1 for k in keys if k.active) != 1:
            raise KeySetError(f"keys: {index} must have exactly one active key")
        return keyset

    @property
    def active(self) -> SigningKey:
        for key in self._keys.values():
            if key.active:
                return key
        raise KeySetError("keys: the key set has no active key")

    def get(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid)

    def keys(self) -> list[SigningKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.kid))

    def rotate(self, alg: str) -> SigningKey:
        """Add a new key and make it the active one; older keys keep verifying."""
        private, serialised = _generate(alg)
        kid = f"{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(4)}"
        _write_private(self.directory / _key_file(kid, alg), serialised)
        public = private if alg == "HS256" else private.public_key()
        new = SigningKey(kid, alg, int(time.time()), True, private, public)
        self._keys = {k.kid: _with_active(k, False) for k in self._keys.values()}
        self._keys[kid] = new
        self._save()
        return new

    def remove(self, kid: str) -> None:
        """Drop a retired key: tokens it signed stop verifying. The active key stays."""
        key = self._keys.get(kid)
        if key is None:
            raise KeySetError(f"keys: no key {kid!r} in the set")
        if key.active:
            raise KeySetError(f"keys: {kid} is the active key; rotate first")
        del self._keys[kid]
        self._save()
        (self.directory / _key_file(kid, key.alg)).unlink(missing_ok=True)

    def _save(self) -> None:
        entries = [{"kid": k.kid, "alg": k.alg, "created_at": k.created_at, "active": k.active}
                   for k in self.keys()]
        _write_private(self.directory / KEYSET_FILE, json.dumps(entries, indent=2).encode())


def _key_file(kid: str, alg: str) -> str:
    if not kid.replace("-", "").isalnum():
        raise KeySetError(f"keys: invalid key id {kid!r}")
    return f"{kid}.{'secret' if alg == 'HS256' else 'pem'}"


def _with_active(key: SigningKey, active: bool) -> SigningKey:
    return SigningKey(key.kid, key.alg, key.created_at, active, key.private, key.public)
