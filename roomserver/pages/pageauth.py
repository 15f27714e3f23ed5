"""Who is looking at a page, what they may open, and CSRF checks for pages and their JSON endpoints.

The REST API (``api.authenticate``) answers in JSON; pages answer people: an
anonymous visitor is sent to the sign-in form (with a safe ``next=``), a signed-in
person of the wrong role sees a plain 403 page. The session is the one the API
uses (cookie ``rs_session``), so a person signed in on a page can call the API
from JavaScript with the session's CSRF token in ``X-CSRF-Token``.

CSRF scheme
-----------
* Sign-in form (no session yet): double submit. ``GET /signin`` sets a random
  token in the cookie ``rs_signin_csrf`` (HttpOnly, SameSite=Strict) and puts the
  same value in a hidden field; ``POST /signin`` must carry both, equal,
  compared in constant time.
* Every state-changing request of a signed-in person (forms and page JSON
  endpoints): the session's own CSRF token, sent as the hidden field
  ``csrf_token`` or the ``X-CSRF-Token`` header, compared in constant time.
  Pages expose it to scripts in ``<meta name="csrf-token">``.
* Defence in depth on both: a request whose ``Origin`` header names another
  origin is refused whatever token it carries.
"""

from __future__ import annotations

import hmac
import secrets
from functools import wraps
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web

from ..api.handlers import CSRF_HEADER, SESSION_COOKIE
from ..core.errors import RoomServerError
from ..domain.auth import Principal
from ..services import Services, services_of
from .render import render

CSRF_FIELD = "csrf_token"
SIGNIN_CSRF_COOKIE = "rs_signin_csrf"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where the principal of a request is kept once looked up (aiohttp >= 3.12 has typed request keys).
_PRINCIPAL_KEY: Any = (web.RequestKey("roomserver.page_principal") if hasattr(web, "RequestKey")
                       else "roomserver.page_principal")
MAX_NEXT = 512

# Where each role lands after sign-in. The first path that is routed wins, so the
# desk (experts, interpreters) and the operator dashboard take over once they exist.
_LANDING: dict[str, tuple[str, ...]] = {
    "counsellor": ("/console",),
    "admin": ("/console",),
    "expert": ("/desk", "/home"),
    "interpreter": ("/desk", "/home"),
    "operator": ("/operator", "/home"),
}

PageHandler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CsrfFailed(Exception):
    """A state-changing request without a valid CSRF token (or from another origin)."""


# who ------------------------------------------------------------------------

async def current_staff(request: web.Request) -> Principal | None:
    """The signed-in staff member behind the session cookie, or None (no cookie, expired, disabled)."""
    if _PRINCIPAL_KEY in request:
        return request[_PRINCIPAL_KEY]  # type: ignore[no-any-return]
    principal = None
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        svc = services_of(request.app)
        found = await svc.auth.from_session(session_id, svc.now())
        if found is not None and found.kind == "staff":
            principal = found
    request[_PRINCIPAL_KEY] = principal
    return principal


def landing_for(app: web.Application, role: str) -> str:
    """The page a person of ``role`` starts on after sign-in."""
    routed = {getattr(resource, "canonical", None) for resource in app.router.resources()}
    for path in _LANDING.get(role, ("/home",)):
        if path in routed:
            return path
    return "/home"


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a same-origin path (``/x?y``), else None: never another host or scheme."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or " " in value or not value.isprintable():
        return None  # browsers read "/\evil" as "//evil"; controls and spaces have no place in a path
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    if parts.path in ("/signin", "/signout"):
        return None  # no loops through the sign-in form
    return value


def signin_url(request: web.Request) -> str:
    """The sign-in form, with the current page as ``next`` when it can come back to it."""
    target = request.path_qs if request.method in _SAFE_METHODS else None
    target = safe_next(target)
    return "/signin" if target is None else "/signin?next=" + quote(target, safe="/")


def _redirect_to_signin(request: web.Request) -> web.Response:
    response = web.Response(status=303, headers={"Location": signin_url(request), "Cache-Control": "no-store"})
    if request.cookies.get(SESSION_COOKIE):  # a stale cookie: the session expired or was ended
        clear_session_cookie(response)
    return response


def forbidden_page(request: web.Request, principal: Principal | None, reason: str = "role") -> web.Response:
    """The plain 403 page: ``reason`` is ``role`` (page not for this role) or ``csrf`` (stale form)."""
    landing = landing_for(request.app, principal.role) if principal else "/signin"
    response = render(request, "forbidden.html", status=403, principal=principal, reason=reason,
                      landing=landing, csrf=principal.csrf if principal else "")
    no_store(response)
    return response


