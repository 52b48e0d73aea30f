"""How the bus treats work-queue frames (``Frame(group=True, ack=...)``) from a shared transport."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge.bus import (
    Bus,
    BusMetrics,
    Envelope,
    Frame,
    FrameReceiver,
    Keyring,
    LocalCoordinator,
    MemoryTransport,
    Rejection,
    RejectReason,
    ReplayGuard,
    TransportCapabilities,
    Verifier,
    new_message_id,
)
from bridge.bus.work_queue import RecentlyVerified, WorkQueueReceiver
from bridge.errors import TransportError
from bridge.messages import SystemAlert
from tests.bus.helpers import build_bus
from tests.support import TEST_SECRET, async_wait_until

KEYRING = Keyring.from_secrets(TEST_SECRET)
OTHER_KEYRING = Keyring.from_secrets("another-secret-of-at-least-32-chars!!")


class CapturingTransport(MemoryTransport):
    """Tells the test which instances the bus asked work-queue frames for."""

    def __init__(self) -> None:
        super().__init__()
        self.group_instances: frozenset[str] = frozenset()
        self.receive: FrameReceiver | None = None  # the bus's: one read of several entries

    async def start(
        self, receive: FrameReceiver, group_instances: frozenset[str] = frozenset()
    ) -> None:
        self.group_instances = group_instances
        self.receive = receive
        await super().start(receive, group_instances)


def make_bus(
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[Bus, CapturingTransport, CollectorRegistry]:
    """A bus whose transport the test sends frames through as a shared transport would."""
    transport = CapturingTransport()
    kit = build_bus(KEYRING, transport, sleep=sleep)
    return kit.bus, transport, kit.registry


def signed(message_id: str | None = None, secret: Keyring = KEYRING) -> tuple[bytes, str]:
    now = datetime.now(UTC)
    alert = SystemAlert(
        severity="critical", category="system", title="t", description="d", source="s", node="n"
    )
    envelope = Envelope(
        message_id or new_message_id(),
        alert.INSTANCE,
        "t",
        alert.TAG,
        "app",
        now,
        alert,
        now.timestamp(),
    )
    body = envelope.to_bytes()
    return body, secret.sign(body)


class Acks:
    """Counts calls of a frame's ack."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_the_bus_tells_the_transport_which_instances_have_group_subscribers() -> None:
    """start() passes the instances of group subscriptions, and only those."""
    bus, transport, _ = make_bus()
    bus.subscribe("alerts", lambda e: None, instances=["ex_esdb_alerts"], group=True)
    bus.subscribe("all", lambda e: None)
    await bus.start()
    assert transport.group_instances == frozenset({"ex_esdb_alerts"})
    await bus.aclose()


async def test_a_work_queue_frame_is_acknowledged_once_after_every_taker_returned() -> None:
    """Two group subscribers take the frame; the ack comes once, after both handled it, and
    fan-out subscribers do not get it."""
    bus, transport, _ = make_bus()
    release = asyncio.Event()
    handled: list[str] = []

    async def slow(envelope: Envelope) -> None:
        await release.wait()
        handled.append("slow")

    bus.subscribe(
        "fast", lambda e: handled.append("fast"), instances=["ex_esdb_alerts"], group=True
    )
    bus.subscribe("slow", slow, instances=["ex_esdb_alerts"], group=True)
    bus.subscribe("fanout", lambda e: handled.append("fanout"))
    await bus.start()
    ack = Acks()
    transport.send(Frame("ex_esdb_alerts", *signed(), group=True, ack=ack))
    await async_wait_until(lambda: handled == ["fast"], 5)
    assert ack.count == 0
    release.set()
    await async_wait_until(lambda: ack.count == 1, 5)
    assert sorted(handled) == ["fast", "slow"]
    await bus.aclose()


async def test_a_work_queue_frame_nobody_here_takes_is_acknowledged() -> None:
    """With no matching group subscriber the frame is settled at once (it is nobody's work)."""
    bus, transport, _ = make_bus()
    bus.subscribe("security", lambda e: None, instances=["ex_esdb_security"], group=True)
    await bus.start()
    ack = Acks()
    transport.send(Frame("ex_esdb_alerts", *signed(), group=True, ack=ack))
    await async_wait_until(lambda: ack.count == 1, 5)
    await bus.aclose()


class SharedTransport(CapturingTransport):
    """As a shared transport: frames come as the fan-out and the work-queue copy of each."""

    @property
    def capabilities(self) -> TransportCapabilities:
        return TransportCapabilities(shared=True, coordinator=LocalCoordinator())


