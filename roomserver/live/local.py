"""Live state of a single node: this process owns every room; snapshots go into the store.

No second node exists, so ownership is always this node's and no message
ever leaves the process (the edges call each other directly when the node is
their own). What a restart needs — each running room's seats and hashed resume
secrets — is written to the store in the same commit as the change's audit
events, before anyone is told of the change; the next start finds it there.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, TypeVar

from ..store import Store, Tx

log = logging.getLogger("roomserver.live")
T = TypeVar("T")


class LocalLive:
    """The embedded default's ``Live``."""

    clustered = False

    def __init__(self, store: Store) -> None:
        self.store = store
        self.node = f"{socket.gethostname()}-{os.getpid()}"
        # The keys that may have a snapshot in the store (read at start, then kept up to date: this
        # process is the only one that writes them), so taking up a new room costs no read for nothing.
        self._keys: set[str] | None = None

    async def start(self, deliver: Callable[[bytes], None]) -> None:
        # Nothing to connect to; no message ever arrives from elsewhere. Before any room is taken up.
        self._keys = set(await self.store.live.keys())

    async def close(self) -> None:
        pass

    @property
    def healthy(self) -> bool:
        return True

    def on_health(self, callback: Callable[[bool], None]) -> None:
        pass  # never lost

    def send(self, node: str, message: bytes) -> None:
        # A seat last seen on this server's previous process: its socket is gone with it.
        log.debug("message for %s dropped: a single node has no other node", node)

    def broadcast(self, message: bytes) -> None:
        pass  # nobody else to tell

    async def owner(self, key: str) -> str | None:
        return self.node

    async def claim(self, key: str) -> bool:
        return True

    async def release(self, key: str) -> None:
        pass

    async def persist(self, key: str, snapshot: bytes | None, unit: Callable[[Tx], T] | None) -> T | None:
        if snapshot is None and unit is None:
            return None
        text = snapshot.decode() if snapshot is not None else None
        now = int(time.time())
        if text is not None and self._keys is not None:
            self._keys.add(key)  # before the write: the set may hold more keys than the store, never fewer

        def both(tx: Tx) -> T | None:
            result = unit(tx) if unit is not None else None
            if text is not None:
                tx.live.save(key, text, now)
            return result
        return await self.store.write(both)

    async def load(self, key: str) -> bytes | None:
        if self._keys is not None and key not in self._keys:
            return None
        text = await self.store.live.load(key)
        return text.encode() if text is not None else None

    async def load_many(self, keys: list[str]) -> list[bytes | None]:
        return [await self.load(key) for key in keys]

    async def forget(self, key: str) -> None:
        await self.store.live.delete(key)
        if self._keys is not None:
            self._keys.discard(key)

    async def rooms(self) -> list[str]:
        return [key.split(":", 1)[1] for key in await self.store.live.keys() if key.startswith("room:")]

    async def orphans(self) -> list[str]:
        return []  # nothing of this node's can be without its owner while it runs

    async def nodes(self) -> set[str]:
        return {self.node}

    async def alive(self, node: str) -> bool:
        return node == self.node
