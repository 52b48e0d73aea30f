"""Writes a batch without a script (an ACL user without EVALSHA): one XADD each, epoch compared.

The batch script (``writer.py``) compares the data set's epoch before it writes; a pipeline of
XADDs cannot, and one that follows a GET of the epoch may run after a FLUSHALL that came
between (it breaks no connection). So the XADDs go in a transaction that WATCHes the epoch's
key: GET it, compare, then MULTI … EXEC, which Redis aborts should the key change meanwhile
(FLUSHALL touches it). Nothing is written to a Redis that lost its data since the writer last
looked, and what it lost is written again before any newer frame, as with the script.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.client import Pipeline
from redis.exceptions import NoPermissionError, ResponseError, WatchError

from bridge.bus.redis.layout import Layout, entry_fields, text
from bridge.bus.redis.link import Link, reason
from bridge.bus.transport import Frame
from bridge.redaction import safe_url

__all__ = ["Unscripted"]

_logger = logging.getLogger(__name__)

Replies = list[bytes | ResponseError]


class _WatchRefused(Exception):
    """The ACL refuses the user WATCH: the batch goes unwatched."""

    def __init__(self, refusal: NoPermissionError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class Unscripted:
    """One XADD per frame in a transaction watching the epoch's key; without WATCH (the rules
    of a version before it), a plain pipeline, told once, WATCH tried again now and then."""

    def __init__(
        self,
        link: Link,
        layout: Layout,
        *,
        maxlen: int,
        progress_ms: int,
        clock: Callable[[], float],
    ) -> None:
        """``progress_ms``: how long the spool's progress stays in Redis; ``clock``: monotonic."""
        self._link = link
        self._layout = layout
        self._maxlen = maxlen
        self._progress_ms = progress_ms
        self._clock = clock
        # The ACL refusing WATCH (told once): batches go unwatched until ``_watch_after``, the
        # backoff's cap after it was last refused, so that a grant is taken within seconds.
        self._watch_refused = False
        self._watch_after = 0.0

    async def write(
        self, frames: Sequence[Frame], progress: tuple[str, int] | None, epoch: str | None
    ) -> Replies | None:
        """XADD each of ``frames`` (with the spool's ``progress``, in one transaction): each
        entry's id, or why Redis refused it; None, nothing written, when Redis holds another
        epoch than ``epoch`` (the one the writer last found; None: not compared)."""
        if epoch is None or self._clock() < self._watch_after:
            return await self._unwatched(frames, progress)
        try:
            return await self._watched(frames, progress, epoch)
        except _WatchRefused as exc:
            self._refused(exc.refusal)
            return await self._unwatched(frames, progress)
        except NoPermissionError as exc:
            # A stream refused aborts the whole transaction: one per stream, so that only the
            # entries refused are dropped (with the progress, the batch waits whole).
            if progress is not None:
                raise
            streams = self._layout.streams
            if len({streams[frame.instance] for frame in frames}) == 1:
                return [exc] * len(frames)
            return await self._by_stream(frames, epoch)

    async def _watched(
        self, frames: Sequence[Frame], progress: tuple[str, int] | None, epoch: str
    ) -> Replies | None:
        """``write`` in a transaction run only while Redis holds ``epoch``."""
        key = self._layout.epoch
        async with self._link.client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
            except NoPermissionError as exc:
                raise _WatchRefused(exc) from exc
            self._granted()
            found = await pipe.get(key)
            if found is None or text(found) != epoch:
                return None  # the pipeline's reset UNWATCHes
            pipe.multi()  # type: ignore[no-untyped-call]
            self._queue(pipe, frames, progress)
            try:
                replies: Replies = await pipe.execute(raise_on_error=False)
            except WatchError:
                return None  # the key changed after the GET (FLUSHALL touches it): nothing ran
        return replies[: len(frames)]

    async def _by_stream(self, frames: Sequence[Frame], epoch: str) -> Replies | None:
        """``write`` of each stream's frames on their own (in order within each stream, which is
        read on its own): each entry's reply in its place."""
        streams = self._layout.streams
        keys = [streams[frame.instance] for frame in frames]
        replies: list[bytes | ResponseError | None] = [None] * len(frames)
        for key in dict.fromkeys(keys):
            places = [index for index, each in enumerate(keys) if each == key]
            written = await self.write([frames[index] for index in places], None, epoch)
            if written is None:
                # Those written went with the data Redis lost: written again, after it.
                return None
            for index, reply in zip(places, written, strict=True):
                replies[index] = reply
        return [reply for reply in replies if reply is not None]

    async def _unwatched(
        self, frames: Sequence[Frame], progress: tuple[str, int] | None
    ) -> Replies:
        """A pipeline of XADDs (a transaction, with the progress), the epoch not compared."""
        pipe = self._link.client.pipeline(transaction=progress is not None)
        self._queue(pipe, frames, progress)
        replies: Replies = await pipe.execute(raise_on_error=False)
        return replies[: len(frames)]

    def _queue(
        self, pipe: Pipeline, frames: Sequence[Frame], progress: tuple[str, int] | None
    ) -> None:
        streams = self._layout.streams
        for frame in frames:
            fields: Any = entry_fields(frame.body, frame.signature)
            pipe.xadd(streams[frame.instance], fields, maxlen=self._maxlen, approximate=True)
        if progress is not None:
            pipe.set(progress[0], progress[1], px=self._progress_ms)

    def _refused(self, refusal: NoPermissionError) -> None:
        self._watch_after = self._clock() + self._link.backoff.cap
        if self._watch_refused:
            return
        self._watch_refused = True
        _logger.warning(
            "Redis at %s refuses the bridge's user WATCH (%s), and EVALSHA: batches are written"
            " without comparing the data set's epoch first, so a message published just after"
            " Redis lost its data without a restart (FLUSHALL) may be written before those it"
            " lost are written again; give the user +watch +unwatch"
            " (docs/redis.md#a-redis-user-for-the-bridge)",
            safe_url(self._link.url),
            reason(refusal),
        )

    def _granted(self) -> None:
        if self._watch_refused:
            self._watch_refused = False
            _logger.info(
                "Redis at %s lets the bridge's user run WATCH again: batches written without a"
                " script compare the data set's epoch first",
                safe_url(self._link.url),
            )
