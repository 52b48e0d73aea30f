"""The bus's receive path for work-queue frames: verified, held pending, acknowledged once handled.

A shared transport delivers each message twice: to every replica's fan-out subscribers and, as a
work-queue frame (``Frame(group=True, ack=...)``), to one replica's group subscribers. The
work-queue copy repeats the fan-out copy's id, and a claimed frame repeats a dead replica's, so
this path keeps a replay memory of its own. An id remembered there is forgotten again when a
frame is left unacknowledged (``nack``: its handler failed, or a full queue dropped it), so that
the transport's redelivery of it is taken. A second entry carrying an id whose first is still
being handled here (a publisher wrote it again after Redis lost its data) is left
unacknowledged too, not acknowledged as a replay: should the first fail, its entry may be gone
with the data, and this copy, claimed again once idle, is what remains of the message.

A frame past the replay window (every replica was down, or the lease holder's alert stage kept
failing, longer than ``EXESDB_REPLAY_WINDOW_MS``) is still taken when its timestamp was inside
the window of when the store took it (``Frame.written``): it waited there, it was not written
again later. A replayed message written anew carries a fresh ``written`` and is refused as
expired. The replay memory forgets an id a window after its timestamp, so the ids taken so are
kept apart, each for a window after it was taken: a second entry of the message (a publisher's
write retried after its answer was lost, both run) is refused as a replay however late both are
read, and counted. So is the id of a copy left pending beside its first: claimed again once
idle, it may come past the window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Final

from bridge.bus.decoding import decode_envelope
from bridge.bus.envelope import Envelope, Rejection, RejectReason
from bridge.bus.metrics import BusMetrics
from bridge.bus.subscription import Inbox
from bridge.bus.transport import Frame
from bridge.bus.verify import Verifier
from bridge.log_throttle import LogThrottle

__all__ = ["RecentlyVerified", "WorkQueueReceiver"]

_logger = logging.getLogger(__name__)

# The rejection of this path that loses a message the fan-out path may have accepted: an entry
# claimed (or read) after the replay window. Its other rejections the fan-out path judged, and
# counted, on the same bytes; a replayed work-queue entry was handled already.
_COUNTED_REJECTIONS: Final = frozenset({RejectReason.EXPIRED})
# Envelopes kept for the second copy of a work-queue message: the two reads (fan-out, group)
# run side by side, a few batches apart at most.
_RECENT_SIZE: Final = 8192
# Taking messages past the replay window is logged for the first and every this many more.
_WARN_EVERY: Final = 1000
# Ids of messages taken past the replay window kept at most (a backlog's copies of one message
# are read a few entries apart): the replay memory's default capacity.
_LATE_SIZE: Final = 100_000

Takers = Callable[[Envelope], Sequence[Inbox]]
"""The group subscribers here taking a verified work-queue envelope."""


class WorkQueueReceiver:
    """Receives work-queue frames for a bus and shares out their acknowledgements."""

    __slots__ = (
        "_handling",
        "_late",
        "_left",
        "_metrics",
        "_takers",
        "_told",
        "_verifier",
        "_waited_count",
    )

    def __init__(
        self,
        verifier: Verifier,
        metrics: BusMetrics,
        takers: Takers,
        *,
        clock: Callable[[], float] = time.monotonic,
        late_size: int = _LATE_SIZE,
    ) -> None:
        """``verifier`` is the bus's (a fresh replay memory is made from it); ``takers``
        names the group subscribers taking a verified envelope; ``clock`` dates the ids kept as
        taken past the replay window (``_TakenLate``), ``late_size`` of them at most."""
        self._verifier = verifier.with_fresh_replay(counted=False)
        self._late = _TakenLate(verifier.window_seconds, clock, late_size)
        self._metrics = metrics
        self._takers = takers
        # Ids of frames handed out here and neither acknowledged nor left unacknowledged yet
        # (how many frames carry each): bounded by the transport's frames in flight.
        self._handling: dict[str, int] = {}
        self._left: list[Envelope] = []  # left unacknowledged, their ids forgotten next turn
        self._waited_count = 0
        # Refusals warned of at most once a minute: a replica whose clock is off past the
        # replay window has every work-queue frame it signs refused here.
        self._told = LogThrottle()

    def receive(
        self, frames: Sequence[Frame], known: Sequence[Envelope | None] | None = None
    ) -> list[Envelope | Rejection]:
        """Verify the work-queue frames of one read and queue each verified one at every group
        subscriber taking it; a refused one, or one nobody here takes, is settled
        (acknowledged), or it would come back forever. ``known`` as for
        ``Verifier.verify_read``: a frame byte for byte the same as one verified a moment ago
        needs only its replay check. What became of each frame, in order.

        The ids are remembered at once, so a second entry carrying one (a claimed copy) is
        refused as a replay while the first is handled, and forgotten again when the first is
        left unacknowledged (``nack``): the redelivery of the entry is then taken. The ids of
        messages taken past the replay window, and of copies left pending beside their first,
        are kept apart for a window after (``_TakenLate``): a later entry of them is refused too,
        however late it is read.
        Each subscriber's share of the read is queued in one step once every frame was judged
        (``Inbox.offer_each``): one it cannot queue is left unacknowledged.
        """
        results = self._verifier.verify_read(frames, known)
        takers_of = self._takers
        # Each subscriber's share of the read, in order: its envelopes and their frames.
        shares: dict[Inbox, tuple[list[Envelope], list[Frame]]] = {}
        for index, (frame, result) in enumerate(zip(frames, results, strict=True)):
            if isinstance(result, Rejection):
                # The envelope refused, when at hand (else decoded again: a rare path).
                envelope = (known[index] if known is not None else None) or frame.decoded
                waited = (
                    self._waited(frame, envelope) if result.reason is RejectReason.EXPIRED else None
                )
                if waited is None:
                    self._refused(frame, result, envelope)
                    continue
                if self._late.holds(waited.id) or self._verifier.holds(waited):
                    results[index] = self._late_copy(frame, waited)
                    continue
                self._taken_late(waited)
                results[index] = result = waited
            elif self._late and self._late.holds(result.id):
                results[index] = self._late_copy(frame, result)
                continue
            takers = takers_of(result)
            if not takers:
                self.settle(frame)  # nobody's work here
                continue
            if frame.ack is not None:
                handling = _Handling(
                    self._handling, self._forget, result, frame.ack, frame.nack, len(takers)
                )
                frame = Frame(
                    frame.instance,
                    frame.body,
                    frame.signature,
                    frame.decoded,
                    True,
                    handling.ack,
                    handling.nack,
                    frame.written,
                )
            for inbox in takers:
                share = shares.get(inbox)
                if share is None:
                    shares[inbox] = ([result], [frame])
                else:
                    share[0].append(result)
                    share[1].append(frame)
        for inbox, (envelopes, taken) in shares.items():
            for index in inbox.offer_each(envelopes, taken):
                nack = taken[index].nack
                if nack is not None:
                    nack()  # dropped (full queue) or stopping: left for a redelivery
        return results

    def _waited(self, frame: Frame, decoded: Envelope | None) -> Envelope | None:
        """The envelope of a frame refused as expired that was fresh when the store took it
        (its signature verified before its time was judged), else None."""
        if frame.written is None:
            return None
        envelope = decoded if decoded is not None else decode_envelope(frame.body)
        if isinstance(envelope, Rejection):
            return None
        if abs(frame.written - envelope.unix_ts) > self._verifier.window_seconds:
            return None
        return envelope

    def _late_copy(self, frame: Frame, envelope: Envelope) -> Rejection:
        """Refuse a copy of a message taken past the replay window (or beside one), counted:
        the fan-out path never judged both copies inside the window."""
        rejection = Rejection(
            RejectReason.REPLAYED, f"message {envelope.id} was already accepted", "id"
        )
        self._refused(frame, rejection, envelope, counted=True)
        return rejection

    def _taken_late(self, envelope: Envelope) -> None:
        """Remember, count and tell a message taken past the replay window."""
        self._late.add(envelope.id)
        self._metrics.waited.inc()
        self._waited_count += 1
        if self._waited_count % _WARN_EVERY == 1:  # a backlog is thousands of them
            _logger.warning(
                "work-queue messages taken past the replay window (%d so far): they waited in "
                "the store for a replica; counted in exesdb_bus_waited_total",
                self._waited_count,
            )

    def _refused(
        self,
        frame: Frame,
        rejection: Rejection,
        envelope: Envelope | None = None,
        *,
        counted: bool = False,
    ) -> None:
        if rejection.reason is RejectReason.REPLAYED and (held := self._in_hand(frame, envelope)):
            _logger.debug("work-queue frame left pending: its first copy is being handled")
            # This copy, claimed again once idle, may come past the replay window: its id is
            # kept as taken late is (and forgotten too should the first copy fail).
            self._late.add(held)
            if frame.nack is not None:
                frame.nack()
            return
        if counted:
            self._metrics.count_rejection(rejection.reason)
            _logger.debug("work-queue frame refused: %s", rejection.detail)
        elif rejection.reason in _COUNTED_REJECTIONS:
            self._metrics.count_rejection(rejection.reason)
            if (untold := self._told.due(rejection.reason)) is not None:
                since = f" ({untold} more since the last line)" if untold else ""
                _logger.warning(
                    "work-queue frame refused: %s%s; logged at most once a minute",
                    rejection.detail,
                    since,
                )
        # A replayed frame was handled already (or is being handled); an expired one can never
        # be accepted.
        self.settle(frame)

    def _in_hand(self, frame: Frame, envelope: Envelope | None) -> str | None:
        """This frame's id when another frame carrying it is being handled here, else None."""
        if not self._handling:
            return None
        if envelope is None:
            decoded = decode_envelope(frame.body)
            if isinstance(decoded, Rejection):
                return None
            envelope = decoded
        return envelope.id if envelope.id in self._handling else None

    def settle(self, frame: Frame) -> None:
        """Acknowledge a frame nobody here will handle (refused, or nobody's work)."""
        if frame.ack is not None:
            frame.ack()

    def _forget(self, envelope: Envelope) -> None:
        """Forget a message left unacknowledged, so that its redelivery is taken: at the loop's
        next turn (before any read can bring the redelivery), with every other left meanwhile.
        A stop leaves thousands at once, and each forget looks through the replay memory's
        newest ids: one at a time, they held a loaded replica's stop for seconds."""
        self._late.discard(envelope.id)
        if not self._left:
            asyncio.get_running_loop().call_soon(self._forget_left)
        self._left.append(envelope)

    def _forget_left(self) -> None:
        left, self._left = self._left, []
        self._verifier.forget(left)


