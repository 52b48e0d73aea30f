"""Subscriptions: each subscriber's filter and bounded queue, drained by one handler in order.

Both kinds compose an ``Inbox`` (the filter, the queue and the task that drains it) and differ
only in how they empty it: a ``Subscription`` hands its handler one message at a time, a
``BatchSubscription`` everything queued at once; neither is the other's subclass, and the bus
holds either as a ``Subscriber``. A queue is bounded in messages and in bytes (those of the
messages' wire form): a full one drops the new message and counts it, so one stuck subscriber
never holds up publishers or the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Final, Protocol

from bridge.backoff import Backoff
from bridge.bus.envelope import Envelope
from bridge.bus.transport import Frame
from bridge.errors import TransportError
from bridge.messages import MESSAGE_TYPES
from bridge.tasks import cancel_and_wait

__all__ = [
    "ALL_TOPICS",
    "BATCH_RETRIES",
    "MAX_BATCH",
    "BatchHandler",
    "BatchSubscription",
    "Handler",
    "Inbox",
    "Sleep",
    "Subscriber",
    "Subscription",
]

_logger = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None] | None]
BatchHandler = Callable[[Sequence[Envelope]], Awaitable[None] | None]
Sleep = Callable[[float], Awaitable[None]]
ALL_TOPICS: Final = "*"
MAX_BATCH: Final = 1000
# A failed batch of work-queue frames is tried again this many times, after 0.1 s, 0.2 s, 0.4 s
# (one process retrying its own database: no herd to spread, so no jitter).
BATCH_RETRIES: Final = 3
_BATCH_RETRY: Final = Backoff(base=0.1, cap=1.0, jitter=0.0)
_FAILED_BATCHES_KEPT: Final = 256
# A fault logged is not logged again for this long while it comes back between batches that
# go through (a work queue's claim handing back frames the full disk refuses, every lease).
_FAULT_TOLD_SECONDS: Final = 600.0
# A handler cancelled at a stop ends at its next await; one still running this long after (a
# call that shields itself) is left to end on its own, and said to be: the stop keeps its deadline.
_HANDLER_END_SECONDS: Final = 0.25

Run = tuple[Sequence[Envelope], Frame, int]
"""Messages queued together, in order, sharing one frame, and the bytes of their wire form: an
in-process batch's share (one queue entry for all of them), or one message and its frame."""
Drain = Callable[["Inbox"], Awaitable[None]]
"""How a subscription empties its inbox: awaited whenever something is queued."""


