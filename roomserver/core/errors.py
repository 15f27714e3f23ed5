"""The one error type every refusal travels as.

A refusal has a stable machine code, a plain message for people and the HTTP
status it maps to, so the API, the WebSocket and the CLI all say the same thing
about the same problem and no stack trace ever reaches a user.
"""

from __future__ import annotations


class RoomServerError(Exception):
    """A refusal with a stable ``code``, a human ``message`` and an HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The common error body: ``{"error": {"code": ..., "message": ...}}``."""
        return {"error": {"code": self.code, "message": self.message}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, {self.status})"


class TokenError(RoomServerError):
    """A token was refused; ``code`` names the reason (see README, Token errors)."""

    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(code, message, status)


def not_found(what: str) -> RoomServerError:
    """A 404 in the common shape."""
    return RoomServerError("not_found", f"{what} was not found.", 404)


def conflict(code: str, message: str) -> RoomServerError:
    """A 409 in the common shape: the request is fine but the state forbids it."""
    return RoomServerError(code, message, 409)


def unprocessable(code: str, message: str) -> RoomServerError:
    """A 422 in the common shape: well-formed but semantically wrong input."""
    return RoomServerError(code, message, 422)
