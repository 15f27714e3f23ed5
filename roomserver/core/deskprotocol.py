"""Message shapes of the desk socket (``/desk/ws``), where experts and interpreters wait for calls.

A second, small protocol beside the room's (docs/protocol.md, *Desk protocol*):
the desk says whether its person is available and answers rings; the server
rings, stops ringing, hands over the patch-in token and lists callback requests.
No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import orjson

from .protocol import ProtocolError

MAX_DESK_MESSAGE = 4096
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, slots=True)
class SetAvailability:
    status: str  # available, busy, away


@dataclass(frozen=True, slots=True)
class Accept:
    call: str


@dataclass(frozen=True, slots=True)
class Decline:
    call: str


@dataclass(frozen=True, slots=True)
class Rejoin:
    """Go back into the consultation of an accepted call one left ("zurück in die Beratung")."""

    call: str


@dataclass(frozen=True, slots=True)
class CallbackDone:
    callback: str


@dataclass(frozen=True, slots=True)
class DeskPing:
    id: int | str | None


DeskMessage = Union[SetAvailability, Accept, Decline, Rejoin, CallbackDone, DeskPing]
_FIELDS = {"availability": ("status",), "accept": ("call",), "decline": ("call",), "rejoin": ("call",),
           "callback-done": ("callback",), "ping": ("id",)}


def _id(value: Any, field: str, kind: str) -> str:
    if type(value) is not str or not 0 < len(value) <= 64 or not _ID_CHARS.issuperset(value):
        raise ProtocolError("bad_message", f"Field '{field}' must be an id.", kind)
    return value


def parse_desk_message(raw: str | bytes) -> DeskMessage:
    """A validated desk message, or ``ProtocolError`` (bad_json, bad_message, unknown_type, message_too_large)."""
    if len(raw) > MAX_DESK_MESSAGE:
        raise ProtocolError("message_too_large", f"The message is larger than {MAX_DESK_MESSAGE} bytes.")
    try:
        obj = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise ProtocolError("bad_json", "The frame is not valid JSON.") from None
    if type(obj) is not dict:
        raise ProtocolError("bad_json", "The frame is not a JSON object.")
    kind = obj.get("type")
    if type(kind) is not str or kind not in _FIELDS:
        raise ProtocolError("unknown_type", "Unknown message type.")
    extra = set(obj) - {"type", *_FIELDS[kind]}
    if extra:
        raise ProtocolError("bad_message", "Unknown field: " + ", ".join(sorted(k[:32] for k in extra))[:100], kind)
    if kind == "availability":
        status = obj.get("status")
        if status not in ("available", "busy", "away"):
            raise ProtocolError("bad_message", "Field 'status' must be available, busy or away.", kind)
        return SetAvailability(status)
    if kind == "accept":
        return Accept(_id(obj.get("call"), "call", kind))
    if kind == "decline":
        return Decline(_id(obj.get("call"), "call", kind))
    if kind == "rejoin":
        return Rejoin(_id(obj.get("call"), "call", kind))
    if kind == "callback-done":
        return CallbackDone(_id(obj.get("callback"), "callback", kind))
    pid = obj.get("id")
    if pid is not None and not ((type(pid) is int and abs(pid) < 2**53) or (type(pid) is str and len(pid) <= 64)):
        raise ProtocolError("bad_message", "Field 'id' must be an integer or a short string.", kind)
    return DeskPing(pid)


def dumpb(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)
