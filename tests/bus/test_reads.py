"""How the bus verifies the frames of one transport read: each judged as if it came alone, the
replay checks of the read made at one instant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bridge.bus import Envelope, Frame, Keyring, MemoryTransport, RejectReason
from bridge.bus.subscription import Inbox
from bridge.bus.transport import FrameReceiver
from bridge.messages import Message, NodeHealth, SystemAlert
from tests.bus.helpers import BusKit, build_bus
from tests.support import async_wait_until

KEYRING = Keyring.from_secrets("reads-test-secret-key-base-at-least-32-chars")
OTHER_KEYRING = Keyring.from_secrets("another-secret-of-at-least-32-chars!!")


class ReadingTransport(MemoryTransport):
    """Hands the test the bus's receiver, to deliver several frames as one read."""

    def __init__(self) -> None:
        super().__init__()
        self.receive: FrameReceiver | None = None

    async def start(
        self, receive: FrameReceiver, group_instances: frozenset[str] = frozenset()
    ) -> None:
        self.receive = receive
        await super().start(receive, group_instances)


class Clock:
    """The wall clock, counting its readings."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return time.time()


class Acks:
    """Counts calls of a frame's ack."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def signed(
    message_id: str, instance: str, topic: str, tag: str, payload: Message, skew: float
) -> tuple[bytes, str]:
    """An envelope's bytes from node2@host, ``skew`` seconds off now, and their signature."""
    now = datetime.now(UTC) + timedelta(seconds=skew)
    body = Envelope(message_id, instance, topic, tag, "node2@host", now, payload).to_bytes()
    return body, KEYRING.sign(body)


def health(message_id: str, skew: float = 0) -> tuple[bytes, str]:
    """A NodeHealth envelope's bytes, and their signature."""
    payload = NodeHealth(status="healthy", node="node2@host")
    return signed(message_id, "ex_esdb_health", "health", "node_health_updated", payload, skew)


def alert(message_id: str, skew: float = 0) -> tuple[bytes, str]:
    """A SystemAlert envelope's bytes, and their signature."""
    payload = SystemAlert(
        severity="critical",
        category="system",
        title="t",
        description="d",
        source="s",
        node="node2@host",
    )
    return signed(message_id, "ex_esdb_alerts", "alerts", "system_alert", payload, skew)


def rejected(kit: BusKit) -> dict[str, float]:
    """Rejections counted so far, by reason (those counted at least once)."""
    counts = {
        reason.value: kit.sample("exesdb_bus_rejected_total", reason=reason.value)
        for reason in RejectReason
    }
    return {reason: count for reason, count in counts.items() if count}


async def test_a_read_of_many_frames_is_judged_for_replay_at_one_instant() -> None:
    """The replay checks of a read of 200 frames read the replay memory's clock once, as an
    ingest batch's do, and every frame is delivered in order."""
    clock = Clock()
    transport = ReadingTransport()
    kit = build_bus(KEYRING, transport, clock=clock)
    got: list[Envelope] = []
    kit.bus.subscribe("sink", got.append)
    await kit.bus.start()
    frames = [Frame("ex_esdb_health", *health(f"read-{n:04d}")) for n in range(200)]
    assert transport.receive is not None
    clock.readings = 0
    transport.receive(frames)
    assert clock.readings == 1
    await async_wait_until(lambda: len(got) == 200, 5, "the read delivered")
    await kit.bus.aclose()
    assert [envelope.id for envelope in got] == [f"read-{n:04d}" for n in range(200)]


