"""Staff sign-in and sign-out pages, and the small landing page for roles whose own page is still to come.

The form talks to the ``Authenticator`` only (never to argon2 or the password
store): the password check is the pluggable ``PasswordProvider`` behind it, so
an OIDC sign-in can replace the form later without touching these handlers'
callers. The session is the API's session (same cookie, same CSRF token).

Routes:
  GET  /signin   the form (sets the double-submit CSRF cookie); signed in: straight on
  POST /signin   username, password, csrf_token, next → 303 to next or the role's page
  POST /signout  csrf_token (or X-CSRF-Token) → 303 to /signin?signed_out=1
  GET  /home     any signed-in staff member: who is signed in, sign-out
"""

from __future__ import annotations

from aiohttp import web

from ..api.handlers import DEVICE_COOKIE, SESSION_COOKIE, set_device_cookie
from ..core.errors import RoomServerError
from ..domain.auth import Principal
from ..domain.signin import SignInThrottled
from ..services import services_of
from . import pageauth
from .render import render

MAX_USERNAME = 150
MAX_PASSWORD = 1024

# The error code of a refused sign-in → (HTTP status, message key).
_FAILURES = {
    "login_failed": (401, "signin.error.failed"),
    "sign_in_throttled": (429, "signin.error.locked"),
    "local_accounts_off": (403, "signin.error.local_off"),
}


def _form_page(request: web.Request, *, status: int = 200, error: str | None = None, username: str = "",
               next_path: str | None = None, notice: str | None = None) -> web.Response:
    """The sign-in form with a CSRF token: the browser's current one if it has a sound one, else a new one."""
    svc = services_of(request.app)
    token = request.cookies.get(pageauth.SIGNIN_CSRF_COOKIE, "")
    if not (40 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()):
        token = pageauth.new_signin_csrf()
    from .oidc import providers_for_page
    response = render(request, "signin.html", status=status, csrf=token, error=error, username=username,
                      next=next_path or "", notice=notice, principal=None, providers=providers_for_page(request),
                      local_accounts=svc.settings.auth.local_accounts)
    pageauth.set_signin_csrf_cookie(response, svc, token)
    pageauth.no_store(response)
    return response


async def signin_form(request: web.Request) -> web.StreamResponse:
    next_path = pageauth.safe_next(request.query.get("next"))
    principal = await pageauth.current_staff(request)
    if principal is not None:
        raise web.HTTPSeeOther(next_path or pageauth.landing_for(request.app, principal.role))
    notice = "signin.signed_out" if request.query.get("signed_out") == "1" else None
    return _form_page(request, next_path=next_path, notice=notice)


async def signin_submit(request: web.Request) -> web.StreamResponse:
    svc = services_of(request.app)
    form = await request.post()
    username = form.get("username")
    password = form.get("password")
    next_path = pageauth.safe_next(form.get("next") if isinstance(form.get("next"), str) else None)
    username = username.strip() if isinstance(username, str) else ""
    now = svc.now()
    try:
        pageauth.check_signin_csrf(request, form.get(pageauth.CSRF_FIELD))
    except pageauth.CsrfFailed:
        await svc.auth.failed(now, "csrf_failed", "form")
        return _form_page(request, status=403, error="signin.error.csrf", username=username[:MAX_USERNAME],
                          next_path=next_path)
    if not username or not isinstance(password, str) or not password:
        return _form_page(request, status=400, error="signin.error.missing", username=username[:MAX_USERNAME],
                          next_path=next_path)
    try:
        if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            await svc.auth.failed(now, "login_failed", "form")
            raise RoomServerError("login_failed", "Username or password is wrong.", 401)
        signed = await svc.auth.sign_in(username, password, now, address=request.remote or "",
                                        device=request.cookies.get(DEVICE_COOKIE, ""), via="form")
    except RoomServerError as exc:
        status, key = _FAILURES.get(exc.code, (exc.status, "signin.error.other"))
        response = _form_page(request, status=status, error=key, username=username[:MAX_USERNAME],
                              next_path=next_path)
        if isinstance(exc, SignInThrottled):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    session_id, principal = signed.session_id, signed.principal
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await svc.auth.sign_out(old)  # a fresh session per sign-in; the previous one ends here
    target = next_path or pageauth.landing_for(request.app, principal.role)
    response = web.Response(status=303, headers={"Location": target})
    pageauth.no_store(response)
    pageauth.set_session_cookie(response, svc, session_id)
    set_device_cookie(response, svc, signed.device)
    pageauth.clear_signin_csrf_cookie(response)
    return response


async def signout_submit(request: web.Request) -> web.StreamResponse:
    svc = services_of(request.app)
    principal = await pageauth.current_staff(request)
    if principal is None:  # nothing to end: no session, or it has already expired
        response = web.Response(status=303, headers={"Location": "/signin"})
        if request.cookies.get(SESSION_COOKIE):
            pageauth.clear_session_cookie(response)
        return response
    try:
        await pageauth.check_form_csrf(request, principal)
    except pageauth.CsrfFailed:
        return pageauth.forbidden_page(request, principal, reason="csrf")
    session = await svc.auth.session(request.cookies.get(SESSION_COOKIE, ""), svc.now())
    await svc.auth.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    await svc.store.audit.append(at=svc.now(), actor=principal.id, actor_role=principal.role, action="auth.signed_out",
                           detail={"via": "form"} if session is None or not session.provider
                           else {"via": "oidc", "provider": session.provider})
    forward = None
    if session is not None and session.provider:
        from .oidc import end_at_provider
        forward = await end_at_provider(request, session.provider, session.id_token)
    response = forward or web.Response(status=303, headers={"Location": "/signin?signed_out=1"})
    pageauth.no_store(response)
    pageauth.clear_session_cookie(response)
    return response


@pageauth.require_roles()
async def home(request: web.Request, principal: Principal) -> web.StreamResponse:
    response = render(request, "home.html", principal=principal, csrf=principal.csrf)
    pageauth.no_store(response)
    return response


def setup_signin(app: web.Application) -> None:
    app.router.add_get("/signin", signin_form)
    app.router.add_post("/signin", signin_submit)
    app.router.add_post("/signout", signout_submit)
    app.router.add_get("/home", home)
