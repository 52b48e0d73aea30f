"""Batch subscriptions: whole batches per call, acks after the handler, durable waits, pushback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import pytest

from bridge.bus import (
    BatchSubscription,
    Durability,
    Envelope,
    Frame,
    Subscription,
    new_message_id,
)
from bridge.messages import NodeHealth, SystemAlert
from tests.bus.helpers import BusFactory, BusKit
from tests.support import async_wait_until


def _alert(number: int) -> SystemAlert:
    return SystemAlert(
        alert_id=f"a{number}",
        severity="warning",
        category="system",
        title="disk full",
        description="disk full",
        source="test",
        node="node1@host",
    )


def _envelope(number: int) -> Envelope:
    payload = _alert(number)
    now = datetime.now(UTC)
    return Envelope(
        new_message_id(),
        payload.INSTANCE,
        "disk_full",
        payload.TAG,
        "app",
        now,
        payload,
        now.timestamp(),
    )


class Batches:
    """A batch handler that records each call's size, optionally held on an event."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.ids: list[str] = []
        self.gate = gate
        self.entered = 0

    async def __call__(self, envelopes: Sequence[Envelope]) -> None:
        self.entered += 1
        if self.gate is not None:
            await self.gate.wait()
        self.sizes.append(len(envelopes))
        self.ids.extend(e.payload.alert_id for e in envelopes)  # type: ignore[attr-defined]


async def _started(make_bus: BusFactory) -> BusKit:
    kit = make_bus()
    await kit.bus.start()
    return kit


async def test_handler_gets_everything_queued_in_one_call_up_to_max_batch(
    make_bus: BusFactory,
) -> None:
    """What queued while the handler was busy arrives as batches of at most max_batch, in order."""
    kit = await _started(make_bus)
    gate = asyncio.Event()
    batches = Batches(gate)
    kit.bus.subscribe("b", batches, instances=["ex_esdb_alerts"], batch=True, max_batch=4)
    for number in range(10):
        kit.bus.publish("disk_full", _alert(number))
    await async_wait_until(lambda: batches.entered == 1, what="the first batch held")
    gate.set()
    await async_wait_until(lambda: len(batches.ids) == 10, what="ten alerts handled")
    assert batches.ids == [f"a{n}" for n in range(10)]
    assert max(batches.sizes) == 4
    assert len(batches.sizes) < 10


async def test_frames_are_acked_after_the_handler_returns_and_not_when_it_fails(
    make_bus: BusFactory,
) -> None:
    """Each frame's ack runs after its batch's handler returned; a failing batch acks nothing."""
    kit = await _started(make_bus)
    events: list[str] = []
    fail = {"on": False}

    async def handler(envelopes: Sequence[Envelope]) -> None:
        events.append(f"handled {len(envelopes)}")
        if fail["on"]:
            raise RuntimeError("boom")

    kit.bus.subscribe("b", handler, instances=["ex_esdb_alerts"], batch=True, group=True)

    def frame(number: int) -> Frame:
        envelope = _envelope(number)
        body = envelope.to_bytes()

        def ack() -> None:
            events.append(f"ack a{number}")

        return Frame(envelope.instance, body, kit.keyring.sign(body), envelope, group=True, ack=ack)

    kit.transport.send(frame(1))
    kit.transport.send(frame(2))
    await async_wait_until(lambda: "ack a2" in events, what="both acks")
    assert events == ["handled 2", "ack a1", "ack a2"]
    fail["on"] = True
    kit.transport.send(frame(3))
    await async_wait_until(
        lambda: kit.sample("exesdb_sink_errors_total", subscriber="b") == 1, what="the error"
    )
    assert "ack a3" not in events


