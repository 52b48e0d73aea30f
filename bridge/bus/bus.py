"""The signed bus: nine instances, topic subscriptions, bounded per-subscriber queues.

Publishing never blocks: a message is signed, handed to the transport and, once verified on
arrival, appended to the queue of every matching subscriber. Each subscriber drains its own queue
in its own task, in order; a full queue drops the new message and counts it, so one stuck
subscriber never holds up publishers or the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Final, Literal, overload

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.bus.envelope import (
    Envelope,
    Rejection,
    RejectReason,
    check_topic,
    new_message_id,
)
from bridge.bus.metrics import BusMetrics
from bridge.bus.signing import Keyring
from bridge.bus.transport import Frame, MemoryTransport, Transport
from bridge.bus.verify import Verifier
from bridge.errors import MessageError
from bridge.messages import INSTANCES, MESSAGE_TYPES, Message, utc_now

__all__ = [
    "MAX_BATCH",
    "BatchHandler",
    "BatchSubscription",
    "Bus",
    "Durability",
    "Handler",
    "PublishResult",
    "PublishStatus",
    "QueueDepthCollector",
    "Subscription",
    "register_queue_depth",
]

_logger = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None] | None]
BatchHandler = Callable[[Sequence[Envelope]], Awaitable[None] | None]
_ALL_TOPICS: Final = "*"
MAX_BATCH: Final = 1000
# A failed batch of work-queue frames is tried again this many times, after 0.1 s, 0.2 s, 0.4 s.
_BATCH_RETRIES: Final = 3
_BATCH_RETRY_BACKOFF: Final = 0.1
# The work-queue path's own rejection that loses a message the fan-out path may have accepted:
# an entry claimed (or read) after the replay window. Its other rejections the fan-out path
# judged, and counted, on the same bytes; a replayed work-queue entry was handled already.
_COUNTED_GROUP_REJECTIONS: Final = frozenset({RejectReason.EXPIRED})
_FAILED_BATCHES_KEPT: Final = 256


class Durability(Enum):
    """Where a durably published batch stands when the publisher stops waiting."""

    COMMITTED = "committed"
    PENDING = "pending"
    FAILED = "failed"


class PublishStatus(Enum):
    """What became of a broadcast."""

    PUBLISHED = "published"
    DISABLED = "disabled"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The outcome of a publish: the message id when published, the reason when not."""

    status: PublishStatus
    message_id: str | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.status is PublishStatus.PUBLISHED


