"""Who is calling the API: staff signed in with a session, or a system with an API key.

Password checking is one pluggable part (``PasswordProvider``) so that an OIDC
provider can later replace local accounts without touching the handlers.
Nothing here knows about HTTP; the edge passes in the cookie or header value.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..core.errors import RoomServerError
from ..store import Account, Store, Tx
from ..store.sessions import Session
from .signin import SignInGuard

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
    async def authenticate(self, username: str, password: str, now: int) -> Account: ...


class LocalPasswordProvider:
    """Local accounts with argon2 hashes. Guessing is slowed down in front of it (``domain/signin.py``),
    never by locking an account: a lock is a switch any stranger can flip."""

    def __init__(self, store: Store, *, concurrent_checks: int = 4) -> None:
        self.store = store
        # argon2 takes tens of milliseconds and much memory by design: a flood of sign-ins must
        # not take every thread of the store's pool nor all memory, so a few checks at a time.
        self._checks = asyncio.Semaphore(concurrent_checks)

    async def authenticate(self, username: str, password: str, now: int) -> Account:
        # Always in a thread, never on the event loop; the same work for unknown and known usernames.
        account = await self.store.directory.by_username(username) if username else None
        async with self._checks:
            if account is None or account.password_hash is None or account.disabled:
                await asyncio.to_thread(_verify_dummy, password)
                raise login_failed()
            good = await asyncio.to_thread(_verify, account.password_hash, password)
        if not good:
            raise login_failed()
        if _hasher.check_needs_rehash(account.password_hash):
            await self.store.directory.set_password_hash(account.id, await asyncio.to_thread(hash_password, password))
        return account


def _verify_dummy(password: str) -> None:
    _verify(_dummy_hash(), password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def login_failed() -> RoomServerError:
    return RoomServerError("login_failed", "Username or password is wrong.", 401)


@dataclass(frozen=True)
class SignIn:
    """A good sign-in: the session for the cookie, who it is, and a new device cookie (None: keep the old)."""

    session_id: str
    principal: Principal
    device: str | None


class AuditBudget:
    """At most ``per_minute`` failed sign-ins audited one by one per node and minute; the rest are
    counted and written as one event when the next minute's first one comes."""

    def __init__(self, per_minute: int = 30) -> None:
        self.per_minute = per_minute
        self._minute = -1
        self._used = 0
        self._skipped = 0

    def take(self, now: int) -> int | None:
        """None: do not audit this one. Else the count of earlier ones not itemised (to write first)."""
        minute = now // 60
        if minute != self._minute:
            self._minute, self._used = minute, 0
        if self._used >= self.per_minute:
            self._skipped += 1
            return None
        self._used += 1
        skipped, self._skipped = self._skipped, 0
        return skipped


class Authenticator:
    """Turns credentials into a ``Principal`` and manages staff sessions."""

    def __init__(self, store: Store, provider: PasswordProvider, *, api_keys: dict[str, str],
                 session_lifetime: int, guard: SignInGuard | None = None, local_accounts: bool = True) -> None:
        self.store = store
        self.provider = provider
        self.guard = guard or SignInGuard(store, free=5, free_other=20, max_delay=300)
        self._audit_budget = AuditBudget()
        self._api_keys = dict(api_keys)  # key -> name
        self.session_lifetime = session_lifetime
        self.local_accounts = local_accounts

    async def sign_in(self, username: str, password: str, now: int, *, address: str = "", device: str = "",
                      via: str = "api") -> SignIn:
        """A new session for good credentials, after the throttle let the attempt through.

        Refusals (``login_failed``, ``sign_in_throttled``) are audited here, within the audit budget.
        """
        if not self.local_accounts:
            raise RoomServerError("local_accounts_off", "Sign-in with a local password is switched off; sign in "
                                  "with your organisation's account.", 403)
        try:
            attempt = await self.guard.enter(username, address, device, now)
        except RoomServerError as exc:
            await self.failed(now, exc.code, via)
            raise
        try:
            account = await self.provider.authenticate(username, password, now)
        except RoomServerError as exc:
            await self.failed(now, exc.code, via)
            raise
        new_device = await self.guard.succeeded(attempt, account.id, now)

        session_id, session = await self.store.sessions.create(account.id, now=now, lifetime=self.session_lifetime)
        principal = _staff(account, session.csrf)
        await self.store.audit.append(at=now, actor=principal.id, actor_role=principal.role, action="auth.signed_in",
                                      detail={"via": via} if via != "api" else None)
        return SignIn(session_id, principal, new_device)

    async def failed(self, now: int, code: str, via: str) -> None:
        """Audit one refused sign-in; under a flood, one summary event a minute instead of each."""
        detail = {"code": code} if via == "api" else {"code": code, "via": via}
        pending = self._audit_budget.take(now)
        if pending is None:
            return
        if pending:
            await self.store.audit.append(at=now, actor="anonymous", action="auth.sign_in_failures_not_itemised",
                                          detail={"count": pending})
        await self.store.audit.append(at=now, actor="anonymous", action="auth.sign_in_failed", detail=detail)

    async def sign_in_account(self, account: Account, now: int, *, lifetime: int, provider: str,
                              id_token: str, sid: str | None) -> tuple[str, Principal]:
        """A new session for an account an OpenID Provider vouched for (``domain.oidc``)."""
        session_id, session = await self.store.sessions.create(
            account.id, now=now, lifetime=min(lifetime, self.session_lifetime), provider=provider,
            id_token=id_token, sid=sid)
        return session_id, _staff(account, session.csrf)

    async def session(self, session_id: str, now: int) -> Session | None:
        """The stored session behind a cookie (its provider and ID token for signing out there)."""
        if not session_id.isascii():
            return None
        return await self.store.sessions.get(session_id, now)

    async def sign_out(self, session_id: str) -> None:
        await self.store.sessions.delete(session_id)

    async def from_session(self, session_id: str, now: int) -> Principal | None:
        if not session_id.isascii():  # ours are URL-safe base64; a header may carry any bytes
            return None
        return await self.store.read(lambda tx: _session_principal(tx, session_id, now))

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


def _session_principal(tx: Tx, session_id: str, now: int) -> Principal | None:
    """The staff member behind a session cookie, if the session is current and the account enabled."""
    session = tx.sessions.get(session_id, now)
    if session is None:
        return None
    account = tx.directory.account(session.account_id)
    if account is None or account.disabled:
        return None
    return _staff(account, session.csrf)


def _staff(account: Account, csrf: str) -> Principal:
    return Principal(kind="staff", id=account.id, role=account.role, display_name=account.display_name,
                     department_id=account.department_id, csrf=csrf)