async def test_group_subscribers_added_or_removed_while_running_take_the_next_frames() -> None:
    """A group subscriber subscribed while work-queue frames flow takes the next one (acknowledged
    once both took it), and one unsubscribed takes nothing more; a frame of the same kind
    nobody takes any longer is acknowledged at once."""
    transport = SharedTransport()
    bus = build_bus(KEYRING, transport).bus
    first: list[Envelope] = []
    second: list[Envelope] = []
    subscription = bus.subscribe("first", first.append, instances=["ex_esdb_alerts"], group=True)
    await bus.start()

    async def send() -> Acks:
        ack = Acks()
        transport.send(Frame("ex_esdb_alerts", *signed(), group=True, ack=ack))
        await async_wait_until(lambda: ack.count == 1, 5)
        return ack

    await send()
    added = bus.subscribe("second", second.append, instances=["ex_esdb_alerts"], group=True)
    await send()
    assert (len(first), len(second)) == (2, 1)
    await bus.unsubscribe(subscription)
    await send()
    assert (len(first), len(second)) == (2, 2)
    await bus.unsubscribe(added)
    await send()
    await bus.aclose()
    assert (len(first), len(second)) == (2, 2)


async def test_the_work_queue_copy_of_a_message_verified_on_the_fanout_is_handled_once() -> None:
    """The work-queue copy of a message the fan-out copy brought a moment ago: taken by the
    group subscriber when it takes that type, acknowledged at once when none does."""
    transport = SharedTransport()
    bus = build_bus(KEYRING, transport).bus
    work: list[Envelope] = []
    bus.subscribe(
        "work", work.append, instances=["ex_esdb_alerts"], group=True, tags=["alert_acknowledged"]
    )
    bus.subscribe("alerts", work.append, instances=["ex_esdb_alerts"], tags=["system_alert"])
    await bus.start()
    body, signature = signed()
    ack = Acks()
    transport.send(Frame("ex_esdb_alerts", body, signature, group=False))
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=ack))
    await async_wait_until(lambda: ack.count == 1 and work, 5)
    await bus.aclose()
    assert [e.tag for e in work] == ["system_alert"]  # the fan-out copy only
    assert ack.count == 1


async def test_work_queue_copies_known_from_the_fanout_are_taken_once_each() -> None:
    """Work-queue copies byte for byte the same as fan-out copies verified before: each message
    is taken once (their replay checks made together); a second copy read while the first is
    being handled is left unacknowledged (the first may yet fail), and refused as a replay and
    settled once the first was handled; a copy whose bytes differ is verified on its own (and
    refused)."""
    transport = SharedTransport()
    bus = build_bus(KEYRING, transport).bus
    work: list[Envelope] = []
    bus.subscribe("work", work.append, instances=["ex_esdb_alerts"], group=True)
    await bus.start()
    first, second = signed(), signed()
    forged = (first[0].replace(b'"critical"', b'"warning"'), first[1])
    for body, signature in (first, second):
        transport.send(Frame("ex_esdb_alerts", body, signature, group=False))
    acks = [Acks() for _ in range(5)]
    nacks = [Acks() for _ in range(5)]
    frames = [
        Frame("ex_esdb_alerts", *copy, group=True, ack=ack, nack=nack)
        for copy, ack, nack in zip((first, second, first, forged), acks, nacks, strict=False)
    ]
    assert transport.receive is not None
    transport.receive(frames)  # one read of four entries
    await async_wait_until(lambda: len(work) == 2 and acks[0].count == acks[1].count == 1, 5)
    assert [a.count for a in acks[:4]] == [1, 1, 0, 1]
    assert [n.count for n in nacks[:4]] == [0, 0, 1, 0]
    # The copy left pending comes back (a claim) after the first was handled: a replay.
    transport.receive([Frame("ex_esdb_alerts", *first, group=True, ack=acks[4], nack=nacks[4])])
    await async_wait_until(lambda: acks[4].count == 1, 5)
    assert nacks[4].count == 0
    await bus.aclose()
    assert [getattr(e.payload, "severity", None) for e in work] == ["critical", "critical"]
    assert len({e.id for e in work}) == 2


