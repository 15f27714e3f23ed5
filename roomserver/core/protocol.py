"""Message shapes of the signalling protocol (docs/protocol.md): parse, build, close codes.

This is the ground floor of the WebSocket edge: it knows what a valid frame looks
like and nothing about rooms, sockets or time, so it is tested without I/O and
every edge (server socket, Python participant) shares the one definition.

Parsing is strict and hand-written rather than schema-driven because ``signal``
is on the hot path: every relayed offer, answer and ICE candidate goes through
``parse_client_message``. A frame either becomes a frozen dataclass or raises
``ProtocolError`` carrying an error code of the doc; nothing else escapes.

Policy for fields the doc does not name: **rejected** with ``bad_message``,
at every level (top level, ``signal.data``, descriptions, candidates, stats).
A typo in a client then shows up as an error at once instead of as a field that
silently does nothing, and what ``signal`` forwards is exactly what was checked.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Final, Mapping, Union

import orjson

from .errors import RoomServerError

# --- limits (the Limits table of docs/protocol.md) ---------------------------

MAX_MESSAGE_BYTES: Final = 65536
MAX_TOKEN_CHARS: Final = 4096
MAX_SECRET_CHARS: Final = 128
MAX_ID_CHARS: Final = 64
MAX_NAME_CHARS: Final = 64
MAX_SDP_CHARS: Final = 32768
MAX_CANDIDATE_CHARS: Final = 1024
MAX_SDP_MID_CHARS: Final = 64
MAX_UFRAG_CHARS: Final = 256
MAX_SDP_MLINE_INDEX: Final = 65535
MAX_STATS_PEERS: Final = 8
MAX_PING_ID = 2**53 - 1  # integers a JavaScript client can represent exactly

STATE_FIELDS: Final = ("mic", "camera", "screen", "hand")
DESCRIPTION_TYPES: Final = frozenset({"offer", "answer", "rollback"})

# Bounded numeric fields of one ``stats.peers`` entry: name -> (min, max).
STATS_NUMBERS: Final[Mapping[str, tuple[float, float]]] = {
    "rtt_ms": (0, 60_000),
    "jitter_ms": (0, 60_000),
    "loss": (0, 1),
    "bitrate_kbps": (0, 100_000),
    "fps": (0, 240),
}
# Enumerated text fields of one ``stats.peers`` entry.
STATS_CHOICES: Final[Mapping[str, frozenset[str]]] = {
    # RTCPeerConnection.connectionState
    "state": frozenset({"new", "connecting", "connected", "disconnected", "failed", "closed"}),
    # type of the local candidate of the selected pair: "relay" means TURN is in use
    "candidate_type": frozenset({"host", "srflx", "prflx", "relay"}),
}

# Seat ids, room ids: short, URL-safe, printable. The server mints them with
# secrets.token_urlsafe, so a valid id never needs JSON escaping.
_is_id = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch
# C0/C1 controls, line/paragraph separators and bidi embeddings/overrides/isolates:
# none belongs in a display name (the last can make a name render as another).
_NAME_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]").search


# --- codes ---------------------------------------------------------------------


class CloseCode(IntEnum):
    """WebSocket close codes of docs/protocol.md."""

    NORMAL = 1000  # the participant left
    GOING_AWAY = 1001  # server shutting down; resume when it is back
    MESSAGE_TOO_BIG = 1009  # frame over the WebSocket frame limit
    TRY_AGAIN = 1013  # this server cannot serve the room right now (store or cluster unavailable): resume shortly
    JOIN_TIMEOUT = 4001  # no join/resume within the join timeout
    PROTOCOL_VIOLATION = 4002  # protocol violation before joining
    TOKEN_REFUSED = 4401  # the join token was refused (the error names why)
    DENIED = 4403  # denied from the waiting room
    IDENTITY_IN_USE = 4409  # identity already in the room ...
    REPLACED = 4409  # ... or this seat was resumed on another socket (alias)
    REMOVED = 4410  # removed by a moderator
    ROOM_ENDED = 4411  # the room has ended
    RESUME_UNKNOWN = 4412  # resume secret unknown or expired
    RATE_LIMITED = 4429  # sustained rate-limit abuse


class ErrorCode(StrEnum):
    """``error.code`` values of docs/protocol.md (token refusals are ``token_*``)."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    MESSAGE_TOO_LARGE = "message_too_large"
    RATE_LIMITED = "rate_limited"
    NOT_IN_ROOM = "not_in_room"
    FORBIDDEN = "forbidden"
    NOT_WAITING = "not_waiting"
    ALREADY_JOINED = "already_joined"
    NOT_JOINED = "not_joined"
    ROOM_ENDED = "room_ended"
    ROOM_FULL = "room_full"
    ROOM_NOT_FOUND = "room_not_found"
    IDENTITY_IN_USE = "identity_in_use"
    RESUME_UNKNOWN = "resume_unknown"
    UNAVAILABLE = "unavailable"  # the cluster's live state (Redis) cannot be reached; resume shortly
    STORE_UNAVAILABLE = "store_unavailable"  # the database cannot be reached; try again shortly
    # expert calls (moderators)
    UNKNOWN_DEPARTMENT = "unknown_department"
    UNKNOWN_LANGUAGE = "unknown_language"
    CALL_IN_PROGRESS = "call_in_progress"
    CALL_OVER = "call_over"
    CALL_NOT_MISSED = "call_not_missed"
    CALLS_UNAVAILABLE = "calls_unavailable"


