"""The in-process live registry."""

from roomserver.core.room import Room
from roomserver.live.hub import LocalHub


def _room(room_id: str = "r_1") -> Room:
    return Room(room_id, "t", waiting_room=False, max_participants=6, ends_at=None, empty_timeout=60,
                resume_grace=30)


def test_open_is_idempotent_and_close_forgets_everything():
    hub: LocalHub[object] = LocalHub()
    room = hub.open("r_1", _room)
    assert hub.open("r_1", lambda: _room("other")) is room
    conn = object()
    hub.bind("r_1", "p_a", conn)
    hub.remember_secret("rs_x", "r_1")
    assert hub.connection("r_1", "p_a") is conn and hub.room_for_secret("rs_x") == "r_1"
    hub.close_room("r_1")
    assert hub.room("r_1") is None and hub.connection("r_1", "p_a") is None and hub.room_for_secret("rs_x") is None


def test_unbind_keeps_a_newer_socket():
    hub: LocalHub[object] = LocalHub()
    hub.open("r_1", _room)
    old, new = object(), object()
    hub.bind("r_1", "p_a", old)
    hub.bind("r_1", "p_a", new)  # resumed on another socket
    hub.unbind("r_1", "p_a", old)  # the old socket's late close
    assert hub.connection("r_1", "p_a") is new
    hub.unbind("r_1", "p_a", new)
    assert hub.connection("r_1", "p_a") is None
    assert hub.connection_count() == 0
