"""What a stop still waits on once it runs long: its step, the tasks pending, the threads alive.

A stop past its deadline (``EXESDB_SHUTDOWN_TIMEOUT_MS``) is something the stop's own
deadlines did not cut: a call blocking the event loop, a task that does not end when cancelled,
a thread Python joins at the exit. ``StopWatch`` says which, once, at WARNING, from a thread of
its own, so that it speaks while the event loop itself is blocked. Only code locations, task,
coroutine and thread names are shown, never a value (a frame's locals may hold a secret). A log
line stays readable: tasks and threads waiting at the same place are one line with their count,
every list and stack is cut short (``_MOST_STACKS``, ``_MOST_FRAMES``), and the whole report at
``_MOST_CHARACTERS``, what matters first (the step, the event loop's thread, the threads the exit
waits for, then the tasks), saying what was left out.
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

# How much of a report there is at most: the lines of tasks or threads (each line those waiting
# at the same place), the frames of each, and its characters (a stop under load has dozens of tasks
# a few hundred characters each: a 20 KB line otherwise).
_MOST_STACKS: Final = 12
_MOST_FRAMES: Final = 8
_MOST_CHARACTERS: Final = 4000
# Reading the event loop's tasks from another thread may fail, rarely, as the loop changes them
# (RuntimeError, set changed size during iteration: all_tasks reads its tasks again, but not
# Python 3.12's eager tasks); read again this many times, then said unlisted.
_TASK_READS: Final = 20
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

    @property
    def started(self) -> bool:
        """Whether ``start()`` was called: the stop began."""
        return self._loop is not None

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
        # Asked once the stop is over too (by the exit, which the stop's threads hold up).
        since = "the stop over, " if self._ended.is_set() else "the stop is still running "
        lines = [f"{since}{ran:.1f}s after it began ({self._allowed}), at: {self.doing()}"]
        frames = sys._current_frames()
        if (loop_frame := frames.get(self._loop_thread)) is not None:
            lines.append(f"event loop's thread at {_chain(_called(loop_frame))}")
        lines.extend(_threads(frames, self._loop_thread))
        lines.extend(self._tasks())
        return _bounded(lines)

    def _tasks(self) -> list[str]:
        if self._loop is None:
            return []
        tasks = _pending(self._loop)
        if tasks is None:
            return [
                f"the asyncio tasks could not be listed: the event loop changed them as they were"
                f" read, {_TASK_READS} times"
            ]
        places: dict[str, list[str]] = {}  # task names by their coroutine and where it awaits
        for task in sorted(tasks, key=lambda task: task.get_name()):
            coroutine = task.get_coro()
            name = getattr(coroutine, "__qualname__", type(coroutine).__name__)
            places.setdefault(f" {name}: {_chain(list(_awaiting(coroutine)))}", []).append(
                task.get_name()
            )
        return _listed(f"{len(tasks)} asyncio task(s) pending:", places, "task(s)")


def _pending(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[object]] | None:
    """The tasks of ``loop`` not done, read from another thread as the loop runs (or is blocked);
    None when the loop changed them each time they were read."""
    for _ in range(_TASK_READS):
        try:
            return asyncio.all_tasks(loop)
        except RuntimeError:  # the loop added or ended one as they were copied
            continue
    return None


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
    places: dict[str, list[str]] = {}  # thread names by where they are
    for thread in held:
        frame = frames.get(thread.ident or 0)
        at = "not started" if frame is None else _chain(_called(frame))
        places.setdefault(f": {at}", []).append(thread.name)
    return _listed(f"{len(held)} thread(s) alive that the exit waits for:", places, "thread(s)")


def _listed(title: str, places: dict[str, list[str]], what: str) -> list[str]:
    """``title``, then a line for each place (where a task or thread is: the names of those at
    it), past ``_MOST_STACKS`` places those left counted."""
    lines = [title]
    for at, names in list(places.items())[:_MOST_STACKS]:
        alike = f" (and {len(names) - 1} alike)" if len(names) > 1 else ""
        lines.append(f"  {names[0]}{alike}{at}")
    if left := list(places.values())[_MOST_STACKS:]:
        count = sum(len(names) for names in left)
        lines.append(f"  and {count} more {what}, at {len(left)} other place(s)")
    return lines


def _bounded(lines: list[str]) -> str:
    """``lines`` joined, at most ``_MOST_CHARACTERS``: past them the last left out (the first
    matter most: the step, the event loop's thread), saying how many."""
    if sum(len(line) + 1 for line in lines) <= _MOST_CHARACTERS:
        return "\n".join(lines)
    kept = lines[:1]  # the step, whatever its length
    size = len(lines[0])
    for number, line in enumerate(lines[1:], 1):
        note = (
            f"… and {len(lines) - number} more line(s) left out (the report keeps to"
            f" {_MOST_CHARACTERS} characters)"
        )
        if size + len(line) + len(note) + 2 > _MOST_CHARACTERS:
            return "\n".join([*kept, note])
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


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
