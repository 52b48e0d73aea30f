"""``rate_limit``: one token bucket in front of every request, as exporter-toolkit's limiter.

The toolkit builds Go's ``rate.NewLimiter(rate.Every(interval), burst)``: a bucket of ``burst``
tokens, full at start, one token back every ``interval``; a request finding no token is answered
429 before anything else is looked at. ``burst: 0`` therefore lets nothing through, as there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allows ``burst`` requests at once and one more every ``interval`` seconds."""

    __slots__ = ("_burst", "_clock", "_interval", "_last", "_tokens")

    def __init__(
        self, interval: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def allow(self) -> bool:
        """Take a token if there is one; False when the request must be refused."""
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self._burst), self._tokens + elapsed / self._interval)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
