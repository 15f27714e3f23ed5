"""A consultation's quality counts: poor reports, seats through TURN; kept through the room's snapshot."""

from __future__ import annotations

from roomserver.core import roomstate
from roomserver.core.protocol import PeerStats
from roomserver.core.quality import QualityTally, is_poor
from roomserver.core.roles import Role
from roomserver.core.room import Ended, Room


def test_what_counts_as_poor() -> None:
    assert not is_poor(PeerStats(rtt_ms=399, loss=0.049, state="connected"))
    assert is_poor(PeerStats(rtt_ms=400)) and is_poor(PeerStats(loss=0.05)) and is_poor(PeerStats(state="failed"))
    assert not is_poor(PeerStats())


def test_the_tally_counts_reports_and_relayed_seats() -> None:
    q = QualityTally()
    q.add("s1", {"s2": PeerStats(rtt_ms=20, candidate_type="relay"), "s3": PeerStats(rtt_ms=900)})
    q.add("s2", {"s1": PeerStats(rtt_ms=20, candidate_type="host")})
    assert q.summary() == {"reports": 3, "poor_reports": 1, "seats": 2, "relay_seats": 1}
    assert q.is_poor  # 1 in 3 is at least 1 in 5
    assert QualityTally.load(q.dump()) == q


def test_the_room_keeps_the_tally_through_a_snapshot_and_hands_it_over_at_the_end() -> None:
    room = Room("r1", "t", waiting_room=False, max_participants=6, ends_at=None, empty_timeout=600, resume_grace=30)
    a = room.join(identity="a", role=Role.COUNSELLOR, name="A", jti="j1", now=1.0).seat
    b = room.join(identity="b", role=Role.CITIZEN, name="B", jti="j2", now=2.0).seat
    room.report_stats(a.id, {b.id: PeerStats(rtt_ms=500, candidate_type="relay")}, 3.0)
    room.report_stats(b.id, {a.id: PeerStats(rtt_ms=30), "gone": PeerStats(rtt_ms=999)}, 4.0)  # unknown peer dropped
    again = roomstate.load(roomstate.dump(room))
    ended = next(e for e in again.end(None, "api", 5.0).effects if isinstance(e, Ended))
    assert ended.quality == {"reports": 2, "poor_reports": 1, "seats": 2, "relay_seats": 1}
