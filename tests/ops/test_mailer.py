"""E-mail invitations to a real SMTP server on loopback (aiosmtpd): languages, link, .ics, CANCEL, bad input."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import aiohttp
import icalendar
import pytest
from aiosmtpd.controller import Controller

from roomserver import i18n
from tests.support import WAIT, RawSocket, create_room, sql

BERLIN = ZoneInfo("Europe/Berlin")
SENDER = "beratung@agentur.example"


class Inbox:
    """What the SMTP server received; ``refuse`` answers every RCPT with that reply instead."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content,
                                                      policy=email.policy.default))
        return "250 Message accepted"

    async def wait(self, n: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.messages) < n:
            assert time.monotonic() < deadline, f"only {len(self.messages)} of {n} messages arrived"
            await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port = port  # type: ignore[attr-defined]
    yield inbox
    controller.stop()


def mail_env(port: int, **more: str) -> dict[str, str]:
    return {"ROOMSERVER_MAIL_SMTP_HOST": "127.0.0.1", "ROOMSERVER_MAIL_SMTP_PORT": str(port),
            "ROOMSERVER_MAIL_SECURITY": "none", "ROOMSERVER_MAIL_FROM_ADDRESS": SENDER,
            "ROOMSERVER_OUTBOX_POLL_SECONDS": "0.05", "ROOMSERVER_MAIL_BACKOFF_SECONDS": "0.05",
            "ROOMSERVER_MAIL_MAX_BACKOFF_SECONDS": "0.2", **more}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


def berlin(y: int, m: int, d: int, hh: int, mm: int = 0) -> int:
    return int(datetime(y, m, d, hh, mm, tzinfo=BERLIN).timestamp())


def next_year() -> int:
    return datetime.now(timezone.utc).year + 1


async def emailed(http, headers, room: str, address: str, language: str | None = None, name: str = "Ayşe Yılmaz",
                  **more) -> tuple[int, dict]:
    body = {"role": "citizen", "name": name, "email": address, **more}
    if language is not None:
        body["language"] = language
    r = await http.post(f"/api/v1/rooms/{room}/invites", json=body, headers=headers)
    return r.status, await r.json()


def parts(msg: email.message.EmailMessage) -> tuple[str, str, icalendar.Calendar]:
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    [ics] = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert ics.get_filename() == "termin.ics"
    return text, html, icalendar.Calendar.from_ical(ics.get_payload(decode=True))


def event_of(cal: icalendar.Calendar) -> icalendar.Event:
    [event] = cal.walk("VEVENT")
    return event


async def outbox_states(svc, jti: str) -> list[tuple[str, str]]:
    return [(r.payload.split('"type": "')[1].split('"')[0], r.state)
            for r in await svc.store.outbox.lane(f"invite:{jti}")]


async def until_states(svc, jti: str, predicate, what: str) -> list[tuple[str, str]]:
    deadline = time.monotonic() + WAIT
    while not predicate(states := await outbox_states(svc, jti)):
        assert time.monotonic() < deadline, f"{what}: {states}"
        await asyncio.sleep(0.02)
    return states


async def settles_to(svc, jti: str, expected: list[tuple[str, str]]) -> bool:
    """The SMTP server has the message a moment before the worker records it as sent: wait for the record."""
    await until_states(svc, jti, lambda states: states == expected, f"outbox rows settle to {expected}")
    return True


