"""The switchboard as plain data and back: desks, their availability, and the calls that ring.

The node that runs the switchboard writes this after every change, so that when
it dies another node goes on with the same calls ringing on the same desks.
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from .switchboard import Availability, Call, CallState, Desk, Presence, Switchboard

VERSION = 1


def dump(board: Switchboard) -> dict[str, Any]:
    return {
        "v": VERSION, "timeout": board.timeout,
        "desks": [{"account_id": d.account_id, "name": d.name, "role": d.role, "department_id": d.department_id,
                   "languages": sorted(d.languages), "availability": d.availability.value, "sockets": d.sockets,
                   "in_room": d.in_room} for d in board.desks.values()],
        "calls": [{"id": c.id, "room_id": c.room_id, "room_title": c.room_title, "caller_seat": c.caller_seat,
                   "caller_identity": c.caller_identity, "caller_name": c.caller_name, "kind": c.kind,
                   "target": c.target, "target_label": c.target_label, "requested_at": c.requested_at,
                   "expires_at": c.expires_at, "state": c.state.value, "rung": sorted(c.rung),
                   "declined": sorted(c.declined), "accepted_by": c.accepted_by, "accepted_at": c.accepted_at,
                   "ended_at": c.ended_at, "presence": c.presence.value if c.presence else None,
                   "released_at": c.released_at} for c in board.calls.values()],
    }


def load(data: dict[str, Any]) -> Switchboard:
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError("not a switchboard snapshot of this version")
    board = Switchboard(float(data["timeout"]))
    for d in data["desks"]:
        board.desks[d["account_id"]] = Desk(d["account_id"], d["name"], d["role"], d["department_id"],
                                            frozenset(d["languages"]), Availability(d["availability"]),
                                            int(d["sockets"]), d["in_room"])
    for c in data["calls"]:
        board.calls[c["id"]] = Call(
            id=c["id"], room_id=c["room_id"], room_title=c["room_title"], caller_seat=c["caller_seat"],
            caller_identity=c["caller_identity"], caller_name=c["caller_name"], kind=c["kind"], target=c["target"],
            target_label=c["target_label"], requested_at=c["requested_at"], expires_at=c["expires_at"],
            state=CallState(c["state"]), rung=set(c["rung"]), declined=set(c["declined"]),
            accepted_by=c["accepted_by"], accepted_at=c["accepted_at"], ended_at=c["ended_at"],
            presence=Presence(c["presence"]) if c.get("presence") else None, released_at=c.get("released_at"))
    return board


def available(board: Switchboard) -> tuple[dict[str, int], dict[str, int]]:
    """Desks online and available now, per department and per language (the call panel's figures)."""
    by_dept: dict[str, int] = {}
    by_lang: dict[str, int] = {}
    for desk in board.desks.values():
        if not desk.can_ring():
            continue
        if desk.role == "expert" and desk.department_id:
            by_dept[desk.department_id] = by_dept.get(desk.department_id, 0) + 1
        elif desk.role == "interpreter":
            for code in desk.languages:
                by_lang[code] = by_lang.get(code, 0) + 1
    return by_dept, by_lang
