"""protocol.py: every client message valid and invalid, the builders, the codes, and fuzzing."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomserver.core import protocol as p
from roomserver.core.protocol import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    parse_client_message,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SDP = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CAND = {"candidate": "candidate:1 1 UDP 2122260223 192.0.2.1 54321 typ host", "sdpMid": "0",
        "sdpMLineIndex": 0}


def parse(obj: object, max_bytes: int = p.MAX_MESSAGE_BYTES) -> p.ClientMessage:
    return parse_client_message(orjson.dumps(obj), max_bytes)


def refused(obj: object | str | bytes, code: str = "bad_message", ref: str | None = "auto") -> ProtocolError:
    raw = obj if isinstance(obj, (str, bytes)) else orjson.dumps(obj)
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert info.value.code == code, info.value.message
    if ref == "auto":
        ref = obj.get("type") if isinstance(obj, dict) and obj.get("type") in p.CLIENT_TYPES else None
    assert info.value.ref == ref
    return info.value


# --- valid messages ------------------------------------------------------------------


def test_join_with_and_without_name() -> None:
    assert parse({"type": "join", "token": "eyJ.x.y"}) == p.Join("eyJ.x.y", None)
    assert parse({"type": "join", "token": "eyJ.x.y", "name": "  Ayşe  "}) == p.Join("eyJ.x.y", "Ayşe")
    assert parse({"type": "join", "token": "t", "name": None}) == p.Join("t", None)


def test_join_name_is_normalised_to_nfc() -> None:
    decomposed = "Ays\u0327e"  # s + combining cedilla
    assert parse({"type": "join", "token": "t", "name": decomposed}).name == "Ayşe"


def test_join_name_keeps_zero_width_non_joiner() -> None:
    # Persian names need ZWNJ (a format character, not a control).
    name = "\u0645\u06cc\u200c\u0631\u0648\u0645"
    assert parse({"type": "join", "token": "t", "name": name}).name == name


def test_resume() -> None:
    assert parse({"type": "resume", "secret": "rs_abc"}) == p.Resume("rs_abc")


def test_signal_description_and_candidates() -> None:
    offer = parse({"type": "signal", "to": "p_Kd93h2", "data": {"description": {"type": "offer", "sdp": SDP}}})
    assert offer == p.Signal("p_Kd93h2", {"description": {"type": "offer", "sdp": SDP}})
    answer = parse({"type": "signal", "to": "p_a", "data": {"description": {"type": "answer", "sdp": SDP}}})
    assert answer.data["description"]["type"] == "answer"
    assert parse({"type": "signal", "to": "p_a", "data": {"description": {"type": "rollback"}}}).data == {
        "description": {"type": "rollback"}}
    assert parse({"type": "signal", "to": "p_a", "data": {"description": {"type": "rollback", "sdp": ""}}})
    full = dict(CAND, usernameFragment="abcd")
    assert parse({"type": "signal", "to": "p_a", "data": {"candidate": full}}).data == {"candidate": full}
    nulls = {"candidate": "", "sdpMid": None, "sdpMLineIndex": None, "usernameFragment": None}
    assert parse({"type": "signal", "to": "p_a", "data": {"candidate": nulls}}).data == {"candidate": nulls}
    assert parse({"type": "signal", "to": "p_a", "data": {"candidate": {"candidate": "x"}}})
    assert parse({"type": "signal", "to": "p_a", "data": {"candidate": None}}).data == {"candidate": None}


def test_signal_at_the_limits() -> None:
    sdp = "a" * p.MAX_SDP_CHARS
    assert parse({"type": "signal", "to": "p" * 64, "data": {"description": {"type": "offer", "sdp": sdp}}})
    line = "c" * p.MAX_CANDIDATE_CHARS
    cand = {"candidate": line, "sdpMid": "m" * 64, "sdpMLineIndex": 65535, "usernameFragment": "u" * 256}
    assert parse({"type": "signal", "to": "p_a", "data": {"candidate": cand}})


def test_state_partial_and_full() -> None:
    assert parse({"type": "state"}) == p.State()
    msg = parse({"type": "state", "mic": False, "hand": True})
    assert msg == p.State(mic=False, hand=True)
    assert msg.fields() == {"mic": False, "hand": True}
    full = parse({"type": "state", "mic": True, "camera": False, "screen": False, "hand": False})
    assert full.fields() == {"mic": True, "camera": False, "screen": False, "hand": False}


def test_stats() -> None:
    msg = parse({"type": "stats", "peers": {"p_Kd93h2": {"rtt_ms": 23.5, "loss": 0.01, "bitrate_kbps": 1450,
                                                          "state": "connected"}}})
    assert msg == p.Stats({"p_Kd93h2": p.PeerStats(rtt_ms=23.5, loss=0.01, bitrate_kbps=1450, state="connected")})
    assert msg.peers["p_Kd93h2"].as_dict() == {"rtt_ms": 23.5, "loss": 0.01, "bitrate_kbps": 1450,
                                               "state": "connected"}
    every = {"rtt_ms": 0, "jitter_ms": 60000, "loss": 1, "bitrate_kbps": 0.0, "fps": 30,
             "state": "failed", "candidate_type": "relay"}
    assert parse({"type": "stats", "peers": {"p_a": every}}).peers["p_a"].as_dict() == every
    assert parse({"type": "stats", "peers": {}}) == p.Stats({})
    eight = {f"p_{i}": {} for i in range(8)}
    assert len(parse({"type": "stats", "peers": eight}).peers) == 8


def test_moderator_actions_ping_leave() -> None:
    assert parse({"type": "admit", "peer": "p_W8x1Qe"}) == p.Admit("p_W8x1Qe")
    assert parse({"type": "deny", "peer": "p_W8x1Qe"}) == p.Deny("p_W8x1Qe")
    assert parse({"type": "remove", "peer": "p_Kd93h2"}) == p.Remove("p_Kd93h2")
    assert parse({"type": "end"}) == p.End()
    assert parse({"type": "leave"}) == p.Leave()
    assert parse({"type": "ping", "id": 17}) == p.Ping(17)
    assert parse({"type": "ping", "id": "abc"}) == p.Ping("abc")
    assert parse({"type": "ping"}) == p.Ping(None)


def test_str_and_bytes_frames_parse_alike() -> None:
    raw = '{"type":"join","token":"t","name":"Ayşe"}'
    assert parse_client_message(raw) == parse_client_message(raw.encode()) == p.Join("t", "Ayşe")


def test_messages_are_frozen() -> None:
    msg = parse({"type": "admit", "peer": "p_a"})
    with pytest.raises(AttributeError):
        msg.peer = "p_b"  # type: ignore[misc]


def test_every_doc_example_parses() -> None:
    """The client examples of docs/protocol.md are valid (the doc and the parser agree)."""
    text = DOC.read_text(encoding="utf-8")
    client = text.split("## Client → server", 1)[1].split("## Server → client", 1)[0]
    examples = [line for block in re.findall(r"```json\n(.*?)```", client, re.S)
                for line in block.splitlines() if line.strip()]
    assert len(examples) >= 12
    for line in examples:
        msg = orjson.loads(line.replace("…", ""))
        assert p.message_type(parse(msg)) == msg["type"]


# --- invalid frames -------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b'{"type":"join",}', b"\xff\xfe", b"NaN",
                                 b'{"type":"ping","id":NaN}', b'{"type":"ping","id":Infinity}',
                                 b'{"type":"ping","id":1e400}', '"\ud800"', b"[]", b"null", b"42",
                                 b'"join"', b'[{"type":"leave"}]'])
def test_bad_json(raw: bytes | str) -> None:
    refused(raw, "bad_json", None)


def test_type_missing_or_not_a_string() -> None:
    refused({"token": "t"}, "bad_message", None)
    refused({"type": 1}, "bad_message", None)
    refused({"type": None}, "bad_message", None)
    refused({"type": ["join"]}, "bad_message", None)


@pytest.mark.parametrize("kind", ["JOIN", "hello", "", "welcome", "pong", "signal "])
def test_unknown_type(kind: str) -> None:
    err = refused({"type": kind}, "unknown_type", None)
    assert kind not in err.message or not kind  # the client's string is not echoed


def test_message_too_large_counts_utf8_bytes() -> None:
    limit = 1000
    small = orjson.dumps({"type": "join", "token": "t" * (limit - 40)})
    assert len(small) <= limit
    parse_client_message(small, limit)
    parse_client_message(small.decode(), limit)
    big = orjson.dumps({"type": "join", "token": "t" * limit})
    for raw in (big, big.decode()):
        with pytest.raises(ProtocolError) as info:
            parse_client_message(raw, limit)
        assert info.value.code == "message_too_large"
    # 626 characters but 1226 bytes: too large although len(str) is under the limit.
    wide = '{"type":"join","token":"' + "é" * 600 + '"}'
    assert len(wide) < limit < len(wide.encode())
    with pytest.raises(ProtocolError) as info:
        parse_client_message(wide, limit)
    assert info.value.code == "message_too_large"


def test_unknown_fields_are_rejected_everywhere() -> None:
    refused({"type": "join", "token": "t", "extra": 1})
    refused({"type": "resume", "secret": "rs_x", "token": "t"})
    refused({"type": "signal", "to": "p_a", "data": {"candidate": None}, "from": "p_b"})
    refused({"type": "signal", "to": "p_a", "data": {"candidate": None, "x": 1}})
    refused({"type": "signal", "to": "p_a", "data": {"description": {"type": "offer", "sdp": "", "x": 1}}})
    refused({"type": "signal", "to": "p_a", "data": {"candidate": dict(CAND, foundation="1")}})
    refused({"type": "state", "mic": True, "volume": 3})
    refused({"type": "stats", "peers": {}, "at": 1})
    refused({"type": "stats", "peers": {"p_a": {"rtt": 1}}})
    refused({"type": "admit", "peer": "p_a", "reason": "x"})
    refused({"type": "end", "reason": "moderator"})
    refused({"type": "leave", "now": True})
    refused({"type": "ping", "id": 1, "ts": 2})


def test_join_invalid() -> None:
    refused({"type": "join"})
    refused({"type": "join", "token": None})
    refused({"type": "join", "token": ""})
    refused({"type": "join", "token": 12})
    refused({"type": "join", "token": "t" * (p.MAX_TOKEN_CHARS + 1)})
    assert parse({"type": "join", "token": "t" * p.MAX_TOKEN_CHARS})
    refused({"type": "join", "token": "t", "name": 5})
    refused({"type": "join", "token": "t", "name": ""})
    refused({"type": "join", "token": "t", "name": "   "})
    refused({"type": "join", "token": "t", "name": "x" * 65})
    assert parse({"type": "join", "token": "t", "name": "x" * 64})
    for bad in ("Ay\x00se", "Ay\nse", "Ay\tse", "A\x7fB", "A\x85B", "Ay\u2028se", "evil\u202egnp.exe", "a\u2066b"):
        refused({"type": "join", "token": "t", "name": bad})


def test_resume_invalid() -> None:
    refused({"type": "resume"})
    refused({"type": "resume", "secret": ""})
    refused({"type": "resume", "secret": 1})
    refused({"type": "resume", "secret": "s" * 129})


@pytest.mark.parametrize("data", [
    None, [], "offer", {},
    {"description": {"type": "offer", "sdp": SDP}, "candidate": None},
    {"description": None},
    {"description": "v=0"},
    {"description": {"sdp": SDP}},
    {"description": {"type": "pranswer", "sdp": SDP}},
    {"description": {"type": "OFFER", "sdp": SDP}},
    {"description": {"type": "offer"}},
    {"description": {"type": "answer", "sdp": None}},
    {"description": {"type": "offer", "sdp": 5}},
    {"description": {"type": "offer", "sdp": "a" * (p.MAX_SDP_CHARS + 1)}},
    {"candidate": "candidate:1 1 UDP 1 192.0.2.1 1 typ host"},
    {"candidate": []},
    {"candidate": {}},
    {"candidate": {"candidate": None}},
    {"candidate": {"candidate": "c" * (p.MAX_CANDIDATE_CHARS + 1)}},
    {"candidate": dict(CAND, sdpMid=0)},
    {"candidate": dict(CAND, sdpMid="m" * 65)},
    {"candidate": dict(CAND, sdpMLineIndex=True)},
    {"candidate": dict(CAND, sdpMLineIndex=0.0)},
    {"candidate": dict(CAND, sdpMLineIndex="0")},
    {"candidate": dict(CAND, sdpMLineIndex=-1)},
    {"candidate": dict(CAND, sdpMLineIndex=65536)},
    {"candidate": dict(CAND, usernameFragment=7)},
    {"candidate": dict(CAND, usernameFragment="u" * 257)},
    {"other": 1},
])
def test_signal_data_invalid(data: object) -> None:
    refused({"type": "signal", "to": "p_a", "data": data})


@pytest.mark.parametrize("to", [None, 1, "", "p" * 65, "p a", "p_ä", "p/x", "p\"x", ["p_a"]])
def test_signal_target_invalid(to: object) -> None:
    refused({"type": "signal", "to": to, "data": {"candidate": None}})


def test_signal_missing_fields() -> None:
    refused({"type": "signal", "data": {"candidate": None}})
    refused({"type": "signal", "to": "p_a"})
    refused({"type": "signal"})


def test_state_invalid() -> None:
    for value in (1, 0, "true", [], {}):
        refused({"type": "state", "mic": value})


@pytest.mark.parametrize("peers", [
    None, [], "p_a", {"p a": {}}, {"p_a": []}, {"p_a": None},
    {f"p_{i}": {} for i in range(9)},
    {"p_a": {"rtt_ms": -1}}, {"p_a": {"rtt_ms": 60001}}, {"p_a": {"rtt_ms": True}},
    {"p_a": {"rtt_ms": "1"}}, {"p_a": {"rtt_ms": None}}, {"p_a": {"loss": 1.5}},
    {"p_a": {"loss": -0.1}}, {"p_a": {"bitrate_kbps": 100_001}}, {"p_a": {"fps": 241}},
    {"p_a": {"state": "up"}}, {"p_a": {"state": 1}}, {"p_a": {"candidate_type": "turn"}},
])
def test_stats_invalid(peers: object) -> None:
    refused({"type": "stats", "peers": peers})


def test_stats_missing_peers() -> None:
    refused({"type": "stats"})


def test_stats_rejects_huge_integer_even_if_decoded_as_float() -> None:
    refused(b'{"type":"stats","peers":{"p_a":{"rtt_ms":123456789012345678901234567890}}}', ref="stats")


def test_peer_actions_invalid() -> None:
    for kind in ("admit", "deny", "remove"):
        refused({"type": kind})
        refused({"type": kind, "peer": None})
        refused({"type": kind, "peer": 3})
        refused({"type": kind, "peer": "x" * 65})


def test_ping_invalid() -> None:
    for pid in (True, 1.5, 2**53, -(2**53), "x" * 65, [], {}):
        refused({"type": "ping", "id": pid})


def test_error_of_protocol_error() -> None:
    err = refused({"type": "admit"})
    assert err.to_message() == {"type": "error", "code": "bad_message", "message": err.message, "ref": "admit"}
    assert err.status == 400
    tl = refused(b"[1]", "bad_json", None)
    assert "ref" not in tl.to_message()


# --- builders ---------------------------------------------------------------------------


def test_builders_match_the_doc_shapes() -> None:
    peer = {"id": "p_W8x1Qe", "name": "Ayşe", "role": "citizen",
            "state": {"mic": True, "camera": True, "screen": False, "hand": False}, "connection": "online"}
    w = p.welcome(self_={"id": "p_K"}, room={"id": "r_x"}, peers=[peer], ice_servers=[], resume_secret="rs_a",
                  resumed=False)
    assert w == {"type": "welcome", "self": {"id": "p_K"}, "room": {"id": "r_x"}, "peers": [peer],
                 "ice_servers": [], "resume_secret": "rs_a", "resumed": False}
    assert p.waiting(self_={"id": "p_W"}, room={"id": "r_x"}, resume_secret="rs_b") == {
        "type": "waiting", "self": {"id": "p_W"}, "room": {"id": "r_x"}, "resume_secret": "rs_b"}
    assert p.lobby([]) == {"type": "lobby", "waiting": []}
    assert p.peer_joined(peer) == {"type": "peer-joined", "peer": peer}
    assert p.peer_left("p_W", "timeout") == {"type": "peer-left", "peer": "p_W", "reason": "timeout"}
    assert p.peer_reconnecting("p_W") == {"type": "peer-reconnecting", "peer": "p_W"}
    assert p.peer_resumed("p_W") == {"type": "peer-resumed", "peer": "p_W"}
    assert p.peer_state("p_W", {"mic": False}) == {"type": "peer-state", "peer": "p_W", "state": {"mic": False}}
    assert p.pong(17) == {"type": "pong", "id": 17}
    assert p.pong() == {"type": "pong"}
    assert p.denied() == {"type": "denied"}
    assert p.removed() == {"type": "removed"}
    assert p.ended("moderator") == {"type": "ended", "reason": "moderator"}
    assert p.error(ErrorCode.NOT_IN_ROOM, "Peer p_zzz is not in this room.", "signal") == {
        "type": "error", "code": "not_in_room", "message": "Peer p_zzz is not in this room.", "ref": "signal"}


def test_dumps_is_compact_utf8_json() -> None:
    msg = p.peer_joined({"id": "p_a", "name": "Ayşe"})
    assert p.dumps(msg) == '{"type":"peer-joined","peer":{"id":"p_a","name":"Ayşe"}}'
    assert p.dumpb(msg) == p.dumps(msg).encode()
    assert p.dumps(p.error(ErrorCode.FORBIDDEN, "no")) == '{"type":"error","code":"forbidden","message":"no"}'


# --- codes ---------------------------------------------------------------------------------


def _doc_table(section: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8").split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)`", text, re.M)


def test_close_codes_are_those_of_the_doc() -> None:
    doc_codes = {int(c) for c in _doc_table("Close codes")}
    assert doc_codes == {int(c) for c in CloseCode}
    assert CloseCode.REPLACED is CloseCode.IDENTITY_IN_USE == 4409
    assert (CloseCode.DENIED, CloseCode.REMOVED, CloseCode.ROOM_ENDED) == (4403, 4410, 4411)


def test_error_codes_are_those_of_the_doc() -> None:
    doc_codes = set(_doc_table("Error codes"))
    doc_codes.discard("token_*")
    assert doc_codes <= {c.value for c in ErrorCode}


@pytest.mark.parametrize(("code", "ref", "joined", "close"), [
    ("identity_in_use", "join", False, 4409),
    ("resume_unknown", "resume", False, 4412),
    ("room_ended", "join", False, 4401),
    ("room_ended", "resume", False, 4411),
    ("room_full", "join", False, 4401),
    ("room_not_found", "join", False, 4401),
    ("token_expired", "join", False, 4401),
    ("not_joined", "signal", False, 4002),
    ("bad_json", None, False, 4002),
    ("bad_message", "join", False, 4002),
    ("not_in_room", "signal", True, None),
    ("room_full", "admit", True, None),
    ("bad_json", None, True, None),
])
def test_fatal_close(code: str, ref: str | None, joined: bool, close: int | None) -> None:
    assert p.fatal_close(code, ref, joined=joined) == close


# --- property tests --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
field_names = st.sampled_from(["type", "token", "name", "secret", "to", "data", "peer", "peers", "id", "mic",
                               "camera", "description", "candidate", "sdp", "sdpMid", "sdpMLineIndex",
                               "usernameFragment", "rtt_ms", "loss", "state"]) | st.text(max_size=8)
shaped_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["offer", "answer", "rollback", "p_a", "connected", "relay", "", SDP]) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(field_names, children, max_size=5),
    max_leaves=20,
)
typed_messages = st.builds(
    lambda kind, rest: {**rest, "type": kind},
    st.sampled_from(sorted(p.CLIENT_TYPES)),
    st.dictionaries(field_names, shaped_values, max_size=4),
)


def _only_protocol_errors(raw: str | bytes) -> None:
    try:
        msg = parse_client_message(raw, 4096)
    except ProtocolError as exc:
        assert exc.code in {"bad_json", "bad_message", "unknown_type", "message_too_large"}
        assert isinstance(exc.message, str) and exc.message
        assert exc.ref is None or exc.ref in p.CLIENT_TYPES
    else:
        assert isinstance(msg, (p.Join, p.Resume, p.Signal, p.State, p.Stats, p.Admit, p.Deny, p.Remove, p.End,
                                p.Ping, p.Leave))


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fuzz_random_json_only_raises_protocol_error(value: object) -> None:
    raw = orjson.dumps(value)
    _only_protocol_errors(raw)
    _only_protocol_errors(raw.decode())


@settings(max_examples=600, deadline=None)
@given(typed_messages)
def test_fuzz_messages_of_known_types_only_raise_protocol_error(value: dict) -> None:
    _only_protocol_errors(orjson.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzz_random_frames_only_raise_protocol_error(raw: bytes | str) -> None:
    _only_protocol_errors(raw)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([
    {"type": "signal", "to": "p_a", "data": {"description": {"type": "offer", "sdp": SDP}}},
    {"type": "signal", "to": "p_a", "data": {"candidate": dict(CAND, usernameFragment="abcd")}},
    {"type": "join", "token": "t", "name": "Ayşe"},
    {"type": "stats", "peers": {"p_a": {"rtt_ms": 1, "state": "connected"}}},
    {"type": "state", "mic": True},
]), st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=3))
def test_fuzz_corrupted_valid_frames_only_raise_protocol_error(msg: dict, at: int, junk: bytes) -> None:
    raw = orjson.dumps(msg)
    at %= len(raw)
    _only_protocol_errors(raw[:at] + junk + raw[at + 1:])
    _only_protocol_errors(raw[:at])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["offer", "answer"]), st.text(max_size=200),
       st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=64))
def test_valid_signals_round_trip(kind: str, sdp: str, to: str) -> None:
    try:
        sdp.encode()
    except UnicodeEncodeError:
        return
    data = {"description": {"type": kind, "sdp": sdp}}
    msg = parse({"type": "signal", "to": to, "data": data})
    assert msg == p.Signal(to, data)
