"""The OpenAPI 3.1 document of ``/api/v1``, and request validation from it.

The request bodies of the handlers are validated against the schemas below
(JSON Schema 2020-12, via ``jsonschema``), so the document cannot drift from
what the handlers accept; a test checks that every route is documented and
schemathesis checks the responses against it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

from .. import __version__
from ..core.errors import RoomServerError

ERROR = {"$ref": "#/components/schemas/Error"}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
ROOM_ID = {"name": "room_id", "in": "path", "required": True,
           "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
ACCOUNT_ID = {"name": "account_id", "in": "path", "required": True,
              "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
DEPT_SLUG = {"type": "string", "minLength": 2, "maxLength": 48, "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$",
             "description": "A slug: lower-case letters, digits and single hyphens."}
LANGUAGES = {"type": "array", "maxItems": 20, "uniqueItems": True,
             "items": {"type": "string", "minLength": 2, "maxLength": 16, "pattern": "^[a-z]{2,3}(-[a-z0-9]{2,8})*$"},
             "description": "Interpreters only: language codes they interpret (ISO 639, 'dgs' for German "
                            "Sign Language)."}
JTI = {"name": "jti", "in": "path", "required": True,
       "schema": {"type": "string", "minLength": 1, "maxLength": 64}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "LoginRequest": {
        "type": "object", "additionalProperties": False, "required": ["username", "password"],
        "properties": {"username": {"type": "string", "minLength": 1, "maxLength": 128},
                       "password": {"type": "string", "minLength": 1, "maxLength": 1024}},
    },
    "Session": {
        "type": "object", "required": ["account", "csrf_token"],
        "properties": {
            "account": {"type": "object", "required": ["id", "username", "display_name", "role"],
                        "properties": {"id": {"type": "string"}, "username": {"type": "string"},
                                       "display_name": {"type": "string"}, "role": {"type": "string"},
                                       "department": {"type": ["string", "null"]}}},
            "csrf_token": {"type": "string", "description": "Send as X-CSRF-Token on state-changing requests."},
        },
    },
    "RoomCreate": {
        "type": "object", "additionalProperties": False, "required": ["title"],
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "scheduled_start": NULLABLE_TIMESTAMP,
            "scheduled_end": NULLABLE_TIMESTAMP,
            "waiting_room": {"type": "boolean"},
            "max_participants": {"type": "integer", "minimum": 2, "maximum": 6},
        },
    },
    "RoomUpdate": {
        "type": "object", "additionalProperties": False, "required": ["scheduled_start"],
        "properties": {"scheduled_start": TIMESTAMP, "scheduled_end": NULLABLE_TIMESTAMP},
    },
    "Room": {
        "type": "object",
        "required": ["id", "title", "scheduled_start", "scheduled_end", "waiting_room", "max_participants",
                     "state", "created_by", "created_at", "ended_at", "ended_reason", "join_path"],
        "properties": {
            "id": {"type": "string"}, "title": {"type": "string"},
            "scheduled_start": NULLABLE_TIMESTAMP, "scheduled_end": NULLABLE_TIMESTAMP,
            "waiting_room": {"type": "boolean"}, "max_participants": {"type": "integer"},
            "state": {"type": "string", "enum": ["open", "live", "ended"]},
            "created_by": {"type": "string"}, "created_at": TIMESTAMP, "ended_at": NULLABLE_TIMESTAMP,
            "ended_reason": {"type": ["string", "null"]}, "join_path": {"type": "string"},
        },
    },
    "RoomList": {"type": "object", "required": ["rooms"],
                 "properties": {"rooms": {"type": "array", "items": {"$ref": "#/components/schemas/Room"}}}},
    "EndRequest": {"type": "object", "additionalProperties": False,
                   "properties": {"reason": {
                       "type": "string", "enum": ["api", "operator", "completed", "cancelled", "no_show"],
                       "description": "Why the consultation ended: a code, never free text (it is audited)."}}},
    "InviteCreate": {
        "type": "object", "additionalProperties": False, "required": ["role", "name"],
        "properties": {
            "role": {"type": "string", "enum": ["counsellor", "citizen", "expert", "interpreter"]},
            "name": {"type": "string", "minLength": 1, "maxLength": 64,
                     "description": "Display name shown to the others in the room."},
            "lifetime_seconds": {"type": "integer", "minimum": 30, "maximum": 31536000,
                                 "description": "Valid from now for this long; default per role (README)."},
            "single_use": {"type": "boolean", "description": "Default: true for experts and interpreters."},
            "email": {"type": "string", "minLength": 1, "maxLength": 254,
                      "description": "Citizens only, in a consultation with a scheduled time, when the server has "
                                     "[mail] smtp_host: the invitation is e-mailed to this address with a calendar "
                                     "entry, reminders before the start and a cancellation if it is withdrawn. "
                                     "Refused: email_not_configured, invalid_email, email_citizens_only, "
                                     "schedule_required, email_with_lifetime."},
            "language": {"type": "string", "enum": ["de", "en", "tr", "ar", "uk", "ru", "fa"],
                         "description": "Language of the e-mails (default de); only with email "
                                        "(else language_without_email)."},
        },
    },
    "OutboxMessage": {
        "type": "object", "required": ["id", "kind", "state", "attempts", "created_at"],
        "properties": {
            "id": {"type": "integer"}, "kind": {"type": "string", "enum": ["webhook", "email"]},
            "type": {"type": ["string", "null"], "description": "The event type, or invitation, reminder, cancel."},
            "state": {"type": "string", "enum": ["pending", "sent", "failed", "cancelled"]},
            "attempts": {"type": "integer"}, "created_at": TIMESTAMP, "next_at": NULLABLE_TIMESTAMP,
            "done_at": NULLABLE_TIMESTAMP, "last_error": {"type": ["string", "null"]},
            "endpoint": {"type": ["integer", "null"], "description": "Webhooks: the endpoint's number in "
                                                                      "[webhooks] urls."},
            "claimed": {"type": "boolean", "description": "A node is sending it right now."},
        },
    },
    "OutboxListing": {
        "type": "object", "required": ["counts", "messages"],
        "properties": {
            "counts": {"type": "object", "additionalProperties": {"type": "object",
                                                                  "additionalProperties": {"type": "integer"}}},
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/OutboxMessage"}},
        },
    },
    "OutboxRetried": {"type": "object", "required": ["retried"], "properties": {"retried": {"type": "integer"}}},
    "Invite": {
        "type": "object",
        "required": ["jti", "token", "room_id", "role", "not_before", "expires_at", "single_use", "join_url"],
        "properties": {
            "jti": {"type": "string"}, "token": {"type": "string"}, "room_id": {"type": "string"},
            "role": {"type": "string"}, "not_before": TIMESTAMP, "expires_at": TIMESTAMP,
            "single_use": {"type": "boolean"},
            "join_url": {"type": "string", "description": "The link to hand on; the token is in the fragment, "
                                                          "which browsers never send to a server."},
            "short_url": {"type": ["string", "null"],
                          "description": "The same invite as a short link, /j/XXXX-XXXX-XXXX (60 random bits, "
                                         "Crockford base32), for an SMS, the phone or a QR code; withdrawn with "
                                         "the invite. null for counsellor tokens."},
        },
    },
    "InviteInfo": {
        "type": "object",
        "required": ["jti", "role", "label", "not_before", "expires_at", "single_use", "issued_at", "used_at",
                     "revoked_at"],
        "properties": {
            "jti": {"type": "string"}, "role": {"type": "string"}, "label": {"type": "string"},
            "not_before": TIMESTAMP, "expires_at": TIMESTAMP, "single_use": {"type": "boolean"},
            "issued_at": TIMESTAMP, "used_at": NULLABLE_TIMESTAMP, "revoked_at": NULLABLE_TIMESTAMP,
        },
    },
    "InviteList": {"type": "object", "required": ["invites"],
                   "properties": {"invites": {"type": "array",
                                              "items": {"$ref": "#/components/schemas/InviteInfo"}}}},
    "Department": {
        "type": "object", "required": ["id", "name", "kind"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                       "kind": {"type": "string", "enum": ["agency", "county"]}},
    },
    "DepartmentCreate": {
        "type": "object", "additionalProperties": False, "required": ["id", "name", "kind"],
        "properties": {"id": DEPT_SLUG, "name": {"type": "string", "minLength": 1, "maxLength": 100},
                       "kind": {"type": "string", "enum": ["agency", "county"]}},
    },
    "DepartmentList": {"type": "object", "required": ["departments"],
                       "properties": {"departments": {"type": "array",
                                                      "items": {"$ref": "#/components/schemas/Department"}}}},
    "Account": {
        "type": "object", "required": ["id", "username", "display_name", "role", "department", "languages",
                                       "disabled"],
        "properties": {
            "id": {"type": "string"}, "username": {"type": "string"}, "display_name": {"type": "string"},
            "role": {"type": "string", "enum": ["counsellor", "expert", "interpreter", "operator", "admin"]},
            "department": {"type": ["string", "null"]},
            "languages": {"type": "array", "items": {"type": "string"}},
            "disabled": {"type": "boolean"},
        },
    },
    "AccountList": {"type": "object", "required": ["accounts"],
                    "properties": {"accounts": {"type": "array", "items": {"$ref": "#/components/schemas/Account"}}}},
    "AccountCreate": {
        "type": "object", "additionalProperties": False, "required": ["username", "display_name", "role"],
        "properties": {
            "username": {"type": "string", "minLength": 2, "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
            "display_name": {"type": "string", "minLength": 1, "maxLength": 64},
            "role": {"type": "string", "enum": ["counsellor", "expert", "interpreter", "operator", "admin"]},
            "department": {"oneOf": [DEPT_SLUG, {"type": "null"}],
                           "description": "Required for experts: the department whose calls they answer."},
            "languages": LANGUAGES,
        },
    },
    "AccountCreated": {
        "type": "object", "required": ["account", "password"],
        "properties": {"account": {"$ref": "#/components/schemas/Account"},
                       "password": {"type": "string", "description": "The one-time password: shown once, "
                                                                     "stored only as an argon2 hash."}},
    },
    "AccountUpdate": {
        "type": "object", "additionalProperties": False, "minProperties": 1,
        "properties": {
            "display_name": {"type": "string", "minLength": 1, "maxLength": 64},
            "department": {"oneOf": [DEPT_SLUG, {"type": "null"}]},
            "languages": LANGUAGES,
            "disabled": {"type": "boolean", "description": "A disabled account cannot sign in; its sessions end."},
        },
    },
    "AuditEvent": {
        "type": "object", "required": ["id", "at", "actor", "actor_role", "action", "room_id", "subject", "detail"],
        "properties": {
            "id": {"type": "integer"}, "at": TIMESTAMP, "actor": {"type": "string"},
            "actor_role": {"type": ["string", "null"]}, "action": {"type": "string"},
            "room_id": {"type": ["string", "null"]}, "subject": {"type": ["string", "null"]},
            "detail": {"type": "object"},
        },
    },
    "AuditExport": {
        "type": "object", "required": ["events", "truncated"],
        "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}},
                       "truncated": {"type": "boolean"}},
    },
    "DirectInviteCreate": {
        "type": "object", "additionalProperties": False, "required": ["account_id"],
        "properties": {
            "account_id": {"type": "string", "minLength": 1, "maxLength": 64,
                           "description": "The expert's or interpreter's account."},
            "lifetime_seconds": {"type": "integer", "minimum": 60, "maximum": 86400, "default": 3600},
        },
    },
    "DirectInvite": {
        "type": "object", "required": ["jti", "room_id", "account_id", "join_url", "expires_at", "pushed"],
        "properties": {
            "jti": {"type": "string"}, "room_id": {"type": "string"}, "account_id": {"type": "string"},
            "join_url": {"type": "string", "description": "The room page with the single-use token in the "
                                                          "fragment."},
            "expires_at": TIMESTAMP,
            "pushed": {"type": "integer", "minimum": 0,
                       "description": "How many open desk sockets of the expert were sent the link."},
        },
    },
}


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Malformed request", 401: "Not signed in or bad API key", 403: "Not allowed",
            404: "Not found", 409: "Conflicts with the current state", 413: "Body too large",
            415: "Body must be JSON",
            422: "Invalid field values", 429: "Too many attempts", 503: "Not ready"}
    responses: dict[str, Any] = {str(s): {"description": text[s], "content": {"application/json": {"schema": ERROR}}}
                                 for s in statuses}
    if 401 in statuses:
        responses["401"]["headers"] = {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}
    return responses


def _room_links() -> dict[str, Any]:
    """What a client can do next with a room it got back (OpenAPI links)."""
    room_id = {"room_id": "$response.body#/id"}
    return {op[0].upper() + op[1:]: {"operationId": op, "parameters": room_id}
            for op in ("getRoom", "endRoom", "listInvites", "createInvite")}


_AUTHED = (400, 401, 403)
_BODY = (413, 415, 422)

PATHS: dict[str, Any] = {
    "/healthz": {"get": {
        "operationId": "health", "summary": "Liveness: the process answers.", "security": [],
        "responses": {"200": {"description": "Alive", "content": _json("Health")}},
    }},
    "/readyz": {"get": {
        "operationId": "ready", "summary": "Readiness: database and signing keys are usable.", "security": [],
        "responses": {"200": {"description": "Ready", "content": _json("Health")}, **_errors(503)},
    }},
    "/api/v1/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This document.", "security": [],
        "responses": {"200": {"description": "OpenAPI document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }},
    "/api/v1/session": {
        "post": {"operationId": "signIn", "summary": "Staff sign-in; sets the session cookie.", "security": [],
                 "requestBody": {"required": True, "content": _json("LoginRequest")},
                 "responses": {"200": {"description": "Signed in", "content": _json("Session")},
                               **_errors(400, 401, 429, *_BODY)}},
        "get": {"operationId": "whoAmI", "summary": "The signed-in staff member.",
                "responses": {"200": {"description": "Session", "content": _json("Session")},
                              **_errors(*_AUTHED)}},
        "delete": {"operationId": "signOut", "summary": "End the session.",
                   "responses": {"204": {"description": "Signed out"}, **_errors(*_AUTHED)}},
    },
    "/api/v1/rooms": {
        "get": {"operationId": "listRooms", "summary": "Consultations, by scheduled start.",
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["open", "live", "ended"]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0,
                                                                  "maximum": 1000000}},
                ],
                "responses": {"200": {"description": "Rooms", "content": _json("RoomList")},
                              **_errors(*_AUTHED)}},
        "post": {"operationId": "createRoom", "summary": "Create a consultation room.",
                 "requestBody": {"required": True, "content": _json("RoomCreate")},
                 "responses": {"201": {"description": "Created", "content": _json("Room"), "links": _room_links(),
                                       "headers": {"Location": {"required": True, "description": "The room's URL.",
                                                                "schema": {"type": "string"}}}},
                               **_errors(*_AUTHED, *_BODY)}},
    },
    "/api/v1/rooms/{room_id}": {"get": {
        "operationId": "getRoom", "summary": "One consultation.", "parameters": [ROOM_ID],
        "responses": {"200": {"description": "Room", "content": _json("Room")}, **_errors(*_AUTHED, 404)},
    }, "patch": {
        "operationId": "rescheduleRoom",
        "summary": "Move an appointment that has not begun (409 room_started once it runs, room_ended after).",
        "description": "E-mailed invites are valid for the new time; each invitee who had the invitation gets an "
                       "UPDATE (iCalendar SEQUENCE raised) with the link, the others the invitation; reminders "
                       "follow the new time. Links handed on by hand keep their window: issue new ones.",
        "parameters": [ROOM_ID],
        "requestBody": {"required": True, "content": _json("RoomUpdate")},
        "responses": {"200": {"description": "The room at its new time", "content": _json("Room")},
                      **_errors(*_AUTHED, 404, 409, *_BODY)},
    }},
    "/api/v1/rooms/{room_id}/end": {"post": {
        "operationId": "endRoom", "summary": "End a consultation: everyone is disconnected, every token for it "
                                             "stops working.",
        "parameters": [ROOM_ID],
        "requestBody": {"required": False, "content": _json("EndRequest")},
        "responses": {"200": {"description": "Ended", "content": _json("Room")},
                      **_errors(*_AUTHED, 404, 409, *_BODY)},
    }},
    "/api/v1/rooms/{room_id}/invites": {
        "get": {"operationId": "listInvites", "summary": "Invites issued for a room (never the tokens).",
                "parameters": [ROOM_ID],
                "responses": {"200": {"description": "Invites", "content": _json("InviteList")},
                              **_errors(*_AUTHED, 404)}},
        "post": {"operationId": "createInvite", "summary": "Mint a token for one person in one role.",
                 "parameters": [ROOM_ID],
                 "requestBody": {"required": True, "content": _json("InviteCreate")},
                 "responses": {"201": {"description": "Invite", "content": _json("Invite"), "links": {
                                   "RevokeInvite": {"operationId": "revokeInvite",
                                                    "parameters": {"room_id": "$response.body#/room_id",
                                                                   "jti": "$response.body#/jti"}}}},
                               **_errors(*_AUTHED, 404, 409, *_BODY)}},
    },
    "/api/v1/rooms/{room_id}/direct-invites": {"post": {
        "operationId": "createDirectInvite",
        "summary": "Send a named expert or interpreter a single-use direct link into the room (also pushed to "
                   "their open desk).",
        "parameters": [ROOM_ID],
        "requestBody": {"required": True, "content": _json("DirectInviteCreate")},
        "responses": {"201": {"description": "Sent", "content": _json("DirectInvite")},
                      **_errors(*_AUTHED, 404, 409, *_BODY)},
    }},
    "/api/v1/departments": {
        "get": {"operationId": "listDepartments", "summary": "The departments (any staff member).",
                "responses": {"200": {"description": "Departments", "content": _json("DepartmentList")},
                              **_errors(*_AUTHED)}},
        "post": {"operationId": "createDepartment", "summary": "Add a department (admin).",
                 "requestBody": {"required": True, "content": _json("DepartmentCreate")},
                 "responses": {"201": {"description": "Created", "content": _json("Department")},
                               **_errors(*_AUTHED, 409, *_BODY)}},
    },
    "/api/v1/accounts": {
        "get": {"operationId": "listAccounts", "summary": "Staff accounts (admin); never password hashes.",
                "responses": {"200": {"description": "Accounts", "content": _json("AccountList")},
                              **_errors(*_AUTHED)}},
        "post": {"operationId": "createAccount", "summary": "Add a staff account with a generated one-time "
                                                            "password (admin).",
                 "requestBody": {"required": True, "content": _json("AccountCreate")},
                 "responses": {"201": {"description": "Created", "content": _json("AccountCreated"),
                                       "links": {"UpdateAccount": {
                                           "operationId": "updateAccount",
                                           "parameters": {"account_id": "$response.body#/account/id"}}}},
                               **_errors(*_AUTHED, 409, *_BODY)}},
    },
    "/api/v1/accounts/{account_id}": {"patch": {
        "operationId": "updateAccount", "summary": "Change an account's name, department, languages or "
                                                   "disable it (admin).",
        "parameters": [ACCOUNT_ID],
        "requestBody": {"required": True, "content": _json("AccountUpdate")},
        "responses": {"200": {"description": "Updated", "content": _json("Account")},
                      **_errors(*_AUTHED, 404, 409, *_BODY)},
    }},
    "/api/v1/rooms/{room_id}/invites/{jti}": {"delete": {
        "operationId": "revokeInvite", "summary": "Withdraw an invite; the token stops working.",
        "parameters": [ROOM_ID, JTI],
        "responses": {"204": {"description": "Withdrawn"}, **_errors(*_AUTHED, 404, 409)},
    }},
    "/api/v1/outbox": {"get": {
        "operationId": "listOutbox",
        "summary": "Outbound messages (webhook events, e-mails) and their delivery state (operators, admins, the "
                   "system API key).",
        "description": "Counts by kind and state, and the newest messages first: what (event or e-mail type), "
                       "attempts, when, the last error (a status code or the error's kind); never an address, a "
                       "token or a message text.",
        "parameters": [
            {"name": "state", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["pending", "sent", "failed", "cancelled"]}},
            {"name": "kind", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["webhook", "email"]}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
        ],
        "responses": {"200": {"description": "Counts and messages", "content": _json("OutboxListing")},
                      **_errors(*_AUTHED, 422)},
    }},
    "/api/v1/outbox/{message_id}/retry": {"post": {
        "operationId": "retryOutboxMessage", "summary": "Send a failed message again (audited).",
        "parameters": [{"name": "message_id", "in": "path", "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 18}}],
        "responses": {"200": {"description": "The message, pending again", "content": _json("OutboxMessage")},
                      **_errors(*_AUTHED, 404, 409)},
    }},
    "/api/v1/outbox/retry-failed": {"post": {
        "operationId": "retryFailedOutbox", "summary": "Send every failed message again (audited).",
        "responses": {"200": {"description": "How many", "content": _json("OutboxRetried")},
                      **_errors(*_AUTHED)},
    }},
    "/api/v1/audit": {"get": {
        "operationId": "exportAudit", "summary": "Export the audit log of a period (admins and the system API key).",
        "description": "Events with since <= at < until, oldest first: who (account id, role), when, what, which "
                       "room and seat; never names or content. At most `limit` events; `truncated` (JSON) or the "
                       "header X-Truncated (CSV) says more were left out.",
        "parameters": [
            {"name": "since", "in": "query", "required": False, "schema": TIMESTAMP},
            {"name": "until", "in": "query", "required": False, "schema": TIMESTAMP},
            {"name": "format", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 10000}},
        ],
        "responses": {"200": {"description": "The events",
                              "content": {**_json("AuditExport"),
                                          "text/csv": {"schema": {"type": "string"}}}},
                      **_errors(*_AUTHED, 422)},
    }},
}


# The pilot evaluation (GET /api/v1/reports/...): aggregates only; a figure is a number, null (no events) or
# the hidden mark ("< 5": built from too few events).
_FIGURE = {"oneOf": [{"type": "number"}, {"type": "null"}, {"type": "string"}]}
_PERIOD = {"type": "object", "required": ["kind", "label", "first_day", "last_day", "start", "end"],
           "properties": {"kind": {"type": "string", "enum": ["day", "week", "month", "custom"]},
                          "label": {"type": "string"}, "first_day": {"type": "string", "format": "date"},
                          "last_day": {"type": "string", "format": "date"},
                          "start": {"type": "integer", "description": "unix seconds, inclusive"},
                          "end": {"type": "integer", "description": "unix seconds, exclusive"}}}
SCHEMAS.update({
    "Report": {
        "type": "object", "required": ["period", "min_events", "hidden", "timezone", "incomplete", "rows", "hours"],
        "properties": {
            "period": _PERIOD, "min_events": {"type": "integer"},
            "hidden": {"type": "string", "description": "What a hidden figure reads, e.g. \"< 5\"."},
            "timezone": {"type": "string"},
            "incomplete": {"type": "boolean", "description": "The period reaches back past what retention keeps."},
            "partial": {"type": "boolean", "description": "The period has not ended yet."},
            "stored": {"type": "boolean", "description": "From the stored monthly figures."},
            "rows": {"type": "array", "items": {
                "type": "object", "required": ["group", "key", "label", "figures"],
                "properties": {"group": {"type": "string", "enum": ["county", "department", "language", "team"]},
                               "key": {"type": "string"}, "label": {"type": "string"},
                               "figures": {"type": "object", "additionalProperties": _FIGURE}}}},
            "hours": {"type": "object", "properties": {"calls": {"type": "array", "items": _FIGURE,
                                                                 "minItems": 168, "maxItems": 168}}},
        },
    },
    "HoursReport": {
        "type": "object", "required": ["period", "calls"],
        "properties": {"period": _PERIOD, "min_events": {"type": "integer"}, "hidden": {"type": "string"},
                       "timezone": {"type": "string"}, "incomplete": {"type": "boolean"},
                       "calls": {"type": "array", "items": _FIGURE, "minItems": 168, "maxItems": 168,
                                 "description": "Calls placed per hour of the week, Monday 00-01 first."}},
    },
    "ReportMonths": {
        "type": "object", "required": ["months"],
        "properties": {"months": {"type": "array", "items": {
            "type": "object", "required": ["month", "report"],
            "properties": {"month": {"type": "string"}, "report": {"$ref": "#/components/schemas/Report"}}}}},
    },
})
_REPORT_QUERY = [
    {"name": "period", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["day", "week", "month", "custom"], "default": "month"}},
    {"name": "date", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "day 2026-11-30, week 2026-W48, month 2026-11; none: the current one"},
    {"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
     "description": "custom: first day"},
    {"name": "until", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
     "description": "custom: last day (inclusive, at most 366 days)"},
    {"name": "format", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"}},
]


def _report_op(op: str, summary: str, schema: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": {"operationId": op, "summary": summary, "parameters": params,
                    "description": "Operators, admins and the system API key. Aggregates only, no names or "
                                   "identities; a figure from fewer than [reports] min_events events is hidden.",
                    "responses": {"200": {"description": "The figures",
                                          "content": {**_json(schema), "text/csv": {"schema": {"type": "string"}}}},
                                  **_errors(*_AUTHED, 422)}}}


PATHS.update({
    "/api/v1/reports/figures": _report_op(
        "reportFigures", "The pilot evaluation's figures of a period: county, offices, languages, teams.",
        "Report", _REPORT_QUERY),
    "/api/v1/reports/hours": _report_op(
        "reportHours", "Calls placed per hour of the week in a period (busiest hours).", "HoursReport",
        _REPORT_QUERY),
    "/api/v1/reports/months": _report_op(
        "reportMonths", "The stored monthly figures (kept longer than the records).", "ReportMonths",
        [_REPORT_QUERY[-1]]),
})

@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The OpenAPI document served at ``/api/v1/openapi.json``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Room server API", "version": __version__,
                 "description": "Consultation rooms and invites for networked hybrid counselling. "
                                "Errors always have the shape {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "An API key from the api-keys file, for an appointment system."},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "rs_session",
                                  "description": "Staff session from POST /api/v1/session; state-changing "
                                                 "requests also need the X-CSRF-Token header."},
            },
        },
    }


@lru_cache(maxsize=None)
def _validator(schema_name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": SCHEMAS}}
    return Draft202012Validator(schema)


def validate(schema_name: str, body: object) -> dict[str, Any]:
    """Check a request body; raise a 422 naming the first offending field."""
    if not isinstance(body, dict):
        raise RoomServerError("invalid_request", "The request body must be a JSON object.", 422)
    error = next(iter(sorted(_validator(schema_name).iter_errors(body), key=lambda e: list(e.path))), None)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "body"
        if error.validator == "additionalProperties":
            message = f"Unknown field in {where}: {error.message.split('(')[-1].rstrip(')')}"
        elif error.validator == "required":
            message = f"Missing field in {where}: {error.message.split(' is a required')[0]}"
        else:
            message = f"Invalid value for {where}: {_short(error.message)}"
        raise RoomServerError("invalid_request", message, 422)
    return body


def _short(text: str) -> str:
    return text if len(text) <= 160 else text[:157] + "..."
