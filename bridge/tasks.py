"""Stopping background tasks: each cancelled and waited for, the caller's own cancellation kept.

A stop that cancels its task and awaits it under ``suppress(CancelledError)`` swallows a
cancellation aimed at the stop itself too (a deadline around the bridge's stop): both arrive as
the same exception. ``cancel_and_wait`` tells them apart by the caller's ``Task.cancelling()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(
    *tasks: asyncio.Task[Any], within: float | None = None
) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and return once every one has ended; a task ending cancelled is no error.

    Cancelled itself meanwhile, the caller passes the cancellation on to the tasks it waits for,
    still waits for every task to end (none is left running), and then raises CancelledError.
    Otherwise a task that ended with another exception (a bug: its loop should have caught it)
    has it raised, the first such task's, once every one has ended; nothing is logged here, the
    caller's caller tells (the bridge logs a component that did not close cleanly).

    ``within``: seconds to wait at most (a stop under a deadline); the tasks still running then
    are returned, cancelled and left to end on their own (the caller says so). Without it, none.
    """
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    # Relative: a stop that runs because its task was cancelled (SIGTERM) starts above zero.
    cancelled_before = current.cancelling() if current is not None else 0
    for task in tasks:
        task.cancel()
    until = None if within is None else loop.time() + within
    running = {task for task in tasks if not task.done()}
    while running:
        timeout = None if until is None else max(0.0, until - loop.time())
        try:
            _, running = await asyncio.wait(running, timeout=timeout)
        except asyncio.CancelledError:
            # The caller's own: passed on, and every task still waited for (told apart below).
            for task in running:
                task.cancel()
            continue
        if until is not None and loop.time() >= until:
            break
    failure: Exception | None = None
    for task in tasks:
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            if not isinstance(exc, Exception):
                raise exc  # KeyboardInterrupt, SystemExit: as awaiting the task would
            failure = failure or exc
    if current is not None and current.cancelling() > cancelled_before:
        raise asyncio.CancelledError from failure
    if failure is not None:
        raise failure
    return running
