"""The pure rules of the browser's media adaptation (web/static/js/adaptation.js) and network advice
(netadvice.js), run in node: the modules are plain ES modules with no DOM at import time.

A run feeds a sequence of samples ({loss, rttMs}) to ``decide`` and returns every state,
so the tests say what the ladder does step by step: down after bad samples, up after good
ones (slower), held on fair ones, audio only offered only at the lowest level.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "web" / "static" / "js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (apt-get install nodejs)")

RUNNER = """
const [adaptation, netadvice, quality] = await Promise.all([
  import(%(adaptation)s), import(%(netadvice)s), import(%(quality)s)]);
const input = JSON.parse(await new Promise((resolve) => {
  let data = ""; process.stdin.on("data", (c) => (data += c)); process.stdin.on("end", () => resolve(data));
}));
const out = { runs: [], encodings: [], advice: [], levels: adaptation.LEVELS };
for (const samples of input.runs) {
  let state = adaptation.initialState();
  const states = [];
  for (const sample of samples) { state = adaptation.decide(state, sample); states.push(state); }
  out.runs.push(states);
}
for (const level of input.encodings) out.encodings.push(adaptation.encodingFor(level));
for (const servers of input.advice) out.advice.push(netadvice.adviceRules(servers));
// getStats() reports as lists of entries (a report is iterated with forEach)
const report = (entries) => ({ forEach: (f) => entries.forEach(f) });
out.between = (input.readings || []).map(([a, b, ms]) =>
  quality.between(quality.readCounters(report(a)), quality.readCounters(report(b)), ms));