def fatal_close(code: str, ref: str | None, *, joined: bool) -> CloseCode | None:
    """The close code that must follow an ``error`` with ``code``, or None if the socket stays open.

    Encodes the "fatal" column of the doc's error table in one place. Before a
    socket has a seat every error is fatal (nothing but join/resume is allowed
    yet, and a half-open unauthenticated socket is only a cost); after, only
    ``rate_limited`` abuse closes, and the edge decides that itself.
    """
    if joined:
        return None
    if code in (ErrorCode.UNAVAILABLE, ErrorCode.STORE_UNAVAILABLE):
        return CloseCode.TRY_AGAIN
    if code == ErrorCode.IDENTITY_IN_USE:
        return CloseCode.IDENTITY_IN_USE
    if code == ErrorCode.RESUME_UNKNOWN:
        return CloseCode.RESUME_UNKNOWN
    if code == ErrorCode.ROOM_ENDED:
        return CloseCode.ROOM_ENDED if ref == "resume" else CloseCode.TOKEN_REFUSED
    if code.startswith("token_") or code in (ErrorCode.ROOM_FULL, ErrorCode.ROOM_NOT_FOUND):
        return CloseCode.TOKEN_REFUSED
    return CloseCode.PROTOCOL_VIOLATION


class ProtocolError(RoomServerError):
    """A frame that is not a valid client message; the edge answers ``error(code, message, ref)``.

    ``ref`` is the message type when the frame named a known one, else None.
    """

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(code, message, 400)
        self.ref = ref

    def to_message(self) -> dict[str, Any]:
        """The ``error`` message to send back."""
        return error(self.code, self.message, self.ref)


# --- client -> server messages ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Join:
    """First message: a token, and for citizens the name they typed (already cleaned)."""

    token: str
    name: str | None = None
    room: str | None = None  # the room the client means to enter (from the join link); checked against the token


@dataclass(frozen=True, slots=True)
class Resume:
    """First message after a drop: the seat's resume secret."""

    secret: str


@dataclass(frozen=True, slots=True)
class Signal:
    """An SDP description or ICE candidate for one peer.

    ``data`` is the parsed object itself, checked to hold exactly one of
    ``description`` / ``candidate`` and no other field at any level, so it can be
    forwarded as is. Treat it as read-only.
    """

    to: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class State:
    """The sender's own media state; None = field not sent, keep the old value."""

    mic: bool | None = None
    camera: bool | None = None
    screen: bool | None = None
    hand: bool | None = None

    def fields(self) -> dict[str, bool]:
        """Only the fields the client sent."""
        return {k: v for k in STATE_FIELDS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True)
class PeerStats:
    """Connection figures of the sender towards one peer (None = not reported)."""

    rtt_ms: float | None = None
    jitter_ms: float | None = None
    loss: float | None = None
    bitrate_kbps: float | None = None
    fps: float | None = None
    state: str | None = None
    candidate_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The reported fields only, for the dashboard."""
        return {k: v for k in _STATS_FIELDS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True, slots=True)
class Stats:
    """Per-peer connection figures; kept for monitoring, never relayed."""

    peers: dict[str, PeerStats]


@dataclass(frozen=True, slots=True)
class Admit:
    peer: str


@dataclass(frozen=True, slots=True)
class Deny:
    peer: str


@dataclass(frozen=True, slots=True)
class Remove:
    peer: str


@dataclass(frozen=True, slots=True)
class End:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    """Application heartbeat; ``id`` (int or short string, optional) is echoed in ``pong``."""

    id: int | str | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    pass


@dataclass(frozen=True, slots=True)
class Call:
    """A moderator rings a department's experts (``kind`` department) or interpreters (``kind`` language)."""

    kind: str
    target: str


