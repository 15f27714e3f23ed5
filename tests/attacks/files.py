"""Data files: the database (ledger, audit log), its WAL files, keys and API keys readable by the owner only."""

from __future__ import annotations

import stat

from tests.attacks.loopback import target
from tests.attacks.verdict import Verdict

TOPIC = "files"


async def run() -> list[Verdict]:
    v: list[Verdict] = []
    async with target() as t:
        room = await t.room()
        await t.invite(room, "citizen", "Ayşe")  # something in the ledger and the WAL
        for path in sorted(p for p in t.data_dir.rglob("*")):
            mode = stat.S_IMODE(path.stat().st_mode)
            private = mode & 0o077 == 0
            v.append(Verdict(TOPIC, f"another local user reads data/{path.relative_to(t.data_dir)}", private,
                             f"mode {mode:04o}"))
    return v
