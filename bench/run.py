"""``./run bench NAME [args]``: run one benchmark of bench/ (signalling, patchin, network)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    names = sorted(p.name for p in HERE.iterdir() if (p / "run.py").is_file())
    if len(sys.argv) < 2 or sys.argv[1] not in names:
        print(f"usage: ./run bench {{{'|'.join(names)}}} [args]   (each takes --help)", file=sys.stderr)
        return 2
    script = HERE / sys.argv[1] / "run.py"
    os.execv(sys.executable, [sys.executable, str(script), *sys.argv[2:]])
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
