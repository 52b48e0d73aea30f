"""The work-queue lease: one replica at a time holds ``exesdb:bus:leader`` and reads the group.

One reader at a time keeps every alert condition's messages on the replica that holds its
state (a firing alert and its resolve, an ongoing condition notified once); the consumer group
still gives acknowledgement, and a new holder claims what a dead one left pending. The lease
expires after ``lease_ms`` unless renewed (every third of it), so a dead holder's lapses. A
lease set is renewed at once, before it is taken up: one Redis refuses to renew is told refused
and given back (not taken up and lost again each lease, nor seen held by the other replicas).
A holder unfit to serve (``require``: its alert outbox hangs, or its disk is full) steps down
and gives the lease back at its next renewal, and takes it again only once fit, so that a
replica standing by serves (the acknowledgements of what it handled written first, for up to a
second); an unfit replica finding the lease in its own name unawares (a ``SET`` whose answer
was lost) gives it back alike. A lease lost with Redis's data (a new ``exesdb:bus:epoch``) is
left by the replicas standing by to the one they saw hold it, whose open alerts are kept only
in its outbox, for one lease from the loss (from a second loss, found meanwhile), even while it
takes it back and gives it back again (a take-up that failed): taken by another, those alerts'
resolves would never be sent. That holder, having found its lease gone, keeps the lease it took
back through a failed take-up (one may last longer than the lease), rather than give it back,
for up to three leases from the loss (from a second loss, found as it takes the lease back
again); failing still, it gives it back, and says that its open alerts are taken up by no
replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Final

from redis.exceptions import ResponseError

from bridge.bus.redis.layout import Layout, text
from bridge.bus.redis.link import RETRYABLE, Link, script_named
from bridge.log_throttle import LOG_EVERY

__all__ = ["Lease"]

_logger = logging.getLogger(__name__)

_RENEW: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
# What a refusal of the renewal says it refused: Redis's words for a script's do not say.
_RENEWAL: Final = "the work-queue lease's renewal, a script running GET and PEXPIRE"
_RELEASE: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)
# A replica standing by asks at least this often: a released lease is taken within a second.
_STANDBY_SECONDS: Final = 1.0
# How long taking the work queue up may take (the lease renewed meanwhile) before the lease is
# given back: adopting the 50 000 open alerts of the cap takes seconds, a stage stuck forever
# must not keep the lease from a replica that would serve.
_TAKE_UP_SECONDS: Final = 60.0
# How long an unfit holder giving the lease up waits for the acknowledgements of what it handled
# (written within milliseconds while Redis takes them), a third of the lease at most: it was
# renewed a third of one ago at most, so the lease does not run out meanwhile.
_ACKS_SECONDS: Final = 1.0
# For how many leases from finding its lease gone with Redis's data a holder taking it back keeps
# it through failed take-ups: the one the replicas standing by leave it anyway, and two more for
# a failure that passes (a connection reset, Redis slow to take the open alerts back) to be
# tried again at each look. One that lasts (a corrupt outbox, a command Redis refuses, a bug)
# then gives it back: the work queue is served by nobody while it is kept so.
_KEEP_LEASES: Final = 3


class Lease:
    """Takes, renews and gives back the work-queue lease for one consumer."""

    def __init__(
        self,
        link: Link,
        layout: Layout,
        *,
        consumer: str,
        lease_ms: int,
        clock: Callable[[], float] = time.monotonic,
        write_acks: Callable[[float], Awaitable[bool]] | None = None,
    ) -> None:
        """``clock`` (monotonic seconds) times the lease's expiry while Redis is unreachable.
        ``write_acks(seconds)`` writes the acknowledgements queued now, within ``seconds``
        (whether it did: the writer's), before an unfit holder gives the lease up."""
        self._link = link
        self._write_acks = write_acks
        self._clock = clock
        self._key = layout.leader
        self._consumer = consumer
        self._lease_ms = lease_ms
        self._period = lease_ms / 3000
        self._renewed = float("-inf")  # when last renewed, or another's last seen held
        self._taking = True
        self._holder: str | None = None  # the consumer holding the lease, as last seen
        # The other holder this replica last said it stands by for (or was told of as it
        # stepped down): said again only when another holds the lease.
        self._told_holder: str | None = None
        # When each holder was last named so (within a minute), and the changes of holder left
        # unsaid since: a lease going back and forth is not told at every change (``_stand_by``).
        self._named_at: dict[str, float] = {}
        self._unsaid_changes = 0
        self._epoch_key = layout.epoch
        # Another replica last seen holding the lease, with the data set's epoch then (kept
        # through an outage, unlike ``_holder``, and while it takes the lease back after a data
        # loss: ``_taking_back``); and until when a lease it lost with Redis's data is left for
        # it to take back (``_leaving``).
        self._seen: tuple[str, bytes | None] | None = None
        self._leave_until: float | None = None
        self._leave_epoch: bytes | None = None  # the data set ``_leave_until`` was timed in
        self._leave_told = False  # that it is left, logged while ``_leave_until`` lasts
        # The epoch of the data set this replica last took the lease in, and, once it found the
        # lease it held gone, that of the data set it held it in: taken back in another (Redis
        # lost its data), the lease is kept through a failed take-up (``_keeps_lease``).
        self._epoch_taken: bytes | None = None
        self._lost_in: bytes | None = None
        self._keep_until = float("-inf")  # kept so until then at most (``_keeps_lease``)
        # Set while the lease is kept so (``kept``): from the first take-up that failed until one
        # works, or it is given back (its time out, or found unfit), or this replica finds
        # another holding it, or its own run out (Redis out of reach).
        self._kept = False
        self.kept_given_back = 0
        """How many times this replica gave the lease back with its take-up still failing
        ``_KEEP_LEASES`` leases after Redis lost its data (``_keeps_lease``)."""
        self._on_lead: list[Callable[[], Awaitable[None]]] = []
        self._checks: list[Callable[[], str | None]] = []  # see ``require``
        self._unfit_told = False  # a free lease was declined as unfit, logged, while it lasts
        # Set from taking the lease until it is held or given back (or taken again, after a take
        # that failed, maybe set): a stop meanwhile (the take-up under way) gives it back too
        # (``release``), not left for the others to wait out.
        self._claiming = False
        # Between stepping down and giving the lease back (writing acknowledgements first):
        # a ``release`` meanwhile, which cancels that, gives it back itself.
        self._giving_up = False
        # Take-overs failed in a row, and what the last one logged failed with.
        self._failed_takes = 0
        self._take_fault = ""
        # Set as this replica steps down on finding the lease not its own (``lost``): the next
        # step (taking it back, or standing by) comes at once, not after the renewal's wait.
        self._stepped_down = asyncio.Event()
        self.held = asyncio.Event()
        """Set while this replica holds the lease."""

    @property
    def leading(self) -> bool:
        """True while this replica holds the lease."""
        return self.held.is_set()

    @property
    def kept(self) -> bool:
        """True while this replica keeps the lease it took back after Redis lost its data, and
        with it the lease it held, through failed take-ups of the work queue: held in Redis, the
        work queue served by no replica meanwhile (for up to three leases from the loss, or
        from a second one found meanwhile)."""
        return self._kept

    @property
    def refused(self) -> bool:
        """True while Redis refuses the lease's commands (its ACL user lacks one of them)."""
        return self._link.refused(self)

    @property
    def holder(self) -> str | None:
        """The consumer that holds the lease (``<EXESDB_NODE>:<tag>``), as this replica last saw
        it, at most a second ago while standing by; None when none did, before it looked, once
        Redis has been unreachable for longer than a lease, and from the moment it took the
        lease until it next sees another hold it."""
        return self._consumer if self.held.is_set() else self._holder

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback`` each time this replica takes the lease, before it reads."""
        self._on_lead.append(callback)

    def require(self, check: Callable[[], str | None]) -> None:
        """Hold the lease only while ``check()`` is None (else why this replica cannot serve
        the work queue now): a holder found unfit steps down and gives the lease back at its
        next renewal (or in the middle of taking it up), so that a replica standing by takes
        over; it takes the lease again only once fit."""
        self._checks.append(check)

    def stop_taking(self) -> None:
        """Take the lease no more (one held is still renewed until ``release``)."""
        self._taking = False

    async def run(self) -> None:
        """Hold (or wait for) the lease until the transport stops."""
        # Its refusals filed under this lease: whether Redis takes them is asked (``refused``).
        await self._link.keep_trying(
            self._step, failed=self._lapse_if_expired, owner=self, wake=self._stepped_down
        )

    async def release(self) -> None:
        """Give the lease back at once (rather than after it runs out), if held or being
        taken up."""
        held = self.held.is_set()
        if not held and not self._claiming and not self._giving_up:
            return
        self.held.clear()
        self._claiming = self._giving_up = self._kept = False
        released = 0
        with contextlib.suppress(*RETRYABLE):
            released = await self._link.client.eval(_RELEASE, 1, self._key, self._consumer)
        if held or released:  # a take whose answer was lost may not have set it after all
            _logger.info("this replica handed the work queue over (%s)", self._consumer)

    async def _step(self) -> float | None:
        self._stepped_down.clear()
        client = self._link.client
        unfit = self._unfit()
        if self.held.is_set() and unfit is not None:
            await self._give_up(unfit)
        elif self.held.is_set():
            # Timed from before it is sent: the lease in Redis runs from when Redis renewed it.
            sent = self._clock()
            # An answer after the lease ran out is of no use: until it came (Redis stalled, or
            # cut off) this replica would go on saying it holds a lease another may have taken.
            try:
                async with asyncio.timeout(max(0.0, self._renewed + self._lease_ms / 1000 - sent)):
                    renewed = await self._renew()
            except TimeoutError as exc:
                raise TimeoutError(
                    f"no answer to the work-queue lease's renewal before it ran out"
                    f" ({self._lease_ms} ms)"
                ) from exc
            if renewed:
                self._renewed = sent
            else:
                holder = await client.get(self._key)
                self.lost(None if holder is None else text(holder))
                if self.refused:
                    # Found gone, the lease ran no PEXPIRE: whether Redis takes its renewal now
                    # is not known, so the refusal told stands (not ended as if it got through)
                    # until the next step, at once, tries the renewal again.
                    return None
        elif not self._taking:
            pass  # stopping: leave the lease to the others
        else:
            # Who holds it (for the pages of this replica, whose alerts are not current), and
            # the data set's epoch, to tell a lease given up from one lost with Redis's data.
            pipe = client.pipeline(transaction=False)
            pipe.get(self._key)
            pipe.get(self._epoch_key)
            holder, epoch = await pipe.execute()
            # Its own name there: a SET whose answer was lost (Redis stalled past the socket
            # timeout, then ran it) took the lease for this replica unawares.
            mine = holder is not None and text(holder) == self._consumer
            taken = False
            if holder is not None and not mine:
                await self._saw(text(holder), epoch)
            elif not mine and self._leaving(epoch):
                pass
            elif unfit is not None:
                self._kept = False  # given back, if kept, to a replica fit to serve
                if mine:  # a lost SET's: given back at once, not left to run out a lease
                    with contextlib.suppress(*RETRYABLE):
                        await client.eval(_RELEASE, 1, self._key, self._consumer)
                self._decline(unfit)
            elif taken := await self._claim(mine, epoch):
                self._holder = None  # the one last seen holds it no more: this replica took it
                self._seen = None  # nor is it the last holder this replica knows of
                self._leave_until, self._leave_epoch, self._leave_told = None, None, False
                kept = False
                if await self._took():
                    self.held.set()
                    self._lost_in = None
                    self._told_holder = None  # another holder after this one is news again
                    _logger.info("this replica now takes the work queue (%s)", self._consumer)
                elif self._keeps_lease():
                    kept = True
                else:
                    # Not ready to take over (e.g. the alert stage still opening its outbox):
                    # give the lease back, try again in a moment.
                    await client.eval(_RELEASE, 1, self._key, self._consumer)
                    self._holder = None  # nobody, until the next look
                self._claiming = self._kept = kept
            if not taken and self.refused:
                # The renewal Redis refused was not tried: the lease found held (if only for
                # the moment another replica refused alike sets it before giving it back) does
                # not say Redis takes it now. The refusal told stands, ready and "elsewhere"
                # not said, until a take tries the renewal again after the standby wait.
                await self._link.pause(min(self._period, _STANDBY_SECONDS))
                return None
        # Standing by, ask often: a released lease is taken over within a second.
        return self._period if self.held.is_set() else min(self._period, _STANDBY_SECONDS)

    async def _saw(self, holder: str, epoch: bytes | None) -> None:
        """Note ``holder``, another replica, found holding the lease in the data set of
        ``epoch`` (set first if missing, as a writer sets it: ``_set_epoch``)."""
        if epoch is None:
            epoch = await self._set_epoch()
        self._holder = holder
        if self._lost_in is not None and epoch != self._lost_in:
            # Nothing else tells it: the replica now holding the lease did not leave it to this
            # one (it never saw this one hold it: started, or cut off, meanwhile; or this one,
            # found unfit as it took the work queue up, gave it back).
            _logger.warning(
                "%s took the work-queue lease after Redis lost its data while this replica (%s)"
                " held it: this replica's open alerts, kept only in its outbox, are taken up by"
                " no replica (their resolves are never sent)",
                holder,
                self._consumer,
            )
        self._lost_in = None  # another holds it: this replica does not take it back
        self._kept = False
        self._stand_by(holder)
        self._renewed = self._clock()
        if self._taking_back(holder, epoch):
            return
        self._seen = (holder, epoch)
        self._leave_until, self._leave_epoch, self._leave_told = None, None, False

    def _taking_back(self, holder: str, epoch: bytes | None) -> bool:
        """Whether ``holder``, found holding the lease in a new data set (``epoch``), is the
        replica last seen holding it before Redis lost its data, taking it back within a lease
        of the loss. Its take-up may yet fail (its alert stage not ready) and give the lease
        back, to take it again a second later: left to it (``_leaving``) for the rest of that
        lease, timed from the loss, not from this sighting. Recorded as holding it in the new
        data set instead, the lease it gives back would look given up, and be taken at once
        by this replica, which lacks its open alerts (kept only in its outbox); timed from each
        sighting, a holder failing for good would keep the lease from the others for ever."""
        seen = self._seen
        if seen is None or seen[0] != holder or seen[1] is None or epoch == seen[1]:
            return False
        return self._clock() < self._left_until(epoch)

    def _stand_by(self, holder: str) -> None:
        """Say this replica stands by for ``holder``, the lease's holder found now, if another
        was last said. A holder named less than a minute before (the lease going back and forth
        between two others) is named again once that minute is out, with how many changes of
        holder went unsaid: never one line per change, and never a holder unsaid for longer."""
        changed = holder != self._told_holder
        if not changed and not self._unsaid_changes:
            return
        self._told_holder = holder
        now = self._clock()
        named = self._named_at.get(holder)
        if named is not None and now - named < LOG_EVERY:
            self._unsaid_changes += changed
            return
        self._named_at = {name: at for name, at in self._named_at.items() if now - at < LOG_EVERY}
        self._named_at[holder] = now
        unsaid, self._unsaid_changes = self._unsaid_changes, 0
        _logger.info(
            "the work queue is taken by %s: this replica (%s) stands by, and takes it over once"
            " that one stops or its lease runs out (%d ms)%s",
            holder,
            self._consumer,
            self._lease_ms,
            f"; {unsaid} change(s) of holder went unsaid since the last line like this"
            if unsaid
            else "",
        )

    async def _claim(self, mine: bool, epoch: bytes | None) -> bool:
        """``_take``, noted (``_claiming``) until the lease is held or given back: a
        cancellation (a stop) from here on leaves it to ``release`` to give back, and so does
        a failure (its answer lost, the SET may have set it: ``release`` deletes only this
        replica's)."""
        self._claiming = True
        taken = await self._take(mine, epoch)
        self._claiming = taken
        return taken

    async def _take(self, mine: bool, epoch_found: bytes | None) -> bool:
        """Set the lease to this replica if it is free, or renew it if a lost ``SET`` set it
        already (``mine``, found so in the data set of ``epoch_found``): its whole length from
        now. Whether it is this replica's. A take lost to another replica notes that one as the
        holder (``_saw``), with the data set's epoch, set first if missing."""
        client = self._link.client
        sent = self._clock()
        if mine:
            taken = await self._renew()
            if taken:
                # The data set it took the lease in: the lost SET's, which set the epoch too
                # (read with the lease, in the same round trip). Left at the one it held the
                # lease in before, a take-back after Redis lost its data would look like none,
                # and the lease be given back at a failed take-up (``_keeps_lease``). Missing
                # (evicted), set as the take's own transaction sets it: None would tell no loss.
                if epoch_found is None:
                    epoch_found = await self._set_epoch()
                self._epoch_taken = epoch_found
        else:
            # Who holds it and the epoch read in the same transaction (the epoch set if missing,
            # as a writer sets it): a take lost to another replica records that holder at once,
            # not at the next look a second later, so that a data loss meanwhile leaves the
            # lease to it (``_leaving``) rather than have this replica take it at once.
            pipe = client.pipeline(transaction=True)
            pipe.set(self._key, self._consumer, nx=True, px=self._lease_ms)
            pipe.set(self._epoch_key, secrets.token_hex(8), nx=True)
            pipe.get(self._key)
            pipe.get(self._epoch_key)
            was_set, _, holder, epoch = await pipe.execute()
            taken = bool(was_set)
            if taken:
                lost = self._lost_in
                if lost is not None and lost != self._epoch_taken and epoch != self._epoch_taken:
                    # Found free in another data set than the one it was taken back in: Redis
                    # lost its data again while this replica kept the lease (``_keeps_lease``),
                    # its three leases timed anew from this loss, as the replicas standing by
                    # leave it one lease from it (``_left_until``).
                    self._keep_until = sent + _KEEP_LEASES * self._lease_ms / 1000
                self._epoch_taken = epoch
            if not taken and holder is not None and text(holder) != self._consumer:
                await self._saw(text(holder), epoch)
            # Renewed at once, before it is taken up: a lease Redis lets this replica set but not
            # renew (an ACL user without PEXPIRE) would be taken up and lost each lease, the
            # refusal told and then ended by the next take; refused here, it is told until the
            # renewal gets through, and the lease given back: left to run out, the other
            # replicas would see it held, and stand by ready while none can take the queue up.
            try:
                taken = taken and await self._renew()
            except ResponseError:
                with contextlib.suppress(*RETRYABLE):
                    await client.eval(_RELEASE, 1, self._key, self._consumer)
                raise
        if taken:
            self._renewed = sent
        return taken

    def _keeps_lease(self) -> bool:
        """Whether to keep the lease through the take-up that failed now: taken back after Redis
        lost its data, and with it the lease this replica held, whose open alerts are only in
        its outbox. Given back, the lease would be taken by a replica standing by whose wait is
        over (a take-up may last longer than the lease), and their resolves never sent: kept
        (renewed at the next look, within a second), the work queue is taken up again then.
        Kept up to ``_KEEP_LEASES`` leases from the loss, while the work queue is served by
        nobody, then given back, its open alerts said to be taken up by no replica. A second
        loss meanwhile (the lease found free in another data set: ``_take``) times them anew
        from it: the replicas standing by leave the lease a lease from it, and a take-up
        failing at once against a Redis that restarted again is a failure that passes."""
        if self._lost_in is None or self._epoch_taken == self._lost_in:
            return False
        if self._clock() < self._keep_until:
            return True
        self._lost_in = None  # told here: not again as another takes it (``_saw``)
        self._kept = False  # shown given back with the count, not after the release's wait
        self.kept_given_back += 1
        _logger.warning(
            "taking the work queue up still fails %d ms after Redis lost its data while this"
            " replica (%s) held the work-queue lease: it gives the lease back, for another"
            " replica to serve the work queue; this replica's open alerts, kept only in its"
            " outbox, are taken up by no replica (their resolves are never sent)",
            _KEEP_LEASES * self._lease_ms,
            self._consumer,
        )
        return False

    def _leaving(self, epoch: bytes | None) -> bool:
        """Whether to leave a free lease alone for now: Redis lost its data (a new epoch since
        this replica last saw another hold the lease) and with it that holder's lease, which
        it takes back at its next renewal. Its open alerts are kept only there (Redis's copy
        went with the data): taken by another replica, their resolves would never be sent.
        Left for one lease from when the loss is first found (the lease free, or that holder
        taking it back: ``_taking_back``), the time that lease could still have run, however
        often that holder takes it and gives it back meanwhile; a holder that does not come
        back (and take the work queue up) in that time lost its lease as a dead one does."""
        if self._seen is None or self._seen[1] is None or epoch == self._seen[1]:
            return False  # given up, or run out (or no epoch to tell by): nothing lost with it
        now = self._clock()
        if now >= (until := self._left_until(epoch)):
            self._seen, self._leave_until, self._leave_epoch = None, None, None
            self._leave_told = False
            return False
        if not self._leave_told:
            self._leave_told = True
            _logger.info(
                "Redis lost its data while %s held the work-queue lease: leaving it to %s for"
                " %d ms to take back, with its open alerts",
                self._seen[0],
                self._seen[0],
                round((until - now) * 1000),
            )
        return True

    def _left_until(self, epoch: bytes | None) -> float:
        """Until when a lease lost with Redis's data, found lost (free, or taken back) in the
        data set of ``epoch``, is left to the holder seen before it: one lease from when this
        replica first found that loss, timed anew at a second loss found meanwhile (another
        epoch, or none: the data gone again before a writer wrote one), which that holder finds
        at its next renewal, a third of a lease later at most. Timed from the first loss, the
        lease would be taken from it at the end of that lease, though it had not yet found the
        second. The first epoch found after a window timed with none is the same loss's."""
        now = self._clock()
        if self._leave_until is None or (
            self._leave_epoch is not None and epoch != self._leave_epoch
        ):
            self._leave_until, self._leave_told = now + self._lease_ms / 1000, False
        self._leave_epoch = epoch
        return self._leave_until

    async def _set_epoch(self) -> bytes | None:
        """Set the data set's epoch, found missing under another's lease (no writer has written
        one yet: the first moments of a deployment, or of a Redis that lost its data), as a
        writer sets it; the epoch Redis then holds. Without one the holder seen would be
        recorded with nothing to tell a lease lost with Redis's data by (``_leaving``), and its
        lease taken at once. None when Redis refuses the ``SET`` (out of memory): nothing to
        tell by, as before."""
        client = self._link.client
        token = secrets.token_hex(8).encode()
        with contextlib.suppress(ResponseError):
            if await client.set(self._epoch_key, token, nx=True):
                return token
            found = await client.get(self._epoch_key)  # another's, set meanwhile
            return None if found is None else text(found).encode()
        return None

    def lost(self, holder: str | None) -> None:
        """Step down, if held: Redis says ``holder`` (None: nobody) holds the lease, as the
        consumer group found when it read (before this replica's next renewal would). The
        lease is looked at again at once, not at the next renewal: held by nobody (Redis lost
        its data, and the lease with it), it is taken back, and what that read got, left
        pending, is taken then (``consumer_group.py``); held by another, this replica stands by."""
        self._holder = holder
        if self.held.is_set():
            # If Redis lost its data, the lease taken back in a new data set is kept (``_step``),
            # and one found taken by another there is told (``_saw``).
            self._lost_in = self._epoch_taken
            self._keep_until = self._clock() + _KEEP_LEASES * self._lease_ms / 1000
            self._told_holder = holder  # named as it steps down
            self._step_down(_gone_to(holder))
            self._stepped_down.set()

    def _unfit(self) -> str | None:
        """Why this replica cannot serve the work queue now (``require``); None when it can."""
        for check in self._checks:
            if (why := check()) is not None:
                return why
        self._unfit_told = False
        return None

    async def _give_up(self, why: str) -> None:
        """Step down first (nothing here acts as the holder from then on, a call that hung
        returning later included), write the acknowledgements of what was handled (for up to
        a second: written after the lease went, they would race the next holder's claims, and
        what was handled here would be handled there again), then give the lease back at once:
        a replica standing by takes it within a second, not a lease later."""
        self._holder = None
        self._step_down(f"{why}; it gives the lease up, for another replica to take over")
        self._giving_up = True
        seconds = min(_ACKS_SECONDS, self._period)
        if self._write_acks is not None and not await self._write_acks(seconds):
            _logger.warning(
                "giving the work-queue lease up with acknowledgements unwritten (Redis did not"
                " take them within %g s): the next holder may handle those entries again",
                seconds,
            )
        self._giving_up = False
        with contextlib.suppress(*RETRYABLE):  # unreachable: the lease runs out meanwhile
            await self._link.client.eval(_RELEASE, 1, self._key, self._consumer)

    def _decline(self, why: str) -> None:
        """Leave a free lease alone while unfit, said once while it lasts."""
        if not self._unfit_told:
            self._unfit_told = True
            _logger.warning(
                "the work-queue lease is free but this replica (%s) does not take it: %s",
                self._consumer,
                why,
            )

    def _lapse_if_expired(self) -> None:
        if self._clock() - self._renewed <= self._lease_ms / 1000:
            return
        # Redis unreachable (or refusing the renewal) for longer than a lease: whichever replica
        # was seen holding it, this one or another, may hold it no more, and which does is not
        # known.
        self._holder = None
        self._kept = False  # run out in Redis too: kept again only if taken again
        if self.held.is_set():
            self._step_down(
                "the lease ran out: Redis refuses its renewal"
                if self.refused
                else "the lease expired while Redis was unreachable"
            )

    async def _took(self) -> bool:
        """Run the ``on_lead`` callbacks; False (logged) when one failed or took too long.

        A take-over failing alike each second (the outbox on a full disk) is logged once, and
        then once it succeeds, with how many failed."""
        for callback in self._on_lead:
            try:
                await self._renewing(callback)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed_takes += 1
                fault = f"{type(exc).__name__}: {exc}"
                if self._failed_takes == 1 or fault != self._take_fault:
                    self._take_fault = fault
                    _logger.warning(
                        "taking the work queue over: a step of taking it up failed", exc_info=True
                    )
                return False
        if self._failed_takes:
            _logger.info(
                "taking the work queue over worked after %d failed attempt(s)", self._failed_takes
            )
        self._failed_takes, self._take_fault = 0, ""
        return True

    async def _renew(self) -> bool:
        """Renew the lease, whole, if Redis says this replica holds it; whether it did."""
        try:
            return bool(
                await self._link.client.eval(_RENEW, 1, self._key, self._consumer, self._lease_ms)
            )
        except ResponseError as exc:
            named = script_named(exc, _RENEWAL)
            if named is exc:
                raise
            raise named from exc

    async def _renewing(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback``, renewing the lease every third of it meanwhile: a take-up longer
        than the lease (many open alerts to adopt) would otherwise be cut off each time, and no
        replica would hold the lease. Raises ``TimeoutError`` when it takes longer than
        ``_TAKE_UP_SECONDS`` (or half the lease, if longer) or this replica is found unfit
        (``require``), and ``LookupError`` when a renewal finds the lease gone."""
        work = asyncio.ensure_future(callback())
        deadline = self._clock() + max(self._lease_ms / 2000, _TAKE_UP_SECONDS)
        try:
            while not (await asyncio.wait({work}, timeout=self._period))[0]:
                if self._clock() >= deadline:
                    raise TimeoutError(f"taking the work queue up took {_TAKE_UP_SECONDS:g} s")
                if (why := self._unfit()) is not None:
                    raise TimeoutError(f"taking the work queue up stopped: {why}")
                sent = self._clock()
                if not await self._renew():
                    raise LookupError("the lease ran out while this replica took the queue up")
                self._renewed = sent
            work.result()
        finally:
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)

    def _step_down(self, why: str) -> None:
        self.held.clear()
        _logger.warning("this replica no longer takes the work queue: %s", why)


def _gone_to(holder: str | None) -> str:
    # Said as it is: with no other replica, "went to another" would mislead.
    if holder is not None:
        return f"the lease went to another replica ({holder})"
    return (
        "the lease is gone from Redis (Redis lost its data, or the lease ran out before this"
        " replica renewed it)"
    )
