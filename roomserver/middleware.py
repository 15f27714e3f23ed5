"""The HTTP edge around every handler: one error shape everywhere (middlewares), and strict
security headers (a prepare hook).

No exception text or stack trace ever reaches a client: known refusals become
``{"error": {"code", "message"}}`` with their status; anything unexpected is
logged here (without request data) and answered with a plain 500.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Awaitable, Callable, TypeVar

from aiohttp import web

from .connections import Proxies, parse_address
from .core.errors import RoomServerError

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
    408: ("request_timeout", "The request did not arrive in time."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body must be JSON."),
}


def error_response(error: RoomServerError) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="roomserver"'} if error.status == 401 else None
    retry_after = getattr(error, "retry_after", None)  # a throttled sign-in: when to try again
    if retry_after is not None:
        headers = {"Retry-After": str(retry_after)}
    return web.json_response(error.to_dict(), status=error.status, headers=headers)


def http_error_response(exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusal (bad request, wrong method, ...) in the documented shape."""
    code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
    response = error_response(RoomServerError(code, message, exc.status))
    if exc.status == 405 and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


SELF_ANSWERING = "answers_own_errors"
_H = TypeVar("_H", bound=Callable[..., Any])


def self_answering(handler: _H) -> _H:
    """Mark a handler that answers every error itself (a WebSocket's): ``errors`` adds no frame around it."""
    setattr(handler, SELF_ANSWERING, True)
    return handler


@web.middleware
def errors(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Every error as the documented JSON shape, except where the handler answers its own.

    A WebSocket handler (marked with ``self_answering``) is handed on without a frame of this
    middleware: it would wait around the socket for its whole life, on thousands of sockets.
    """
    if getattr(request.match_info.handler, SELF_ANSWERING, False):
        return handler(request)
    return _errors(request, handler)


async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RoomServerError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error_response(exc)
    except Exception:  # noqa: BLE001 - the last line of defence: log, never leak
        log.exception("unhandled error in %s %s", request.method, request.match_info.route.resource
                      and request.match_info.route.resource.canonical)
        return error_response(RoomServerError("internal_error", "Something went wrong on the server.", 500))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Strict headers on every answer, set as it is prepared (``on_response_prepare``).

    A hook rather than a middleware: a middleware's frame would stay alive as long as the
    WebSocket it wraps, on every one of thousands of sockets. A handler's own value wins.
    """
    if response.status == 101:  # a WebSocket handshake: no page, nothing to frame or sniff
        return
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


# --- behind a proxy, and over HTTPS -------------------------------------------------------------

_RequestKey = getattr(web, "RequestKey", None)  # aiohttp 3.13+: typed request storage keys
FORWARDED_UNTRUSTED = _RequestKey("forwarded_untrusted", bool) if _RequestKey else "roomserver.forwarded_untrusted"
# Set on the original request too: aiohttp prepares a handler's answer with the original.
FORWARDED_HTTPS = _RequestKey("forwarded_https", bool) if _RequestKey else "roomserver.forwarded_https"
_FORWARD_HEADERS = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded")
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def _last(value: str) -> str:
    return value.rsplit(",", 1)[-1].strip()


def forwarded(proxies: Proxies) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Believe ``X-Forwarded-For/-Proto/-Host`` only from a trusted proxy.

    From a trusted proxy the request is cloned with the client's address (the
    right-most hop that is not itself a trusted proxy), scheme and host, so
    ``request.remote``, ``request.secure`` and the Origin check see the client's
    view. From anyone else the headers are ignored and the request is marked
    (``FORWARDED_UNTRUSTED``): a same-host proxy that is not configured must not
    make every client look like loopback to ``/metrics``. A trusted proxy's request
    without a usable client address is marked the same way.
    """
    @web.middleware
    def middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        # A plain function handing on the handler's awaitable: no frame of its own for as long as a
        # WebSocket lives (see security_headers).
        headers = request.headers
        if not any(name in headers for name in _FORWARD_HEADERS):
            return handler(request)
        peer = parse_address(request.remote)
        if not proxies.trusts(peer):
            request[FORWARDED_UNTRUSTED] = True
            return handler(request)
        changes: dict[str, str] = {}
        client = None
        for hop in reversed(",".join(headers.getall("X-Forwarded-For", [])).split(",")):
            address = parse_address(hop)
            if address is None:  # garbage where an address should be: who sent it is unknown
                client = None
                break
            client = address
            if not proxies.trusts(address):
                break
        if client is None:  # no usable X-Forwarded-For: never mistake the proxy for the client
            request[FORWARDED_UNTRUSTED] = True
        elif client != peer:
            changes["remote"] = str(client)
        proto = _last(headers.get("X-Forwarded-Proto", "")).lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
            request[FORWARDED_HTTPS] = proto == "https"
        host = _last(headers.get("X-Forwarded-Host", ""))
        if host and _HOST.match(host):
            changes["host"] = host
        return handler(request.clone(**changes) if changes else request)  # type: ignore[arg-type]
    return middleware


def body_timeout(seconds: float) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A request body must arrive within ``seconds`` (408 and the connection closed), before any handler."""
    async def read_then(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            await asyncio.wait_for(request.read(), seconds)
        except asyncio.TimeoutError:
            response = error_response(RoomServerError("request_timeout",
                                                      "The request body did not arrive in time.", 408))
            response.force_close()
            return response
        return await handler(request)

    @web.middleware
    def middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        # No body (every GET, every WebSocket): the handler's awaitable as it is, no frame kept.
        if request.body_exists and request.can_read_body:
            return read_then(request, handler)
        return handler(request)
    return middleware


def https_answers(hsts_seconds: int) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """On an answer over HTTPS (directly or through a trusted proxy): HSTS, and every cookie ``Secure``."""
    hsts = f"max-age={hsts_seconds}"

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if not (request.secure or request.get(FORWARDED_HTTPS)):
            return
        if hsts_seconds:
            response.headers["Strict-Transport-Security"] = hsts
        for morsel in response.cookies.values():  # aiohttp before 3.10 writes cookies after this hook
            morsel["secure"] = True
        cookies = response.headers.getall("Set-Cookie", [])  # newer ones wrote them already
        if any(not _is_secure(cookie) for cookie in cookies):
            del response.headers["Set-Cookie"]
            for cookie in cookies:
                response.headers.add("Set-Cookie", cookie if _is_secure(cookie) else cookie + "; Secure")
    return on_prepare


def _is_secure(cookie: str) -> bool:
    return any(part.strip().lower() == "secure" for part in cookie.split(";")[1:])
