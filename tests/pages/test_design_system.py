"""The pages' CSS is one small design system: tokens in one place, shared components, each page its own.

Read from the files, without a browser: every page gets base.css and components.css through
base.html and then exactly the stylesheets of its own (its page stylesheet and those of the
components it shows); no script injects a stylesheet; colours and other tokens are defined
in base.css only and every token used is defined there; utilities are defined once.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CSS = ROOT / "web" / "static" / "css"
JS = ROOT / "web" / "static" / "js"
TEMPLATES = ROOT / "web" / "templates"

SHARED = ("base.css", "components.css")
# page template -> the stylesheets it links besides the shared ones (its own, and its components')
PAGES = {
    "index.html": set(),
    "signin.html": {"signin.css"},
    "oidc_error.html": set(),
    "oidc_forward.html": set(),
    "home.html": set(),
    "forbidden.html": set(),
    "console.html": {"console.css", "invite.css"},
    "desk.html": {"desk.css"},
    "operator.html": {"operator.css"},
    "admin.html": set(),
    "reports.html": {"reports.css"},
    "join.html": {"join.css", "connection.css"},
    "room.html": {"room.css", "invite.css", "callpanel.css", "connection.css"},
}
# component stylesheet -> the script that builds the component
COMPONENTS = {"invite.css": "invite.js", "callpanel.css": "callpanel.js", "connection.css": "netadvice.js"}
# custom properties a script sets per element (tiles.js places tiles with them)
SET_BY_SCRIPT = {"--x", "--y", "--w", "--h"}


def links(template: str) -> list[str]:
    return re.findall(r"static_url\('css/([a-z]+\.css)'\)", (TEMPLATES / template).read_text("utf-8"))


def test_every_page_gets_the_shared_styles_first_and_then_only_its_own():
    assert links("base.html") == list(SHARED)
    pages = {p.name for p in TEMPLATES.glob("*.html") if not p.name.startswith("_") and p.name != "base.html"}
    assert pages == set(PAGES), "a page template is missing from this test's map"
    for page, own in PAGES.items():
        text = (TEMPLATES / page).read_text("utf-8")
        assert text.startswith('{% extends "base.html" %}'), page
        linked = links(page)
        assert len(linked) == len(set(linked)), (page, linked)
        assert set(linked) == own, (page, linked)


def test_every_stylesheet_is_used_and_no_page_loads_another_pages():
    sheets = {p.name for p in CSS.glob("*.css")}
    linked = {sheet for own in PAGES.values() for sheet in own} | set(SHARED)
    assert sheets == linked, f"stylesheets nobody links: {sheets - linked}"
    # A page stylesheet belongs to one page; only component stylesheets are shared.
    for sheet in sheets - set(SHARED) - set(COMPONENTS):
        users = [page for page, own in PAGES.items() if sheet in own]
        assert len(users) == 1, (sheet, users)
    # A page links a component's stylesheet because it shows the component.
    for sheet, script in COMPONENTS.items():
        for page, own in PAGES.items():
            if sheet in own:
                page_js = page.replace(".html", ".js")
                assert f'"./{script}"' in (JS / page_js).read_text("utf-8"), (page, script)


def test_no_script_injects_a_stylesheet():
    for script in JS.glob("*.js"):
        text = script.read_text("utf-8")
        assert 'rel: "stylesheet"' not in text and "ensureStyles" not in text, script.name
        assert not re.search(r"createElement\(\s*[\"']link[\"']", text), script.name


def test_tokens_live_in_base_css_and_every_token_used_is_defined():
    base = (CSS / "base.css").read_text("utf-8")
    defined = set(re.findall(r"(--[a-z0-9-]+)\s*:", base))
    assert {"--fg", "--bg", "--accent", "--focus", "--danger", "--stage", "--tap"} <= defined
    for sheet in CSS.glob("*.css"):
        text = re.sub(r"/\*.*?\*/", "", sheet.read_text("utf-8"), flags=re.S)
        used = set(re.findall(r"var\((--[a-z0-9-]+)", text))
        assert not used - defined - SET_BY_SCRIPT, (sheet.name, used - defined - SET_BY_SCRIPT)
        if sheet.name == "base.css":
            continue
        assert not re.findall(r"(?<![\w-])(--[a-z0-9-]+)\s*:", text), f"{sheet.name} defines a token"
        colours = re.findall(r"#[0-9a-fA-F]{3,8}\b|rgba?\(|hsla?\(", text)
        assert not colours, f"{sheet.name} has colours of its own: {colours}"


def test_utilities_are_defined_once():
    for selector in (r"\.visually-hidden\s*\{", r"\[hidden\]\s*\{"):
        where = [s.name for s in CSS.glob("*.css") if re.search(selector, s.read_text("utf-8"))]
        assert where == ["base.css"], (selector, where)
