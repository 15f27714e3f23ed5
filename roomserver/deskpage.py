"""The experts' and interpreters' desk page, and the call panel's directory.

Routes:
  GET /desk            the desk page (experts, interpreters); ``desk.js`` opens ``/desk/ws``
                       (docs/protocol.md, *Desk protocol*) with the session cookie
  GET /desk/directory  for the counsellor's call panel in the room page (counsellor, admin):
                       {"departments": [{id, name, kind, available}],
                        "languages": [{code, label, available}]}
                       ``available``: how many desks serving it are online and available now

Anonymous visitors of the page go to the sign-in form; other roles see the 403 page.
The JSON endpoint answers 401/403 in the API's error shape (``pageauth.page_api``).
"""

from __future__ import annotations

from aiohttp import web

from . import pageauth
from .auth import Principal
from .desk import DESK_ROLES, DESKS_KEY, LANGUAGE_LABELS
from .pages import render
from .services import services_of

CALLER_ROLES = ("counsellor", "admin")


@pageauth.require_roles(*DESK_ROLES)
async def desk_page(request: web.Request, principal: Principal) -> web.StreamResponse:
    svc = services_of(request.app)
    account = svc.store.directory.account(principal.id)
    dept = svc.store.directory.department(account.department_id) if account and account.department_id else None
    languages = sorted(svc.store.directory.languages(principal.id)) if principal.role == "interpreter" else []
    response = render(request, "desk.html", principal=principal, csrf=principal.csrf,
                      department=dept.name if dept else None,
                      desk_languages=[LANGUAGE_LABELS.get(code, code) for code in languages])
    pageauth.no_store(response)
    return response


def _available(request: web.Request) -> tuple[dict[str, int], dict[str, int]]:
    """Desks online and available now, per department and per language."""
    by_dept: dict[str, int] = {}
    by_lang: dict[str, int] = {}
    desks = request.app.get(DESKS_KEY)
    if desks is None:
        return by_dept, by_lang
    for desk in desks.board.desks.values():
        if not desk.can_ring():
            continue
        if desk.role == "expert" and desk.department_id:
            by_dept[desk.department_id] = by_dept.get(desk.department_id, 0) + 1
        elif desk.role == "interpreter":
            for code in desk.languages:
                by_lang[code] = by_lang.get(code, 0) + 1
    return by_dept, by_lang


@pageauth.page_api(*CALLER_ROLES)
async def directory(request: web.Request, principal: Principal) -> web.StreamResponse:
    svc = services_of(request.app)
    by_dept, by_lang = _available(request)
    departments = [{"id": d.id, "name": d.name, "kind": d.kind, "available": by_dept.get(d.id, 0)}
                   for d in svc.store.directory.departments()]
    languages = [{"code": code, "label": LANGUAGE_LABELS.get(code, code), "available": by_lang.get(code, 0)}
                 for code in svc.store.directory.all_languages()]
    languages.sort(key=lambda lang: (lang["code"] != "dgs", lang["label"]))  # sign language first
    return web.json_response({"departments": departments, "languages": languages})


def setup_deskpage(app: web.Application) -> None:
    app.router.add_get("/desk", desk_page)
    app.router.add_get("/desk/directory", directory)
