"""A room as plain data and back: what another node (or this one, after a restart) needs to go on.

The owner of a room writes this after every change that matters for a seat
(join, admission, a drop, a resume, a removal, the end), so that when the
owner's process dies another process rebuilds the very same ``Room`` and every
participant resumes into the seat it had. It holds hashes of the resume
secrets, never the secrets themselves, and the identities the room needs to
refuse a second join of the same person; it is never shown to anyone.

Pure: no I/O. ``dump`` and ``load`` round-trip every field the rules read.
"""

from __future__ import annotations

from typing import Any

from .protocol import PeerStats
from .quality import QualityTally
from .roles import Role
from .room import IceServersFor, Room
from .seat import Connection, Seat, Status

VERSION = 1

_STATS_FIELDS = ("rtt_ms", "jitter_ms", "loss", "bitrate_kbps", "fps", "state", "candidate_type")


def dump(room: Room) -> dict[str, Any]:
    """The room as JSON-ready data."""
    return {
        "v": VERSION, "id": room.id, "title": room.title, "waiting_room": room.waiting_room,
        "max_participants": room.max_participants, "max_waiting": room.max_waiting, "ends_at": room.ends_at,
        "empty_timeout": room.empty_timeout, "resume_grace": room.resume_grace, "used_at": room.used_at,
        "empty_since": room.empty_since, "ended_at": room.ended_at, "end_reason": room.end_reason,
        "jtis": {identity: sorted(jtis) for identity, jtis in room.jti_map().items()},
        "revoked": sorted(room.revoked_jtis()),
        "seats": [_seat(s) for s in room.seats.values()],
        "quality": room.quality.dump(),
    }


def load(data: dict[str, Any], ice_servers_for: IceServersFor | None = None, *, into: Room | None = None) -> Room:
    """The ``Room`` that ``dump`` described; ValueError if the data is not a room snapshot.

    ``into`` updates that room in place instead (a node's copy of a room another node owns:
    the sockets' relay keeps a reference to it).
    """
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError("not a room snapshot of this version")
    if into is None:
        room = Room(data["id"], data["title"], waiting_room=bool(data["waiting_room"]),
                    max_participants=int(data["max_participants"]), ends_at=data["ends_at"],
                    empty_timeout=float(data["empty_timeout"]), resume_grace=float(data["resume_grace"]),
                    ice_servers_for=ice_servers_for, max_waiting=int(data["max_waiting"]))
    else:
        room = into
        room.title, room.waiting_room = data["title"], bool(data["waiting_room"])
        room.max_participants, room.max_waiting = int(data["max_participants"]), int(data["max_waiting"])
        room.ends_at = data["ends_at"]
    room.used_at, room.empty_since = data["used_at"], data["empty_since"]
    room.ended_at, room.end_reason = data["ended_at"], data["end_reason"]
    seats = [_unseat(s) for s in data["seats"]]
    room.restore(seats, {k: set(v) for k, v in data["jtis"].items()}, set(data["revoked"]))
    room.quality = QualityTally.load(data.get("quality"))
    return room


def _seat(seat: Seat) -> dict[str, Any]:
    return {
        "id": seat.id, "identity": seat.identity, "role": seat.role.value, "name": seat.name,
        "secret_hash": seat.secret_hash, "previous_hash": seat.previous_hash, "status": seat.status.value,
        "joined_at": seat.joined_at, "admitted_at": seat.admitted_at, "connection": seat.connection.value,
        "disconnected_at": seat.disconnected_at, "conn": seat.conn, "state": dict(seat.state),
        "stats": {peer: stats.as_dict() for peer, stats in seat.stats.items()}, "stats_at": seat.stats_at,
        "jtis": sorted(seat.jtis),
    }


def _unseat(data: dict[str, Any]) -> Seat:
    return Seat(id=data["id"], identity=data["identity"], role=Role(data["role"]), name=data["name"],
                secret_hash=data["secret_hash"], previous_hash=data["previous_hash"], status=Status(data["status"]),
                joined_at=data["joined_at"], admitted_at=data["admitted_at"],
                connection=Connection(data["connection"]), disconnected_at=data["disconnected_at"],
                conn=int(data["conn"]), state={k: bool(v) for k, v in data["state"].items()},
                stats={peer: PeerStats(**{k: v for k, v in s.items() if k in _STATS_FIELDS})
                       for peer, s in data["stats"].items()},
                stats_at=data["stats_at"], jtis=set(data["jtis"]))
