"""Waits on a condition until a deadline, and a clock the test moves.

Waits poll a condition until a deadline (never a bare sleep): the only module of the tests whose
sleeps need no comment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


class ManualClock:
    """A clock in seconds that moves only when the test moves it: pass it as ``clock=``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds


def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, what: str = "", *, every: float = 0.05
) -> Any:
    """Poll ``condition`` (each ``every`` seconds) until it returns something truthy; fail the
    test after ``timeout``, with the condition's last exception if it raised one."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as exc:  # e.g. connection refused while a server starts
            last_error = exc
        else:
            if result:
                return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what or condition}: {last_error!r}")


async def async_wait_until(
    condition: Callable[[], Any | Awaitable[Any]], within: float = 10.0, what: str = ""
) -> Any:
    """``wait_until`` for coroutines: awaits the condition when it returns an awaitable."""
    deadline = time.monotonic() + within
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
        except Exception as exc:
            last_error = exc
        else:
            if result:
                return result
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out after {within}s waiting for {what or condition}: {last_error!r}")


async def each_turn_until(
    condition: Callable[[], Any], within: float = 5.0, what: str = ""
) -> None:
    """``async_wait_until`` checked at each turn of the loop, not each 20 ms: for a state a task
    passes through within a few turns (the step it is suspended in), which a poll would miss."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {within}s waiting for {what or condition}")
        await asyncio.sleep(0)  # not a wait: one turn of the loop, then the condition again