class Subscription:
    """One subscriber: a topic filter, a bounded queue, and the task that drains it."""

    __slots__ = (
        "_busy",
        "_drained",
        "_dropped",
        "_errors",
        "_handler",
        "_prefix",
        "_queue",
        "_stopped",
        "_task",
        "_wakeup",
        "group",
        "instances",
        "max_queue",
        "name",
        "tags",
        "topic",
    )

    def __init__(
        self,
        name: str,
        handler: Handler,
        instances: frozenset[str],
        topic: str,
        max_queue: int,
        group: bool,
        dropped: Callable[[], None],
        errors: Callable[[], None],
    ) -> None:
        self.name = name
        self.instances = instances
        # The message tags taken (None: every tag of the instances); set by Bus.subscribe.
        self.tags: frozenset[str] | None = None
        self.topic = topic
        # Computed once: matches() runs for every message and subscriber.
        self._prefix = topic[:-1] if topic.endswith(_ALL_TOPICS) else None
        self.max_queue = max_queue
        self.group = group
        self._handler = handler
        self._queue: deque[tuple[Envelope, Frame]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._stopped = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._dropped = dropped
        self._errors = errors

    def matches(self, topic: str) -> bool:
        """True when this subscription's topic filter takes ``topic``."""
        prefix = self._prefix
        if prefix is None:
            return topic == self.topic
        return not prefix or topic.startswith(prefix)

    @property
    def depth(self) -> int:
        """Messages waiting in the queue."""
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being handled."""
        return not self._queue and not self._busy

    def offer(self, envelope: Envelope, frame: Frame) -> bool:
        """Queue a message; False (and counted) when the queue is full.

        A stopped subscription takes nothing (uncounted): a work-queue frame it leaves
        unacknowledged goes to a live replica.
        """
        if self._stopped:
            return False
        queue = self._queue
        if len(queue) >= self.max_queue:
            self._dropped()
            return False
        if not queue:
            # Only the empty -> non-empty edge needs the events: the draining task empties the
            # queue before it waits again, and "drained" is clear while anything is queued.
            self._drained.clear()
            self._wakeup.set()
        queue.append((envelope, frame))
        return True

    def start(self) -> None:
        """Start the draining task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name=f"bus-subscriber-{self.name}"
            )
            if self._queue:
                self._wakeup.set()

    async def _drain(self) -> None:
        queue = self._queue
        handler = self._handler
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Busy from the first message taken until the queue is empty (one flag write per
            # wake-up rather than two per message): idle still means nothing queued or running.
            self._busy = True
            try:
                while queue:
                    envelope, frame = queue.popleft()
                    try:
                        # A plain callable may return an awaitable too (a lambda around an async
                        # call, a partial of a coroutine function): await whatever comes back.
                        outcome = handler(envelope)
                        if outcome is not None and inspect.isawaitable(outcome):
                            await outcome
                        if frame.ack is not None:
                            await frame.ack()
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        self._errors()
                        _logger.exception("subscriber %s failed on %s", self.name, envelope.tag)
                        if frame.nack is not None:
                            frame.nack()
            finally:
                self._busy = False
            self._drained.set()

    async def stop(self, drain_seconds: float) -> None:
        """Drain what is queued (for up to ``drain_seconds``), then stop the task."""
        self._stopped = True
        if self._task is not None and not self.idle:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), drain_seconds)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue:
            _logger.warning(
                "subscriber %s stopped with %d message(s) unhandled", self.name, len(self._queue)
            )
            # Said once: a second stop (the bus stops every subscription) finds nothing left.
            for _, frame in self._queue:
                if frame.nack is not None:
                    frame.nack()
            self._queue.clear()


