"""The one thread that talks to SQLite, so fsyncs never stall the event loop."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

__all__ = ["DbThread"]

# A call running this long is stuck (a write or fsync to a hung disk): readiness says so, and on
# Redis the work-queue lease goes to another replica. Past SQLite's busy timeout (10 s, the
# longest a sound call waits for another process's lock) and ingest's wait for a commit (10 s).
_HUNG_SECONDS: Final = 15.0
# How long a write the disk refused for want of space (SQLITE_FULL) leaves the outbox unfit to
# hold the work queue on Redis, for a replica standing by to serve. Time alone ends it: once
# standing by, this replica writes no alert to learn that there is space again.
_FULL_SECONDS: Final = 30.0

P = ParamSpec("P")
T = TypeVar("T")


class DbThread:
    """Runs blocking calls, one at a time and in order, off the event loop.

    ``clock`` (monotonic seconds) times the call running (``hung``) and how long ago the disk
    was last full (``full``).
    """

    def __init__(
        self, name: str = "alerts-outbox", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._clock = clock
        self._since: float | None = None  # when the call running began
        self._full: tuple[float, str] | None = None  # when a call last failed on a full disk
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

    def hung(self) -> str | None:
        """What hangs, while the call running now has run past ``_HUNG_SECONDS`` (a write or
        fsync to a hung disk runs on and on); None otherwise."""
        since = self._since
        running = 0.0 if since is None else self._clock() - since
        if running < _HUNG_SECONDS:
            return None
        return (
            f"the alert outbox has not answered for {running:.0f} s (a write or fsync to its"
            " disk hangs)"
        )

    def full(self) -> str | None:
        """Why the outbox cannot store alerts, for ``_FULL_SECONDS`` after a call failed on a
        full disk (SQLITE_FULL); None otherwise."""
        if (full := self._full) is None or (ago := self._clock() - full[0]) >= _FULL_SECONDS:
            return None
        return (
            f"the alert outbox's disk is full ({full[1]}, {ago:.0f} s ago): it cannot store the"
            " alerts it would take"
        )

    def _timed(self, call: Callable[[], T]) -> T:
        self._since = self._clock()
        try:
            return call()
        except sqlite3.OperationalError as exc:
            # One raised by Python code, not by SQLite, carries no code.
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                self._full = (self._clock(), f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._since = None

    async def aclose(self) -> None:
        """Finish the calls queued, then stop the thread; idempotent. Waited for on the event
        loop, not on another thread (as ``asyncio.to_thread(close)`` would be): cancelled
        meanwhile (the stop's deadline), no thread is left waiting for this one, which
        ``asyncio.run`` would join, unbounded, as its loop closes (``close(wait=False)`` then
        lets the thread end with its call under way)."""
        if not self._closed:
            await self.call(_nothing)  # run after every call queued before it
            self.close(wait=False)  # the thread idle now: it ends at once

    def close(self, *, wait: bool = True) -> None:
        """Stop the thread once the calls queued are done, waiting for that unless ``wait`` is
        False; idempotent."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=wait)


def _nothing() -> None:
    """A call that marks when the calls queued before it are done."""
