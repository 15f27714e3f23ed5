"""Who an e-mailed invite goes to: address, language, the name on it and its iCalendar SEQUENCE.

The address is kept only while the outbox may still need it: it is erased (set to NULL)
once the appointment is over, and the row goes with the consultation (record retention).
"""

from __future__ import annotations

from dataclasses import dataclass

from .sql import Sql, writes


@dataclass(frozen=True)
class InviteEmail:
    jti: str
    room_id: str
    address: str | None
    name: str
    language: str
    sequence: int
    created_at: int


class InviteEmails:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def add(self, mail: InviteEmail) -> None:
        self._conn.execute(
            "INSERT INTO invite_emails (jti, room_id, address, name, language, sequence, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (mail.jti, mail.room_id, mail.address, mail.name, mail.language, mail.sequence, mail.created_at))

    def get(self, jti: str) -> InviteEmail | None:
        r = self._conn.execute("SELECT * FROM invite_emails WHERE jti = ?", (jti,)).fetchone()
        return InviteEmail(**{k: r[k] for k in InviteEmail.__dataclass_fields__}) if r else None

    def for_room(self, room_id: str) -> list[InviteEmail]:
        rows = self._conn.execute("SELECT * FROM invite_emails WHERE room_id = ? ORDER BY created_at, jti",
                                  (room_id,)).fetchall()
        return [InviteEmail(**{k: r[k] for k in InviteEmail.__dataclass_fields__}) for r in rows]

    @writes
    def bump(self, jti: str) -> int:
        """Raise the SEQUENCE for an UPDATE or CANCEL; the new value."""
        self._conn.execute("UPDATE invite_emails SET sequence = sequence + 1 WHERE jti = ?", (jti,))
        r = self._conn.execute("SELECT sequence FROM invite_emails WHERE jti = ?", (jti,)).fetchone()
        return int(r["sequence"]) if r else 0

    @writes
    def erase_over(self, cutoff: int) -> int:
        """Erase the addresses of invites whose appointment is over by ``cutoff`` (unix seconds) and that have
        nothing left to send (a CANCEL after the end still goes out first)."""
        cur = self._conn.execute(
            "UPDATE invite_emails SET address = NULL WHERE address IS NOT NULL AND room_id IN"
            " (SELECT id FROM rooms WHERE (state = 'ended' AND ended_at <= ?)"
            "  OR (state <> 'live' AND scheduled_end IS NOT NULL AND scheduled_end <= ?))"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.lane = 'invite:' || invite_emails.jti"
            "  AND o.state = 'pending')", (cutoff, cutoff))
        return cur.rowcount
