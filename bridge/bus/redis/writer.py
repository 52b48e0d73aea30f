"""Writes what the bus sends to the streams: buffered frames (XADD), acknowledgements (XACK).

``send`` never blocks: frames wait in a bounded local buffer that ``run`` writes, in order, in
batches, through reconnections and backoff; a frame that waited half the replay window there is
signed again (fresh ``ts``, same id) so that it is not refused as expired. Work-queue frames
written lately are retained until a consumer group has taken them, and written again if Redis
turns out to have lost its data meanwhile (a restart without persistence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from redis.exceptions import ResponseError

from bridge.bus.envelope import Envelope
from bridge.bus.redis.layout import GROUP, Layout, entry_fields, stream_id, text
from bridge.bus.redis.link import RETRYABLE, Link, temporary
from bridge.bus.transport import WORK_QUEUE_INSTANCES, Frame

__all__ = ["Writer"]

_logger = logging.getLogger(__name__)

# How often retained work-queue frames are checked against the consumer groups.
_PRUNE_SECONDS: Final = 0.05
# Poll interval of ``flush`` while it waits for the buffer to empty.
_FLUSH_POLL_SECONDS: Final = 0.01


class Writer:
    """The local buffer of frames and acknowledgements, and the loop that writes them."""

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
    ) -> None:
        """``positioned`` is set once the fan-out reader knows where each stream ends: our own
        frames must come after the tail it reads from, or it would miss them."""
        self._link = link
        self._layout = layout
        self._positioned = positioned
        self._buffer_size = buffer_size
        self._maxlen = stream_maxlen
        self._batch = batch_size
        self._replay_window_ms = replay_window_ms
        self._clock = clock
        self._buffer: deque[Frame] = deque()
        # Work-queue frames written but maybe not yet taken by a consumer group: (written at,
        # stream, entry id, frame); written again if Redis turns out to have lost its data.
        self._retained: deque[tuple[float, str, bytes, Frame]] = deque(maxlen=buffer_size)
        self._retain_seconds = max(10.0, 2 * claim_idle_ms / 1000)
        self._epoch: str | None = None
        self._epoch_unchecked = True
        self._last_prune = 0.0
        self._acks: dict[str, list[bytes]] = {}
        self._wake = asyncio.Event()
        self._closed = False
        # Set by the bus (``attach``): re-signs a frame grown old in the buffer; counts drops.
        self._resign: Callable[[Envelope], Frame] | None = None
        self._count_dropped: Callable[[int], None] = lambda count: None
        # Self-metrics, read at scrape time.
        self.written = 0
        self.rewritten = 0
        self.resigned = 0
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
        """Frames waiting to be written."""
        return len(self._buffer)

    def capacity_left(self) -> int:
        """How many more frames ``send`` would take now."""
        return 0 if self._closed else self._buffer_size - len(self._buffer)

    def send(self, frame: Frame) -> bool:
        """Buffer a frame for writing; False when the buffer is full (or the writer closed)."""
        if self._closed or len(self._buffer) >= self._buffer_size:
            return False
        # Never the in-process shortcut: what crosses Redis is verified from its bytes (the
        # envelope is kept only to re-sign a frame that waits too long, see _refresh_old).
        self._buffer.append(Frame(frame.instance, frame.body, frame.signature, frame.decoded))
        self._wake.set()
        return True

    def acknowledge(self, key: str, entry_id: bytes) -> None:
        """Queue the XACK of a work-queue entry (acknowledgements are written in batches)."""
        self._acks.setdefault(key, []).append(entry_id)
        self._wake.set()

    def wake(self) -> None:
        """Look for work now (e.g. frames buffered before the loop started)."""
        if self._buffer:
            self._wake.set()

    async def flush(self, seconds: float) -> None:
        """Stop taking frames; write what is buffered (for up to ``seconds``, while connected);
        count what is left as dropped."""
        self._closed = True
        deadline = time.monotonic() + seconds
        while (self._buffer or self._acks) and self._link.connected:
            if time.monotonic() >= deadline:
                break
            self._wake.set()
            await asyncio.sleep(_FLUSH_POLL_SECONDS)
        if self._buffer:
            _logger.warning("Redis bus stopped with %d frame(s) unwritten", len(self._buffer))
            self._count_dropped(len(self._buffer))
            self._buffer.clear()

    async def run(self) -> None:
        """Write until the transport stops; a refusal as a whole drops nothing (retried)."""
        await self._link.keep_trying(self._step, refused=_log_refusal)

    def _suspect_data_loss(self) -> None:
        # Did Redis lose its data during the failure? The writer asks when it next gets through.
        self._epoch_unchecked = True
        self._wake.set()

    async def _step(self) -> float | None:
        if not self._has_work():
            if not self._retained:
                await self._wake.wait()
            else:
                # Wake now and then to forget retained frames a consumer group has taken.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_PRUNE_SECONDS):
                        await self._wake.wait()
            self._wake.clear()
            if not self._has_work():
                with contextlib.suppress(*RETRYABLE):
                    await self._prune_retained()
                return None
        # Our own frames must come after the tail we read from, or we would miss them.
        await self._positioned.wait()
        if self._epoch_unchecked:
            await self._check_epoch()
        await self._write_once()
        if self._clock() - self._last_prune >= _PRUNE_SECONDS:
            await self._prune_retained()
        return 0.0

    def _has_work(self) -> bool:
        return bool(self._buffer or self._acks or (self._retained and self._epoch_unchecked))

    async def _check_epoch(self) -> None:
        """Find out whether Redis lost its data (a restart without persistence) since we wrote.

        If it did, the work-queue frames written lately that no consumer group had taken yet
        went with it: they are written again.
        """
        client = self._link.client
        key = self._layout.epoch
        await client.set(key, secrets.token_hex(8), nx=True)
        epoch = text(await client.get(key))
        if self._epoch is not None and epoch != self._epoch and self._retained:
            frames = [frame for _, _, _, frame in self._retained]
            self._retained.clear()
            self._buffer.extendleft(reversed(frames))
            self.rewritten += len(frames)
            _logger.warning(
                "Redis lost its data; writing %d recent work-queue frame(s) again", len(frames)
            )
        self._epoch = epoch
        self._epoch_unchecked = False

    async def _prune_retained(self) -> None:
        self._last_prune = self._clock()
        horizon = self._last_prune - self._retain_seconds
        while self._retained and self._retained[0][0] < horizon:
            self._retained.popleft()
        if not self._retained or not self._link.connected or self._epoch_unchecked:
            return
        keys = sorted({key for _, key, _, _ in self._retained})
        pipe = self._link.client.pipeline(transaction=False)
        pipe.get(self._layout.epoch)
        for key in keys:
            pipe.xinfo_groups(key)
        replies: list[Any] = await pipe.execute()
        if replies[0] is None or text(replies[0]) != self._epoch:
            # A Redis that lost its data: its groups say nothing about our frames.
            self._epoch_unchecked = True
            self._wake.set()
            return
        taken: dict[str, tuple[int, int]] = {}
        for key, groups in zip(keys, replies[1:], strict=True):
            for group in groups:
                if text(group.get("name")) == GROUP:
                    taken[key] = stream_id(group.get("last-delivered-id"))
        self._retained = deque(
            (
                item
                for item in self._retained
                if item[1] not in taken or stream_id(item[2]) > taken[item[1]]
            ),
            maxlen=self._retained.maxlen,
        )

    async def _write_once(self) -> None:
        acks, self._acks = self._acks, {}
        try:
            if acks:
                pipe = self._link.client.pipeline(transaction=False)
                for key, ids in acks.items():
                    pipe.xack(key, GROUP, *ids)
                await pipe.execute()
        except ResponseError as exc:
            # E.g. the group is gone with a Redis that lost its data: nothing left to ack.
            _logger.debug("acknowledgements refused: %s", exc)
        except BaseException:
            for key, ids in acks.items():
                self._acks.setdefault(key, []).extend(ids)
            raise
        count = min(self._batch, len(self._buffer))
        if not count:
            return
        self._refresh_old(count)
        batch = [self._buffer[index] for index in range(count)]
        streams = self._layout.streams
        pipe = self._link.client.pipeline(transaction=False)
        for frame in batch:
            pipe.xadd(
                streams[frame.instance],
                entry_fields(frame.body, frame.signature),  # type: ignore[arg-type]
                maxlen=self._maxlen,
                approximate=True,
            )
        replies = await pipe.execute(raise_on_error=False)
        now = self._clock()
        again: list[Frame] = []
        refusal: ResponseError | None = None
        dropped = 0
        for frame, reply in zip(batch, replies, strict=True):
            self._buffer.popleft()
            if isinstance(reply, ResponseError):
                if temporary(reply):
                    again.append(frame)
                    refusal = refusal or reply
                else:
                    # Refused for good (e.g. the key holds another type): retrying won't help.
                    dropped += 1
                    _logger.error("Redis refused a frame of %s; dropped: %s", frame.instance, reply)
                continue
            if frame.instance in WORK_QUEUE_INSTANCES:
                self._retained.append((now, streams[frame.instance], reply, frame))
            self.written += 1
        if again:
            self._buffer.extendleft(reversed(again))
        if dropped:
            self._count_dropped(dropped)
        if refusal is not None:
            raise refusal  # back off, then write them again (in order)

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


def _log_refusal(exc: ResponseError) -> bool:
    """A command refused as a whole (frames refused one by one are sorted out in _write_once):
    nothing is dropped; said once, then retried with backoff."""
    if not temporary(exc):
        _logger.error("Redis refused a command of the writer: %s", exc)
    return False
