"""``python -m tests.attacks`` (``./run bench attacks``): every attack of the suite against real servers.

Every module of this package that defines ``async def run() -> list[Verdict]`` is an attack
module: each starts its own server on loopback and returns one ``Verdict`` per attack. They run
one after another; one line per attack, then ``N blocked, M breached``; exit 1 on any breach.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import sys
import time
from pathlib import Path
from types import ModuleType

from tests.attacks.verdict import Verdict

PACKAGE = "tests.attacks"


def modules(only: list[str] | None = None) -> list[ModuleType]:
    """The attack modules, by name (those with a coroutine function ``run``)."""
    found = []
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.startswith("_") or info.name.startswith("test_") or (only and info.name not in only):
            continue
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        if inspect.iscoroutinefunction(getattr(module, "run", None)):
            found.append(module)
    return found


async def run_all(only: list[str] | None = None, out=sys.stdout) -> list[Verdict]:  # type: ignore[no-untyped-def]
    verdicts: list[Verdict] = []
    for module in modules(only):
        started = time.monotonic()
        try:
            got = await module.run()
        except Exception as exc:  # noqa: BLE001 - a module that breaks counts as a breach, never as blocked
            topic = module.__name__.rsplit(".", 1)[1]
            got = [Verdict(topic, "the attack module ran to its end", False, f"{type(exc).__name__}: {exc}")]
        for v in got:
            print(f"{'blocked ' if v.blocked else 'BREACHED'}  {v.topic:11} {v.attack} — {v.detail}", file=out)
        print(f"          {module.__name__.rsplit('.', 1)[1]}: {len(got)} attacks in "
              f"{time.monotonic() - started:.1f} s", file=out)
        verdicts += got
    return verdicts


def summary(verdicts: list[Verdict]) -> str:
    blocked = sum(v.blocked for v in verdicts)
    return f"{blocked} blocked, {len(verdicts) - blocked} breached"


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        names = [m.__name__.rsplit(".", 1)[1] for m in modules()]
        print(f"usage: ./run bench attacks [MODULE ...]   modules: {' '.join(names)}")
        return 0
    verdicts = asyncio.run(run_all(argv or None))
    print(summary(verdicts))
    return 1 if any(not v.blocked for v in verdicts) or not verdicts else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
