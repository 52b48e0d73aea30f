"""The one thread that talks to SQLite, so fsyncs never stall the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["DbThread"]

P = ParamSpec("P")
T = TypeVar("T")


class DbThread:
    """Runs blocking calls, one at a time and in order, off the event loop."""

    def __init__(self, name: str = "alerts-outbox") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the thread and return its result.

        Cancelling the caller does not cancel a call already running: a transaction always
        finishes.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Finish queued calls and stop the thread; idempotent."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
