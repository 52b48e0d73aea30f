"""The bounded batcher: never blocks, counts every loss, and stops by its deadline."""

from __future__ import annotations

import threading
import time

import pytest

from bridge.sinks.otlp import BatchSettings, BoundedBatcher
from tests.support import wait_until


class Tally:
    """Records what the batcher reports."""

    def __init__(self) -> None:
        self.dropped = 0
        self.exports: list[tuple[int, bool]] = []

    def drop(self, count: int) -> None:
        self.dropped += count

    def exported(self, count: int, ok: bool, seconds: float) -> None:
        self.exports.append((count, ok))


def make(
    export, tally: Tally, *, max_queue: int = 10, max_batch: int = 4, delay: float = 0.01
) -> BoundedBatcher[int]:
    return BoundedBatcher(
        "test",
        export,
        max_queue=max_queue,
        settings=BatchSettings(schedule_delay=delay, max_batch=max_batch),
        on_drop=tally.drop,
        on_export=tally.exported,
    )


def test_full_queue_drops_and_counts_without_blocking() -> None:
    """Offers beyond the queue's bound return False at once and are counted."""
    tally = Tally()
    batcher = make(lambda batch: True, tally, max_queue=3)
    results = [batcher.offer(i) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert (tally.dropped, batcher.depth) == (2, 3)


def test_exports_in_batches_of_at_most_max_batch() -> None:
    """Queued records leave in order, in batches no bigger than max_batch."""
    tally = Tally()
    seen: list[list[int]] = []

    def export(batch: list[int]) -> bool:
        seen.append(batch)
        return True

    batcher = make(export, tally)
    for i in range(10):
        batcher.offer(i)
    batcher.start()
    wait_until(lambda: sum(len(batch) for batch in seen) == 10, 5, "all exported")
    assert [item for batch in seen for item in batch] == list(range(10))
    assert max(len(batch) for batch in seen) <= 4
    assert all(ok for _, ok in tally.exports)
    assert batcher.close(1.0, lambda: None, 0.5)


def test_a_batch_goes_in_requests_of_at_most_max_batch_bytes_a_larger_record_alone() -> None:
    """A batch leaves in order in requests of at most max_batch_bytes as ``size`` estimates
    them; a record larger than the limit goes in a request of its own, not taking the others
    with it."""
    tally = Tally()
    seen: list[list[int]] = []

    def export(batch: list[int]) -> bool:
        seen.append(batch)
        return True

    batcher = BoundedBatcher(
        "test",
        export,
        max_queue=100,
        # A schedule far beyond the wait below: the seven make one batch, full by count.
        settings=BatchSettings(schedule_delay=60.0, max_batch=7),
        on_drop=tally.drop,
        on_export=tally.exported,
        size=lambda record: 1000 if record == 3 else 10,
        max_batch_bytes=30,
    )
    for record in range(7):
        batcher.offer(record)
    batcher.start()
    wait_until(lambda: sum(len(batch) for batch in seen) == 7, 5, "all exported")
    assert seen == [[0, 1, 2], [3], [4, 5, 6]]
    assert tally.exports == [(3, True), (1, True), (3, True)]
    assert batcher.close(1.0, lambda: None, 0.5)


def test_raising_exporter_counts_a_failure_and_keeps_going() -> None:
    """An exporter that raises loses that batch only; the thread keeps exporting."""
    tally = Tally()
    calls = []

    def export(batch: list[int]) -> bool:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return True

    batcher = make(export, tally, max_batch=2)
    batcher.start()
    for i in range(4):
        batcher.offer(i)
    wait_until(lambda: len(tally.exports) >= 2, 5, "two exports")
    assert tally.exports[0] == (2, False)
    assert (2, True) in tally.exports
    batcher.close(1.0, lambda: None, 0.5)


def test_close_returns_by_its_deadline_when_an_export_hangs() -> None:
    """A hung export and a hung exporter shutdown cannot hold close() past its bound."""
    tally = Tally()
    release = threading.Event()
    batcher = make(lambda batch: release.wait(30), tally, max_batch=1)
    batcher.start()
    for i in range(5):
        batcher.offer(i)
    wait_until(lambda: batcher.depth == 4, 5, "an export in flight")
    started = time.monotonic()

    def hung_shutdown() -> None:
        release.wait(30)

    finished = batcher.close(0.2, hung_shutdown, 0.1)
    # About 0.4 s (the flush's 0.2 and twice the grace); waiting on the hung export or the
    # hung shutdown would take their 30 s. The bound leaves a loaded host seconds to spare.
    assert time.monotonic() - started < 5
    assert finished is False
    assert tally.dropped == 4
    assert batcher.offer(99) is False
    release.set()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, BatchSettings(5.0, 512)),
        (
            {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8"},
            BatchSettings(0.05, 8),
        ),
        (
            {"OTEL_BSP_SCHEDULE_DELAY": "soon", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-1"},
            BatchSettings(5.0, 512),
        ),
        # Numbers float() takes that no wait or batch can be: infinite, or past the longest
        # wait a thread is given (threading.TIMEOUT_MAX, some 292 years).
        (
            {"OTEL_BSP_SCHEDULE_DELAY": "inf", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "Infinity"},
            BatchSettings(5.0, 512),
        ),
        ({"OTEL_BSP_SCHEDULE_DELAY": "1e13"}, BatchSettings(5.0, 512)),
    ],
)
def test_batch_settings_read_the_sdk_variables(
    environ: dict[str, str], expected: BatchSettings
) -> None:
    """OTEL_BSP_* values are read in milliseconds; bad ones fall back to the SDK defaults."""
    assert BatchSettings.from_env("OTEL_BSP", environ) == expected


def test_log_batches_default_to_the_log_processor_delay() -> None:
    """OTEL_BLRP_SCHEDULE_DELAY defaults to 1 s, as in the SDK."""
    assert BatchSettings.from_env("OTEL_BLRP", {}).schedule_delay == 1.0
