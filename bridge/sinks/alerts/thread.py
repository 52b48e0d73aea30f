"""The one thread that talks to SQLite, so fsyncs never stall the event loop."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["DbThread"]

P = ParamSpec("P")
T = TypeVar("T")


class DbThread:
    """Runs blocking calls, one at a time and in order, off the event loop.

    ``clock`` (monotonic seconds) times the call running (``running_for``).
    """

    def __init__(
        self, name: str = "alerts-outbox", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._clock = clock
        self._since: float | None = None  # when the call running began
        self._closed = False

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the thread and return its result.

        Cancelling the caller does not cancel a call already running: a transaction always
        finishes.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self._timed, functools.partial(fn, *args, **kwargs)
        )

    def running_for(self) -> float:
        """How long the call running now has run (0 when none runs): a write to a hung disk
        runs on and on."""
        since = self._since
        return 0.0 if since is None else self._clock() - since

    def _timed(self, call: Callable[[], T]) -> T:
        self._since = self._clock()
        try:
            return call()
        finally:
            self._since = None

    def close(self) -> None:
        """Finish queued calls and stop the thread; idempotent."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
