"""HTML pages rendered with jinja2, and versioned static files.

Templates autoescape; pages load only same-origin scripts and styles (the CSP
in ``middleware.py`` forbids inline ones); static URLs carry a content hash
so a new release is never mixed with a cached old file.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from .. import __version__, i18n
from ..services import services_of

LANG_COOKIE = "rs_lang"

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


@lru_cache(maxsize=256)
def _hash(path: str, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """``/static/<name>?v=<content hash>``: cache forever, change on every edit."""
    path = (STATIC_DIR / name).resolve()
    if STATIC_DIR.resolve() not in path.parents or not path.is_file():
        raise FileNotFoundError(name)
    return f"/static/{name}?v={_hash(str(path), path.stat().st_mtime)}"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    env.globals["static_url"] = static_url
    env.globals["version"] = __version__
    return env


_ENV_KEY: web.AppKey[jinja2.Environment] = web.AppKey("jinja", jinja2.Environment)


def page_language(request: web.Request, offered: tuple[str, ...] = i18n.STAFF_LANGUAGES) -> str:
    """``?lang=`` if offered, else the remembered choice, else Accept-Language, else German."""
    chosen = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    return i18n.negotiate(request.headers.get("Accept-Language"), offered, chosen)


def render(request: web.Request, template: str, status: int = 200, *,
           offered: tuple[str, ...] = i18n.STAFF_LANGUAGES, **context: Any) -> web.Response:
    """Render a page in the person's language; remember an explicit ``?lang=`` choice."""
    lang = page_language(request, offered)

    def t(key: str, **values: object) -> str:
        return i18n.translate(lang, key, **values)

    html = request.app[_ENV_KEY].get_template(template).render(
        lang=lang, dir=i18n.direction(lang), t=t, languages=[(code, i18n.NAMES[code]) for code in offered],
        **context)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    if request.query.get("lang") == lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", httponly=True, path="/")
    return response


async def index(request: web.Request) -> web.Response:
    svc = services_of(request.app)
    return render(request, "index.html", base_url=svc.settings.base_url)


async def static_cache_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Versioned URLs are cached for good; the rest (modules imported by a module) revalidate every time."""
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = ("public, max-age=31536000, immutable" if "v" in request.query
                                             else "no-cache")


def setup_pages(app: web.Application) -> None:
    app[_ENV_KEY] = environment()
    # Pages with the invite panel offer e-mail only when the server has an SMTP server.
    app[_ENV_KEY].globals["mail_enabled"] = bool(services_of(app).settings.mail.smtp_host)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False, append_version=False)
    app.on_response_prepare.append(static_cache_headers)
