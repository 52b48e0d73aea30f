"""Writes what the bus sends to the streams: buffered frames, spooled frames (XADD), and XACKs.

``send`` never blocks: frames wait in a bounded local buffer that ``run`` writes, in order, in
batches (one round trip and one script each), through reconnections and backoff; a frame that waited
half the replay window there is signed again (fresh ``ts``, same id) so that it is not refused
as expired. ``send_durably`` (HTTP ingest) answers once its frames are in the spool on disk
(``spool.py``), which ``run`` sends to Redis in order, each batch in one script call with the
spool's progress, so that a restart sends nothing twice; a buffered batch goes with a mark of
its own, so that one whose answer was lost (a Redis that stalled past the socket timeout runs it
once it resumes) is not written again beside the first. Work-queue frames written lately are
retained until a consumer group has acknowledged them (taken and handled), and written again if
Redis turns out to have lost its data meanwhile (a restart without persistence, or FLUSHALL:
each batch's script, or its transaction without one, compares the data set's epoch first), or
only its latest writes (started again from an older snapshot: those after the last one it
holds); in the order first written, before anything newer, buffered or spooled.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from redis.exceptions import NoPermissionError, ResponseError

from bridge.bus.decoding import decode_envelope
from bridge.bus.envelope import Envelope
from bridge.bus.redis.layout import GROUP, Layout, stream_id, text
from bridge.bus.redis.link import (
    RETRYABLE,
    USER_RULES,
    Link,
    reason,
    script_named,
    temporary,
)
from bridge.bus.redis.retained import Lane, Retained
from bridge.bus.redis.spool import Spool, SpoolDiskError, SpoolDisplaced
from bridge.bus.redis.unscripted import Unscripted, Unwritten
from bridge.bus.transport import WORK_QUEUE_INSTANCES, Durability, Frame
from bridge.redaction import safe_url

__all__ = ["Writer"]

_logger = logging.getLogger(__name__)

# Acknowledgements wait this long for company when there is nothing else to write (they only
# keep entries from being claimed again, which takes far longer): fewer round trips.
_ACK_LINGER_SECONDS: Final = 0.01
# How long the spool's progress stays in Redis: well past any restart of a bridge.
_PROGRESS_KEPT_MS: Final = 7 * 24 * 3600 * 1000

# Writes a batch of frames, each its own entry (as XADD ... MAXLEN ~ <n> * e <body> s <sig>),
# and the spool's progress with them when asked: one command and one reply for the batch, where
# a pipeline of XADDs costs redis-py several times the CPU per entry. An entry Redis refuses is
# answered "!<error>" in its place. KEYS: the epoch's key, each entry's stream, then the
# progress key if any. ARGV: the number of entries, MAXLEN, the epoch the writer last found (""
# when none), body and signature of each, then progress, its TTL, and "1" when the progress is
# a buffered batch's number, which the script writes only once: it answers 0, writing nothing,
# when the key holds that number or a later one already.
# The epoch is compared first: a Redis that lost its data since the writer last looked (FLUSHALL
# breaks no connection) is answered -1, nothing written, so that what it lost is written again
# before any newer frame, not after it (a resolve taken before the firing it ends).
# The progress is set next: Redis keeps what a script wrote before a command it refuses (an
# ACL user without SET on the spool's keys), and each retry of the batch would write its entries
# again; the XADDs after it are answered each on its own, so the script ends with them.
_XADD_ALL: Final = """
local count = tonumber(ARGV[1])
if ARGV[3] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[3] then
  return -1
end
if #KEYS > count + 1 then
  local key, progress = KEYS[count + 2], ARGV[4 + 2 * count]
  if ARGV[6 + 2 * count] == '1'
     and tonumber(redis.call('GET', key) or '0') >= tonumber(progress) then
    return 0
  end
  redis.call('SET', key, progress, 'PX', ARGV[5 + 2 * count])
end
local out = {}
for i = 1, count do
  local id = redis.pcall('XADD', KEYS[i + 1], 'MAXLEN', '~', ARGV[2], '*',
                         'e', ARGV[2 + 2 * i], 's', ARGV[3 + 2 * i])
  if type(id) == 'table' and id.err then out[i] = '!' .. id.err else out[i] = id end
