"""The in-process bus: topic routing, per-subscriber order, isolation, counting and shutdown."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from bridge.bus import (
    Durability,
    Envelope,
    Frame,
    MemoryTransport,
    PublishStatus,
    RejectReason,
    new_message_id,
)
from bridge.errors import MessageError
from bridge.messages import ComponentHealth, NodeHealth, SystemAlert, utc_now
from tests.bus.helpers import BusFactory, BusKit
from tests.support import async_wait_until, nested_map


def _health(component: str = "store", status: str = "healthy") -> ComponentHealth:
    return ComponentHealth(component=component, status=status, node="node1@host")


def _alert(title: str = "disk full") -> SystemAlert:
    return SystemAlert(
        severity="warning",
        category="system",
        title=title,
        description=title,
        source="test",
        node="node1@host",
    )


class Collected:
    """A handler collecting envelopes."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    def __call__(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    @property
    def topics(self) -> list[str]:
        return [envelope.topic for envelope in self.envelopes]


async def _started(make_bus: BusFactory, queue_size: int = 10_000) -> BusKit:
    kit = make_bus(queue_size)
    await kit.bus.start()
    return kit


def test_a_frame_is_an_immutable_value_copied_with_changes_by_replace() -> None:
    """A frame's fields cannot be set; ``_replace`` makes a copy with some changed, the rest
    kept, as the bus does to give a frame taken by several subscribers its shared ack."""
    frame = Frame("ex_esdb_alerts", b"{}", "t=1,v1=00", group=True)
    with pytest.raises(AttributeError):
        frame.group = False  # type: ignore[misc]
    copy = frame._replace(ack=print)
    assert (copy.instance, copy.body, copy.signature, copy.group) == (
        "ex_esdb_alerts",
        b"{}",
        "t=1,v1=00",
        True,
    )
    assert copy.ack is print
    assert frame.ack is None


async def test_publish_delivers_a_signed_verified_envelope(make_bus: BusFactory) -> None:
    """A published message reaches a subscriber as a verified envelope naming this node."""
    kit = await _started(make_bus)
    got = Collected()
    kit.bus.subscribe("sink", got)
    result = kit.bus.publish("store1:health", _health())
    assert result.status is PublishStatus.PUBLISHED
    assert result
    await async_wait_until(lambda: got.envelopes, what="delivery")
    envelope = got.envelopes[0]
    assert (envelope.id, envelope.instance, envelope.tag, envelope.node) == (
        result.message_id,
        "ex_esdb_health",
        "component_health_updated",
        "node1@host",
    )
    assert abs(envelope.unix_ts - datetime.now(UTC).timestamp()) < 5
    published = kit.sample(
        "exesdb_bus_published_total", pubsub="ex_esdb_health", tag="component_health_updated"
    )
    assert published == 1


async def test_published_here_knows_the_bus_own_messages_not_ingested_ones(
    make_bus: BusFactory,
) -> None:
    """The ids of messages the bus published are its own; an envelope put on the bus from
    ingest, naming the same node, is not."""
    kit = await _started(make_bus)
    got = Collected()
    kit.bus.subscribe("sink", got)
    own = kit.bus.publish("store1:health", _health())
    ingested = Envelope(
        new_message_id(),
        "ex_esdb_health",
        "store1:health",
        "component_health_updated",
        "node1@host",
        utc_now(),
        _health(),
    )
    kit.bus.publish_verified([ingested])
    await async_wait_until(lambda: len(got.envelopes) == 2, what="both delivered")
    assert [kit.bus.published_here(e.id) for e in got.envelopes if e.id == own.message_id] == [True]
    assert not kit.bus.published_here(ingested.id)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", ["store1:health", "store2:health", "cluster:health", "config"]),
        ("store*", ["store1:health", "store2:health"]),
        ("store1:*", ["store1:health"]),
        ("cluster:health", ["cluster:health"]),
        ("cluster:health*", ["cluster:health"]),
        ("nothing*", []),
        ("store1", []),  # exact: not a prefix
    ],
)
async def test_topic_patterns_match_exactly_or_by_prefix(
    make_bus: BusFactory, pattern: str, expected: list[str]
) -> None:
    """A topic is matched exactly, or as a prefix when the pattern ends in '*'."""
    kit = await _started(make_bus)
    got, everything = Collected(), Collected()
    kit.bus.subscribe("pattern", got, topic=pattern)
    kit.bus.subscribe("everything", everything)
    for topic in ("store1:health", "store2:health", "cluster:health", "config"):
        kit.bus.publish(topic, _health())
    await async_wait_until(lambda: len(everything.envelopes) == 4, what="all four")
    await async_wait_until(lambda: kit.bus.subscriptions[0].idle, what="pattern idle")
    assert got.topics == expected