async def test_a_fanout_copy_after_its_work_queue_copy_is_delivered_once() -> None:
    """When the work-queue copy came first, the fan-out copy of the same bytes is delivered
    (only its replay check left); a second fan-out copy is refused as a replay and other bytes
    under the same signature as a bad signature, both counted."""
    transport = SharedTransport()
    kit = build_bus(KEYRING, transport)
    fanout: list[Envelope] = []
    work: list[Envelope] = []
    kit.bus.subscribe("fanout", fanout.append, instances=["ex_esdb_alerts"])
    kit.bus.subscribe("work", work.append, instances=["ex_esdb_alerts"], group=True)
    await kit.bus.start()
    body, signature = signed()
    ack = Acks()
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=ack))
    tampered = body.replace(b'"critical"', b'"warning"')
    for copy in (body, body, tampered):
        transport.send(Frame("ex_esdb_alerts", copy, signature, group=False))
    await async_wait_until(lambda: ack.count == 1 and fanout, 5)
    await kit.bus.aclose()
    assert [e.id for e in fanout] == [e.id for e in work]
    assert len(fanout) == 1

    def rejected(reason: str) -> float | None:
        return kit.registry.get_sample_value("exesdb_bus_rejected_total", {"reason": reason})

    assert (rejected("replayed"), rejected("invalid_signature")) == (1, 1)


async def test_a_refused_work_queue_frame_is_acknowledged_and_counted_by_the_fanout_path() -> None:
    """A wrongly signed work-queue frame reaches no subscriber and is settled; its rejection is
    counted when the fan-out copy of the same entry is refused, not twice."""
    bus, transport, registry = make_bus()
    taken: list[Envelope] = []
    bus.subscribe("alerts", taken.append, instances=["ex_esdb_alerts"], group=True)
    await bus.start()
    body, signature = signed(secret=OTHER_KEYRING)
    ack = Acks()
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=ack))
    transport.send(Frame("ex_esdb_alerts", body, signature, group=False))
    await async_wait_until(lambda: ack.count == 1, 5)
    assert taken == []
    assert (
        registry.get_sample_value("exesdb_bus_rejected_total", {"reason": "invalid_signature"}) == 1
    )
    await bus.aclose()


async def test_the_fanout_and_work_queue_copies_of_one_message_are_both_delivered() -> None:
    """The same entry read by XREAD and XREADGROUP is not refused as a replay: each path has
    its own replay memory; a second work-queue copy arriving while the first is in hand is left
    unacknowledged (should the first fail, it may be all that is left), one arriving after the
    first was handled is refused as a replay and settled."""
    bus, transport, _ = make_bus()
    fanout: list[Envelope] = []
    work: list[Envelope] = []
    bus.subscribe("fanout", fanout.append)
    bus.subscribe("work", work.append, instances=["ex_esdb_alerts"], group=True)
    await bus.start()
    body, signature = signed()
    first, second, third, left = Acks(), Acks(), Acks(), Acks()
    transport.send(Frame("ex_esdb_alerts", body, signature, group=False))
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=first))
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=second, nack=left))
    await async_wait_until(lambda: first.count == 1, 5)
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=third))
    await async_wait_until(lambda: third.count == 1, 5)
    assert (second.count, left.count) == (0, 1)
    assert len(fanout) == 1
    assert len(work) == 1
    await bus.aclose()


async def test_a_stopped_group_subscriber_leaves_work_queue_frames_unacknowledged() -> None:
    """After its subscriber stopped (its sink is closing), a work-queue frame is neither taken
    nor acknowledged, so that a live replica claims it."""
    bus, transport, registry = make_bus()
    subscription = bus.subscribe("alerts", lambda e: None, instances=["ex_esdb_alerts"], group=True)
    await bus.start()
    await subscription.stop(0)
    ack, nack, later = Acks(), Nacks(), Acks()
    transport.send(Frame("ex_esdb_alerts", *signed(), group=True, ack=ack, nack=nack))
    # A refused frame is acknowledged on the loop: once its ack ran, one scheduled for the first
    # frame would have run too.
    transport.send(Frame("ex_esdb_alerts", *signed(secret=OTHER_KEYRING), group=True, ack=later))
    await async_wait_until(lambda: later.count == 1, 5)
    assert (ack.count, nack.count) == (0, 1)
    assert subscription.depth == 0
    assert registry.get_sample_value("exesdb_bus_dropped_total", {"subscriber": "alerts"}) == 0
    await bus.aclose()


