"""Which translations were made from the German text that is there now.

German is the source of every text. For each translated text,
``web/i18n-sources.json`` records a digest of the German text it was made from
and a digest of the translation itself; the German texts behind those digests
are kept there too, so a translator sees what changed::

    {"german": {"<digest>": "<German text>"},
     "translations": {"tr": {"<key>": ["<digest of German>", "<digest of tr text>"]}}}

A translation is *stale* when German changed since it was made (``german_changed``),
when it has no record (``new``), when it is missing (``missing``), or when it
was edited without recording what it was made from (``edited``). ``roomserver
i18n-stale`` lists them; after revisiting, ``roomserver i18n-stamp`` records the
current German as their source. ``tests/pages/test_translations.py`` fails while
anything is stale.

Which keys a language must have: English all of them (staff pages too), the other
citizen languages the citizen keys (``app.``, ``index.``, ``join.``, ``room.``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from . import i18n

SOURCES_PATH = Path(__file__).resolve().parent.parent / "web" / "i18n-sources.json"
CITIZEN_PREFIXES = ("app.", "index.", "join.", "mail.", "room.")
_RECORD = re.compile(r'\[\n\s*("[0-9a-f]{12}"),\n\s*("[0-9a-f]{12}")\n\s*\]')
REASONS = {
    "missing": "not translated yet",
    "new": "translated, but not recorded from which German text",
    "german_changed": "German changed since it was translated",
    "edited": "translation edited without recording its German source",
}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Stale:
    lang: str
    key: str
    reason: str  # one of REASONS
    german: str  # the German text now
    german_then: str | None  # the German text it was made from, when known
    translation: str | None  # the translation now, when there is one


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _catalog(catalog_dir: Path, lang: str) -> dict[str, str]:
    return _read(catalog_dir / f"{lang}.json")


def languages(catalog_dir: Path = i18n.CATALOG_DIR) -> list[str]:
    """The translated languages: every catalog but German's."""
    return sorted(p.stem for p in catalog_dir.glob("*.json") if p.stem != i18n.DEFAULT)


def required(lang: str, german: dict[str, str]) -> list[str]:
    """The keys ``lang`` must translate: all for English (staff pages), the citizen keys for the others."""
    if lang in i18n.STAFF_LANGUAGES:
        return list(german)
    return [k for k in german if k.startswith(CITIZEN_PREFIXES)]


def stale(catalog_dir: Path = i18n.CATALOG_DIR, sources_path: Path = SOURCES_PATH,
          langs: Iterable[str] | None = None) -> list[Stale]:
    """Every translation that needs a translator (or a record), in catalog order."""
    german = _catalog(catalog_dir, i18n.DEFAULT)
    sources = _read(sources_path)
    archive: dict[str, str] = sources.get("german", {})
    out: list[Stale] = []
    for lang in langs if langs is not None else languages(catalog_dir):
        catalog = _catalog(catalog_dir, lang)
        records: dict[str, list[str]] = sources.get("translations", {}).get(lang, {})
        for key in required(lang, german):
            text = catalog.get(key)
            record = records.get(key)
            if text is None:
                reason = "missing"
            elif record is None:
                reason = "new"
            elif record[0] != digest(german[key]):
                reason = "german_changed"
            elif record[1] != digest(text):
                reason = "edited"
            else:
                continue
            then = archive.get(record[0]) if record else None
            out.append(Stale(lang, key, reason, german[key], then, text))
    return out


def stamp(lang: str, keys: Iterable[str] | None = None, *, revisited: bool = False,
          catalog_dir: Path = i18n.CATALOG_DIR, sources_path: Path = SOURCES_PATH) -> list[str]:
    """Record that these translations of ``lang`` were made from the German text there now.

    ``keys`` None: every translated key of the language (use only after revisiting
    them all). ``revisited``: the keys whose translation changed since it was
    last recorded, or that have no record yet. Returns the keys recorded. Records
    of keys German no longer has are dropped, and so are archived German texts
    no record points to.
    """
    if lang == i18n.DEFAULT:
        raise ValueError("German is the source; it has nothing to record")
    german = _catalog(catalog_dir, i18n.DEFAULT)
    catalog = _catalog(catalog_dir, lang)
    if not catalog:
        raise ValueError(f"there is no catalog for {lang!r}")
    sources = _read(sources_path)
    translations = sources.setdefault("translations", {})
    records: dict[str, list[str]] = translations.setdefault(lang, {})
    if revisited:
        chosen = [k for k in catalog if k in german and (k not in records or records[k][1] != digest(catalog[k]))]
    elif keys is None:
        chosen = [k for k in catalog if k in german]
    else:
        chosen = list(keys)
        unknown = [k for k in chosen if k not in german or k not in catalog]
        if unknown:
            raise ValueError(f"not a translated key of {lang}: {', '.join(unknown)}")
    for key in chosen:
        records[key] = [digest(german[key]), digest(catalog[key])]
    for key in [k for k in records if k not in german]:
        del records[key]
    translations[lang] = {k: records[k] for k in german if k in records}  # catalog order: small diffs
    archive = {digest(text): text for text in german.values()}
    archive.update(sources.get("german", {}))
    used = {record[0] for lang_records in translations.values() for record in lang_records.values()}
    sources["german"] = {h: archive[h] for h in sorted(used) if h in archive}
    document = {"german": sources["german"], "translations": dict(sorted(translations.items()))}
    text = json.dumps(document, ensure_ascii=False, indent=1)
    text = _RECORD.sub(r"[\1, \2]", text)  # one line per record: a re-translation is a one-line diff
    sources_path.write_text(text + "\n", encoding="utf-8")
    return chosen