async def test_durable_publish_returns_once_the_handler_has_handled_the_batch(
    make_bus: BusFactory,
) -> None:
    """publish_verified_durably waits for the durable subscriber, and times out without it."""
    kit = await _started(make_bus)
    gate = asyncio.Event()
    batches = Batches(gate)
    kit.bus.subscribe("b", batches, instances=["ex_esdb_alerts"], batch=True, durable=True)
    waiting = asyncio.create_task(
        kit.bus.publish_verified_durably([_envelope(n) for n in range(3)], 5.0)
    )
    await async_wait_until(lambda: batches.entered == 1, what="the batch held")
    assert not waiting.done()  # the handler is held: not committed yet
    gate.set()
    assert await waiting == (3, Durability.COMMITTED)
    assert batches.ids == ["a0", "a1", "a2"]
    gate.clear()
    assert await kit.bus.publish_verified_durably([_envelope(9)], 0.05) == (
        1,
        Durability.PENDING,
    )


async def test_a_durable_publish_cancelled_while_it_waits_hands_what_the_stop_left_to_lost(
    make_bus: BusFactory,
) -> None:
    """A publisher cancelled while it waits for the durable subscriber (an ingest request ended
    by the bridge's stop, answered nothing) has the envelopes the subscription then stops
    without handling handed to ``lost`` (ingest forgets their ids), as one answered PENDING
    has; not before: they may yet be handled."""
    kit = await _started(make_bus)
    batches = Batches(asyncio.Event())  # never released: the outbox refusing them
    subscription = kit.bus.subscribe(
        "b", batches, instances=["ex_esdb_alerts"], batch=True, durable=True
    )
    batch = [_envelope(n) for n in range(2)]
    lost: list[Envelope] = []
    waiting = asyncio.create_task(kit.bus.publish_verified_durably(batch, 30.0, lost=lost.extend))
    await async_wait_until(lambda: batches.entered == 1, what="the batch held")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert lost == []
    await subscription.stop(0.0)
    assert lost == batch


async def test_durable_publish_does_not_wait_for_messages_no_durable_subscriber_takes(
    make_bus: BusFactory,
) -> None:
    """A batch the durable subscriber does not take is not held up by its backlog."""
    kit = await _started(make_bus)
    batches = Batches(asyncio.Event())  # never released
    kit.bus.subscribe("b", batches, instances=["ex_esdb_health"], batch=True, durable=True)
    assert await kit.bus.publish_verified_durably([_envelope(1)], 5.0) == (
        1,
        Durability.COMMITTED,
    )


async def test_a_batch_subscriber_composes_its_inbox_rather_than_extending_the_single_one(
    make_bus: BusFactory,
) -> None:
    """A batch subscription is no one-at-a-time subscription: each holds an inbox of its own,
    and the bus lists, drains and unsubscribes both alike."""
    kit = await _started(make_bus)
    batches = Batches(asyncio.Event())
    batch = kit.bus.subscribe("b", batches, instances=["ex_esdb_alerts"], batch=True)
    single = kit.bus.subscribe("s", lambda envelope: None, instances=["ex_esdb_alerts"])
    assert Subscription not in type(batch).__mro__
    assert BatchSubscription not in type(single).__mro__
    assert batch.inbox is not single.inbox
    assert kit.bus.subscriptions[-2:] == (batch, single)
    await kit.bus.unsubscribe(batch)
    assert kit.bus.subscriptions[-1:] == (single,)
    kit.bus.publish_verified([_envelope(1)])
    await async_wait_until(lambda: single.idle, what="the one-at-a-time subscriber idle")
    assert batches.entered == 0


async def test_congestion_names_a_subscriber_at_its_high_water_mark(make_bus: BusFactory) -> None:
    """From the high-water mark, or when a batch would overflow the queue, congestion says so."""
    kit = await _started(make_bus)
    gate = asyncio.Event()
    batches = Batches(gate)
    subscription = kit.bus.subscribe(
        "b",
        batches,
        instances=["ex_esdb_alerts"],
        queue_size=10,
        batch=True,
        high_water=0.5,
    )
    assert isinstance(subscription, BatchSubscription)
    assert kit.bus.congestion([_envelope(0)]) is None
    kit.bus.publish_verified([_envelope(1)])
    await async_wait_until(lambda: batches.entered == 1, what="the handler holding the first")
    kit.bus.publish_verified([_envelope(n) for n in range(2, 6)])
    assert kit.bus.congestion([_envelope(0)]) is None  # 4 of 10 waiting
    kit.bus.publish_verified([_envelope(6)])
    assert kit.bus.congestion([_envelope(0)]) is subscription  # 5 of 10: the mark
    assert kit.bus.congestion([]) is None
    gate.set()
    await async_wait_until(lambda: subscription.idle, what="the queue drained")
    assert kit.bus.congestion([_envelope(n) for n in range(11)]) is subscription  # overflow
    assert kit.bus.congestion([_envelope(n) for n in range(4)]) is None


