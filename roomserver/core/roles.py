"""Roles and what each may do.

One table decides every permission, so the API, the WebSocket and the pages
cannot disagree about who may admit, remove or end. Nothing here does I/O.
"""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    """A participant's role inside a room (the ``role`` claim of a token)."""

    COUNSELLOR = "counsellor"
    CITIZEN = "citizen"
    EXPERT = "expert"
    INTERPRETER = "interpreter"


class StaffRole(str, Enum):
    """The role of a staff account (who signs in)."""

    COUNSELLOR = "counsellor"
    EXPERT = "expert"
    INTERPRETER = "interpreter"
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(str, Enum):
    """Things a participant can do inside a room."""

    TALK = "talk"
    LEAVE = "leave"
    ADMIT = "admit"
    DENY = "deny"
    REMOVE = "remove"
    END = "end"
    CALL_EXPERT = "call_expert"
    INVITE = "invite"


class ApiAction(str, Enum):
    """Things a principal can do through the REST API."""

    ROOM_CREATE = "room.create"
    ROOM_READ = "room.read"
    ROOM_END = "room.end"
    INVITE_ISSUE = "invite.issue"
    INVITE_REVOKE = "invite.revoke"
    INVITE_READ = "invite.read"
    INVITE_DIRECT = "invite.direct"  # send a named expert a direct link into a room
    DIRECTORY_READ = "directory.read"  # the departments (and interpreter languages) to call
    DIRECTORY_MANAGE = "directory.manage"  # departments and staff accounts
    REPORTS_READ = "reports.read"  # the pilot evaluation's aggregate figures


_EVERYONE = frozenset({Action.TALK, Action.LEAVE})
_MODERATOR = _EVERYONE | {
    Action.ADMIT,
    Action.DENY,
    Action.REMOVE,
    Action.END,
    Action.CALL_EXPERT,
    Action.INVITE,
}

ROOM_PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.COUNSELLOR: frozenset(_MODERATOR),
    Role.CITIZEN: _EVERYONE,
    Role.EXPERT: _EVERYONE,
    Role.INTERPRETER: _EVERYONE,
}

# "system" is an API key held by an appointment system: it manages rooms for
# the agency but is nobody in particular.
API_PERMISSIONS: dict[str, frozenset[ApiAction]] = {
    "system": frozenset(ApiAction),
    StaffRole.ADMIN.value: frozenset(ApiAction),
    StaffRole.COUNSELLOR.value: frozenset(ApiAction) - {ApiAction.DIRECTORY_MANAGE, ApiAction.REPORTS_READ},
    StaffRole.OPERATOR.value: frozenset({ApiAction.ROOM_READ, ApiAction.ROOM_END, ApiAction.DIRECTORY_READ,
                                         ApiAction.REPORTS_READ}),
    StaffRole.EXPERT.value: frozenset({ApiAction.DIRECTORY_READ}),
    StaffRole.INTERPRETER.value: frozenset({ApiAction.DIRECTORY_READ}),
}

# Roles that wait in the waiting room (when the room has one) before they are
# admitted. Staff who were rung or invited by the counsellor come straight in.
WAITING_ROLES = frozenset({Role.CITIZEN})


def may(role: Role, action: Action) -> bool:
    """Whether a participant of ``role`` may take ``action`` in a room."""
    return action in ROOM_PERMISSIONS.get(role, frozenset())


def api_may(principal_role: str, action: ApiAction) -> bool:
    """Whether an API principal (``system`` or a staff role) may take ``action``."""
    return action in API_PERMISSIONS.get(principal_role, frozenset())


def parse_role(value: object) -> Role | None:
    """The participant role named by ``value``, or None if it names none."""
    if isinstance(value, str):
        try:
            return Role(value)
        except ValueError:
            return None
    return None
