"""The domain event bus, and that a real join publishes what monitoring needs."""

from __future__ import annotations

import logging

import pytest

from roomserver.core.events import KINDS, EventBus
from tests.support import create_room, joined, until


def test_subscribers_hear_events_and_a_broken_one_does_not_stop_the_others(caplog):
    bus, heard = EventBus(), []
    bus.subscribe(lambda e: 1 / 0)
    bus.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="roomserver.core.events"):
        bus.publish("room.started", "r_1")
    assert [(e.kind, e.room_id) for e in heard] == [("room.started", "r_1")]
    assert "subscriber failed" in caplog.text


def test_unknown_kinds_are_a_programming_error():
    with pytest.raises(ValueError):
        EventBus().publish("room.exploded")
    assert "call.accepted" in KINDS


async def test_a_join_and_a_leave_publish_metadata_only(http, api_headers, services):
    heard = []
    services.events.subscribe(heard.append)
    room = await create_room(http, api_headers)
    sock, welcome = await joined(http, api_headers, room, "citizen", "Ayşe Yılmaz")
    await sock.send({"type": "leave"})
    await sock.closed()
    await until(lambda: "socket.closed" in [e.kind for e in heard], "the socket's close on the bus")
    kinds = [e.kind for e in heard]
    assert kinds[:2] == ["room.started", "participant.joined"]
    assert "participant.left" in kinds and "socket.closed" in kinds
    assert "Ayşe" not in repr(heard)  # names never travel on the bus