class Inbox:
    """What a subscriber takes (instances, tags, topic, group), its bounded queue, and the
    task that drains it.

    The queue holds at most ``max_queue`` messages and ``max_bytes`` bytes of their wire form
    (the body a message arrived in, or its share of an ingest batch's): a message may be as
    large as a request body, so a count alone would let a stuck subscriber hold gigabytes.

    The bus offers it every message of its instances; ``matches`` tells whether the topic is
    taken. A stopped inbox takes nothing (uncounted): a work-queue frame it leaves
    unacknowledged goes to a live replica.
    """

    __slots__ = (
        "_busy",
        "_bytes",
        "_depth",
        "_drained",
        "_dropped",
        "_drops",
        "_prefix",
        "_queue",
        "_stopped",
        "_taken_tags",
        "_task",
        "_wakeup",
        "group",
        "instances",
        "max_bytes",
        "max_queue",
        "name",
        "tags",
        "topic",
    )

    def __init__(
        self,
        name: str,
        *,
        instances: frozenset[str],
        tags: frozenset[str] | None,
        topic: str,
        group: bool,
        max_queue: int,
        dropped: Callable[[], None],
        max_bytes: int = 2**62,
    ) -> None:
        self.name = name
        self.instances = instances
        # The message tags taken (None: every tag of the instances).
        self.tags = tags
        self.topic = topic
        # Computed once: matches() runs for every message and subscriber.
        self._prefix = topic[:-1] if topic.endswith(ALL_TOPICS) else None
        # Every tag taken (a tag names its instance), or None for all tags: what share() tests.
        every = {tag for instance, tag in MESSAGE_TYPES if instance in instances}
        chosen = every if tags is None else every & tags
        self._taken_tags = None if len(chosen) == len(MESSAGE_TYPES) else frozenset(chosen)
        self.group = group
        self.max_queue = max_queue
        self.max_bytes = max_bytes
        self._dropped = dropped
        self._drops = 0
        self._queue: deque[Run] = deque()
        self._depth = 0  # the messages in the queue's runs
        self._bytes = 0  # their bytes
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._stopped = False

    def matches(self, topic: str) -> bool:
        """True when this subscriber's topic filter takes ``topic``."""
        prefix = self._prefix
        if prefix is None:
            return topic == self.topic
        return not prefix or topic.startswith(prefix)

    def takes(self, envelope: Envelope) -> bool:
        """True when this subscriber takes ``envelope`` (instance, tag and topic)."""
        return (
            envelope.instance in self.instances
            and (self.tags is None or envelope.tag in self.tags)
            and self.matches(envelope.topic)
        )

    def share(
        self, envelopes: list[Envelope], present: Collection[str], by_tag: dict[str, list[Envelope]]
    ) -> list[Envelope]:
        """The envelopes this subscriber takes, in order (the list itself when it takes all).

        ``present``: the tags the envelopes hold; ``by_tag``: the envelopes of one tag, as
        other subscribers' shares made them (each subscriber of the batch adds to it), so a
        share of one tag is made once for all of them.
        """
        tags, prefix = self._taken_tags, self._prefix
        if prefix == "":  # every topic
            if tags is None:
                return envelopes
            # Told from the batch's few tags, not its messages: all of them, none, or one
            # (the alert sink's and the cluster monitor's share of ingest: its NodeHealth).
            wanted = [tag for tag in present if tag in tags]
            if len(wanted) == len(present):
                return envelopes
            if not wanted:
                return []
            if len(wanted) > 1:
                return [envelope for envelope in envelopes if envelope.tag in tags]
            tag = wanted[0]
            shared = by_tag.get(tag)
            if shared is None:
                shared = by_tag[tag] = [envelope for envelope in envelopes if envelope.tag == tag]
            return shared
        return [
            envelope
            for envelope in envelopes
            if (tags is None or envelope.tag in tags) and self.matches(envelope.topic)
        ]

    @property
    def depth(self) -> int:
        """Messages waiting in the queue."""
        return self._depth

    @property
    def bytes(self) -> int:
        """Bytes (of the messages' wire form) waiting in the queue."""
        return self._bytes

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being handled."""
        return not self._queue and not self._busy

    @property
    def drops(self) -> int:
        """Messages dropped so far, the queue full (each counted in exesdb_bus_dropped_total
        too)."""
        return self._drops

    def offer(self, envelope: Envelope, frame: Frame) -> bool:
        """Queue a message (its size: its frame's body); False (and counted) when the queue is
        full, in messages or bytes, False when stopped."""
        if self._stopped:
            return False
        queue = self._queue
        size = len(frame.body)
        if self._depth >= self.max_queue or self._bytes + size > self.max_bytes:
            self._dropped()
            self._drops += 1
            return False
        if not queue:
            # Only the empty -> non-empty edge needs the events: the draining task empties the
            # queue before it waits again, and "drained" is clear while anything is queued.
            self._drained.clear()
            self._wakeup.set()
        queue.append(((envelope,), frame, size))
        self._depth += 1
        self._bytes += size
        return True

    def offer_each(self, envelopes: Sequence[Envelope], frames: Sequence[Frame]) -> list[int]:
        """Queue messages each with its own frame (work-queue frames, each acknowledged alone),
        in order, as ``offer`` would one by one; the positions of those not queued (dropped
        and counted, or all of them when stopped). In one step when all of them fit."""
        if self._stopped:
            return list(range(len(frames)))
        sizes = [len(frame.body) for frame in frames]
        size = sum(sizes)
        if self._depth + len(frames) > self.max_queue or self._bytes + size > self.max_bytes:
            return [
                index
                for index, (envelope, frame) in enumerate(zip(envelopes, frames, strict=True))
                if not self.offer(envelope, frame)
            ]
        if not frames:
            return []
        if not self._queue:
            self._drained.clear()
            self._wakeup.set()
        self._queue.extend(
            [((e,), frame, n) for e, frame, n in zip(envelopes, frames, sizes, strict=True)]
        )
        self._depth += len(frames)
        self._bytes += size
        return []

    def offer_many(self, envelopes: Sequence[Envelope], frame: Frame, size: int) -> int:
        """Queue several messages sharing ``frame`` at once, ``size`` bytes in all; returns how
        many were queued: those past the queue's count are dropped and counted, and all of them
        when their bytes do not fit."""
        if self._stopped or not envelopes:
            return 0
        queue = self._queue
        room = self.max_queue - self._depth
        if self._bytes + size > self.max_bytes:
            room = 0  # their sizes one by one are not known: none is taken
        if room < len(envelopes):
            for _ in range(len(envelopes) - max(room, 0)):
                self._dropped()
            self._drops += len(envelopes) - max(room, 0)
            if room <= 0:
                return 0
            size = size * room // len(envelopes)  # the share of the messages kept
            envelopes = envelopes[:room]
        if not queue:
            self._drained.clear()
            self._wakeup.set()
        queue.append((envelopes, frame, size))  # one entry, however many messages
        self._depth += len(envelopes)
        self._bytes += size
        return len(envelopes)

    def take(self, limit: int) -> list[Run]:
        """Up to ``limit`` messages from the front of the queue, in the runs they were queued
        in (the last one cut at ``limit``)."""
        queue = self._queue
        runs: list[Run] = []
        left = limit
        taken = 0
        while queue and left:
            envelopes, frame, size = queue.popleft()
            if len(envelopes) > left:
                # The bytes shared in proportion, their sum kept: the count never drifts.
                cut = size * left // len(envelopes)
                queue.appendleft((envelopes[left:], frame, size - cut))
                envelopes, size = envelopes[:left], cut
            runs.append((envelopes, frame, size))
            left -= len(envelopes)
            taken += size
        self._depth -= limit - left
        self._bytes -= taken
        return runs

    def take_run(self) -> Run | None:
        """The run at the front of the queue, whole (one-at-a-time handlers go through it)."""
        if not self._queue:
            return None
        run = self._queue.popleft()
        self._depth -= len(run[0])
        self._bytes -= run[2]
        return run

    def put_back(self, runs: Sequence[Run]) -> None:
        """Queue ``runs`` (taken, not handled) at the front again, ahead of what is queued."""
        runs = [run for run in runs if run[0]]
        self._queue.extendleft(reversed(runs))
        self._depth += sum(len(envelopes) for envelopes, _, _ in runs)
        self._bytes += sum(size for _, _, size in runs)

    def start(self, empty: Drain) -> None:
        """Start the draining task on the running loop: ``empty`` is awaited with the queue
        whenever something is queued, and returns once it has emptied it."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._drain(empty), name=f"bus-subscriber-{self.name}"
            )
            if self._queue:
                self._wakeup.set()

    async def _drain(self, empty: Drain) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Busy from the first message taken until the queue is empty (one flag write per
            # wake-up rather than two per message): idle still means nothing queued or running.
            self._busy = True
            try:
                await empty(self)
            finally:
                self._busy = False
            self._drained.set()

    async def stop(self, drain_seconds: float) -> None:
        """Drain what is queued (for up to ``drain_seconds``), then stop the task (cancelled,
        and waited for ``_HANDLER_END_SECONDS`` at most); what is left is left unacknowledged
        (``nack``). Again after a stop cancelled while it drained, it stops the task that one
        left running."""
        self._stopped = True
        if self._task is not None and not self.idle:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds):
                    await self._drained.wait()
        if self._task is not None:
            await self._end_task(self._task)
        if self._queue:
            _logger.warning(
                "subscriber %s stopped with %d message(s) unhandled", self.name, self._depth
            )
            # Said once: a second stop (the bus stops every subscription) finds nothing left.
            for envelopes, frame, _ in self._queue:
                if frame.nack is not None:
                    for _ in envelopes:
                        frame.nack()
            self._queue.clear()
            self._depth = 0
            self._bytes = 0

    async def _end_task(self, task: asyncio.Task[None]) -> None:
        """Cancel the draining task and wait for it to end, ``_HANDLER_END_SECONDS`` at most."""
        if await cancel_and_wait(task, within=_HANDLER_END_SECONDS):
            # Kept: a later stop (the bus's, after the subscriber's own) cancels it again.
            _logger.warning(
                "subscriber %s: its handler did not end within %gs of being cancelled; the stop"
                " goes on without it",
                self.name,
                _HANDLER_END_SECONDS,
            )
            return
        self._task = None


