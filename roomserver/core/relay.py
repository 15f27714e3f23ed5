"""The hot path of the relay: a well-formed ``signal`` in, the peer's frame out.

Nine of ten frames in a call are ``signal`` (SDP and ICE candidates), and each
is relayed unchanged, so this path avoids what every other message pays for:
no ``Signal`` object is built, the ``to`` id is checked by the room's seat
lookup rather than by a pattern, and the frame the peer receives is the
sender's own JSON text with ``from`` put in front, instead of a re-serialised
copy. Every field is still checked: ``relay_target`` accepts exactly what
``protocol.parse_object`` accepts as a ``Signal`` (bar the ``to`` pattern,
which no seat id can fail), and anything it does not accept goes through
``parse_object`` for the precise error.
"""

from __future__ import annotations

from .protocol import (
    DESCRIPTION_TYPES,
    MAX_SDP_CHARS,
    ProtocolError,
    check_candidate,
    check_description,
)


def relay_target(obj: dict) -> str | None:
    """The ``to`` of a well-formed ``signal``, or None: parse it in full instead.

    ``obj`` is a decoded frame (``protocol.decode_frame``). A str returned here
    is not yet a valid id: the caller looks it up among the room's seats, and
    only a seat id (valid by construction) gets a frame relayed.
    """
    if len(obj) != 3:
        return None
    to = obj.get("to")
    data = obj.get("data")
    if type(to) is not str or type(data) is not dict or len(data) != 1 or obj.get("type") != "signal":
        return None
    desc = data.get("description")
    if desc is not None:
        # An offer or answer, the bulk of the bytes, is accepted in place: exactly the keys
        # type and sdp, as check_description requires. Anything else gets that full check.
        if type(desc) is dict and len(desc) == 2:
            sdp, kind = desc.get("sdp"), desc.get("type")
            if type(sdp) is str and len(sdp) <= MAX_SDP_CHARS and type(kind) is str and kind in DESCRIPTION_TYPES:
                return to
        check, value = check_description, desc
    elif "candidate" in data:
        check, value = check_candidate, data["candidate"]
    else:
        return None
    try:
        check(value)
    except ProtocolError:
        return None
    return to


def sender_prefix(sender: str) -> str:
    """What ``relayed_frame`` puts in front of a sender's frames; made once per socket.

    ``sender`` is a server-made id (letters, digits, ``_``, ``-``): no escaping needed.
    """
    return f'{{"from":"{sender}",'


def relayed_frame(prefix: str, raw: str | bytes) -> bytes:
    """The frame the peer receives: the sender's frame with ``"from": sender`` in front.

    ``{"type":"signal","to":"p_B","data":{…}}`` from ``p_A`` becomes
    ``{"from":"p_A","type":"signal","to":"p_B","data":{…}}``. This is safe only
    for a frame ``relay_target`` accepted: it decoded to an object with exactly
    the keys ``type``, ``to`` and ``data`` (so no ``from`` to forge, however
    escaped), every value checked. Should a key repeat, orjson kept the last
    value, as every browser's ``JSON.parse`` and Python's ``json`` do, so the
    peer reads what was checked. ``prefix`` is ``sender_prefix(sender)``; it
    replaces the first ``{``, which is the object's own: JSON allows only
    whitespace before it. Returned as UTF-8 bytes, to be sent as a text frame.
    """
    if type(raw) is str:
        return raw.replace("{", prefix, 1).encode()
    return bytes(raw).replace(b"{", prefix.encode(), 1)