class BatchSubscription(Subscription):
    """A subscriber whose handler takes everything queued at once (up to ``max_batch``).

    The frames' acks are called, in order, after the handler returns, so a handler that commits
    the whole batch in one transaction acknowledges nothing it has not made safe. A ``durable``
    subscription counts what it has handled: a publisher can wait (``wait_handled``) until what
    it put on the in-process bus has been through the handler. ``high_water`` marks the queue
    depth from which publishers that can push back (HTTP ingest) should refuse new work.

    A batch holding work-queue frames whose handler raises is tried again, up to ``retries``
    times with doubling backoff from ``retry_backoff`` seconds (a locked or full database may
    clear); if it still fails its frames are left unacknowledged (``nack``), for a claim to
    hand them back later.
    """

    __slots__ = (
        "_batch_handler",
        "_failed",
        "_handled",
        "_inflight",
        "_waiters",
        "durable",
        "high_water",
        "max_batch",
        "retries",
        "retry_backoff",
        "sleep",
    )

    def __init__(
        self,
        name: str,
        handler: BatchHandler,
        instances: frozenset[str],
        topic: str,
        max_queue: int,
        group: bool,
        dropped: Callable[[], None],
        errors: Callable[[], None],
        *,
        max_batch: int = MAX_BATCH,
        durable: bool = False,
        high_water: int | None = None,
    ) -> None:
        super().__init__(name, _unused, instances, topic, max_queue, group, dropped, errors)
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._batch_handler = handler
        self.max_batch = max_batch
        self.durable = durable
        self.high_water = max_queue if high_water is None else high_water
        self._handled = 0
        self._inflight = 0
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self.retries = _BATCH_RETRIES
        self.retry_backoff = _BATCH_RETRY_BACKOFF
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        # (first, last] sequence numbers of recent batches whose handler raised.
        self._failed: deque[tuple[int, int]] = deque(maxlen=_FAILED_BATCHES_KEPT)

    @property
    def congested(self) -> bool:
        """True when the queue is at or above its high-water mark."""
        return len(self._queue) >= self.high_water

    @property
    def mark(self) -> int:
        """The sequence number of the last message taken so far (handled, in flight or queued)."""
        return self._handled + self._inflight + len(self._queue)

    def failed_between(self, since: int, mark: int) -> bool:
        """True when a batch holding a message numbered in (``since``, ``mark``] failed."""
        return any(first < mark and last > since for first, last in self._failed)

    async def wait_handled(self, mark: int, seconds: float) -> bool:
        """Wait until every message up to ``mark`` went through the handler; False after
        ``seconds``.

        Also False when the subscription stops first. A handler that raised counts as handled
        here (its error is counted in ``exesdb_sink_errors_total``); ``failed_between`` tells.
        """
        if self._handled >= mark:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((mark, future))
        try:
            return await asyncio.wait_for(asyncio.shield(future), seconds)
        except TimeoutError:
            return False
        finally:
            if not future.done():
                future.cancel()
            self._waiters = [(m, f) for m, f in self._waiters if not f.done()]

    def _settle_waiters(self, stopped: bool = False) -> None:
        if not self._waiters:
            return
        keep: list[tuple[int, asyncio.Future[bool]]] = []
        for mark, future in self._waiters:
            if future.done():
                continue
            if stopped or self._handled >= mark:
                future.set_result(not stopped or self._handled >= mark)
            else:
                keep.append((mark, future))
        self._waiters = keep

    async def _drain(self) -> None:
        queue = self._queue
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while queue:
                count = min(len(queue), self.max_batch)
                if count == len(queue):
                    taken = list(queue)  # the whole queue (the usual case): one copy, one clear
                    queue.clear()
                else:
                    taken = [queue.popleft() for _ in range(count)]
                self._busy = True
                self._inflight = count
                try:
                    if await self._handle(taken):
                        for _, frame in taken:
                            if frame.ack is not None:
                                await frame.ack()
                    else:
                        self._failed.append((self._handled, self._handled + count))
                        for _, frame in taken:
                            if frame.nack is not None:
                                frame.nack()
                except asyncio.CancelledError:
                    # Stopped mid-batch: these were not handled; say so with the rest.
                    self._queue.extendleft(reversed(taken))
                    raise
                except Exception:
                    self._errors()
                    self._failed.append((self._handled, self._handled + count))
                    _logger.exception("subscriber %s failed on a batch of %d", self.name, count)
                finally:
                    self._busy = False
                    self._inflight = 0
                self._handled += count
                self._settle_waiters()
            self._drained.set()

    async def _handle(self, taken: list[tuple[Envelope, Frame]]) -> bool:
        """Run the handler on a batch (again after a failure, for work-queue frames); True when
        it succeeded."""
        envelopes = [envelope for envelope, _ in taken]
        retries = self.retries if any(frame.ack is not None for _, frame in taken) else 0
        attempt = 0
        while True:
            try:
                outcome = self._batch_handler(envelopes)
                if outcome is not None and inspect.isawaitable(outcome):
                    await outcome
                return True
            except asyncio.CancelledError:
                raise
            except Exception:
                self._errors()
                if attempt >= retries:
                    _logger.exception(
                        "subscriber %s failed on a batch of %d", self.name, len(taken)
                    )
                    return False
                delay = self.retry_backoff * 2**attempt
                _logger.warning(
                    "subscriber %s failed on a batch of %d; trying again in %.2fs",
                    self.name,
                    len(taken),
                    delay,
                    exc_info=True,
                )
                attempt += 1
                await self.sleep(delay)

    async def stop(self, drain_seconds: float) -> None:
        """Drain what is queued (for up to ``drain_seconds``), then stop; waiters are released."""
        await super().stop(drain_seconds)
        self._settle_waiters(stopped=True)


async def _unused(envelope: Envelope) -> None:  # pragma: no cover - BatchSubscription's slot
    raise AssertionError("a batch subscription calls its batch handler")


