"""Retry policy and the per-URL worker, with an injected clock, sleep and randomness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.backoff import Backoff
from bridge.sinks.alerts.delivery import (
    AttemptResult,
    DeliveryWorker,
    Outcome,
    RetryPolicy,
    Sender,
    classify,
    parse_retry_after,
    wait_or_wake,
)
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import AlertRecord, Delivery, DeliveryState
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import T0, observe
from tests.support import ManualClock, async_wait_until

URL = "http://127.0.0.1:9/hook"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (408, Outcome.RETRY),
        (425, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (599, Outcome.RETRY),
        (301, Outcome.REJECTED),
        (400, Outcome.REJECTED),
        (401, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (409, Outcome.REJECTED),
        (413, Outcome.REJECTED),
        (426, Outcome.REJECTED),
    ],
)
def test_retryable_set_is_408_425_429_and_every_5xx(status: int, outcome: Outcome) -> None:
    """2xx delivers; 408 Request Timeout, 425 Too Early, 429 and 5xx retry; every other answer
    is final."""
    assert classify(status) is outcome


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Fri, 15 Jan 2027 08:00:30 GMT", 30.0),
        ("Fri, 15 Jan 2027 07:00:00 GMT", 0.0),
        ("soon", None),
        ("-3", None),
        ("²", None),  # a digit to str.isdigit(), not to float()
        (None, None),
        ("99999999", 86_400.0),
        ("Fri, 15 Jan 2027 99999999999999999999:00:00 GMT", None),  # no C long holds the hour
        ("Fri, 15 Jan 2027 08:00:30 +99999999999999", None),  # nor a C int the offset
    ],
)
def test_retry_after_takes_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    """Retry-After as delta-seconds or an HTTP date, clamped to [0, 1 day]; junk is ignored."""
    assert parse_retry_after(header, T0) == seconds


def test_next_attempt_follows_the_backoff_from_the_last_attempt() -> None:
    """The next try is the backoff's delay after the failed attempt, Retry-After when longer,
    up to the largest backoff."""
    policy = RetryPolicy(Backoff(base=1.0, cap=10.0, jitter=0.0), deadline=100.0)
    assert [policy.next_attempt(T0, n, T0 + 5) for n in (1, 2, 3)] == [T0 + 6, T0 + 7, T0 + 9]
    assert policy.next_attempt(T0, 1, T0, retry_after=8.0) == T0 + 8
    assert policy.next_attempt(T0, 1, T0, retry_after=30.0) == T0 + 10


@pytest.mark.parametrize(
    ("failures", "now", "retry_after", "next_at"),
    [
        (1, T0 + 98, None, T0 + 99),  # within the deadline
        (1, T0 + 99, None, T0 + 100),  # exactly at it: still tried
        (1, T0 + 99.5, None, None),  # past it: dead-lettered
        (1, T0, 101.0, T0 + 10),  # a Retry-After past it waits the largest backoff
        (1, T0 + 95, 30.0, None),  # ... which past it dead-letters
    ],
)
def test_no_attempt_is_planned_past_the_deadline(
    failures: int, now: float, retry_after: float | None, next_at: float | None
) -> None:
    """A next attempt that would fall after created_at + deadline is None (dead-lettered)."""
    policy = RetryPolicy(Backoff(base=1.0, cap=10.0, jitter=0.0), deadline=100.0)
    assert policy.next_attempt(T0, failures, now, retry_after) == next_at


@pytest.mark.parametrize(
    ("rng", "retry_after"),
    [
        (lambda: -math.inf, None),  # a delay that overflowed below nothing
        (lambda: math.nan, math.inf),
        (lambda: 0.5, math.nan),
        (lambda: 0.5, math.inf),
    ],
    ids=["-inf delay", "nan delay, inf Retry-After", "nan Retry-After", "inf Retry-After"],
)
def test_a_next_attempt_is_a_time_within_the_largest_backoff(
    rng: Callable[[], float], retry_after: float | None
) -> None:
    """Whatever the backoff's randomness or a Retry-After gave (NaN, infinite), the next attempt
    is a time at most the largest backoff on, never one that never comes."""
    policy = RetryPolicy(Backoff(base=1.0, cap=10.0, rng=rng), deadline=100.0)
    next_at = policy.next_attempt(T0, 1, T0, retry_after)
    assert next_at is not None
    assert T0 <= next_at <= T0 + 10


class ScriptedSender:
    """Answers attempts from a list of results and records what it was asked to send."""

    def __init__(self, results: Sequence[AttemptResult]) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, str, bytes]] = []

    async def send(self, delivery: Delivery) -> AttemptResult:
        self.sent.append((delivery.url, delivery.id, delivery.body))
        return self.results.pop(0)


def result(outcome: Outcome, status: int | None, retry_after: float | None = None) -> AttemptResult:
    """An attempt's result."""
    error = None if outcome is Outcome.DELIVERED else f"HTTP {status}"
    return AttemptResult(outcome, status, error, retry_after, 0.01)


