"""The long-lived parts of a running server, built once from the settings.

Edges (API, WebSocket, pages, CLI) reach the domain through this bundle, so
tests can build a server on a temporary directory with the real parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

from .config import Settings
from .core.events import EventBus
from .core.tokens import TokenCodec
from .domain.auth import Authenticator, LocalPasswordProvider
from .domain.consultations import Consultations
from .domain.oidc import OidcSignIn
from .domain.signin import SignInGuard
from .keys import KeySet
from .live import Live, open_live
from .store import Store, open_store


@dataclass
class Services:
    settings: Settings
    store: Store
    keyset: KeySet
    codec: TokenCodec
    auth: Authenticator
    consultations: Consultations
    live: Live
    events: EventBus = field(default_factory=EventBus)
    clock: Callable[[], float] = field(default=time.time)
    oidc: OidcSignIn | None = None  # the [oidc.<name>] providers (None: built without them)
    draining: bool = False  # set at shutdown: /readyz fails so that a load balancer sends nobody new

    def now(self) -> int:
        return int(self.clock())

    @property
    def cookie_secure(self) -> bool:
        mode = self.settings.auth.cookie_secure
        return mode == "always" or (mode == "auto" and self.settings.base_url.startswith("https://"))

    def close(self) -> None:
        self.store.close()


def open_settings_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The store the settings name (SQLite file, or PostgreSQL for ``[store] url``); StoreError if unusable."""
    return open_store(settings.store_url, settings.store_path, synchronous=settings.store.synchronous,
                      pool_size=settings.store.pool_size)


def build_services(settings: Settings, *, api_keys: dict[str, str] | None = None) -> Services:
    """Open the store and key set named by ``settings`` (they must exist; see bootstrap)."""
    store = open_settings_store(settings)
    keyset = KeySet.open(settings.keys_dir)
    codec = TokenCodec(keyset, settings.tokens.issuer, settings.tokens.audience, settings.tokens.leeway_seconds)
    provider = LocalPasswordProvider(store)
    keys = api_keys if api_keys is not None else (settings.api_keys or {})
    a = settings.auth
    guard = SignInGuard(store, free=a.signin_free_failures, free_other=a.signin_free_failures_other,
                        max_delay=a.signin_max_delay_seconds)
    auth = Authenticator(store, provider, api_keys=keys, session_lifetime=a.session_lifetime_seconds, guard=guard,
                         local_accounts=a.local_accounts)
    consultations = Consultations(settings, store, codec)
    return Services(settings=settings, store=store, keyset=keyset, codec=codec, auth=auth,
                    consultations=consultations, live=open_live(settings, store), oidc=OidcSignIn(settings, store))


SERVICES_KEY: web.AppKey[Services] = web.AppKey("services", Services)


def services_of(app: web.Application) -> Services:
    return app[SERVICES_KEY]