@dataclass(frozen=True, slots=True)
class CallCancel:
    call: str


@dataclass(frozen=True, slots=True)
class Callback:
    """After a call nobody took: leave a callback request on the department's desks."""

    call: str


ClientMessage = Union[Join, Resume, Signal, State, Stats, Admit, Deny, Remove, End, Ping, Leave, Call, CallCancel,
                      Callback]

_STATS_FIELDS = tuple(STATS_NUMBERS) + tuple(STATS_CHOICES)
_MISSING: Any = object()


def _bad(ref: str, message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_MESSAGE, message, ref)


def _check_keys(obj: dict, allowed: frozenset[str], ref: str, where: str) -> None:
    """Reject fields the doc does not name (see module docstring)."""
    if not allowed.issuperset(obj):
        extra = sorted(k for k in obj if k not in allowed)
        shown = ", ".join(repr(k[:32]) for k in extra[:3])
        raise _bad(ref, f"Unknown field in {where}: {shown}.")


def _text(obj: dict, key: str, ref: str, limit: int, *, required: bool = True) -> str | None:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise _bad(ref, f"Field '{key}' is required.")
        return None
    if type(value) is not str:
        raise _bad(ref, f"Field '{key}' must be a string.")
    if len(value) > limit:
        raise _bad(ref, f"Field '{key}' is longer than {limit} characters.")
    return value


def _peer_id(obj: dict, key: str, ref: str) -> str:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise _bad(ref, f"Field '{key}' is required.")
    if type(value) is not str or not _is_id(value):
        raise _bad(ref, f"Field '{key}' must be an id (1-64 characters of A-Z a-z 0-9 _ -).")
    return value


