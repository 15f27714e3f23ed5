"""The live registry: which rooms are open right now, and which socket sits in which seat.

This is the part of the state that a multi-node deployment would move to a
distributed engine (Redis), the way LiveKit keeps ``localroomstore`` beside
``redisroomstore``: the signalling edge talks only to the ``Hub`` interface.
``LocalHub`` keeps everything in this process's memory. Persistent state
(rooms, tokens, audit) is in the store, not here.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Protocol, TypeVar

from ..core.room import Room

C = TypeVar("C")


class Hub(Protocol[C]):
    """The live registry as the edge sees it. ``C`` is the edge's connection type."""

    def room(self, room_id: str) -> Room | None:
        """The live room, if it is open on this hub."""

    def open(self, room_id: str, factory: Callable[[], Room]) -> Room:
        """The live room, created with ``factory`` when it is not open yet."""

    def close_room(self, room_id: str) -> None:
        """Forget an ended room, its seats' sockets and resume secrets."""

    def rooms(self) -> Iterable[Room]:
        """Every live room (for monitoring)."""

    def remember_secret(self, secret: str, room_id: str) -> None:
        """Index a seat's resume secret, which is all a ``resume`` carries."""

    def room_for_secret(self, secret: str) -> str | None:
        """The room a resume secret belongs to, if any."""

    def bind(self, room_id: str, seat_id: str, conn: C) -> None:
        """Make ``conn`` the socket of the seat (replacing any older one)."""

    def unbind(self, room_id: str, seat_id: str, conn: C) -> None:
        """Forget ``conn`` for the seat, unless a newer socket already replaced it."""

    def connection(self, room_id: str, seat_id: str) -> C | None:
        """The socket currently bound to the seat."""

    def connections(self, room_id: str) -> Mapping[str, C]:
        """The room's seat-to-socket map, live: it follows every bind and unbind.

        The relay keeps it for the socket's lifetime, so routing a signal is a
        dictionary lookup. Sockets are always local to a process, so even a hub
        that keeps rooms elsewhere keeps this map here.
        """


class LocalHub(Hub[C]):
    """The in-process ``Hub``: dictionaries, no locks (one event loop)."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._secrets: dict[str, str] = {}
        self._conns: dict[str, dict[str, C]] = {}

    def room(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def open(self, room_id: str, factory: Callable[[], Room]) -> Room:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = factory()
            self._conns[room_id] = {}
        return room

    def close_room(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)
        self._conns.pop(room_id, None)
        for secret in [s for s, r in self._secrets.items() if r == room_id]:
            del self._secrets[secret]

    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def remember_secret(self, secret: str, room_id: str) -> None:
        self._secrets[secret] = room_id

    def room_for_secret(self, secret: str) -> str | None:
        return self._secrets.get(secret)

    def bind(self, room_id: str, seat_id: str, conn: C) -> None:
        self._conns.setdefault(room_id, {})[seat_id] = conn

    def unbind(self, room_id: str, seat_id: str, conn: C) -> None:
        conns = self._conns.get(room_id)
        if conns is not None and conns.get(seat_id) is conn:
            del conns[seat_id]

    def connection(self, room_id: str, seat_id: str) -> C | None:
        conns = self._conns.get(room_id)
        return conns.get(seat_id) if conns is not None else None

    def connections(self, room_id: str) -> Mapping[str, C]:
        return self._conns.setdefault(room_id, {})

    def connection_count(self) -> int:
        return sum(len(c) for c in self._conns.values())
