"""Durable publishes: the wait until messages are safe, and what a late end does to them.

A publisher that can be answered only once its messages are safe (HTTP ingest's 202) waits on the
bus for a limited time. On a shared transport they are safe once the transport stored them
(``Transport.send_durably``: on Redis, in the spool on disk); in process, once every durable
subscriber that took some of them handled them. A store or a handler that ends after the
publisher was answered PENDING, or after it stopped waiting, drops or fails on them: here they
are counted, logged and handed to the publisher's ``lost``, once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from bridge.bus.envelope import Envelope
from bridge.bus.metrics import BusMetrics
from bridge.bus.subscription import BatchSubscription
from bridge.bus.transport import Durability, Frame, Transport

__all__ = ["DurableStores", "wait_for_subscribers"]

_logger = logging.getLogger(__name__)

Lost = Callable[[Sequence[Envelope]], None]
"""What a publisher is handed envelopes it was answered for but that were lost after all."""


class DurableStores:
    """The durable stores of a bus on a shared transport: each waited for, and each that ends
    after its publisher was answered settled."""

    __slots__ = ("_late", "_metrics", "_published", "_transport")

    def __init__(
        self,
        transport: Transport,
        metrics: BusMetrics,
        published: Callable[[Sequence[Envelope]], None],
    ) -> None:
        """``published`` counts the envelopes of a store as published."""
        self._transport = transport
        self._metrics = metrics
        self._published = published
        # Stores on a shared transport whose publisher was not told they ended (PENDING, or it
        # stopped waiting): what each one's end does to its envelopes.
        self._late: dict[asyncio.Future[Durability], _StoredLate] = {}

    async def send(
        self,
        frames: Sequence[Frame],
        envelopes: Sequence[Envelope],
        seconds: float,
        lost: Lost | None,
    ) -> tuple[int, Durability]:
        """Store ``frames`` (those of ``envelopes``) through ``send_durably``, waiting up to
        ``seconds``; the count published and where they stand (see
        ``Bus.publish_verified_durably``)."""
        # Shielded: a store under way when the wait ends still completes (PENDING).
        storing = asyncio.ensure_future(self._transport.send_durably(frames))
        try:
            async with asyncio.timeout(seconds):
                outcome = await asyncio.shield(storing)
        except TimeoutError:
            self._store_late(storing, _StoredLate(self._metrics, envelopes, lost))
            outcome = Durability.PENDING
        except asyncio.CancelledError:
            # The publisher stopped waiting, told nothing (its request ended at a stop): a store
            # that then fails, or that the stop leaves unfinished, lost them as for PENDING.
            # One stored after all is published, as it would have been counted unended.
            unanswered = _StoredLate(
                self._metrics, envelopes, lost, answered=False, stored=self._published
            )
            self._store_late(storing, unanswered)
            raise
        if outcome not in (Durability.COMMITTED, Durability.PENDING):
            return 0, outcome
        self._published(envelopes)
        return len(frames), outcome

    async def settle(self, seconds: float) -> None:
        """At a stop, once the transport closed: wait up to ``seconds`` for the stores still
        under way; one still unfinished then is cancelled, and its envelopes handed to
        ``lost``."""
        if self._late:
            # Settled before the bus's stop returns: the caller then keeps the ingest replay
            # memory (at a graceful stop), which must not hold the ids of envelopes a store
            # lost. One still unfinished counts as lost (if it stored them after all, they
            # come twice).
            await asyncio.wait(list(self._late), timeout=seconds)
            for storing in list(self._late):
                storing.cancel()
                self._stored_late(storing)

    def _store_late(self, storing: asyncio.Future[Durability], settle: _StoredLate) -> None:
        self._late[storing] = settle
        storing.add_done_callback(self._stored_late)

    def _stored_late(self, storing: asyncio.Future[Durability]) -> None:
        settle = self._late.pop(storing, None)
        if settle is not None:
            settle(storing)


async def wait_for_subscribers(
    waits: Sequence[tuple[BatchSubscription, int, int]],
    envelopes: Sequence[Envelope],
    seconds: float,
    lost: Lost | None,
) -> Durability:
    """Wait up to ``seconds`` until each durable subscriber of ``waits`` (with its mark before
    and after it took some of ``envelopes``) handled them: COMMITTED, PENDING or FAILED (see
    ``Bus.publish_verified_durably``)."""
    deadline = time.monotonic() + seconds
    outcome = Durability.COMMITTED
    late: list[tuple[BatchSubscription, int, int]] = []
    try:
        for subscription, before, mark in waits:
            left = max(0.0, deadline - time.monotonic())
            if not await subscription.wait_handled(mark, left):
                outcome = Durability.PENDING
                late.append((subscription, before, mark))
            elif subscription.failed_between(before, mark):
                return Durability.FAILED
    except asyncio.CancelledError:
        # The publisher stopped waiting, told nothing (its request ended at a stop): what a
        # subscriber then fails on, or stops without handling, is lost as for PENDING.
        if lost is not None:
            failed = _FailedLate(envelopes, lost, answered=False)
            for subscription, before, mark in waits:
                subscription.when_failed(before, mark, failed)
        raise
    if late and lost is not None:
        failed = _FailedLate(envelopes, lost)
        for subscription, before, mark in late:
            subscription.when_failed(before, mark, failed)
    return outcome


class _FailedLate:
    """What a durable subscriber's failure does to envelopes whose publisher was told they were
    pending (or, not ``answered``, stopped waiting for them): logged and handed to ``lost``
    (once, however many subscribers failed on them)."""

    __slots__ = ("_answered", "_envelopes", "_lost")

    def __init__(
        self,
        envelopes: Sequence[Envelope],
        lost: Lost,
        *,
        answered: bool = True,
    ) -> None:
        self._envelopes: Sequence[Envelope] | None = envelopes
        self._lost = lost
        self._answered = answered

    def __call__(self) -> None:
        envelopes, self._envelopes = self._envelopes, None
        if envelopes is None:
            return
        _logger.error(
            "a durable subscriber failed on %d message(s) after their publisher %s: lost unless"
            " sent again",
            len(envelopes),
            "was told they were pending" if self._answered else "stopped waiting for them",
        )
        self._lost(envelopes)


class _StoredLate:
    """What the end of a store on a shared transport does to envelopes whose publisher was told
    they were pending (or, not ``answered``, stopped waiting for them): one that failed, was
    cancelled or is not done (the bus closed) dropped them, counted, logged, and handed to
    ``lost``; once. One stored is handed to ``stored``, if given."""

    __slots__ = ("_answered", "_envelopes", "_lost", "_metrics", "_stored")

    def __init__(
        self,
        metrics: BusMetrics,
        envelopes: Sequence[Envelope],
        lost: Lost | None,
        *,
        answered: bool = True,
        stored: Callable[[Sequence[Envelope]], None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._envelopes: Sequence[Envelope] | None = envelopes
        self._lost = lost
        self._answered = answered
        self._stored = stored

    def __call__(self, storing: asyncio.Future[Durability]) -> None:
        envelopes, self._envelopes = self._envelopes, None
        if envelopes is None:
            return
        if not storing.done() or storing.cancelled():
            why = "unfinished at the stop"
        elif (error := storing.exception()) is not None:
            why = str(error)
        elif storing.result() in (Durability.COMMITTED, Durability.PENDING):
            if self._stored is not None:
                self._stored(envelopes)
            return
        else:
            why = storing.result().value
        self._metrics.dropped.labels("transport").inc(len(envelopes))
        _logger.error(
            "the transport failed to store %d message(s) after their publisher %s (%s): dropped",
            len(envelopes),
            "was told they were pending" if self._answered else "stopped waiting for them",
            why,
        )
        if self._lost is not None:
            self._lost(envelopes)
