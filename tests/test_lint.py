"""Every Python file of the project reads clean to pyflakes: no undefined name, no unused import.

A name that is not defined fails only when its line runs; this finds it on lines no test
reaches (it found one in a refusal path of ``Room.route_signal``).
"""

from __future__ import annotations

from pathlib import Path

from pyflakes.api import checkPath
from pyflakes.reporter import Reporter

ROOT = Path(__file__).resolve().parents[1]
TREES = ("roomserver", "tests", "bench")


class _Collect:
    """A file-like sink for pyflakes' reporter."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line.strip())


def _python_files() -> list[Path]:
    return sorted(p for tree in TREES for p in (ROOT / tree).rglob("*.py") if "node_modules" not in p.parts)


def test_pyflakes_finds_nothing() -> None:
    warnings, errors = _Collect(), _Collect()
    files = _python_files()
    count = sum(checkPath(str(path), Reporter(warnings, errors)) for path in files)
    found = [line for line in warnings.lines + errors.lines
             if not line.endswith("imported but unused") or "conftest.py" not in line]  # fixtures by import
    assert len(files) > 50
    assert not found, f"{count} pyflakes finding(s):\n" + "\n".join(found)