class Nacks:
    """Counts calls of a frame's nack."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1

    def called_once(self) -> bool:
        """Whether the frame was left unacknowledged once."""
        return self.count == 1


async def test_a_frame_whose_batch_failed_is_handled_when_redelivered() -> None:
    """A work-queue frame whose batch handler raised is neither acknowledged nor remembered:
    when the entry comes back (a claim), it is handled and then acknowledged."""
    bus, transport, _ = make_bus()
    calls: list[int] = []

    def handler(envelopes: Sequence[Envelope]) -> None:
        calls.append(len(envelopes))
        if len(calls) == 1:
            raise RuntimeError("database is locked")

    bus.subscribe(
        "alerts", handler, instances=["ex_esdb_alerts"], group=True, batch=True, retries=0
    )
    await bus.start()
    body, signature = signed()
    ack1, nack1, ack2 = Acks(), Nacks(), Acks()
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=ack1, nack=nack1))
    await async_wait_until(lambda: nack1.count == 1, 5)
    assert ack1.count == 0
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=ack2))
    await async_wait_until(lambda: ack2.count == 1, 5)
    assert calls == [1, 1]
    # Handled now: a further copy is a replay, settled.
    ack3 = Acks()
    transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=ack3))
    await async_wait_until(lambda: ack3.count == 1, 5)
    assert calls == [1, 1]
    await bus.aclose()


async def test_a_failed_batch_of_work_queue_frames_is_tried_again_in_process() -> None:
    """The batch handler fails twice, then succeeds: the frame is acknowledged, without
    waiting for a claim, and each failure is counted."""
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    bus, transport, registry = make_bus(sleep)
    calls: list[int] = []

    def handler(envelopes: Sequence[Envelope]) -> None:
        calls.append(len(envelopes))
        if len(calls) <= 2:
            raise RuntimeError("disk I/O error")

    bus.subscribe("alerts", handler, instances=["ex_esdb_alerts"], group=True, batch=True)
    await bus.start()
    ack, nack = Acks(), Nacks()
    transport.send(Frame("ex_esdb_alerts", *signed(), group=True, ack=ack, nack=nack))
    await async_wait_until(lambda: ack.count == 1, 5)
    assert calls == [1, 1, 1]
    assert delays == [0.1, 0.2]
    assert nack.count == 0
    assert registry.get_sample_value("exesdb_sink_errors_total", {"subscriber": "alerts"}) == 2
    await bus.aclose()


async def test_a_fault_repeating_at_every_retry_of_work_queue_batches_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Work-queue batches, tried again on failure, that fail alike at every attempt (the outbox
    on a full disk while the queue hands frames back) log the first attempt's warning and the
    first batch's error, each with its traceback, and nothing more however many follow; every
    attempt is counted."""

    async def sleep(seconds: float) -> None:
        """No wait: the test counts lines, not delays."""

    bus, transport, registry = make_bus(sleep)

    def handler(envelopes: Sequence[Envelope]) -> None:
        raise OSError("database or disk is full")

    bus.subscribe("alerts", handler, instances=["ex_esdb_alerts"], group=True, batch=True)
    await bus.start()
    with caplog.at_level(logging.INFO, logger="bridge.bus.subscription"):
        for _ in range(3):
            nack = Nacks()
            transport.send(Frame("ex_esdb_alerts", *signed(), group=True, ack=Acks(), nack=nack))
            await async_wait_until(nack.called_once, 5)
    await bus.aclose()
    assert [
        (r.levelname, r.getMessage().partition(";")[0], r.exc_info is not None)
        for r in caplog.records
        if r.name == "bridge.bus.subscription"
    ] == [
        ("WARNING", "subscriber alerts failed on a batch of 1", True),
        ("ERROR", "subscriber alerts failed on a batch of 1", True),
    ]
    errors = registry.get_sample_value("exesdb_sink_errors_total", {"subscriber": "alerts"})
    assert errors == 12  # three batches, four attempts each


async def test_a_batch_failed_for_the_transport_is_told_in_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A work-queue batch whose handler fails as the bus transport does (``TransportError``:
    Redis unreachable as the alert stage stores a change) is told in one line each, the
    warning and the error, naming what failed, without a traceback: the fault is the
    transport's, which says why in its own lines."""

    async def sleep(seconds: float) -> None:
        """No wait: the test counts lines, not delays."""

    bus, transport, _ = make_bus(sleep)
    said = "Redis at redis://redis:6379/… could not change the alerts records: Connection closed"

    def handler(envelopes: Sequence[Envelope]) -> None:
        raise TransportError(said)

    bus.subscribe("alerts", handler, instances=["ex_esdb_alerts"], group=True, batch=True)
    await bus.start()
    with caplog.at_level(logging.INFO, logger="bridge.bus.subscription"):
        nack = Nacks()
        transport.send(Frame("ex_esdb_alerts", *signed(), group=True, ack=Acks(), nack=nack))
        await async_wait_until(nack.called_once, 5)
    await bus.aclose()
    assert [
        (r.levelname, r.getMessage(), bool(r.exc_info))
        for r in caplog.records
        if r.name == "bridge.bus.subscription"
    ] == [
        (
            "WARNING",
            f"subscriber alerts failed on a batch of 1: {said}; trying again in 0.10s",
            False,
        ),
        ("ERROR", f"subscriber alerts failed on a batch of 1: {said}", False),
    ]


