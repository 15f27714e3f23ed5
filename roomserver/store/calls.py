"""Expert calls as they are persisted: each call, every event of it, and callback requests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .sql import Sql, writes


@dataclass(frozen=True)
class CallRow:
    id: str
    room_id: str
    requested_by: str
    kind: str
    target: str
    state: str
    requested_at: int
    accepted_at: int | None
    accepted_by: str | None
    ended_at: int | None


@dataclass(frozen=True)
class Callback:
    id: str
    room_id: str
    call_id: str | None
    kind: str
    target: str
    requested_by: str
    caller_name: str
    created_at: int
    done_at: int | None
    done_by: str | None


_STATE_OF_EVENT = {"accepted": "accepted", "timed_out": "timed_out", "cancelled": "cancelled", "no_one": "no_one"}


class CallLog:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def requested(self, *, call_id: str, room_id: str, requested_by: str, kind: str, target: str, at: int) -> None:
        self._conn.execute(
            "INSERT INTO expert_calls (id, room_id, requested_by, kind, target, state, requested_at)"
            " VALUES (?, ?, ?, ?, ?, 'ringing', ?)", (call_id, room_id, requested_by, kind, target, at))
        self._conn.execute("INSERT INTO call_events (call_id, event, at, account_id) VALUES (?, 'requested', ?, ?)",
                           (call_id, at, requested_by))

    @writes
    def event(self, call_id: str, event: str, at: int, account_id: str | None = None) -> None:
        """Record an event; a final one (accepted, timed_out, cancelled, no_one) also sets the call's state."""
        self._conn.execute("INSERT INTO call_events (call_id, event, at, account_id) VALUES (?, ?, ?, ?)",
                           (call_id, event, at, account_id))
        state = _STATE_OF_EVENT.get(event)
        if state == "accepted":
            self._conn.execute("UPDATE expert_calls SET state = 'accepted', accepted_at = ?, accepted_by = ?,"
                               " ended_at = ? WHERE id = ?", (at, account_id, at, call_id))
        elif state is not None:
            self._conn.execute("UPDATE expert_calls SET state = ?, ended_at = ? WHERE id = ?",
                               (state, at, call_id))

    def get(self, call_id: str) -> CallRow | None:
        r = self._conn.execute("SELECT * FROM expert_calls WHERE id = ?", (call_id,)).fetchone()
        return CallRow(**dict(r)) if r else None

    def for_room(self, room_id: str) -> list[CallRow]:
        rows = self._conn.execute("SELECT * FROM expert_calls WHERE room_id = ? ORDER BY requested_at, id",
                                  (room_id,)).fetchall()
        return [CallRow(**dict(r)) for r in rows]

    def events(self, call_id: str) -> list[tuple[str, int, str | None]]:
        rows = self._conn.execute("SELECT event, at, account_id FROM call_events WHERE call_id = ? ORDER BY id",
                                  (call_id,)).fetchall()
        return [(r["event"], r["at"], r["account_id"]) for r in rows]

    # callbacks
    @writes
    def add_callback(self, *, room_id: str, call_id: str | None, kind: str, target: str, requested_by: str,
                     caller_name: str, at: int) -> Callback:
        callback = Callback("cb_" + secrets.token_urlsafe(9), room_id, call_id, kind, target, requested_by,
                            caller_name, at, None, None)
        self._conn.execute(
            "INSERT INTO callback_requests (id, room_id, call_id, kind, target, requested_by, caller_name,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (callback.id, room_id, call_id, kind, target, requested_by, caller_name, at))
        return callback

    def open_callbacks(self, kind: str, target: str) -> list[Callback]:
        rows = self._conn.execute(
            "SELECT * FROM callback_requests WHERE kind = ? AND target = ? AND done_at IS NULL ORDER BY created_at",
            (kind, target)).fetchall()
        return [Callback(**dict(r)) for r in rows]

    def callback(self, callback_id: str) -> Callback | None:
        r = self._conn.execute("SELECT * FROM callback_requests WHERE id = ?", (callback_id,)).fetchone()
        return Callback(**dict(r)) if r else None

    @writes
    def callback_done(self, callback_id: str, account_id: str, at: int) -> bool:
        cur = self._conn.execute("UPDATE callback_requests SET done_at = ?, done_by = ? WHERE id = ?"
                                 " AND done_at IS NULL", (at, account_id, callback_id))
        return cur.rowcount == 1
