"""Record retention: what the data notice promises about deleting invites, consents and rooms.

A consultation over for longer than ``[privacy] records_retention_days`` goes, with every
invite (and the name typed into it), consent, expert call, call event and callback request;
a younger one, one that can still be joined, and one live right now stay.
"""

from __future__ import annotations

from aiohttp.test_utils import TestServer

from roomserver.app import create_app
from roomserver.core.tokens import TokenRecord
from roomserver.ops.retention import apply_record_retention
from tests.support import sql

DAY = 86400
NOW = 1_800_000_000


def _room(store, title: str, *, created: int, start: int | None = None, end: int | None = None) -> str:
    return store.rooms.create(title=title, scheduled_start=start, scheduled_end=end, waiting_room=True,
                              max_participants=4, created_by="a_counsellor", now=created).id


def _invite(store, room: str, jti: str, *, issued: int, expires: int, name: str = "Ayşe Yılmaz") -> None:
    store.tokens.record(TokenRecord(jti=jti, room_id=room, role="citizen", identity=f"citizen:{jti}",
                                    not_before=issued, expires_at=expires, single_use=False, used_at=None,
                                    revoked_at=None), issued_by="a_counsellor", issued_at=issued, label=name)


def _everything_about(services, room: str, jti: str, at: int) -> None:
    """An invite with a name, a consent, a call with its event and a callback request."""
    store = services.store.blocking
    _invite(store, room, jti, issued=at, expires=at + 3600)
    store.consents.record(room, jti, "join-notice-2.test", at)
    sql(services, "INSERT INTO expert_calls (id, room_id, requested_by, kind, target, state, requested_at)"
                  " VALUES (?, ?, 'a_counsellor', 'department', 'jobcenter', 'no_one', ?)", f"c_{room}", room, at)
    sql(services, "INSERT INTO call_events (call_id, event, at) VALUES (?, 'no_one', ?)", f"c_{room}", at)
    sql(services, "INSERT INTO callback_requests (id, room_id, call_id, kind, target, requested_by, created_at)"
                  " VALUES (?, ?, ?, 'department', 'jobcenter', 'a_counsellor', ?)", f"cb_{room}", room,
        f"c_{room}", at)


def _count(services, table: str, room: str) -> int:
    column = "id" if table == "rooms" else "room_id"
    return int(sql(services, f"SELECT COUNT(*) AS n FROM {table} WHERE {column} = ?", room)[0]["n"])


async def test_a_consultation_over_for_longer_than_the_limit_goes_with_everything_about_it(services) -> None:
    store = services.store.blocking
    limit = services.settings.privacy.records_retention_days * DAY
    assert services.settings.privacy.records_retention_days == 90
    old = _room(store, "Beratung Frau Yılmaz", created=NOW - limit - 5 * DAY)
    _everything_about(services, old, "jti_old", NOW - limit - 5 * DAY)
    store.rooms.end(old, reason="moderator", now=NOW - limit - DAY)
    young = _room(store, "Beratung jung", created=NOW - limit)
    _everything_about(services, young, "jti_young", NOW - limit)
    store.rooms.end(young, reason="moderator", now=NOW - limit + DAY)  # over for less than the limit
    # Never ended, scheduled long ago: over at its scheduled end.
    stale = _room(store, "Geplant, nie gestartet", created=NOW - limit - 9 * DAY, start=NOW - limit - 8 * DAY,
                  end=NOW - limit - 8 * DAY + 3600)
    _invite(store, stale, "jti_stale", issued=NOW - limit - 9 * DAY, expires=NOW - limit - 8 * DAY + 3600)
    # Never ended, no schedule, created long ago, but an invite valid until recently: kept until that is over too.
    standing = _room(store, "Ohne Termin", created=NOW - limit - 30 * DAY)
    _invite(store, standing, "jti_standing", issued=NOW - 2 * DAY, expires=NOW - DAY)
    # Live on this server right now, though its record looks long over (no schedule, old invites): kept.
    live = _room(store, "Läuft", created=NOW - limit - 3 * DAY)
    _invite(store, live, "jti_live", issued=NOW - limit - 3 * DAY, expires=NOW - limit - 2 * DAY)
    store.rooms.mark_live(live)

    assert await apply_record_retention(services, NOW, live=frozenset({live})) == 2
    for room in (old, stale):
        for table in ("rooms", "issued_tokens", "consents", "expert_calls", "callback_requests"):
            assert _count(services, table, room) == 0, (room, table)
    assert sql(services, "SELECT COUNT(*) AS n FROM call_events WHERE call_id = ?", f"c_{old}")[0]["n"] == 0
    assert store.tokens.label("jti_old") == ""  # the name typed into the invite is gone
    for room in (young, standing, live):
        assert store.rooms.get(room) is not None, room
    assert store.consents.latest("jti_young") is not None and store.tokens.label("jti_young") == "Ayşe Yılmaz"
    events = store.audit.query(action="records.retention")
    assert len(events) == 1 and events[0].detail["rooms"] == 2
    assert await apply_record_retention(services, NOW, live=frozenset({live})) == 0  # nothing left, no event
    assert len(store.audit.query(action="records.retention")) == 1


async def test_record_retention_runs_at_start(services) -> None:
    now = services.now()
    limit = services.settings.privacy.records_retention_days * DAY
    gone = _room(services.store.blocking, "alt", created=now - limit - 3 * DAY)
    services.store.blocking.rooms.end(gone, reason="api", now=now - limit - DAY)
    kept = _room(services.store.blocking, "neu", created=now - DAY)
    srv = TestServer(create_app(services), host="127.0.0.1", port=0)
    await srv.start_server()
    try:
        assert await services.store.rooms.get(gone) is None
        assert await services.store.rooms.get(kept) is not None
    finally:
        await srv.close()