class _TakenLate:
    """The ids of messages taken past the replay window (or with a copy left pending), each for
    a window after it was put.

    Bounded: the oldest go first when full (only a backlog read fills it)."""

    __slots__ = ("_clock", "_ids", "_size", "_window")

    def __init__(self, window_seconds: float, clock: Callable[[], float], size: int) -> None:
        self._window = window_seconds
        self._clock = clock
        self._size = size
        # id -> when taken, in that order (an OrderedDict's oldest goes in O(1), a dict's in
        # a scan over the slots its earlier deletions left).
        self._ids: OrderedDict[str, float] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._ids)

    def holds(self, message_id: str) -> bool:
        """Whether a message carrying ``message_id`` was taken late within a window."""
        self._expire()
        return message_id in self._ids

    def add(self, message_id: str) -> None:
        """Remember ``message_id`` as taken now (one kept already moves to the newest end:
        updated in place, it would keep its old place, going first when full and holding
        back the expiry of every id behind it)."""
        self._expire()
        self._ids.pop(message_id, None)
        self._ids[message_id] = self._clock()
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def discard(self, message_id: str) -> None:
        """Forget ``message_id`` (its message was left unacknowledged after all)."""
        self._ids.pop(message_id, None)

    def _expire(self) -> None:
        ids = self._ids
        horizon = self._clock() - self._window
        while ids and ids[next(iter(ids))] < horizon:
            ids.popitem(last=False)


