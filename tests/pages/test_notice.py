"""The citizens' data notice: it says what the system stores, from whom, for how long; its version
follows its German text and the [privacy] settings; a consent to an older version is asked again;
"No" after "yes" withdraws it.

What the notice claims is held against the real schema: a new column in a table that holds a
citizen's data fails ``test_the_notice_covers_every_column_that_holds_a_citizens_data`` until
someone has checked the notice still tells the truth.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from roomserver import i18n
from roomserver.config import PrivacySettings
from roomserver.pages.notice import build
from tests.conftest import make_settings
from tests.support import create_room, invite, sql


async def post(http, path: str, body: dict) -> tuple[int, dict]:
    r = await http.post(path, json=body)
    return r.status, await r.json()


def test_the_notice_names_the_controller_the_officer_the_authority_and_both_retention_limits(tmp_path) -> None:
    settings = make_settings(tmp_path, ROOMSERVER_PRIVACY_CONTROLLER_NAME="Agentur für Arbeit Kreisstadt",
                             ROOMSERVER_PRIVACY_DPO_CONTACT="dsb@kreisstadt.example",
                             ROOMSERVER_PRIVACY_AUTHORITY="Landesbeauftragte für Datenschutz, Postfach 1",
                             ROOMSERVER_PRIVACY_RECORDS_RETENTION_DAYS="30", ROOMSERVER_AUDIT_RETENTION_DAYS="60")
    for lang in i18n.CITIZEN_LANGUAGES:
        text = "\n".join(build(settings).lines(lang))
        assert "Agentur für Arbeit Kreisstadt" in text and "dsb@kreisstadt.example" in text, lang
        assert "Landesbeauftragte für Datenschutz, Postfach 1" in text, lang
        assert i18n.number(lang, 30) in text and i18n.number(lang, 60) in text, lang
    german = "\n".join(build(settings).lines("de"))
    assert "nach 60 Tagen" in german and "30 Tage nach dem Ende der Beratung" in german
    assert i18n.translate("de", "join.notice.basis") in german  # no legal_basis set: the standard text


def test_farsi_writes_the_retention_in_persian_digits(tmp_path) -> None:
    text = "\n".join(build(make_settings(tmp_path)).lines("fa"))
    assert "۹۰ روز" in text and "90" not in text


def test_a_relay_is_mentioned_only_when_one_is_configured(tmp_path) -> None:
    plain = build(make_settings(tmp_path))
    relayed = build(make_settings(tmp_path, ROOMSERVER_ICE_TURN_URLS="turn:turn.example:3478",
                                  ROOMSERVER_ICE_TURN_SECRET="s" * 32))
    assert "join.notice.relay" not in [t.key for t in plain.items]
    assert "join.notice.relay" in [t.key for t in relayed.items]
    assert relayed.version != plain.version


@pytest.mark.parametrize("key", ["controller_name", "controller_address", "controller_contact", "dpo_name",
                                 "dpo_contact", "authority", "legal_basis"])
def test_every_privacy_detail_is_part_of_the_version(tmp_path, key: str) -> None:
    before = build(make_settings(tmp_path))
    after = build(make_settings(tmp_path, **{f"ROOMSERVER_PRIVACY_{key.upper()}": "Geändert 1"}))
    assert after.version != before.version
    assert "Geändert 1" in "\n".join(after.lines("de"))


def test_the_controllers_own_legal_basis_replaces_the_standard_text(tmp_path) -> None:
    notice = build(make_settings(tmp_path, ROOMSERVER_PRIVACY_LEGAL_BASIS="§ 67a SGB X in Verbindung mit …"))
    for lang in ("de", "ar"):
        lines = notice.lines(lang)
        assert "§ 67a SGB X in Verbindung mit …" in lines
        assert i18n.translate(lang, "join.notice.basis") not in lines


def test_the_version_follows_the_german_text_not_a_translation(tmp_path, monkeypatch) -> None:
    """A changed German sentence is a new notice (consent is asked again); a better translation is not."""
    settings = make_settings(tmp_path / "data")
    original = build(settings).version
    assert original.startswith("join-notice-2.")
    catalogs = tmp_path / "i18n"
    shutil.copytree(i18n.CATALOG_DIR, catalogs)
    monkeypatch.setattr(i18n, "CATALOG_DIR", catalogs)

    def edit(lang: str, key: str, text: str) -> str:
        path = catalogs / f"{lang}.json"
        catalog = json.loads(path.read_text(encoding="utf-8"))
        catalog[key] = text
        path.write_text(json.dumps(catalog, ensure_ascii=False), encoding="utf-8")
        i18n.catalog.cache_clear()
        return build(settings).version

    try:
        assert edit("tr", "join.notice.record", "Başka bir çeviri.") == original
        changed = edit("de", "join.notice.record", "Dieser Dienst nimmt alles auf.")
        assert changed != original and changed.startswith("join-notice-2.")
    finally:
        i18n.catalog.cache_clear()


def test_the_demo_details_are_marked_and_reported(tmp_path) -> None:
    assert PrivacySettings().placeholders() == ["controller_name", "controller_address", "controller_contact",
                                                 "dpo_name", "dpo_contact", "authority"]
    assert PrivacySettings().controller_name.startswith("BEISPIEL")
    settings = make_settings(tmp_path, ROOMSERVER_PRIVACY_CONTROLLER_NAME="Agentur für Arbeit Kreisstadt")
    assert "controller_name" not in settings.privacy.placeholders()


async def test_the_page_shows_the_notice_with_the_configured_details(server, http, services) -> None:
    services.settings.privacy.controller_name = "Agentur für Arbeit Kreisstadt"
    services.settings.privacy.dpo_name = "Frau Datenschutz"
    for lang in i18n.CITIZEN_LANGUAGES:
        html = await (await http.get(f"/join/r_abc123?lang={lang}")).text()
        notice = build(services.settings)
        for line in notice.lines(lang):
            assert line.replace("'", "&#39;").replace('"', "&#34;") in html, (lang, line)
        assert f'data-notice="{notice.version}"' in html
        assert i18n.translate(lang, "join.notice.version", version=notice.version) in html


async def test_consent_is_asked_again_when_the_notice_changed(server, http, api_headers, services) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "Olena")
    check = f"/join/{room_id}/check"
    first = build(services.settings).version
    status, body = await post(http, f"/join/{room_id}/consent", {"token": inv["token"], "notice": first})
    assert status == 201
    status, body = await post(http, check, {"token": inv["token"]})
    assert body["consent"] == {"notice": first, "given_at": body["consent"]["given_at"], "current": True}

    # The controller's contact changes: a new notice; the consent on record is to an older one.
    services.settings.privacy.controller_contact = "neu@kreisstadt.example"
    second = build(services.settings).version
    assert second != first
    status, body = await post(http, check, {"token": inv["token"]})
    assert body["notice"] == second
    assert body["consent"]["notice"] == first and body["consent"]["current"] is False
    # The page still holding the old version is refused, and reloads.
    status, body = await post(http, f"/join/{room_id}/consent", {"token": inv["token"], "notice": first})
    assert (status, body["error"]["code"]) == (422, "unknown_notice")
    status, body = await post(http, f"/join/{room_id}/consent", {"token": inv["token"], "notice": second})
    assert status == 201
    status, body = await post(http, check, {"token": inv["token"]})
    assert body["consent"]["notice"] == second and body["consent"]["current"] is True
    versions = [r["notice"] for r in sql(services, "SELECT notice FROM consents ORDER BY id")]
    assert versions == [first, second]


async def test_no_after_yes_withdraws_the_consent(server, http, api_headers, services) -> None:
    room_id = await create_room(http, api_headers)
    inv = await invite(http, api_headers, room_id, "citizen", "Olena")
    other = await invite(http, api_headers, room_id, "citizen", "Ayşe")
    withdraw = f"/join/{room_id}/consent/withdraw"
    # Nothing agreed yet: nothing to withdraw, nothing recorded.
    status, body = await post(http, withdraw, {"token": inv["token"]})
    assert (status, body["withdrawn"]) == (200, 0)
    assert await services.store.audit.query(action="consent.withdrawn") == []

    version = build(services.settings).version
    for token in (inv["token"], other["token"]):
        assert (await post(http, f"/join/{room_id}/consent", {"token": token, "notice": version}))[0] == 201
    status, body = await post(http, withdraw, {"token": inv["token"]})
    assert (status, body["withdrawn"]) == (200, 1)
    status, body = await post(http, f"/join/{room_id}/check", {"token": inv["token"]})
    assert body["consent"] is None  # asked again next time
    status, body = await post(http, f"/join/{room_id}/check", {"token": other["token"]})
    assert body["consent"]["current"] is True  # the other invite's consent stands
    row = await services.store.consents.latest(inv["jti"])
    assert row is not None and row.withdrawn_at is not None and row.notice == version  # both stay on record
    events = await services.store.audit.query(action="consent.withdrawn")
    assert [(e.room_id, e.subject) for e in events] == [(room_id, inv["jti"])]
    # Bad input is refused with a code, and a withdrawn or foreign token withdraws nothing.
    status, body = await post(http, withdraw, {"token": inv["token"], "notice": version})
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    status, body = await post(http, withdraw, {"token": "garbage"})
    assert (status, body["error"]["code"]) == (401, "token_malformed")


# The columns of every table that can hold something about a citizen, and what the notice says of
# them (join.notice.stored.*): change a table and this list, after checking the notice is still true.
DESCRIBED = {
    "rooms": {"id", "title", "scheduled_start", "scheduled_end", "waiting_room", "max_participants", "state",
              "created_by", "created_at", "ended_at", "ended_reason"},  # "Ihren Termin: Titel, geplante Zeit …"
    "issued_tokens": {"jti", "room_id", "role", "identity", "not_before", "expires_at", "single_use", "issued_by",
                      "issued_at", "used_at", "revoked_at", "label"},  # "Ihre Einladung: den Namen, … Rolle, …"
    # part of "Ihre Einladung": the name on the invite, behind a short link (only a hash of the code)
    "short_links": {"code_hash", "jti", "room_id", "name", "dept", "created_at"},
    "consents": {"id", "room_id", "jti", "notice", "given_at", "withdrawn_at"},  # "Ihre Zustimmung: wann …"
    "audit_events": {"id", "at", "actor", "actor_role", "action", "room_id", "subject", "detail"},  # "Ein Protokoll"
    "expert_calls": {"id", "room_id", "requested_by", "kind", "target", "state", "requested_at", "accepted_at",
                     "accepted_by", "ended_at"},  # staff only: who called whom
    "call_events": {"id", "call_id", "event", "at", "account_id"},
    # "Wenn Sie die Einladung per E-Mail bekommen": address (erased when the appointment is over), language,
    # the name on the invite; the outbox keeps when each message went (an e-mail row holds the jti, no address)
    # and webhook events (ids, roles, reasons only).
    "invite_emails": {"jti", "room_id", "address", "name", "language", "sequence", "created_at"},
    "outbox": {"id", "kind", "lane", "payload", "state", "attempts", "created_at", "next_at", "claimed_by",
               "lease_until", "done_at", "last_error"},
    "callback_requests": {"id", "room_id", "call_id", "kind", "target", "requested_by", "caller_name",
                          "created_at", "done_at", "done_by"},
    # "Ihren Termin: … Beginn, Ende und Verbindungsqualität": counts of quality reports, no peer, no name
    "consultation_figures": {"room_id", "started_at", "ended_at", "team", "reports", "poor_reports", "seats",
                             "relay_seats"},
    # "anonyme Zählungen": a month's aggregates, small cells hidden; nothing about one consultation
    "report_months": {"month", "figures", "stored_at"},
}


def test_the_notice_covers_every_column_that_holds_a_citizens_data(services) -> None:
    tables = {r["name"] for r in sql(services, *TABLES[services.store.dialect])}
    # oidc_logins: a staff member's sign-in at their organisation's provider while it is in progress.
    staff_only = {"departments", "accounts", "sessions", "interpreter_languages", "sqlite_sequence",
                  "schema_migrations", "oidc_logins",
                  # staff sign-in throttle: hashed counters (address, account name) and device cookies;
                  # citizens never sign in
                  "signin_failures", "signin_devices"}
    # Running consultations only: a room's seats (with the display name) while it runs, for a restart or
    # another node to go on with; the row goes when the room ends ("during the call" in the notice).
    while_running = {"live_state"}
    assert tables - staff_only - while_running == set(DESCRIBED), \
        "a new table: does it hold a citizen's data? say so in the notice"
    for table, columns in DESCRIBED.items():
        have = {r["name"] for r in sql(services, *COLUMNS[services.store.dialect](table))}
        assert have == columns, f"{table} changed: check join.notice.stored.* still tells the truth"


TABLES = {"sqlite": ("SELECT name FROM sqlite_master WHERE type = 'table'",),
          "postgresql": ("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'",)}
COLUMNS = {"sqlite": lambda table: (f"SELECT name FROM pragma_table_info('{table}')",),
           "postgresql": lambda table: ("SELECT column_name AS name FROM information_schema.columns"
                                        " WHERE table_name = ?", table)}


def test_every_notice_key_is_used_and_translated(tmp_path: Path) -> None:
    notice = build(make_settings(tmp_path, ROOMSERVER_ICE_TURN_URLS="turn:t.example:3478",
                                 ROOMSERVER_ICE_TURN_SECRET="s" * 32, ROOMSERVER_MAIL_SMTP_HOST="smtp.example",
                                 ROOMSERVER_MAIL_FROM_ADDRESS="beratung@agentur.example"))
    keys = {t.key for t in (*notice.items, *notice.stored, *notice.closing)}
    keys |= {f.label for f in notice.facts} | {"join.notice.purpose", "join.notice.basis", "join.notice.rights"}
    german = {k for k in i18n.catalog("de") if k.startswith("join.notice.")}
    page_only = {"join.notice.title", "join.notice.appointment", "join.notice.changed", "join.notice.stored",
                 "join.notice.about", "join.notice.version", "join.notice.question"}
    assert german == keys | page_only
