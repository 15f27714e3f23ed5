"""Sign-in that resists guessing without letting anybody lock staff out.

There is no lock. Failed attempts are counted, and past a few free ones each further failure
makes the next attempt on that counter wait longer (``core/throttle.py``): a waiting attempt is
answered ``429 sign_in_throttled`` with ``Retry-After`` before any password is looked at.

Which counters an attempt is measured by depends on where it comes from:

* a browser holding a device cookie of this account (given at a successful sign-in): only that
  device's own failures. Strangers guessing the account elsewhere never slow its owner down on
  the browser she uses;
* anywhere else: the client address (``free_other`` failures free: password spraying across many
  usernames), the account name (``free_other``: one account guessed from many addresses) and the
  pair of both (``free``).

Every attempt counts before its password is checked (so parallel guesses cannot all slip past
the check) and a successful one is forgiven. Unknown and known usernames are counted, answered
and hashed alike. Counters live in the store under a hash of their key, so every node of a
cluster shares them; they are forgotten an hour after their last failure.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass

from ..core import throttle
from ..core.errors import RoomServerError
from ..store import Store, Tx

FORGET_AFTER = 3600  # a counter quiet for an hour starts again from zero
DEVICE_LIFETIME = 90 * 86400  # a device cookie not used for 90 days is forgotten
PURGE_EVERY = 600


class SignInThrottled(RoomServerError):
    """A sign-in attempt that came too soon after failures; ``retry_after`` seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("sign_in_throttled", "Too many failed sign-ins from here. Wait a moment and try again.",
                         429)
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class Attempt:
    """The counters one attempt is measured by: ``(key hash, free failures)``; ``forgive`` are lowered
    again on success, ``clear`` reset."""

    keys: tuple[tuple[str, int], ...]
    forgive: tuple[str, ...]
    clear: tuple[str, ...]
    device_hash: str | None  # the device cookie's hash when it is this account's


def key_hash(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value}".encode("utf-8", "surrogateescape")).hexdigest()[:40]


def network_of(address: str) -> str:
    """The client's address; an IPv6 client by its /64 (one household or phone gets a whole /64)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def new_device_token() -> str:
    return secrets.token_urlsafe(32)


class SignInGuard:
    """The throttle in front of the password check (see module doc)."""

    def __init__(self, store: Store, *, free: int, free_other: int, max_delay: int) -> None:
        self.store = store
        self.free = free
        self.free_other = free_other
        self.max_delay = max_delay
        self._next_purge = 0

    async def enter(self, username: str, address: str, device: str, now: int) -> Attempt:
        """Count the attempt, or refuse it with ``SignInThrottled`` if it came too soon."""
        user = username.strip().casefold()
        net = network_of(address)
        device_hash = key_hash("device", device) if device else None

        def unit(tx: Tx) -> Attempt:
            attempt = self._attempt(tx, user, net, device_hash, now)
            counts = tx.signins.failures([k for k, _ in attempt.keys], now - FORGET_AFTER)
            waits = [throttle.wait(*counts[k], now, free, self.max_delay) for k, free in attempt.keys if k in counts]
            if waits and max(waits) > 0:
                raise SignInThrottled(max(waits))
            tx.signins.fail([k for k, _ in attempt.keys], now, since=now - FORGET_AFTER)
            return attempt

        attempt = await self.store.write(unit)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY
            await self.store.signins.purge(now - FORGET_AFTER, now - DEVICE_LIFETIME)
        return attempt

    def _attempt(self, tx: Tx, user: str, net: str, device_hash: str | None, now: int) -> Attempt:
        if device_hash is not None:
            owner = tx.signins.device_account(device_hash, now - DEVICE_LIFETIME)
            account = tx.directory.by_username(user) if owner is not None else None
            if account is not None and account.id == owner:
                return Attempt(keys=((device_hash, self.free),), forgive=(), clear=(device_hash,),
                               device_hash=device_hash)
        addr, name, pair = key_hash("addr", net), key_hash("user", user), key_hash("pair", f"{user}\x00{net}")
        return Attempt(keys=((addr, self.free_other), (name, self.free_other), (pair, self.free)),
                       forgive=(addr, name), clear=(pair,), device_hash=None)

    async def succeeded(self, attempt: Attempt, account_id: str, now: int) -> str | None:
        """The attempt was good: forgive it; a new device cookie for the browser if it had none."""
        token = None if attempt.device_hash is not None else new_device_token()

        def unit(tx: Tx) -> None:
            tx.signins.forgive(list(attempt.forgive))
            tx.signins.clear(list(attempt.clear))
            tx.signins.remember_device(attempt.device_hash or key_hash("device", token or ""), account_id, now)

        await self.store.write(unit)
        return token
