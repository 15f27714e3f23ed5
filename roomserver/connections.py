"""Connections that cannot be held open for free: timeouts, a cap per client, one error shape.

aiohttp waits for a request head as long as a client likes, so a few hundred
connections that send half a header (slowloris) hold the server's file handles.
Here every connection must send a complete request head within
``idle_timeout_seconds`` (the same limit ends idle keep-alive connections and,
through the listening socket, unfinished TLS handshakes); a body must arrive
within ``body_timeout_seconds`` (408, see ``middleware.body_timeout``); and one
client address (an IPv6 /64 counts as one) may hold at most
``max_connections_per_client`` connections, trusted proxies exempt. A connection
counts once its TLS handshake is done.

aiohttp's own answers to requests it cannot parse leave through
``handle_error``: here they use the documented JSON error shape and say
``Server: roomserver``, like every other answer.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import ssl
from typing import Any, Iterable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("roomserver.connections")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_STATUS_CODES = {
    400: ("bad_request", "The request is malformed."),
    408: ("request_timeout", "The request did not arrive in time."),
    413: ("payload_too_large", "The request is too large."),
    414: ("uri_too_long", "The request line is too long."),
    431: ("headers_too_large", "The request headers are too large."),
    500: ("internal_error", "Something went wrong on the server."),
    503: ("too_many_connections", "This client has too many open connections; close some and try again."),
}


def parse_address(text: str | None) -> Address | None:
    """An IP address from a peer name or header value (IPv4-mapped IPv6 as IPv4), or None."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:port
        text = text[1:text.index("]")]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# Every connection parses its peer's address (a short IP literal from the socket, never a header):
# a bounded cache of the immutable results.
_peer_address = functools.lru_cache(maxsize=4096)(parse_address)


def client_key(address: Address) -> str:
    """What counts as one client: an IPv4 address, or an IPv6 /64 (one household or phone gets a /64)."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class Proxies:
    """The reverse proxies whose ``X-Forwarded-*`` headers are believed (``[server] trusted_proxies``)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(item, strict=False) for item in networks]

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address.version == net.version and address in net
                                           for net in self.networks)


def error_body(status: int, code: str | None = None, message: str | None = None) -> bytes:
    default_code, default_message = _STATUS_CODES.get(status, ("http_error", "The request failed."))
    return json.dumps({"error": {"code": code or default_code, "message": message or default_message}}).encode()


class ConnectionGuard:
    """Counts open connections per client; shared by every connection of one server."""

    def __init__(self, idle_timeout: float, max_per_client: int, proxies: Proxies) -> None:
        self.idle_timeout = idle_timeout
        self.max_per_client = max_per_client
        self.proxies = proxies
        self.open: dict[str, int] = {}
        self.refused = 0
        self.timed_out = 0

    def admit(self, address: Address | None) -> str | None:
        """The key to release later, "" for an exempt connection, None when the client is over its cap."""
        if address is None or self.proxies.trusts(address):
            return ""
        key = client_key(address)
        count = self.open.get(key, 0)
        if count >= self.max_per_client:
            self.refused += 1
            return None
        self.open[key] = count + 1
        return key

    def release(self, key: str) -> None:
        if not key:
            return
        count = self.open.get(key, 0) - 1
        if count > 0:
            self.open[key] = count
        else:
            self.open.pop(key, None)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler with a request-head deadline, the per-client cap and JSON errors."""

    def __init__(self, manager: Any, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._guard_key: str | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = _peer_address(_peer_host(transport))
        key = self._guard.admit(address)
        if key is None:
            body = error_body(503)
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\nServer: roomserver\r\n"  # type: ignore[attr-defined]
                            b"Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n"
                            b"Retry-After: 10\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            transport.close()
            return
        self._guard_key = key
        super().connection_made(transport)
        # aiohttp arms its keep-alive timer at the start too (3.10+); this one does not depend on it.
        self._head_timer = self._loop.call_later(self._guard.idle_timeout, self._head_deadline)

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self._request_count == 0 and self.transport is not None:
            self._guard.timed_out += 1
            self.force_close()
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._guard_key is None:  # refused in connection_made: aiohttp never saw it
            return
        self._guard.release(self._guard_key)
        self._guard_key = None
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's own error answers (unparseable request, too-long line): the JSON shape, no versions."""
        # Never with the address, and for a broken request never with its bytes (aiohttp's traceback quotes
        # the offending line, which may carry a name or a token): one line naming the kind of error.
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
        elif self._request_count == 1 and type(exc).__name__ == "BadHttpMethod":
            self.log_debug("Error handling request: not HTTP")
        else:
            self.logger.error("Error handling request: %s %s", status, type(exc).__name__ if exc else "")
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        resp = web.Response(status=status, body=error_body(status), content_type="application/json",
                            headers={"Server": "roomserver", "X-Content-Type-Options": "nosniff",
                                     "Cache-Control": "no-store"})
        resp.force_close()
        return resp


def _peer_host(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return None


class GuardedServer(web.Server):
    """Makes ``GuardedRequestHandler`` connections that share one guard."""

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, guard=self.guard, loop=self._loop, **self._kwargs)


def guard_for(app: web.Application) -> ConnectionGuard:
    """The guard built from the app's settings (``[server]`` idle timeout, cap, trusted proxies)."""
    from .services import SERVICES_KEY

    server = app[SERVICES_KEY].settings.server
    return ConnectionGuard(server.idle_timeout_seconds, server.max_connections_per_client,
                           Proxies(server.trusted_proxies))


class GuardedRunner(web.AppRunner):
    """``AppRunner`` whose connections are guarded; idle keep-alive ends after the idle timeout."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        self.guard = guard_for(app)
        kwargs.setdefault("keepalive_timeout", self.guard.idle_timeout)
        # After an answer aiohttp reads what is left of an unread body for up to 10 s: a slow sender's bonus.
        kwargs.setdefault("lingering_time", 1.0)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # the app's start-up and handler arguments, as aiohttp does them
        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             loop=asyncio.get_running_loop(), guard=self.guard, **plain._kwargs)


class GuardedSite(web.TCPSite):
    """``TCPSite`` whose TLS handshakes must finish within the idle timeout."""

    def __init__(self, runner: GuardedRunner, host: str | None, port: int, *,
                 ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, **kwargs)
        self._handshake_timeout = runner.guard.idle_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        extra = {"ssl_handshake_timeout": self._handshake_timeout} if self._ssl_context else {}
        self._server = await loop.create_server(server, self._host, self._port, ssl=self._ssl_context,
                                                backlog=self._backlog, reuse_address=self._reuse_address,
                                                reuse_port=self._reuse_port, **extra)


class GuardedSockSite(web.SockSite):
    """``SockSite`` (a socket made elsewhere, as the test server does) with the same handshake limit."""

    def __init__(self, runner: GuardedRunner, sock: Any, *, ssl_context: ssl.SSLContext | None = None,
                 **kwargs: Any) -> None:
        super().__init__(runner, sock, ssl_context=ssl_context, **kwargs)
        self._handshake_timeout = runner.guard.idle_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        extra = {"ssl_handshake_timeout": self._handshake_timeout} if self._ssl_context else {}
        self._server = await loop.create_server(server, sock=self._sock, ssl=self._ssl_context,
                                                backlog=self._backlog, **extra)