console.log(JSON.stringify(out));
"""

BAD = {"loss": 0.10, "rttMs": 120}
SLOW = {"loss": 0.0, "rttMs": 800}
GOOD = {"loss": 0.0, "rttMs": 40}
FAIR = {"loss": 0.03, "rttMs": 100}
UNKNOWN: dict = {}


def run(runs=(), encodings=(), advice=(), readings=()) -> dict:
    script = RUNNER % {name: json.dumps((JS / f"{name}.js").as_uri()) for name in ("adaptation", "netadvice", "quality")}
    done = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60,
                          input=json.dumps({"runs": list(runs), "encodings": list(encodings), "advice": list(advice),
                                            "readings": list(readings)}))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def levels(states) -> list[int]:
    return [s["level"] for s in states]


def test_steps_down_one_level_per_two_bad_samples_to_the_lowest_then_offers_audio_only() -> None:
    (states,) = run(runs=[[BAD] * 12])["runs"]
    assert levels(states) == [0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 4]
    # reached the lowest level at the 8th sample; 3 more bad ones there, and audio only is offered
    assert [s["offerAudioOnly"] for s in states] == [False] * 10 + [True] * 2
    assert all(s["indicator"] == "weak" for s in states[1:])


def test_a_long_round_trip_counts_as_bad_like_loss() -> None:
    (states,) = run(runs=[[SLOW] * 4])["runs"]
    assert levels(states) == [0, 1, 1, 2]


def test_recovers_one_level_per_three_good_samples_and_withdraws_the_offer() -> None:
    (states,) = run(runs=[[BAD] * 12 + [GOOD] * 13])["runs"]
    up = states[12:]
    assert levels(up) == [4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0]
    assert not any(s["offerAudioOnly"] for s in up)
    assert up[-1]["indicator"] == "good"
    # slower up than down: more samples to climb than to fall
    assert len([s for s in up if s["level"] > 0]) > len([s for s in states[:12] if s["level"] < 4])


def test_fair_samples_hold_the_level_and_unknown_ones_change_nothing() -> None:
    (states,) = run(runs=[[BAD, BAD, FAIR, FAIR, FAIR, FAIR, UNKNOWN, UNKNOWN, BAD]])["runs"]
    assert levels(states) == [0, 1, 1, 1, 1, 1, 1, 1, 1]
    assert states[6] == {**states[5], "changed": False}


def test_a_flapping_link_does_not_move_the_level() -> None:
    (states,) = run(runs=[[BAD, GOOD] * 10])["runs"]
    assert set(levels(states)) == {0}


def test_any_sequence_stays_on_the_ladder_and_moves_at_most_one_step_per_sample() -> None:
    rng = random.Random(18)
    runs = [[rng.choice([BAD, SLOW, GOOD, FAIR, UNKNOWN, {"loss": rng.random(), "rttMs": rng.uniform(0, 2000)}])
             for _ in range(60)] for _ in range(150)]
    result = run(runs=runs)
    top = len(result["levels"]) - 1
    for states in result["runs"]:
        previous = 0
        for s in states:
            assert 0 <= s["level"] <= top
            assert abs(s["level"] - previous) <= 1
            assert s["changed"] == (s["level"] != previous)
            assert not s["offerAudioOnly"] or s["level"] == top
            previous = s["level"]


def test_encodings_of_the_levels() -> None:
    out = run(encodings=[0, 1, 4, 99, -3])
    assert out["encodings"][0] == {"scaleResolutionDownBy": 1, "maxBitrate": None}
    assert out["encodings"][1] == {"scaleResolutionDownBy": 1.5, "maxBitrate": 500_000}
    assert out["encodings"][2] == {"scaleResolutionDownBy": 4, "maxBitrate": 60_000}
    assert out["encodings"][3] == out["encodings"][2] and out["encodings"][4] == out["encodings"][0]
    scales = [lv["scale"] for lv in out["levels"]]
    rates = [lv["maxKbps"] or 10**9 for lv in out["levels"]]
    assert scales == sorted(scales) and rates == sorted(rates, reverse=True)


def test_network_advice_names_turn_over_tls_first() -> None:
    servers = [{"urls": ["stun:stun.example.org:3478"]},
               {"urls": ["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp",
                         "turns:turn.example.org:443?transport=tcp"], "username": "u", "credential": "c"}]
    rules, default_ports, none, junk = run(advice=[
        servers, [{"urls": "turns:t.example"}, {"urls": ["turn:[2001:db8::1]"]}], [], [{"urls": [42, "turn:bad host"]}],
    ])["advice"]
    assert rules == [{"key": "room.network.rule_tls", "host": "turn.example.org", "port": "443"},
                     {"key": "room.network.rule_turn", "host": "turn.example.org", "port": "3478"}]
    assert default_ports == [{"key": "room.network.rule_tls", "host": "t.example", "port": "5349"},
                             {"key": "room.network.rule_turn", "host": "[2001:db8::1]", "port": "3478"}]
    assert none == [{"key": "room.network.rule_udp"}]
    assert junk == [{"key": "room.network.rule_udp"}]


def stats(audio_sent: int, audio_lost: int, video_sent: int, video_lost: int, received: int, lost: int,
          video_bytes: int, rtt: float | None = 0.05, pair_rtt: float | None = None) -> list[dict]:
    entries = [
        {"type": "outbound-rtp", "kind": "audio", "packetsSent": audio_sent},
        {"type": "outbound-rtp", "kind": "video", "packetsSent": video_sent, "bytesSent": video_bytes, "frameWidth": 640},
        {"type": "remote-inbound-rtp", "kind": "audio", "packetsLost": audio_lost, "roundTripTime": rtt},
        {"type": "remote-inbound-rtp", "kind": "video", "packetsLost": video_lost, "roundTripTime": rtt},
        {"type": "inbound-rtp", "kind": "video", "packetsReceived": received, "packetsLost": lost},
        {"type": "candidate-pair", "selected": True, "state": "succeeded", "currentRoundTripTime": pair_rtt},
    ]
    if rtt is None:
        entries = [e for e in entries if e["type"] != "remote-inbound-rtp"]
    return entries


def test_loss_of_the_worse_kind_counts_for_what_we_send() -> None:
    """Video losses are repaired by retransmission before the peer counts them; audio shows the path."""
    (figures,) = run(readings=[[stats(0, 0, 0, 0, 0, 0, 0), stats(100, 10, 400, 4, 500, 50, 50_000), 2000]])["between"]
    assert figures["sendLoss"] == 0.1  # audio: 10 of 100; video only 1 %
    assert abs(figures["receiveLoss"] - 50 / 550) < 1e-9
    assert figures["sentKbps"] == 200  # 50,000 bytes in 2 s
    assert figures["rttMs"] == 50


def test_without_reports_from_the_peer_the_pair_gives_the_round_trip_and_loss_is_unknown() -> None:
    (figures,) = run(readings=[[stats(0, 0, 0, 0, 0, 0, 0, rtt=None, pair_rtt=0.2),
                                stats(100, 0, 100, 0, 0, 0, 1000, rtt=None, pair_rtt=0.2), 1000]])["between"]
    assert figures["rttMs"] == 200
    assert figures["sendLoss"] == 0 and figures["receiveLoss"] is None