async def test_the_signatures_of_a_read_are_checked_in_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signatures of a read of 200 frames are checked in one ``Keyring.verify_each`` call,
    not frame by frame; a forged frame among them is still refused and counted."""
    calls: list[int] = []
    real = Keyring.verify_each

    def each(self: Keyring, bodies: Sequence[bytes], signatures: Sequence[str]) -> list[bool]:
        calls.append(len(bodies))
        return real(self, bodies, signatures)

    def alone(self: Keyring, body: bytes, signature: str) -> bool:
        raise AssertionError("a frame of the read verified alone")

    monkeypatch.setattr(Keyring, "verify_each", each)
    monkeypatch.setattr(Keyring, "verify", alone)
    transport = ReadingTransport()
    kit = build_bus(KEYRING, transport)
    got: list[Envelope] = []
    kit.bus.subscribe("sink", got.append)
    await kit.bus.start()
    read = [health(f"read-{n:04d}") for n in range(200)]
    read[7] = (read[7][0], OTHER_KEYRING.sign(read[7][0]))
    assert transport.receive is not None
    transport.receive([Frame("ex_esdb_health", body, signature) for body, signature in read])
    await async_wait_until(lambda: len(got) == 199, 5, "the read delivered")
    await kit.bus.aclose()
    assert calls == [200]
    assert rejected(kit) == {"invalid_signature": 1}


async def test_a_read_is_queued_at_each_subscriber_in_one_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read of 200 frames is queued at each subscriber taking them as one run (its share, in
    order, charged its frames' bytes), not frame by frame."""
    runs: list[tuple[str, int, int]] = []
    real = Inbox.offer_many

    def many(self: Inbox, envelopes: Sequence[Envelope], frame: Frame, size: int) -> int:
        runs.append((self.name, len(envelopes), size))
        return real(self, envelopes, frame, size)

    def one(self: Inbox, envelope: Envelope, frame: Frame) -> bool:
        raise AssertionError("a frame of the read queued alone")

    monkeypatch.setattr(Inbox, "offer_many", many)
    monkeypatch.setattr(Inbox, "offer", one)
    transport = ReadingTransport()
    kit = build_bus(KEYRING, transport)
    every: list[Envelope] = []
    alerts: list[Envelope] = []
    kit.bus.subscribe("every", every.extend, batch=True)
    kit.bus.subscribe("alerts", alerts.extend, instances=["ex_esdb_alerts"], batch=True)
    kit.bus.subscribe("nothing", alerts.extend, instances=["ex_esdb_metrics"], batch=True)
    await kit.bus.start()
    read = [health(f"health-{n:04d}") if n % 4 else alert(f"alert-{n:04d}") for n in range(200)]
    assert transport.receive is not None
    transport.receive(
        [
            Frame("ex_esdb_health" if n % 4 else "ex_esdb_alerts", body, signature)
            for n, (body, signature) in enumerate(read)
        ]
    )
    await async_wait_until(lambda: len(every) == 200 and len(alerts) == 50, 5, "the read")
    await kit.bus.aclose()
    assert runs == [
        ("every", 200, sum(len(body) for body, _ in read)),
        ("alerts", 50, sum(len(body) for body, _ in read[::4])),
    ]
    assert [envelope.id for envelope in every] == [
        f"health-{n:04d}" if n % 4 else f"alert-{n:04d}" for n in range(200)
    ]
    assert [envelope.id for envelope in alerts] == [f"alert-{n:04d}" for n in range(0, 200, 4)]


