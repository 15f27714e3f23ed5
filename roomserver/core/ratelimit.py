"""A per-socket token bucket, free of I/O: so a flood from one client cannot starve a room."""

from __future__ import annotations


class TokenBucket:
    """``rate`` messages per second sustained, bursts up to ``burst``.

    ``abusive`` turns true once the sender has stayed over its rate for
    ``patience`` seconds (its bucket never refilled to half in that time);
    the edge then closes the socket.
    """

    __slots__ = ("rate", "burst", "patience", "_tokens", "_stamp", "_over_since", "_chunk", "_lent")

    def __init__(self, rate: float, burst: int, patience: float = 5.0) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.patience = patience
        self._tokens = float(burst)
        self._stamp: float | None = None
        self._over_since: float | None = None
        # ``take_all`` lends at most a quarter of the burst at a time and counts what it lent as
        # still in the bucket until the next call: credit held over a quiet spell plus a refilled
        # bucket would otherwise let twice the burst through.
        self._chunk = max(1, int(burst) // 4)
        self._lent = 0

    def allow(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        if self._over_since is None:
            self._over_since = now
        return False

    def take_all(self, now: float) -> int:
        """Take the whole tokens there are, up to a quarter of the burst (0 counts as a refusal, like ``allow``).

        The same budget as one ``allow`` per message, for a caller that spends
        the tokens itself and reads the clock only when they are gone: the relay's
        hot path does, so a message costs a decrement, not a clock read and a call.
        """
        self._refill(now)
        self._lent = 0  # the caller asks again only once it has spent the last loan
        taken = min(int(self._tokens), self._chunk)
        if taken == 0:
            if self._over_since is None:
                self._over_since = now
            return 0
        self._tokens -= taken
        self._lent = taken
        return taken

    def _refill(self, now: float) -> None:
        if self._stamp is not None:
            self._tokens = min(self.burst - self._lent, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= self.burst / 2:
            self._over_since = None  # the sender paused long enough to refill half the bucket

    def abusive(self, now: float) -> bool:
        return self._over_since is not None and now - self._over_since >= self.patience