end
return out
"""
# What the script is told as when the ACL refuses it the progress (Redis's words name neither).
_WRITING_SPOOLED: Final = (
    "the writing of a spooled batch with the spool's progress, a script running XADD and SET"
)

# Redis's words when the ACL refuses a command itself (``… no permissions to run the 'evalsha'
# command``), not one of its keys.
_RUN_REFUSED: Final = "no permissions to run the '"

# How long a buffered batch's number stays in Redis (refreshed by each batch): a copy of the
# batch that a stalled Redis runs later than the replay window after it was signed is refused
# as expired by every reader anyway.
_MARK_KEPT_MIN_MS: Final = 3600 * 1000

# Redis's words for XINFO STREAM of a key it does not hold.
_NO_SUCH_KEY: Final = "no such key"


class _EpochChanged(Exception):
    """A batch's script found Redis holding another epoch than the writer last found (or
    none): Redis lost its data meanwhile, and nothing was written."""


class Writer:
    """The local buffer of frames, the spool, acknowledgements, and the loop that writes them."""

    def __init__(
        self,
        link: Link,
        layout: Layout,
        *,
        positioned: asyncio.Event,
        buffer_size: int,
        stream_maxlen: int,
        batch_size: int,
        claim_idle_ms: int,
        replay_window_ms: int,
        clock: Callable[[], float],
        spool: Spool | None = None,
        consumer: str = "",
    ) -> None:
        """``positioned`` is set once the fan-out reader knows where each stream ends: our own
        frames must come after the tail it reads from, or it would miss them. Without a
        ``spool`` (an embedding bridge), ``send_durably`` buffers in memory as ``send`` does.
        ``consumer`` (this process's, unique) names the key of the buffered batches' mark;
        without one, a batch whose answer was lost is written again."""
        self._link = link
        self._layout = layout
        self._positioned = positioned
        self._buffer_size = buffer_size
        self._maxlen = stream_maxlen
        self._batch = batch_size
        self._replay_window_ms = replay_window_ms
        self._clock = clock
        self._spool = spool
        self._script = link.client.register_script(_XADD_ALL)
        self._unscripted = Unscripted(
            link, layout, maxlen=stream_maxlen, progress_ms=_PROGRESS_KEPT_MS, clock=clock
        )
        self._buffer: deque[Frame] = deque()
        # The buffered batches' numbers in Redis (None: not kept), and the number and size of
        # the batch whose write failed without an answer, written again under that number.
        self._mark = layout.written(consumer) if consumer else None
        self._mark_ms = max(_MARK_KEPT_MIN_MS, 2 * replay_window_ms)
        self._batches = 0
        self._unsure: tuple[int, int] | None = None
        # The ACL refusing the mark's key (told once): batches go without it until
        # ``_mark_after`` (by ``clock``), the backoff's cap after it was last refused, so that
        # a grant is taken within seconds while few batches pay a refused call.
        self._mark_refused = False
        self._mark_after = 0.0
        # Work-queue frames written but maybe not yet acknowledged by a consumer group, per
        # stream in the order written; written again if Redis turns out to have lost its data.
        self._retained = Retained(
            link, layout, size=buffer_size, claim_idle_ms=claim_idle_ms, clock=clock
        )
        self._epoch: str | None = None
        self._epoch_unchecked = True
        # Frames written again at the buffer's front, not yet written: the spool waits for them
        # (some were spooled frames, written before whatever the spool holds now).
        self._rewriting = 0
        # The ACL refusing XINFO STREAM (told once): rolled back streams held empty go unseen.
        self._xinfo_refused = False
        # When Redis last refused a write for now (memory full, read-only, ...), and its
        # words: every publisher is refused alike then. A frame written ends it.
        self._held_back: tuple[float, str] | None = None
        # Entry ids to acknowledge per stream, each once (an entry claimed again while they
        # wait is acknowledged again), in the order handled; their number.
        self._acks: dict[str, dict[bytes, None]] = {}
        self._ack_count = 0
        self._acks_sending = 0  # taken out of the queue by a write under way
        self._acks_written: list[Callable[[], None]] = []
        self._wake = asyncio.Event()  # anything to do
        self._frames = asyncio.Event()  # frames to write: lingering acknowledgements go now
        # Set at the end of each pass and on each failed command: ``flush`` looks again.
        self._pass_ended = asyncio.Event()
        self._closed = False
        # Set by the bus (``attach``): re-signs a frame grown old in the buffer; counts drops.
        self._resign: Callable[[Envelope], Frame] | None = None
        self._count_dropped: Callable[[int], None] = lambda count: None
        # Self-metrics, read at scrape time.
        self.written = 0
        self.rewritten = 0
        self.data_losses = 0  # new epochs found since the first
        self.resigned = 0
        self.spooled = 0
        link.when_down(self._suspect_data_loss)

    def attach(
        self, *, resign: Callable[[Envelope], Frame], dropped: Callable[[int], None]
    ) -> None:
        """How to re-sign a frame that waited for half the replay window, and where to count
        frames dropped for good."""
        self._resign = resign
        self._count_dropped = dropped

    @property
    def buffered(self) -> int:
        """Frames waiting in memory to be written."""
        return len(self._buffer)

    @property
    def retained(self) -> int:
        """Work-queue frames written that no consumer group is known to have taken yet: what is
        written again should Redis lose its data."""
        return self._retained.count

    @property
    def held_back(self) -> str | None:
        """Redis's words when it refused a write for now (``OOM``, ``READONLY``, …) in the
        last ``refusal_seconds`` and took no frame since, else None: it refuses every
        publisher alike then, so nobody's messages reach it (all write to one Redis: one
        replica pointed at a read replica is refused ``READONLY`` alone, and not ready)."""
        held = self._held_back
        if held is None or self._clock() - held[0] > self._link.refusal_seconds:
            return None
        return held[1]

    @property
    def spool_bytes(self) -> int:
        """Bytes of spooled frames waiting to be written."""
        return self._spool.pending_bytes if self._spool is not None else 0

    @property
    def spool_errors(self) -> int:
        """Operations the spool's disk refused (``Spool.disk_errors``)."""
        return self._spool.disk_errors if self._spool is not None else 0

    @property
    def _spool_to_send(self) -> int:
        """``spool_bytes`` the loop can send: none while the spool's files are displaced (gone
        or replaced), which it cannot read (``Spool.displaced``), nor while a read its disk
        refused waits to be tried again (``Spool.sendable_bytes``): not Redis's fault."""
        return self._spool.sendable_bytes if self._spool is not None else 0

    def send(self, frame: Frame) -> bool:
        """Buffer a frame for writing; False when the buffer is full (or the writer closed)."""
        if self._closed or len(self._buffer) >= self._buffer_size:
            return False
        # Never the in-process shortcut: what crosses Redis is verified from its bytes (the
        # envelope is kept only to re-sign a frame that waits too long, see _refresh_old).
        self._buffer.append(Frame(frame.instance, frame.body, frame.signature, frame.decoded))
        self._frames.set()
        self._wake.set()
        return True

    async def send_durably(self, frames: Sequence[Frame]) -> Durability:
        """Take ``frames`` (all or none) once they are safe from a crash of this process: in the
        spool on disk. FULL when the spool has no room for them, FAILED when the disk refused
        them or the writer is closed."""
        if self._closed:
            return Durability.FAILED
        spool = self._spool
        if spool is None:
            if len(self._buffer) + len(frames) > self._buffer_size:
                return Durability.FULL
            for frame in frames:
                self.send(frame)
            return Durability.COMMITTED
        try:
            if not await spool.append(frames):
                return Durability.FULL
        except (SpoolDisplaced, SpoolDiskError):
            return Durability.FAILED  # told once, by the spool
        except OSError as exc:
            _logger.error(
                "spool %s: could not store %d frame(s): %s", spool.directory, len(frames), exc
            )
            return Durability.FAILED
        self.spooled += len(frames)
        self._frames.set()
        self._wake.set()
        return Durability.COMMITTED

    def acknowledge(self, key: str, entry_id: bytes) -> None:
        """Queue the XACK of a work-queue entry (acknowledgements are written in batches)."""
        ids = self._acks.setdefault(key, {})
        if entry_id not in ids:
            ids[entry_id] = None
            self._ack_count += 1
        self._wake.set()

    @property
    def unacknowledged(self) -> int:
        """Acknowledgements queued, or being written: not written yet."""
        return self._ack_count + self._acks_sending

    def when_acknowledged(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the acknowledgements queued were written (or dropped,
        refused for good): fewer wait."""
        self._acks_written.append(callback)

    def wake(self) -> None:
        """Look for work now (e.g. frames buffered or spooled before the loop started)."""
        if self._buffer or self._spool_to_send:
            self._frames.set()
            self._wake.set()

    async def flush(self, seconds: float, *, until: float | None = None) -> None:
        """Stop taking frames; write what is buffered and the acknowledgements queued or under
        way (for up to ``seconds``, while connected); keep what is left in the spool for the
        next start (its disk waited for until the monotonic time ``until``, if given, half a
        second at least), or count it as dropped without one."""
        self._closed = True
        await self._passes_until(lambda: not (self._buffer or self.unacknowledged), seconds)
        if not self._buffer:
            return
        # A new buffer, not this one emptied: a write of it still under way (given up on)
        # tells by that it was taken (``_write_buffered``).
        left, self._buffer = list(self._buffer), deque()
        self._rewriting = 0
        if self._spool is not None:
            # Past ``until`` (or half a second, what a healthy disk's fsync takes) the append is
            # left to the spool's close, which fails it.
            spool_seconds = None if until is None else max(0.5, until - time.monotonic())
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(spool_seconds):
                    stored = await self._spool.append(left)
                if stored:
                    # The spool may hold more: ingested batches, an earlier run's frames.
                    _logger.warning(
                        "Redis bus stopped with %d frame(s) unwritten: kept in the spool, which"
                        " holds %d frame(s) in all for the next start to write",
                        len(left),
                        self._spool.pending_frames,
                    )
                    return
        _logger.warning("Redis bus stopped with %d frame(s) unwritten", len(left))
        self._count_dropped(len(left))

    async def write_acks(self, seconds: float) -> bool:
        """Write the acknowledgements queued or under way now, without their linger (for up to
        ``seconds``, while connected); whether none is left unwritten. Before a graceful
        hand-over of the work queue: the next holder must not claim what this one handled."""
        await self._passes_until(lambda: not self.unacknowledged, seconds)
        return not self.unacknowledged

    async def _passes_until(self, done: Callable[[], bool], seconds: float) -> None:
        """Have the loop make passes at once, each after the last, until ``done()``, Redis
        is found unreachable, or ``seconds`` are out."""
        deadline = time.monotonic() + seconds
        while not done() and self._link.connected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._pass_ended.clear()
            self._frames.set()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._pass_ended.wait()

    async def run(self) -> None:
        """Write until the transport stops; a refusal as a whole drops nothing (retried, and
        told as the link tells every refusal)."""
        await self._link.keep_trying(self._step)

    def _suspect_data_loss(self) -> None:
        # Did Redis lose its data during the failure? The writer asks when it next gets through.
        self._epoch_unchecked = True
        self._frames.set()
        self._wake.set()
        self._pass_ended.set()  # a flush stops waiting on a Redis that is down

    async def _step(self) -> float | None:
        if not self._has_work():
            # A stream's lane stays once its frames are all forgotten: only frames kept wake it.
            if not self._retained.count:
                await self._wake.wait()
            else:
                # Wake now and then to forget retained frames a consumer group has taken: less
                # often while none is (``retained.py``).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._retained.interval):
                        await self._wake.wait()
            self._wake.clear()
            if not self._has_work():
                with contextlib.suppress(*RETRYABLE):
                    await self._prune_retained()
                return None
        if not self._frames.is_set() and self._ack_count < self._batch:
            # Only acknowledgements: they wait a moment for more (or for frames to go with).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_ACK_LINGER_SECONDS):
                    await self._frames.wait()
        self._wake.clear()
        self._frames.clear()
        # Our own frames must come after the tail we read from, or we would miss them.
        await self._positioned.wait()
        try:
            # Acknowledgements first: they need no epoch (one of a Redis that lost its data names
            # no entry it holds), and a Redis out of memory, which refuses the epoch's SET when
            # the key is gone, takes XACK (it frees memory).
            await self._write_acks()
            if self._epoch_unchecked:
                await self._check_epoch()  # its SET NX, when needed, refused as the writes are
            await self._write_buffered()
            if not (self._rewriting and self._buffer):
                await self._write_spooled()
        except _EpochChanged:
            # Redis lost its data since the last look, and no command failed for it (FLUSHALL,
            # or a restart whose closed connections redis-py made again): the next pass writes
            # again what it lost, then this batch.
            self._epoch_unchecked = True
        except ResponseError as exc:
            if temporary(exc):
                self._held_back = (self._clock(), reason(exc))
            raise
        if self._buffer or self._spool_to_send:
            self._frames.set()  # more than one batch waits: on with the next at once
            self._wake.set()
        if self._retained.due():
            await self._prune_retained()
        self._pass_ended.set()
        return 0.0

    def _has_work(self) -> bool:
        return bool(
            self._buffer
            or self._acks
            or self._spool_to_send
            or (self._retained.lanes and self._epoch_unchecked)
        )

    async def _check_epoch(self) -> None:
        """Find out whether Redis lost its data (a restart without persistence) since we wrote,
        or only its latest writes (``_rolled_back``: started again from older data).

        If it lost its data, the work-queue frames written lately that no consumer group had
        taken yet went with it: they are written again; and it is counted (``data_losses``), for
        the cluster monitor to write its keys again. If only its latest writes, those of them
        after the last one Redis holds are written again, not counted there.
        """
        client = self._link.client
        key = self._layout.epoch
        # Read first, set only when missing: a Redis out of memory refuses the SET (even one
        # that would do nothing), and the frames and the look at what was taken would wait.
        found = await client.get(key)
        if found is None:
            # Ours once set; else another's, unless the key went meanwhile (FLUSHALL, evicted):
            # then the epoch is unknown, and asked again at the next pass.
            token = secrets.token_hex(8)
            found = token if await client.set(key, token, nx=True) else await client.get(key)
            if found is None:
                return
        epoch = text(found)
        lost = self._epoch is not None and epoch != self._epoch
        self.data_losses += lost
        if lost:
            lanes = self._retained.take_all()
            said = "Redis lost its data"
        else:
            lanes = await self._rolled_back()
            said = "Redis lost its latest writes (started again from older data)"
        # Back in the order they were first written (each stream's are in order already).
        frames = [item[2] for item in heapq.merge(*lanes, key=_written_at)]
        self._buffer.extendleft(reversed(frames))
        self._rewriting += len(frames)
        self.rewritten += len(frames)
        if frames:  # streams whose frames were all taken already leave nothing to say
            _logger.warning("%s; writing %d recent work-queue frame(s) again", said, len(frames))
        self._epoch = epoch
        self._epoch_unchecked = False

    async def _rolled_back(self) -> list[Lane]:
        """Take out the retained frames that a Redis with the same epoch no longer holds: one
        started again from a snapshot, or an append-only file fsync'd once a second, older
        than its last writes (a crash of its machine), keeps the epoch and loses those.

        What such a Redis holds is all it held at some moment, so the frames it lost are ours
        after the latest entry it holds up to our latest: one look per stream. A stream holding
        none up to there was trimmed past our frames, or emptied since (left alone), unless the
        last id it generated (``last-generated-id``, which trimming never lowers) is below our
        latest: it held none of our frames after that id (a quiet stream, empty then)."""
        retained = self._retained.lanes
        keys = [key for key, items in retained.items() if items]
        if not keys:
            return []
        pipe = self._link.client.pipeline(transaction=False)
        for key in keys:
            newest = retained[key][-1][1]
            pipe.xrevrange(key, newest, "-", count=1)  # +xrevrange: the ACL user's
            pipe.xinfo_stream(key)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        refusal = next((r for r in replies[::2] if isinstance(r, Exception)), None)
        if refusal is not None:
            raise refusal
        generated = self._generated(replies[1::2])
        lanes: list[Lane] = []
        for key, found, since in zip(keys, replies[::2], generated, strict=True):
            items = retained[key]
            if found:
                held = stream_id(found[0][0])
            elif since is not None and since < stream_id(items[-1][1]):
                held = since
            else:
                continue
            lost: Lane = deque()
            while items and stream_id(items[-1][1]) > held:
                lost.appendleft(items.pop())
            if lost:
                lanes.append(lost)
        return lanes

    def _generated(self, infos: Sequence[Any]) -> list[tuple[int, int] | None]:
        """Each stream's ``last-generated-id`` from its XINFO STREAM (``0-0`` for a stream
        Redis does not hold), or None for each when the ACL refuses that (the rules of a
        version before it): told once while it lasts, asked again at the next look."""
        refusal = next((r for r in infos if isinstance(r, NoPermissionError)), None)
        if refusal is not None:
            if not self._xinfo_refused:
                self._xinfo_refused = True
                _logger.warning(
                    "Redis at %s refuses the bridge's user XINFO STREAM (%s): a work-queue"
                    " stream that Redis, started again from older data, holds empty cannot be"
                    " told from one trimmed, and the frames it lost there are not written"
                    " again; give the user +xinfo|stream (%s)",
                    safe_url(self._link.url),
                    reason(refusal),
                    USER_RULES,
                )
            return [None] * len(infos)
        if self._xinfo_refused:
            self._xinfo_refused = False
            _logger.info(
                "Redis at %s lets the bridge's user run XINFO STREAM again: a work-queue stream"
                " held empty after a restart from older data is told from one trimmed",
                safe_url(self._link.url),
            )
        generated: list[tuple[int, int] | None] = []
        for info in infos:
            if isinstance(info, ResponseError) and str(info) == _NO_SUCH_KEY:
                generated.append((0, 0))  # none: made after the data Redis started from
            elif isinstance(info, Exception):
                raise info
            else:
                generated.append(stream_id(info["last-generated-id"]))
        return generated

    async def _prune_retained(self) -> None:
        """Forget the retained frames a consumer group has handled (or kept too long); a
        Redis found holding another epoch is checked again (it lost its data)."""
        if not await self._retained.prune(None if self._epoch_unchecked else self._epoch):
            self._epoch_unchecked = True
            self._wake.set()

    async def _write_acks(self) -> None:
        acks, self._acks = self._acks, {}
        self._acks_sending, self._ack_count = self._ack_count, 0
        if not acks:
            return
        try:
            pipe = self._link.client.pipeline(transaction=False)
            for key, ids in acks.items():
                pipe.xack(key, GROUP, *ids)
            await pipe.execute()
        except NoPermissionError as exc:
            # Left pending, the entries are claimed and handled again (their ids remembered),
            # and acknowledged once the rule is granted.
            self._link.refused_aside(exc, (self, "acks"))
        except ResponseError as exc:
            if temporary(exc):
                # Refused for now (READONLY: a demoted primary; MISCONF, LOADING, BUSY): kept
                # and written after the backoff, as the frames are.
                self._put_back(acks)
                raise
            # E.g. the group is gone with a Redis that lost its data: nothing left to ack.
            _logger.debug("acknowledgements refused: %s", exc)
        except BaseException:
            self._put_back(acks)
            raise
        else:
            self._link.taken_aside((self, "acks"))
            self._retained.look_soon()  # frames kept may be among those handled
        finally:
            self._acks_sending = 0
        for callback in self._acks_written:
            callback()

    def _put_back(self, acks: dict[str, dict[bytes, None]]) -> None:
        """Queue ``acks``, whose write failed, again: in front of those queued meanwhile, each id
        still once."""
        for key, ids in self._acks.items():
            acks.setdefault(key, {}).update(ids)
        self._acks = acks
        self._ack_count = sum(map(len, acks.values()))

    async def _write_buffered(self) -> None:
        """One batch of the buffer, in one round trip; refused frames go back to its front.

        A batch whose write failed (no answer) is written again as the same batch, under its
        number (the mark), so that Redis, having run the first, writes nothing again."""
        if self._unsure is None:
            self._batches += 1
            self._unsure = (self._batches, min(self._batch, len(self._buffer)))
        number, count = self._unsure
        count = min(count, len(self._buffer))
        if not count:
            self._unsure = None
            return
        self._refresh_old(count)
        buffer = self._buffer
        batch = [buffer[index] for index in range(count)]
        mark = None
        if self._mark is not None and self._clock() >= self._mark_after:
            mark = (self._mark, number)
        try:
            replies = await self._xadd_all(batch, progress=mark, once=mark is not None)
        except _EpochChanged:
            # Nothing written: the next pass's batch (the frames Redis lost first) is another.
            self._unsure = None
            raise
        self._unsure = None
        if replies is None:
            # Redis ran the batch's first write, whose answer was lost: its ids are unknown, so
            # its work-queue frames are not kept to be written again should Redis lose its data.
            _logger.info("a batch of %d frame(s) whose answer was lost had been written", count)
            self.written += count
        elif buffer is not self._buffer:
            # A stop's flush gave up on this write meanwhile and took the buffer, this batch
            # too, to the spool: what Redis took now is counted written (the spool's copy goes
            # again at the next start: at least once), what it refused for now waits there.
            self._written(batch, replies)
        if buffer is not self._buffer:
            return
        for _ in range(count):
            buffer.popleft()
        if replies is None:
            self._rewriting = max(0, self._rewriting - count)
            return
        again, refusal = self._written(batch, replies)
        self._rewriting = max(0, self._rewriting - count + len(again))
        if again:
            self._buffer.extendleft(reversed(again))
        if refusal is not None:
            raise refusal  # back off, then write them again (in order)

    async def _write_spooled(self) -> None:
        """One batch from the head of the spool, in one script call with the spool's progress
        (atomic, as every script), so that Redis holds exactly what it was told the spool got to."""
        spool = self._spool
        if spool is None or not self._spool_to_send:
            return
        batch = await spool.peek(self._batch)
        if batch is None:
            return
        progress = self._layout.spool(batch.segment)
        if not spool.checked(batch):
            # After a restart: a crash may have come after Redis took entries and before the
            # spool's head moved past them.
            done = await self._link.client.get(progress)
            if await spool.resume(batch, None if done is None else int(done)):
                return
        frames = [self._fresh(f, t) for f, t in zip(batch.frames, batch.unix_ts, strict=True)]
        # A refusal of the whole script (e.g. OOM: Redis refuses a writing script up front)
        # raises here and is tried again; one of a single entry inside it (the key holds another
        # type) is for good: retrying the batch would write the others twice.
        try:
            replies = await self._xadd_all(frames, progress=(progress, batch.end))
        except BaseException:
            # The script may have run and only its answer been lost (a reset, a timeout).
            spool.recheck(batch)
            raise
        assert replies is not None  # only a buffered batch's mark answers "written already"
        self._written(frames, replies, retry=False)
        spent = await spool.advance(batch)
        if spent:
            with contextlib.suppress(*RETRYABLE):
                await self._link.client.delete(*(self._layout.spool(i) for i in spent))

    async def _xadd_all(
        self,
        frames: Sequence[Frame],
        *,
        progress: tuple[str, int] | None = None,
        once: bool = False,
    ) -> list[bytes | ResponseError] | None:
        """XADD every frame in one round trip and one script (``_XADD_ALL``), and set the
        spool's ``progress`` key with them; each entry's id, or why Redis refused it. ``once``:
        ``progress`` is a buffered batch's mark; None when Redis holds it already (nothing
        written)."""
        try:
            replies = await self._run_script(frames, progress, once=once)
        except ResponseError as exc:
            if temporary(exc):
                raise
            if once:
                # Refused for good (NOPERM: an ACL keeps EVALSHA, the mark's key or one of the
                # streams from us): without the mark (the script refused before it wrote).
                return await self._unmarked(frames, exc)
            named = script_named(exc, _WRITING_SPOOLED)
            if named is not exc:
                # The script ran, and the ACL refused it the progress (set first: nothing was
                # written); the batch waits in the spool, told, until granted.
                raise named from exc
            if progress is not None and _RUN_REFUSED not in str(exc):
                # One of the keys refused: so would a transaction be, whole, and one whose
                # MULTI the ACL refused too would write the entries without the progress.
                raise
            # Refused whole for good (NOPERM: an ACL keeps EVALSHA, or one of the streams, from
            # us): one XADD each, so that only the entries refused are dropped.
            return await self._xadd_each(frames, progress)
        if once and self._mark_refused:
            self._mark_refused = False
            _logger.info(
                "Redis at %s takes the key %s again: batches of the bridge's own messages are"
                " written with their number again",
                safe_url(self._link.url),
                self._mark,
            )
        return replies

    async def _run_script(
        self, frames: Sequence[Frame], progress: tuple[str, int] | None, *, once: bool
    ) -> list[bytes | ResponseError] | None:
        """Run ``_XADD_ALL`` (``_xadd_all``'s arguments), as it answers; ``_EpochChanged``
        when it wrote nothing, Redis holding another epoch than the writer last found."""
        streams = self._layout.streams
        keys = [self._layout.epoch, *(streams[frame.instance] for frame in frames)]
        args: list[Any] = [len(frames), self._maxlen, self._epoch or ""]
        for frame in frames:
            args += [frame.body, frame.signature or ""]
        if progress is not None:
            keys.append(progress[0])
            args += [progress[1], self._mark_ms if once else _PROGRESS_KEPT_MS, int(once)]
        replies: list[bytes] | int = await self._script(keys=keys, args=args)
        if isinstance(replies, int):
            if replies < 0:
                raise _EpochChanged
            return None
        return [
            ResponseError(reply[1:].decode(errors="replace")) if reply[:1] == b"!" else reply
            for reply in replies
        ]

    async def _unmarked(
        self, frames: Sequence[Frame], refusal: ResponseError
    ) -> list[bytes | ResponseError] | None:
        """Write a buffered batch whose script the ACL refused with its mark, without it: in
        one script, which taken says the mark's key was what was refused (then left out for a
        while, so that each batch does not pay a refused call, and told once), or one XADD each
        (EVALSHA or a stream refused), so that only the entries refused are dropped."""
        if _RUN_REFUSED not in str(refusal):
            try:
                replies = await self._run_script(frames, None, once=False)
            except ResponseError as exc:
                if temporary(exc):
                    raise
            else:
                assert replies is not None  # only a mark answers "written already"
                self._mark_after = self._clock() + self._link.backoff.cap
                if not self._mark_refused:
                    self._mark_refused = True
                    _logger.warning(
                        "Redis at %s refuses the bridge's user the key %s (%s): batches of the"
                        " bridge's own messages are written without their number, so one whose"
                        " answer is lost (a Redis stalled past the socket timeout) may be"
                        " written twice, each replica refusing the copy as a replay; give the"
                        " user GET and SET on exesdb:bus:written:* (~exesdb:* +get +set: %s)",
                        safe_url(self._link.url),
                        self._mark,
                        reason(refusal),
                        USER_RULES,
                    )
                return replies
        return await self._xadd_each(frames, None)

    async def _xadd_each(
        self, frames: Sequence[Frame], progress: tuple[str, int] | None
    ) -> list[bytes | ResponseError]:
        """``_xadd_all`` as one XADD each (``unscripted.py``): ``_EpochChanged`` as the script."""
        replies = await self._unscripted.write(frames, progress, self._epoch)
        if replies is Unwritten.EPOCH_CHANGED:
            raise _EpochChanged
        return replies

    def _written(
        self, frames: Sequence[Frame], replies: Sequence[Any], *, retry: bool = True
    ) -> tuple[list[Frame], ResponseError | None]:
        """Sort out the replies of XADDs: the frames to try again (refused for now, when
        ``retry``), and the first such refusal; those refused for good are dropped."""
        now = self._clock()
        streams = self._layout.streams
        again: list[Frame] = []
        refusal: ResponseError | None = None
        dropped = 0
        for frame, reply in zip(frames, replies, strict=True):
            if isinstance(reply, ResponseError):
                if retry and temporary(reply):
                    again.append(frame)
                    refusal = refusal or reply
                else:
                    # Refused for good (e.g. the key holds another type): retrying won't help.
                    dropped += 1
                    _logger.error("Redis refused a frame of %s; dropped: %s", frame.instance, reply)
                    self._link.refused_for_good(reply)
                continue
            if frame.instance in WORK_QUEUE_INSTANCES:
                self._retained.keep(streams[frame.instance], reply, frame, now)
            self.written += 1
            self._held_back = None
        if dropped:
            self._count_dropped(dropped)
        return again, refusal

    def _refresh_old(self, count: int) -> None:
        """Re-sign our frames among the first ``count`` that waited for half the replay window
        (a Redis outage): with a fresh ``ts`` and the same id they are not refused as expired,
        and the replay memories still refuse a second copy."""
        resign = self._resign
        if resign is None:
            return
        horizon = self._clock() - self._replay_window_ms / 2000
        buffer = self._buffer
        for index in range(count):
            envelope = buffer[index].decoded
            if envelope is not None and envelope.unix_ts < horizon:
                buffer[index] = resign(envelope)
                self.resigned += 1

    def _fresh(self, frame: Frame, unix_ts: float) -> Frame:
        """A spooled frame as it is to be written: signed again if it waited for half the
        replay window (its bytes, ours and verified once, are decoded again for that)."""
        resign = self._resign
        horizon = self._clock() - self._replay_window_ms / 2000
        if resign is None or unix_ts >= horizon:
            return frame
        envelope = decode_envelope(frame.body)
        if isinstance(envelope, Envelope) and envelope.unix_ts < horizon:
            self.resigned += 1
            return resign(envelope)
        return frame


def _written_at(item: tuple[float, bytes, Frame]) -> float:
    return item[0]
