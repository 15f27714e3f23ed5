"""The citizen texts use the glossary's words (docs/glossary.md), in every language.

For each term, every German citizen text that uses it (the ``de`` row's check) must use
the fixed rendering in each translation, and no citizen text may use a rendering the
glossary rules out. A mutated copy of a catalog shows the check finds what it is for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from roomserver import i18n

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.md"
CITIZEN_PREFIXES = ("app.", "index.", "join.", "mail.", "room.")
# The product's name is a name, not a use of a term ("Vernetzte Beratung" is "Networked counselling").
NAMES = frozenset({"app.name", "index.title"})
REQUIRED = {"appointment", "consultation", "counsellor", "counselling office", "foreigners' office", "job centre",
            "social welfare office", "youth and education office", "expert", "interpreter", "citizen",
            "waiting room", "data notice"}


@dataclass(frozen=True)
class Rendering:
    text: str
    checks: tuple[re.Pattern[str], ...]
    never: tuple[re.Pattern[str], ...]


def _cells(row: str) -> list[str]:
    """A markdown table row's cells; ``\\|`` inside a cell is a pipe, not a border."""
    parts = re.split(r"(?<!\\)\|", row.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def _patterns(cell: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in re.findall(r"`([^`]+)`", cell))


def parse(text: str) -> dict[str, dict[str, Rendering]]:
    terms: dict[str, dict[str, Rendering]] = {}
    current: dict[str, Rendering] | None = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = terms.setdefault(line[4:].strip(), {})
        elif current is not None and line.startswith("|") and not line.startswith(("| lang", "| ---")):
            lang, rendering, checks, never = _cells(line)
            current[lang] = Rendering(rendering, _patterns(checks), _patterns(never))
    return terms


def citizen_texts(catalog: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in catalog.items() if k.startswith(CITIZEN_PREFIXES)}


def misuses(terms: dict[str, dict[str, Rendering]], catalogs: dict[str, dict[str, str]]) -> list[str]:
    """Every place a catalog departs from the glossary, as one line each."""
    found = []
    german = citizen_texts(catalogs["de"])
    for term, renderings in terms.items():
        trigger = renderings["de"].checks
        using = [k for k, text in german.items() if k not in NAMES and any(p.search(text) for p in trigger)]
        for lang, rendering in renderings.items():
            texts = citizen_texts(catalogs[lang])
            if lang != "de":
                for key in using:
                    if key in texts and not all(p.search(texts[key]) for p in rendering.checks):
                        found.append(f"{lang} {key}: {term} must be “{rendering.text}”: {texts[key]}")
            for key, text in texts.items():
                for pattern in rendering.never:
                    if pattern.search(text):
                        found.append(f"{lang} {key}: {term} is never “{pattern.pattern}”: {text}")
    return found


TERMS = parse(GLOSSARY.read_text(encoding="utf-8"))


def load_all() -> dict[str, dict[str, str]]:
    return {lang: json.loads((i18n.CATALOG_DIR / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in i18n.CITIZEN_LANGUAGES}


def test_the_glossary_has_every_term_in_every_language() -> None:
    assert REQUIRED <= set(TERMS), REQUIRED - set(TERMS)
    for term, renderings in TERMS.items():
        assert set(renderings) == set(i18n.CITIZEN_LANGUAGES), term
        for lang, rendering in renderings.items():
            assert rendering.text and rendering.checks, (term, lang)


def test_each_german_check_finds_the_texts_that_use_the_term() -> None:
    """A check that matches nothing would pass any translation: each finds at least one German text."""
    german = citizen_texts(load_all()["de"])
    for term, renderings in TERMS.items():
        assert any(p.search(text) for text in german.values() for p in renderings["de"].checks), term


def test_every_catalog_uses_the_glossary() -> None:
    found = misuses(TERMS, load_all())
    assert not found, f"{len(found)} departures from docs/glossary.md:\n" + "\n".join(found)


@pytest.mark.parametrize(("lang", "key", "text", "term"), [
    ("uk", "join.notice.scope", "Ваша згода діє лише для цього терміну.", "appointment"),
    ("tr", "room.title", "Danışmanlık odası", "consultation"),
    ("ru", "index.lead", "… центра занятости (Jobcenter) …", "job centre"),
    ("ar", "room.role.interpreter", "الترجمة", "interpreter"),
    ("fa", "room.event.left_removed", "{name} از مشاوره بیرون شد.", "remove (a participant)"),
])
def test_the_check_catches_an_old_mistake(lang: str, key: str, text: str, term: str) -> None:
    """Put a mistake the glossary was written against back into a copy: it is named."""
    catalogs = load_all()
    catalogs[lang][key] = text
    found = misuses(TERMS, catalogs)
    assert any(line.startswith(f"{lang} {key}: {term} ") for line in found), found


def test_the_digits_are_the_languages_own() -> None:
    """Farsi writes Persian digits (as Intl does for "fa"), every other language Latin ones."""
    persian, arabic_indic, latin = re.compile("[۰-۹]"), re.compile("[٠-٩]"), re.compile("[0-9]")
    for lang, catalog in load_all().items():
        for key, text in catalog.items():
            plain = re.sub(r"\{\w+\}", "", text)
            if lang == "fa":
                assert not latin.search(plain) and not arabic_indic.search(plain), (lang, key, text)
            else:
                assert not persian.search(plain) and not arabic_indic.search(plain), (lang, key, text)