class RecentlyVerified:
    """Envelopes verified lately on the instances of the work queue, by signature.

    A shared transport delivers each work-queue message twice (to the fan-out and, at the lease
    holder, through the consumer group); the second copy, the same bytes under the same
    signature (compared), is not decoded again, and a work-queue copy's signature is not
    computed again either (equal bytes verify alike). The second copy takes the envelope, which
    is forgotten then: what is kept is the few the other read has not reached yet, not the last
    ``size`` (thousands of live young objects make every garbage collection a long pause).
    Bounded: the oldest are forgotten first, and nothing is kept while no work-queue frame comes
    (a replica not holding the lease).
    """

    __slots__ = ("_entries", "_idle", "_order", "_size", "instances")

    def __init__(self, instances: frozenset[str], size: int = _RECENT_SIZE) -> None:
        self.instances = instances
        self._size = size
        self._entries: dict[str, tuple[bytes, Envelope]] = {}
        # Signatures in the order put (some taken since): the oldest go first when full.
        self._order: deque[str] = deque()
        # Envelopes kept since the last work-queue frame came.
        self._idle = 0

    @property
    def idle(self) -> bool:
        """True when nothing is kept and nothing will be until a work-queue frame comes (this
        replica does not hold the lease): ``take`` finds nothing and ``put`` keeps nothing."""
        return self._idle > self._size and not self._entries

    def take(self, frame: Frame) -> Envelope | None:
        """The envelope verified lately from exactly ``frame``'s bytes and signature, if any,
        forgotten as it is taken (no third copy is expected; a claimed one is verified anew)."""
        if frame.group:
            self._idle = 0
        signature = frame.signature
        if signature is None or frame.instance not in self.instances:
            return None
        hit = self._entries.pop(signature, None)
        if hit is None:
            return None
        if hit[0] != frame.body:
            self._entries[signature] = hit  # other bytes under its signature: not its copy
            return None
        return hit[1]

    def put(self, frame: Frame, envelope: Envelope) -> None:
        """Remember ``envelope`` as verified from ``frame``."""
        signature = frame.signature
        if signature is None or frame.instance not in self.instances:
            return
        self._idle += 1
        if self._idle > self._size:
            if self._entries:
                self._entries.clear()
                self._order.clear()
            return
        if signature not in self._entries:
            self._order.append(signature)
            if len(self._order) > self._size:
                self._entries.pop(self._order.popleft(), None)
        self._entries[signature] = (frame.body, envelope)


