"""The relay's hot path: it accepts exactly the signals the full parser accepts, and the peer reads what was checked."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from roomserver.core import protocol as p
from roomserver.core.protocol import ProtocolError
from roomserver.core.relay import relay_target, relayed_frame, sender_prefix

SDP = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
OFFER = {"type": "signal", "to": "p_B", "data": {"description": {"type": "offer", "sdp": SDP}}}
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", "sdpMid": "0",
             "sdpMLineIndex": 0, "usernameFragment": "abcd"}

# Objects shaped like signals, most of them almost right: the relay must never be more lenient.
leaf = (st.none() | st.booleans() | st.integers(min_value=-3, max_value=70000) | st.floats(allow_nan=False)
        | st.sampled_from(["offer", "answer", "rollback", "pranswer", SDP, "p_B", "p B", "", "x" * 65])
        | st.text(max_size=12))
descriptions = st.fixed_dictionaries({}, optional={"type": leaf, "sdp": leaf, "extra": leaf}) | leaf
candidates = st.fixed_dictionaries({}, optional={
    "candidate": leaf, "sdpMid": leaf, "sdpMLineIndex": leaf, "usernameFragment": leaf, "port": leaf}) | leaf
datas = (st.fixed_dictionaries({}, optional={"description": descriptions, "candidate": candidates, "other": leaf})
         | leaf)
signal_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["signal", "signal", "Signal", "state"])},
    optional={"to": leaf, "data": datas, "from": leaf, "extra": leaf})


def _parsed(obj: dict) -> p.ClientMessage | ProtocolError:
    try:
        return p.parse_object(obj)
    except ProtocolError as exc:
        return exc


@settings(max_examples=1500, deadline=None)
@given(signal_like)
def test_relay_target_accepts_exactly_what_the_full_parser_accepts(obj: dict) -> None:
    to = relay_target(obj)
    parsed = _parsed(obj)
    if isinstance(parsed, p.Signal):
        assert to == parsed.to
    elif to is not None:
        # The one check left to the room: the id pattern of 'to' (no seat id can fail it).
        assert isinstance(parsed, ProtocolError) and "'to'" in parsed.message
    else:
        assert not isinstance(parsed, p.Signal)


def test_relay_target_takes_descriptions_and_candidates() -> None:
    assert relay_target(OFFER) == "p_B"
    assert relay_target({"type": "signal", "to": "p_B", "data": {"candidate": CANDIDATE}}) == "p_B"
    assert relay_target({"type": "signal", "to": "p_B", "data": {"candidate": None}}) == "p_B"
    assert relay_target({"type": "signal", "to": "p_B", "data": {"description": {"type": "rollback"}}}) == "p_B"


def test_relay_target_leaves_everything_else_to_the_full_parser() -> None:
    assert relay_target({**OFFER, "from": "p_C"}) is None  # a forged sender
    assert relay_target({"type": "signal", "to": "p_B", "data": {}}) is None
    assert relay_target({"type": "signal", "to": "p_B", "data": {"description": {"type": "offer"}}}) is None
    assert relay_target({"type": "signal", "to": "p_B", "data": {"description": {"type": "offer", "sdp": 1}}}) is None
    assert relay_target({"type": "signal", "to": 7, "data": OFFER["data"]}) is None
    assert relay_target({"type": "state", "to": "p_B", "data": OFFER["data"]}) is None
    assert relay_target({"type": "signal", "to": "p_B", "data": {"candidate": {**CANDIDATE, "port": 1}}}) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["", " ", "\n\t ", "\r\n"]), st.booleans())
def test_the_peer_reads_the_checked_signal_with_its_sender(sdp: str, space: str, binary: bool) -> None:
    try:
        text = space + orjson.dumps({**OFFER, "data": {"description": {"type": "answer", "sdp": sdp}}}).decode() + space
    except orjson.JSONEncodeError:
        return  # a lone surrogate: not encodable, so never a frame
    raw: str | bytes = text.encode() if binary else text
    obj = p.decode_frame(raw)
    assert relay_target(obj) == "p_B"
    frame = relayed_frame(sender_prefix("p_A"), raw)
    assert isinstance(frame, bytes)
    assert orjson.loads(frame) == {"from": "p_A", **obj}
    assert json.loads(frame) == {"from": "p_A", **obj}


def test_a_repeated_key_reaches_the_peer_as_the_value_that_was_checked() -> None:
    raw = ('{"type":"signal","to":"p_B","data":{"description":"forged"},'
           '"data":{"description":{"type":"offer","sdp":"v=0"}}}')
    obj = p.decode_frame(raw)
    assert relay_target(obj) == "p_B"
    assert json.loads(relayed_frame(sender_prefix("p_A"), raw))["data"] == {"description": {"type": "offer", "sdp": "v=0"}}


def test_an_escaped_from_key_is_still_a_from_key() -> None:
    raw = '{"type":"signal","to":"p_B","\\u0066rom":"p_C","data":{"candidate":null}}'
    assert relay_target(p.decode_frame(raw)) is None