@pytest.mark.parametrize("bound", ["messages", "bytes"])
async def test_a_read_too_large_for_a_queue_is_queued_frame_by_frame(bound: str) -> None:
    """A read that does not all fit in a subscriber's queue (in messages, or in bytes) is
    queued as frame by frame: those that fit taken in order, each one past them dropped and
    counted; a subscriber with room takes the whole read."""
    read = [health(f"health-{n:04d}") for n in range(200)]
    size = len(read[0][0])
    assert all(len(body) == size for body, _ in read)
    transport = ReadingTransport()
    if bound == "messages":
        kit = build_bus(KEYRING, transport, queue_size=150)
    else:
        kit = build_bus(KEYRING, transport, queue_bytes=150 * size + size // 2)
    small: list[Envelope] = []
    roomy: list[Envelope] = []
    kit.bus.subscribe("small", small.extend, batch=True)
    kit.bus.subscribe("roomy", roomy.extend, batch=True, queue_size=1_000)
    await kit.bus.start()
    assert transport.receive is not None
    transport.receive([Frame("ex_esdb_health", body, signature) for body, signature in read])
    await async_wait_until(lambda: len(small) == 150, 5, "what fits")
    await kit.bus.aclose()
    assert [envelope.id for envelope in small] == [f"health-{n:04d}" for n in range(150)]
    assert kit.sample("exesdb_bus_dropped_total", subscriber="small") == 50
    if bound == "messages":
        assert len(roomy) == 200
        assert kit.sample("exesdb_bus_dropped_total", subscriber="roomy") == 0


async def test_each_frame_of_one_read_is_judged_as_if_it_came_alone() -> None:
    """A read mixing good frames with one of each refusal (a copy of an id accepted in an
    earlier read, a copy of an id earlier in the same read) delivers the good ones in order
    and counts each refusal once by its reason, as frames sent one at a time are."""
    transport = ReadingTransport()
    kit = build_bus(KEYRING, transport)
    got: list[Envelope] = []
    kit.bus.subscribe("sink", got.append)
    await kit.bus.start()
    assert transport.receive is not None
    earlier = health("earlier-0001")
    transport.receive([Frame("ex_esdb_health", *earlier)])
    first, second, third = health("good-0001"), health("good-0002"), health("good-0003")
    tampered = first[0].replace(b'"healthy"', b'"degraded"')
    expired = health("expired-0001", skew=-3_600)
    bad_payload = second[0].replace(b'"healthy"', b'"sickly"')
    wrong_key = (third[0], OTHER_KEYRING.sign(third[0]))
    read = [
        first,
        (tampered, first[1]),
        (first[0], None),
        wrong_key,
        (b"x" * 1_048_577, "00"),
        second,
        first,
        earlier,
        expired,
        (b"not json", KEYRING.sign(b"not json")),
        (bad_payload, KEYRING.sign(bad_payload)),
        third,
    ]
    transport.receive([Frame("ex_esdb_health", body, signature) for body, signature in read])
    await async_wait_until(lambda: len(got) == 4, 5, "the good frames")
    await kit.bus.aclose()
    assert [envelope.id for envelope in got] == [
        "earlier-0001",
        "good-0001",
        "good-0002",
        "good-0003",
    ]
    assert rejected(kit) == {
        "invalid_signature": 2,
        "unsigned": 1,
        "too_large": 1,
        "replayed": 2,
        "expired": 1,
        "malformed": 1,
        "invalid_payload": 1,
    }


async def test_each_work_queue_frame_of_one_read_is_judged_as_if_it_came_alone() -> None:
    """A work-queue read mixing good frames with refused ones hands the good ones to the group
    subscriber in order, acknowledges every refused one (it would come back forever), and
    counts the expired one, the refusal the fan-out copy may not have made."""
    transport = ReadingTransport()
    kit = build_bus(KEYRING, transport)
    taken: list[Envelope] = []
    kit.bus.subscribe("work", taken.append, instances=["ex_esdb_alerts"], group=True)
    await kit.bus.start()
    first, second, third = alert("alert-0001"), alert("alert-0002"), alert("alert-0003")
    tampered = first[0].replace(b'"critical"', b'"warning"')
    read = [
        first,
        (tampered, first[1]),
        second,
        alert("expired-0001", skew=-3_600),
        (second[0], OTHER_KEYRING.sign(second[0])),
        third,
    ]
    acks = [Acks() for _ in read]
    frames = [
        Frame("ex_esdb_alerts", body, signature, group=True, ack=ack)
        for (body, signature), ack in zip(read, acks, strict=True)
    ]
    assert transport.receive is not None
    transport.receive(frames)
    await async_wait_until(lambda: all(ack.count == 1 for ack in acks), 5, "every frame settled")
    await kit.bus.aclose()
    assert [envelope.id for envelope in taken] == ["alert-0001", "alert-0002", "alert-0003"]
    assert rejected(kit) == {"expired": 1}


async def test_a_work_queue_read_is_queued_at_each_group_subscriber_in_one_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A work-queue read of 200 frames is queued at each group subscriber taking them in one
    step, not frame by frame: each subscriber gets its share in order, and each frame is
    acknowledged once, after every subscriber taking it handled it."""

    def one(self: Inbox, envelope: Envelope, frame: Frame) -> bool:
        raise AssertionError("a frame of the read queued alone")

    monkeypatch.setattr(Inbox, "offer", one)
    transport = ReadingTransport()
    kit = build_bus(KEYRING, transport)
    every: list[Envelope] = []
    alerts: list[Envelope] = []
    kit.bus.subscribe("every", every.extend, group=True, batch=True)
    kit.bus.subscribe("alerts", alerts.extend, instances=["ex_esdb_alerts"], group=True, batch=True)
    await kit.bus.start()
    read = [health(f"health-{n:04d}") if n % 4 else alert(f"alert-{n:04d}") for n in range(200)]
    acks = [Acks() for _ in read]
    assert transport.receive is not None
    transport.receive(
        [
            Frame(
                "ex_esdb_health" if n % 4 else "ex_esdb_alerts",
                body,
                signature,
                group=True,
                ack=ack,
            )
            for n, ((body, signature), ack) in enumerate(zip(read, acks, strict=True))
        ]
    )
    await async_wait_until(lambda: all(ack.count for ack in acks), 5, "every frame handled")
    await kit.bus.aclose()
    assert [ack.count for ack in acks] == [1] * 200
    assert [envelope.id for envelope in every] == [
        f"health-{n:04d}" if n % 4 else f"alert-{n:04d}" for n in range(200)
    ]
    assert [envelope.id for envelope in alerts] == [f"alert-{n:04d}" for n in range(0, 200, 4)]


async def test_work_queue_frames_of_one_read_are_acknowledged_only_once_handled() -> None:
    """Each frame of a work-queue read is acknowledged once every group subscriber taking it
    has handled it, not before; one that a subscriber's full queue cannot take is left
    unacknowledged (counted as dropped there), for a redelivery, though another handled it."""
    transport = ReadingTransport()
    kit = build_bus(KEYRING, transport)
    release = asyncio.Event()
    fast: list[Envelope] = []
    slow: list[Envelope] = []

    async def held(envelopes: Sequence[Envelope]) -> None:
        await release.wait()
        slow.extend(envelopes)

    kit.bus.subscribe("fast", fast.extend, instances=["ex_esdb_alerts"], group=True, batch=True)
    kit.bus.subscribe(
        "slow", held, instances=["ex_esdb_alerts"], group=True, batch=True, queue_size=3
    )
    await kit.bus.start()
    read = [alert(f"alert-{n:04d}") for n in range(4)]
    acks = [Acks() for _ in read]
    nacks = [Acks() for _ in read]
    assert transport.receive is not None
    transport.receive(
        [
            Frame("ex_esdb_alerts", body, signature, group=True, ack=ack, nack=nack)
            for (body, signature), ack, nack in zip(read, acks, nacks, strict=True)
        ]
    )
    await async_wait_until(lambda: len(fast) == 4, 5, "the fast subscriber's batch")
    assert [ack.count for ack in acks] == [0, 0, 0, 0]
    assert [nack.count for nack in nacks] == [0, 0, 0, 1]
    release.set()
    await async_wait_until(lambda: len(slow) == 3, 5, "the slow subscriber's batch")
    await async_wait_until(lambda: sum(ack.count for ack in acks) == 3, 5, "the acks")
    await kit.bus.aclose()
    assert [ack.count for ack in acks] == [1, 1, 1, 0]
    assert [nack.count for nack in nacks] == [0, 0, 0, 1]
    assert kit.sample("exesdb_bus_dropped_total", subscriber="slow") == 1
