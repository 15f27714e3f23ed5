"""aiohttp middlewares: one error shape everywhere, and strict security headers.

No exception text or stack trace ever reaches a client: known refusals become
``{"error": {"code", "message"}}`` with their status; anything unexpected is
logged here (without request data) and answered with a plain 500.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

from .errors import RoomServerError

log = logging.getLogger("roomserver.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

_HTTP_CODES = {
    400: ("bad_request", "The request is malformed."),
    401: ("unauthenticated", "Sign in or send an API key."),
    403: ("forbidden", "This action is not allowed."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body must be JSON."),
}


def error_response(error: RoomServerError) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="roomserver"'} if error.status == 401 else None
    return web.json_response(error.to_dict(), status=error.status, headers=headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RoomServerError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        response = error_response(RoomServerError(code, message, exc.status))
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:  # noqa: BLE001 - the last line of defence: log, never leak
        log.exception("unhandled error in %s %s", request.method, request.match_info.route.resource
                      and request.match_info.route.resource.canonical)
        return error_response(RoomServerError("internal_error", "Something went wrong on the server.", 500))


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.prepared:  # a WebSocket or stream: its headers went out with the handshake
        return response
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self), "
                                             "geolocation=(), payment=()")
    if request.path.startswith("/api/") or request.path in ("/healthz", "/readyz"):
        headers.setdefault("Cache-Control", "no-store")
    return response
