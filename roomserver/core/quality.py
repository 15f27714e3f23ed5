"""A consultation's connection quality, summed up as it runs: what the pilot evaluation counts.

Every ``stats`` report a client sends (one per peer it is connected to) is judged
once: poor when the round trip is 400 ms or more, the loss 5 % or more, or the
connection dropped (ICE ``failed``/``disconnected``). A consultation counts as
poor when at least one report in five was poor. A seat counts as relayed when
any of its reports ran over a TURN relay candidate. Only counts are kept: no
figure, no peer, no identity leaves the room with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .protocol import PeerStats

POOR_RTT_MS = 400.0
POOR_LOSS = 0.05
POOR_SHARE = 0.2  # a consultation is poor when at least this share of its reports were poor
_DROPPED = frozenset({"failed", "disconnected"})


def is_poor(stats: PeerStats) -> bool:
    """Whether one report says the connection was poor."""
    return ((stats.rtt_ms is not None and stats.rtt_ms >= POOR_RTT_MS)
            or (stats.loss is not None and stats.loss >= POOR_LOSS)
            or (stats.state is not None and stats.state in _DROPPED))


@dataclass(slots=True)
class QualityTally:
    """Running counts of one consultation's reports: how many, how many poor, which seats reported, relayed."""

    reports: int = 0
    poor: int = 0
    seats: set[str] = field(default_factory=set)
    relayed: set[str] = field(default_factory=set)

    def add(self, seat_id: str, peers: Mapping[str, PeerStats]) -> None:
        for stats in peers.values():
            self.reports += 1
            if is_poor(stats):
                self.poor += 1
            self.seats.add(seat_id)
            if stats.candidate_type == "relay":
                self.relayed.add(seat_id)

    @property
    def is_poor(self) -> bool:
        return self.reports > 0 and self.poor >= POOR_SHARE * self.reports

    def summary(self) -> dict[str, int]:
        """The counts stored with the consultation (no seat ids)."""
        return {"reports": self.reports, "poor_reports": self.poor, "seats": len(self.seats),
                "relay_seats": len(self.relayed)}

    def dump(self) -> dict[str, Any]:
        return {"reports": self.reports, "poor": self.poor, "seats": sorted(self.seats),
                "relayed": sorted(self.relayed)}

    @classmethod
    def load(cls, data: Mapping[str, Any] | None) -> "QualityTally":
        if not data:
            return cls()
        return cls(int(data.get("reports", 0)), int(data.get("poor", 0)), set(data.get("seats", ())),
                   set(data.get("relayed", ())))