async def test_the_invitation_arrives_in_each_language_with_a_calendar_entry_across_daylight_saving(
        server_factory, api_headers, smtp) -> None:
    srv, svc = await server_factory(**mail_env(smtp.port))
    year = next_year()
    # The Sunday summer time starts in the EU: the day before is CET (+1), the day after CEST (+2).
    days = {lang: (berlin(year, 3, 27 if i % 2 == 0 else 29, 10, 30)) for i, lang in enumerate(i18n.CITIZEN_LANGUAGES)}
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        jtis = {}
        for lang in i18n.CITIZEN_LANGUAGES:
            start = days[lang]
            room = await create_room(http, api_headers, title=f"Beratung {lang}", scheduled_start=iso(start),
                                     scheduled_end=iso(start + 2700))
            status, body = await emailed(http, api_headers, room, f"ayse.{lang}@example.org", lang)
            assert status == 201, body
            assert "email" not in body or body.get("email") != f"ayse.{lang}@example.org"
            jtis[lang] = (body["jti"], room, start)
        await smtp.wait(7)
    by_to = {m["To"]: m for m in smtp.messages}
    for lang, (jti, room, start) in jtis.items():
        msg = by_to[f"ayse.{lang}@example.org"]
        assert msg["Content-Language"] == lang and SENDER in msg["From"]
        text, html, cal = parts(msg)
        # The subject and the text are the catalog's, in the chosen language.
        date_words = i18n.translate(lang, "mail.invite.subject", date="").strip(" :")
        assert msg["Subject"].startswith(date_words[:12]), (lang, msg["Subject"])
        for key in ("mail.needs", "mail.address"):
            assert i18n.translate(lang, key) in text, (lang, key)
        assert f'lang="{lang}"' in html and f'dir="{"rtl" if lang in ("ar", "fa") else "ltr"}"' in html
        # The link is the invite's own: the room and a token with this jti.
        [url] = re.findall(r"http://\S+/join/\S+", text)
        assert url.startswith(f"{svc.settings.base_url}/join/{room}#")
        claims = svc.codec.decode_unverified(url.split("#", 1)[1]) if hasattr(svc.codec, "decode_unverified") \
            else __import__("jwt").decode(url.split("#", 1)[1], options={"verify_signature": False})
        assert claims["jti"] == jti and claims["room"] == room and claims["role"] == "citizen"
        assert "Ayşe Yılmaz" in text
        # The calendar entry: a REQUEST, at the right wall-clock time in Europe/Berlin on either side of the change.
        assert str(cal["method"]) == "REQUEST"
        event = event_of(cal)
        dtstart = event.decoded("dtstart")
        assert dtstart.tzinfo is not None and dtstart.timestamp() == start
        assert (dtstart.hour, dtstart.minute) == (10, 30)
        assert event["dtstart"].params["TZID"] == "Europe/Berlin" and int(event["sequence"]) == 0
        offset = dtstart.utcoffset().total_seconds() / 3600
        assert offset == (1 if dtstart.day == 27 else 2)
        assert str(event["attendee"]) == f"mailto:ayse.{lang}@example.org"
        # Reminders (24 h and 1 h before) wait in the outbox for their time.
        assert await settles_to(svc, jti, [("invitation", "sent"), ("reminder", "pending"), ("reminder", "pending")])
    # Nothing but what was sent: the invites list does not show the address, the audit holds the language.
    assert not any("example.org" in str(r) for r in sql(svc, "SELECT * FROM audit_events"))


async def test_the_link_in_the_mail_lets_her_in_and_a_reminder_and_a_cancel_follow(
        server_factory, api_headers, smtp) -> None:
    srv, svc = await server_factory(**mail_env(smtp.port), ROOMSERVER_MAIL_REMINDERS="1h",
                                    ROOMSERVER_TOKENS_CITIZEN_LEAD_SECONDS="7200")  # the link works now
    now = time.time()
    start = int(now) + 3600 + 2  # the 1 h reminder is due in two seconds
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        status, body = await emailed(http, api_headers, room, "frau.m@example.org", "en", name="Maria M")
        assert status == 201, body
        await smtp.wait(2)
        invitation, reminder = smtp.messages
        assert invitation["Subject"].startswith("Your video consultation")
        assert reminder["Subject"].startswith("Reminder")
        assert invitation["Message-ID"] != reminder["Message-ID"]
        text, _, cal = parts(reminder)
        assert event_of(cal)["uid"] == event_of(parts(invitation)[2])["uid"]
        [url] = re.findall(r"http://\S+/join/\S+", text)
        token = url.split("#", 1)[1]
        # The link works: its token lets her into the room (the join page's socket, as the browser opens it).
        sock = await RawSocket.open(http)
        first = await sock.join(token)
        assert first["type"] in ("welcome", "waiting"), first
        await sock.close()
        # Withdrawn after it went out: a CANCEL with a higher SEQUENCE; nothing else follows.
        r = await http.delete(f"/api/v1/rooms/{room}/invites/{body['jti']}", headers=api_headers)
        assert r.status == 204
        await smtp.wait(3)
        cancel = smtp.messages[2]
        assert cancel["Subject"].startswith("Cancelled")
        text, _, cal = parts(cancel)
        assert str(cal["method"]) == "CANCEL" and int(event_of(cal)["sequence"]) == 1
        assert str(event_of(cal)["status"]) == "CANCELLED" and "/join/" not in text
        assert await settles_to(svc, body["jti"], [("invitation", "sent"), ("reminder", "sent"), ("cancel", "sent")])