class Held:
    """A group handler holding each envelope until released: the ids it got, and took."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered: list[str] = []
        self.taken: list[str] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.entered.append(envelope.id)
        await self.release.wait()
        self.taken.append(envelope.id)


async def test_a_frame_a_full_queue_dropped_is_handled_when_redelivered() -> None:
    """A work-queue frame dropped by a full queue is left pending (nack), not remembered: its
    redelivery is handled."""
    bus, transport, _ = make_bus()
    handler = Held()
    release, entered, taken = handler.release, handler.entered, handler.taken
    bus.subscribe("alerts", handler, instances=["ex_esdb_alerts"], group=True, queue_size=1)
    await bus.start()
    frames = [signed() for _ in range(3)]
    acks = [Acks() for _ in frames]
    nacks = [Nacks() for _ in frames]
    for (body, signature), ack, nack in zip(frames, acks, nacks, strict=True):
        transport.send(Frame("ex_esdb_alerts", body, signature, group=True, ack=ack, nack=nack))
        if not entered:
            await async_wait_until(lambda: entered, 5, "the first one in the handler")
    # One being handled, one queued, the third dropped.
    assert [nack.count for nack in nacks] == [0, 0, 1]
    release.set()
    await async_wait_until(lambda: acks[0].count == acks[1].count == 1, 5)
    again = Acks()
    transport.send(Frame("ex_esdb_alerts", *frames[2], group=True, ack=again))
    await async_wait_until(lambda: again.count == 1, 5)
    assert len(taken) == 3
    await bus.aclose()


async def test_an_expired_work_queue_frame_is_settled_and_counted() -> None:
    """A work-queue frame claimed after the replay window is refused as expired, settled, and
    counted in exesdb_bus_rejected_total (the fan-out path never saw it expire)."""
    bus, transport, registry = make_bus()
    taken: list[Envelope] = []
    bus.subscribe("alerts", taken.append, instances=["ex_esdb_alerts"], group=True)
    await bus.start()
    old = datetime.now(UTC) - timedelta(seconds=600)
    alert = SystemAlert(
        severity="critical", category="system", title="t", description="d", source="s", node="n"
    )
    envelope = Envelope(
        new_message_id(), alert.INSTANCE, "t", alert.TAG, "app", old, alert, old.timestamp()
    )
    body = envelope.to_bytes()
    ack = Acks()
    transport.send(Frame("ex_esdb_alerts", body, KEYRING.sign(body), group=True, ack=ack))
    await async_wait_until(lambda: ack.count == 1, 5)
    assert taken == []
    assert registry.get_sample_value("exesdb_bus_rejected_total", {"reason": "expired"}) == 1
    await bus.aclose()


async def test_expired_work_queue_frames_are_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Work-queue frames refused as expired by the hundred (signed by a replica whose clock is
    off by more than the replay window) are warned of once, each counted, not a line each."""
    bus, transport, registry = make_bus()
    bus.subscribe("alerts", lambda envelope: None, instances=["ex_esdb_alerts"], group=True)
    await bus.start()
    old = datetime.now(UTC) - timedelta(seconds=600)
    alert = SystemAlert(
        severity="critical", category="system", title="t", description="d", source="s", node="n"
    )
    ack = Acks()
    with caplog.at_level(logging.INFO, "bridge.bus"):
        for _ in range(100):
            envelope = Envelope(
                new_message_id(), alert.INSTANCE, "t", alert.TAG, "app", old, alert, old.timestamp()
            )
            body = envelope.to_bytes()
            transport.send(Frame("ex_esdb_alerts", body, KEYRING.sign(body), group=True, ack=ack))
        await async_wait_until(lambda: ack.count == 100, 5)
    assert registry.get_sample_value("exesdb_bus_rejected_total", {"reason": "expired"}) == 100
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    await bus.aclose()


