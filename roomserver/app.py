"""The aiohttp application factory: plugs the edges onto one set of services."""

from __future__ import annotations

from aiohttp import web

from . import api, middleware, pages
from .signalling import setup_signalling
from .services import SERVICES_KEY, Services

# Access log lines without client addresses or query strings; tokens are never in
# URLs (join links carry them in the fragment, WebSockets in the first message).
ACCESS_LOG_FORMAT = '"%r" %s %b %Tfs'


def create_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[middleware.security_headers, middleware.errors],
        client_max_size=services.settings.server.max_body_bytes,
    )
    app[SERVICES_KEY] = services
    api.setup_routes(app)
    pages.setup_pages(app)
    setup_signalling(app)
    return app
