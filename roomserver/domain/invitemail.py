"""The e-mail of an invitation, reminder, new time or cancellation, in the citizen's language.

Plain text and HTML (``lang`` and ``dir``: right to left for Arabic and Farsi), dates and
times written by Babel in the language and in the configured time zone, and the
appointment as ``termin.ics`` (``calendar.py``). Built when the message is sent, from the
invite and the room as they are then, so a later reminder shows the current time.
"""

from __future__ import annotations

import hashlib
import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, format_datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time

from .. import i18n
from . import calendar

KINDS = ("invitation", "reminder", "update", "cancel")
_SUBJECT = {"invitation": "mail.invite.subject", "reminder": "mail.reminder.subject",
            "update": "mail.update.subject", "cancel": "mail.cancel.subject"}


def when(lang: str, start: int, end: int, tzid: str) -> tuple[str, str, str]:
    """The date, start and end time as a reader of ``lang`` writes them, in ``tzid``."""
    zone = ZoneInfo(tzid)
    s, e = datetime.fromtimestamp(start, zone), datetime.fromtimestamp(end, zone)
    return (format_date(s, format="full", locale=lang), format_time(s, format="short", locale=lang),
            format_time(e, format="short", locale=lang))


def build(*, kind: str, lang: str, to: str, name: str, title: str, start: int, end: int, join_from: int,
          url: str, uid: str, sequence: int, sender: str, sender_name: str, tzid: str, now: int,
          message_id: str) -> EmailMessage:
    """One message of ``kind``; ``message_id`` stays the same when it is sent again."""
    t = lambda key, **v: i18n.translate(lang, key, **v)  # noqa: E731
    date, start_text, end_text = when(lang, start, end, tzid)
    from_text = format_time(datetime.fromtimestamp(join_from, ZoneInfo(tzid)), format="short", locale=lang)
    paragraphs: list[str] = [t("mail.greeting", name=name)]
    link: str | None = None
    if kind == "cancel":
        paragraphs.append(t("mail.cancel.lead", date=f"{date}, {start_text}"))
    else:
        lead = {"invitation": "mail.invite.lead", "reminder": "mail.reminder.lead",
                "update": "mail.update.lead"}[kind]
        paragraphs.append(t(lead, title=title))
        paragraphs.append(t("mail.when", date=date, start=start_text, end=end_text))
        paragraphs.append(t("mail.link", **{"from": from_text}))
        link = url
        paragraphs += [t("mail.needs"), t("mail.test"), t("mail.data"), t("mail.calendar")]
    paragraphs += [t("mail.address"), t("mail.closing")]

    text_parts = []
    for p in paragraphs:
        text_parts.append(p)
        if link is not None and p.startswith(t("mail.link", **{"from": from_text})):
            text_parts.append(link)
    direction = i18n.direction(lang)
    html_parts = []
    for p in paragraphs:
        html_parts.append("<p>" + html.escape(p).replace("\n", "<br>") + "</p>")
        if link is not None and p.startswith(t("mail.link", **{"from": from_text})):
            html_parts.append(f'<p><a href="{html.escape(link, quote=True)}">{html.escape(link)}</a></p>')

    msg = EmailMessage()
    msg["Subject"] = t(_SUBJECT[kind], date=f"{date}, {start_text}")
    msg["From"] = formataddr((sender_name, sender))
    msg["To"] = to
    msg["Date"] = format_datetime(datetime.fromtimestamp(now).astimezone())
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content("\n\n".join(text_parts) + "\n")
    msg.add_alternative(f'<!DOCTYPE html><html lang="{lang}" dir="{direction}"><head><meta charset="utf-8">'
                        f'<title>{html.escape(msg["Subject"])}</title></head><body dir="{direction}">'
                        + "".join(html_parts) + "</body></html>", subtype="html")
    method = "CANCEL" if kind == "cancel" else "REQUEST"
    entry = calendar.ics(method=method, uid=uid, sequence=sequence, start=start, end=end, tzid=tzid,
                         summary=title, description="\n\n".join(text_parts), url=link, organizer=sender,
                         organizer_name=sender_name, attendee=to, now=now)
    msg.add_attachment(entry, maintype="text", subtype="calendar", filename="termin.ics",
                       params={"method": method})
    msg["Content-Language"] = lang  # after the content: setting it clears the Content-* headers
    return msg


def message_id(row_id: int, jti: str, domain: str) -> str:
    """A Message-ID tied to the outbox row: a message sent again after a crash carries the same one."""
    return f"<outbox{row_id}.{hashlib.sha256(jti.encode()).hexdigest()[:16]}@{domain}>"