async def test_subscribers_get_only_their_instances(make_bus: BusFactory) -> None:
    """A subscriber to some instances gets nothing from the others."""
    kit = await _started(make_bus)
    alerts, everything = Collected(), Collected()
    kit.bus.subscribe("alerts", alerts, instances=["ex_esdb_alerts"])
    kit.bus.subscribe("everything", everything)
    kit.bus.publish("store:health", _health())
    kit.bus.publish("node_failure", _alert())
    await async_wait_until(lambda: len(everything.envelopes) == 2, what="both")
    await async_wait_until(lambda: alerts.envelopes, what="alert")
    assert [envelope.tag for envelope in alerts.envelopes] == ["system_alert"]


async def test_subscribers_with_tags_get_only_those_tags(make_bus: BusFactory) -> None:
    """A subscriber naming tags gets only those, also when it subscribes after others."""
    kit = await _started(make_bus)
    everything, node_only = Collected(), Collected()
    kit.bus.subscribe("everything", everything)
    # Routes are cached per instance and tag: a later subscribe must reset them.
    kit.bus.publish("before", NodeHealth(status="healthy", node="node1@host"))
    await async_wait_until(lambda: everything.envelopes, what="the first message")
    kit.bus.subscribe("node", node_only, tags=["node_health_updated"])
    kit.bus.publish("component", _health())
    kit.bus.publish("node", NodeHealth(status="healthy", node="node1@host"))
    kit.bus.publish("alert", _alert())
    await async_wait_until(lambda: len(everything.envelopes) == 4, what="all four")
    await async_wait_until(lambda: node_only.envelopes, what="the node health")
    assert node_only.topics == ["node"]


async def test_each_subscriber_takes_its_tags_of_a_batch_in_order(make_bus: BusFactory) -> None:
    """Of one batch of several tags, each subscriber gets exactly the messages of the tags it
    takes, in order: one tag (two subscribers alike), two of them, every tag, none."""
    kit = await _started(make_bus)
    now = datetime.now(UTC)
    payloads = [_health("a"), NodeHealth(status="healthy", node="n1"), _alert("b"), _health("c")]
    batch = [
        Envelope(f"msg-{n:08d}", p.INSTANCE, p.TAG, p.TAG, "n1", now, p, now.timestamp())
        for n, p in enumerate(payloads * 2)
    ]
    takers = {
        "node": ["node_health_updated"],
        "node again": ["node_health_updated"],
        "components": ["component_health_updated"],
        "health": ["node_health_updated", "component_health_updated"],
        "alerts": ["system_alert"],
        "all": ["node_health_updated", "component_health_updated", "system_alert"],
        "none": ["cluster_health_updated"],
    }
    got = {name: Collected() for name in takers}
    for name, tags in takers.items():
        instances = ["ex_esdb_health", "ex_esdb_alerts"]
        kit.bus.subscribe(name, got[name], instances=instances, tags=tags)
    kit.bus.publish_verified(batch)
    await async_wait_until(lambda: len(got["all"].envelopes) == 8, what="the whole batch")
    await async_wait_until(
        lambda: all(not s.depth and s.idle for s in kit.bus.subscriptions), what="all handled"
    )
    for name, tags in takers.items():
        expected = [envelope.id for envelope in batch if envelope.tag in tags]
        assert [envelope.id for envelope in got[name].envelopes] == expected, name


