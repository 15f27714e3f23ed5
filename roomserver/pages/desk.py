"""The experts' and interpreters' desk page, and the call panel's directory.

Routes:
  GET /desk            the desk page (experts, interpreters); ``desk.js`` opens ``/desk/ws``
                       (docs/protocol.md, *Desk protocol*) with the session cookie
  GET /desk/directory  for the counsellor's call panel in the room page (counsellor, admin):
                       {"departments": [{id, name, kind, available}],
                        "languages": [{code, label, available}]}
                       ``available``: how many desks serving it are online and available now;
                       the asking person's own department is left out

Anonymous visitors of the page go to the sign-in form; other roles see the 403 page.
The JSON endpoint answers 401/403 in the API's error shape (``pageauth.page_api``).
"""

from __future__ import annotations

from aiohttp import web

from ..domain.auth import Principal
from ..services import services_of
from ..ws.desks import DESK_ROLES, DESKS_KEY, LANGUAGE_LABELS
from . import pageauth
from .render import render

CALLER_ROLES = ("counsellor", "admin")


@pageauth.require_roles(*DESK_ROLES)
async def desk_page(request: web.Request, principal: Principal) -> web.StreamResponse:
    svc = services_of(request.app)
    account = await svc.store.directory.account(principal.id)
    dept = await svc.store.directory.department(account.department_id) if account and account.department_id else None
    languages = sorted(await svc.store.directory.languages(principal.id)) if principal.role == "interpreter" else []
    response = render(request, "desk.html", principal=principal, csrf=principal.csrf,
                      department=dept.name if dept else None,
                      desk_languages=[LANGUAGE_LABELS.get(code, code) for code in languages])
    pageauth.no_store(response)
    return response


@pageauth.page_api(*CALLER_ROLES)
async def directory(request: web.Request, principal: Principal) -> web.StreamResponse:
    svc = services_of(request.app)
    desks = request.app.get(DESKS_KEY)
    by_dept, by_lang = await desks.available() if desks is not None else ({}, {})
    account = await svc.store.directory.account(principal.id)
    own = account.department_id if account else None  # a counsellor does not call her own office
    departments = [{"id": d.id, "name": d.name, "kind": d.kind, "available": by_dept.get(d.id, 0)}
                   for d in await svc.store.directory.departments() if d.id != own]
    languages = [{"code": code, "label": LANGUAGE_LABELS.get(code, code), "available": by_lang.get(code, 0)}
                 for code in await svc.store.directory.all_languages()]
    languages.sort(key=lambda lang: (lang["code"] != "dgs", lang["label"]))  # sign language first
    return web.json_response({"departments": departments, "languages": languages})


def setup_deskpage(app: web.Application) -> None:
    app.router.add_get("/desk", desk_page)
    app.router.add_get("/desk/directory", directory)
