"""The store side of a room's effects, as units of work; and the events they are announced as.

A room operation returns effects (``core/room.py``). Revocations, the end and
audit events are written here in one commit, by the room's owner, before anyone
is told; ``EVENTS_OF_AUDIT`` says which domain events (monitoring, metrics,
webhooks) each audit event becomes.
"""

from __future__ import annotations

from typing import Any

from ..core.room import Audit, Ended, Revoke
from ..core.tokens import refuse
from ..domain.outbound import queue_room_end
from ..store import Tx

EVENTS_OF_AUDIT = {
    "seat.wait": ("participant.waiting",), "seat.join": ("participant.joined",),
    "seat.resume": ("participant.resumed",), "seat.disconnect": ("participant.reconnecting",),
    "seat.leave": ("participant.left",), "seat.timeout": ("participant.left",),
    "seat.admit": ("participant.admitted", "participant.joined"),
    "seat.deny": ("participant.denied", "participant.left"),
    "seat.remove": ("participant.removed", "participant.left"),
}
LEFT_REASON = {"seat.leave": "left", "seat.timeout": "timeout", "seat.deny": "denied", "seat.remove": "removed"}


def has_store_effects(effects: list[Any]) -> bool:
    return any(isinstance(e, (Revoke, Ended, Audit)) for e in effects)


def persist_effects(room_id: str, effects: list[Any], now: int, tx: Tx) -> None:
    """A unit of work: an outcome's revocations, end and audit events, in one commit."""
    persisted_end = False
    for effect in effects:
        if isinstance(effect, Revoke):
            for jti in effect.jtis:
                tx.tokens.revoke(jti, now)
            tx.tokens.revoke_identity(room_id, effect.identity, now)
        elif isinstance(effect, Ended):
            persisted_end = tx.rooms.end(room_id, reason=effect.reason, now=now)
            tx.reports.consultation_ended(room_id, now, effect.quality)
            if persisted_end:
                queue_room_end(tx, room_id, now)  # reminders stop, with the end, in the same commit
        elif isinstance(effect, Audit):
            if effect.event == "room.end" and not persisted_end:
                continue  # ended through the API: audited there already
            audit(tx, room_id, effect)


def spend_and_persist(jti: str, room_id: str, effects: list[Any], now: int, tx: Tx) -> bool:
    """A join's unit of work: spend the token (the gate: of two nodes, one wins), mark the room live, audit.

    True when this join made the room live (its first participant).
    """
    if not tx.tokens.spend(jti, now):
        record = tx.tokens.get(jti)
        raise refuse("token_revoked" if record is None or record.revoked_at is not None else "token_already_used")
    started = tx.rooms.mark_live(room_id)
    if started:
        tx.reports.consultation_started(room_id, now)
    persist_effects(room_id, effects, now, tx)
    return started


def audit(tx: Tx, room_id: str, effect: Audit) -> None:
    """Who did it: the acting seat's identity, else the seat itself (join, leave), else who ended it."""
    if effect.actor_identity is not None:
        actor, actor_role = effect.actor_identity, effect.actor_role
    elif effect.actor_role is None and effect.identity is not None:
        actor, actor_role = effect.identity, effect.role
    else:
        actor, actor_role = effect.actor_role or "system", effect.actor_role or "system"
    detail = dict(effect.detail)
    if effect.seat:
        detail["seat"] = effect.seat
    if effect.role:
        detail["role"] = effect.role
    tx.audit.append(at=int(effect.at), actor=actor, actor_role=actor_role, action=effect.event, room_id=room_id,
                    subject=effect.identity, detail=detail or None)
