"""What goes into the outbox with a change, inside the change's own unit of work.

An e-mailed invite is a lane ``invite:<jti>``: the invitation, then a reminder for each
configured time before the start (those still ahead), then a cancellation if it is
withdrawn or the consultation ends before it began. Because the rows are written in the
same transaction as the invite, the withdrawal or the room's end, a crash can lose none
of them and never sends one for a change that was not committed.
"""

from __future__ import annotations

import json

from ..config import Settings
from ..store import RoomRow, Tx
from ..store.invitemail import InviteEmail

MS = 1000


def lane(jti: str) -> str:
    return f"invite:{jti}"


def _mail(tx: Tx, jti: str, kind: str, now: int, due: int | None = None) -> int:
    return tx.outbox.add(kind="email", lane=lane(jti), payload=json.dumps({"jti": jti, "type": kind}),
                         now=now * MS, due=None if due is None else due * MS)


def queue_invitation(tx: Tx, settings: Settings, mail: InviteEmail, room: RoomRow, now: int) -> None:
    """The invitation now, and the reminders still ahead of the scheduled start."""
    tx.invitemails.add(mail)
    _mail(tx, mail.jti, "invitation", now)
    _queue_reminders(tx, settings, mail.jti, room, now)


def _queue_reminders(tx: Tx, settings: Settings, jti: str, room: RoomRow, now: int) -> None:
    if room.scheduled_start is None:
        return
    for before in settings.mail.reminder_seconds():
        due = room.scheduled_start - before
        if due > now:
            _mail(tx, jti, "reminder", now, due)


def _went_out(tx: Tx, jti: str) -> bool:
    """Whether the invitation may have reached her (sent, or being sent right now)."""
    return any(r.state == "sent" or (r.state == "pending" and r.claimed_by is not None)
               for r in tx.outbox.lane(lane(jti)))


def queue_withdrawal(tx: Tx, jti: str, now: int) -> None:
    """The invite is withdrawn: nothing more is sent, and a CANCEL if she may have the invitation."""
    mail = tx.invitemails.get(jti)
    if mail is None:
        return
    went_out = _went_out(tx, jti)
    tx.outbox.cancel_lane(lane(jti), now * MS, "withdrawn")
    if went_out and mail.address:
        tx.invitemails.bump(jti)
        _mail(tx, jti, "cancel", now)


def queue_room_end(tx: Tx, room_or_id: RoomRow | str, now: int) -> None:
    """The consultation ended: no more reminders; a CANCEL to each invitee if it ended before its start."""
    room = tx.rooms.get(room_or_id) if isinstance(room_or_id, str) else room_or_id
    if room is None:
        return
    for mail in tx.invitemails.for_room(room.id):
        rows = tx.outbox.lane(lane(mail.jti))
        went_out = _went_out(tx, mail.jti)
        withdrawn = any(json.loads(r.payload)["type"] == "cancel" or r.last_error == "withdrawn" for r in rows)
        tx.outbox.cancel_lane(lane(mail.jti), now * MS, "room_ended")
        before_start = room.scheduled_start is not None and now < room.scheduled_start
        if went_out and before_start and mail.address and not withdrawn:
            tx.invitemails.bump(mail.jti)
            _mail(tx, mail.jti, "cancel", now)


def queue_reschedule(tx: Tx, settings: Settings, room: RoomRow, now: int) -> None:
    """The appointment moved: each e-mailed invite's link is valid for the new time, and she gets an UPDATE
    (SEQUENCE raised) if she had the invitation, else the invitation itself; reminders for the new time."""
    if room.scheduled_start is None or room.scheduled_end is None:
        return
    for mail in tx.invitemails.for_room(room.id):
        record = tx.tokens.get(mail.jti)
        if record is None or record.revoked_at is not None or not mail.address:
            continue
        tx.tokens.rewindow(mail.jti, room.scheduled_start - settings.tokens.citizen_lead_seconds,
                           room.scheduled_end)
        went_out = _went_out(tx, mail.jti)
        tx.outbox.cancel_lane(lane(mail.jti), now * MS, "rescheduled")
        if went_out:
            tx.invitemails.bump(mail.jti)
        _mail(tx, mail.jti, "update" if went_out else "invitation", now)
        _queue_reminders(tx, settings, mail.jti, room, now)
