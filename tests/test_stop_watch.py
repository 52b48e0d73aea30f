"""What a stop running long says of itself (``bridge.stop_watch``): once, at warning, from a thread
of its own, so a blocked event loop is told too; code locations and names, never a value."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import pytest

from bridge.stop_watch import StopWatch

ALLOWED = "EXESDB_SHUTDOWN_TIMEOUT_MS allows 0.1s"


class Reported(logging.Handler):
    """Keeps what the stop watch logs, then sets ``said`` (kept first: the test reads it as soon
    as ``said`` is set, while the watch's thread may still be handing the record on)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.said = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.said.set()


def block_the_loop(reported: Reported, token: str) -> None:
    """A call that blocks the event loop (as a lock held by a thread can) until the report."""
    assert token  # a value the report must not show
    reported.said.wait(10)


async def test_an_event_loop_blocked_is_told_where_it_blocks_without_values() -> None:
    """A stop blocking the event loop past the report's time: the one warning names the step,
    the event loop's thread at the call blocking it, and no local value of that call."""
    reported = Reported()
    logging.getLogger("bridge.stop_watch").addHandler(reported)
    watch = StopWatch(0.2, lambda: "the close of component alerts", allowed=ALLOWED)
    try:
        watch.start()
        block_the_loop(reported, "hunter2-token")
        watch.end()
    finally:
        logging.getLogger("bridge.stop_watch").removeHandler(reported)
    [record] = reported.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert re.match(
        rf"the stop is still running 0\.\ds after it began \({re.escape(ALLOWED)}\), at: the"
        r" close of component alerts\n",
        message,
    )
    [loop_line] = [line for line in message.splitlines() if line.startswith("event loop's")]
    assert " > tests/test_stop_watch.py:" in loop_line
    assert " in block_the_loop > " in loop_line
    assert "hunter2" not in message


async def test_a_stop_over_in_time_says_nothing() -> None:
    """A stop that ends before the report's time is not reported, then or later."""
    said: list[str] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    kept = Kept()
    logging.getLogger("bridge.stop_watch").addHandler(kept)
    try:
        watch = StopWatch(0.1, lambda: "the bus's close", allowed=ALLOWED)
        watch.start()
        watch.end()
        await asyncio.sleep(0.3)  # past the report's time, which the ended watch lets pass
    finally:
        logging.getLogger("bridge.stop_watch").removeHandler(kept)
    assert said == []


async def test_tasks_awaiting_at_the_same_place_are_one_line_counted() -> None:
    """Tasks pending where the same coroutines await are one line, naming the first of them
    (by name) with how many more are alike, and where they await, in the coroutines they
    await in turn."""
    release = asyncio.Event()

    async def awaits_the_release() -> None:
        await release.wait()

    async def nested() -> None:
        await awaits_the_release()

    tasks = [asyncio.create_task(nested(), name=f"Awaiting-{n:02}") for n in range(25)]
    await asyncio.sleep(0)  # each task to its first await
    watch = StopWatch(60, lambda: "the close of component otlp", allowed=ALLOWED)
    watch.start()
    report = watch.report()
    watch.end()
    release.set()
    await asyncio.gather(*tasks)
    [listed] = [line for line in report.splitlines() if line.startswith("  Awaiting-")]
    assert listed.startswith("  Awaiting-00 (and 24 alike) test_tasks_awaiting_at_the_same_")
    assert " in nested > tests/test_stop_watch.py:" in listed
    assert " in awaits_the_release > asyncio/locks.py:" in listed
    assert "\n26 asyncio task(s) pending:\n" in report  # the 25 and the test's own


async def descends_then_awaits_the_release_given_to_this_test(
    depth: int, release: asyncio.Event, sleeps: bool
) -> None:
    """Awaits ``depth`` calls of itself deep, then the release (or a long sleep): a long stack,
    one of its own for each ``depth`` and ``sleeps``."""
    if depth:
        await descends_then_awaits_the_release_given_to_this_test(depth - 1, release, sleeps)
    elif sleeps:
        await asyncio.sleep(60)  # cancelled once the report is taken
    else:
        await release.wait()


async def test_a_long_report_keeps_to_4000_characters_saying_what_it_left_out() -> None:
    """Tasks awaiting at many places, each with a long stack: the report keeps to 4000
    characters, the step first and the threads the exit waits for before the tasks, its last
    line counting the lines left out."""
    release = asyncio.Event()
    tasks = [
        asyncio.create_task(descends_then_awaits_the_release_given_to_this_test(n, release, s))
        for n in range(8)
        for s in (False, True)
    ]
    await asyncio.sleep(0)  # each task to its await
    writer = threading.Thread(target=release_awaited, args=(release,), name="outbox-writer")
    writer.start()
    watch = StopWatch(60, lambda: "the close of component alerts", allowed=ALLOWED)
    watch.start()
    report = watch.report()
    watch.end()
    release.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    writer.join()
    lines = report.splitlines()
    assert len(report) <= 4000
    assert lines[0].endswith(", at: the close of component alerts")
    # Threads an earlier test left may be alive too: the writer is among them, before the tasks.
    assert lines[2].endswith(" thread(s) alive that the exit waits for:")
    tasks_title = lines.index("17 asyncio task(s) pending:")  # the 16 and the test's own
    assert any(line.startswith("  outbox-writer: ") for line in lines[3:tasks_title])
    assert re.fullmatch(
        r"… and \d+ more line\(s\) left out \(the report keeps to 4000 characters\)", lines[-1]
    )
    listed = [line for line in lines if "descends_then_awaits" in line.split(": ", 1)[0]]
    assert 0 < len(listed) < 12


def release_awaited(release: asyncio.Event) -> None:
    """A thread the exit waits for, until ``release`` is set (read from this thread: the test
    sets it once the report is taken)."""
    while not release.is_set():
        threading.Event().wait(0.01)  # looking again, the event being the loop's


class ChangedAsRead:
    """``asyncio.all_tasks`` as read from another thread while the event loop adds and ends
    tasks: ``failures`` RuntimeErrors (set changed size during iteration), then the tasks."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.read = asyncio.all_tasks

    def __call__(self, loop: asyncio.AbstractEventLoop | None = None) -> set[asyncio.Task[object]]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("Set changed size during iteration")
        return self.read(loop)


async def test_tasks_changed_as_they_are_read_are_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event loop's tasks, changed by the loop as another thread reads them (Python 3.12
    does not read its eager tasks again): read again, and listed."""
    monkeypatch.setattr(asyncio, "all_tasks", ChangedAsRead(failures=3))
    watch = StopWatch(60, lambda: "the close of component otlp", allowed=ALLOWED)
    watch.start()
    report = watch.report()
    watch.end()
    assert "\n1 asyncio task(s) pending:\n  Task-" in report


async def test_tasks_changed_each_time_they_are_read_are_said_unlisted_with_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event loop's tasks changed each time they are read: the report says they could not
    be listed, and still names the step and the threads."""
    monkeypatch.setattr(asyncio, "all_tasks", ChangedAsRead(failures=1000))
    watch = StopWatch(60, lambda: "the close of component otlp", allowed=ALLOWED)
    watch.start()
    report = watch.report()
    watch.end()
    assert ", at: the close of component otlp\n" in report
    assert " that the exit waits for" in report
    assert report.endswith(
        "\nthe asyncio tasks could not be listed: the event loop changed them as they were"
        " read, 20 times"
    )


async def test_tasks_at_more_than_12_places_are_counted_past_them() -> None:
    """Tasks awaiting at 14 places: 12 are listed, the tasks at the other 2 counted."""
    release = asyncio.Event()

    async def dig(depth: int, sleeps: bool) -> None:
        if depth:
            await dig(depth - 1, sleeps)
        elif sleeps:
            await asyncio.sleep(60)  # cancelled once the report is taken
        else:
            await release.wait()

    tasks = [asyncio.create_task(dig(n, s)) for n in range(7) for s in (False, True)]
    await asyncio.sleep(0)  # each task to its await
    watch = StopWatch(60, lambda: "the close of component alerts", allowed=ALLOWED)
    watch.start()
    report = watch.report()
    watch.end()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert len(report) < 4000
    listed = [line for line in report.splitlines() if line.startswith("  Task-")]
    assert len(listed) == 12
    assert report.endswith("\n  and 3 more task(s), at 3 other place(s)")
