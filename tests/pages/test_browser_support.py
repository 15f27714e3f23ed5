"""The client uses only what docs/browsers.md allows: a scan of every script in web/static/js.

docs/browsers.md has two tables this test reads: *Feature-tested APIs* (beyond Safari on iOS
16; every use must sit right behind a test for the API) and *Never used* (missing in Safari
on iOS 16; must not appear at all). Comments are ignored; strings are not (a key like
"setSinkId" in a string is a use too).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "browsers.md"
SCRIPTS = sorted((ROOT / "web" / "static" / "js").glob("*.js"))
GUARD_WINDOW = 12  # a use may follow its feature test by this many lines (an if block)


def table(section: str) -> list[str]:
    """The backticked names in the first column of the table under ``## section``."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/browsers.md has no section {section!r}"
    names = re.findall(r"^\| `([^`]+)` \|", match.group(1), re.M)
    assert names, f"no API in the table of {section!r}"
    return names


def code_lines(path: Path) -> list[str]:
    """The script's lines with // and /* */ comments blanked (line numbers kept)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return [re.sub(r"(^|[^:\\])//.*$", r"\1", line) for line in text.split("\n")]


def feature_test(api: str) -> re.Pattern[str]:
    name = re.escape(api)
    return re.compile(
        rf"typeof\s+[\w.$?]*\b{name}\b"  # typeof x.api === "function"
        rf"|[\"']{name}[\"']\s+in\b"  # "api" in x
        rf"|\?\.{name}\b"  # x?.api
        rf"|[\w$)\]]\.{name}\s*(?:&&|\)|\|\|)"  # if (x.api) / x.api && …
        rf"|!\s*[\w.$?]*\b{name}\b")  # if (!x.api)


def test_the_doc_lists_apis() -> None:
    assert {"setSinkId", "getDisplayMedia", "Notification"} <= set(table("Feature-tested APIs"))
    assert {"requestIdleCallback", "(?<="} <= set(table("Never used"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_api_missing_in_safari_ios_16(script: Path) -> None:
    lines = code_lines(script)
    found = [(n + 1, api) for api in table("Never used") for n, line in enumerate(lines) if api in line]
    assert not found, f"{script.name} uses what Safari on iOS 16 lacks (docs/browsers.md, Never used): {found}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_api_beyond_safari_ios_16_is_feature_tested(script: Path) -> None:
    lines = code_lines(script)
    unguarded = []
    for api in table("Feature-tested APIs"):
        use = re.compile(rf"\b{re.escape(api)}\b")
        guard = feature_test(api)
        for n, line in enumerate(lines):
            if use.search(line) and not any(guard.search(lines[i]) for i in range(max(0, n - GUARD_WINDOW), n + 1)):
                unguarded.append((n + 1, api, line.strip()))
    assert not unguarded, f"{script.name}: uses without a feature test just before them: {unguarded}"


def test_the_scan_finds_what_it_must() -> None:
    """The scan itself: an unguarded use is caught, a guarded one passes, comments do not count."""
    guard = feature_test("setSinkId")
    assert guard.search('if (typeof video.setSinkId === "function") video.setSinkId(x);')
    assert guard.search('return "setSinkId" in HTMLMediaElement.prototype;')
    assert guard.search("if (sinkId && audio.setSinkId) await audio.setSinkId(sinkId);")
    assert guard.search("if (!navigator.mediaDevices?.setSinkId) {")
    assert not guard.search("await video.setSinkId(id);")
    assert not feature_test("getDisplayMedia").search("const s = await navigator.mediaDevices.getDisplayMedia({video: true});")


def test_a_new_unguarded_use_would_fail(tmp_path: Path) -> None:
    script = tmp_path / "bad.js"
    script.write_text("// requestIdleCallback in a comment is fine\n"
                      "export async function share() {\n  return navigator.mediaDevices.getDisplayMedia({});\n}\n"
                      "requestIdleCallback(() => {});\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="getDisplayMedia"):
        test_every_api_beyond_safari_ios_16_is_feature_tested(script)
    with pytest.raises(AssertionError, match=r"\(5, 'requestIdleCallback'\)"):
        test_no_api_missing_in_safari_ios_16(script)
