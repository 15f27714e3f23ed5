"""The long-lived parts of a running server, built once from the settings.

Edges (API, WebSocket, pages, CLI) reach the domain through this bundle, so
tests can build a server on a temporary directory with the real parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

from .auth import Authenticator, LocalPasswordProvider
from .config import Settings
from .consultations import Consultations
from .events import EventBus
from .keys import KeySet
from .store import Store
from .tokens import TokenCodec


@dataclass
class Services:
    settings: Settings
    store: Store
    keyset: KeySet
    codec: TokenCodec
    auth: Authenticator
    consultations: Consultations
    events: EventBus = field(default_factory=EventBus)
    clock: Callable[[], float] = field(default=time.time)

    def now(self) -> int:
        return int(self.clock())

    @property
    def cookie_secure(self) -> bool:
        mode = self.settings.auth.cookie_secure
        return mode == "always" or (mode == "auto" and self.settings.base_url.startswith("https://"))

    def close(self) -> None:
        self.store.close()


def build_services(settings: Settings, *, api_keys: dict[str, str] | None = None) -> Services:
    """Open the store and key set named by ``settings`` (they must exist; see bootstrap)."""
    store = Store.open(settings.store_path, synchronous=settings.store.synchronous)
    keyset = KeySet.open(settings.keys_dir)
    codec = TokenCodec(keyset, settings.tokens.issuer, settings.tokens.audience, settings.tokens.leeway_seconds)
    provider = LocalPasswordProvider(store, max_failures=settings.auth.max_failed_logins,
                                     lockout_seconds=settings.auth.lockout_seconds)
    keys = api_keys if api_keys is not None else (settings.api_keys or {})
    auth = Authenticator(store, provider, api_keys=keys, session_lifetime=settings.auth.session_lifetime_seconds)
    consultations = Consultations(settings, store, codec)
    return Services(settings=settings, store=store, keyset=keyset, codec=codec, auth=auth,
                    consultations=consultations)


SERVICES_KEY: web.AppKey[Services] = web.AppKey("services", Services)


def services_of(app: web.Application) -> Services:
    return app[SERVICES_KEY]