def clean_name(value: str) -> str:
    """A display name fit to show to others: trimmed, NFC, 1-64 characters, no controls.

    Raises ValueError otherwise. Also meant for the token's ``name`` claim, so
    every name a peer sees went through the same rule.
    """
    if len(value) > 4 * MAX_NAME_CHARS:  # bound the normalisation work
        raise ValueError(f"name is longer than {MAX_NAME_CHARS} characters")
    name = unicodedata.normalize("NFC", value.strip())
    if not name:
        raise ValueError("name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"name is longer than {MAX_NAME_CHARS} characters")
    if _NAME_FORBIDDEN(name):
        raise ValueError("name contains control characters")
    return name


# Per-type parsers. Each gets the decoded top-level dict (with a valid "type").

_JOIN_KEYS = frozenset({"type", "token", "name", "room"})
_RESUME_KEYS = frozenset({"type", "secret"})
_SIGNAL_KEYS = frozenset({"type", "to", "data"})
_STATE_KEYS = frozenset({"type", *STATE_FIELDS})
_STATS_KEYS = frozenset({"type", "peers"})
_PEER_KEYS = frozenset({"type", "peer"})
_TYPE_ONLY = frozenset({"type"})
_PING_KEYS = frozenset({"type", "id"})
_DESCRIPTION_KEYS = frozenset({"type", "sdp"})
_CANDIDATE_KEYS = frozenset({"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"})
_PEER_STATS_KEYS = frozenset(_STATS_FIELDS)


def _parse_join(obj: dict) -> Join:
    _check_keys(obj, _JOIN_KEYS, "join", "join")
    token = _text(obj, "token", "join", MAX_TOKEN_CHARS)
    if not token:
        raise _bad("join", "Field 'token' must not be empty.")
    name = obj.get("name")
    if name is not None:
        if type(name) is not str:
            raise _bad("join", "Field 'name' must be a string.")
        try:
            name = clean_name(name)
        except ValueError as exc:
            raise _bad("join", f"Field 'name' is not a valid name: {exc}.") from None
    room = _text(obj, "room", "join", MAX_ID_CHARS, required=False)
    return Join(token, name, room)


def _parse_resume(obj: dict) -> Resume:
    _check_keys(obj, _RESUME_KEYS, "resume", "resume")
    secret = _text(obj, "secret", "resume", MAX_SECRET_CHARS)
    if not secret:
        raise _bad("resume", "Field 'secret' must not be empty.")
    return Resume(secret)


def check_description(desc: Any) -> None:
    if type(desc) is not dict:
        raise _bad("signal", "'data.description' must be an object.")
    if not _DESCRIPTION_KEYS.issuperset(desc):
        _check_keys(desc, _DESCRIPTION_KEYS, "signal", "data.description")
    kind = desc.get("type")
    if type(kind) is not str or kind not in DESCRIPTION_TYPES:
        raise _bad("signal", "'data.description.type' must be 'offer', 'answer' or 'rollback'.")
    sdp = desc.get("sdp", _MISSING)
    if sdp is _MISSING:
        if kind != "rollback":
            raise _bad("signal", "'data.description.sdp' is required.")
    elif type(sdp) is not str:
        raise _bad("signal", "'data.description.sdp' must be a string.")
    elif len(sdp) > MAX_SDP_CHARS:
        raise _bad("signal", f"'data.description.sdp' is longer than {MAX_SDP_CHARS} characters.")


def check_candidate(cand: Any) -> None:
    if cand is None:  # end of candidates
        return
    if type(cand) is not dict:
        raise _bad("signal", "'data.candidate' must be an object or null.")
    if not _CANDIDATE_KEYS.issuperset(cand):
        _check_keys(cand, _CANDIDATE_KEYS, "signal", "data.candidate")
    line = cand.get("candidate")
    if type(line) is not str:
        raise _bad("signal", "'data.candidate.candidate' must be a string.")
    if len(line) > MAX_CANDIDATE_CHARS:
        raise _bad("signal", f"'data.candidate.candidate' is longer than {MAX_CANDIDATE_CHARS} characters.")
    mid = cand.get("sdpMid")
    if mid is not None and (type(mid) is not str or len(mid) > MAX_SDP_MID_CHARS):
        raise _bad("signal", f"'data.candidate.sdpMid' must be a string of at most {MAX_SDP_MID_CHARS} characters or null.")
    index = cand.get("sdpMLineIndex")
    if index is not None and (type(index) is not int or not 0 <= index <= MAX_SDP_MLINE_INDEX):
        raise _bad("signal", f"'data.candidate.sdpMLineIndex' must be an integer 0-{MAX_SDP_MLINE_INDEX} or null.")
    ufrag = cand.get("usernameFragment")
    if ufrag is not None and (type(ufrag) is not str or len(ufrag) > MAX_UFRAG_CHARS):
        raise _bad("signal", f"'data.candidate.usernameFragment' must be a string of at most {MAX_UFRAG_CHARS} characters or null.")


def _parse_signal(obj: dict) -> Signal:
    # Hot path: cheap direct checks, the common valid frame takes no detour.
    if len(obj) != 3 or not _SIGNAL_KEYS.issuperset(obj):
        _check_keys(obj, _SIGNAL_KEYS, "signal", "signal")
        raise _bad("signal", "Fields 'to' and 'data' are required.")
    to = obj["to"]
    if type(to) is not str or not _is_id(to):
        raise _bad("signal", "Field 'to' must be an id (1-64 characters of A-Z a-z 0-9 _ -).")
    data = obj["data"]
    if type(data) is not dict or len(data) != 1:
        raise _bad("signal", "Field 'data' must be an object with exactly one of 'description' or 'candidate'.")
    desc = data.get("description", _MISSING)
    if desc is not _MISSING:
        check_description(desc)
    else:
        cand = data.get("candidate", _MISSING)
        if cand is _MISSING:
            raise _bad("signal", "Field 'data' must be an object with exactly one of 'description' or 'candidate'.")
        check_candidate(cand)
    return Signal(to, data)


def _parse_state(obj: dict) -> State:
    _check_keys(obj, _STATE_KEYS, "state", "state")
    for key in STATE_FIELDS:
        value = obj.get(key)
        if value is not None and type(value) is not bool:
            raise _bad("state", f"Field '{key}' must be true or false.")
    return State(obj.get("mic"), obj.get("camera"), obj.get("screen"), obj.get("hand"))


def _parse_peer_stats(peer: str, entry: Any) -> PeerStats:
    if type(entry) is not dict:
        raise _bad("stats", f"'peers.{peer}' must be an object.")
    _check_keys(entry, _PEER_STATS_KEYS, "stats", f"peers.{peer}")
    values: dict[str, Any] = {}
    for key, value in entry.items():
        if key in STATS_NUMBERS:
            low, high = STATS_NUMBERS[key]
            if type(value) not in (int, float) or not low <= value <= high:
                raise _bad("stats", f"'peers.{peer}.{key}' must be a number from {low} to {high}.")
            values[key] = value
        else:
            choices = STATS_CHOICES[key]
            if type(value) is not str or value not in choices:
                raise _bad("stats", f"'peers.{peer}.{key}' must be one of {', '.join(sorted(choices))}.")
            values[key] = value
    return PeerStats(**values)


def _parse_stats(obj: dict) -> Stats:
    _check_keys(obj, _STATS_KEYS, "stats", "stats")
    peers = obj.get("peers", _MISSING)
    if peers is _MISSING:
        raise _bad("stats", "Field 'peers' is required.")
    if type(peers) is not dict:
        raise _bad("stats", "Field 'peers' must be an object.")
    if len(peers) > MAX_STATS_PEERS:
        raise _bad("stats", f"Field 'peers' has more than {MAX_STATS_PEERS} entries.")
    parsed: dict[str, PeerStats] = {}
    for peer, entry in peers.items():
        if not _is_id(peer):
            raise _bad("stats", "Keys of 'peers' must be ids (1-64 characters of A-Z a-z 0-9 _ -).")
        parsed[peer] = _parse_peer_stats(peer, entry)
    return Stats(parsed)


def _peer_parser(cls: type, ref: str):
    def parse(obj: dict):
        _check_keys(obj, _PEER_KEYS, ref, ref)
        return cls(_peer_id(obj, "peer", ref))

    return parse


def _bare_parser(cls: type, ref: str):
    def parse(obj: dict):
        _check_keys(obj, _TYPE_ONLY, ref, ref)
        return cls()

    return parse


def _parse_ping(obj: dict) -> Ping:
    _check_keys(obj, _PING_KEYS, "ping", "ping")
    pid = obj.get("id")
    if pid is None:
        return Ping()
    if type(pid) is int and -MAX_PING_ID <= pid <= MAX_PING_ID:
        return Ping(pid)
    if type(pid) is str and len(pid) <= MAX_ID_CHARS:
        return Ping(pid)
    raise _bad("ping", f"Field 'id' must be an integer or a string of at most {MAX_ID_CHARS} characters.")


_CALL_KEYS = frozenset({"type", "department", "language"})
_CALL_REF_KEYS = frozenset({"type", "call"})


def _parse_call(obj: dict) -> Call:
    _check_keys(obj, _CALL_KEYS, "call", "call")
    present = [k for k in ("department", "language") if k in obj]
    if len(present) != 1:
        raise _bad("call", "Give exactly one of 'department' or 'language'.")
    return Call("department" if present[0] == "department" else "language", _peer_id(obj, present[0], "call"))


def _call_ref_parser(cls: type, ref: str):
    def parse(obj: dict):
        _check_keys(obj, _CALL_REF_KEYS, ref, ref)
        return cls(_peer_id(obj, "call", ref))

    return parse


_PARSERS = {
    "signal": _parse_signal,
    "join": _parse_join,
    "resume": _parse_resume,
    "state": _parse_state,
    "stats": _parse_stats,
    "admit": _peer_parser(Admit, "admit"),
    "deny": _peer_parser(Deny, "deny"),
    "remove": _peer_parser(Remove, "remove"),
    "end": _bare_parser(End, "end"),
    "ping": _parse_ping,
    "leave": _bare_parser(Leave, "leave"),
    "call": _parse_call,
    "call-cancel": _call_ref_parser(CallCancel, "call-cancel"),
    "callback": _call_ref_parser(Callback, "callback"),
}
CLIENT_TYPES: Final = frozenset(_PARSERS)


def parse_client_message(raw: str | bytes | bytearray | memoryview,
                         max_bytes: int = MAX_MESSAGE_BYTES) -> ClientMessage:
    """Decode and check one client frame; raise ``ProtocolError`` for anything invalid.

    ``max_bytes`` counts UTF-8 bytes. Nothing but ``ProtocolError`` escapes, for
    any input (property-tested).
    """
    return parse_object(decode_frame(raw, max_bytes))


def decode_frame(raw: str | bytes | bytearray | memoryview, max_bytes: int = MAX_MESSAGE_BYTES) -> dict:
    """The first half of ``parse_client_message``: size, JSON, an object; its fields unchecked.

    The relay (``relay.py``) looks at the object before ``parse_object`` does, so a
    well-formed ``signal`` is decoded once and never becomes a ``Signal``.
    """
    # UTF-8 is 1-4 bytes a character: only a frame of over a quarter of the limit needs counting.
    if 4 * len(raw) > max_bytes and _utf8_size(raw) > max_bytes:
        raise ProtocolError(ErrorCode.MESSAGE_TOO_LARGE, f"The message is larger than {max_bytes} bytes.")
    try:
        obj = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise ProtocolError(ErrorCode.BAD_JSON, "The frame is not valid JSON.") from None
    if type(obj) is not dict:
        raise ProtocolError(ErrorCode.BAD_JSON, "The frame is not a JSON object.")
    return obj


def _utf8_size(raw: str | bytes | bytearray | memoryview) -> int:
    if not isinstance(raw, str):
        return len(raw)  # a memoryview of other than bytes fails in orjson.loads, as it should
    # SDP is ASCII, and for ASCII characters and bytes are the same count.
    return len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))