async def test_a_room_ended_before_its_start_cancels_and_stops_the_reminders(server_factory, api_headers, smtp):
    srv, svc = await server_factory(**mail_env(smtp.port))
    start = int(time.time()) + 5 * 86400
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        status, body = await emailed(http, api_headers, room, "x@example.org", "tr")
        await smtp.wait(1)
        await until_states(svc, body["jti"], lambda s: s[0] == ("invitation", "sent"), "invitation sent")
        r = await http.post(f"/api/v1/rooms/{room}/end", headers=api_headers)
        assert r.status == 200, await r.text()
        await smtp.wait(2)
        _, _, cal = parts(smtp.messages[1])
        assert str(cal["method"]) == "CANCEL"
        assert await settles_to(svc, body["jti"], [("invitation", "sent"), ("reminder", "cancelled"),
                                                  ("reminder", "cancelled"), ("cancel", "sent")])


async def test_withdrawn_before_it_was_sent_nothing_goes_out(server_factory, api_headers, smtp) -> None:
    # The worker looks only once a minute here: the invite is withdrawn before it is ever claimed.
    srv, svc = await server_factory(**mail_env(smtp.port, ROOMSERVER_OUTBOX_POLL_SECONDS="60"))
    start = int(time.time()) + 86400 * 3
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        await asyncio.sleep(0.2)  # past the worker's first round at start
        status, body = await emailed(http, api_headers, room, "x@example.org")
        assert status == 201
        r = await http.delete(f"/api/v1/rooms/{room}/invites/{body['jti']}", headers=api_headers)
        assert r.status == 204
    assert await outbox_states(svc, body["jti"]) == [("invitation", "cancelled"), ("reminder", "cancelled"),
                                                     ("reminder", "cancelled")]
    from roomserver.ops.outbox import OUTBOX_KEY
    srv.app[OUTBOX_KEY].wake()
    await asyncio.sleep(0.3)
    assert smtp.messages == []


@pytest.mark.parametrize("fields, status, code", [
    ({"email": "not-an-address"}, 422, "invalid_email"),
    ({"email": "a@b"}, 422, "invalid_email"),
    ({"email": "two@example.org, three@example.org"}, 422, "invalid_email"),
    ({"email": "x@example.org\r\nBcc: victim@example.org"}, 422, "invalid_email"),
    ({"email": "Frau X <x@example.org>"}, 422, "invalid_email"),
    ({"email": "x" * 250 + "@example.org"}, 422, "invalid_request"),
    ({"email": "ü@example.org"}, 422, "invalid_email"),
    ({"email": "x@example.org", "name": "Ayşe\r\nBcc: victim@example.org"}, 422, "invalid_name"),
    ({"email": "x@example.org", "name": "A" * 65}, 422, "invalid_request"),
    ({"email": "x@example.org", "name": "Ayşe\nBcc: victim@example.org"}, 422, "invalid_name"),
    ({"email": "x@example.org", "role": "expert"}, 422, "email_citizens_only"),
    ({"email": "x@example.org", "lifetime_seconds": 600}, 422, "email_with_lifetime"),
    ({"email": "x@example.org", "language": "xx"}, 422, "invalid_request"),
    ({"language": "en"}, 422, "language_without_email"),
])
async def test_bad_input_is_refused_with_a_clear_code_and_nothing_is_sent(
        server_factory, api_headers, smtp, fields, status, code) -> None:
    srv, svc = await server_factory(**mail_env(smtp.port))
    start = int(time.time()) + 86400
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        body = {"role": "citizen", "name": "Ayşe", **fields}
        r = await http.post(f"/api/v1/rooms/{room}/invites", json=body, headers=api_headers)
        answer = await r.json()
        assert (r.status, answer["error"]["code"]) == (status, code), answer
        assert answer["error"]["message"]
    await asyncio.sleep(0.2)
    assert smtp.messages == [] and await svc.store.outbox.counts() == {}
    assert sql(svc, "SELECT COUNT(*) AS n FROM invite_emails")[0]["n"] == 0


