"""The alert stage's housekeeping: what is due escalated, expired and renotified, gauges, pruning.

A pass runs every second (every quarter of ``EXESDB_ESCALATION_AFTER_MS`` when that is
shorter), and at once when woken (a change of alert states, a delivery's outcome; not what a
pass itself expired or queued again: dead letters past a pass's limit wait for the next tick).
Escalation,
expiry and renotification run only while this replica holds the work queue: the others' alert
states are stale once the lease moved on. A pass that fails is counted (``on_error``) and logged
once for a fault that repeats, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from bridge.errors import TransportError
from bridge.sinks.alerts.delivery import Sleep
from bridge.sinks.alerts.escalation import Escalator
from bridge.sinks.alerts.metrics import AlertMetrics
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.pending import PendingConditions
from bridge.sinks.alerts.states import AlertStates
from bridge.sinks.alerts.thread import DbThread
from bridge.tasks import cancel_and_wait

__all__ = ["Housekeeping"]

_logger = logging.getLogger(__name__)

_HOUSEKEEPING_SECONDS: Final = 1.0
_PRUNE_EVERY_SECONDS: Final = 3600.0


@dataclasses.dataclass
class _Outage:
    """Escalation and expiry waiting: since when (``time.monotonic``), and how many passes
    failed since."""

    since: float
    failed: int = 0


class Housekeeping:
    """The housekeeping loop of a started alert sink, and one pass of it (``housekeep``).

    ``labels`` names each receiver (by outbox key) in the log; ``changed`` wakes what sends
    notifications; ``wake`` is the event that starts a pass at once; ``check_outbox`` is
    called at each pass's start (``DisplacedOutbox.check``: why the outbox file is no longer at
    its path, None while it is).
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        db: DbThread,
        states: AlertStates,
        escalator: Escalator,
        pending: PendingConditions,
        metrics: AlertMetrics,
        labels: Mapping[str, str],
        holds_work_queue: Callable[[], bool],
        changed: Callable[[], None],
        on_error: Callable[[], None],
        renotify_after: float,
        dead_letter_ttl: float,
        wake: asyncio.Event,
        clock: Callable[[], float],
        sleep: Sleep,
        check_outbox: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self._outbox = outbox
        self._check_outbox = check_outbox
        self._db = db
        self._states = states
        self._escalator = escalator
        self._pending = pending
        self._metrics = metrics
        self._labels = labels
        self._holds_work_queue = holds_work_queue
        self._changed = changed
        self._errors = on_error
        self._renotify_after = renotify_after
        self._dead_letter_ttl = dead_letter_ttl
        self._house_wake = wake
        self._clock = clock
        self._sleep = sleep
        self._house_task: asyncio.Task[None] | None = None
        # The first housekeeping prunes: a bridge restarted within the hour must prune too.
        self._last_prune = float("-inf")
        self._closed = False
        # Escalation and expiry waiting (Redis unreachable, the lease gone): a pass each second
        # finds it again, its cause worded anew (refused, then timing out), and it is said once.
        self._outage: _Outage | None = None

    def start(self) -> None:
        """Start the loop."""
        self._house_task = asyncio.get_running_loop().create_task(
            self._housekeeping(), name="alerts-housekeeping"
        )

    def stop(self) -> None:
        """Begin no more passes (the sink's stop has begun)."""
        self._closed = True

    async def aclose(self) -> None:
        """Stop the loop (a pass under way is cancelled); idempotent."""
        self.stop()
        task, self._house_task = self._house_task, None
        if task is not None:
            await cancel_and_wait(task)

    async def housekeep(self) -> None:
        """One housekeeping pass: escalate, auto-resolve and notify again what is due (only while
        holding the work queue: the others' alert states are stale once the lease moved on),
        refresh the gauges, and prune old rows (dead letters past
        EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS too) at the first pass and then once an hour."""
        displaced = None if self._check_outbox is None else await self._check_outbox()
        # After a restart: what Redis took before a crash and the outbox did not. Not while the
        # outbox file is gone: each try would store the same plan in it and be refused again,
        # and the pass end there, the gauges below frozen (the work queue is left meanwhile).
        if displaced is None:
            await self._states.catch_up()
        if self._holds_work_queue():
            try:
                await self._escalator.tick()
                if await self._states.expire(self._clock()):
                    # Before re-notifying, which may fail: the resolutions stored go out at once.
                    self._tell()
                if await self._renotify(self._clock()):
                    self._tell()
            except TransportError as exc:
                # Redis unreachable, or the lease just went to another replica: its turn.
                if self._outage is None:
                    self._outage = _Outage(time.monotonic())
                    _logger.warning("alerts: escalation and expiry wait: %s", exc)
                self._outage.failed += 1
            else:
                if (outage := self._outage) is not None:
                    self._outage = None
                    _logger.info(
                        "alerts: escalation and expiry go on again after %d failed pass(es) in"
                        " %.1fs",
                        outage.failed,
                        time.monotonic() - outage.since,
                    )
        else:
            self._outage = None  # the holder's to do; a wait when held again is said anew
        await self.refresh_gauges()
        now = self._clock()
        self._pending.forget_older_than(now)
        if now - self._last_prune >= _PRUNE_EVERY_SECONDS:
            self._last_prune = now
            await self._db.call(self._outbox.retention.prune, now)
            keep = self._dead_letter_ttl
            forgotten = await self._db.call(self._outbox.retention.forget_dead_letters, now, keep)
            if forgotten:
                _logger.warning(
                    "alerts: deleted %d dead-lettered delivery(ies) older than"
                    " EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS (%gh); their alerts stay in /v1/alerts",
                    forgotten,
                    keep / 3600,
                )

    def _tell(self) -> None:
        """Wake what sends notifications (``changed``) for what this pass stored, but not this
        loop: that needs no pass more at once, and the dead letters a pass left (past its
        limit) wait for the next tick, rather than passes running back to back."""
        woken = self._house_wake.is_set()  # by another since this pass began: kept
        self._changed()
        if not woken:
            self._house_wake.clear()

    async def _renotify(self, now: float) -> int:
        """Queue again the alerts, open or of a resolve, whose latest notification to a
        receiver died (see ``DeadLetters.renotify``); how many, each receiver's logged."""
        after = self._renotify_after
        queued = await self._db.call(self._outbox.dead_letters.renotify, now, after)
        for key, count in queued.items():
            self._metrics.renotified(count)
            _logger.info(
                "alerts: %d alert(s) whose notification to %s was dead-lettered queued"
                " for it again, as they stand",
                count,
                self._labels[key],
            )
        return sum(queued.values())

    async def refresh_gauges(self) -> None:
        """Read the outbox depth (with how many dead letters are superseded: one index lookup
        per alert of each, a few ms for 2 000) and the open alerts into the gauges
        (``AlertMetrics``)."""
        depth = await self._db.call(self._outbox.queue.depth)
        superseded = await self._db.call(self._outbox.dead_letters.superseded_count)
        # Two reads: a dead letter retried between them is counted in neither, not below 0.
        self._metrics.depth = dataclasses.replace(depth, superseded=min(superseded, depth.dead))
        # The mark before the count: an alert fired meanwhile is taken for one fired after it.
        mark = self._outbox.alerts.count_mark
        self._metrics.active = await self._db.call(self._outbox.alerts.active_counts)
        self._metrics.active_mark = mark

    async def _housekeeping(self) -> None:
        tick = min(_HOUSEKEEPING_SECONDS, self._escalator.after_seconds / 4)
        failed = 0  # passes failed in a row
        fault = ""  # what the last one logged failed with
        while not self._closed:
            self._house_wake.clear()
            try:
                await self.housekeep()
            except Exception as exc:
                self._errors()
                failed += 1
                # A fault that repeats at every pass (the outbox on a full disk) is logged once,
                # not once a second: each is counted in exesdb_sink_errors_total all the same.
                if failed == 1 or f"{type(exc).__name__}: {exc}" != fault:
                    fault = f"{type(exc).__name__}: {exc}"
                    _logger.exception("alert housekeeping failed")
            else:
                if failed:
                    _logger.info("alert housekeeping works again after %d failed pass(es)", failed)
                failed = 0
            await self._sleep(tick, self._house_wake)
