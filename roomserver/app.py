"""The aiohttp application factory: plugs the edges onto one set of services."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from . import api, middleware, pages
from .adminpage import setup_adminpage
from .auditlog import setup_audit
from .console import setup_console
from .desk import setup_desks
from .deskpage import setup_deskpage
from .echo import setup_echo
from .joinpage import setup_joinpage
from .metrics import setup_metrics
from .monitor import setup_monitor
from .roompage import setup_roompage
from .signalling import setup_signalling
from .signin import setup_signin
from .services import SERVICES_KEY, Services
from .webhooks import setup_webhooks

# Access log lines without client addresses or query strings; tokens are never in
# URLs (join links carry them in the fragment, WebSockets in the first message).


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path without query string, status, size, seconds.

    No client address, no query string (a search or a mistaken client could put
    a name or token there), no Referer or User-Agent. Installed through the
    application's ``handler_args``, so every runner (the server, the tests) uses it.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %s %.3fs", request.method, request.rel_url.path, response.status,
                         response.body_length, time)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class _NoClientAddress(logging.Filter):
    """aiohttp logs a malformed request as "Error handling request from <address>": keep the error, drop the address."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Error handling request from"):
            record.msg, record.args = "Error handling request", ()
        return True


_ADDRESS_FILTER = _NoClientAddress()
logging.getLogger("aiohttp.server").addFilter(_ADDRESS_FILTER)


async def _hide_versions(request: web.Request, response: web.StreamResponse) -> None:
    """No ``Server: Python/x aiohttp/y``: versions help only an attacker."""
    response.headers["Server"] = "roomserver"


def create_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[middleware.security_headers, middleware.errors],
        client_max_size=services.settings.server.max_body_bytes,
        handler_args={"access_log_class": AccessLogger},
    )
    app[SERVICES_KEY] = services
    app.on_response_prepare.append(_hide_versions)
    api.setup_routes(app)
    pages.setup_pages(app)
    setup_signalling(app)
    setup_desks(app)
    setup_deskpage(app)
    setup_roompage(app)
    setup_signin(app)
    setup_console(app)
    setup_joinpage(app)
    setup_echo(app)
    setup_adminpage(app)
    setup_monitor(app)
    setup_metrics(app)
    setup_webhooks(app)
    setup_audit(app)
    return app
