"""One translation mechanism for every string a person reads, on pages and in JavaScript.

Catalogs are flat JSON files, ``web/static/i18n/<lang>.json``, one per language,
key -> text with ``{name}`` placeholders. Templates call ``t("key")``; the
browser client loads the same file. German is the reference: a key missing in
another catalog falls back to German (a test reports every missing key).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

CATALOG_DIR = Path(__file__).resolve().parent.parent / "web" / "static" / "i18n"
DEFAULT = "de"
# Staff pages: German, with English. Citizen pages: these seven.
STAFF_LANGUAGES = ("de", "en")
CITIZEN_LANGUAGES = ("de", "en", "tr", "ar", "uk", "ru", "fa")
RTL = frozenset({"ar", "fa"})
# Persian digits for Farsi, as the browser's Intl writes numbers for "fa" (for "ar" it writes Latin
# digits, like the Arabic catalog): numbers from the page and from scripts look the same.
DIGITS = {"fa": "۰۱۲۳۴۵۶۷۸۹"}
NAMES = {"de": "Deutsch", "en": "English", "tr": "Türkçe", "ar": "العربية", "uk": "Українська",
         "ru": "Русский", "fa": "فارسی"}


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    path = CATALOG_DIR / f"{lang}.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def available() -> list[str]:
    return sorted(p.stem for p in CATALOG_DIR.glob("*.json"))


def number(lang: str, value: int) -> str:
    """A whole number in the digits the language's readers use (as the browser's Intl does)."""
    text = str(value)
    digits = DIGITS.get(lang)
    return text.translate(str.maketrans("0123456789", digits)) if digits else text


def translate(lang: str, key: str, **values: object) -> str:
    """The text for ``key`` in ``lang``, else German, else the key itself (never shown: tests catch it).

    Whole numbers among the values are written in the language's digits.
    """
    text = catalog(lang).get(key) or catalog(DEFAULT).get(key) or key
    if values:
        values = {k: number(lang, v) if isinstance(v, int) and not isinstance(v, bool) else v
                  for k, v in values.items()}
        try:
            text = text.format(**values)
        except (KeyError, IndexError, ValueError):
            pass
    return text


def direction(lang: str) -> str:
    return "rtl" if lang in RTL else "ltr"


def negotiate(accept_language: str | None, offered: tuple[str, ...], chosen: str | None = None) -> str:
    """The language to use: an explicit choice, else the best of Accept-Language, else German."""
    if chosen in offered:
        return chosen  # type: ignore[return-value]
    best: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in offered and q > 0:
            best.append((-q, index, base))
    return sorted(best)[0][2] if best else DEFAULT
