"""Staleness: every translation records the German text it was made from (web/i18n-sources.json).

``test_every_translation_was_made_from_the_current_german`` is the guard: it fails while any
translation was made from an older German text, is missing, was never recorded, or was
edited without recording. The other tests change German (and translations) in a copy of the
catalogs and show the guard fails on exactly that, names it, and passes again once the
translator has revisited and recorded it — through the real command line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from roomserver import i18n, translations

ROOT = Path(__file__).resolve().parent.parent


def check_current(catalog_dir: Path = i18n.CATALOG_DIR, sources_path: Path = translations.SOURCES_PATH) -> None:
    """The assertion the guard makes, usable on a copy."""
    found = translations.stale(catalog_dir, sources_path)
    assert not found, (f"{len(found)} translations need a translator (roomserver i18n-stale lists them):\n"
                       + "\n".join(f"{s.lang} {s.key}: {translations.REASONS[s.reason]}" for s in found))


def test_every_translation_was_made_from_the_current_german() -> None:
    check_current()


@pytest.fixture
def copy(tmp_path: Path) -> tuple[Path, Path]:
    """The catalogs and their source record, copied: (catalog folder, record file)."""
    catalogs = tmp_path / "i18n"
    shutil.copytree(i18n.CATALOG_DIR, catalogs)
    sources = tmp_path / "i18n-sources.json"
    shutil.copy(translations.SOURCES_PATH, sources)
    return catalogs, sources


def edit(catalogs: Path, lang: str, **texts: str | None) -> None:
    path = catalogs / f"{lang}.json"
    catalog = json.loads(path.read_text(encoding="utf-8"))
    for key, text in texts.items():
        key = key.replace("__", ".")
        if text is None:
            catalog.pop(key)
        else:
            catalog[key] = text
    path.write_text(json.dumps(catalog, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "roomserver", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_a_changed_german_text_makes_every_translation_of_it_stale(copy) -> None:
    catalogs, sources = copy
    before = i18n.catalog("de")["room.end.replaced.text"]
    edit(catalogs, "de", room__end__replaced__text="Sie haben die Beratung woanders geöffnet. Schließen Sie dieses "
                                                    "Fenster.", console__empty="Heute noch nichts.")
    found = translations.stale(catalogs, sources)
    assert {(s.lang, s.key, s.reason) for s in found} == (
        {(lang, "room.end.replaced.text", "german_changed") for lang in ("en", "tr", "ar", "uk", "ru", "fa")}
        | {("en", "console.empty", "german_changed")})  # staff texts: English only
    replaced = next(s for s in found if s.lang == "uk" and s.key == "room.end.replaced.text")
    assert replaced.german_then == before  # the translator sees what changed
    assert replaced.german.startswith("Sie haben die Beratung woanders")
    assert replaced.translation == i18n.catalog("uk")["room.end.replaced.text"]
    with pytest.raises(AssertionError, match="room.end.replaced.text: German changed since it was translated"):
        check_current(catalogs, sources)


def test_missing_unrecorded_and_silently_edited_translations_are_named(copy) -> None:
    catalogs, sources = copy
    edit(catalogs, "de", join__brand_new="Ein neuer Satz.")
    edit(catalogs, "tr", join__brand_new="Yeni bir cümle.", join__title=None)
    edit(catalogs, "fa", join__notice__scope="متن دیگری.")
    reasons = {(s.lang, s.key): s.reason for s in translations.stale(catalogs, sources)}
    assert reasons[("tr", "join.brand_new")] == "new"  # translated, but from which German?
    assert reasons[("tr", "join.title")] == "missing"
    assert reasons[("ar", "join.brand_new")] == "missing"
    assert reasons[("fa", "join.notice.scope")] == "edited"  # changed without saying it was revisited
    assert ("de", "join.brand_new") not in reasons  # German is the source, never stale


def test_revisiting_and_recording_clears_it_through_the_command_line(copy) -> None:
    catalogs, sources = copy
    paths = ("--catalogs", str(catalogs), "--sources", str(sources))
    edit(catalogs, "de", room__error__token_expired__text="Bitte fragen Sie nach einem neuen Link.")
    result = cli("i18n-stale", *paths)
    assert result.returncode == 1, result.stderr
    assert "tr  room.error.token_expired.text: German changed since it was translated" in result.stdout
    assert "German then: Bitte fragen Sie Ihre Beratungsstelle nach einem neuen Link." in result.stdout
    assert "German now:  Bitte fragen Sie nach einem neuen Link." in result.stdout
    listed = json.loads(cli("i18n-stale", "--lang", "tr", "--json", *paths).stdout)
    assert [(s["lang"], s["key"], s["reason"]) for s in listed] == [
        ("tr", "room.error.token_expired.text", "german_changed")]

    # The Turkish translator rewrites it and records what she did (--revisited finds it by its new text).
    edit(catalogs, "tr", room__error__token_expired__text="Lütfen yeni bir bağlantı isteyin.")
    result = cli("i18n-stamp", "tr", "--revisited", *paths)
    assert result.returncode == 0 and "room.error.token_expired.text" in result.stdout, result.stderr
    # The English one still reads right: recorded by name, without a change.
    assert cli("i18n-stamp", "en", "room.error.token_expired.text", *paths).returncode == 0
    left = {s.lang for s in translations.stale(catalogs, sources)}
    assert left == {"ar", "uk", "ru", "fa"}
    for lang in sorted(left):
        assert cli("i18n-stamp", lang, "room.error.token_expired.text", *paths).returncode == 0
    result = cli("i18n-stale", *paths)
    assert result.returncode == 0 and "every translation was made from the German text" in result.stdout
    check_current(catalogs, sources)
    # The old German text is no longer referenced: it leaves the archive.
    archive = json.loads(sources.read_text(encoding="utf-8"))["german"]
    assert "Bitte fragen Sie Ihre Beratungsstelle nach einem neuen Link." not in archive.values()


def test_recording_needs_keys_that_exist(copy) -> None:
    catalogs, sources = copy
    paths = ("--catalogs", str(catalogs), "--sources", str(sources))
    result = cli("i18n-stamp", "tr", *paths)
    assert result.returncode == 1 and "name the keys you revisited" in result.stderr
    result = cli("i18n-stamp", "tr", "no.such.key", *paths)
    assert result.returncode == 1 and "not a translated key of tr: no.such.key" in result.stderr
    result = cli("i18n-stamp", "de", "join.title", *paths)
    assert result.returncode == 1 and "German is the source" in result.stderr
    result = cli("i18n-stale", "--lang", "xx", *paths)
    assert result.returncode == 1 and "there is no catalog for 'xx'" in result.stderr


def test_records_of_removed_keys_are_dropped(copy) -> None:
    catalogs, sources = copy
    for lang in ("de", "en"):
        edit(catalogs, lang, signin__signed_out=None)
    translations.stamp("en", ["signin.title"], catalog_dir=catalogs, sources_path=sources)
    record = json.loads(sources.read_text(encoding="utf-8"))
    assert "signin.signed_out" not in record["translations"]["en"]
    assert "Sie haben sich abgemeldet." not in record["german"].values()
    check_current(catalogs, sources)
