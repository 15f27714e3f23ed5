"""Sign-in through an organisation's OpenID Provider (the agency's, the county's, …).

Routes:
  GET  /signin/oidc/<name>             sets the browser-binding cookie, 303 to the provider
  GET  /signin/oidc/<name>/callback    the provider sends the person back: checks, account, session
  GET  /signin/oidc/signed-out         the provider's post-logout redirect: on to /signin?signed_out=1
  POST /signin/oidc/<name>/backchannel-logout   the provider ends sessions (OpenID Back-Channel Logout)

Two browser rules shape the answers. The session cookie is SameSite=Strict, and a browser
does not send it on a navigation that a cross-site redirect chain started; so the callback
sets the cookie and answers with a short page that forwards (meta refresh, same origin) to
the start page. The pages' CSP has form-action 'self', so a sign-out form may not be
redirected to the provider; sign-out answers with a page that forwards there instead. The
binding cookie is SameSite=Lax: it must come along on the provider's top-level redirect back.
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from ..api.handlers import SESSION_COOKIE
from ..domain.oidc import OidcError
from ..services import services_of
from . import pageauth
from .render import render

log = logging.getLogger(__name__)

BINDING_COOKIE = "rs_oidc"
_STATUS = {"unreachable": 502, "config": 502, "cancelled": 400, "clock": 400, "replayed": 400, "expired": 400,
           "invalid": 400, "token": 400, "unmapped": 403, "disabled": 403}
SIGNED_OUT_PATH = "/signin/oidc/signed-out"


def providers_for_page(request: web.Request) -> list[tuple[str, str]]:
    """(name, button label) of every provider, in config order."""
    svc = services_of(request.app)
    return [(name, p.display_name) for name, p in svc.settings.oidc.items()]


def _error_page(request: web.Request, exc: OidcError, provider: str) -> web.Response:
    svc = services_of(request.app)
    label = svc.settings.oidc[provider].display_name if provider in svc.settings.oidc else provider
    response = render(request, "oidc_error.html", status=_STATUS.get(exc.kind, 400), kind=exc.kind,
                      code=exc.code, provider=provider, provider_label=label, principal=None,
                      local=svc.settings.auth.local_accounts)
    pageauth.no_store(response)
    response.del_cookie(BINDING_COOKIE, path="/signin/oidc")
    return response


async def _refused(request: web.Request, exc: OidcError, provider: str, now: int) -> web.Response:
    svc = services_of(request.app)
    log.info("oidc %s: sign-in refused: %s", provider, exc)
    await svc.store.audit.append(at=now, actor="anonymous", action="auth.sign_in_failed",
                                 detail={"via": "oidc", "provider": provider, "code": exc.code})
    if exc.account_id:
        await _close_desks(request, exc.account_id)
    return _error_page(request, exc, provider)


async def _close_desks(request: web.Request, account_id: str) -> None:
    """Sessions ended: an open desk of the account closes too, as when an administrator disables it."""
    from ..ws.desks import DESKS_KEY
    await request.app[DESKS_KEY].close_account(account_id)


async def start(request: web.Request) -> web.StreamResponse:
    svc = services_of(request.app)
    name = request.match_info["name"]
    now = svc.now()
    if svc.oidc is None or name not in svc.settings.oidc:
        raise web.HTTPNotFound()
    next_path = pageauth.safe_next(request.query.get("next"))
    binding = secrets.token_urlsafe(32)
    try:
        started = await svc.oidc.begin(name, binding=binding, next_path=next_path, now=now)
    except OidcError as exc:
        return await _refused(request, exc, name, now)
    response = web.Response(status=303, headers={"Location": started.url})
    pageauth.no_store(response)
    response.set_cookie(BINDING_COOKIE, binding, max_age=900, httponly=True, samesite="Lax",
                        secure=svc.cookie_secure, path="/signin/oidc")
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    svc = services_of(request.app)
    name = request.match_info["name"]
    now = svc.now()
    if svc.oidc is None or name not in svc.settings.oidc:
        raise web.HTTPNotFound()
    try:
        done = await svc.oidc.finish(name, request.query, binding=request.cookies.get(BINDING_COOKIE, ""), now=now)
    except OidcError as exc:
        return await _refused(request, exc, name, now)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await svc.auth.sign_out(old)
    sid = done.claims.get("sid") if isinstance(done.claims.get("sid"), str) else None
    session_id, principal = await svc.auth.sign_in_account(done.account, now, lifetime=done.lifetime, provider=name,
                                                           id_token=done.id_token, sid=sid)
    detail = {"via": "oidc", "provider": name, "matched": done.mapped.matched}
    if done.created:
        detail["created"] = True
    await svc.store.audit.append(at=now, actor=principal.id, actor_role=principal.role, action="auth.signed_in",
                                 detail=detail)
    target = done.next_path or pageauth.landing_for(request.app, principal.role)
    response = render(request, "oidc_forward.html", target=target, principal=None, kind="signed_in")
    pageauth.no_store(response)
    response.set_cookie(SESSION_COOKIE, session_id, max_age=done.lifetime, httponly=True, samesite="Strict",
                        secure=svc.cookie_secure, path="/")
    response.del_cookie(BINDING_COOKIE, path="/signin/oidc")
    return response


async def signed_out(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": "/signin?signed_out=1"})
    pageauth.no_store(response)
    return response


async def end_at_provider(request: web.Request, provider: str, id_token: str | None) -> web.Response | None:
    """After the local session ended: the page forwarding to the provider's end-session endpoint, if any."""
    svc = services_of(request.app)
    if svc.oidc is None:
        return None
    url = await svc.oidc.end_session_url(provider, id_token, svc.settings.base_url + SIGNED_OUT_PATH)
    if url is None:
        return None
    response = render(request, "oidc_forward.html", target=url, principal=None, kind="signing_out")
    pageauth.no_store(response)
    return response


async def backchannel_logout(request: web.Request) -> web.StreamResponse:
    """OpenID Connect Back-Channel Logout 1.0: the provider ends a person's sessions (no browser involved)."""
    svc = services_of(request.app)
    name = request.match_info["name"]
    now = svc.now()
    if svc.oidc is None or name not in svc.settings.oidc:
        raise web.HTTPNotFound()
    form = await request.post()
    token = form.get("logout_token")
    headers = {"Cache-Control": "no-store"}
    if not isinstance(token, str) or not token:
        return web.json_response({"error": "invalid_request", "error_description": "logout_token missing"},
                                 status=400, headers=headers)
    try:
        ended, account_id = await svc.oidc.backchannel_logout(name, token, now)
    except OidcError as exc:
        log.info("oidc %s: back-channel logout refused: %s", name, exc)
        await svc.store.audit.append(at=now, actor=f"oidc:{name}", action="auth.backchannel_logout_refused",
                                     detail={"provider": name, "code": exc.code})
        status = 502 if exc.kind in ("unreachable", "config") else 400
        return web.json_response({"error": "invalid_request", "error_description": exc.code}, status=status,
                                 headers=headers)
    await svc.store.audit.append(at=now, actor=f"oidc:{name}", action="auth.signed_out", subject=account_id,
                                 detail={"via": "backchannel", "provider": name, "sessions": ended})
    if account_id:
        await _close_desks(request, account_id)
    return web.Response(status=200, headers=headers)


def setup_oidc(app: web.Application) -> None:
    app.router.add_get(SIGNED_OUT_PATH, signed_out)
    app.router.add_get("/signin/oidc/{name}", start)
    app.router.add_get("/signin/oidc/{name}/callback", callback)
    app.router.add_post("/signin/oidc/{name}/backchannel-logout", backchannel_logout)
