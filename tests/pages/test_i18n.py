"""The translation catalogs: complete, no empty texts, same placeholders; every key in use exists.

Citizen pages (``app.``, ``index.``, ``join.``, ``room.``) are in all seven citizen
languages; staff pages in German with English. German is the reference and the fallback:
a missing translation shows the German text, never the key — and this test names it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from roomserver import i18n

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "web" / "templates"
SCRIPTS = ROOT / "web" / "static" / "js"
CITIZEN_PREFIXES = ("app.", "index.", "join.", "mail.", "room.")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# t("key") / t('key') in templates and scripts; a key built at run time (t(`x.${y}`)) is not seen here.
USED_KEY = re.compile(r"""(?<![\w.$])t\(\s*["']([A-Za-z0-9_.\-]+)["']\s*[,)]""")
# A dynamic key's fixed prefix: t(`room.event.left_${reason}`) -> "room.event.left_".
DYNAMIC_PREFIX = re.compile(r"""(?<![\w.$])t\(\s*(?:`([A-Za-z0-9_.\-]+)\$\{|["']([A-Za-z0-9_.\-]+)["']\s*~)""")
# (JavaScript template strings, and Jinja concatenation: t("join." ~ screen ~ ".title").)


def load(lang: str) -> dict[str, str]:
    return json.loads((i18n.CATALOG_DIR / f"{lang}.json").read_text(encoding="utf-8"))


GERMAN = load("de")
CITIZEN_KEYS = sorted(k for k in GERMAN if k.startswith(CITIZEN_PREFIXES))


def test_every_citizen_language_has_a_catalog() -> None:
    assert set(i18n.CITIZEN_LANGUAGES) <= set(i18n.available())
    assert set(i18n.RTL) == {"ar", "fa"}
    assert all(code in i18n.NAMES for code in i18n.CITIZEN_LANGUAGES)


@pytest.mark.parametrize("lang", [code for code in i18n.CITIZEN_LANGUAGES if code != "de"])
def test_citizen_catalog_has_every_citizen_key(lang: str) -> None:
    catalog = load(lang)
    missing = [k for k in CITIZEN_KEYS if k not in catalog]
    assert not missing, f"{lang}.json lacks {len(missing)} citizen keys (German is shown instead): {missing}"


@pytest.mark.parametrize("lang", [code for code in i18n.CITIZEN_LANGUAGES if code not in i18n.STAFF_LANGUAGES])
def test_citizen_only_catalog_has_no_stray_keys(lang: str) -> None:
    """tr/ar/uk/ru/fa hold citizen keys only (staff pages are German and English), none German lacks."""
    stray = [k for k in load(lang) if k not in GERMAN or not k.startswith(CITIZEN_PREFIXES)]
    assert not stray, f"{lang}.json has keys that are not German citizen keys: {stray}"


def test_english_has_every_german_key() -> None:
    missing = [k for k in GERMAN if k not in load("en")]
    assert not missing, f"en.json lacks: {missing}"
    extra = [k for k in load("en") if k not in GERMAN]
    assert not extra, f"en.json has keys German lacks: {extra}"


@pytest.mark.parametrize("lang", i18n.available())
def test_no_empty_texts(lang: str) -> None:
    empty = [k for k, v in load(lang).items() if not isinstance(v, str) or not v.strip()]
    assert not empty, f"{lang}.json has empty texts: {empty}"


@pytest.mark.parametrize("lang", [code for code in i18n.available() if code != "de"])
def test_placeholders_match_german(lang: str) -> None:
    wrong = {}
    for key, text in load(lang).items():
        if key in GERMAN:
            want = sorted(PLACEHOLDER.findall(GERMAN[key]))
            got = sorted(PLACEHOLDER.findall(text))
            if want != got:
                wrong[key] = (want, got)
    assert not wrong, f"{lang}.json placeholders differ from German: {wrong}"


@pytest.mark.parametrize("lang", i18n.available())
def test_catalog_is_a_flat_object_without_duplicate_keys(lang: str) -> None:
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        dupes = {k for k in keys if keys.count(k) > 1}
        assert not dupes, f"{lang}.json repeats keys: {dupes}"
        return dict(pairs)

    data = json.loads((i18n.CATALOG_DIR / f"{lang}.json").read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    assert all(isinstance(v, str) for v in data.values())


def _sources() -> list[Path]:
    return sorted([*TEMPLATES.glob("*.html"), *SCRIPTS.glob("*.js")])


def test_every_key_used_in_templates_and_scripts_exists() -> None:
    missing: dict[str, list[str]] = {}
    seen = 0
    for path in _sources():
        for key in USED_KEY.findall(path.read_text(encoding="utf-8")):
            seen += 1
            if key not in GERMAN:
                missing.setdefault(path.name, []).append(key)
    assert seen > 100  # the pattern really finds the calls
    assert not missing, f"keys used but not in de.json: {missing}"


def test_every_dynamic_key_prefix_exists() -> None:
    """t(`room.event.left_${reason}`): at least one German key starts with the fixed part."""
    missing = {}
    for path in _sources():
        for groups in DYNAMIC_PREFIX.findall(path.read_text(encoding="utf-8")):
            prefix = "".join(groups)
            if not any(k.startswith(prefix) for k in GERMAN):
                missing.setdefault(path.name, []).append(prefix)
    assert not missing, missing


def test_templates_have_no_hard_coded_visible_text() -> None:
    """Text between tags in a template comes from t(): no bare words outside {{ }} / {% %}."""
    offenders = {}
    for path in TEMPLATES.glob("*.html"):
        html = path.read_text(encoding="utf-8")
        html = re.sub(r"\{#.*?#\}", "", html, flags=re.S)
        html = re.sub(r"\{%\s*block body_attrs\s*%\}.*?\{%\s*endblock\s*%\}", "", html, flags=re.S)  # attributes
        html = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", html, flags=re.S)
        html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
        texts = [s.strip() for s in re.findall(r">([^<]+)<", html)]
        words = [s for s in texts if re.search(r"[A-Za-zÄÖÜäöüß]{2,}", s)]
        if words:
            offenders[path.name] = words
    assert not offenders, f"hard-coded text in templates: {offenders}"


def test_templates_have_no_hard_coded_labels() -> None:
    """aria-label, title, alt and placeholder attributes in templates come from t() as well."""
    attr = re.compile(r"""\b(aria-label|title|alt|placeholder)=(["'])(.*?)\2""", re.S)
    offenders = {}
    for path in TEMPLATES.glob("*.html"):
        for name, _, value in attr.findall(path.read_text(encoding="utf-8")):
            bare = re.sub(r"\{\{.*?\}\}", "", value)
            if re.search(r"[A-Za-zÄÖÜäöüß]{2,}", bare):
                offenders.setdefault(path.name, []).append(f"{name}={value!r}")
    assert not offenders, f"hard-coded labels in templates: {offenders}"


# ------------------------------------------------------------------ the mechanism


def test_negotiate_prefers_an_explicit_offered_choice() -> None:
    offered = i18n.CITIZEN_LANGUAGES
    assert i18n.negotiate("en", offered, "tr") == "tr"
    assert i18n.negotiate("en", offered, "fa") == "fa"
    # A choice that is not offered (a staff page asked in Farsi) falls back to Accept-Language.
    assert i18n.negotiate("en", i18n.STAFF_LANGUAGES, "fa") == "en"
    assert i18n.negotiate(None, i18n.STAFF_LANGUAGES, "xx") == "de"


def test_negotiate_reads_accept_language() -> None:
    offered = i18n.CITIZEN_LANGUAGES
    assert i18n.negotiate("ar-SY,ar;q=0.9,en;q=0.5", offered) == "ar"
    assert i18n.negotiate("fr-FR,fr;q=0.9,uk;q=0.8,ru;q=0.7", offered) == "uk"
    assert i18n.negotiate("ru;q=0.3, tr;q=0.8", offered) == "tr"  # by q, not by order
    assert i18n.negotiate("en;q=0.5, fa;q=0.5", offered) == "en"  # equal q: the first
    assert i18n.negotiate("FA-IR", offered) == "fa"  # case and region do not matter
    assert i18n.negotiate("tr;q=0", offered) == "de"  # q=0 means "not this one"
    assert i18n.negotiate("tr;q=abc, en", offered) == "en"
    assert i18n.negotiate("fr, it", offered) == "de"
    assert i18n.negotiate("", offered) == "de"
    assert i18n.negotiate(None, offered) == "de"
    assert i18n.negotiate("*", offered) == "de"
    assert i18n.negotiate("tr", i18n.STAFF_LANGUAGES) == "de"  # staff pages: German and English only


def test_direction() -> None:
    assert i18n.direction("ar") == "rtl" and i18n.direction("fa") == "rtl"
    for code in ("de", "en", "tr", "uk", "ru"):
        assert i18n.direction(code) == "ltr"


def test_missing_translation_falls_back_to_german(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "de.json").write_text(json.dumps({"a.one": "Eins", "a.greet": "Hallo {name}", "a.only_de": "Nur Deutsch"}),
                                      encoding="utf-8")
    (tmp_path / "tr.json").write_text(json.dumps({"a.one": "Bir", "a.greet": "Merhaba {name}", "a.only_de": ""}),
                                      encoding="utf-8")
    monkeypatch.setattr(i18n, "CATALOG_DIR", tmp_path)
    i18n.catalog.cache_clear()
    try:
        assert i18n.available() == ["de", "tr"]
        assert i18n.translate("tr", "a.one") == "Bir"
        assert i18n.translate("tr", "a.greet", name="Ayşe") == "Merhaba Ayşe"
        assert i18n.translate("tr", "a.only_de") == "Nur Deutsch"  # empty counts as missing
        assert i18n.translate("fa", "a.one") == "Eins"  # no catalog at all: German
        assert i18n.translate("tr", "a.nowhere") == "a.nowhere"
        assert i18n.translate("tr", "a.greet") == "Merhaba {name}"  # no values: unchanged
        assert i18n.translate("tr", "a.greet", other=1) == "Merhaba {name}"  # a wrong value never raises
    finally:
        i18n.catalog.cache_clear()


def test_browser_module_falls_back_to_german() -> None:
    """web/static/js/i18n.js: current catalog, else German, else the key (same order as the server)."""
    source = (SCRIPTS / "i18n.js").read_text(encoding="utf-8")
    assert "current[key] ?? fallback[key] ?? key" in source
    assert 'load("de")' in source


@pytest.mark.parametrize("lang", i18n.CITIZEN_LANGUAGES)
async def test_join_and_room_pages_render_every_citizen_language(server, http, lang: str) -> None:
    want_dir = "rtl" if lang in ("ar", "fa") else "ltr"
    for path in ("/join/r_abc123", "/room/r_abc123"):
        r = await http.get(f"{path}?lang={lang}")
        assert r.status == 200
        html = await r.text()
        assert f'<html lang="{lang}" dir="{want_dir}">' in html, (path, html[:200])
        assert r.cookies.get("rs_lang") is not None and r.cookies["rs_lang"].value == lang
    # The join page offers all seven languages, each named in itself.
    html = await (await http.get("/join/r_abc123")).text()
    for code in i18n.CITIZEN_LANGUAGES:
        assert f'href="?lang={code}"' in html and i18n.NAMES[code] in html


async def test_the_remembered_choice_carries_from_join_to_room(server) -> None:
    """?lang=fa on the join page sets rs_lang; /room/ (opened by join.js without ?lang) uses it."""
    import aiohttp

    async with aiohttp.ClientSession(base_url=str(server.make_url("")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await http.get("/join/r_abc123?lang=fa", headers={"Accept-Language": "de"})
        html = await (await http.get("/room/r_abc123", headers={"Accept-Language": "de"})).text()
        assert '<html lang="fa" dir="rtl">' in html
        # Accept-Language alone picks the same language on both pages.
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        for path in ("/join/r_abc123", "/room/r_abc123"):
            html = await (await http.get(path, headers={"Accept-Language": "uk-UA,uk;q=0.9"})).text()
            assert '<html lang="uk" dir="ltr">' in html, path
