"""What a stop still waits on once it runs long: its step, the tasks pending, the threads alive.

A stop past its deadline (``EXESDB_SHUTDOWN_TIMEOUT_MS``) is something the stop's own
deadlines did not cut: a call blocking the event loop, a task that does not end when cancelled,
a thread Python joins at the exit. ``StopWatch`` says which, once, at WARNING, from a thread of
its own, so that it speaks while the event loop itself is blocked. Only code locations, task,
coroutine and thread names are shown, never a value (a frame's locals may hold a secret), and
every list is cut short (``_MOST_TASKS``, ``_MOST_THREADS``, ``_MOST_FRAMES``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Final

__all__ = ["StopWatch"]

_logger = logging.getLogger(__name__)

# How much of a report there is at most: the tasks and threads named, the frames of each.
_MOST_TASKS: Final = 20
_MOST_THREADS: Final = 10
_MOST_FRAMES: Final = 8
# Coroutines awaiting coroutines, followed this deep at most (a chain is a few dozen at most).
_DEEPEST_AWAIT: Final = 100
# The project's packages: their files shown from the project's folder (bridge/sinks/alerts/sink.py),
# others by their folder and name (asyncio/tasks.py).
_ROOT: Final = Path(__file__).resolve().parent.parent
_OURS: Final = ("bridge", "collectors")


class StopWatch:
    """Watches a stop from a daemon thread: still running ``after`` seconds from ``start()``,
    it logs, once, what it is doing (``doing()``, which the stop updates as it goes on), where
    the event loop's thread is, every asyncio task still pending and where each awaits, and the
    threads alive that are not daemons (Python joins them before the process exits)."""

    def __init__(self, after: float, doing: Callable[[], str], *, allowed: str) -> None:
        """``allowed``: what the stop may take, as the report says it (``EXESDB_SHUTDOWN_TIMEOUT_MS
        allows 2s``)."""
        self.after = after
        self.doing = doing
        self._allowed = allowed
        self._ended = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.began = 0.0  # when start() was called (time.monotonic)

    def start(self) -> None:
        """Begin watching; called on the event loop's thread, whose tasks the report lists."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.began = time.monotonic()
        threading.Thread(target=self._watch, name="stop-watch", daemon=True).start()

    def end(self) -> None:
        """The stop is over: nothing is reported from now on (``report`` may still be asked);
        idempotent."""
        self._ended.set()

    def _watch(self) -> None:
        if not self._ended.wait(self.after):
            _logger.warning("%s", self.report())

    def report(self) -> str:
        """What the stop still waits on, as logged; may be asked from any thread."""
        ran = time.monotonic() - self.began
        lines = [
            f"the stop is still running after {ran:.1f}s ({self._allowed}), at: {self.doing()}"
        ]
        frames = sys._current_frames()
        if (loop_frame := frames.get(self._loop_thread)) is not None:
            lines.append(f"event loop's thread at {_chain(_called(loop_frame))}")
        lines.extend(self._tasks())
        lines.extend(_threads(frames, self._loop_thread))
        return "\n".join(lines)

    def _tasks(self) -> list[str]:
        if self._loop is None:
            return []
        # Read from this thread, as the loop runs on (or is blocked): all_tasks copies the set
        # of tasks, trying again should the loop change it meanwhile.
        tasks = sorted(asyncio.all_tasks(self._loop), key=lambda task: task.get_name())
        lines = [f"{len(tasks)} asyncio task(s) pending:"]
        for task in tasks[:_MOST_TASKS]:
            coroutine = task.get_coro()
            name = getattr(coroutine, "__qualname__", type(coroutine).__name__)
            lines.append(f"  {task.get_name()} {name}: {_chain(list(_awaiting(coroutine)))}")
        if len(tasks) > _MOST_TASKS:
            lines.append(f"  and {len(tasks) - _MOST_TASKS} more")
        return lines


def _threads(frames: dict[int, FrameType], loop_thread: int) -> list[str]:
    """The threads alive that are no daemons, but the event loop's and the main one: what Python
    joins before the process exits (an executor's, finishing its call), each where it is."""
    main = threading.main_thread()
    held = [
        thread
        for thread in threading.enumerate()
        if not thread.daemon and thread is not main and thread.ident != loop_thread
    ]
    if not held:
        return ["no thread left that the exit waits for"]
    lines = [f"{len(held)} thread(s) alive that the exit waits for:"]
    for thread in held[:_MOST_THREADS]:
        frame = frames.get(thread.ident or 0)
        at = "not started" if frame is None else _chain(_called(frame))
        lines.append(f"  {thread.name}: {at}")
    if len(held) > _MOST_THREADS:
        lines.append(f"  and {len(held) - _MOST_THREADS} more")
    return lines


def _called(frame: FrameType) -> list[FrameType]:
    """The frames that called ``frame``, outermost first, and ``frame``."""
    return [called for called, _ in traceback.walk_stack(frame)][::-1]


def _awaiting(awaitable: object) -> Iterator[FrameType]:
    """The frames of a coroutine and of those it awaits in turn, outermost first: where a task
    waits (``Task.get_stack`` gives the outermost frame alone)."""
    for _ in range(_DEEPEST_AWAIT):
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            return
        yield frame
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)


def _chain(frames: list[FrameType]) -> str:
    """``frames`` (outermost first) as ``file:line in function > …``, the innermost kept."""
    if not frames:
        return "no frame (not started, or ending)"
    shown = [_where(frame) for frame in frames[-_MOST_FRAMES:]]
    return ("… > " if len(frames) > _MOST_FRAMES else "") + " > ".join(shown)


def _where(frame: FrameType) -> str:
    path = Path(frame.f_code.co_filename)
    shown = "/".join(path.parts[-2:])  # a library's, or Python's own
    if path.is_relative_to(_ROOT) and path.relative_to(_ROOT).parts[0] in _OURS:
        shown = str(path.relative_to(_ROOT))
    return f"{shown}:{frame.f_lineno} in {frame.f_code.co_name}"
