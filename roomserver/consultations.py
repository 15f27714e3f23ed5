"""The persisted life of a consultation: create, list, end, and the invites into it.

This is where the token rules of the design meet the store: how long a token
of each role lives, that a citizen's invite runs from shortly before the
appointment to its end, that patch-in tokens are single-use, and that ending a
room withdraws every token for it. Every change is audited here, once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Callable

from .auth import Principal
from .config import Settings
from .errors import RoomServerError, conflict, not_found, unprocessable
from .roles import Role
from .store import RoomRow, Store
from .tokens import TokenCodec, TokenRecord

MAX_TITLE = 200
MAX_NAME = 64


@dataclass(frozen=True)
class Invite:
    """A minted token with what the issuer needs to hand it on."""

    token: str
    jti: str
    room_id: str
    role: Role
    identity: str
    not_before: int
    expires_at: int
    single_use: bool
    join_url: str


class Consultations:
    """Room and invite operations, each checked, persisted and audited."""

    def __init__(self, settings: Settings, store: Store, codec: TokenCodec,
                 on_end: Callable[[str, str], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.codec = codec
        # The live side (hub) registers here to disconnect everyone when a room ends.
        self.on_end = on_end

    # rooms
    def create(self, principal: Principal, *, title: str, scheduled_start: int | None,
               scheduled_end: int | None, waiting_room: bool | None, max_participants: int | None,
               now: int) -> RoomRow:
        title = title.strip()
        if not title or len(title) > MAX_TITLE or not title.isprintable():
            raise unprocessable("invalid_title", f"The title must be 1 to {MAX_TITLE} printable characters.")
        cap = self.settings.rooms.max_participants
        if max_participants is None:
            max_participants = cap
        if not 2 <= max_participants <= cap:
            raise unprocessable("invalid_max_participants",
                                f"max_participants must be from 2 to {cap} (a consultation is a mesh).")
        if scheduled_start is not None and scheduled_end is None:
            scheduled_end = scheduled_start + self.settings.rooms.default_duration_minutes * 60
        if scheduled_start is None and scheduled_end is not None:
            scheduled_start = now
        if scheduled_start is not None and scheduled_end is not None:
            if scheduled_end <= scheduled_start:
                raise unprocessable("invalid_schedule", "The scheduled end must be after the start.")
            if scheduled_end <= now:
                raise unprocessable("invalid_schedule", "The scheduled end is in the past.")
            if scheduled_end - scheduled_start > 24 * 3600:
                raise unprocessable("invalid_schedule", "A consultation lasts at most 24 hours.")
        if waiting_room is None:
            waiting_room = self.settings.rooms.waiting_room
        room = self.store.rooms.create(title=title, scheduled_start=scheduled_start,
                                       scheduled_end=scheduled_end, waiting_room=waiting_room,
                                       max_participants=max_participants, created_by=principal.id, now=now)
        self.store.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                                action="room.created", room_id=room.id)
        return room

    def get(self, room_id: str) -> RoomRow:
        room = self.store.rooms.get(room_id) if _plausible_id(room_id) else None
        if room is None:
            raise not_found("The consultation")
        return room

    def end(self, principal: Principal, room_id: str, *, reason: str, now: int) -> RoomRow:
        room = self.get(room_id)
        if room.state == "ended":
            raise conflict("room_ended", "The consultation has already ended.")
        self.store.rooms.end(room_id, reason=reason, now=now)
        self.store.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                                action="room.ended", room_id=room_id, detail={"reason": reason})
        if self.on_end is not None:
            self.on_end(room_id, reason)
        return self.get(room_id)

    # invites
    def invite(self, principal: Principal, room_id: str, *, role: Role, name: str,
               lifetime: int | None, single_use: bool | None, now: int, identity: str | None = None,
               dept: str | None = None, label: str | None = None) -> Invite:
        """Mint a token for one person, one room, one role, and record it in the ledger."""
        room = self.get(room_id)
        if room.state == "ended":
            raise conflict("room_ended", "The consultation has ended; no more invites.")
        name = name.strip()
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise unprocessable("invalid_name", f"The display name must be 1 to {MAX_NAME} printable characters.")
        not_before, expires_at = self._window(room, role, lifetime, now)
        if single_use is None:
            single_use = role in (Role.EXPERT, Role.INTERPRETER)
        identity = identity or f"{role.value}:{secrets.token_urlsafe(9)}"
        token, claims = self.codec.mint(sub=identity, room=room.id, role=role, name=name, nbf=not_before,
                                        exp=expires_at, now=now, dept=dept)
        self.store.tokens.record(
            TokenRecord(jti=claims.jti, room_id=room.id, role=role.value, identity=identity,
                        not_before=not_before, expires_at=expires_at, single_use=single_use,
                        used_at=None, revoked_at=None),
            issued_by=principal.id, issued_at=now, label=label if label is not None else name)
        self.store.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                                action="token.issued", room_id=room.id, subject=claims.jti,
                                detail={"role": role.value, "single_use": single_use})
        return Invite(token=token, jti=claims.jti, room_id=room.id, role=role, identity=identity,
                      not_before=not_before, expires_at=expires_at, single_use=single_use,
                      join_url=f"{self.settings.base_url}/join/{room.id}#{token}")

    def _window(self, room: RoomRow, role: Role, lifetime: int | None, now: int) -> tuple[int, int]:
        """When a new token of ``role`` for ``room`` starts and stops being valid."""
        t = self.settings.tokens
        if lifetime is not None:
            if not 30 <= lifetime <= t.max_lifetime_seconds:
                raise unprocessable("invalid_lifetime",
                                    f"lifetime_seconds must be from 30 to {t.max_lifetime_seconds}.")
            not_before = now
            expires_at = now + lifetime
        elif role is Role.CITIZEN:
            # From shortly before the appointment to its end.
            start = room.scheduled_start if room.scheduled_start is not None else now
            not_before = start - t.citizen_lead_seconds
            expires_at = room.scheduled_end if room.scheduled_end is not None else now + t.citizen_lifetime_seconds
        else:
            per_role = {Role.COUNSELLOR: t.counsellor_lifetime_seconds, Role.EXPERT: t.expert_lifetime_seconds,
                        Role.INTERPRETER: t.interpreter_lifetime_seconds}
            not_before = now
            expires_at = now + per_role[role]
        if expires_at <= now:
            raise conflict("room_over", "The consultation's scheduled end has passed.")
        if expires_at - not_before > t.max_lifetime_seconds:
            raise unprocessable("invalid_lifetime", "The token would be valid for longer than allowed.")
        return not_before, expires_at

    def revoke(self, principal: Principal, room_id: str, jti: str, now: int) -> None:
        self.get(room_id)
        record = self.store.tokens.get(jti) if _plausible_id(jti) else None
        if record is None or record.room_id != room_id:
            raise not_found("The invite")
        if record.revoked_at is not None:
            raise conflict("token_revoked", "The invite has already been withdrawn.")
        self.store.tokens.revoke(jti, now)
        self.store.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                                action="token.revoked", room_id=room_id, subject=jti)


def _plausible_id(value: str) -> bool:
    return 0 < len(value) <= 64 and value.replace("_", "").replace("-", "").isalnum()


def check_owner(principal: Principal, room: RoomRow) -> None:
    """Counsellors manage the rooms they created; admins, operators and systems any room."""
    if principal.role == "counsellor" and room.created_by != principal.id:
        raise RoomServerError("forbidden", "This consultation belongs to another counsellor.", 403)
