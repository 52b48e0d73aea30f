"""What a stop running long says of itself (``bridge.stop_watch``): once, at warning, from a thread
of its own, so a blocked event loop is told too; code locations and names, never a value."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

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
        rf"the stop is still running after 0\.\ds \({re.escape(ALLOWED)}\), at: the close of"
        r" component alerts\n",
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


async def test_many_tasks_are_cut_short_each_named_where_it_awaits() -> None:
    """Every task pending is named with where it awaits, in the coroutines it awaits in turn;
    past 20 tasks the rest are counted, not listed."""
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
    listed = [line for line in report.splitlines() if line.startswith("  Awaiting-")]
    assert len(listed) == 20
    assert listed[0].startswith("  Awaiting-00 test_many_tasks_are_cut_short_each_named_where_it")
    assert " in nested > tests/test_stop_watch.py:" in listed[0]
    assert " in awaits_the_release > asyncio/locks.py:" in listed[0]
    assert "\n  and 6 more" in report  # the 25 waiters and the test's own task, 20 listed
