"""Where live state is: in this process (one node) or in Redis (a cluster). The only module that knows.

Live state is what exists only while consultations run: which node owns which
room, the rooms' snapshots (seats, hashed resume secrets, who is waiting), and
the messages nodes send each other. Two backends side by side, behind the one
small interface below, as LiveKit keeps ``localroomstore`` beside
``redisroomstore``:

* ``local.LocalLive`` — one node owns everything; snapshots go into the store,
  so a restart (or a killed process) finds every running room and seat again.
* ``redis.RedisLive`` — every node registers itself with a short lifetime; each
  room has one owner node (compare-and-set on a key, valid while the owner's
  registration lives); snapshots are fenced by that ownership; messages
  between nodes travel on one Redis channel per node.

Keys name what is owned: ``room:<id>`` for a room, ``switchboard`` for the
expert-call switchboard.
"""

from __future__ import annotations

from typing import Callable, Protocol, TypeVar

from ..config import Settings
from ..core.errors import RoomServerError
from ..store import Store, Tx

T = TypeVar("T")

SWITCHBOARD = "switchboard"


def room_key(room_id: str) -> str:
    return f"room:{room_id}"


class NotOwner(Exception):
    """This node no longer owns what it tried to save (another node took it over)."""


class LiveUnavailable(RoomServerError):
    """The live-state backend (Redis) cannot be reached right now."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("unavailable", "The service is briefly unavailable; try again in a moment.", 503)
        self.detail = detail


class Live(Protocol):
    """Ownership, snapshots and messages between nodes."""

    node: str
    clustered: bool

    async def start(self, deliver: Callable[[bytes], None]) -> None:
        """Connect; from now on every message for this node is handed to ``deliver`` (in order)."""

    async def close(self) -> None: ...

    @property
    def healthy(self) -> bool:
        """False while the backend cannot be reached (the node then serves no live sockets)."""

    def on_health(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(healthy)`` whenever the backend is lost or back."""

    def send(self, node: str, message: bytes) -> None:
        """Queue ``message`` for ``node``; messages to one node arrive in the order they were queued."""

    def broadcast(self, message: bytes) -> None:
        """Queue ``message`` for every other node."""

    async def owner(self, key: str) -> str | None:
        """The node that owns ``key``, if it is alive."""

    async def claim(self, key: str) -> bool:
        """Become the owner of ``key`` unless a live node owns it; True if this node owns it now."""

    async def release(self, key: str) -> None:
        """Give ``key`` up (a draining node), keeping its snapshot for the next owner."""

    async def persist(self, key: str, snapshot: bytes | None, unit: Callable[[Tx], T] | None) -> T | None:
        """Commit ``unit`` to the store and save ``snapshot`` as the state of ``key``.

        The store part comes first; the snapshot is saved only by the owner
        (NotOwner otherwise). Either may be None.
        """

    async def load(self, key: str) -> bytes | None:
        """The last snapshot saved for ``key``."""

    async def load_many(self, keys: list[str]) -> list[bytes | None]:
        """The last snapshots of several keys, in one round trip (the operator dashboard)."""

    async def forget(self, key: str) -> None:
        """``key`` is over (a room ended): drop its snapshot and ownership."""

    async def rooms(self) -> list[str]:
        """Every room id with live state, on any node."""

    async def orphans(self) -> list[str]:
        """Room ids whose owner is gone (none, or a lost node)."""

    async def nodes(self) -> set[str]:
        """The nodes alive now."""

    async def alive(self, node: str) -> bool:
        """Whether ``node`` is still registered (a request to a node that is not will never be answered)."""


def open_live(settings: Settings, store: Store) -> Live:
    """The backend the settings name: Redis for ``[cluster] redis_url``, else this process."""
    if settings.clustered:
        from .redis import RedisLive
        return RedisLive(settings, store)
    from .local import LocalLive
    return LocalLive(store)


__all__ = ["Live", "LiveUnavailable", "NotOwner", "SWITCHBOARD", "open_live", "room_key"]