class Subscriber(Protocol):
    """What the bus and its readers hold of any subscriber, one-at-a-time or batch: both kinds
    compose an ``Inbox`` and a handler that empties it, and neither is the other's subclass."""

    @property
    def inbox(self) -> Inbox: ...

    @property
    def name(self) -> str: ...

    @property
    def group(self) -> bool: ...

    @property
    def depth(self) -> int: ...

    @property
    def idle(self) -> bool: ...

    def start(self) -> None: ...

    async def stop(self, drain_seconds: float) -> None: ...


class _InboxBacked:
    """What either kind of subscriber answers straight from its inbox."""

    __slots__ = ()
    inbox: Inbox
    _errors: Callable[[int], None]  # counts this many messages failed on

    @property
    def name(self) -> str:
        """The subscriber's name (its label in the self-metrics)."""
        return self.inbox.name

    @property
    def group(self) -> bool:
        """True when it takes work-queue frames (one replica handles each)."""
        return self.inbox.group

    @property
    def depth(self) -> int:
        """Messages waiting in the queue."""
        return self.inbox.depth

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being handled."""
        return self.inbox.idle

    def offer(self, envelope: Envelope, frame: Frame) -> bool:
        """Queue a message; False (and counted) when the queue is full, False when stopped."""
        return self.inbox.offer(envelope, frame)

    def failed_on(self, envelope: Envelope) -> None:
        """Count (in exesdb_sink_errors_total) and log, with the traceback being handled, one
        message the handler failed on: for a batch handler that goes on with the rest of its
        batch, as for each message of a one-at-a-time subscriber."""
        self._errors(1)
        _logger.exception("subscriber %s failed on %s", self.name, envelope.tag)


class Subscription(_InboxBacked):
    """A subscriber whose handler takes one message at a time, in order.

    A frame's ``ack`` is called after the handler returned; when the handler raises, the error
    is counted and logged, and the frame left unacknowledged (``nack``).
    """

    __slots__ = ("_errors", "_handler", "inbox")

    def __init__(self, inbox: Inbox, handler: Handler, errors: Callable[[int], None]) -> None:
        """``errors`` counts a message whose handler raised."""
        self.inbox = inbox
        self._handler = handler
        self._errors = errors

    def start(self) -> None:
        """Start the draining task on the running loop."""
        self.inbox.start(self._handle_each)

    async def stop(self, drain_seconds: float) -> None:
        """Drain what is queued (for up to ``drain_seconds``), then stop."""
        await self.inbox.stop(drain_seconds)

    async def _handle_each(self, inbox: Inbox) -> None:
        handler = self._handler
        while (run := inbox.take_run()) is not None:
            taken, frame, size = run
            for position, envelope in enumerate(taken):
                try:
                    # A plain callable may return an awaitable too (a lambda around an async
                    # call, a partial of a coroutine function): await whatever comes back.
                    outcome = handler(envelope)
                    if outcome is not None and inspect.isawaitable(outcome):
                        await outcome
                    if frame.ack is not None:
                        frame.ack()
                except asyncio.CancelledError:
                    # Stopped: the run's messages not yet begun are queued again.
                    rest = taken[position + 1 :]
                    inbox.put_back([(rest, frame, size * len(rest) // len(taken))])
                    raise
                except Exception:
                    self.failed_on(envelope)
                    if frame.nack is not None:
                        frame.nack()


class BatchSubscription(_InboxBacked):
    """A subscriber whose handler takes everything queued at once (up to ``max_batch``).

    The frames' acks are called, in order, after the handler returns, so a handler that commits
    the whole batch in one transaction acknowledges nothing it has not made safe. A ``durable``
    subscription counts what it has handled: a publisher can wait (``wait_handled``) until what
    it put on the in-process bus has been through the handler. ``high_water`` marks the queue
    depth (``high_water_bytes`` its bytes) from which publishers that can push back (HTTP
    ingest) should refuse new work, and
    ``refusing``, when set by the handler's owner, why they should whatever the depth (a batch
    it cannot store yet: what it takes now would only wait in memory).

    A batch holding work-queue frames whose handler raises is tried again, up to ``retries``
    times with doubling backoff from 0.1 s (a locked or full database may clear); if it still
    fails its frames are left unacknowledged (``nack``), for a claim to hand them back later.
    A fault that fails batch after batch alike is logged once, and its end when one succeeds;
    one that comes back within ``_FAULT_TOLD_SECONDS`` of being logged failing a batch (not
    only as one tried again) is not logged again (nor, then, its end), however many batches
    went through between.
    """

    __slots__ = (
        "_clock",
        "_errors",
        "_failed",
        "_failing",
        "_fault",
        "_fault_failed",
        "_fault_told_at",
        "_handled",
        "_handler",
        "_inflight",
        "_late",
        "_sleep",
        "_waiters",
        "durable",
        "high_water",
        "high_water_bytes",
        "inbox",
        "max_batch",
        "refusing",
        "retries",
    )

    def __init__(
        self,
        inbox: Inbox,
        handler: BatchHandler,
        errors: Callable[[int], None],
        *,
        max_batch: int = MAX_BATCH,
        durable: bool = False,
        high_water: int | None = None,
        high_water_bytes: int | None = None,
        retries: int = BATCH_RETRIES,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if retries < 0:
            raise ValueError(f"retries must be at least 0, not {retries}")
        self.inbox = inbox
        self._handler = handler
        self._errors = errors
        self.max_batch = max_batch
        self.durable = durable
        self.high_water = inbox.max_queue if high_water is None else high_water
        self.high_water_bytes = inbox.max_bytes if high_water_bytes is None else high_water_bytes
        self.refusing: str | None = None
        self.retries = retries
        self._sleep = sleep
        self._clock = clock
        self._handled = 0
        self._inflight = 0
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        # (since, mark, callback): publishers told "pending" who must hear of a failure.
        self._late: list[tuple[int, int, Callable[[], None]]] = []
        # (first, last] sequence numbers of recent batches whose handler raised.
        self._failed: deque[tuple[int, int]] = deque(maxlen=_FAILED_BATCHES_KEPT)
        # Batches failed in a row (0 also while their fault went untold), the fault last
        # logged and when, and whether as a batch's failure (not only as one tried again).
        self._failing = 0
        self._fault = ""
        self._fault_told_at = float("-inf")
        self._fault_failed = False

    def start(self) -> None:
        """Start the draining task on the running loop."""
        self.inbox.start(self._handle_batches)

    @property
    def congested(self) -> bool:
        """True when the queue is at or above its high-water mark, or ``refusing`` says why
        new work is refused."""
        inbox = self.inbox
        return (
            self.refusing is not None
            or inbox.depth >= self.high_water
            or inbox.bytes >= self.high_water_bytes
        )

    @property
    def mark(self) -> int:
        """The sequence number of the last message taken so far (handled, in flight or queued)."""
        return self._handled + self._inflight + self.inbox.depth

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

    def when_failed(self, since: int, mark: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the messages numbered in (``since``, ``mark``] went through
        the handler, if a batch holding one of them failed (for a publisher that stopped
        waiting: ``wait_handled`` ended first), or once the subscription stopped before they
        went through: either way they were not handled."""
        if self._handled >= mark:
            if self.failed_between(since, mark):
                callback()
            return
        self._late.append((since, mark, callback))

    def _settle_late(self) -> None:
        if not self._late:
            return
        keep: list[tuple[int, int, Callable[[], None]]] = []
        for since, mark, callback in self._late:
            if self._handled < mark:
                keep.append((since, mark, callback))
            elif self.failed_between(since, mark):
                self._call_late(callback)
        self._late = keep

    def _call_late(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # in the batch loop: one callback must not stop the stage
            _logger.exception("subscriber %s: a late-failure callback failed", self.name)

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

    async def _handle_batches(self, inbox: Inbox) -> None:
        while runs := inbox.take(self.max_batch):
            # An in-process batch's share is one run: the envelopes are in one step.
            envelopes = (
                list(runs[0][0]) if len(runs) == 1 else [e for run, _, _ in runs for e in run]
            )
            count = len(envelopes)
            self._inflight = count
            # Work-queue frames are to be acknowledged (in-process ones never are).
            acked = any(frame.ack is not None for _, frame, _ in runs)
            try:
                if await self._handle(envelopes, acked):
                    for run, frame, _ in runs if acked else ():
                        if frame.ack is not None:
                            for _ in run:
                                frame.ack()
                else:
                    self._failed.append((self._handled, self._handled + count))
                    for run, frame, _ in runs:
                        if frame.nack is not None:
                            for _ in run:
                                frame.nack()
            except asyncio.CancelledError:
                # Stopped mid-batch: these were not handled; say so with the rest.
                inbox.put_back(runs)
                raise
            except Exception:
                self._errors(count)
                self._failed.append((self._handled, self._handled + count))
                _logger.exception("subscriber %s failed on a batch of %d", self.name, count)
            finally:
                self._inflight = 0
            self._handled += count
            self._settle_waiters()
            self._settle_late()

    async def _handle(self, envelopes: list[Envelope], acked: bool) -> bool:
        """Run the handler on a batch (again after a failure, when ``acked``: it holds
        work-queue frames); True when it succeeded."""
        retries = self.retries if acked else 0
        failures = 0
        told_here = False  # this batch's fault logged by its first attempt
        while True:
            try:
                outcome = self._handler(envelopes)
                if outcome is not None and inspect.isawaitable(outcome):
                    await outcome
                if self._failing:
                    _logger.info(
                        "subscriber %s works again after %d failed batch(es)",
                        self.name,
                        self._failing,
                    )
                self._failing = 0
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._errors(len(envelopes))  # each message of the batch failed on
                failures += 1
                # A fault that repeats at every attempt and batch (the outbox on a full disk,
                # under ingest or a work queue handing the same frames back) is logged once, not
                # once an attempt: each is counted all the same.
                fault = f"{type(exc).__name__}: {exc}"
                # The transport failing (Redis unreachable) is its own to tell: one line here,
                # naming it, not a traceback through the client library at each outage.
                traced = not isinstance(exc, TransportError)
                said = "" if traced else f": {exc}"
                now = self._clock()
                told = fault == self._fault and now - self._fault_told_at < _FAULT_TOLD_SECONDS
                if failures > retries:
                    # Warned of only as tried again (that batch then went through): a batch
                    # it fails for good is told still.
                    if not told or told_here or not self._fault_failed:
                        self._fault, self._fault_told_at = fault, now
                        self._fault_failed = True
                        self._failing += 1
                        _logger.error(
                            "subscriber %s failed on a batch of %d%s",
                            self.name,
                            len(envelopes),
                            said,
                            exc_info=traced,
                        )
                    elif self._failing:  # failing still since it was told: its end is told
                        self._failing += 1
                    return False
                delay = _BATCH_RETRY.delay(failures)
                if not told:
                    self._fault, self._fault_told_at = fault, now
                    self._fault_failed = False
                    told_here = True
                    _logger.warning(
                        "subscriber %s failed on a batch of %d%s; trying again in %.2fs",
                        self.name,
                        len(envelopes),
                        said,
                        delay,
                        exc_info=traced,
                    )
                await self._sleep(delay)

    async def stop(self, drain_seconds: float) -> None:
        """Drain what is queued (for up to ``drain_seconds``), then stop; waiters are released."""
        await self.inbox.stop(drain_seconds)
        self._settle_waiters(stopped=True)
        # What the drain did not reach is dropped: its publishers are told, as of a failure.
        late, self._late = self._late, []
        for _, _, callback in late:
            self._call_late(callback)