class Bus:
    """Publish signed messages and deliver verified ones to subscribers."""

    def __init__(
        self,
        *,
        node: str,
        keyring: Keyring,
        verifier: Verifier,
        metrics: BusMetrics,
        transport: Transport | None = None,
        queue_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.metrics = metrics
        self.transport: Transport = transport or MemoryTransport()
        self._keyring = keyring
        self._verifier = verifier
        # Work-queue frames repeat fan-out frames' ids (one message, two ways in), and a claimed
        # frame repeats a dead replica's: they need a replay memory of their own. An id is
        # remembered there only once its handlers succeeded (a frame whose handler failed, or
        # that a full queue dropped, is taken again when redelivered); meanwhile it is pending.
        # Only the rejection the fan-out path may not have seen is counted here (expired).
        self._group_verifier = verifier.with_fresh_replay(counted=False)
        self._group_pending: set[str] = set()
        # A transport that buffers through outages (Redis) re-signs frames grown old there and
        # counts what it has to drop.
        self.transport.attach(resign=self._resign, dropped=metrics.dropped.labels("transport").inc)
        self._acks: set[asyncio.Future[None]] = set()
        self._queue_size = queue_size
        self._clock = clock
        self._subscriptions: list[Subscription] = []
        self._by_instance: dict[str, list[Subscription]] = {name: [] for name in INSTANCES}
        # (instance, tag) -> the subscriptions taking that tag, built on first use and cleared
        # whenever the subscriptions change.
        self._routes: dict[tuple[str, str], tuple[Subscription, ...]] = {}
        self._published = {
            (name, tag): metrics.published.labels(name, tag)
            for name in INSTANCES
            for tag in _tags_of(name)
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._started = False
        self._closed = False

    # -- subscribing --

    @overload
    def subscribe(
        self,
        name: str,
        handler: Handler,
        *,
        instances: Collection[str] | None = None,
        tags: Collection[str] | None = None,
        topic: str = _ALL_TOPICS,
        queue_size: int | None = None,
        group: bool = False,
        batch: Literal[False] = False,
    ) -> Subscription: ...

    @overload
    def subscribe(
        self,
        name: str,
        handler: BatchHandler,
        *,
        instances: Collection[str] | None = None,
        tags: Collection[str] | None = None,
        topic: str = _ALL_TOPICS,
        queue_size: int | None = None,
        group: bool = False,
        batch: Literal[True],
        max_batch: int = MAX_BATCH,
        durable: bool = False,
        high_water: float | None = None,
    ) -> BatchSubscription: ...

    def subscribe(
        self,
        name: str,
        handler: Handler | BatchHandler,
        *,
        instances: Collection[str] | None = None,
        tags: Collection[str] | None = None,
        topic: str = _ALL_TOPICS,
        queue_size: int | None = None,
        group: bool = False,
        batch: bool = False,
        max_batch: int = MAX_BATCH,
        durable: bool = False,
        high_water: float | None = None,
    ) -> Subscription:
        """Deliver matching verified messages to ``handler``, in order, from its own queue.

        ``topic`` is exact, or a prefix ending in ``*`` (``*`` alone takes all). ``group``
        subscribers take work-queue frames: across bridge replicas each such message reaches
        one of them (on the in-process bus, simply this one).

        ``tags`` (message tags of those instances) narrows what is delivered further: a sink
        that acts on a few message types need not be handed every message.

        With ``batch=True`` the handler gets a ``Sequence[Envelope]`` of everything queued (at
        most ``max_batch``) and the frames are acknowledged after it returns; ``durable`` lets
        ``publish_verified_durably`` wait for the handler; ``high_water`` (a fraction of the
        queue size) is where ``congestion`` starts refusing (see ``BatchSubscription``).
        """
        chosen = frozenset(INSTANCES if instances is None else instances)
        unknown = chosen - set(INSTANCES)
        if unknown:
            raise MessageError(f"unknown bus instance(s): {', '.join(sorted(unknown))}")
        if topic != _ALL_TOPICS:
            check_topic(topic.removesuffix(_ALL_TOPICS) or "x")
        taken_tags = None if tags is None else frozenset(tags)
        if taken_tags is not None:
            known = {tag for instance, tag in MESSAGE_TYPES if instance in chosen}
            if taken_tags - known:
                raise MessageError(
                    f"not message tags of {', '.join(sorted(chosen))}: "
                    f"{', '.join(sorted(taken_tags - known))}"
                )
        size = queue_size or self._queue_size
        dropped = self.metrics.dropped.labels(name).inc
        errors = self.metrics.handler_errors.labels(name).inc
        subscription: Subscription
        if batch:
            subscription = BatchSubscription(
                name,
                handler,  # type: ignore[arg-type]  # the overloads pair batch with BatchHandler
                chosen,
                topic,
                size,
                group,
                dropped,
                errors,
                max_batch=max_batch,
                durable=durable,
                high_water=None if high_water is None else max(1, int(size * high_water)),
            )
        else:
            subscription = Subscription(
                name,
                handler,  # type: ignore[arg-type]
                chosen,
                topic,
                size,
                group,
                dropped,
                errors,
            )
        subscription.tags = taken_tags
        self._subscriptions.append(subscription)
        for instance in chosen:
            self._by_instance[instance].append(subscription)
        self._routes.clear()
        if self._started:
            subscription.start()
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription`` and stop its task (what is queued is dropped)."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            for instance in subscription.instances:
                self._by_instance[instance].remove(subscription)
            self._routes.clear()
        await subscription.stop(0.0)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every subscription, for self-metrics and readiness."""
        return tuple(self._subscriptions)

    # -- publishing --

    def publish(
        self, topic: str, payload: Message, *, message_id: str | None = None
    ) -> PublishResult:
        """Sign ``payload`` and put it on its instance; never blocks.

        Safe to call from any thread: off the event loop the hand-over happens on the loop.
        """
        if self._closed:
            return PublishResult(PublishStatus.REJECTED, reason="closed")
        check_topic(topic)
        now = utc_now()
        # The envelope names the publishing node; a payload's own node may be another
        # (e.g. an alert about a peer).
        envelope = Envelope(
            message_id or new_message_id(),
            payload.INSTANCE,
            topic,
            payload.TAG,
            self.node,
            now,
            payload,
            now.timestamp(),
        )
        body = envelope.to_bytes()
        frame = Frame(envelope.instance, body, self._keyring.sign(body), envelope)
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._send, frame)
        elif not self._send(frame):
            return PublishResult(PublishStatus.REJECTED, envelope.id, "transport buffer full")
        self._published[(envelope.instance, envelope.tag)].inc()
        return PublishResult(PublishStatus.PUBLISHED, envelope.id)

    def publish_verified(self, envelopes: Iterable[Envelope]) -> int:
        """Put envelopes already verified elsewhere (HTTP ingest) on the bus; returns the count.

        On the in-process bus they go straight to the subscribers; on a shared transport they are
        re-signed with this bridge's key so that every replica can verify them.
        """
        count = 0
        # Counted per (instance, tag) and added once per batch: a labelled Counter.inc takes a
        # lock, which costs more than the dispatch itself at ingest rates.
        published: dict[tuple[str, str], int] = {}
        if not self.transport.capabilities.shared:
            dispatch = self._dispatch
            for envelope in envelopes:
                dispatch(envelope, _DIRECT)
                key = (envelope.instance, envelope.tag)
                published[key] = published.get(key, 0) + 1
                count += 1
        else:
            for envelope in envelopes:
                body = envelope.to_bytes()
                if not self._send(
                    Frame(envelope.instance, body, self._keyring.sign(body), envelope)
                ):
                    continue  # counted in exesdb_bus_dropped_total{subscriber="transport"}
                key = (envelope.instance, envelope.tag)
                published[key] = published.get(key, 0) + 1
                count += 1
        for key, number in published.items():
            self._published[key].inc(number)
        return count

    def can_take(self, count: int) -> bool:
        """False when the transport could not take ``count`` more frames now (its buffer is
        full, e.g. while Redis is unreachable); for publishers that can push back."""
        left = self.transport.capacity_left()
        return left is None or left >= count

    def congestion(self, envelopes: Sequence[Envelope]) -> BatchSubscription | None:
        """A subscriber that cannot take ``envelopes`` now (at its high-water mark, or they
        would overflow its queue), or None; for publishers that can push back (HTTP ingest)."""
        for subscription in self._subscriptions:
            if not isinstance(subscription, BatchSubscription):
                continue
            # Room for the whole batch: no need to count what this subscriber would take.
            if not subscription.congested and subscription.depth + len(envelopes) <= (
                subscription.max_queue
            ):
                continue
            taken = sum(
                1
                for envelope in envelopes
                if envelope.instance in subscription.instances
                and (subscription.tags is None or envelope.tag in subscription.tags)
                and subscription.matches(envelope.topic)
            )
            if taken and (
                subscription.congested or subscription.depth + taken > subscription.max_queue
            ):
                return subscription
        return None

    async def publish_verified_durably(
        self, envelopes: Iterable[Envelope], seconds: float
    ) -> tuple[int, Durability]:
        """``publish_verified``, then wait (up to ``seconds``) for the durable subscribers.

        Returns the count and whether every durable subscriber that took some of the envelopes
        has handled them (COMMITTED), is still at it (PENDING) or failed on them (FAILED). On a
        shared transport the transport holds them and this does not wait (COMMITTED).
        """
        durable = [
            (subscription, subscription.mark)
            for subscription in self._subscriptions
            if isinstance(subscription, BatchSubscription) and subscription.durable
        ]
        count = self.publish_verified(envelopes)
        if self.transport.capabilities.shared:
            return count, Durability.COMMITTED
        # Read right after the (synchronous) dispatch: the marks cover exactly these envelopes.
        waits = [(s, before, s.mark) for s, before in durable if s.mark != before]
        deadline = time.monotonic() + seconds
        outcome = Durability.COMMITTED
        for subscription, before, mark in waits:
            left = max(0.0, deadline - time.monotonic())
            if not await subscription.wait_handled(mark, left):
                outcome = Durability.PENDING
            elif subscription.failed_between(before, mark):
                return count, Durability.FAILED
        return count, outcome

    def _resign(self, envelope: Envelope) -> Frame:
        """``envelope`` with a fresh ``ts`` and the SAME id, signed again: for a frame that
        waited in a transport's buffer so long that it would be refused as expired (the replay
        memories still refuse a second copy of the id)."""
        now = utc_now()
        fresh = replace(envelope, ts=now, unix_ts=now.timestamp())
        body = fresh.to_bytes()
        return Frame(fresh.instance, body, self._keyring.sign(body), fresh)

    def _send(self, frame: Frame) -> bool:
        if self.transport.send(frame):
            return True
        self.metrics.dropped.labels("transport").inc()
        return False

    # -- receiving --

    def _receive(self, frame: Frame) -> None:
        if self._closed:
            # Shutting down: a work-queue frame left unacknowledged is claimed by a live replica.
            return
        if frame.group and frame.ack is not None:
            self._receive_work(frame)
            return
        verifier = self._group_verifier if frame.group else self._verifier
        result = verifier.verify_frame(frame.body, frame.signature, frame.decoded)
        if isinstance(result, Rejection):
            self._settle(frame)
            return
        self._dispatch(result, frame)

    def _receive_work(self, frame: Frame) -> None:
        """A work-queue frame: its id is remembered only once every taker has handled it."""
        result = self._group_verifier.verify_frame(
            frame.body, frame.signature, frame.decoded, remember=False
        )
        if isinstance(result, Rejection):
            if result.reason in _COUNTED_GROUP_REJECTIONS:
                self.metrics.count_rejection(result.reason)
                _logger.warning("work-queue frame refused: %s", result.detail)
            # A refused work-queue frame is settled, or it would come back forever (a replayed
            # one was handled already; an expired one can never be accepted any more).
            self._settle(frame)
            return
        message_id = result.id
        if message_id in self._group_pending:
            # Another entry carrying the same message is being handled here: this one is left
            # pending (never acknowledged before the message was handled); claimed again later,
            # it is refused as a replay then, or taken if the first attempt failed.
            if frame.nack is not None:
                frame.nack()
            return
        self._group_pending.add(message_id)
        ack, nack = frame.ack, frame.nack
        assert ack is not None
        pending = self._group_pending
        verifier = self._group_verifier
        settled = False

        async def handled() -> None:
            nonlocal settled
            if not settled:
                settled = True
                pending.discard(message_id)
                verifier.remember(result)
            await ack()

        def failed() -> None:
            nonlocal settled
            if not settled:
                settled = True
                pending.discard(message_id)
                if nack is not None:
                    nack()

        self._dispatch(result, replace(frame, ack=handled, nack=failed))

    def _route(self, instance: str, tag: str) -> tuple[Subscription, ...]:
        route = self._routes[(instance, tag)] = tuple(
            subscription
            for subscription in self._by_instance[instance]
            if subscription.tags is None or tag in subscription.tags
        )
        return route

    def _dispatch(self, envelope: Envelope, frame: Frame) -> None:
        group, topic = frame.group, envelope.topic
        route = self._routes.get((envelope.instance, envelope.tag))
        if route is None:
            route = self._route(envelope.instance, envelope.tag)
        if frame.ack is None:
            # In-process and fan-out frames (the hot path): no acknowledgement to share out.
            for subscription in route:
                if (group is None or group == subscription.group) and subscription.matches(topic):
                    subscription.offer(envelope, frame)
            return
        takers = [
            subscription
            for subscription in route
            if (group is None or group == subscription.group) and subscription.matches(topic)
        ]
        if len(takers) != 1:
            if not takers:
                self._settle(frame)
                return
            frame = replace(frame, ack=_after_all(len(takers), frame.ack))
        for subscription in takers:
            if not subscription.offer(envelope, frame) and frame.nack is not None:
                frame.nack()  # dropped (full queue) or stopping: left for a redelivery

    def _settle(self, frame: Frame) -> None:
        if frame.ack is None:
            return
        task: asyncio.Future[None] = asyncio.ensure_future(frame.ack())
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    # -- life cycle --

    async def start(self) -> None:
        """Start the transport and every subscriber's task."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._started = True
        for subscription in self._subscriptions:
            subscription.start()
        group_instances = frozenset(
            instance
            for subscription in self._subscriptions
            if subscription.group
            for instance in subscription.instances
        )
        await self.transport.start(self._receive, group_instances)

    def readiness(self) -> str | None:
        """None when the bus can carry messages, else why not."""
        if not self._started or self._closed:
            return "the bus is not running"
        return self.transport.readiness()

    async def aclose(self, drain_seconds: float = 5.0) -> None:
        """Stop taking messages, drain every subscriber (for up to ``drain_seconds``), then stop
        the transport (which writes what it still holds)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + drain_seconds
        for subscription in self._subscriptions:
            await subscription.stop(max(0.0, deadline - time.monotonic()))
        # After the drain, so that the acknowledgements it produced are still written.
        await self.transport.aclose()
        self._started = False


_DIRECT: Final = Frame("", b"", None)


def _after_all(count: int, ack: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """An ack that acknowledges once all ``count`` subscribers taking a frame have called it."""
    left = count

    async def countdown() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            await ack()

    return countdown


def _tags_of(instance: str) -> Iterator[str]:
    from bridge.messages import MESSAGE_TYPES

    return (tag for (name, tag) in MESSAGE_TYPES if name == instance)


class QueueDepthCollector(Collector):
    """``exesdb_bus_queue_depth{subscriber}``, read from the live queues at scrape time."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "exesdb_bus_queue_depth",
            "Messages waiting in a subscriber's queue.",
            labels=["subscriber"],
        )
        # Several subscriptions may share a name (e.g. every stream client): one series per name.
        depths: dict[str, int] = {}
        for subscription in self._bus.subscriptions:
            depths[subscription.name] = depths.get(subscription.name, 0) + subscription.depth
        for name, depth in depths.items():
            family.add_metric([name], depth)
        yield family


def register_queue_depth(bus: Bus, registry: CollectorRegistry) -> None:
    """Expose the subscribers' queue depths on ``registry``."""
    registry.register(QueueDepthCollector(bus))