async def test_a_transport_that_buffers_gets_a_resigner_that_keeps_the_id() -> None:
    """A transport with ``attach`` gets a re-signer: fresh ts, same id, a valid signature."""
    attached: dict[str, Any] = {}

    class Buffering(CapturingTransport):
        def attach(self, **hooks: Any) -> None:
            attached.update(hooks)

    registry = CollectorRegistry()
    metrics = BusMetrics(registry)
    verifier = Verifier(KEYRING, ReplayGuard(300), window_seconds=300, max_bytes=1 << 20)
    Bus(node="n1", keyring=KEYRING, verifier=verifier, metrics=metrics, transport=Buffering())
    old = datetime.now(UTC) - timedelta(seconds=200)
    alert = SystemAlert(
        severity="critical", category="system", title="t", description="d", source="s", node="n"
    )
    envelope = Envelope(
        "old-message-1", alert.INSTANCE, "t", alert.TAG, "app", old, alert, old.timestamp()
    )
    frame = attached["resign"](envelope)
    assert frame.decoded.id == "old-message-1"
    assert frame.decoded.unix_ts > old.timestamp() + 150
    assert KEYRING.verify(frame.body, frame.signature)
    attached["dropped"](3)
    assert registry.get_sample_value("exesdb_bus_dropped_total", {"subscriber": "transport"}) == 3


def recently_verified_pair() -> tuple[RecentlyVerified, Frame, Envelope]:
    """A memory for the alerts instance, and a fan-out frame with the envelope it verified to."""
    body, signature = signed()
    verifier = Verifier(KEYRING, ReplayGuard(300), window_seconds=300, max_bytes=1 << 20)
    fanout = Frame("ex_esdb_alerts", body, signature, group=False)
    [envelope] = verifier.verify_read([fanout])
    assert isinstance(envelope, Envelope)
    return RecentlyVerified(frozenset({"ex_esdb_alerts"}), size=4), fanout, envelope


def test_the_other_copy_takes_a_recently_verified_envelope_once() -> None:
    """The work-queue copy of a message takes the envelope its fan-out copy verified to, and
    nothing is kept after it: a third copy (a claimed one) is verified anew."""
    recent, fanout, envelope = recently_verified_pair()
    recent.put(fanout, envelope)
    copy = Frame(fanout.instance, fanout.body, fanout.signature, group=True)
    assert recent.take(copy) is envelope
    assert recent.take(copy) is None


def test_other_bytes_under_a_kept_signature_do_not_take_its_envelope() -> None:
    """Bytes other than the verified ones under the same signature find nothing, and the
    envelope stays for its own copy."""
    recent, fanout, envelope = recently_verified_pair()
    recent.put(fanout, envelope)
    forged = Frame(fanout.instance, fanout.body + b" ", fanout.signature, group=True)
    assert recent.take(forged) is None
    assert recent.take(Frame(fanout.instance, fanout.body, fanout.signature, group=True)) is (
        envelope
    )


def test_recently_verified_envelopes_are_bounded_oldest_first() -> None:
    """Past its size the memory forgets the oldest envelope not taken yet."""
    recent, _, _ = recently_verified_pair()
    pairs = [recently_verified_pair()[1:] for _ in range(5)]
    for frame, envelope in pairs:
        recent.take(Frame(frame.instance, b"{}", "00", group=True))  # work-queue frames come
        recent.put(frame, envelope)
    assert [recent.take(frame) is envelope for frame, envelope in pairs] == [
        False,
        True,
        True,
        True,
        True,
    ]


def test_recently_verified_is_idle_while_no_work_queue_frame_comes() -> None:
    """A replica reading no work-queue frame (not the lease holder) keeps nothing past the
    memory's size of fan-out frames, and says it is idle (the bus then looks nothing up);
    the next work-queue frame ends that, and envelopes are kept again."""
    recent, _, _ = recently_verified_pair()
    pairs = [recently_verified_pair()[1:] for _ in range(5)]
    idle = [recent.idle]
    for frame, envelope in pairs:
        recent.put(frame, envelope)
    idle.append(recent.idle)
    assert [recent.take(frame) for frame, _ in pairs] == [None] * 5
    frame, envelope = pairs[0]
    recent.take(Frame(frame.instance, b"{}", "00", group=True))  # a work-queue frame comes
    idle.append(recent.idle)
    assert idle == [False, True, False]
    recent.put(frame, envelope)
    assert recent.take(Frame(frame.instance, frame.body, frame.signature, group=True)) is envelope


