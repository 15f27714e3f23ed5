"""The aiohttp application factory: plugs the edges onto one set of services."""

from __future__ import annotations

from aiohttp import web

from . import api, middleware, pages
from .console import setup_console
from .desk import setup_desks
from .echo import setup_echo
from .joinpage import setup_joinpage
from .roompage import setup_roompage
from .signalling import setup_signalling
from .signin import setup_signin
from .services import SERVICES_KEY, Services

# Access log lines without client addresses or query strings; tokens are never in
# URLs (join links carry them in the fragment, WebSockets in the first message).
ACCESS_LOG_FORMAT = '"%r" %s %b %Tfs'


async def _hide_versions(request: web.Request, response: web.StreamResponse) -> None:
    """No ``Server: Python/x aiohttp/y``: versions help only an attacker."""
    response.headers["Server"] = "roomserver"


def create_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[middleware.security_headers, middleware.errors],
        client_max_size=services.settings.server.max_body_bytes,
    )
    app[SERVICES_KEY] = services
    app.on_response_prepare.append(_hide_versions)
    api.setup_routes(app)
    pages.setup_pages(app)
    setup_signalling(app)
    setup_desks(app)
    setup_roompage(app)
    setup_signin(app)
    setup_console(app)
    setup_joinpage(app)
    setup_echo(app)
    return app
