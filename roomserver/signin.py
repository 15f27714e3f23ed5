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

from . import pageauth
from .api import SESSION_COOKIE
from .auth import Principal
from .errors import RoomServerError
from .pages import render
from .services import services_of

MAX_USERNAME = 150
MAX_PASSWORD = 1024

# The error code of a refused sign-in → (HTTP status, message key).
_FAILURES = {
    "login_failed": (401, "signin.error.failed"),
    "account_locked": (429, "signin.error.locked"),
}


def _form_page(request: web.Request, *, status: int = 200, error: str | None = None, username: str = "",
               next_path: str | None = None, notice: str | None = None) -> web.Response:
    """The sign-in form with a CSRF token: the browser's current one if it has a sound one, else a new one."""
    svc = services_of(request.app)
    token = request.cookies.get(pageauth.SIGNIN_CSRF_COOKIE, "")
    if not (40 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()):
        token = pageauth.new_signin_csrf()
    response = render(request, "signin.html", status=status, csrf=token, error=error, username=username,
                      next=next_path or "", notice=notice, principal=None)
    pageauth.set_signin_csrf_cookie(response, svc, token)
    pageauth.no_store(response)
    return response


async def signin_form(request: web.Request) -> web.StreamResponse:
    next_path = pageauth.safe_next(request.query.get("next"))
    principal = pageauth.current_staff(request)
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
        svc.store.audit.append(at=now, actor="anonymous", action="auth.sign_in_failed",
                               detail={"code": "csrf_failed", "via": "form"})
        return _form_page(request, status=403, error="signin.error.csrf", username=username[:MAX_USERNAME],
                          next_path=next_path)
    if not username or not isinstance(password, str) or not password:
        return _form_page(request, status=400, error="signin.error.missing", username=username[:MAX_USERNAME],
                          next_path=next_path)
    try:
        if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            raise RoomServerError("login_failed", "Username or password is wrong.", 401)
        session_id, principal = svc.auth.sign_in(username, password, now)
    except RoomServerError as exc:
        svc.store.audit.append(at=now, actor="anonymous", action="auth.sign_in_failed",
                               detail={"code": exc.code, "via": "form"})
        status, key = _FAILURES.get(exc.code, (exc.status, "signin.error.other"))
        response = _form_page(request, status=status, error=key, username=username[:MAX_USERNAME],
                              next_path=next_path)
        if exc.code == "account_locked":
            response.headers["Retry-After"] = str(_locked_for(request, username, now))
        return response
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        svc.auth.sign_out(old)  # a fresh session per sign-in; the previous one ends here
    svc.store.audit.append(at=now, actor=principal.id, actor_role=principal.role, action="auth.signed_in",
                           detail={"via": "form"})
    target = next_path or pageauth.landing_for(request.app, principal.role)
    response = web.Response(status=303, headers={"Location": target})
    pageauth.no_store(response)
    pageauth.set_session_cookie(response, svc, session_id)
    pageauth.clear_signin_csrf_cookie(response)
    return response


def _locked_for(request: web.Request, username: str, now: int) -> int:
    """Seconds until a locked account may try again (the lock-out already says the account exists)."""
    svc = services_of(request.app)
    account = svc.store.directory.by_username(username)
    if account is None or account.locked_until is None:
        return svc.settings.auth.lockout_seconds
    return max(1, account.locked_until - now)


async def signout_submit(request: web.Request) -> web.StreamResponse:
    svc = services_of(request.app)
    principal = pageauth.current_staff(request)
    if principal is None:  # nothing to end: no session, or it has already expired
        response = web.Response(status=303, headers={"Location": "/signin"})
        if request.cookies.get(SESSION_COOKIE):
            pageauth.clear_session_cookie(response)
        return response
    try:
        await pageauth.check_form_csrf(request, principal)
    except pageauth.CsrfFailed:
        return pageauth.forbidden_page(request, principal, reason="csrf")
    svc.auth.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    svc.store.audit.append(at=svc.now(), actor=principal.id, actor_role=principal.role, action="auth.signed_out",
                           detail={"via": "form"})
    response = web.Response(status=303, headers={"Location": "/signin?signed_out=1"})
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
