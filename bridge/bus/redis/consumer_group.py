"""The consumer group: the lease holder reads the work queue and claims what a silent one left.

New entries are read with XREADGROUP; entries left pending by a replica that went silent are
claimed with XAUTOCLAIM after ``claim_idle_ms``, and by a replica as it takes the lease once idle
for half of that, before it reads anything newer: a holder killed just after it took an entry (a
node going down) would otherwise have it claimed after a newer one (the node back) was handled,
raising again the alert that one resolved. Each is acknowledged (XACK, by the writer) once its
subscribers returned, and left pending when they could not handle it. Each read, and each claim
round, asks Redis whose the lease is: a replica that lost it unawares (with a Redis restart's data)
steps down rather than take entries beside the new holder, and should it hold the lease again
first, takes what that read left pending at once, from its own history. So does the next read after
one whose answer was lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from redis.exceptions import NoPermissionError, ResponseError

from bridge.bus.redis.layout import GROUP, Layout, RawEntries, read_reply, text, unpack_flat
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link, linger
from bridge.bus.transport import Frame, FrameReceiver
from bridge.log_throttle import LogThrottle

__all__ = ["ConsumerGroup"]

_logger = logging.getLogger(__name__)

# Every this many claim rounds, consumers of departed replicas are looked for.
_CONSUMER_SWEEP_CYCLES: Final = 20
# Claim rounds are at most this far apart.
_MAX_CLAIM_INTERVAL_SECONDS: Final = 5.0
# As it takes the lease, a replica looks this often whether what another left has settled.
_TAKE_OVER_LOOK_SECONDS: Final = 0.1


class ConsumerGroup:
    """Reads and claims work-queue entries for one consumer, while its lease is held."""

    def __init__(
        self,
        link: Link,
        layout: Layout,
        lease: Lease,
        *,
        consumer: str,
        deliver: FrameReceiver,
        acknowledge: Callable[[str, bytes], None],
        unacknowledged: Callable[[], int],
        claim_idle_ms: int,
        replay_window_ms: int,
        batch_size: int,
        block_ms: int,
        max_inflight: int,
        clock: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``acknowledge(stream, entry id)`` queues the XACK of an entry once handled;
        ``unacknowledged()`` says how many queued wait to be written (``acks_written`` is called
        as they go): from ``max_inflight`` of them on, nothing more is read or claimed.
        ``monotonic`` times the wait, as this replica takes the lease, for what another left
        pending to settle."""
        self._link = link
        self._layout = layout
        self._lease = lease
        self.consumer = consumer
        self._deliver = deliver
        self._acknowledge = acknowledge
        self._unacknowledged = unacknowledged
        self._claim_idle_ms = claim_idle_ms
        self._replay_window_ms = replay_window_ms
        self._batch = batch_size
        self._block_ms = block_ms
        self._max_inflight = max_inflight
        self._clock = clock
        self._monotonic = monotonic
        self._keys: list[str] = []
        self._ready = False
        # Entries handed to the bus and not yet settled, and since when.
        self._inflight: dict[tuple[str, bytes], float] = {}
        self._room = asyncio.Event()
        self._room.set()
        # Per stream, where to read this consumer's own pending entries from (XREADGROUP from
        # an id, not ">"), before new ones: a read under a lease Redis no longer had for it
        # left them pending here, untaken. None: nothing to look for.
        self._history: dict[str, bytes] | None = None
        self._claim_rounds = 0
        # Set as this replica takes the lease: what the holders before it left pending is
        # claimed before the first read of new entries (``_take_over``).
        self._taking_over = False
        self._take_over_until: float | None = None  # the wait for entries to settle ends then
        # How long another consumer's entry is left idle before this replica, taking the lease,
        # claims it: half a lease. A holder renews its lease every third of one, so a killed
        # one's entries are older than that as its lease runs out, and taken at once; one that
        # gave the lease up after handling them wrote their acknowledgements before (its
        # ``WorkQueue.release``): they are not handled here again.
        self._settled_ms = claim_idle_ms // 2
        lease.on_lead(self._on_lead)
        # Claims told at most once a minute per stream: an entry whose handling keeps failing
        # (an alert stage that cannot store it) is claimed again at every claim time.
        self._told = LogThrottle()
        # Self-metrics, read at scrape time.
        self.claimed = 0
        self.trimmed = 0

    def read_from(self, instances: frozenset[str]) -> bool:
        """Read the streams of ``instances``; False when there are none."""
        self._keys = [key for name, key in self._layout.streams.items() if name in instances]
        return bool(self._keys)

    async def read(self) -> None:
        """Read new entries while the lease is held, until the transport stops."""
        await self._link.keep_trying(self._read_step, refused=self._gone)

    async def claim(self) -> None:
        """Claim entries idle for ``claim_idle_ms`` while the lease is held, until the
        transport stops."""
        await self._link.keep_trying(self._claim_step, refused=self._gone)

    def _gone(self, exc: ResponseError) -> bool:
        said = str(exc)
        # NOGROUP: the group is gone; UNBLOCKED: its stream went while a read blocked on it.
        if "NOGROUP" not in said and "UNBLOCKED" not in said:
            return False
        # Redis restarted without persistence, FLUSHALL, or the stream deleted: make the group
        # again.
        self._ready = False
        return True

    async def _read_step(self) -> float | None:
        await self._lease.held.wait()
        room = self._room_left()
        if room <= 0:
            self._room.clear()
            await self._room.wait()
            return None
        if not self._ready:
            await self._create()
        history = self._history
        if history is None and self._taking_over:
            return await self._take_over()
        ids: list[bytes | str]
        if history is not None:
            keys, ids = list(history), list(history.values())
        else:
            keys, ids = self._keys, [">"] * len(self._keys)
        # The lease as Redis has it as the read ends, asked in the same round trip: after an
        # outage this replica may still think it holds a lease that went with Redis's data to
        # another replica (its renewal waits out its backoff). Two readers at once would split
        # the entries, and the other would claim those read here before their acknowledgement
        # lands: taken twice. (A read of the history does not block.)
        pipe = self._link.client.pipeline(transaction=False)
        pipe.execute_command(
            "XREADGROUP",
            "GROUP",
            GROUP,
            self.consumer,
            "COUNT",
            min(room, self._batch),
            "BLOCK",
            self._block_ms,
            "STREAMS",
            *keys,
            *ids,
        )
        pipe.get(self._layout.leader)
        try:
            reply, holder = await pipe.execute()
        except BaseException:
            # The read may have got entries and only its answer been lost (a reset, a timeout:
            # a Redis that stalled serves the blocked read as it resumes): Redis holds them
            # pending here, untaken. The next read takes them from this consumer's history,
            # rather than leave them for a claim once idle, behind the entries read since.
            self._history = dict.fromkeys(self._keys, b"0-0")
            raise
        if not self._holds(holder):
            # What was read stays pending here, untaken: the holder claims it once idle, or
            # this replica takes it from its history should it hold the lease again first
            # (Redis lost its data, and the lease with it: it takes it back at once).
            self._history = dict.fromkeys(self._keys, b"0-0")
            return 0.0
        read = 0
        further: dict[str, bytes] = {}
        for raw_key, entries in read_reply(reply):
            key = raw_key.decode()
            read += len(entries)
            if entries:
                further[key] = entries[-1][0]
            if history is not None:
                entries = self._without_trimmed(key, entries)
            self._take(key, entries)
        if history is not None:
            # Each stream's history read on past what came, until nothing comes (None: on
            # with new entries).
            self._history = further or None
            return 0.0
        return linger(read, self._batch)

    async def _on_lead(self) -> None:
        self._taking_over = True
        self._take_over_until = None

    async def _take_over(self) -> float:
        """Claim what the holders before this one left pending before this replica reads
        anything newer: claimed after a newer entry was handled (a node's return read before
        its going down, taken by a holder killed before it acknowledged it), an entry would undo
        what that one did. Entries are claimed once idle for half a lease, not the whole
        (``_settled_ms``), waiting for those younger, for half a lease at most (then the claim
        rounds take them)."""
        # Under the lease as Redis has it, as a claim round (see _read_step).
        if not self._holds(await self._link.client.get(self._layout.leader)):
            return 0.0
        if self._take_over_until is None:
            self._take_over_until = self._monotonic() + self._settled_ms / 1000
        keys = await self._others_pending()
        try:
            for key in self._keys if keys is None else keys:
                await self._claim(key, min_idle_ms=self._settled_ms)
        except BaseException:
            # As in a claim round: what an answer lost made this consumer's is in its history.
            self._history = dict.fromkeys(self._keys, b"0-0")
            raise
        if keys and await self._others_pending() and self._monotonic() < self._take_over_until:
            return _TAKE_OVER_LOOK_SECONDS  # some too young yet: claimed once settled
        self._taking_over = False
        self._take_over_until = None
        return 0.0

    async def _others_pending(self) -> list[str] | None:
        """The streams where consumers other than this one have entries pending; None when
        Redis does not let this user ask (XPENDING refused): each is claimed from once, and
        what is too young then is left to the claim rounds."""
        pipe = self._link.client.pipeline(transaction=False)
        for key in self._keys:
            pipe.xpending(key, GROUP)
        replies = await pipe.execute(raise_on_error=False)
        keys = []
        for key, reply in zip(self._keys, replies, strict=True):
            if isinstance(reply, NoPermissionError):
                return None
            if isinstance(reply, Exception):
                raise reply
            if any(text(c["name"]) != self.consumer for c in reply.get("consumers") or ()):
                keys.append(key)
        return keys

    async def _create(self) -> None:
        # Start no further back than the replay window: older entries were written before any
        # replica read the stream, and would only be refused.
        start = max(0, int(self._clock() * 1000) - self._replay_window_ms)
        for key in self._keys:
            try:
                await self._link.client.xgroup_create(key, GROUP, id=f"{start}-0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._ready = True

    def _holds(self, holder: bytes | str | None) -> bool:
        """Whether ``holder`` (the lease key's value) is this replica; if not, it steps down."""
        if holder is not None and text(holder) == self.consumer:
            return True
        self._lease.lost(None if holder is None else text(holder))
        return False

    def _without_trimmed(self, key: str, entries: RawEntries) -> RawEntries:
        """``entries`` read from this consumer's history less those trimmed away since it read
        them (sent without fields): told trimmed, as a claim tells those XAUTOCLAIM finds, and
        acknowledged, as XAUTOCLAIM drops them from the pending list (not refused unsigned);
        but for those still handled here, whose handling acknowledges them."""
        kept = [entry for entry in entries if entry[1] is not None]
        trimmed = [
            entry_id
            for entry_id, fields in entries
            if fields is None and (key, entry_id) not in self._inflight
        ]
        if trimmed:
            self._trimmed(key, len(trimmed))
            for entry_id in trimmed:
                self._acknowledge(key, entry_id)
        return kept

    def _trimmed(self, key: str, count: int) -> None:
        # Pending entries trimmed away before anyone acknowledged them.
        self.trimmed += count
        _logger.warning("%d pending entr(y/ies) of %s were trimmed", count, key)

    def _take(self, key: str, entries: RawEntries) -> None:
        """Hand entries (as Redis sent them, fields flat) to the bus as work-queue frames."""
        instance = self._layout.instance_of(key.encode())
        now = self._clock()
        inflight, settle, unsettled = self._inflight, self._settle, self._unsettled
        frames: list[Frame] = []
        for entry_id, fields in entries:
            if (key, entry_id) in inflight:
                continue  # still being handled here (reclaimed because it took long)
            inflight[(key, entry_id)] = now
            body, signature = unpack_flat(fields or [])
            frames.append(
                Frame(
                    instance,
                    body,
                    signature,
                    None,
                    True,
                    partial(settle, key, entry_id),
                    partial(unsettled, key, entry_id),
                    # The entry id's milliseconds: Redis's clock as it took the entry (XADD
                    # takes no id older than the stream's last).
                    int(entry_id.split(b"-", 1)[0]) / 1000,
                )
            )
        if frames:
            self._deliver(frames)

    def _room_left(self) -> int:
        """How many more entries may be taken now: up to ``max_inflight`` in hand, and none while
        ``max_inflight`` acknowledgements wait (Redis refusing them, unreachable for them): those
        entries stay in Redis, rather than their ids pile up here. So at most twice
        ``max_inflight`` acknowledgements wait (those in hand, settled, join them)."""
        return min(
            self._max_inflight - len(self._inflight),
            self._max_inflight - self._unacknowledged(),
        )

    def acks_written(self) -> None:
        """The writer wrote (or gave up on) the acknowledgements queued: room to read again."""
        self._room.set()

    def _settle(self, key: str, entry_id: bytes) -> None:
        """The ack of a work-queue frame: queued for the writer, which batches XACKs."""
        self._inflight.pop((key, entry_id), None)
        self._acknowledge(key, entry_id)
        self._room.set()

    def _unsettled(self, key: str, entry_id: bytes) -> None:
        """A work-queue frame the bus could not handle (its handler failed, a full queue dropped
        it): left pending, and claimed again once idle for ``claim_idle_ms``."""
        if self._inflight.pop((key, entry_id), None) is not None:
            self._room.set()

    async def _claim_step(self) -> float | None:
        await self._link.pause(min(self._claim_idle_ms / 2000, _MAX_CLAIM_INTERVAL_SECONDS))
        if not self._ready or not self._lease.leading:
            return None
        # Claim only under the lease as Redis has it (see _read_step): a replica that lost it
        # unawares would take entries the holder is handling, whose acknowledgement is late.
        # Asked in the same round trip: which streams hold an entry idle long enough to be
        # claimed (one each at most). Mostly none: a claim each would be a round trip each.
        pipe = self._link.client.pipeline(transaction=False)
        pipe.get(self._layout.leader)
        for key in self._keys:
            pipe.xpending_range(key, GROUP, "-", "+", 1, idle=self._claim_idle_ms)
        holder, *idle = await pipe.execute(raise_on_error=False)
        for reply in (holder, *idle):
            # XPENDING refused (NOPERM): that stream is claimed from without asking, as before.
            if isinstance(reply, Exception) and not isinstance(reply, NoPermissionError):
                raise reply
        if isinstance(holder, Exception):
            raise holder
        if not self._holds(holder):
            return 0.0
        try:
            for key, found in zip(self._keys, idle, strict=True):
                if found:  # an entry to claim, or not known (refused)
                    await self._claim(key)
        except BaseException:
            # A claim whose answer was lost made the entries this consumer's, untaken and idle
            # no more: the next read takes them from this consumer's history (see _read_step).
            self._history = dict.fromkeys(self._keys, b"0-0")
            raise
        self._claim_rounds += 1
        if self._claim_rounds % _CONSUMER_SWEEP_CYCLES == 0:
            await self._forget_departed_consumers()
        self._forget_stale_inflight()
        return 0.0

    async def _claim(self, key: str, *, min_idle_ms: int | None = None) -> None:
        """Claim the entries of ``key`` idle for ``min_idle_ms`` (``claim_idle_ms``: None)."""
        idle = self._claim_idle_ms if min_idle_ms is None else min_idle_ms
        start: bytes | str = "0-0"
        while (room := self._room_left()) > 0:
            count = min(self._batch, room)
            reply = await self._link.command(
                "XAUTOCLAIM", key, GROUP, self.consumer, idle, start, "COUNT", count
            )
            start, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:
                self._trimmed(key, len(deleted))
            fresh = [
                (entry_id, fields)
                for entry_id, fields in entries
                if (key, entry_id) not in self._inflight
            ]
            if fresh:
                self.claimed += len(fresh)
                if (untold := self._told.due(key, len(fresh))) is not None:
                    since = f" ({untold} more claimed since the last line like this)"
                    _logger.info(
                        "claimed %d pending entr(y/ies) of %s%s",
                        len(fresh),
                        key,
                        since if untold else "",
                    )
                self._take(key, fresh)
            if start in (b"0-0", "0-0"):
                return

    async def _forget_departed_consumers(self) -> None:
        """Delete consumers (one per replica start) that hold nothing and are long silent."""
        horizon = 10 * self._claim_idle_ms
        for key in self._keys:
            consumers: Any = await self._link.client.xinfo_consumers(key, GROUP)
            for consumer in consumers:
                name = text(consumer.get("name"))
                if (
                    name != self.consumer
                    and int(consumer.get("pending", 0)) == 0
                    and int(consumer.get("idle", 0)) > horizon
                ):
                    await self._link.client.xgroup_delconsumer(key, GROUP, name)

    def _forget_stale_inflight(self) -> None:
        # A frame a subscriber dropped (full queue) or failed on is never acknowledged; after a
        # generous while it may be claimed again, and then redelivered (or refused as a replay).
        horizon = self._clock() - 4 * self._claim_idle_ms / 1000
        stale = [entry for entry, since in self._inflight.items() if since < horizon]
        for entry in stale:
            del self._inflight[entry]
        if stale:
            self._room.set()