async def test_subscribe_refuses_tags_its_instances_do_not_have(make_bus: BusFactory) -> None:
    """A tag unknown, or of an instance not subscribed to, raises MessageError naming it."""
    kit = make_bus()
    with pytest.raises(MessageError, match="system_alert"):
        kit.bus.subscribe("bad", Collected(), instances=["ex_esdb_health"], tags=["system_alert"])
    with pytest.raises(MessageError, match="no_such_tag"):
        kit.bus.subscribe("bad", Collected(), tags=["no_such_tag"])


def test_subscribe_names_each_unknown_instance_with_the_one_meant(make_bus: BusFactory) -> None:
    """Of several unknown instances, each spelt nearly as one is named before the one meant;
    one like none is named alone."""
    kit = make_bus()
    with pytest.raises(MessageError) as caught:
        kit.bus.subscribe(
            "bad", Collected(), instances=["ex_esdb_alert", "nosuch", "ex_esdb_healt"]
        )
    assert str(caught.value).endswith(
        "ex_esdb_logging; 'ex_esdb_alert': did you mean 'ex_esdb_alerts'?;"
        " 'ex_esdb_healt': did you mean 'ex_esdb_health'?"
    )
    assert str(caught.value).startswith(
        "unknown bus instances 'ex_esdb_alert', 'ex_esdb_healt', 'nosuch'; allowed:"
    )


@pytest.mark.parametrize(
    ("instances", "topic"),
    [(["ex_esdb_nothing"], "*"), (None, "bad topic*"), (None, "a*b"), (None, "**")],
)
async def test_subscribe_refuses_unknown_instances_and_bad_patterns(
    make_bus: BusFactory, instances: list[str] | None, topic: str
) -> None:
    """Subscribing to an unknown instance or with an invalid pattern raises ValueError."""
    kit = make_bus()
    with pytest.raises(ValueError):  # noqa: PT011 - MessageError or the topic check
        kit.bus.subscribe("bad", Collected(), instances=instances, topic=topic)


async def test_publish_refuses_a_bad_topic(make_bus: BusFactory) -> None:
    """Publishing on an invalid topic raises ValueError naming the topic."""
    kit = await _started(make_bus)
    with pytest.raises(ValueError, match="topic"):
        kit.bus.publish("bad topic", _health())


async def test_publish_refuses_a_payload_nested_deeper_than_a_reader_decodes(
    make_bus: BusFactory,
) -> None:
    """A payload nesting past MAX_DEPTH raises ValueError naming where and the limit, and
    nothing is sent; one level less is published and delivered (its readers decode it)."""
    kit = await _started(make_bus)
    got = Collected()
    kit.bus.subscribe("sink", got)
    # The envelope and its payload are two levels, metadata the third: 61 more reach 64.
    deepest = _alert().model_copy(update={"metadata": {"a": nested_map(61)}})
    too_deep = _alert().model_copy(update={"metadata": {"a": nested_map(62)}})
    with pytest.raises(ValueError, match=r"^payload\.metadata(\.a){62}: .*deeper than 64"):
        kit.bus.publish("alerts", too_deep)
    assert kit.bus.publish("alerts", deepest).status is PublishStatus.PUBLISHED
    await async_wait_until(lambda: len(got.envelopes) == 1, what="the deepest delivered")
    assert got.envelopes[0].payload == deepest
    published = {"pubsub": SystemAlert.INSTANCE, "tag": "system_alert"}
    assert kit.registry.get_sample_value("exesdb_bus_published_total", published) == 1


