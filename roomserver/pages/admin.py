"""The admin page at ``/admin``: departments and staff accounts.

The page is a shell in the person's language; ``admin.js`` lists and changes the
directory through the REST API (``/api/v1/departments``, ``/api/v1/accounts``)
with the session cookie and the session's CSRF token, so the page can do no more
than the API allows an admin.
"""

from __future__ import annotations

from aiohttp import web

from ..domain.auth import Principal
from . import pageauth
from .render import render

# Interpreter languages offered as checkboxes (others can be typed in); German Sign Language first.
LANGUAGES = ("dgs", "ar", "fa", "tr", "uk", "ru", "en", "fr", "ku", "ti", "ps", "so")
ROLES = ("expert", "interpreter", "counsellor", "operator", "admin")


@pageauth.require_roles("admin")
async def admin_page(request: web.Request, principal: Principal) -> web.StreamResponse:
    response = render(request, "admin.html", principal=principal, csrf=principal.csrf, interpreter_languages=LANGUAGES,
                      roles=ROLES)
    pageauth.no_store(response)
    return response


def setup_adminpage(app: web.Application) -> None:
    app.router.add_get("/admin", admin_page)