def require_roles(*roles: str) -> Callable[[PageHandler], Handler]:
    """Decorate a page handler ``(request, principal)``: anonymous → sign-in, wrong role → 403 page.

    With no roles named, any signed-in staff member may open the page.
    """
    allowed = frozenset(roles)

    def decorate(handler: PageHandler) -> Handler:
        @wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            principal = await current_staff(request)
            if principal is None:
                return _redirect_to_signin(request)
            if allowed and principal.role not in allowed:
                return forbidden_page(request, principal)
            return await handler(request, principal)
        return wrapper
    return decorate


def page_api(*roles: str) -> Callable[[PageHandler], Handler]:
    """Decorate a page JSON endpoint ``(request, principal)``: session cookie, CSRF header, role.

    Refusals travel as ``RoomServerError`` so they come back in the API's JSON
    error shape: 401 ``unauthenticated``, 403 ``csrf_failed`` / ``forbidden``.
    """
    allowed = frozenset(roles)

    def decorate(handler: PageHandler) -> Handler:
        @wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            principal = await current_staff(request)
            if principal is None:
                raise RoomServerError("unauthenticated", "Sign in first; the session is missing or has expired.",
                                      401)
            if request.method not in _SAFE_METHODS:
                try:
                    check_csrf(request, principal, request.headers.get(CSRF_HEADER))
                except CsrfFailed:
                    raise RoomServerError("csrf_failed", "The request lacks a valid X-CSRF-Token header.",
                                          403) from None
            if allowed and principal.role not in allowed:
                raise RoomServerError("forbidden", f"The role {principal.role} may not do this.", 403)
            response = await handler(request, principal)
            no_store(response)
            return response
        return wrapper
    return decorate


# CSRF -----------------------------------------------------------------------

def tokens_equal(sent: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site or origin.

    ``Sec-Fetch-Site`` (sent by current browsers on every request) must not be
    ``cross-site`` or ``same-site``; an ``Origin`` header must name us. Our
    ``Referrer-Policy: no-referrer`` makes browsers send ``Origin: null`` on form
    posts, so ``null`` (like a missing header) leaves the decision to the token.
    """
    if request.headers.get("Sec-Fetch-Site", "same-origin").lower() in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True  # not every client sends it; the token still decides
    svc = services_of(request.app)
    own = {_origin_of(svc.settings.base_url), f"{request.scheme}://{request.host}".lower()}
    return origin.lower() in own


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_csrf(request: web.Request, principal: Principal, sent: str | None) -> None:
    """Raise ``CsrfFailed`` unless ``sent`` is the session's CSRF token and the origin is ours."""
    if not same_origin(request) or not tokens_equal(sent, principal.csrf):
        raise CsrfFailed()


async def check_form_csrf(request: web.Request, principal: Principal) -> Any:
    """Read a signed-in form and check its CSRF token (field ``csrf_token`` or the header); the form."""
    form = await request.post()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str):
        sent = request.headers.get(CSRF_HEADER)
    check_csrf(request, principal, sent)
    return form


def new_signin_csrf() -> str:
    return secrets.token_urlsafe(32)


def check_signin_csrf(request: web.Request, sent: object) -> None:
    """The double-submit check of the sign-in form: cookie and field present and equal."""
    cookie = request.cookies.get(SIGNIN_CSRF_COOKIE)
    if not same_origin(request) or not isinstance(sent, str) or not tokens_equal(sent, cookie):
        raise CsrfFailed()


# cookies and headers --------------------------------------------------------

def set_session_cookie(response: web.StreamResponse, svc: Services, session_id: str) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, max_age=svc.settings.auth.session_lifetime_seconds,
                        httponly=True, samesite="Strict", secure=svc.cookie_secure, path="/")


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def set_signin_csrf_cookie(response: web.StreamResponse, svc: Services, token: str) -> None:
    response.set_cookie(SIGNIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="Strict",
                        secure=svc.cookie_secure, path="/signin")


def clear_signin_csrf_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SIGNIN_CSRF_COOKIE, path="/signin")


def no_store(response: web.StreamResponse) -> None:
    """Pages and answers that carry a person's data or a CSRF token are never cached."""
    response.headers["Cache-Control"] = "no-store"