async def test_frames_of_one_read_are_judged_each_as_alone_though_decoded_together() -> None:
    """A read of several entries is decoded in one go, yet each frame is judged as if it came
    alone: a wrong signature, an invalid payload, a frame with no signature and a replay among
    valid ones are refused each for its own reason, and every valid one is delivered in order."""
    bus, transport, registry = make_bus()
    taken: list[Envelope] = []
    bus.subscribe("all", taken.append, instances=["ex_esdb_alerts"])
    await bus.start()
    first, second, third = signed("read-0001"), signed("read-0002"), signed("read-0003")
    forged = signed("read-forged", secret=OTHER_KEYRING)
    invalid = (
        first[0]
        .replace(b'"severity":"critical"', b'"severity":"dire"')
        .replace(b"read-0001", b"read-0bad")
    )
    assert invalid != first[0]
    bodies = [first, forged, (invalid, KEYRING.sign(invalid)), second, (third[0], None), first]
    assert transport.receive is not None
    transport.receive(
        [Frame("ex_esdb_alerts", body, signature, group=False) for body, signature in bodies]
    )
    await async_wait_until(lambda: len(taken) == 2, 5)
    assert [envelope.id for envelope in taken] == ["read-0001", "read-0002"]
    rejected = {
        reason: registry.get_sample_value("exesdb_bus_rejected_total", {"reason": reason})
        for reason in ("invalid_signature", "invalid_payload", "unsigned", "replayed")
    }
    assert rejected == dict.fromkeys(rejected, 1.0)
    await bus.aclose()


def late_frame(message_id: str, ago: float, **handlers: Any) -> Frame:
    """A work-queue frame of a SystemAlert dated ``ago`` seconds back, taken by the store then
    (it waited there for a replica)."""
    at = datetime.now(UTC) - timedelta(seconds=ago)
    alert = SystemAlert(
        severity="critical", category="system", title="t", description="d", source="s", node="n"
    )
    body = Envelope(
        message_id, alert.INSTANCE, "t", alert.TAG, "app", at, alert, at.timestamp()
    ).to_bytes()
    return Frame(
        "ex_esdb_alerts", body, KEYRING.sign(body), group=True, written=at.timestamp(), **handlers
    )


async def test_a_message_taken_past_the_replay_window_is_not_taken_again_signed_anew() -> None:
    """A message taken past the replay window (it waited in the store) and a copy of it signed
    anew (same id, fresh ts: a publisher's retry that waited half the window) are taken once;
    the copy is acknowledged and counted as replayed."""
    bus, transport, registry = make_bus()
    taken: list[Envelope] = []
    bus.subscribe("alerts", taken.append, instances=["ex_esdb_alerts"], group=True)
    await bus.start()
    message_id = new_message_id()
    first, again = Acks(), Acks()
    transport.send(late_frame(message_id, 600, ack=first))
    await async_wait_until(lambda: first.count == 1, 5)
    transport.send(late_frame(message_id, 0, ack=again))
    await async_wait_until(lambda: again.count == 1, 5)
    assert len(taken) == 1
    assert registry.get_sample_value("exesdb_bus_rejected_total", {"reason": "replayed"}) == 1
    await bus.aclose()


async def test_a_message_taken_past_the_replay_window_and_dropped_is_taken_when_redelivered() -> (
    None
):
    """A message taken past the replay window that a full queue dropped (left unacknowledged)
    is taken when the store delivers it again: its id is not kept as taken."""
    bus, transport, _ = make_bus()
    handler = Held()
    release, entered, taken = handler.release, handler.entered, handler.taken
    bus.subscribe("alerts", handler, instances=["ex_esdb_alerts"], group=True, queue_size=1)
    await bus.start()
    ids = [new_message_id() for _ in range(3)]
    nacks = [Nacks() for _ in ids]
    for message_id, nack in zip(ids, nacks, strict=True):
        transport.send(late_frame(message_id, 600, ack=Acks(), nack=nack))
        if not entered:
            await async_wait_until(lambda: entered, 5, "the first one in the handler")
    # One being handled, one queued, the third dropped.
    assert [nack.count for nack in nacks] == [0, 0, 1]
    release.set()
    await async_wait_until(lambda: len(taken) == 2, 5, "two taken")
    again = Acks()
    transport.send(late_frame(ids[2], 600, ack=again))
    await async_wait_until(lambda: again.count == 1, 5)
    assert taken == ids
    await bus.aclose()