async def test_queues_bounded_in_bytes_push_back_or_drop_and_count(make_bus: BusFactory) -> None:
    """By the bytes of what they hold (as ingest gives each envelope's), a batch subscriber
    that pushes back is congestion from its high-water mark, and a batch more than its whole
    bound never fits; a one-at-a-time subscriber drops and counts what would overflow it. A
    share of a batch is charged at least its own bytes, at most the whole batch's."""
    kit = make_bus(queue_bytes=10_000)
    await kit.bus.start()
    gate = asyncio.Event()
    batches = Batches(gate)
    pushing = kit.bus.subscribe(
        "b", batches, instances=["ex_esdb_alerts"], batch=True, high_water=0.5
    )
    held = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        await held.wait()

    single = kit.bus.subscribe("s", slow, instances=["ex_esdb_alerts"])
    kit.bus.publish_verified([_envelope(0)], [100])
    await async_wait_until(
        lambda: batches.entered == 1 and single.inbox.depth == 0,
        what="both handlers holding the first",
    )
    assert kit.bus.congestion([_envelope(1)], [4_000]) is None
    kit.bus.publish_verified([_envelope(1), _envelope(2)], [2_000, 2_000])
    assert (pushing.inbox.bytes, single.inbox.bytes) == (4_000, 4_000)
    assert kit.bus.congestion([_envelope(3)], [500]) is None  # 4 500 of 5 000: below the mark
    assert kit.bus.congestion([_envelope(3)], [7_000]) is pushing  # would overflow 10 000
    kit.bus.publish_verified([_envelope(3)], [1_000])
    assert kit.bus.congestion([_envelope(4)], [1]) is pushing  # 5 000 of 10 000: the mark
    whole = [_envelope(n) for n in range(5, 8)]
    assert kit.bus.never_fits(whole, [4_000] * 3, pushing) == (12_000, 10_000, "bytes")
    assert kit.bus.never_fits(whole, [3_000] * 3, pushing) is None
    kit.bus.publish_verified([_envelope(8)], [6_000])  # pushes no more, but would overflow "s"
    assert kit.sample("exesdb_bus_dropped_total", subscriber="s") == 1
    assert kit.sample("exesdb_bus_dropped_total", subscriber="b") == 1  # nobody asked first
    assert single.inbox.bytes <= 10_000
    gate.set()
    held.set()
    await async_wait_until(lambda: pushing.idle and single.idle, what="the queues drained")
    assert (pushing.inbox.bytes, single.inbox.bytes) == (0, 0)
    # A share of a batch: one alert of 300 bytes beside 9 health readings of 10 bytes.
    health = NodeHealth(status="healthy", node="n1")
    now = datetime.now(UTC)
    readings = [
        Envelope(new_message_id(), health.INSTANCE, "h", health.TAG, "app", now, health)
        for _ in range(9)
    ]
    gate.clear()
    kit.bus.publish_verified([_envelope(9)], [1])
    await async_wait_until(
        lambda: pushing.inbox.depth == 0 and not pushing.idle, what="the handler holding one more"
    )
    kit.bus.publish_verified([_envelope(10), *readings], [300] + [10] * 9)
    assert pushing.inbox.bytes == 300  # its share: one message, charged the largest
    gate.set()


async def test_a_subscriber_that_does_not_push_back_is_never_congestion(
    make_bus: BusFactory,
) -> None:
    """With pushes_back=False a full queue is not congestion: it drops, and counts, instead."""
    kit = await _started(make_bus)
    gate = asyncio.Event()
    batches = Batches(gate)
    subscription = kit.bus.subscribe(
        "quiet",
        batches,
        instances=["ex_esdb_alerts"],
        queue_size=2,
        batch=True,
        high_water=0.5,
        pushes_back=False,
    )
    kit.bus.publish_verified([_envelope(1)])
    await async_wait_until(lambda: batches.entered == 1, what="the handler holding the first")
    kit.bus.publish_verified([_envelope(n) for n in range(2, 7)])
    assert subscription.inbox.depth == 2
    assert kit.bus.congestion([_envelope(n) for n in range(10)]) is None
    assert kit.sample("exesdb_bus_dropped_total", subscriber="quiet") == 3
    gate.set()
    await async_wait_until(lambda: subscription.idle, what="the queue drained")


