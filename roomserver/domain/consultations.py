"""The persisted life of a consultation: create, list, end, and the invites into it.

This is where the token rules of the design meet the store: how long a token
of each role lives, that a citizen's invite runs from shortly before the
appointment to its end, that patch-in tokens are single-use, and that ending a
room withdraws every token for it. Every change is audited here, once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Awaitable, Callable

from ..config import Settings
from ..core import shortcode
from ..core.errors import RoomServerError, conflict, not_found, unprocessable
from ..core.roles import Role
from ..core.tokens import TokenCodec, TokenRecord, refuse
from ..store import RoomRow, ShortLink, Store, Tx
from ..store.invitemail import InviteEmail
from . import outbound
from .auth import Principal

MAX_TITLE = 200
MAX_NAME = 64
MAX_EMAIL = 254
# One address, no display name, no comments: what a person types, nothing a header could be built from.
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


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
    short_url: str | None = None  # /j/XXXX-XXXX-XXXX, when asked for


class Consultations:
    """Room and invite operations, each checked, persisted and audited."""

    def __init__(self, settings: Settings, store: Store, codec: TokenCodec,
                 on_end: Callable[[str, str], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.codec = codec
        # The live side (hub) registers here to disconnect everyone when a room ends.
        self.on_end = on_end
        self.on_withdraw: Callable[[str, str], Awaitable[None]] | None = None

    # rooms
    async def create(self, principal: Principal, *, title: str, scheduled_start: int | None,
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
        scheduled_start, scheduled_end = self._schedule(scheduled_start, scheduled_end, now)
        if waiting_room is None:
            waiting_room = self.settings.rooms.waiting_room
        def unit(tx: Tx) -> RoomRow:
            room = tx.rooms.create(title=title, scheduled_start=scheduled_start, scheduled_end=scheduled_end,
                                   waiting_room=waiting_room, max_participants=max_participants,
                                   created_by=principal.id, now=now)
            tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                            action="room.created", room_id=room.id)
            return room
        return await self.store.write(unit)

    def _schedule(self, scheduled_start: int | None, scheduled_end: int | None,
                  now: int) -> tuple[int | None, int | None]:
        """A schedule checked and completed (a start alone gets the default duration)."""
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
        return scheduled_start, scheduled_end

    async def reschedule(self, principal: Principal, room_id: str, *, scheduled_start: int,
                         scheduled_end: int | None, now: int) -> RoomRow:
        """Move an appointment that has not begun; e-mailed invitees get an UPDATE with a link for the new time."""
        room = await self.get(room_id)
        if room.state == "ended":
            raise conflict("room_ended", "The consultation has ended.")
        if room.state == "live":
            raise conflict("room_started", "The consultation is running; it can no longer be moved.")
        start, end = self._schedule(scheduled_start, scheduled_end, now)
        assert start is not None and end is not None

        def unit(tx: Tx) -> RoomRow | None:
            if not tx.rooms.reschedule(room_id, scheduled_start=start, scheduled_end=end):
                return None
            moved = tx.rooms.get(room_id)
            assert moved is not None
            outbound.queue_reschedule(tx, self.settings, moved, now)
            tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                            action="room.rescheduled", room_id=room_id)
            return moved
        moved = await self.store.write(unit)
        if moved is None:
            raise conflict("room_started", "The consultation has begun or ended; it can no longer be moved.")
        return moved

    async def get(self, room_id: str) -> RoomRow:
        room = await self.store.rooms.get(room_id) if _plausible_id(room_id) else None
        if room is None:
            raise not_found("The consultation")
        return room

    async def end(self, principal: Principal, room_id: str, *, reason: str, now: int) -> RoomRow:
        room = await self.get(room_id)
        if room.state == "ended":
            raise conflict("room_ended", "The consultation has already ended.")

        def unit(tx: Tx) -> RoomRow | None:
            if tx.rooms.end(room_id, reason=reason, now=now):
                tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                                action="room.ended", room_id=room_id, detail={"reason": reason})
                outbound.queue_room_end(tx, room, now)
            return tx.rooms.get(room_id)
        ended = await self.store.write(unit)
        if self.on_end is not None:
            self.on_end(room_id, reason)
        assert ended is not None
        return ended

    # invites
    async def invite(self, principal: Principal, room_id: str, *, role: Role, name: str,
               lifetime: int | None, single_use: bool | None, now: int, identity: str | None = None,
               dept: str | None = None, label: str | None = None, short: bool = False,
               email: str | None = None, language: str | None = None) -> Invite:
        """Mint a token for one person, one room, one role, and record it in the ledger.

        ``short``: also a short link ``/j/XXXX-XXXX-XXXX`` for an SMS, the phone or a sparse QR code.
        ``email``: also send it to this address (citizens, scheduled rooms), in ``language``,
        with reminders; the messages are queued in the outbox in the same commit.
        """
        room = await self.get(room_id)
        if room.state == "ended":
            raise conflict("room_ended", "The consultation has ended; no more invites.")
        name = name.strip()
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise unprocessable("invalid_name", f"The display name must be 1 to {MAX_NAME} printable characters.")
        if email is not None:
            email = self._check_email(email, role, room, lifetime)
        elif language is not None:
            raise unprocessable("language_without_email", "A language is only used for an e-mailed invite.")
        not_before, expires_at = self._window(room, role, lifetime, now)
        if single_use is None:
            single_use = role in (Role.EXPERT, Role.INTERPRETER)
        identity = identity or f"{role.value}:{secrets.token_urlsafe(9)}"
        token, claims = self.codec.mint(sub=identity, room=room.id, role=role, name=name, nbf=not_before,
                                        exp=expires_at, now=now, dept=dept)
        record = TokenRecord(jti=claims.jti, room_id=room.id, role=role.value, identity=identity,
                             not_before=not_before, expires_at=expires_at, single_use=single_use,
                             used_at=None, revoked_at=None)
        code = shortcode.generate() if short else None

        def unit(tx: Tx) -> None:
            tx.tokens.record(record, issued_by=principal.id, issued_at=now, label=label if label is not None else name)
            tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role, action="token.issued",
                            room_id=room.id, subject=claims.jti, detail={"role": role.value, "single_use": single_use})
            if code is not None:
                tx.shortlinks.add(ShortLink(code_hash=shortcode.digest(code.replace("-", "")), jti=claims.jti,
                                            room_id=room.id, name=name, dept=dept, created_at=now))
            if email is not None:
                outbound.queue_invitation(tx, self.settings, InviteEmail(
                    jti=claims.jti, room_id=room.id, address=email, name=name, language=language or "de",
                    sequence=0, created_at=now), room, now)
                tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                                action="invite.emailed", room_id=room.id, subject=claims.jti,
                                detail={"language": language or "de"})
        await self.store.write(unit)
        short_url = f"{self.settings.base_url}/j/{code}" if code is not None else None
        return Invite(token=token, jti=claims.jti, room_id=room.id, role=role, identity=identity,
                      not_before=not_before, expires_at=expires_at, single_use=single_use,
                      join_url=f"{self.settings.base_url}/join/{room.id}#{token}", short_url=short_url)

    def _check_email(self, email: str, role: Role, room: RoomRow, lifetime: int | None) -> str:
        if not self.settings.mail.smtp_host:
            raise unprocessable("email_not_configured", "This server sends no e-mail: hand the link on instead.")
        if role is not Role.CITIZEN:
            raise unprocessable("email_citizens_only", "Only a citizen's invite can be sent by e-mail.")
        if room.scheduled_start is None or room.scheduled_end is None:
            raise unprocessable("schedule_required", "An e-mailed invite needs a consultation with a scheduled time.")
        if lifetime is not None:
            raise unprocessable("email_with_lifetime", "An e-mailed invite runs from the appointment's time; "
                                                       "leave lifetime_seconds out.")
        email = email.strip()
        if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email):
            raise unprocessable("invalid_email", "That is not a valid e-mail address (one address, like "
                                                 "name@example.org).")
        return email

    async def resolve_short(self, code: str, now: int) -> tuple[str, str]:
        """The room and token a short code stands for: the token signed again from the ledger row.

        Unknown codes and withdrawn invites are refused here; every other check (expired,
        used, room ended) is the join page's, as for a long link.
        """
        normal = shortcode.normalise(code)
        link, record = await self.store.read(lambda tx: _short_link(tx, shortcode.digest(normal))) if normal \
            else (None, None)
        if link is None or record is None:
            raise RoomServerError("short_link_unknown", "There is no invite with this code.", 404)
        if record.revoked_at is not None:
            raise refuse("token_revoked")
        token, _ = self.codec.mint(sub=record.identity, room=record.room_id, role=Role(record.role), name=link.name,
                                   nbf=record.not_before, exp=record.expires_at, now=now, dept=link.dept,
                                   jti=record.jti)
        return record.room_id, token

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

    async def revoke(self, principal: Principal, room_id: str, jti: str, now: int) -> None:
        await self.get(room_id)
        record = await self.store.tokens.get(jti) if _plausible_id(jti) else None
        if record is None or record.room_id != room_id:
            raise not_found("The invite")
        if record.revoked_at is not None:
            raise conflict("token_revoked", "The invite has already been withdrawn.")

        def unit(tx: Tx) -> None:
            tx.tokens.revoke(jti, now)
            tx.shortlinks.delete_for(jti)  # the short link goes with the invite
            outbound.queue_withdrawal(tx, jti, now)  # reminders stop; a CANCEL if the invitation went out
            tx.audit.append(at=now, actor=principal.audit_actor, actor_role=principal.role,
                            action="token.revoked", room_id=room_id, subject=jti)
        await self.store.write(unit)
        if self.on_withdraw is not None:
            await self.on_withdraw(room_id, jti)  # a seat that joined with it ends now, on any node


def _short_link(tx: Tx, code_hash: str) -> tuple[ShortLink | None, TokenRecord | None]:
    link = tx.shortlinks.get(code_hash)
    return link, (tx.tokens.get(link.jti) if link else None)


def _plausible_id(value: str) -> bool:
    return 0 < len(value) <= 64 and value.replace("_", "").replace("-", "").isalnum()


def check_owner(principal: Principal, room: RoomRow) -> None:
    """Counsellors manage the rooms they created; admins, operators and systems any room."""
    if principal.role == "counsellor" and room.created_by != principal.id:
        raise RoomServerError("forbidden", "This consultation belongs to another counsellor.", 403)