def parse_object(obj: dict) -> ClientMessage:
    """The second half: the type and every field of a decoded frame, as a message class."""
    kind = obj.get("type", _MISSING)
    if type(kind) is not str:
        raise ProtocolError(ErrorCode.BAD_MESSAGE,
                            "Field 'type' is required and must be a string." if kind is _MISSING
                            else "Field 'type' must be a string.")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "Unknown message type.")
    return parser(obj)


# --- server -> client messages ----------------------------------------------------
# Plain dicts, serialised by dumps()/dumpb(). Arguments are views the room builds
# (see room.Seat.public/self_view); builders only assemble, so they stay cheap.


def welcome(*, self_: dict, room: dict, peers: list[dict], ice_servers: list[dict],
            resume_secret: str, resumed: bool) -> dict[str, Any]:
    return {"type": "welcome", "self": self_, "room": room, "peers": peers,
            "ice_servers": ice_servers, "resume_secret": resume_secret, "resumed": resumed}


def waiting(*, self_: dict, room: dict, resume_secret: str) -> dict[str, Any]:
    return {"type": "waiting", "self": self_, "room": room, "resume_secret": resume_secret}


def lobby(waiting_seats: list[dict]) -> dict[str, Any]:
    return {"type": "lobby", "waiting": waiting_seats}