async def test_stop_drains_and_warns_once_about_what_is_left(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop that cannot drain warns once; stopping again (the bus does) says nothing more."""
    kit = await _started(make_bus)
    batches = Batches(asyncio.Event())  # never released
    subscription = kit.bus.subscribe("b", batches, instances=["ex_esdb_alerts"], batch=True)
    for number in range(5):
        kit.bus.publish("disk_full", _alert(number))
    await async_wait_until(lambda: batches.entered == 1, what="the batch of five held")
    with caplog.at_level(logging.WARNING, logger="bridge.bus.subscription"):
        await subscription.stop(0.05)
        await kit.bus.aclose(0.05)
    warnings = [r.getMessage() for r in caplog.records if "unhandled" in r.getMessage()]
    assert warnings == ["subscriber b stopped with 5 message(s) unhandled"]
    assert not subscription.offer(_envelope(9), Frame("ex_esdb_alerts", b"", None))


async def test_an_in_process_batch_larger_than_max_batch_arrives_in_order_in_parts(
    make_bus: BusFactory,
) -> None:
    """A published batch (queued as one run) is cut at max_batch: every message arrives once,
    in order, and the queue depth counts messages, not runs."""
    kit = await _started(make_bus)
    gate = asyncio.Event()
    batches = Batches(gate)
    subscription = kit.bus.subscribe(
        "b", batches, instances=["ex_esdb_alerts"], batch=True, max_batch=4
    )
    kit.bus.publish_verified([_envelope(0)])
    await async_wait_until(lambda: batches.entered == 1, what="the first batch held")
    kit.bus.publish_verified([_envelope(n) for n in range(1, 11)])
    assert subscription.depth == 10
    gate.set()
    await async_wait_until(lambda: len(batches.ids) == 11, what="eleven alerts handled")
    assert batches.ids == [f"a{n}" for n in range(11)]
    assert batches.sizes == [1, 4, 4, 2]
    assert subscription.depth == 0


async def test_each_batch_subscriber_gets_a_list_of_its_own(make_bus: BusFactory) -> None:
    """Subscribers taking the same in-process batch never share the list they are handed: one
    that empties its list takes nothing from another."""
    kit = await _started(make_bus)
    seen: list[int] = []

    def clear(envelopes: Sequence[Envelope]) -> None:
        assert isinstance(envelopes, list)
        envelopes.clear()

    kit.bus.subscribe("clears", clear, batch=True)
    kit.bus.subscribe("counts", lambda envelopes: seen.append(len(envelopes)), batch=True)
    kit.bus.publish_verified([_envelope(n) for n in range(5)])
    await async_wait_until(lambda: seen, what="the second subscriber's batch")
    assert seen == [5]


async def test_a_one_at_a_time_subscriber_stopped_mid_batch_leaves_the_rest_unhandled(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A per-message subscriber stopped while handling a published batch handles no more of it:
    the messages not yet begun stay queued until the stop lets them go."""
    kit = await _started(make_bus)
    handled: list[str] = []
    entered = asyncio.Event()

    async def stuck(envelope: Envelope) -> None:
        handled.append(envelope.payload.alert_id)  # type: ignore[attr-defined]
        entered.set()
        await asyncio.Event().wait()  # never returns

    subscription = kit.bus.subscribe("slow", stuck, instances=["ex_esdb_alerts"])
    kit.bus.publish_verified([_envelope(n) for n in range(5)])
    await asyncio.wait_for(entered.wait(), 5.0)
    assert subscription.depth == 0  # the run is taken whole; four of it not yet begun
    with caplog.at_level(logging.WARNING, logger="bridge.bus.subscription"):
        await subscription.stop(0.0)
    assert handled == ["a0"]
    assert "subscriber slow stopped with 4 message(s) unhandled" in caplog.text
    assert subscription.depth == 0


async def test_a_late_failure_callback_that_raises_does_not_stop_the_subscriber(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A when_failed callback raising is logged, and the batches after it are still handled."""
    kit = await _started(make_bus)
    gate = asyncio.Event()
    handled: list[str] = []

    async def handler(envelopes: Sequence[Envelope]) -> None:
        await gate.wait()
        ids = [e.payload.alert_id for e in envelopes]  # type: ignore[attr-defined]
        if ids == ["a0"]:
            raise RuntimeError("boom")
        handled.extend(ids)

    def callback() -> None:
        raise RuntimeError("the callback broke")

    subscription = kit.bus.subscribe(
        "b", handler, instances=["ex_esdb_alerts"], batch=True, durable=True
    )
    kit.bus.publish_verified([_envelope(0)])
    subscription.when_failed(0, subscription.mark, callback)
    with caplog.at_level(logging.ERROR, logger="bridge.bus.subscription"):
        gate.set()
        await async_wait_until(
            lambda: "late-failure callback" in caplog.text, what="the callback's error logged"
        )
    kit.bus.publish_verified([_envelope(1)])
    await async_wait_until(lambda: handled == ["a1"], what="the next batch handled")


async def test_a_stop_before_the_messages_went_through_calls_their_late_failure_callbacks(
    make_bus: BusFactory,
) -> None:
    """Messages still queued when the drain time runs out are dropped, and a publisher that
    stopped waiting for them is told (ingest then forgets their ids: a resend is taken)."""
    kit = await _started(make_bus)
    batches = Batches(asyncio.Event())  # never set: the handler holds its first batch
    subscription = kit.bus.subscribe(
        "b", batches, instances=["ex_esdb_alerts"], batch=True, durable=True
    )
    kit.bus.publish_verified([_envelope(0)])
    called: list[str] = []
    subscription.when_failed(0, subscription.mark, lambda: called.append("dropped"))
    await async_wait_until(lambda: batches.entered == 1, what="the batch held by the handler")
    await subscription.stop(0.1)
    assert called == ["dropped"]
    assert batches.ids == []


def faulting(
    faults: list[str], handled: list[str]
) -> Callable[[Sequence[Envelope]], Awaitable[None]]:
    """A batch handler failing each call with the next of ``faults`` (an OSError); "": the
    batch handled, its alert ids added to ``handled``."""

    async def handler(envelopes: Sequence[Envelope]) -> None:
        fault = faults.pop(0)
        if fault:
            raise OSError(fault)
        handled.extend(e.payload.alert_id for e in envelopes)  # type: ignore[attr-defined]

    return handler


async def lines_of_faults(
    make_bus: BusFactory,
    caplog: pytest.LogCaptureFixture,
    faults: list[str],
    then: Callable[[int], tuple[int, list[str]]],
) -> list[tuple[str, str, bool]]:
    """Batches of one sent in turn to a handler that fails each with its fault in ``faults``
    ("": handled), each waited for until ``then(number)`` holds (errors counted, ids handled);
    the subscription's log lines (level, text, with a traceback)."""
    kit = await _started(make_bus)
    handled: list[str] = []
    handler = faulting(faults, handled)
    kit.bus.subscribe("b", handler, instances=["ex_esdb_alerts"], batch=True)
    with caplog.at_level(logging.INFO, logger="bridge.bus.subscription"):
        for number in range(len(faults)):
            errors, done = then(number)

            def handled_so_far(errors: int = errors, done: list[str] = done) -> bool:
                return (
                    kit.sample("exesdb_sink_errors_total", subscriber="b") == errors
                    and handled == done
                )

            kit.bus.publish_verified([_envelope(number)])
            await async_wait_until(handled_so_far, what=f"batch {number} handled")
    return [
        (r.levelname, r.getMessage(), r.exc_info is not None)
        for r in caplog.records
        if r.name == "bridge.bus.subscription"
    ]


async def test_a_fault_that_repeats_at_every_batch_is_logged_once_then_its_end(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler failing every batch the same way (the outbox on a full disk) logs its traceback
    once, not once a batch, another fault again, and an INFO line counting the failed batches
    once one goes through; every failure is counted in exesdb_sink_errors_total."""
    faults = ["database or disk is full"] * 3 + ["disk I/O error", ""]
    lines = await lines_of_faults(
        make_bus,
        caplog,
        faults,
        lambda number: (min(number + 1, 4), ["a4"] if number == 4 else []),
    )
    assert lines == [
        ("ERROR", "subscriber b failed on a batch of 1", True),
        ("ERROR", "subscriber b failed on a batch of 1", True),
        ("INFO", "subscriber b works again after 4 failed batch(es)", False),
    ]
    assert [str(r.exc_info[1]) for r in caplog.records if r.exc_info] == [
        "database or disk is full",
        "disk I/O error",
    ]


async def test_a_fault_that_comes_back_between_batches_that_go_through_is_logged_once(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault that fails a batch, then another after batches that went through (a work
    queue's claim handing back, every lease, the frames a full disk refuses, while the rest
    go through) logs its traceback once and its end once, not once each time it comes back;
    every failure is counted all the same."""
    lines = await lines_of_faults(
        make_bus,
        caplog,
        ["database or disk is full", ""] * 3,
        lambda number: ((number + 2) // 2, [f"a{n}" for n in range(1, number + 1, 2)]),
    )
    assert lines == [
        ("ERROR", "subscriber b failed on a batch of 1", True),
        ("INFO", "subscriber b works again after 1 failed batch(es)", False),
    ]


async def test_a_batch_failed_for_good_is_logged_though_its_fault_was_warned_of_as_retried(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault warned of only as tried again (its batch went through on the retry) that then
    fails a work-queue batch for good, its frames left unacknowledged, is logged as that
    failure, and its end after it: not passed over as a fault told already."""
    kit = await _started(make_bus)
    full = "database or disk is full"
    faults = [full, "", full, full, ""]  # each attempt's, in turn
    handled: list[str] = []
    handler = faulting(faults, handled)
    kit.bus.subscribe("b", handler, instances=["ex_esdb_alerts"], batch=True, group=True, retries=1)

    def frame(number: int) -> Frame:
        envelope = _envelope(number)
        body = envelope.to_bytes()
        return Frame(
            envelope.instance, body, kit.keyring.sign(body), envelope, group=True, ack=lambda: None
        )

    with caplog.at_level(logging.INFO, logger="bridge.bus.subscription"):
        kit.transport.send(frame(1))  # fails, then goes through on the retry
        await async_wait_until(lambda: handled == ["a1"], what="the first batch handled")
        kit.transport.send(frame(2))  # fails at both attempts: left unacknowledged
        await async_wait_until(
            lambda: kit.sample("exesdb_sink_errors_total", subscriber="b") == 3,
            what="the second batch failed for good",
        )
        kit.transport.send(frame(3))
        await async_wait_until(lambda: handled == ["a1", "a3"], what="the third batch handled")
    lines = [
        (r.levelname, r.getMessage(), r.exc_info is not None)
        for r in caplog.records
        if r.name == "bridge.bus.subscription"
    ]
    assert lines == [
        ("WARNING", "subscriber b failed on a batch of 1; trying again in 0.10s", True),
        ("ERROR", "subscriber b failed on a batch of 1", True),
        ("INFO", "subscriber b works again after 1 failed batch(es)", False),
    ]


async def test_a_failed_batch_counts_each_of_its_messages(make_bus: BusFactory) -> None:
    """A batch of three the handler fails on counts three in exesdb_sink_errors_total, the
    messages it failed to handle, not one."""
    kit = await _started(make_bus)

    async def handler(envelopes: Sequence[Envelope]) -> None:
        raise OSError("database or disk is full")

    kit.bus.subscribe("b", handler, instances=["ex_esdb_alerts"], batch=True)
    kit.bus.publish_verified([_envelope(number) for number in range(3)])
    await async_wait_until(
        lambda: kit.sample("exesdb_sink_errors_total", subscriber="b") == 3, what="three counted"
    )