async def test_a_copy_left_pending_beside_its_first_is_not_taken_when_claimed_past_the_window() -> (
    None
):
    """A second entry of a message, come while its first is handled, is left pending; claimed
    again once the replay window has passed (the first handled meanwhile), it is acknowledged
    as a replay, not taken."""
    now = [time.time()]
    transport = CapturingTransport()
    bus = build_bus(KEYRING, transport, clock=lambda: now[0]).bus
    release = asyncio.Event()
    taken: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        await release.wait()
        taken.append(envelope)

    bus.subscribe("alerts", handler, instances=["ex_esdb_alerts"], group=True)
    await bus.start()
    message_id = new_message_id()
    first, second, claimed = Acks(), Nacks(), Acks()
    transport.send(late_frame(message_id, 0, ack=first))
    transport.send(late_frame(message_id, 0, ack=Acks(), nack=second))
    await async_wait_until(lambda: second.count == 1, 5, "the second left pending")
    release.set()
    await async_wait_until(lambda: first.count == 1, 5, "the first handled")
    now[0] += 600  # the second entry idle long enough to be claimed, past the window
    transport.send(late_frame(message_id, 0, ack=claimed))
    await async_wait_until(lambda: claimed.count == 1, 5)
    assert len(taken) == 1
    await bus.aclose()


class Taker:
    """A group subscriber's inbox that keeps each (envelope, frame) it takes, unhandled."""

    def __init__(self) -> None:
        self.taken: list[tuple[Envelope, Frame]] = []

    def offer_each(self, envelopes: Sequence[Envelope], frames: Sequence[Frame]) -> list[int]:
        self.taken += zip(envelopes, frames, strict=True)
        return []


def test_an_id_taken_late_again_is_forgotten_after_older_ones_when_the_memory_is_full() -> None:
    """The ids kept as taken past the replay window are forgotten oldest first when full, an id
    kept again (a copy left pending beside its first, still handled) counting from then: a
    later copy of that message is refused as a replay, not taken a second time."""
    registry = CollectorRegistry()
    metrics = BusMetrics(registry)
    verifier = Verifier(
        KEYRING, ReplayGuard(300.0, 10_000), window_seconds=300.0, max_bytes=1_048_576
    )
    taker = Taker()
    now = [0.0]
    receiver = WorkQueueReceiver(
        verifier,
        metrics,
        lambda envelope: [taker],  # type: ignore[list-item]
        clock=lambda: now[0],
        late_size=2,
    )
    first, second, third = (new_message_id() for _ in range(3))
    receiver.receive([late_frame(first, 600, ack=Acks())])  # handled until the end
    now[0] = 1.0
    receiver.receive([late_frame(second, 600, ack=Acks())])
    taker.taken[-1][1].ack()  # type: ignore[misc]
    now[0] = 2.0
    pending = Nacks()
    receiver.receive([late_frame(first, 600, ack=Acks(), nack=pending)])
    assert pending.count == 1  # left pending beside its first: kept again from now
    now[0] = 3.0
    receiver.receive([late_frame(third, 600, ack=Acks())])  # full: the oldest goes
    taker.taken[0][1].ack()  # type: ignore[misc]
    now[0] = 4.0
    again = Acks()
    [result] = receiver.receive([late_frame(first, 600, ack=again)])
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.REPLAYED
    assert again.count == 1
    assert [envelope.id for envelope, _ in taker.taken] == [first, second, third]


async def test_a_stop_leaving_many_frames_unacknowledged_forgets_their_ids_in_one_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop that leaves hundreds of queued work-queue frames unacknowledged forgets their ids
    together, in one look through the replay memory: one at a time, each looked through the
    newest ids, and thousands of them held a loaded replica's stop for seconds."""
    forgotten: list[int] = []
    forget = Verifier.forget

    def counted(verifier: Verifier, envelopes: Any) -> None:
        envelopes = list(envelopes)
        forgotten.append(len(envelopes))
        forget(verifier, envelopes)

    monkeypatch.setattr(Verifier, "forget", counted)
    bus, transport, _ = make_bus()
    handler = Held()
    bus.subscribe("alerts", handler, instances=["ex_esdb_alerts"], group=True, queue_size=1000)
    await bus.start()
    nacks = [Nacks() for _ in range(300)]
    for nack in nacks:
        transport.send(Frame("ex_esdb_alerts", *signed(), group=True, ack=Acks(), nack=nack))
    await async_wait_until(lambda: handler.entered, 5, "the first one in the handler")
    await bus.aclose(0.0)
    # The one in its handler is left pending, unanswered: the transport hands it back too.
    assert [nack.count for nack in nacks] == [0] + [1] * 299
    await async_wait_until(lambda: sum(forgotten) == 299, 5, "every id forgotten")
    assert forgotten == [299]
