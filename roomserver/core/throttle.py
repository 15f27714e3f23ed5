"""How long a sign-in attempt must wait after failures: growing delays, never a lock.

Pure: the counts come from the store, ``now`` from the caller. A few failures are free; each
further one doubles the wait before the next attempt (1, 2, 4 … s) up to a ceiling. A wait is
over by itself, so an attacker can slow a guesser down but cannot keep anybody out for good
(see ``domain/signin.py`` for which counters an attempt is measured by).
"""

from __future__ import annotations


def delay(failures: int, free: int, max_delay: int) -> int:
    """Seconds the next attempt waits after the last of ``failures`` failures."""
    if failures < free:
        return 0
    return min(max_delay, 2 ** min(failures - free, 30))


def wait(failures: int, last_at: int, now: int, free: int, max_delay: int) -> int:
    """Seconds from ``now`` until the next attempt may be checked (0: now)."""
    return max(0, last_at + delay(failures, free, max_delay) - now)