async def test_each_subscriber_gets_messages_in_publish_order(make_bus: BusFactory) -> None:
    """Every subscriber sees the messages in the order they were published."""
    kit = await _started(make_bus)
    fast = Collected()
    slow_seen: list[str] = []

    async def slow(envelope: Envelope) -> None:
        await asyncio.sleep(0)
        slow_seen.append(envelope.payload.component)  # type: ignore[attr-defined]

    kit.bus.subscribe("fast", fast)
    kit.bus.subscribe("slow", slow)
    names = [f"component{number}" for number in range(200)]
    for name in names:
        kit.bus.publish("health", _health(name))
    await async_wait_until(lambda: len(slow_seen) == 200, what="slow subscriber")
    assert [envelope.payload.component for envelope in fast.envelopes] == names  # type: ignore[attr-defined]
    assert slow_seen == names


async def test_a_stuck_subscriber_never_blocks_publishers_or_others(
    make_bus: BusFactory,
) -> None:
    """A handler that never returns fills only its own queue; its drops are counted."""
    kit = await _started(make_bus, queue_size=5)
    never = asyncio.Event()
    stuck_started = asyncio.Event()

    async def stuck(envelope: Envelope) -> None:
        stuck_started.set()
        await never.wait()

    healthy = Collected()
    kit.bus.subscribe("stuck", stuck)
    kit.bus.subscribe("healthy", healthy, queue_size=1_000)
    kit.bus.publish("health", _health("first"))
    await asyncio.wait_for(stuck_started.wait(), 5)
    # The stuck handler holds one message; five more fill its queue; the rest are dropped.
    for number in range(100):
        result = kit.bus.publish("health", _health(f"c{number}"))
        assert result.status is PublishStatus.PUBLISHED
    await async_wait_until(lambda: len(healthy.envelopes) == 101, what="healthy subscriber")
    assert kit.sample("exesdb_bus_dropped_total", subscriber="stuck") == 95
    assert kit.sample("exesdb_bus_dropped_total", subscriber="healthy") == 0
    assert kit.sample("exesdb_bus_queue_depth", subscriber="stuck") == 5


