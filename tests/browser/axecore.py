"""axe-core in Chromium pages: the bundle (installed with ``npm ci`` from the lock file) and a collector.

The fixtures ``axe_js`` and ``axe`` are registered in ``conftest.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="session")
def axe_js() -> Path:
    """axe-core's browser bundle; installed with ``npm ci`` from the lock file when missing."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not available to install axe-core (tests/browser/axe/package.json)")
        try:
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=AXE_DIR, capture_output=True,
                                  text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"npm ci for axe-core failed: {exc}")
        if done.returncode != 0 or not AXE_JS.exists():
            pytest.skip(f"npm ci for axe-core failed (no registry?): {done.stderr[-800:]}")
    return AXE_JS


class Axe:
    """Runs axe-core in pages and collects serious and critical violations, to report them all at once."""

    def __init__(self, script: Path) -> None:
        self.script = script
        self.found: list[str] = []
        self.checked: list[str] = []

    async def check(self, page, where: str) -> None:
        if not await page.evaluate("() => typeof window.axe === 'object'"):
            await page.add_script_tag(path=str(self.script))
        violations = await page.evaluate("""async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
            return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => ({target: n.target.join(' '), html: n.html.slice(0, 160),
                                            why: (n.failureSummary || '').replace(/\\s+/g, ' ').slice(0, 300)}))}));
        }""", WCAG_TAGS)
        self.checked.append(where)
        for v in violations:
            if v["impact"] in ("serious", "critical"):
                nodes = "\n      ".join(f"{n['target']}: {n['html']} -- {n['why']}" for n in v["nodes"][:5])
                self.found.append(f"[{where}] {v['impact']} {v['id']}: {v['help']}\n      {nodes}")

    def assert_clean(self) -> None:
        print(f"axe-core checked {len(self.checked)} page states: {', '.join(self.checked)}")
        assert not self.found, "axe-core found serious/critical violations:\n" + "\n".join(self.found)


@pytest.fixture
def axe(axe_js: Path) -> Axe:
    return Axe(axe_js)
