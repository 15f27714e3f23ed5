"""The aiohttp application factory: plugs the edges onto one set of services."""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from . import middleware
from .api import handlers as api
from .connections import Proxies
from .api.reports import setup_reports_api
from .ops.alerts import setup_alerts
from .ops.auditlog import setup_audit
from .ops.metrics import setup_metrics
from .ops.monitor import setup_monitor
from .ops.retention import setup_retention
from .ops.mailer import setup_mailer
from .ops.outbox import setup_outbox
from .ops.webhooks import setup_webhooks
from .pages import render as pages
from .pages.admin import setup_adminpage
from .pages.console import setup_console
from .pages.desk import setup_deskpage
from .pages.join import setup_joinpage
from .pages.reports import setup_reportspage
from .pages.room import setup_roompage
from .pages.oidc import setup_oidc
from .pages.signin import setup_signin
from .peer.echo import setup_echo
from .services import SERVICES_KEY, Services
from .ws import setup_signalling
from .ws.desks import setup_desks

# Access log lines without client addresses or query strings; tokens are never in
# URLs (join links carry them in the fragment, WebSockets in the first message), and
# the code of a short link (/j/K7QM-3XWD-9FHT) is cut from the logged path.
_SHORT_LINK = re.compile(r"^/[jJ]/.+")


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, path without query string, status, size, seconds.

    No client address, no query string (a search or a mistaken client could put
    a name or token there), no Referer or User-Agent. Installed through the
    application's ``handler_args``, so every runner (the server, the tests) uses it.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.rel_url.path
        if _SHORT_LINK.match(path) and path != "/j/resolve":
            path = path[:3] + "…"
        self.logger.info("%s %s %s %s %.3fs", request.method, path, response.status, response.body_length, time)

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
    server = services.settings.server
    app = web.Application(
        middlewares=[middleware.forwarded(Proxies(server.trusted_proxies)), middleware.errors,
                     middleware.body_timeout(server.body_timeout_seconds)],
        client_max_size=services.settings.server.max_body_bytes,
        handler_args={"access_log_class": AccessLogger},
    )
    app[SERVICES_KEY] = services
    app.on_response_prepare.append(_hide_versions)
    app.on_response_prepare.append(middleware.security_headers)
    app.on_response_prepare.append(middleware.https_answers(server.hsts_seconds))
    api.setup_routes(app)
    pages.setup_pages(app)
    setup_signalling(app)
    setup_desks(app)
    setup_deskpage(app)
    setup_roompage(app)
    setup_signin(app)
    setup_oidc(app)
    setup_console(app)
    setup_joinpage(app)
    setup_echo(app)
    setup_adminpage(app)
    setup_monitor(app)
    setup_metrics(app)
    setup_outbox(app)
    setup_webhooks(app)
    setup_mailer(app)
    setup_audit(app)
    setup_retention(app)
    setup_reports_api(app)
    setup_reportspage(app)
    setup_alerts(app)
    return app
