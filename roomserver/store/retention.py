"""Record retention: a consultation, and everything recorded about it, goes some days after it is over.

What the citizens' data notice promises: the room (title, schedule), its invites (with the
name the counsellor typed), the consents, the expert calls with their events and callback
requests are deleted together, in one transaction, once the consultation has been over for
``[privacy] records_retention_days``. The audit log has its own retention (``audit.py``).

A consultation is over at its end (``ended_at``); one that never ended is over at the later
of its scheduled end (else its creation) and the expiry of its last token — until then
someone could still come in.
"""

from __future__ import annotations

from typing import Collection

from .sql import Sql, writes

_CHUNK = 500  # ids per statement: well under SQLite's limit on bound parameters

# The rooms over before ?; their ids feed every DELETE below, inside one transaction. (No two-argument
# MAX: SQLite has it, PostgreSQL calls it GREATEST; the CASE reads the same on both.)
_OVER_BEFORE = """
SELECT r.id AS id FROM rooms r
WHERE CASE WHEN r.state = 'ended' THEN COALESCE(r.ended_at, r.created_at)
           WHEN COALESCE((SELECT MAX(t.expires_at) FROM issued_tokens t WHERE t.room_id = r.id), 0)
                > COALESCE(r.scheduled_end, r.created_at)
           THEN (SELECT MAX(t.expires_at) FROM issued_tokens t WHERE t.room_id = r.id)
           ELSE COALESCE(r.scheduled_end, r.created_at)
      END < ?
"""


class RecordRetention:
    def __init__(self, conn: Sql) -> None:
        self._conn = conn

    @writes
    def purge_rooms(self, cutoff: int, keep: Collection[str] = ()) -> int:
        """Delete every consultation over before ``cutoff`` (except those in ``keep``: live now) and its records."""
        ids = [r["id"] for r in self._conn.execute(_OVER_BEFORE, (cutoff,)).fetchall() if r["id"] not in keep]
        for at in range(0, len(ids), _CHUNK):
            chunk = ids[at:at + _CHUNK]
            marks = ",".join("?" * len(chunk))
            calls = f"(SELECT id FROM expert_calls WHERE room_id IN ({marks}))"
            for statement in (f"DELETE FROM call_events WHERE call_id IN {calls}",
                              f"DELETE FROM callback_requests WHERE room_id IN ({marks})",
                              f"DELETE FROM expert_calls WHERE room_id IN ({marks})",
                              f"DELETE FROM consents WHERE room_id IN ({marks})",
                              f"DELETE FROM short_links WHERE room_id IN ({marks})",
                              f"DELETE FROM invite_emails WHERE room_id IN ({marks})",
                              f"DELETE FROM issued_tokens WHERE room_id IN ({marks})",
                              f"DELETE FROM rooms WHERE id IN ({marks})"):
                self._conn.execute(statement, chunk)
        return len(ids)
