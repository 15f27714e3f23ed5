"""One participant's place in a room: the per-seat record the room rules work on.

Split from ``room.py`` to keep the rules readable. A ``Seat`` is plain data, owned
and mutated only by its ``Room``; edges read it (the seat id, the connection
number, the dashboard view) and never write it. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from .protocol import STATE_FIELDS, PeerStats
from .roles import Role

# Media state of a seat before its client says otherwise: people join from the
# device check with camera and microphone on.
DEFAULT_STATE: dict[str, bool] = {"mic": True, "camera": True, "screen": False, "hand": False}
assert tuple(DEFAULT_STATE) == STATE_FIELDS


class Status(StrEnum):
    """Where a seat is: in the waiting room, or in the call."""

    WAITING = "waiting"
    ADMITTED = "admitted"


class Connection(StrEnum):
    """Whether the seat has a live socket (``connection`` of a peer in the protocol)."""

    ONLINE = "online"
    RECONNECTING = "reconnecting"


def iso(t: float | None) -> str | None:
    """UNIX seconds as the protocol's ISO 8601 UTC timestamp, e.g. 2026-11-25T10:29:12+00:00."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


@dataclass(eq=False, slots=True)
class Seat:
    """A participant's seat: who (identity, role, name), where (status), how (connection).

    ``conn`` numbers the sockets the seat has had: 1 at join, +1 per resume. The
    edge remembers it per socket, so a replaced socket that reports its end late
    cannot mark the resumed seat as reconnecting (``Room.disconnected(conn=...)``).
    """

    id: str
    identity: str  # token ``sub``: never sent to other participants
    role: Role
    name: str
    secret_hash: str  # sha256 of the resume secret (the secret itself goes only to the seat's own socket)
    status: Status
    joined_at: float
    admitted_at: float | None = None
    connection: Connection = Connection.ONLINE
    disconnected_at: float | None = None
    conn: int = 1
    state: dict[str, bool] = field(default_factory=lambda: dict(DEFAULT_STATE))
    stats: dict[str, PeerStats] = field(default_factory=dict)
    stats_at: float | None = None
    jtis: set[str] = field(default_factory=set)
    previous_hash: str | None = None  # the secret before the last rotation, taken while the seat is offline

    @property
    def admitted(self) -> bool:
        return self.status is Status.ADMITTED

    @property
    def online(self) -> bool:
        return self.connection is Connection.ONLINE

    def public(self) -> dict[str, Any]:
        """How peers see this seat (``welcome.peers[]``, ``peer-joined.peer``)."""
        return {"id": self.id, "name": self.name, "role": self.role.value,
                "state": dict(self.state), "connection": self.connection.value}

    def self_view(self) -> dict[str, Any]:
        """How the seat sees itself in ``welcome.self``."""
        return {"id": self.id, "name": self.name, "role": self.role.value, "state": dict(self.state)}

    def waiting_view(self) -> dict[str, Any]:
        """``waiting.self``: no media state, the waiting room shows none."""
        return {"id": self.id, "name": self.name, "role": self.role.value}

    def lobby_entry(self) -> dict[str, Any]:
        """One entry of ``lobby.waiting``."""
        return {"id": self.id, "name": self.name, "role": self.role.value, "since": iso(self.joined_at)}

    def snapshot(self) -> dict[str, Any]:
        """Metadata for the operator dashboard: no identity, no secret, no content."""
        return {
            "id": self.id,
            "role": self.role.value,
            "name": self.name,
            "status": self.status.value,
            "connection": self.connection.value,
            "joined_at": iso(self.joined_at),
            "admitted_at": iso(self.admitted_at),
            "disconnected_at": iso(self.disconnected_at),
            "state": dict(self.state),
            "stats": {peer: s.as_dict() for peer, s in self.stats.items()},
            "stats_at": iso(self.stats_at),
        }
