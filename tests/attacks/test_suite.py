"""The attack suite under pytest: every attack module against its own real server; nothing may get through."""

from __future__ import annotations

import io

import pytest

from tests.attacks.__main__ import modules, run_all, summary


@pytest.mark.timeout(900)
async def test_every_attack_is_blocked() -> None:
    assert modules(), "no attack modules found"
    out = io.StringIO()
    verdicts = await run_all(out=out)
    breached = [v for v in verdicts if not v.blocked]
    print(out.getvalue())
    assert not breached, "\n".join(f"{v.topic}: {v.attack} — {v.detail}" for v in breached)
    assert summary(verdicts).endswith(" 0 breached")
