"""The bus: publish signed messages on nine instances and route verified ones to subscribers.

Publishing never blocks: a message is signed, handed to the transport and, once verified on
arrival, offered to every matching subscriber's queue (``bridge.bus.subscription``); work-queue
frames from a shared transport take their own receive path (``bridge.bus.work_queue``). A durable
publish waits until its messages are safe, and a store or handler ending late is settled, in
``bridge.bus.durable``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Final, Literal, overload

import msgspec

from bridge.bus.batches import Turns
from bridge.bus.depth import check_depth
from bridge.bus.durable import DurableStores, wait_for_subscribers
from bridge.bus.envelope import Envelope, Rejection, check_topic, name_shown
from bridge.bus.ids import new_message_id
from bridge.bus.metrics import BusMetrics
from bridge.bus.signing import Keyring
from bridge.bus.subscription import (
    ALL_TOPICS,
    BATCH_RETRIES,
    MAX_BATCH,
    BatchHandler,
    BatchSubscription,
    Handler,
    Inbox,
    Sleep,
    Subscriber,
    Subscription,
)
from bridge.bus.transport import Durability, Frame, MemoryTransport, Transport
from bridge.bus.verify import Verifier
from bridge.bus.work_queue import RecentlyVerified, WorkQueueReceiver
from bridge.choices import did_you_mean
from bridge.errors import MessageError
from bridge.messages import INSTANCES, MESSAGE_TYPES, Message, utc_now

__all__ = ["Bus", "Durability", "PublishResult", "PublishStatus"]

_logger = logging.getLogger(__name__)

# Ids of the newest messages this bus published that it remembers, to tell its own apart when
# they come back (on Redis after a round trip, or after an outage in its buffer of 10 000).
_OWN_IDS: Final = 16_384
# Kinds of work-queue message (instance, tag, topic) whose group subscribers are remembered.
_TAKERS_KEPT: Final = 4096
# The frames of a durable publish made between two looks at how long the loop has been held:
# some 2 ms of encoding and signing; a batch of the usual 1 000 envelopes takes four looks.
_FRAMES_AT_ONCE: Final = 128
# What a stop gives the durable stores still under way once the transport closed, at least.
_LATE_STORES_SECONDS: Final = 0.1
# Why ``publish_durably`` published nothing, by the transport's answer.
_NOT_STORED: Final = {
    Durability.FULL: "the transport has no room for it (on Redis: the spool is full)",
    Durability.FAILED: "the transport could not store it (on Redis: the spool's disk refused it,"
    " or the bus is stopping)",
}


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
        queue_bytes: int = 128 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``queue_size`` and ``queue_bytes`` bound each subscriber's queue (in messages, and in
        bytes of their wire form); ``sleep`` is what a batch subscriber waits with before trying
        a failed batch again."""
        self.node = node
        self.metrics = metrics
        self.transport: Transport = transport or MemoryTransport()
        self._keyring = keyring
        self._verifier = verifier
        self._work = WorkQueueReceiver(verifier, metrics, self._group_takers)
        # Set at start when a shared transport delivers work-queue frames here too.
        self._recent: RecentlyVerified | None = None
        # A transport that buffers through outages (Redis) re-signs frames grown old there and
        # counts what it has to drop.
        self.transport.attach(resign=self._resign, dropped=metrics.dropped.labels("transport").inc)
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._clock = clock
        self._sleep = sleep
        self._subscriptions: list[Subscriber] = []
        self._batches: list[BatchSubscription] = []
        # The batch subscribers whose queue pushes back on publishers that can wait (congestion).
        self._pushing_back: list[BatchSubscription] = []
        self._inboxes: list[Inbox] = []  # every subscriber's, in subscription order
        self._by_instance: dict[str, list[Inbox]] = {name: [] for name in INSTANCES}
        # (instance, tag) -> the inboxes taking that tag, built on first use and cleared
        # whenever the subscriptions change.
        self._routes: dict[tuple[str, str], tuple[Inbox, ...]] = {}
        # (instance, tag, topic) -> the group subscribers taking a work-queue frame of them,
        # likewise; at most _TAKERS_KEPT (topics are the senders').
        self._takers: dict[tuple[str, str, str], tuple[Inbox, ...]] = {}
        self._published = {
            (name, tag): metrics.published.labels(name, tag) for name, tag in MESSAGE_TYPES
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._started = False
        self._closed = False
        self._own_ids: set[str] = set()
        self._own_order: deque[str] = deque()
        self._stores = DurableStores(self.transport, metrics, self._count_published)

    # -- subscribing --

    @overload
    def subscribe(
        self,
        name: str,
        handler: Handler,
        *,
        instances: Collection[str] | None = None,
        tags: Collection[str] | None = None,
        topic: str = ALL_TOPICS,
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
        topic: str = ALL_TOPICS,
        queue_size: int | None = None,
        group: bool = False,
        batch: Literal[True],
        max_batch: int = MAX_BATCH,
        durable: bool = False,
        high_water: float | None = None,
        retries: int = BATCH_RETRIES,
        pushes_back: bool = True,
    ) -> BatchSubscription: ...

    def subscribe(
        self,
        name: str,
        handler: Handler | BatchHandler,
        *,
        instances: Collection[str] | None = None,
        tags: Collection[str] | None = None,
        topic: str = ALL_TOPICS,
        queue_size: int | None = None,
        group: bool = False,
        batch: bool = False,
        max_batch: int = MAX_BATCH,
        durable: bool = False,
        high_water: float | None = None,
        retries: int = BATCH_RETRIES,
        pushes_back: bool = True,
    ) -> Subscription | BatchSubscription:
        """Deliver matching verified messages to ``handler``, in order, from its own queue.

        ``topic`` is exact, or a prefix ending in ``*`` (``*`` alone takes all). ``group``
        subscribers take work-queue frames: across bridge replicas each such message reaches
        one of them (on the in-process bus, simply this one).

        ``tags`` (message tags of those instances) narrows what is delivered further: a sink
        that acts on a few message types need not be handed every message.

        With ``batch=True`` the handler gets a ``Sequence[Envelope]`` of everything queued (at
        most ``max_batch``) and the frames are acknowledged after it returns; ``durable`` lets
        ``publish_verified_durably`` wait for the handler; ``high_water`` (a fraction of the
        queue's size, and of its bytes) is where ``congestion`` starts refusing; a failed batch of
        work-queue frames is tried ``retries`` more times (see ``BatchSubscription``). With
        ``pushes_back=False`` the subscriber stays out of ``congestion``: a full queue drops (and
        counts in exesdb_bus_dropped_total) as a per-message subscriber's does, for a part that
        must not make ingest refuse work (one that is not required).
        """
        chosen = frozenset(INSTANCES if instances is None else instances)
        unknown = chosen - set(INSTANCES)
        if unknown:
            named = ", ".join(repr(name_shown(name)) for name in sorted(unknown))
            allowed = ", ".join(INSTANCES)
            plural = "s" if len(unknown) > 1 else ""
            # The instance each is spelt nearly as (GET /v1/stream?instance=ex_esdb_healt); of
            # several, each named before its own.
            meant = [
                (name, said) for name in sorted(unknown) if (said := did_you_mean(name, INSTANCES))
            ]
            hints = "".join(
                f"; {said}" if len(unknown) == 1 else f"; {name_shown(name)!r}: {said}"
                for name, said in meant
            )
            raise MessageError(f"unknown bus instance{plural} {named}; allowed: {allowed}{hints}")
        if topic != ALL_TOPICS:
            check_topic(topic.removesuffix(ALL_TOPICS) or "x")
        taken_tags = None if tags is None else frozenset(tags)
        if taken_tags is not None:
            known = {tag for instance, tag in MESSAGE_TYPES if instance in chosen}
            if taken_tags - known:
                raise MessageError(
                    f"not message tags of {', '.join(sorted(chosen))}: "
                    f"{', '.join(sorted(taken_tags - known))}"
                )
        size = queue_size or self._queue_size
        inbox = Inbox(
            name,
            instances=chosen,
            tags=taken_tags,
            topic=topic,
            group=group,
            max_queue=size,
            dropped=self.metrics.dropped.labels(name).inc,
            max_bytes=self._queue_bytes,
        )
        errors = self.metrics.handler_errors.labels(name).inc
        subscription: Subscription | BatchSubscription
        if batch:
            subscription = BatchSubscription(
                inbox,
                handler,  # type: ignore[arg-type]  # the overloads pair batch with BatchHandler
                errors,
                max_batch=max_batch,
                durable=durable,
                high_water=None if high_water is None else max(1, int(size * high_water)),
                high_water_bytes=(
                    None if high_water is None else max(1, int(self._queue_bytes * high_water))
                ),
                retries=retries,
                sleep=self._sleep,
            )
            self._batches.append(subscription)
            if pushes_back:
                self._pushing_back.append(subscription)
        else:
            subscription = Subscription(inbox, handler, errors)  # type: ignore[arg-type]
        self._subscriptions.append(subscription)
        self._inboxes.append(inbox)
        for instance in chosen:
            self._by_instance[instance].append(inbox)
        self._routes.clear()
        self._takers.clear()
        if self._started:
            subscription.start()
        return subscription

    async def unsubscribe(self, subscription: Subscriber) -> None:
        """Stop delivering to ``subscription`` and stop its task (what is queued is dropped)."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            self._batches = [s for s in self._batches if s is not subscription]
            self._pushing_back = [s for s in self._pushing_back if s is not subscription]
            self._inboxes.remove(subscription.inbox)
            for instance in subscription.inbox.instances:
                self._by_instance[instance].remove(subscription.inbox)
            self._routes.clear()
            self._takers.clear()
        await subscription.stop(0.0)

    @property
    def subscriptions(self) -> tuple[Subscriber, ...]:
        """Every subscription, for self-metrics and readiness."""
        return tuple(self._subscriptions)

    # -- publishing --

    def publish(
        self, topic: str, payload: Message, *, message_id: str | None = None
    ) -> PublishResult:
        """Sign ``payload`` and put it on its instance; never blocks.

        A payload nesting past what a reader decodes (``depth.MAX_DEPTH``) raises ValueError
        naming where, and nothing is sent.

        Safe to call from any thread: off the event loop the hand-over happens on the loop.
        """
        if self._closed:
            return PublishResult(PublishStatus.REJECTED, reason="closed")
        frame, envelope = self._signed(topic, payload, message_id)
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._send, frame)
        elif not self._send(frame):
            return PublishResult(PublishStatus.REJECTED, envelope.id, "transport buffer full")
        self._published[(envelope.instance, envelope.tag)].inc()
        return PublishResult(PublishStatus.PUBLISHED, envelope.id)

    async def publish_durably(
        self, topic: str, payload: Message, seconds: float
    ) -> tuple[PublishResult, Durability]:
        """``publish``, answered once ``payload`` is safe from a crash of this process or
        ``seconds`` passed, as ingest's ``publish_verified_durably`` is; on the event loop only.

        On a shared transport it is safe once the transport stored it (``send_durably``: on
        Redis, in the spool on disk, which a restart after a crash sends again): COMMITTED,
        PENDING (a store that then fails drops it, counted in
        ``exesdb_bus_dropped_total{subscriber="transport"}`` and logged), or FULL or FAILED
        with nothing taken (REJECTED, uncounted: the publisher is told). In process it is
        handed to the subscribers at once, as ``publish`` hands it (COMMITTED).
        """
        if self._closed:
            return PublishResult(PublishStatus.REJECTED, reason="closed"), Durability.FAILED
        frame, envelope = self._signed(topic, payload, None)
        count, outcome = await self._stores.send([frame], [envelope], seconds, None)
        if not count:
            reason = _NOT_STORED.get(outcome, outcome.value)
            return PublishResult(PublishStatus.REJECTED, envelope.id, reason), outcome
        return PublishResult(PublishStatus.PUBLISHED, envelope.id), outcome

    def _signed(
        self, topic: str, payload: Message, message_id: str | None
    ) -> tuple[Frame, Envelope]:
        """``payload`` in an envelope of this node's, signed, its id remembered as this bus's
        own; the frame and the envelope."""
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
        # Refused here, not by every reader after the caller was told PUBLISHED.
        check_depth(body)
        frame = Frame(envelope.instance, body, self._keyring.sign(body), envelope)
        self._remember_own(envelope.id)
        return frame, envelope

    def _remember_own(self, message_id: str) -> None:
        # From any thread: a race at worst forgets an id early (its series then counts as a
        # sender's under the series cap), never mistakes a sender's message for this bus's.
        self._own_ids.add(message_id)
        self._own_order.append(message_id)
        if len(self._own_order) > _OWN_IDS:
            self._own_ids.discard(self._own_order.popleft())

    @property
    def late_after(self) -> timedelta:
        """How long after it was made a message may be sent and still say how things are now:
        half the replay window, past which a transport signs again a frame it held
        (``_resign``). A message is late when its payload's ``timestamp`` is more than this
        before its envelope's ``ts`` (``envelope.ts - envelope.fields.timestamp > late_after``,
        written out where it is asked: a method call would double its cost per message), and
        the sender set that ``timestamp`` (left out, it is when this bridge decoded the message,
        whose clock may be behind the sender's by the whole window). A reading sent late says
        how things were."""
        return timedelta(seconds=self._verifier.window_seconds / 2)

    def published_here(self, message_id: str) -> bool:
        """Whether ``message_id`` is that of a message this bus published (one of its newest
        16 384): the bridge's own collectors', cluster monitor's, alert stage's and integration
        API's, never one ingested or another replica's."""
        return message_id in self._own_ids

    def publish_verified(
        self, envelopes: Iterable[Envelope], sizes: Sequence[int] | None = None
    ) -> int:
        """Put envelopes already verified elsewhere (HTTP ingest) on the bus; returns the count.

        On the in-process bus they go straight to the subscribers, each one's queue charged
        their bytes from ``sizes`` (each envelope's as it arrived; when None, its wire form is
        made to measure it): a share of the batch as many times its largest envelope, at most the
        whole batch (see ``_charge``). On a shared transport they are re-signed with this
        bridge's key so that every replica can verify them.
        """
        count = 0
        # Counted per (instance, tag) and added once per batch: a labelled Counter.inc takes a
        # lock, which costs more than the dispatch itself at ingest rates.
        published: dict[tuple[str, str], int] = {}
        if not self.transport.capabilities.shared:
            batch = envelopes if isinstance(envelopes, list) else list(envelopes)
            # Counted by tag (which names its instance) in C.
            counts = Counter([envelope.tag for envelope in batch])
            self._dispatch_batch(batch, counts, _sizes(batch, sizes))
            for tag, number in counts.items():
                published[_KINDS[tag]] = number
            count = len(batch)
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

    def congestion(
        self, envelopes: Sequence[Envelope], sizes: Sequence[int] | None = None
    ) -> BatchSubscription | None:
        """A subscriber that cannot take ``envelopes`` (``sizes``: each one's bytes, as
        ``publish_verified`` takes them) now (at its high-water mark, or they would overflow its
        queue, in messages or bytes), or None; for publishers that can push back (HTTP ingest).
        Only batch subscribers that push back (``subscribe``) are asked."""
        sizes = _sizes(envelopes, sizes)
        total = sum(sizes)
        for subscription in self._pushing_back:
            inbox = subscription.inbox
            congested = subscription.congested
            # Room for the whole batch: no need to count what this subscriber would take.
            if (
                not congested
                and inbox.depth + len(envelopes) <= inbox.max_queue
                and inbox.bytes + total <= inbox.max_bytes
            ):
                continue
            taken = sum(1 for envelope in envelopes if inbox.takes(envelope))
            if taken and (
                congested
                or inbox.depth + taken > inbox.max_queue
                or inbox.bytes + _charge(taken, len(sizes), total, max(sizes)) > inbox.max_bytes
            ):
                return subscription
        return None

    def never_fits(
        self, envelopes: Sequence[Envelope], sizes: Sequence[int], subscription: BatchSubscription
    ) -> tuple[int, int, str] | None:
        """(what ``subscription`` would take of ``envelopes``, its queue's bound, and their unit:
        "messages" or "bytes") when that is more than its whole queue holds, or None: such a
        batch is never taken, however long it waits. ``sizes``: each envelope's bytes."""
        inbox = subscription.inbox
        taken = sum(1 for envelope in envelopes if inbox.takes(envelope))
        if taken > inbox.max_queue:
            return taken, inbox.max_queue, "messages"
        size = _charge(taken, len(sizes), sum(sizes), max(sizes, default=0))
        return (size, inbox.max_bytes, "bytes") if size > inbox.max_bytes else None

    async def publish_verified_durably(
        self,
        envelopes: Iterable[Envelope],
        seconds: float,
        *,
        lost: Callable[[Sequence[Envelope]], None] | None = None,
        sizes: Sequence[int] | None = None,
    ) -> tuple[int, Durability]:
        """``publish_verified`` (``sizes`` as it takes them), then wait (up to ``seconds``) until
        they are safe.

        Returns the count and whether every durable subscriber that took some of the envelopes
        has handled them (COMMITTED), is still at it (PENDING) or failed on them (FAILED). On a
        shared transport they are safe once the transport stored them (``send_durably``: on
        Redis, in the spool on disk): COMMITTED, PENDING, or FULL or FAILED with none taken
        (count 0); a store answered PENDING that then fails drops the envelopes (counted in
        ``exesdb_bus_dropped_total{subscriber="transport"}``, logged) and hands them to ``lost``,
        and so does one whose wait was cancelled (its publisher told nothing) that then fails,
        and one ``aclose`` leaves unfinished; one cancelled while its frames were made (in
        steps, the loop serving others between them) stored none of them and hands them all to
        ``lost``. In process, envelopes answered PENDING that a durable subscriber then fails on
        (counted in ``exesdb_sink_errors_total``), or stops without handling, are logged and
        handed to ``lost`` too, and so are those of a wait cancelled (its publisher told
        nothing).
        """
        batch = list(envelopes)
        if self.transport.capabilities.shared:
            frames = await self._frames(batch, lost)
            return await self._stores.send(frames, batch, seconds, lost)
        durable = [(s, s.mark) for s in self._batches if s.durable]
        count = self.publish_verified(batch, sizes)
        # Read right after the (synchronous) dispatch: the marks cover exactly these envelopes.
        waits = [(s, before, s.mark) for s, before in durable if s.mark != before]
        return count, await wait_for_subscribers(waits, batch, seconds, lost)

    async def _frames(
        self, batch: list[Envelope], lost: Callable[[Sequence[Envelope]], None] | None
    ) -> list[Frame]:
        """``batch``'s frames, each envelope encoded and signed, the loop let run between
        ``_FRAMES_AT_ONCE`` of them once they have held it ``HOLD``: some 15 us each, a batch
        of 5 000 (1 MiB of ingest) held it 70-160 ms. A publisher cancelled meanwhile stored
        none of them: all go to ``lost``."""
        frames: list[Frame] = []
        sign = self._keyring.sign
        turns = Turns()
        try:
            for start in range(0, len(batch), _FRAMES_AT_ONCE):
                if start:
                    await turns.take()
                for envelope in batch[start : start + _FRAMES_AT_ONCE]:
                    body = envelope.to_bytes()
                    frames.append(Frame(envelope.instance, body, sign(body), envelope))
        except asyncio.CancelledError:
            if lost is not None:
                lost(batch)
            raise
        return frames

    def _count_published(self, envelopes: Sequence[Envelope]) -> None:
        published: dict[tuple[str, str], int] = {}
        for envelope in envelopes:
            key = (envelope.instance, envelope.tag)
            published[key] = published.get(key, 0) + 1
        for key, number in published.items():
            self._published[key].inc(number)

    def _resign(self, envelope: Envelope) -> Frame:
        """``envelope`` with a fresh ``ts`` and the SAME id, signed again: for a frame that
        waited in a transport's buffer so long that it would be refused as expired (the replay
        memories still refuse a second copy of the id).

        A payload whose sender left its ``timestamp`` out (filled with when it was decoded, for
        a spooled frame just now) is dated by the envelope's ``ts`` as sent: what tells the
        message late (``late_after``), and dates its alert event, is when it was made."""
        now = utc_now()
        payload = envelope.payload
        if "timestamp" not in payload.model_fields_set:
            made = payload.model_copy(update={"timestamp": envelope.ts})
            envelope = msgspec.structs.replace(envelope, payload=made, _unbuilt=None)
        fresh = envelope.restamped(now)
        body = fresh.to_bytes()
        return Frame(fresh.instance, body, self._keyring.sign(body), fresh)

    def _send(self, frame: Frame) -> bool:
        if self.transport.send(frame):
            return True
        self.metrics.dropped.labels("transport").inc()
        return False

    # -- receiving --

    def _receive(self, frames: Sequence[Frame]) -> None:
        """Verify the frames of one read and hand each verified one to its subscribers."""
        if self._closed:
            # Shutting down: a work-queue frame left unacknowledged is claimed by a live replica.
            return
        if frames and frames[0].group:
            self._receive_work(frames)  # a read is of work-queue frames or of none
            return
        work = self._work
        recent = self._recent
        verified: list[Envelope] = []
        taken: list[Frame] = []
        if recent is None or recent.idle:
            # No work-queue copy to look for (a replica not holding the lease), none to keep.
            for frame, result in zip(frames, self._verifier.verify_read(frames), strict=True):
                if isinstance(result, Rejection):
                    work.settle(frame)
                else:
                    verified.append(result)
                    taken.append(frame)
            self._dispatch_read(verified, taken)
            return
        # The work-queue copy of the same bytes under the same signature came first and
        # verified: only this path's replay check is left.
        knowns = [recent.take(frame) if frame.decoded is None else None for frame in frames]
        results = self._verifier.verify_read(frames, knowns)
        for frame, known, result in zip(frames, knowns, results, strict=True):
            if isinstance(result, Rejection):
                work.settle(frame)
                continue
            verified.append(result)
            taken.append(frame)
            if known is None and frame.decoded is None:
                recent.put(frame, result)
        self._dispatch_read(verified, taken)

    def _receive_work(self, frames: Sequence[Frame]) -> None:
        """Work-queue frames: those byte for byte the same as the fan-out copy verified a moment
        ago only need their replay check; a copy no group subscriber here takes is settled."""
        recent, work = self._recent, self._work
        if recent is None:
            work.receive(frames)
            return
        taken: list[Frame] = []
        knowns: list[Envelope | None] = []
        for frame in frames:
            verified = recent.take(frame)
            if verified is not None and not self._taken_here(verified):
                # No group subscriber takes it (most metrics, for the alert stage).
                work.settle(frame)
                continue
            taken.append(frame)
            knowns.append(verified)
        for frame, known, result in zip(taken, knowns, work.receive(taken, knowns), strict=True):
            if known is None and isinstance(result, Envelope):
                recent.put(frame, result)

    def _route(self, instance: str, tag: str) -> tuple[Inbox, ...]:
        route = self._routes[(instance, tag)] = tuple(
            inbox
            for inbox in self._by_instance[instance]
            if inbox.tags is None or tag in inbox.tags
        )
        return route

    def _dispatch_batch(
        self, envelopes: list[Envelope], present: Collection[str], sizes: Sequence[int]
    ) -> None:
        """Offer in-process envelopes (no acknowledgement; ``sizes``: each one's bytes) to their
        subscribers, a batch per subscriber: each takes its share in order, queued in one
        step."""
        if not envelopes:
            return
        by_tag: dict[str, list[Envelope]] = {}
        total = sum(sizes)
        largest = -1  # found for the first share that is not the whole batch
        for inbox in self._inboxes:
            taken = inbox.share(envelopes, present, by_tag)
            if not taken:
                continue
            if taken is envelopes:
                size = total
            else:
                if largest < 0:
                    largest = max(sizes)
                size = _charge(len(taken), len(envelopes), total, largest)
            inbox.offer_many(taken, _DIRECT, size)

    def _dispatch_read(self, envelopes: list[Envelope], frames: list[Frame]) -> None:
        """Offer the verified envelopes of one read of frames that need no acknowledgement
        (fan-out, in-process) to their subscribers: each subscriber's share queued in one
        step, charged its frames' bytes, when all of it fits in its queue; else message by
        message, as ``_dispatch`` offers them (those that do not fit dropped and counted)."""
        if len(envelopes) < 2:
            for envelope, frame in zip(envelopes, frames, strict=True):
                self._dispatch(envelope, frame)
            return
        routes = self._routes
        shares: dict[Inbox, list[int]] = {}  # each subscriber's envelopes, by their index
        for index, (envelope, frame) in enumerate(zip(envelopes, frames, strict=True)):
            route = routes.get((envelope.instance, envelope.tag))
            if route is None:
                route = self._route(envelope.instance, envelope.tag)
            group, topic = frame.group, envelope.topic
            for inbox in route:
                if (group is None or group == inbox.group) and inbox.matches(topic):
                    share = shares.get(inbox)
                    if share is None:
                        shares[inbox] = [index]
                    else:
                        share.append(index)
        sizes = [len(frame.body) for frame in frames]
        for inbox, indices in shares.items():
            if len(indices) == len(envelopes):
                share_of, size = envelopes, sum(sizes)
            else:
                share_of = [envelopes[index] for index in indices]
                size = sum([sizes[index] for index in indices])
            if inbox.depth + len(indices) <= inbox.max_queue and (
                inbox.bytes + size <= inbox.max_bytes
            ):
                inbox.offer_many(share_of, _DIRECT, size)
                continue
            for index in indices:  # some do not fit: each judged alone, as it came
                inbox.offer(envelopes[index], frames[index])

    def _taken_here(self, envelope: Envelope) -> bool:
        """True when a group subscriber takes ``envelope``."""
        return bool(self._group_takers(envelope))

    def _group_takers(self, envelope: Envelope) -> tuple[Inbox, ...]:
        """The group subscribers taking a work-queue ``envelope``."""
        key = (envelope.instance, envelope.tag, envelope.topic)
        takers = self._takers.get(key)
        if takers is None:
            route = self._routes.get(key[:2])
            if route is None:
                route = self._route(envelope.instance, envelope.tag)
            if len(self._takers) >= _TAKERS_KEPT:
                self._takers.clear()
            takers = self._takers[key] = tuple(
                inbox for inbox in route if inbox.group and inbox.matches(envelope.topic)
            )
        return takers

    def _dispatch(self, envelope: Envelope, frame: Frame) -> None:
        """Offer an in-process or fan-out frame (no acknowledgement to share out: work-queue
        frames go through ``WorkQueueReceiver``) to its subscribers."""
        group, topic = frame.group, envelope.topic
        route = self._routes.get((envelope.instance, envelope.tag))
        if route is None:
            route = self._route(envelope.instance, envelope.tag)
        for inbox in route:
            if (group is None or group == inbox.group) and inbox.matches(topic):
                inbox.offer(envelope, frame)

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
            for instance in subscription.inbox.instances
        )
        if group_instances and self.transport.capabilities.shared:
            self._recent = RecentlyVerified(group_instances)
        await self.transport.start(self._receive, group_instances)

    def readiness(self) -> str | None:
        """None when the bus can carry messages, else why not."""
        if not self._started or self._closed:
            return "the bus is not running"
        return self.transport.readiness()

    def unstorable(self) -> str | None:
        """Why the transport stores no durably published batch now, when it knows
        (``TransportCapabilities.unstorable``: on Redis, the spool's files removed); in
        process, why a durable subscriber refuses batches now (``BatchSubscription.refusing``:
        the alert outbox's file removed), which it may have found failing one; else None."""
        if not self.transport.capabilities.shared:
            return next((s.refusing for s in self._batches if s.durable and s.refusing), None)
        unstorable = self.transport.capabilities.unstorable
        return None if unstorable is None else unstorable()

    def hearing(self) -> str | None:
        """None while messages other processes publish reach this bus (``Transport.hearing``),
        else why not."""
        if not self._started or self._closed:
            return "the bus is not running"
        return self.transport.hearing()

    async def aclose(self, drain_seconds: float = 5.0) -> None:
        """Stop taking messages, drain every subscriber (for up to ``drain_seconds``), then stop
        the transport (which writes what it still holds, in what is left of ``drain_seconds``,
        0.1 s at least); a durable store still unfinished then is cancelled, and its envelopes
        handed to ``lost``, before this returns."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + drain_seconds
        for subscription in self._subscriptions:
            await subscription.stop(max(0.0, deadline - time.monotonic()))
        # After the drain, so that the acknowledgements it produced are still written.
        # Bounded too: a spool whose disk hangs in fsync would hold the stop past its time.
        await self.transport.aclose(max(_LATE_STORES_SECONDS, deadline - time.monotonic()))
        await self._stores.settle(max(_LATE_STORES_SECONDS, deadline - time.monotonic()))
        self._started = False


_DIRECT: Final = Frame("", b"", None)


def _sizes(envelopes: Sequence[Envelope], sizes: Sequence[int] | None) -> Sequence[int]:
    """``sizes``, or each envelope's wire form measured (made for it: off the ingest path)."""
    if sizes is None:
        return [len(envelope.to_bytes()) for envelope in envelopes]
    if len(sizes) != len(envelopes):
        raise ValueError(f"{len(sizes)} sizes for {len(envelopes)} envelopes")
    return sizes


def _charge(taken: int, count: int, total: int, largest: int) -> int:
    """What a subscriber's queue is charged for ``taken`` of a batch's ``count`` envelopes
    (``total`` bytes, the largest ``largest``): the whole batch, or a share as many times the
    largest, at most the whole batch. Never less than the share holds, and exact for a batch of
    like envelopes, without telling each one's size from the share (a dict of them by envelope
    would cost ingest some 3 % of its time)."""
    return total if taken >= count else min(total, taken * largest)


# A tag's (instance, tag): what exesdb_bus_published_total counts its messages under.
_KINDS: Final = {tag: (instance, tag) for instance, tag in MESSAGE_TYPES}