class _Handling:
    """The ack and nack of a work-queue frame handed to ``takers`` subscribers: acknowledged
    once all of them have handled it; left unacknowledged (and its id forgotten, so that the
    redelivery is taken) as soon as one could not. Either ends its handling here, once."""

    __slots__ = ("_ack", "_ended", "_envelope", "_forget", "_handling", "_left", "_nack")

    def __init__(
        self,
        handling: dict[str, int],
        forget: Callable[[Envelope], None],
        envelope: Envelope,
        ack: Callable[[], None],
        nack: Callable[[], None] | None,
        takers: int,
    ) -> None:
        self._handling = handling
        self._forget = forget
        self._envelope = envelope
        self._ack = ack
        self._nack = nack
        self._left = takers
        self._ended = False
        handling[envelope.id] = handling.get(envelope.id, 0) + 1

    def ack(self) -> None:
        """One taker handled the frame: acknowledged once the last one has."""
        self._left -= 1
        if self._left == 0:
            self._end()
            self._ack()

    def nack(self) -> None:
        """One taker could not handle the frame: left pending for a redelivery."""
        self._end()
        self._forget(self._envelope)
        if self._nack is not None:
            self._nack()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        handling, message_id = self._handling, self._envelope.id
        left = handling.pop(message_id, 1) - 1
        if left > 0:
            handling[message_id] = left
