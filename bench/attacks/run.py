"""``./run bench attacks [MODULE ...]``: the attack suite of tests/attacks against real servers on loopback.

Prints one line per attack and ``N blocked, M breached``; exits 1 on any breach. The same suite
runs under pytest as tests/attacks/test_suite.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from tests.attacks.__main__ import main
    sys.exit(main(sys.argv[1:]))
