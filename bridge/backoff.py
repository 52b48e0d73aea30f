"""The one retry policy: exponential backoff with jitter and a cap, honouring ``Retry-After``.

Used wherever the bridge tries again after a failure: webhook and Alertmanager delivery, the
Redis transport's reconnects and write retries, and a batch subscriber's handler retries.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Backoff"]

# 2**62 seconds is far past any cap; a larger exponent would only overflow the float.
_MAX_EXPONENT: Final = 62


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds to wait before the next try: ``base * 2**(failures - 1)``, at most ``cap``.

    ``jitter`` spreads each delay uniformly over ``±jitter`` of itself (still at most ``cap``),
    so replicas that failed together do not retry together. A server's ``Retry-After`` wins
    when it asks for longer, up to the cap: the server knows when it will take work again, but
    the operator's cap bounds every wait (a receiver asking for a day would otherwise park its
    alerts past the delivery deadline, dead-lettering them unsent).
    """

    base: float
    cap: float
    jitter: float = 0.2
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < self.base:
            raise ValueError(f"Backoff needs 0 <= base <= cap, not base={self.base} cap={self.cap}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff jitter must be within [0, 1], not {self.jitter}")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` failed tries in a row (1 for the first)."""
        exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
        nominal = min(self.cap, self.base * 2.0**exponent)
        delay = min(self.cap, nominal * (1.0 + self.jitter * (2.0 * self.rng() - 1.0)))
        return delay if retry_after is None else max(delay, min(retry_after, self.cap))
