"""The open-alert index: the open alerts kept in Redis, where the next work-queue holder reads them.

On the Redis bus the lease holder alone changes alert states. Its outbox stays the local
durable queue of deliveries; the open alerts (alert id → the record a notification, the
resolved one included, is built from) are kept in Redis too (``SharedState``), so that whoever
holds the lease next, after a graceful stop or a crash of the last holder, takes them up and
resolves them. Every change is worked out first (a ``Plan``), then made in Redis, fenced by the
lease and together with a note of the plan for this replica, then stored in the outbox, and the
note dropped. A crash (SIGKILL) at any point:

- before Redis took the change: nothing of it happened anywhere; its work-queue entries are
  still pending, and the next holder handles them (and notifies, once);
- after Redis took it, before the outbox stored it: the next holder takes the note over from
  Redis (``SharedState.adopt``) when it takes the lease and stores it before it takes up the
  open alerts, so the notifications go out once, from it, whether or not this replica ever
  comes back; this replica, started again before another took the lease, finds its note and
  stores it itself (a note whose alerts changed since is stored without them: theirs stand);
- after the outbox stored it, before the note was dropped: storing it again changes nothing
  (the outbox remembers the plans it stored), for this replica started again before another
  took the lease; the next holder, which cannot tell, takes the note over and notifies, and
  Redis keeps a copy of the note for this replica (``SharedState.taken_over``, a week): back,
  before it sends anything (its first catch-up, which the first check of a delivery waits
  for), this replica leaves that change's notifications out of its outbox as stale
  (``AlertStore.withdraw``), and forgets it stored the plan, so that should the note come back
  to it (the next holder killed before storing it) it stores and notifies it anew.

The work-queue entries a holder handled but had not acknowledged when it was killed come
again to the next one, one claim at a time: a node's down before its return, which would fire
anew an alert resolved already. So the date of each alert's last notified change (by its
events, which the open records in Redis do not carry) is kept in Redis too, made with the change
(``DATES``, a day), read by the next holder as it takes the lease up: an event sent before it
undoes nothing. So is the date of a resolve of an alert unknown here (a node's return taken
before its down, ``Plan.resolves``), alone when the change has nothing else: the firing sent
before it may come long after (a frame that waited in a replica's spool while Redis was out of
its reach, signed again as it is written), or to the next holder. Those are marked there
(``_RESOLVE_MARK``) and kept up to ``RESOLVES_REMEMBERED``, the oldest dropped first beyond, as
in process: a flood of resolves of distinct unknown alerts would otherwise grow Redis for a day.

Dropping a note tells whether it was still there (``SharedState.forget``); one taken over
meanwhile (its copy is read after the drop) is left out alike, so a replica that catches up
while the next holder takes its notes over sends each change once too. A note that comes back
to its replica drops its copy as it is dropped.

Redis holding none of the holder's open alerts while its lease stays (their hash deleted or
evicted) is given them again before the next change, which would make the hash anew with its own
records alone (the next holder would take that for all there are).

A change that fails between the two without a crash (the outbox failing, Redis's answer lost)
is stored from its note before the next change is worked out, so the retried batch finds it
made and notifies nothing twice.

A replica's outbox may still hold notifications of alerts another holder has changed since (it
was killed, or lost the lease, with deliveries waiting for a receiver): sent now, they would
reach the receiver after the newer ones. So a notification of an alert whose state in Redis
differs from what this outbox last stored of it (``stale``: its episode, severity, level, or
open or not) is left out of its delivery before it is sent (``DeliveryQueue.withhold``): checked
before each attempt while this replica does not hold the lease, and for every pending delivery
as it takes the lease up, before its alerts are made those of Redis. While Redis cannot tell
(unreachable, or the Redis user lacks ``+hmget``), a delivery goes unchecked, as it was made: a
notification held back is worse than the rare stale one.

A holder that lost the lease without knowing (slow, cut off) can no longer change Redis: its
change is refused, nothing is stored, and its entries are left for the next holder. So is one
that gave the lease up (its outbox hung) until it holds it again, taken up (``_fence``). One that
lost it between Redis and its outbox (stalled there past the lease), or that stored a change and
could not drop its note (Redis unreachable at that moment) before another replica took the lease,
leaves that change's notifications out as it finds the note gone, or at its next catch-up; those
it sent before (it holds the lease as it sees it, and sends unchecked) were sent twice, by itself
and by the replica that took its note over: at least once, never lost. Redis that lost the copy
with its data sends them twice alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, ParamSpec

from bridge.bus import SharedState, StateChange
from bridge.errors import TransportError
from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED, AlertStore, escalations
from bridge.sinks.alerts.queue import DeliveryQueue
from bridge.sinks.alerts.records import (
    AlertRecord,
    AlertState,
    Applied,
    Escalated,
    HistoryEntry,
    HistoryEvent,
)
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.transitions import Effect, Plan, Transition, notified_state

__all__ = ["DATES", "NAME", "AlertIndex", "decode", "decode_plan", "encode", "encode_plan"]

_logger = logging.getLogger(__name__)

NAME: Final = "alerts"
"""What the open alerts are kept under."""
STALE_REASON: Final = (
    "stale: another replica notified a newer state of these alerts since (it held the"
    " work-queue lease while this one was down or had lost it)"
)
"""The last error of a delivery ``withhold`` made of stale notifications."""
TAKEN_OVER_REASON: Final = (
    "stale: another replica took over the change of these alerts from this one's note in Redis"
    " and notified it (this one was killed, or cut off, before it dropped the note)"
)
"""The last error of a delivery of notifications left out because another replica notifies
their change (``AlertStore.withdraw``)."""
DATES: Final = "alerts:dates"
"""What the dates of the alerts' last notified changes (and resolves of alerts unknown) are kept
under."""
# How long the date of an alert's last notified change is kept in Redis for the holders after
# this one: a work-queue entry handled before it (a node's down, handled with its return) comes
# again to the next holder only while it waits unacknowledged, some seconds past a holder's
# crash, unless every replica is down longer. The holder drops the older dates as it notifies
# changes, at most once an hour.
_DATES_KEPT_SECONDS: Final = 86_400.0
_PRUNE_SECONDS: Final = 3_600.0
# What marks the date of a resolve of an unknown alert in ``DATES`` (capped, unlike the dates of
# notified changes): a leading plus sign, which ``float()`` reads as the versions before it did.
_RESOLVE_MARK: Final = b"+"
# How many entries of the heap of their dates may no longer stand before it is made anew, beyond
# as many as those that do: a few, so that a handful of resolves is not made anew at each change.
_OLDEST_SLACK: Final = 64
# Why a change is refused: another replica holds the lease (or this one has yet to take it up).
_NOT_HOLDING: Final = (
    "this replica no longer holds the work-queue lease: its alert changes are left to the holder"
)

P = ParamSpec("P")


def encode(record: AlertRecord) -> bytes:
    """One record as Redis keeps it: JSON of its fields."""
    return json.dumps(_fields(record)).encode()


def decode(raw: bytes) -> AlertRecord:
    """The record ``encode`` made; ValueError, TypeError or KeyError when it is malformed."""
    return _record(json.loads(raw))


def encode_plan(plan: Plan) -> bytes:
    """A plan as a note: JSON of its id, time, refusals and steps (effect, record and history
    entry)."""
    steps = [
        [step.effect.value, _fields(step.record), _entry_fields(step.entry)]
        for step in plan.steps
        if step.record
    ]
    return json.dumps(
        {"id": plan.id, "now": plan.now, "refused": plan.refused, "steps": steps}
    ).encode()


def decode_plan(raw: bytes) -> Plan:
    """The plan ``encode_plan`` made; ValueError, TypeError or KeyError when it is malformed."""
    data = json.loads(raw)
    steps = tuple(
        Transition(_record(fields), Effect(effect), _entry(entry))
        for effect, fields, entry in data["steps"]
    )
    return Plan(str(data["id"]), float(data["now"]), steps, int(data["refused"]))


class AlertIndex:
    """The alert stage's side of the index: every change of alert states goes through here."""

    def __init__(
        self,
        state: SharedState,
        *,
        alerts: AlertStore,
        queue: DeliveryQueue,
        db: DbThread,
        clock: Callable[[], float],
        limit: int,
        holding: Callable[[], bool] = lambda: True,
        notify: Callable[[], None] = lambda: None,
        escalated: Callable[[list[Escalated]], None] = lambda steps: None,
        withheld: Callable[[int], None] = lambda count: None,
    ) -> None:
        """``limit``: the open alerts kept at most (the open-alert cap); ``holding``: whether
        this replica holds the work-queue lease, taken up (see ``_fence``); ``notify`` is called
        when catching up stored notifications, ``escalated`` with the escalation steps among
        them (announced by nobody yet: the crash came before), ``withheld`` with how many stale
        notifications taking the lease up left out of pending deliveries, or a catch-up left out
        because another replica took over the notes of their changes."""
        self._state = state
        self._alerts = alerts
        self._queue = queue
        self._withheld = withheld
        self._db = db
        self._clock = clock
        self._limit = limit
        self._holding = holding
        self._notify = notify
        self._escalated = escalated
        # One change at a time, from working it out to storing it: none reads what another
        # has made in Redis but not yet stored here.
        self._lock = asyncio.Lock()
        self._untold = False  # stale() could not ask Redis last time (logged once)
        self.dates: dict[str, float] = {}
        """The date of each alert's last notified change (fired, resolved, its severity
        changed; or a resolve of it resolved already, or unknown here) kept in Redis
        (``DATES``: by this replica, and by the holders before it as it took the lease up), by
        its events (``AlertRecord.event_at``, which the open records in Redis do not carry): an
        event sent before that, delivered again to this holder (the last one killed before it
        acknowledged its entries), or late, undoes none of them (``superseded``), though this
        replica may have never heard of the alert, nor be delivered the events of those changes
        again."""
        # Those of ``dates`` that are of resolves of alerts unknown (``_RESOLVE_MARK``): at most
        # RESOLVES_REMEMBERED; and their (date, alert id), oldest first (a heap), so that a
        # change at the cap finds the oldest without going through them all. An entry no longer
        # in ``_unknown`` as it is (its alert's date moved, or dropped) stays until it comes to
        # the top, or until such entries outnumber the others (``_dates_kept``).
        self._unknown: dict[str, float] = {}
        self._oldest: list[tuple[float, str]] = []
        self._pruned_at = -float("inf")  # when the dates kept too long were last dropped
        self.caught_up = False
        """True while no note of this replica waits to be stored or dropped: its notes from
        before a restart were, and no change since failed between Redis and the outbox or left
        its note there."""

    async def change(
        self, planner: Callable[P, Plan], /, *args: P.args, **kwargs: P.kwargs
    ) -> Applied:
        """Work a plan out (``planner`` runs on the database thread), make it in Redis, then in
        the outbox; what the outbox changed.

        Raises ``TransportError`` when Redis cannot take it or this replica no longer holds the
        work-queue lease; then nothing was stored (a batch of work-queue entries is left
        pending for the next holder). A change that failed after Redis may have taken it is
        stored from its note before the next change is worked out, so a retry finds it made.
        """
        async with self._lock:
            if not self.caught_up:
                await self._catch_up()
            await self._put_back()
            plan = await self._db.call(planner, *args, **kwargs)
            # The resolves of unknown alerts are kept with the dates, not in this replica's
            # memory (``AlertStore.plan``): as long as the dates, and for the next holder.
            resolves = self._resolves(plan)
            plan = dataclasses.replace(plan, resolves=())
            if not plan.steps:
                forgotten = 0
                if resolves:  # one write of the dates alone (a node's return: rare)
                    forgotten = await self._keep_dates(resolves, plan.now)
                return Applied([], plan.refused, plan.stale, forgotten)
            put: dict[str, bytes] = {}
            gone: set[str] = set()
            for record in plan.records:
                if record.open:
                    put[record.alert_id] = encode(record)
                else:
                    gone.add(record.alert_id)
            # A resolve of an alert resolved already (SEEN) moves its date as well; a change
            # of an alert after a resolve of it unknown, in the same plan, is newer.
            notified = {
                step.record.alert_id: step.record.event_at
                for step in plan.steps
                if step.record is not None
                and step.record.event_at is not None
                and (
                    step.effect is Effect.NOTIFY
                    or (step.effect is Effect.SEEN and not step.record.open)
                )
            }
            resolves = {a: at for a, at in resolves.items() if a not in notified}
            # The dates go with the change, in the same step: no round trip of their own.
            along: dict[str, StateChange] = {}
            forgotten = 0
            if notified or resolves:
                along[DATES], forgotten = self._dates_change(notified, resolves, plan.now)
            change = StateChange(
                put=put, remove=sorted(gone), note=(plan.id, encode_plan(plan)), along=along
            )
            # From here until the outbox stored the plan, Redis may hold it (an answer lost on
            # the way, the outbox failing): its note is then what the next change stores first.
            self.caught_up = False
            self._fence()
            if not await self._state.commit(NAME, change):
                raise TransportError(_NOT_HOLDING)
            if along:
                self._dates_kept(along[DATES], plan.now)
            applied = dataclasses.replace(
                await self._db.call(self._alerts.commit, plan), forgotten=forgotten
            )
            self.caught_up = True
            try:
                if await self._state.forget(NAME, [plan.id]):
                    # Taken over meanwhile (this replica stalled past the lease): the holder
                    # that took it notifies it.
                    await self._withdraw_taken_over()
            except TransportError:
                # Dropped at the next catch-up (housekeeping's, or the next change's), soon:
                # a note left there would be taken over and notified again by the next holder.
                self.caught_up = False
                _logger.debug("alerts: a note stays in Redis until a catch-up", exc_info=True)
            except BaseException:
                # The outbox failing to leave a note taken over out (its disk full): the next
                # catch-up does, before a delivery is checked or another change made.
                self.caught_up = False
                raise
            return applied

    def _resolves(self, plan: Plan) -> dict[str, float]:
        """The resolves of alerts unknown here ``plan`` carries (``Plan.resolves``) to keep with
        the dates: those newer than the date kept of their alert (under the lock)."""
        return {
            alert_id: at
            for alert_id, at, _ in plan.resolves
            if alert_id not in self.dates or at > self.dates[alert_id]
        }

    async def _keep_dates(self, resolves: dict[str, float], now: float) -> int:
        """Keep the dates of the resolves of unknown alerts ``resolves`` in Redis alone (a change
        of no alert), fenced as a change is; how many resolves the cap forgot
        (``_dates_change``). Under the lock. Raises ``TransportError`` when Redis cannot take
        them or this replica no longer holds the lease."""
        change, forgotten = self._dates_change({}, resolves, now)
        self._fence()
        if not await self._state.commit(DATES, change):
            raise TransportError(_NOT_HOLDING)
        self._dates_kept(change, now)
        return forgotten

    def _dates_change(
        self, notified: dict[str, float], resolves: dict[str, float], now: float
    ) -> tuple[StateChange, int]:
        """The change that keeps in Redis the dates of the alerts' notified changes
        ``notified`` and of the resolves of unknown alerts ``resolves`` (``self.dates``), for
        the holders after this one, and how many of those resolves it forgets. With them, at
        most once an hour, it drops the dates kept longer than ``_DATES_KEPT_SECONDS``; and of
        the resolves of unknown alerts it keeps ``RESOLVES_REMEMBERED`` at most, as in process,
        forgetting the oldest (by date) beyond: a flood of them, each of another alert, would
        otherwise grow Redis for a day. Under the lock."""
        old: set[str] = set()
        if now >= self._pruned_at + _PRUNE_SECONDS:
            horizon = now - _DATES_KEPT_SECONDS
            old = {alert_id for alert_id, at in self.dates.items() if at < horizon}
        forgotten: set[str] = set()
        if resolves and len(self._unknown) + len(resolves) > RESOLVES_REMEMBERED:
            # Counted, not copied: a change at the cap (one per node's return in a flood) costs
            # what it brings, not the 10 000 kept.
            replaced = old | notified.keys() | resolves.keys()
            staying = len(self._unknown) - sum(1 for a in replaced if a in self._unknown)
            excess = staying + len(resolves) - RESOLVES_REMEMBERED
            if excess > 0:
                forgotten = self._oldest_of(excess, replaced, resolves)
        put = {alert_id: repr(at).encode() for alert_id, at in notified.items()}
        for alert_id, at in resolves.items():
            if alert_id not in forgotten:
                put[alert_id] = _RESOLVE_MARK + repr(at).encode()
        # A resolve forgotten as it comes is not written; the date kept of its alert stays.
        remove = (old | (forgotten & self._unknown.keys())) - put.keys()
        return StateChange(put=put, remove=sorted(remove)), len(forgotten)

    def _oldest_of(self, count: int, replaced: set[str], resolves: dict[str, float]) -> set[str]:
        """The ``count`` oldest (by date) of the resolves of unknown alerts kept but those
        ``replaced`` and of the new ``resolves``: ``_oldest`` popped that far and given back
        what it still holds (the entries that no longer stand dropped), so that it costs what
        it takes (amortised), and changes nothing but those dropped: Redis may refuse the
        change."""
        unknown, heap = self._unknown, self._oldest
        coming = sorted((at, alert_id) for alert_id, at in resolves.items())
        taken = 0  # of ``coming``
        popped: list[tuple[float, str]] = []
        oldest: set[str] = set()
        while len(oldest) < count:
            while heap and (
                unknown.get(heap[0][1]) != heap[0][0]
                or heap[0][1] in replaced
                or heap[0][1] in oldest  # the same entry twice (dropped, then kept again)
            ):
                entry = heapq.heappop(heap)
                if unknown.get(entry[1]) == entry[0]:
                    popped.append(entry)  # it stands: given back
            if taken < len(coming) and (not heap or coming[taken] <= heap[0]):
                oldest.add(coming[taken][1])  # forgotten as it comes
                taken += 1
            elif heap:
                entry = heapq.heappop(heap)
                popped.append(entry)
                oldest.add(entry[1])
            else:
                break  # fewer than ``count`` (not so when called as ``_dates_change`` does)
        for entry in popped:
            heapq.heappush(heap, entry)
        return oldest

    def _dates_kept(self, change: StateChange, now: float) -> None:
        """``self.dates`` as Redis keeps them once it took ``change`` (``_dates_change``'s)."""
        if now >= self._pruned_at + _PRUNE_SECONDS:
            self._pruned_at = now
        unknown = self._unknown
        for alert_id in change.remove:
            del self.dates[alert_id]
            unknown.pop(alert_id, None)
        for alert_id, value in change.put.items():
            at = self.dates[alert_id] = float(value)
            if not value.startswith(_RESOLVE_MARK):
                unknown.pop(alert_id, None)
            elif unknown.get(alert_id) != at:
                unknown[alert_id] = at
                heapq.heappush(self._oldest, (at, alert_id))
        if len(self._oldest) > 2 * len(unknown) + _OLDEST_SLACK:
            # Most of its entries no longer stand: made anew, once per as many changes.
            self._oldest = _heap_of(unknown)

    async def catch_up(self) -> int:
        """Store this replica's notes left by a crash or a failed change (a change Redis took
        and the outbox did not), each once; returns how many plans were stored.

        Raises ``TransportError`` when Redis cannot be read.
        """
        async with self._lock:
            return await self._catch_up()

    async def _catch_up(self, *, taken_over: bool = False) -> int:
        """``catch_up`` under the lock; ``taken_over``: the notes include other replicas'
        (taken over with the lease), whose receivers count as told of the alerts they resolve
        (``AlertStore.commit``)."""
        notes = await self._state.notes(NAME)
        stored = 0
        raised: list[Escalated] = []
        if notes:
            kept = _decoded(await self._state.load(NAME))
            for plan in sorted(_plans(notes), key=lambda p: p.now):
                current = _still_current(plan, kept)
                applied = await self._db.call(self._alerts.commit, current, tell=taken_over)
                if applied.changed:
                    stored += 1
                    raised += escalations(current, applied)
            await self._state.forget(NAME, list(notes))
        # After the drop: a note taken over before it (even one stored just now) is there.
        await self._withdraw_taken_over()
        self.caught_up = True
        if stored:
            _logger.info("alerts: stored %d change(s) Redis took and the outbox had not", stored)
            self._notify()
        if raised:
            self._escalated(raised)
        return stored

    async def _put_back(self) -> None:
        """Give Redis this replica's open alerts again when it holds none of them (their hash
        deleted or evicted, Redis emptied while the lease stayed), before a change makes the
        hash anew with its own records alone: the next holder would take that for all there
        are, and close the others unnotified. Under the lock, caught up."""
        if not self._alerts.maybe_active_ids or await self._state.holds(NAME):
            return  # nothing open here (nothing to lose), or Redis holds them
        mine = await self._db.call(self._open_alerts)
        if not mine:
            return
        put = {record.alert_id: encode(record) for record in mine}
        # A restore: made only while the records are still gone and the lease is ours.
        self._fence()
        if not await self._state.commit(NAME, StateChange(put=put, restore=True)):
            raise TransportError(_NOT_HOLDING)
        _logger.warning(
            "alerts: Redis held none of this replica's %d open alert(s) (their hash deleted or"
            " evicted, or Redis emptied): put them back, so that the next work-queue holder"
            " takes them up",
            len(put),
        )

    def _fence(self) -> None:
        """Raise ``TransportError`` unless this replica holds the lease as taken up
        (``holding``), before a change goes to Redis. Redis's own fence lets one through from a
        replica that took the lease back and has not taken it up yet: worked out on an outbox
        the changes of the holder between have passed by (a change that waited out a hung
        outbox call, the lease given up meanwhile), it would undo them."""
        if not self._holding():
            raise TransportError(_NOT_HOLDING)

    def _open_alerts(self) -> list[AlertRecord]:
        """The open alerts (firing or acknowledged) of the outbox, up to the cap."""
        return [
            record
            for state in (AlertState.FIRING, AlertState.ACKNOWLEDGED)
            for record in self._alerts.find(state.value, self._limit)
        ]

    async def _withdraw_taken_over(self) -> None:
        """Leave out of the outbox the notifications of this replica's changes whose notes
        another replica took over before this one dropped them (``SharedState.taken_over``):
        that one notifies them (``AlertStore.withdraw``)."""
        taken = await self._state.taken_over(NAME)
        if not taken:
            return
        plans = _plans(taken)
        withheld = await self._db.call(
            self._alerts.withdraw, plans, self._clock(), TAKEN_OVER_REASON
        )
        await self._state.settle(NAME, list(taken))
        if withheld:
            _logger.warning(
                "alerts: left %d notification(s) out of the outbox: another replica took over"
                " the note of their change in Redis and notified it (this one was killed, or cut"
                " off, before it dropped the note; `exesdb-bridge outbox list --state stale`"
                " lists those already made into deliveries)",
                withheld,
            )
            self._withheld(withheld)

    async def stale(self, alert_ids: Sequence[str]) -> set[str] | None:
        """Those of ``alert_ids`` whose newest notification is another replica's: Redis keeps
        them in a state this outbox never stored a notification of (``notified_state``), so one
        of them waiting here would reach its receiver after a newer one. Empty when Redis lost
        its data (nothing to tell by); None when it cannot be told now (Redis unreachable, or
        refusing the read: NOPERM), logged once while it lasts."""
        try:
            async with self._lock:
                # This replica's own changes Redis took first: they are no other's.
                if not self.caught_up:
                    await self._catch_up()
                raw = await self._state.read(NAME, alert_ids)
                mine = await self._db.call(lambda: {a: self._alerts.get(a) for a in alert_ids})
        except TransportError as exc:
            if not self._untold:  # once while it lasts: the worker asks again every second
                self._untold = True
                _logger.warning(
                    "alerts: deliveries go unchecked: whether another replica notified newer"
                    " states of their alerts cannot be told: %s",
                    exc,
                )
            return None
        if self._untold:
            self._untold = False
            _logger.info("alerts: deliveries are checked for stale notifications again")
        if raw is None:
            return set()
        stale: set[str] = set()
        for alert_id in alert_ids:
            value = raw.get(alert_id)
            try:
                kept = None if value is None else decode(value)
            except (ValueError, TypeError, KeyError):
                continue  # not judged by a record it cannot read (a later version's)
            if notified_state(kept) != notified_state(mine[alert_id]):
                stale.add(alert_id)
        return stale

    def _withhold_stale(self, kept: dict[str, AlertRecord], now: float) -> int:
        """Leave out of every pending delivery the alerts whose newest notification is another
        replica's by ``kept`` (on the database thread); how many notifications."""
        told: dict[str, tuple[object, ...] | None] = {}
        count = 0
        for delivery in self._queue.deliveries("pending", None):
            stale = set()
            for alert_id in delivery.alert_ids:
                if alert_id not in told:
                    told[alert_id] = notified_state(self._alerts.get(alert_id))
                if told[alert_id] != notified_state(kept.get(alert_id)):
                    stale.add(alert_id)
            if stale:
                count += self._queue.withhold(delivery.id, stale, now, STALE_REASON)[1]
        return count

    async def take_up(self) -> int:
        """On taking the work-queue lease: the notes first (the other replicas' taken over, so
        a crashed holder's changes are notified even if it never comes back, and this one's),
        then its open alerts made those kept in Redis (or, when Redis lost them, Redis given
        ours); how many changed here.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        adopted = await self._state.adopt(NAME)
        if adopted:
            _logger.info("alerts: took over %d note(s) other replicas left in Redis", adopted)
        async with self._lock:
            await self._catch_up(taken_over=True)
            self.dates, self._unknown = _dates(await self._state.load(DATES))
            self._oldest = _heap_of(self._unknown)
            raw = await self._state.load(NAME)
            if raw is None:
                mine = await self._db.call(self._open_alerts)
                put = {record.alert_id: encode(record) for record in mine}
                if not await self._state.commit(NAME, StateChange(put=put, restore=True)):
                    # Records came (or the lease went) since they were read: read them again.
                    raise TransportError("the open alerts in Redis changed while taken up")
                _logger.info(
                    "alerts: Redis held no list of open alerts (a first start, or Redis lost"
                    " its data); wrote this replica's %d open alert(s) there",
                    len(put),
                )
                return 0
            kept = _decoded(raw) or {}
            now = self._clock()

            def adopt() -> tuple[int, int]:
                # One call on the database thread: no delivery is made from this outbox's
                # alerts between telling which of its notifications are stale and adopting.
                return self._withhold_stale(kept, now), self._alerts.adopt_open_alerts(kept, now)

            withheld, changed = await self._db.call(adopt)
        if withheld:
            _logger.warning(
                "alerts: left %d notification(s) out of pending deliveries: another replica"
                " notified newer states of those alerts while this one did not hold the lease"
                " (`exesdb-bridge outbox list --state stale` lists them)",
                withheld,
            )
            self._withheld(withheld)
        if changed:
            _logger.info(
                "alerts: took the open alerts kept in Redis as this replica's, updating"
                " %d alert(s) of its own outbox that differed",
                changed,
            )
        return changed


def _plans(notes: dict[str, bytes]) -> list[Plan]:
    """The plans of ``notes``, those malformed skipped (logged)."""
    plans: list[Plan] = []
    for raw in notes.values():
        try:
            plans.append(decode_plan(raw))
        except (ValueError, TypeError, KeyError):
            _logger.warning("alerts: a note in Redis is malformed; skipped")
    return plans


def _still_current(plan: Plan, kept: dict[str, AlertRecord] | None) -> Plan:
    """``plan`` without the steps another holder has overtaken since (Redis lost nothing): an
    open record stands only while Redis keeps that very version, a resolved one while Redis
    keeps none."""
    if kept is None:
        return plan
    steps = tuple(
        step
        for step in plan.steps
        if step.record is not None
        and (
            kept.get(step.record.alert_id) == step.record
            if step.record.open
            else step.record.alert_id not in kept
        )
    )
    return dataclasses.replace(plan, steps=steps)


def _dates(raw: dict[str, bytes] | None) -> tuple[dict[str, float], dict[str, float]]:
    """The dates ``_dates_change`` kept, those malformed skipped (logged), and among them those
    of resolves of unknown alerts."""
    dates: dict[str, float] = {}
    unknown: dict[str, float] = {}
    for alert_id, value in (raw or {}).items():
        try:
            dates[alert_id] = float(value)
        except ValueError:
            _logger.warning("alerts: an alert's date kept in Redis is malformed; skipped")
            continue
        if value.startswith(_RESOLVE_MARK):
            unknown[alert_id] = dates[alert_id]
    return dates, unknown


def _heap_of(unknown: dict[str, float]) -> list[tuple[float, str]]:
    """The (date, alert id) of the resolves of unknown alerts ``unknown``, oldest first (a
    heap)."""
    heap = [(at, alert_id) for alert_id, at in unknown.items()]
    heapq.heapify(heap)
    return heap


def _decoded(raw: dict[str, bytes] | None) -> dict[str, AlertRecord] | None:
    if raw is None:
        return None
    records: dict[str, AlertRecord] = {}
    for alert_id, value in raw.items():
        try:
            records[alert_id] = decode(value)
        except (ValueError, TypeError, KeyError):
            _logger.warning("alerts: an open alert kept in Redis is malformed; skipped")
    return records


def _fields(record: AlertRecord) -> dict[str, Any]:
    fields = dataclasses.asdict(record)
    fields["state"] = record.state.value
    # Written only when set, so that a replica of the version before them (which has neither
    # field) still reads every record but a SystemAlert's with a source or metadata.
    for newer in ("source", "details"):
        if not fields[newer]:
            del fields[newer]
    # Never written: every record would have it (see ``transitions.adopted``).
    del fields["event_at"]
    return fields


def _entry_fields(entry: HistoryEntry | None) -> list[Any] | None:
    return None if entry is None else [entry.at, entry.event.value, entry.detail]


def _entry(fields: list[Any] | None) -> HistoryEntry | None:
    if fields is None:
        return None
    at, event, detail = fields
    return HistoryEntry(float(at), HistoryEvent(event), str(detail))


def _record(fields: dict[str, Any]) -> AlertRecord:
    fields = dict(fields)
    fields["state"] = AlertState(fields["state"])
    # JSON has no tuples; a record of an earlier version has no details.
    fields["details"] = tuple((str(n), str(v)) for n, v in fields.get("details", ()))
    return AlertRecord(**fields)