async def test_an_unscheduled_room_and_a_server_without_smtp_refuse_email(server_factory, api_headers) -> None:
    srv, svc = await server_factory(**mail_env(free_port()))
    plain, _ = await server_factory()
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers)
        status, body = await emailed(http, api_headers, room, "x@example.org")
        assert (status, body["error"]["code"]) == (422, "schedule_required")
    async with aiohttp.ClientSession(base_url=str(plain.make_url(""))) as http:
        start = int(time.time()) + 86400
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        status, body = await emailed(http, api_headers, room, "x@example.org")
        assert (status, body["error"]["code"]) == (422, "email_not_configured")


async def test_a_permanent_refusal_fails_at_once_and_an_unreachable_server_is_retried_then_given_up(
        server_factory, api_headers, smtp) -> None:
    smtp.refuse = "550 5.1.1 no such mailbox"
    srv, svc = await server_factory(**mail_env(smtp.port))
    down, dsvc = await server_factory(**mail_env(free_port(), ROOMSERVER_MAIL_MAX_ATTEMPTS="3"))
    start = int(time.time()) + 86400 * 2
    for server, service in ((srv, svc), (down, dsvc)):
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
            room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
            status, body = await emailed(http, api_headers, room, "x@example.org")
            assert status == 201
        states = await until_states(service, body["jti"], lambda s: s[0][1] == "failed", "failed")
        row = (await service.store.outbox.lane(f"invite:{body['jti']}"))[0]
        if service is svc:
            assert row.attempts == 1 and row.last_error == "550"
        else:
            assert row.attempts == 3 and row.last_error in ("SMTPConnectError", "ConnectionRefusedError",
                                                            "SMTPServerDisconnected", "SMTPConnectTimeoutError")
        assert states[1:] == [("reminder", "pending"), ("reminder", "pending")]
    assert smtp.messages == []


async def test_a_moved_appointment_sends_an_update_with_a_link_for_the_new_time(server_factory, api_headers, smtp):
    srv, svc = await server_factory(**mail_env(smtp.port))
    year = next_year()
    start, later = berlin(year, 3, 24, 9), berlin(year, 3, 31, 14)  # moved across the change to summer time
    async with aiohttp.ClientSession(base_url=str(srv.make_url(""))) as http:
        room = await create_room(http, api_headers, scheduled_start=iso(start), scheduled_end=iso(start + 1800))
        status, body = await emailed(http, api_headers, room, "x@example.org", "ru")
        await until_states(svc, body["jti"], lambda s: s[0] == ("invitation", "sent"), "invitation sent")
        r = await http.patch(f"/api/v1/rooms/{room}", headers=api_headers,
                             json={"scheduled_start": iso(later), "scheduled_end": iso(later + 3600)})
        assert r.status == 200, await r.text()
        assert (await r.json())["scheduled_start"].startswith(f"{year}-03-31T12:00")
        await smtp.wait(2)
        update = smtp.messages[1]
        text, _, cal = parts(update)
        assert str(cal["method"]) == "REQUEST" and int(event_of(cal)["sequence"]) == 1
        assert event_of(cal)["uid"] == event_of(parts(smtp.messages[0])[2])["uid"]
        dtstart = event_of(cal).decoded("dtstart")
        assert dtstart.timestamp() == later and (dtstart.hour, dtstart.utcoffset().total_seconds()) == (14, 7200)
        [url] = re.findall(r"http://\S+/join/\S+", text)
        claims = __import__("jwt").decode(url.split("#", 1)[1], options={"verify_signature": False})
        assert claims["jti"] == body["jti"] and claims["exp"] == later + 3600
        assert claims["nbf"] == later - svc.settings.tokens.citizen_lead_seconds
        assert await settles_to(svc, body["jti"], [
            ("invitation", "sent"), ("reminder", "cancelled"), ("reminder", "cancelled"), ("update", "sent"),
            ("reminder", "pending"), ("reminder", "pending")])
        # Bad moves are refused with a code; a running or ended consultation is not moved.
        r = await http.patch(f"/api/v1/rooms/{room}", headers=api_headers, json={"scheduled_start": iso(start - 10**8)})
        assert (r.status, (await r.json())["error"]["code"]) == (422, "invalid_schedule")
        r = await http.patch(f"/api/v1/rooms/{room}", headers=api_headers, json={"title": "x"})
        assert (r.status, (await r.json())["error"]["code"]) == (422, "invalid_request")
        await http.post(f"/api/v1/rooms/{room}/end", headers=api_headers)
        r = await http.patch(f"/api/v1/rooms/{room}", headers=api_headers, json={"scheduled_start": iso(later)})
        assert (r.status, (await r.json())["error"]["code"]) == (409, "room_ended")