def peer_joined(peer: dict) -> dict[str, Any]:
    return {"type": "peer-joined", "peer": peer}


def peer_left(peer_id: str, reason: str) -> dict[str, Any]:
    """``reason``: left, removed, timeout, ended."""
    return {"type": "peer-left", "peer": peer_id, "reason": reason}


def peer_reconnecting(peer_id: str) -> dict[str, Any]:
    return {"type": "peer-reconnecting", "peer": peer_id}


def peer_resumed(peer_id: str) -> dict[str, Any]:
    return {"type": "peer-resumed", "peer": peer_id}


def peer_state(peer_id: str, state: dict[str, bool]) -> dict[str, Any]:
    return {"type": "peer-state", "peer": peer_id, "state": state}


def pong(ping_id: int | str | None = None) -> dict[str, Any]:
    return {"type": "pong"} if ping_id is None else {"type": "pong", "id": ping_id}


def denied() -> dict[str, Any]:
    return {"type": "denied"}


def removed() -> dict[str, Any]:
    return {"type": "removed"}


_WIRE_TYPES = {CallCancel: "call-cancel"}


def message_type(msg: ClientMessage) -> str:
    """The ``type`` a parsed client message had on the wire."""
    return _WIRE_TYPES.get(type(msg)) or type(msg).__name__.lower()


def call_status(call: dict[str, Any]) -> dict[str, Any]:
    """How an expert call stands (moderators only): ringing, accepted, timed_out, cancelled, no_one."""
    return {"type": "call-status", "call": call}


def ended(reason: str) -> dict[str, Any]:
    """``reason``: moderator, operator, api, scheduled_end, empty."""
    return {"type": "ended", "reason": reason}


def error(code: str, message: str, ref: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
    if ref is not None:
        msg["ref"] = ref
    return msg


def dumps(msg: Mapping[str, Any]) -> str:
    """One server message as the text of a WebSocket text frame."""
    return orjson.dumps(msg).decode()


def dumpb(msg: Mapping[str, Any]) -> bytes:
    """The same as UTF-8 bytes, for ``WebSocketResponse.send_frame(b, WSMsgType.TEXT)``."""
    return orjson.dumps(msg)
