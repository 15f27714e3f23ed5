"""Who is calling the API: staff signed in with a session, or a system with an API key.

Password checking is one pluggable part (``PasswordProvider``) so that an OIDC
provider can later replace local accounts without touching the handlers.
Nothing here knows about HTTP; the edge passes in the cookie or header value.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import RoomServerError
from .store import Account, Store

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that timing does not
    tell which usernames exist. Made on first use: every CLI start would pay for it."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash with the library's current parameters."""
    return _hasher.hash(password)


def generate_password() -> str:
    """A password for a generated account: long, readable, no ambiguous characters."""
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4)]
    return "-".join(groups)


@dataclass(frozen=True)
class Principal:
    """The caller of a request."""

    kind: str  # "staff" or "api_key"
    id: str  # account id, or "apikey:<name>"
    role: str  # a StaffRole value, or "system"
    display_name: str
    department_id: str | None = None
    csrf: str | None = None  # staff sessions only: the token state-changing requests must echo

    @property
    def audit_actor(self) -> str:
        return self.id


class PasswordProvider(Protocol):
    def authenticate(self, username: str, password: str, now: int) -> Account: ...


class LocalPasswordProvider:
    """Local accounts with argon2 hashes and a lock-out after repeated failures."""

    def __init__(self, store: Store, *, max_failures: int, lockout_seconds: int) -> None:
        self.store = store
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds

    def authenticate(self, username: str, password: str, now: int) -> Account:
        account = self.store.directory.by_username(username) if username else None
        if account is None or account.password_hash is None or account.disabled:
            _verify(_dummy_hash(), password)
            raise login_failed()
        if account.locked_until is not None and account.locked_until > now:
            raise RoomServerError("account_locked", "Too many failed sign-ins. Try again in a few minutes.", 429)
        if not _verify(account.password_hash, password):
            self.store.directory.record_login_failure(account.id, max_failures=self.max_failures,
                                                      lock_until=now + self.lockout_seconds)
            raise login_failed()
        self.store.directory.record_login_success(account.id)
        if _hasher.check_needs_rehash(account.password_hash):
            self.store.directory.set_password_hash(account.id, hash_password(password))
        return account


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def login_failed() -> RoomServerError:
    return RoomServerError("login_failed", "Username or password is wrong.", 401)


class Authenticator:
    """Turns credentials into a ``Principal`` and manages staff sessions."""

    def __init__(self, store: Store, provider: PasswordProvider, *, api_keys: dict[str, str],
                 session_lifetime: int) -> None:
        self.store = store
        self.provider = provider
        self._api_keys = dict(api_keys)  # key -> name
        self.session_lifetime = session_lifetime

    def sign_in(self, username: str, password: str, now: int) -> tuple[str, Principal]:
        """A new session for good credentials: (session id for the cookie, principal)."""
        account = self.provider.authenticate(username, password, now)
        session_id, session = self.store.sessions.create(account.id, now=now, lifetime=self.session_lifetime)
        return session_id, _staff(account, session.csrf)

    def sign_out(self, session_id: str) -> None:
        self.store.sessions.delete(session_id)

    def from_session(self, session_id: str, now: int) -> Principal | None:
        if not session_id.isascii():  # ours are URL-safe base64; a header may carry any bytes
            return None
        session = self.store.sessions.get(session_id, now)
        if session is None:
            return None
        account = self.store.directory.account(session.account_id)
        if account is None or account.disabled:
            return None
        return _staff(account, session.csrf)

    def from_api_key(self, key: str) -> Principal | None:
        """Constant-time comparison against every configured key."""
        found = None
        # Header values are decoded with surrogateescape: bytes that are not UTF-8 must not raise here.
        sent = key.encode("utf-8", "surrogateescape")
        for candidate, name in self._api_keys.items():
            if hmac.compare_digest(candidate.encode(), sent):
                found = name
        if found is None:
            return None
        return Principal(kind="api_key", id=f"apikey:{found}", role="system", display_name=found)


def _staff(account: Account, csrf: str) -> Principal:
    return Principal(kind="staff", id=account.id, role=account.role, display_name=account.display_name,
                     department_id=account.department_id, csrf=csrf)
