"""Consultations (rooms) as they are persisted."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .sql import Row, Sql, writes

ROOM_STATES = ("open", "live", "ended")


@dataclass(frozen=True)
class RoomRow:
    id: str
    title: str
    scheduled_start: int | None
    scheduled_end: int | None
    waiting_room: bool
    max_participants: int
    state: str
    created_by: str
    created_at: int
    ended_at: int | None
    ended_reason: str | None


def _row(r: Row) -> RoomRow:
    return RoomRow(id=r["id"], title=r["title"], scheduled_start=r["scheduled_start"],
                   scheduled_end=r["scheduled_end"], waiting_room=bool(r["waiting_room"]),
                   max_participants=r["max_participants"], state=r["state"], created_by=r["created_by"],
                   created_at=r["created_at"], ended_at=r["ended_at"], ended_reason=r["ended_reason"])


def new_room_id() -> str:
    """Opaque and unguessable: a room id alone grants nothing, but it should not leak a count."""
    return "r_" + secrets.token_urlsafe(9)


class RoomRepository:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def create(self, *, title: str, scheduled_start: int | None, scheduled_end: int | None,
               waiting_room: bool, max_participants: int, created_by: str, now: int,
               room_id: str | None = None) -> RoomRow:
        rid = room_id or new_room_id()
        self._conn.execute(
            "INSERT INTO rooms (id, title, scheduled_start, scheduled_end, waiting_room, max_participants,"
            " state, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)",
            (rid, title, scheduled_start, scheduled_end, int(waiting_room), max_participants, created_by, now))
        room = self.get(rid)
        assert room is not None
        return room

    def get(self, room_id: str) -> RoomRow | None:
        r = self._conn.execute("SELECT * FROM rooms WHERE id = ?", (room_id,)).fetchone()
        return _row(r) if r else None

    def ended_among(self, room_ids: list[str]) -> list[RoomRow]:
        """Which of these rooms are ended: a few queries for a thousand ids, not one each."""
        ended: list[RoomRow] = []
        for start in range(0, len(room_ids), 500):
            chunk = room_ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            ended += map(_row, self._conn.execute(
                f"SELECT * FROM rooms WHERE state = 'ended' AND id IN ({marks})", tuple(chunk)).fetchall())
        return ended

    def list(self, *, state: str | None = None, created_by: str | None = None,
             starts_from: int | None = None, starts_before: int | None = None,
             limit: int = 100, offset: int = 0) -> list[RoomRow]:
        clauses, args = [], []
        if state:
            clauses.append("state = ?")
            args.append(state)
        if created_by:
            clauses.append("created_by = ?")
            args.append(created_by)
        if starts_from is not None:
            clauses.append("COALESCE(scheduled_start, created_at) >= ?")
            args.append(starts_from)
        if starts_before is not None:
            clauses.append("COALESCE(scheduled_start, created_at) < ?")
            args.append(starts_before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(
            f"SELECT * FROM rooms {where} ORDER BY COALESCE(scheduled_start, created_at), id LIMIT ? OFFSET ?",
            (*args, limit, offset)).fetchall()
        return [_row(r) for r in rows]

    @writes
    def mark_live(self, room_id: str) -> bool:
        """The first participant is in: open becomes live. True only for the call that changed it."""
        cur = self._conn.execute("UPDATE rooms SET state = 'live' WHERE id = ? AND state = 'open'", (room_id,))
        return cur.rowcount == 1

    @writes
    def reschedule(self, room_id: str, *, scheduled_start: int, scheduled_end: int) -> bool:
        """Move an appointment that has not begun; False if the room is live or ended."""
        cur = self._conn.execute("UPDATE rooms SET scheduled_start = ?, scheduled_end = ? WHERE id = ? AND state = 'open'",
                                 (scheduled_start, scheduled_end, room_id))
        return cur.rowcount == 1

    @writes
    def end(self, room_id: str, *, reason: str, now: int) -> bool:
        """End the room and revoke every token issued for it, in one transaction.

        Returns False when it had already ended.
        """
        cur = self._conn.execute(
            "UPDATE rooms SET state = 'ended', ended_at = ?, ended_reason = ? WHERE id = ? AND state != 'ended'",
            (now, reason, room_id))
        if cur.rowcount == 0:
            return False
        self._conn.execute(
            "UPDATE issued_tokens SET revoked_at = ? WHERE room_id = ? AND revoked_at IS NULL", (now, room_id))
        return True
