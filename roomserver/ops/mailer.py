"""E-mail invitations over SMTP (aiosmtplib): the outbox's sender for ``email`` rows.

Each message is written when it is sent, from the invite and the consultation as they are
then (``domain/invitemail.py``); the join link is signed afresh with the invite's own
``jti``, so no usable token rests in the outbox. A permanent refusal (5xx) fails the
message at once; anything else (unreachable, 4xx, a timeout) is retried with back-off.
Only the SMTP status code or the error's kind is kept, never the server's text.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiosmtplib
from aiohttp import web

from ..core.roles import Role
from ..domain import invitemail
from ..services import Services, services_of
from ..store import Tx
from ..store.outbox import OutboxRow
from .outbox import DROPPED, FAILED, OUTBOX_KEY, RETRY, SENT, Outcome, OutboxWorker, Policy

log = logging.getLogger("roomserver.ops.mailer")


class Mailer:
    def __init__(self, services: Services, worker: OutboxWorker) -> None:
        self.services = services
        self.settings = services.settings.mail
        worker.register("email", self.send, Policy(self.settings.max_attempts, self.settings.backoff_seconds,
                                                   self.settings.max_backoff_seconds))

    @property
    def enabled(self) -> bool:
        return bool(self.settings.smtp_host)

    async def send(self, row: OutboxRow) -> Outcome:
        if not self.enabled:
            return Outcome(FAILED, "email_not_configured")
        payload = json.loads(row.payload)
        jti, kind = payload["jti"], payload["type"]

        def unit(tx: Tx):  # type: ignore[no-untyped-def]
            mail = tx.invitemails.get(jti)
            return mail, tx.tokens.get(jti), (tx.rooms.get(mail.room_id) if mail else None)
        mail, record, room = await self.services.store.read(unit)
        if mail is None or record is None or room is None or not mail.address:
            return Outcome(DROPPED, "address_erased")
        if room.scheduled_start is None or room.scheduled_end is None:
            return Outcome(DROPPED, "unscheduled")
        if kind != "cancel" and (record.revoked_at is not None or room.state == "ended"):
            return Outcome(DROPPED, "withdrawn")
        now = self.services.now()
        svc = self.services
        token, _ = svc.codec.mint(sub=record.identity, room=record.room_id, role=Role(record.role), name=mail.name,
                                  nbf=record.not_before, exp=record.expires_at, now=now, jti=record.jti)
        sender = self.settings.from_address
        domain = sender.rpartition("@")[2]
        message = invitemail.build(
            kind=kind, lang=mail.language, to=mail.address, name=mail.name, title=room.title,
            start=room.scheduled_start, end=room.scheduled_end, join_from=record.not_before,
            url=f"{svc.settings.base_url}/join/{room.id}#{token}", uid=f"{record.jti}@{domain}",
            sequence=mail.sequence, sender=sender, sender_name=self.settings.from_name,
            tzid=self.settings.timezone, now=now, message_id=invitemail.message_id(row.id, record.jti, domain))
        security = self.settings.security
        try:
            await aiosmtplib.send(message, hostname=self.settings.smtp_host, port=self.settings.smtp_port,
                                  username=self.settings.username or None,
                                  password=svc.settings.mail_password if self.settings.username else None,
                                  use_tls=security == "tls", start_tls=security == "starttls",
                                  timeout=self.settings.timeout_seconds)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            return Outcome(FAILED if codes and codes[0] >= 500 else RETRY, str(codes[0]) if codes else "refused")
        except aiosmtplib.SMTPResponseException as exc:
            log.info("e-mail %d: the SMTP server answered %d", row.id, exc.code)
            return Outcome(FAILED if exc.code >= 500 else RETRY, str(exc.code))
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            log.info("e-mail %d: SMTP server unreachable (%s)", row.id, type(exc).__name__)
            return Outcome(RETRY, type(exc).__name__)
        return Outcome(SENT)


MAILER_KEY: web.AppKey[Mailer] = web.AppKey("mailer", Mailer)


def setup_mailer(app: web.Application) -> Mailer:
    mailer = Mailer(services_of(app), app[OUTBOX_KEY])
    app[MAILER_KEY] = mailer
    return mailer
