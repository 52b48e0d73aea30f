"""What a subscription takes, how it stops, and the arguments a batch subscription refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bridge.bus import Envelope, Frame, new_message_id
from bridge.bus.subscription import Inbox
from bridge.messages import Message, NodeHealth, SystemAlert
from tests.bus.helpers import BusFactory

HEALTH = NodeHealth(status="healthy", node="node1@host")
ALERT = SystemAlert(
    severity="warning", category="system", title="t", description="d", source="s", node="n"
)


def _envelope(payload: Message, topic: str) -> Envelope:
    now = datetime.now(UTC)
    return Envelope(
        new_message_id(),
        payload.INSTANCE,
        topic,
        payload.TAG,
        "node1@host",
        now,
        payload,
        now.timestamp(),
    )


def _inbox(
    instances: set[str],
    tags: set[str] | None,
    topic: str,
    dropped: Callable[[], None] = lambda: None,
    max_queue: int = 10,
    max_bytes: int = 2**62,
) -> Inbox:
    return Inbox(
        "test",
        instances=frozenset(instances),
        tags=None if tags is None else frozenset(tags),
        topic=topic,
        group=False,
        max_queue=max_queue,
        dropped=dropped,
        max_bytes=max_bytes,
    )


@pytest.mark.parametrize(
    ("instances", "tags", "topic", "payload", "message_topic", "taken"),
    [
        ({"ex_esdb_health"}, None, "*", HEALTH, "node:health", True),
        ({"ex_esdb_health"}, None, "*", ALERT, "node:health", False),
        ({"ex_esdb_health", "ex_esdb_alerts"}, None, "*", ALERT, "disk", True),
        ({"ex_esdb_health"}, {"node_health_updated"}, "*", HEALTH, "node:health", True),
        ({"ex_esdb_health"}, {"component_health_updated"}, "*", HEALTH, "node:health", False),
        ({"ex_esdb_health"}, None, "node:*", HEALTH, "node:health", True),
        ({"ex_esdb_health"}, None, "node:*", HEALTH, "store:health", False),
        ({"ex_esdb_health"}, None, "node:health", HEALTH, "node:health", True),
        ({"ex_esdb_health"}, None, "node", HEALTH, "node:health", False),
    ],
    ids=[
        "instance",
        "other-instance",
        "one-of-instances",
        "tag",
        "other-tag",
        "topic-prefix",
        "other-prefix",
        "exact-topic",
        "exact-is-not-a-prefix",
    ],
)
def test_an_inbox_takes_what_its_instances_tags_and_topic_allow(
    instances: set[str],
    tags: set[str] | None,
    topic: str,
    payload: Message,
    message_topic: str,
    taken: bool,
) -> None:
    """A message is taken when its instance, tag and topic all pass the filter."""
    assert _inbox(instances, tags, topic).takes(_envelope(payload, message_topic)) is taken


async def test_a_full_inbox_refuses_and_counts_and_a_stopped_one_refuses_uncounted() -> None:
    """Past max_queue the new message is refused and counted; a stopped inbox counts nothing."""
    drops: list[int] = []
    inbox = _inbox({"ex_esdb_health"}, None, "*", lambda: drops.append(1), max_queue=2)
    envelope, frame = _envelope(HEALTH, "node:health"), Frame("ex_esdb_health", b"", None)
    assert [inbox.offer(envelope, frame) for _ in range(3)] == [True, True, False]
    assert (inbox.depth, len(drops)) == (2, 1)
    await inbox.stop(0.0)  # never started: what is queued is let go
    assert not inbox.offer(envelope, frame)
    assert (inbox.depth, len(drops)) == (0, 1)


async def test_an_inbox_full_in_bytes_refuses_and_counts_and_gives_its_bytes_back() -> None:
    """Past max_bytes (of frame bodies, or of a share as offered) new messages are refused and
    counted, though the count has room; what is taken, in runs cut or whole, or put back, keeps
    the bytes queued exact."""
    drops: list[int] = []
    inbox = _inbox(
        {"ex_esdb_health"}, None, "*", lambda: drops.append(1), max_queue=100, max_bytes=1000
    )
    envelope = _envelope(HEALTH, "node:health")
    frame = Frame("ex_esdb_health", b"x" * 400, None)
    assert [inbox.offer(envelope, frame) for _ in range(3)] == [True, True, False]
    assert (inbox.depth, inbox.bytes, len(drops)) == (2, 800, 1)
    assert inbox.offer_many([envelope] * 3, frame, 300) == 0  # 1 100 bytes: none taken
    assert (inbox.depth, inbox.bytes, len(drops)) == (2, 800, 4)
    assert inbox.offer_many([envelope] * 3, frame, 200) == 3
    assert (inbox.depth, inbox.bytes) == (5, 1000)
    runs = inbox.take(3)  # two runs of one, then one message of the run of three
    assert [len(envelopes) for envelopes, _, _ in runs] == [1, 1, 1]
    assert inbox.bytes == 1000 - sum(size for _, _, size in runs)
    inbox.put_back(runs)
    assert (inbox.depth, inbox.bytes) == (5, 1000)
    while inbox.take_run() is not None:
        pass
    assert (inbox.depth, inbox.bytes) == (0, 0)


async def _handling_without_end() -> tuple[Inbox, asyncio.Event]:
    """An inbox whose handler, handling a message now, hangs and, cancelled, unwinds until
    cancelled again; and the event set once it has ended."""
    handling, ended = asyncio.Event(), asyncio.Event()

    async def empty(inbox: Inbox) -> None:
        handling.set()
        try:
            await asyncio.Event().wait()  # never set: a handler that hangs
        except asyncio.CancelledError:
            await asyncio.Event().wait()  # and, cancelled, unwinds until cancelled again
            raise
        finally:
            ended.set()

    inbox = _inbox({"ex_esdb_health"}, None, "*")
    inbox.start(empty)
    assert inbox.offer(_envelope(HEALTH, "node:health"), Frame("ex_esdb_health", b"", None))
    await asyncio.wait_for(handling.wait(), 10)
    return inbox, ended


async def test_a_deadline_around_a_stop_fires_while_the_handler_unwinds() -> None:
    """A deadline that passes while stop() waits for the cancelled handler to unwind raises
    TimeoutError: the stop does not swallow the cancellation meant for its caller."""
    inbox, ended = await _handling_without_end()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await inbox.stop(0.0)
    assert ended.is_set()  # the handler has ended all the same


@pytest.mark.parametrize(
    ("argument", "value", "named"),
    [("max_batch", 0, "max_batch"), ("retries", -1, "retries")],
)
def test_a_batch_subscription_refuses_arguments_out_of_range(
    make_bus: BusFactory, argument: str, value: int, named: str
) -> None:
    """max_batch below 1 and negative retries are refused, naming the argument."""
    kit = make_bus()
    with pytest.raises(ValueError, match=named):
        kit.bus.subscribe("b", lambda envelopes: None, batch=True, **{argument: value})  # type: ignore[call-overload]


async def test_a_handler_that_does_not_end_once_cancelled_holds_the_stop_for_a_bound_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler still unwinding a quarter second after the stop cancelled it is left to end
    on its own, said in the log, and the stop returns; a second stop cancels it again."""
    inbox, ended = await _handling_without_end()
    await asyncio.wait_for(inbox.stop(0.0), 5)
    assert not ended.is_set()
    assert "its handler did not end within 0.25s of being cancelled" in caplog.text
    await asyncio.wait_for(inbox.stop(0.0), 5)
    assert ended.is_set()
