"""The bus's receive path for work-queue frames: verified, held pending, acknowledged once handled.

A shared transport delivers each message twice: to every replica's fan-out subscribers and, as a
work-queue frame (``Frame(group=True, ack=...)``), to one replica's group subscribers. The
work-queue copy repeats the fan-out copy's id, and a claimed frame repeats a dead replica's, so
this path keeps a replay memory of its own. An id is remembered there only once every
subscriber taking it returned: a frame whose handler failed, or that a full queue dropped, is
left unacknowledged (``nack``) and taken again when the transport redelivers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Final

from bridge.bus.envelope import Envelope, Rejection, RejectReason
from bridge.bus.metrics import BusMetrics
from bridge.bus.subscription import Inbox
from bridge.bus.transport import Frame
from bridge.bus.verify import Verifier

__all__ = ["WorkQueueReceiver"]

_logger = logging.getLogger(__name__)

# The rejection of this path that loses a message the fan-out path may have accepted: an entry
# claimed (or read) after the replay window. Its other rejections the fan-out path judged, and
# counted, on the same bytes; a replayed work-queue entry was handled already.
_COUNTED_REJECTIONS: Final = frozenset({RejectReason.EXPIRED})

Dispatch = Callable[[Envelope, Frame], None]


class WorkQueueReceiver:
    """Receives work-queue frames for a bus and shares out their acknowledgements."""

    __slots__ = ("_acks", "_dispatch", "_metrics", "_pending", "_verifier")

    def __init__(self, verifier: Verifier, metrics: BusMetrics, dispatch: Dispatch) -> None:
        """``verifier`` is the bus's (a fresh replay memory is made from it); ``dispatch``
        hands a verified envelope to the subscribers taking it."""
        self._verifier = verifier.with_fresh_replay(counted=False)
        self._metrics = metrics
        self._dispatch = dispatch
        # Ids being handled here: a second entry carrying one of them waits for a redelivery.
        self._pending: set[str] = set()
        self._acks: set[asyncio.Future[None]] = set()

    def receive(self, frame: Frame) -> None:
        """Verify a work-queue frame and dispatch it; a refused one is settled (acknowledged),
        or it would come back forever."""
        if frame.ack is None:
            # Nothing to acknowledge: the id is remembered at once.
            result = self._verifier.verify_frame(frame.body, frame.signature, frame.decoded)
            if not isinstance(result, Rejection):
                self._dispatch(result, frame)
            return
        result = self._verifier.verify_frame(
            frame.body, frame.signature, frame.decoded, remember=False
        )
        if isinstance(result, Rejection):
            if result.reason in _COUNTED_REJECTIONS:
                self._metrics.count_rejection(result.reason)
                _logger.warning("work-queue frame refused: %s", result.detail)
            # A replayed frame was handled already; an expired one can never be accepted.
            self.settle(frame)
            return
        message_id = result.id
        if message_id in self._pending:
            # Another entry carrying the same message is being handled here: this one is left
            # pending (never acknowledged before the message was handled); claimed again later,
            # it is refused as a replay then, or taken if the first attempt failed.
            if frame.nack is not None:
                frame.nack()
            return
        self._pending.add(message_id)
        ack, nack = frame.ack, frame.nack
        pending = self._pending
        verifier = self._verifier
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

    def hand_out(self, takers: Sequence[Inbox], envelope: Envelope, frame: Frame) -> None:
        """Queue a frame that needs acknowledging at every subscriber taking it: acknowledged
        once all of them have handled it, at once when none takes it, left pending for a
        redelivery when one cannot queue it."""
        if not takers:
            self.settle(frame)
            return
        if len(takers) > 1 and frame.ack is not None:
            frame = replace(frame, ack=_after_all(len(takers), frame.ack))
        for inbox in takers:
            if not inbox.offer(envelope, frame) and frame.nack is not None:
                frame.nack()  # dropped (full queue) or stopping: left for a redelivery

    def settle(self, frame: Frame) -> None:
        """Acknowledge a frame nobody here will handle (refused, or nobody's work)."""
        if frame.ack is None:
            return
        task: asyncio.Future[None] = asyncio.ensure_future(frame.ack())
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)


def _after_all(count: int, ack: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """An ack that acknowledges once all ``count`` subscribers taking a frame have called it."""
    left = count

    async def countdown() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            await ack()

    return countdown