def one_each(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """One payload per alert."""
    return [(json.dumps([r.alert_id]).encode(), [r.alert_id]) for r in records]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """An outbox holding one queued alert for URL."""
    box = Outbox.in_dir(tmp_path, urls=[URL])
    observe(
        box,
        AlertEvent(
            "a1",
            "x",
            "firing",
            "critical",
            "system",
            "n1",
            "t",
            "d",
            True,
            datetime.fromtimestamp(T0, UTC),
        ),
        T0,
    )
    yield box
    box.close()


def worker_for(
    outbox: Outbox,
    sender: ScriptedSender,
    clock: ManualClock,
    reports: list[tuple[str, int]],
    deadline: float = 100.0,
) -> DeliveryWorker:
    """A worker with backoff 1 s doubling to 8 s, no jitter randomness (random() = 0.5)."""
    return DeliveryWorker(
        URL,
        queue=outbox.queue,
        db=DbThread(),
        sender=sender,
        policy=RetryPolicy(Backoff(base=1.0, cap=8.0, rng=lambda: 0.5), deadline=deadline),
        group_wait=0.0,
        build=one_each,
        report=lambda delivery, res, state, attempt: reports.append((state.value, attempt)),
        clock=clock,
    )


async def test_worker_retries_with_backoff_and_one_delivery_id(outbox: Outbox) -> None:
    """500, 503 and 429 (Retry-After 5) are retried at 1 s, 2 s and 5 s; then delivered."""
    clock = ManualClock(T0)
    sender = ScriptedSender(
        [
            result(Outcome.RETRY, 500),
            result(Outcome.RETRY, 503),
            result(Outcome.RETRY, 429, retry_after=5.0),
            result(Outcome.DELIVERED, 200),
        ]
    )
    reports: list[tuple[str, int]] = []
    worker = worker_for(outbox, sender, clock, reports)
    waits = []
    for _ in range(4):
        waits.append(await worker.step())  # attempt
        waits.append(await worker.step())  # nothing due: how long to sleep
        clock.advance(waits[-1])
    assert waits[1::2] == [1.0, 2.0, 5.0, 5.0]  # the last: idle poll
    assert len({delivery_id for _, delivery_id, _ in sender.sent}) == 1
    assert reports == [("pending", 1), ("pending", 2), ("pending", 3), ("delivered", 4)]
    assert outbox.queue.depth().pending == 0


async def test_the_log_tells_a_failing_receiver_once_and_its_recovery(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Three failed attempts then a delivery log two lines, not four: the receiver's first
    failure (a warning naming the reason) and its recovery (counting the failures)."""
    clock = ManualClock(T0)
    sender = ScriptedSender(
        [
            result(Outcome.RETRY, 503),
            result(Outcome.RETRY, 503),
            result(Outcome.RETRY, 500),
            result(Outcome.DELIVERED, 200),
        ]
    )
    worker = worker_for(outbox, sender, clock, [])
    with caplog.at_level("INFO", logger="bridge.sinks.alerts"):
        for _ in range(4):
            await worker.step()
            clock.advance(await worker.step())
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "webhook receiver http://127.0.0.1:9/… failing: HTTP 503; retrying, the alerts wait "
            "in the outbox",
        ),
        ("INFO", "webhook receiver http://127.0.0.1:9/… recovered after 3 failed attempt(s)"),
    ]


async def test_the_log_tells_each_dead_letter(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A final answer dead-letters with one warning naming the delivery, that the receiver
    refused it (a retry unchanged would meet the same 404) and how to retry it once mended."""
    clock = ManualClock(T0)
    worker = worker_for(outbox, ScriptedSender([result(Outcome.REJECTED, 404)]), clock, [])
    with caplog.at_level("INFO", logger="bridge.sinks.alerts"):
        await worker.step()
    [dead] = outbox.queue.deliveries(DeliveryState.DEAD.value)
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        f"webhook delivery {dead.id} to http://127.0.0.1:9/… dead-lettered after 1 attempt(s): "
        "HTTP 404; the receiver refused it, which is final: mend what it refused (the URL's"
        f" path, its credentials), then `exesdb-bridge outbox retry {dead.id}` sends it again"
    )


async def test_worker_treats_4xx_as_final(outbox: Outbox) -> None:
    """A 400 dead-letters the delivery at once; nothing more is attempted."""
    clock = ManualClock(T0)
    sender = ScriptedSender([result(Outcome.REJECTED, 400)])
    reports: list[tuple[str, int]] = []
    worker = worker_for(outbox, sender, clock, reports)
    await worker.step()
    clock.advance(1000)
    assert await worker.step() == 5.0
    assert reports == [("dead", 1)]
    [dead] = outbox.queue.deliveries(DeliveryState.DEAD.value)
    assert (dead.last_status, dead.last_error) == (400, "HTTP 400")


async def test_worker_dead_letters_at_the_deadline(outbox: Outbox) -> None:
    """Failures past EXESDB_WEBHOOK_DEADLINE_MS dead-letter the delivery."""
    clock = ManualClock(T0)
    sender = ScriptedSender([result(Outcome.RETRY, 503)] * 10)
    reports: list[tuple[str, int]] = []
    worker = worker_for(outbox, sender, clock, reports, deadline=10.0)
    for _ in range(10):
        clock.advance(await worker.step())
    # 1 + 2 + 4 = 7 s of waiting fits in 10 s; the 4th failure would wait 8 s more.
    assert reports == [("pending", 1), ("pending", 2), ("pending", 3), ("dead", 4)]
    assert outbox.queue.depth().dead == 1


async def test_a_dead_letter_at_the_deadline_is_not_told_as_refused(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A delivery dead-lettered at EXESDB_WEBHOOK_DEADLINE_MS, its receiver failing rather than
    refusing, is told with how to retry it and nothing of mending a refusal."""
    clock = ManualClock(T0)
    sender = ScriptedSender([result(Outcome.RETRY, 503)] * 10)
    worker = worker_for(outbox, sender, clock, [], deadline=10.0)
    with caplog.at_level("WARNING", logger="bridge.sinks.alerts"):
        for _ in range(10):
            clock.advance(await worker.step())
    [dead] = outbox.queue.deliveries(DeliveryState.DEAD.value)
    assert caplog.records[-1].getMessage() == (
        f"webhook delivery {dead.id} to http://127.0.0.1:9/… dead-lettered after 4 attempt(s): "
        f"HTTP 503; `exesdb-bridge outbox retry {dead.id}` sends it again"
    )


async def test_a_delivery_retried_by_hand_gets_a_deadline_from_its_retry(outbox: Outbox) -> None:
    """A dead letter put back by `outbox retry` long after it was made is retried until the
    deadline counted from the retry, not dead-lettered at its first failure; it keeps the time
    it was made."""
    clock = ManualClock(T0)
    sender = ScriptedSender([result(Outcome.REJECTED, 400), *[result(Outcome.RETRY, 503)] * 3])
    reports: list[tuple[str, int]] = []
    worker = worker_for(outbox, sender, clock, reports, deadline=10.0)
    await worker.step()
    [dead] = outbox.queue.deliveries(DeliveryState.DEAD.value)
    clock.advance(1000.0)
    assert len(outbox.dead_letters.retry(clock.now, [dead.id])) == 1
    for _ in range(6):
        clock.advance(await worker.step())
    # The backoff goes on from the count (2 s, 4 s): 6 s fit in 10 s, 8 s more would not.
    assert reports == [("dead", 1), ("pending", 2), ("pending", 3), ("dead", 4)]
    [again] = outbox.queue.deliveries(ids=[dead.id])
    assert again.created_at == dead.created_at == T0


async def test_a_retry_planned_for_the_year_9999_is_made_after_the_largest_backoff(
    outbox: Outbox,
) -> None:
    """A pending delivery whose next attempt an edited or older outbox put in the year 9999 is
    tried the largest backoff (8 s) on, not never."""
    clock = ManualClock(T0)
    sender = ScriptedSender([result(Outcome.DELIVERED, 200)])
    reports: list[tuple[str, int]] = []
    worker = worker_for(outbox, sender, clock, reports)
    outbox.queue.group(URL, T0, 0.0, one_each)
    with outbox.database.transaction() as db:
        db.execute("UPDATE deliveries SET next_attempt_at = 253402300799.0")
    waited = 0.0
    while not reports and waited < 60:
        wait = await worker.step()
        clock.advance(wait)
        waited += wait
    assert reports == [("delivered", 1)]
    assert waited == 8.0


class BrokenSender:
    """A sender that breaks its promise never to raise."""

    async def send(self, delivery: Delivery) -> AttemptResult:
        raise RuntimeError("bug")


def _failing_worker(
    outbox: Outbox,
    db: DbThread,
    sender: Sender,
    sleep: Callable[[float, asyncio.Event], Awaitable[None]],
    errors: list[None],
    reported: list[DeliveryState],
) -> DeliveryWorker:
    """A worker whose failed steps are counted in ``errors`` and whose attempts' states go to
    ``reported``: retries after 1 s, doubling to 8 s."""
    return DeliveryWorker(
        URL,
        queue=outbox.queue,
        db=db,
        sender=sender,
        policy=RetryPolicy(Backoff(base=1.0, cap=8.0), deadline=100.0),
        group_wait=0.0,
        build=one_each,
        report=lambda delivery, res, state, attempt: reported.append(state),
        clock=ManualClock(T0),
        sleep=sleep,
        on_error=lambda: errors.append(None),
    )


async def test_a_failing_step_is_counted_and_the_worker_goes_on(outbox: Outbox) -> None:
    """An exception in a worker's step is counted through on_error and the loop keeps going,
    after a pause that doubles with each failure in a row."""
    errors: list[None] = []
    pauses: list[float] = []

    async def sleep(seconds: float, wake: asyncio.Event) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0)

    db = DbThread()
    worker = _failing_worker(outbox, db, BrokenSender(), sleep, errors, [])
    worker.start()
    try:
        await async_wait_until(lambda: len(errors) >= 2, what="two failed steps counted")
    finally:
        await worker.aclose()
        db.close()
    assert pauses[:2] == [1.0, 2.0]  # a pause after each failure, then it tries again
    assert outbox.queue.depth().pending == 1  # the delivery is still there to send


class FailingThenWorking:
    """A sender that raises ``failures`` times (the same fault, as a full disk gives), then
    delivers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def send(self, delivery: Delivery) -> AttemptResult:
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        return AttemptResult(Outcome.DELIVERED, 200, None, None, 0.01)


async def test_a_worker_failing_step_after_step_logs_the_fault_once_and_its_recovery(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault repeated at every step (a full disk) is logged with its traceback once, not once
    a second, each step still counted; the recovery is logged once the worker works again."""
    errors: list[None] = []
    delivered: list[DeliveryState] = []

    async def sleep(seconds: float, wake: asyncio.Event) -> None:
        await asyncio.sleep(0)

    db = DbThread()
    worker = _failing_worker(outbox, db, FailingThenWorking(5), sleep, errors, delivered)
    with caplog.at_level("INFO", logger="bridge.sinks.alerts.delivery"):
        worker.start()
        try:
            await async_wait_until(lambda: delivered, what="the delivery sent at last")
        finally:
            await worker.aclose()
            db.close()
    assert (len(errors), delivered) == (5, [DeliveryState.DELIVERED])
    logged = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert logged == [
        ("ERROR", f"webhook worker for {worker.label} failed; retrying", True),
        ("INFO", f"webhook worker for {worker.label} works again after 5 failed step(s)", False),
    ]


class SlowToUnwind:
    """A sender whose attempt hangs and, cancelled, takes until ``unwind`` is set to end."""

    def __init__(self) -> None:
        self.sending = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.unwind = asyncio.Event()

    async def send(self, delivery: Delivery) -> AttemptResult:
        self.sending.set()
        try:
            await asyncio.Event().wait()  # never set: an attempt that hangs
        except asyncio.CancelledError:
            self.cancelled.set()
            await self.unwind.wait()
            raise
        raise AssertionError("unreachable")


async def test_a_stop_cancelled_while_the_worker_unwinds_stays_cancelled(outbox: Outbox) -> None:
    """A stop cancelled (its deadline passed) while the worker's cancelled attempt unwinds
    ends cancelled, not as if it had finished: the bridge's stop deadline holds."""
    sender = SlowToUnwind()
    db = DbThread()
    worker = _failing_worker(outbox, db, sender, lambda seconds, wake: asyncio.sleep(0), [], [])
    worker.start()
    try:
        await asyncio.wait_for(sender.sending.wait(), 10)
        closer = asyncio.get_running_loop().create_task(worker.aclose())
        await asyncio.wait_for(sender.cancelled.wait(), 10)
        closer.cancel()
        await asyncio.sleep(0)  # the closer takes its cancellation while the worker unwinds
        sender.unwind.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(closer, 10)
        assert closer.cancelled()
    finally:
        db.close()


async def test_a_stop_with_a_delivery_in_flight_says_what_it_waits_for_and_what_is_left(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop while an attempt waits on a hanging receiver logs the grace it gives that
    delivery, then, the grace out, that it stays pending for the next start: the stop's wait
    is no silent one."""
    sender = SlowToUnwind()
    sender.unwind.set()  # cancelled, the attempt ends at once
    db = DbThread()
    worker = _failing_worker(outbox, db, sender, lambda seconds, wake: asyncio.sleep(0), [], [])
    worker.start()
    try:
        await asyncio.wait_for(sender.sending.wait(), 10)
        with caplog.at_level("INFO", logger="bridge.sinks.alerts.delivery"):
            await asyncio.wait_for(worker.aclose(0.05), 10)
    finally:
        db.close()
    logged = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert logged == [
        (
            "INFO",
            f"stopping: the delivery in flight to webhook receiver {worker.label} gets 0.1s to end",
        ),
        (
            "INFO",
            f"stopping: the delivery in flight to webhook receiver {worker.label} did not end:"
            " it stays pending in the outbox and is sent again at the next start",
        ),
    ]
    assert outbox.queue.depth().pending == 1


async def test_a_stop_with_no_delivery_in_flight_says_nothing(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop while the worker waits for work, nothing in flight, logs nothing about deliveries."""
    db = DbThread()
    sender = ScriptedSender([result(Outcome.DELIVERED, 200)])
    worker = _failing_worker(outbox, db, sender, wait_or_wake, [], [])
    worker.start()
    try:
        await async_wait_until(lambda: sender.sent)  # answered: nothing in flight any more
        with caplog.at_level("INFO", logger="bridge.sinks.alerts.delivery"):
            await asyncio.wait_for(worker.aclose(5.0), 10)
    finally:
        db.close()
    assert caplog.records == []


async def test_a_stop_while_a_delivery_is_vetted_starts_no_attempt(outbox: Outbox) -> None:
    """A stop asked while the worker vets its next delivery (on Redis, a read of Redis's alert
    states; with send_resolved: false, one of the outbox) starts no attempt after the vet: the
    stop gives the attempts in flight its grace, and starts none."""
    vetting = asyncio.Event()
    vetted = asyncio.Event()

    async def vet(delivery: Delivery) -> Delivery | None:
        vetting.set()
        await vetted.wait()
        return delivery

    sender = ScriptedSender([result(Outcome.DELIVERED, 200)])
    db = DbThread()
    worker = DeliveryWorker(
        URL,
        queue=outbox.queue,
        db=db,
        sender=sender,
        policy=RetryPolicy(Backoff(base=1.0, cap=8.0), deadline=100.0),
        group_wait=0.0,
        build=one_each,
        report=lambda delivery, res, state, attempt: None,
        clock=ManualClock(T0),
        vet=vet,
    )
    try:
        step = asyncio.ensure_future(worker.step())
        await asyncio.wait_for(vetting.wait(), 10)
        worker.stop()
        vetted.set()
        await asyncio.wait_for(step, 10)
    finally:
        db.close()
    assert sender.sent == []
    assert outbox.queue.depth().pending == 1  # still there for the next start
