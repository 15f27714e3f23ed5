"""Numbered schema migrations, one folder of ``NNNN_name.sql`` files per engine.

Each engine keeps its own folder (``sqlite/migrations``, ``postgres/migrations``)
with the same numbers and names: the same change, in each engine's dialect. A
test checks that the two folders list the same migrations.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Callable

from .errors import StoreError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def shipped(package: str) -> list[tuple[int, str, str]]:
    """Every migration in ``package``'s ``migrations`` folder: (number, file name, SQL), in order."""
    found = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StoreError(f"store: migrations are not numbered 1..n: {numbers}")
    return found


def statements(sql: str, complete: Callable[[str], bool]) -> list[str]:
    """Split a migration into statements; ``complete`` tells when the buffer holds a whole one."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf += line
        if complete(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