async def test_handler_exceptions_are_counted_and_delivery_goes_on(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing handler is counted in exesdb_sink_errors_total and still gets later messages."""
    kit = await _started(make_bus)
    seen: list[str] = []

    def flaky(envelope: Envelope) -> None:
        seen.append(envelope.topic)
        if envelope.topic == "boom":
            raise RuntimeError("sink failure")

    kit.bus.subscribe("flaky", flaky)
    for topic in ("one", "boom", "two", "boom", "three"):
        kit.bus.publish(topic, _health())
    await async_wait_until(lambda: len(seen) == 5, what="all five")
    assert kit.sample("exesdb_sink_errors_total", subscriber="flaky") == 2
    assert "subscriber flaky failed" in caplog.text


async def test_a_handler_returning_an_awaitable_is_awaited(make_bus: BusFactory) -> None:
    """A plain callable returning a coroutine (e.g. a lambda around an async call) is awaited."""
    kit = await _started(make_bus)
    queue: asyncio.Queue[Envelope] = asyncio.Queue()
    kit.bus.subscribe("lambda", lambda envelope: queue.put(envelope))
    kit.bus.publish("health", _health())
    envelope = await asyncio.wait_for(queue.get(), 5)
    assert envelope.topic == "health"


async def test_aclose_drains_queued_messages(make_bus: BusFactory) -> None:
    """Closing the bus lets each subscriber handle what was already queued, then stops."""
    kit = await _started(make_bus)
    handled: list[str] = []

    async def slow(envelope: Envelope) -> None:
        await asyncio.sleep(0.001)  # a slow subscriber (not a wait): work left at close
        handled.append(envelope.topic)

    kit.bus.subscribe("slow", slow)
    for number in range(50):
        kit.bus.publish(f"t{number}", _health())
    assert len(handled) < 50
    await kit.bus.aclose(drain_seconds=10)
    assert handled == [f"t{number}" for number in range(50)]
    assert kit.bus.readiness() is not None


async def test_aclose_gives_up_on_a_stuck_subscriber_after_the_drain_time(
    make_bus: BusFactory,
) -> None:
    """A subscriber that never finishes does not hold shutdown past the drain time."""
    kit = await _started(make_bus)
    never = asyncio.Event()

    async def stuck(envelope: Envelope) -> None:
        await never.wait()

    kit.bus.subscribe("stuck", stuck)
    kit.bus.publish("health", _health())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await kit.bus.aclose(drain_seconds=0.2)
    assert loop.time() - started < 5


async def test_aclose_is_idempotent_and_publishing_after_it_is_refused(
    make_bus: BusFactory,
) -> None:
    """A second aclose does nothing; a publish after close is rejected, not raised."""
    kit = await _started(make_bus)
    await kit.bus.aclose()
    await kit.bus.aclose()
    result = kit.bus.publish("health", _health())
    assert result.status is PublishStatus.REJECTED
    assert not result


async def test_publish_durably_hands_a_message_over_as_publish_does(
    make_bus: BusFactory,
) -> None:
    """publish_durably delivers a message as publish does (signed and verified, naming this
    node, counted, known as this bus's own), COMMITTED in process; after close it is refused."""
    kit = await _started(make_bus)
    got = Collected()
    kit.bus.subscribe("sink", got)
    result, durability = await kit.bus.publish_durably("disk", _alert(), 5.0)
    assert (result.status, durability) == (PublishStatus.PUBLISHED, Durability.COMMITTED)
    await async_wait_until(lambda: got.envelopes, what="the message delivered")
    assert [(e.id, e.node, e.topic) for e in got.envelopes] == [
        (result.message_id, kit.bus.node, "disk")
    ]
    assert result.message_id is not None
    assert kit.bus.published_here(result.message_id)
    assert (
        kit.sample("exesdb_bus_published_total", pubsub="ex_esdb_alerts", tag="system_alert") == 1
    )
    await kit.bus.aclose()
    result, durability = await kit.bus.publish_durably("disk", _alert(), 5.0)
    assert (result.status, result.reason, durability) == (
        PublishStatus.REJECTED,
        "closed",
        Durability.FAILED,
    )


async def test_publish_from_another_thread(make_bus: BusFactory) -> None:
    """publish() is safe from any thread: the message is handed over on the loop."""
    kit = await _started(make_bus)
    got = Collected()
    kit.bus.subscribe("sink", got)
    results = []

    def publish_from_thread() -> None:
        for number in range(20):
            results.append(kit.bus.publish(f"thread{number}", _health()))

    thread = threading.Thread(target=publish_from_thread)
    thread.start()
    await asyncio.to_thread(thread.join)
    assert all(result.status is PublishStatus.PUBLISHED for result in results)
    await async_wait_until(lambda: len(got.envelopes) == 20, what="all from the thread")
    assert got.topics == [f"thread{number}" for number in range(20)]


async def test_messages_published_before_start_are_delivered_after(make_bus: BusFactory) -> None:
    """A publish before the bus starts is held and delivered once it runs."""
    kit = make_bus()
    got = Collected()
    kit.bus.subscribe("sink", got)
    kit.bus.publish("early", _health())
    await kit.bus.start()
    await async_wait_until(lambda: got.envelopes, what="the early message")
    assert got.topics == ["early"]


async def test_unsubscribe_stops_delivery(make_bus: BusFactory) -> None:
    """After unsubscribe a subscriber gets nothing more."""
    kit = await _started(make_bus)
    got, other = Collected(), Collected()
    subscription = kit.bus.subscribe("sink", got)
    kit.bus.subscribe("other", other)
    kit.bus.publish("one", _health())
    await async_wait_until(lambda: got.envelopes, what="first")
    await kit.bus.unsubscribe(subscription)
    kit.bus.publish("two", _health())
    await async_wait_until(lambda: len(other.envelopes) == 2, what="second at the other")
    assert got.topics == ["one"]
    assert subscription not in kit.bus.subscriptions


def _frame(kit: BusKit, body: bytes, signature: str | None) -> Frame:
    return Frame("ex_esdb_health", body, signature)


def _signed_body(kit: BusKit, **changes: object) -> bytes:
    now = datetime.now(UTC).replace(microsecond=0)
    envelope = Envelope(
        str(changes.get("id", "abcdef0123456789")),
        "ex_esdb_health",
        "health",
        "node_health_updated",
        "node2@host",
        now + timedelta(seconds=float(str(changes.get("skew", 0)))),
        NodeHealth(status="healthy", node="node2@host"),
    )
    return envelope.to_bytes()


async def test_rejected_frames_never_reach_subscribers_and_are_counted_by_reason(
    make_bus: BusFactory,
) -> None:
    """Every rejection reason from a transport is counted in exesdb_bus_rejected_total."""
    kit = await _started(make_bus)
    got = Collected()
    kit.bus.subscribe("sink", got)
    good = _signed_body(kit)
    expired = _signed_body(kit, id="expired-0001", skew=3_600)
    bad_payload = good.replace(b'"healthy"', b'"sickly"')
    unknown_instance = good.replace(b'"ex_esdb_health"', b'"ex_esdb_other"')
    unknown_tag = good.replace(b'"node_health_updated"', b'"node_health_upgraded"')
    frames = [
        (good, None, RejectReason.UNSIGNED),
        (good, "00" * 32, RejectReason.INVALID_SIGNATURE),
        (b"not json", kit.keyring.sign(b"not json"), RejectReason.MALFORMED),
        (bad_payload, kit.keyring.sign(bad_payload), RejectReason.INVALID_PAYLOAD),
        (unknown_instance, kit.keyring.sign(unknown_instance), RejectReason.UNKNOWN_INSTANCE),
        (unknown_tag, kit.keyring.sign(unknown_tag), RejectReason.UNKNOWN_TAG),
        (expired, kit.keyring.sign(expired), RejectReason.EXPIRED),
        (b"x" * 1_048_577, "00", RejectReason.TOO_LARGE),
        (good, kit.keyring.sign(good), None),
        (good, kit.keyring.sign(good), RejectReason.REPLAYED),
    ]
    for body, signature, reason in frames:
        before = kit.sample("exesdb_bus_rejected_total", reason=reason.value) if reason else 0
        kit.transport.send(_frame(kit, body, signature))
        if reason is not None:
            after = kit.sample("exesdb_bus_rejected_total", reason=reason.value)
            assert after == before + 1, reason
    await async_wait_until(lambda: got.envelopes, what="the one good frame")
    await async_wait_until(lambda: kit.bus.subscriptions[0].idle, what="sink idle")
    assert [envelope.id for envelope in got.envelopes] == ["abcdef0123456789"]
    for reason in RejectReason:
        assert kit.sample("exesdb_bus_rejected_total", reason=reason.value) == 1, reason


async def test_every_rejection_reason_is_exported_from_the_start(make_bus: BusFactory) -> None:
    """exesdb_bus_rejected_total has a zero series for each reason before anything happens."""
    kit = make_bus()
    for reason in RejectReason:
        assert (
            kit.registry.get_sample_value("exesdb_bus_rejected_total", {"reason": reason.value})
            == 0
        )


async def test_subscribing_to_an_unknown_instance_names_it(make_bus: BusFactory) -> None:
    """The error for an unknown instance names it."""
    kit = make_bus()
    with pytest.raises(MessageError, match="ex_esdb_nothing"):
        kit.bus.subscribe("bad", Collected(), instances=["ex_esdb_nothing"])


async def test_messages_held_before_start_are_bounded() -> None:
    """Before start the in-process transport holds at most ``max_pending`` frames."""
    transport = MemoryTransport(max_pending=2)
    assert transport.send(Frame("ex_esdb_health", b"1", "s"))
    assert transport.send(Frame("ex_esdb_health", b"2", "s"))
    assert not transport.send(Frame("ex_esdb_health", b"3", "s"))
    received: list[Frame] = []
    await transport.start(received.extend)
    assert [frame.body for frame in received] == [b"1", b"2"]
