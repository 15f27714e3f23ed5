"""First start: create what the embedded default needs, into the data directory.

Signing keys and an API key are generated once, owner-readable only, and never
logged; the API key and demo passwords are returned so the command line can
print them to the person who started the server, once.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .config import Settings, parse_api_keys
from .domain import demo
from .keys import KeySet
from .store import Tx, open_store


@dataclass
class FirstStart:
    """What a start generated and must show once."""

    api_key: str | None = None
    api_key_path: Path | None = None
    new_key_id: str | None = None
    demo_logins: list[demo.DemoLogin] = field(default_factory=list)


def prepare(settings: Settings, now: int) -> FirstStart:
    """Make the data directory usable; idempotent. Fills ``settings.api_keys``."""
    out = FirstStart()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    if not (settings.keys_dir / "keyset.json").exists():
        out.new_key_id = KeySet.open(settings.keys_dir, create_alg=settings.tokens.algorithm).active.kid
    if settings.api_keys is None:
        path = settings.api_keys_path
        if not path.exists():
            key = "rsk_" + secrets.token_urlsafe(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("# API keys, one 'name:key' a line. Generated on first start.\n")
                fh.write(f"appointments:{key}\n")
            out.api_key, out.api_key_path = key, path
        settings.api_keys = parse_api_keys(path.read_text(encoding="utf-8"), str(path))
    store = open_store(settings.store_url, settings.store_path, synchronous=settings.store.synchronous,
                       pool_size=1)
    try:
        if settings.demo.seed_on_first_start and store.blocking.read(Tx.is_empty):
            out.demo_logins = store.blocking.write(partial(demo.seed, now=now))
    finally:
        store.close()
    return out
