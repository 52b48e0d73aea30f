"""Writes a batch without a script (an ACL user without EVALSHA): one XADD each, epoch compared.

The batch script (``writer.py``) compares the data set's epoch before it writes; a pipeline of
XADDs cannot, and one that follows a GET of the epoch may run after a FLUSHALL that came
between (it breaks no connection). So the XADDs go in a transaction that WATCHes the epoch's
key: GET it, compare, then MULTI … EXEC, which Redis aborts should the key change meanwhile
(FLUSHALL touches it). Nothing is written to a Redis that lost its data since the writer last
looked, and what it lost is written again before any newer frame, as with the script.

Whether the ACL lets the user run that transaction is found by a probe without XADDs (WATCH,
UNWATCH, WATCH, GET, MULTI, EXEC of nothing, on one connection), never by a batch: a refusal
there (told once, naming the commands) has batches written by a plain pipeline, each entry's
reply kept, until a probe after the backoff's cap passes. A right revoked between the probe and
a batch sends that batch unwatched too, but for MULTI: the XADDs queued after it ran at once,
their replies unknown (``Unwritten.IDS_UNKNOWN``), the only batch counted written so.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.exceptions import ExecAbortError, NoPermissionError, ResponseError, WatchError

from bridge.bus.redis.layout import Layout, entry_fields, text
from bridge.bus.redis.link import Link, reason
from bridge.bus.transport import Frame
from bridge.redaction import safe_url

__all__ = ["Unscripted", "Unwritten"]

_logger = logging.getLogger(__name__)

Replies = list[bytes | ResponseError]

# redis-py's words for a queued command Redis refused, which abort the transaction whole
# (``Command # 2 (XADD exesdb:bus:… MAXLEN ~ …) of pipeline caused error: …``): only such an
# XADD is a stream refused; a NOPERM of UNWATCH (sent by the pipeline's reset) is not.
_QUEUED: Final = re.compile(r"Command # \d+ \(")
_XADD_REFUSED: Final = re.compile(r"Command # \d+ \(XADD ")
# Redis's words for an EXEC whose MULTI the ACL refused: the XADDs between ran at once.
_MULTI_REFUSED: Final = "EXEC without MULTI"
# Redis's words naming a command the ACL refuses (``… no permissions to run the 'exec' command``),
# as NOPERM or, EXEC refused, EXECABORT.
_RUN_REFUSED: Final = re.compile(r"no permissions to run the '([\w|]+)' command")


class Unwritten(enum.Enum):
    """What a write answered instead of each entry's reply."""

    EPOCH_CHANGED = "nothing written: Redis holds another epoch (it lost its data)"
    IDS_UNKNOWN = "written, the entries' ids unknown (MULTI refused: the XADDs ran at once)"


@dataclass(frozen=True)
class _Refused:
    """A command of the watched transaction the ACL refused since the probe (WATCH, GET of the
    epoch, UNWATCH, MULTI, EXEC): the batch goes unwatched, unless ``written`` already (MULTI)."""

    command: str
    refusal: ResponseError
    written: bool = False


class Unscripted:
    """One XADD per frame in a transaction watching the epoch's key; the ACL refusing a command
    of it (the rules of a version before it), a plain pipeline, told once, probed again now and
    then."""

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
        # Batches go watched only after a probe found the transaction's commands granted; one
        # refused (told once), unwatched until ``_probe_after``, the backoff's cap after it, so
        # that a grant is taken within seconds.
        self._watching = False
        self._told = False
        self._probe_after = 0.0

    async def write(
        self, frames: Sequence[Frame], progress: tuple[str, int] | None, epoch: str | None
    ) -> Replies | Unwritten:
        """XADD each of ``frames`` (with the spool's ``progress``, in one transaction): each
        entry's id, or why Redis refused it; else what it did instead (``Unwritten``) when
        Redis holds another epoch than ``epoch`` (the one the writer last found; None: not
        compared), or took the entries with their ids unknown (never with ``progress``)."""
        if epoch is None:
            return await self._unwatched(frames, progress)
        if not self._watching and (self._clock() < self._probe_after or not await self._probe()):
            return await self._unwatched(frames, progress)
        try:
            done = await self._watched(frames, progress, epoch)
        except NoPermissionError as exc:
            # A stream refused aborts the whole transaction: one per stream, so that only the
            # entries refused are dropped (with the progress, the batch waits whole).
            if progress is not None or not _XADD_REFUSED.match(str(exc)):
                raise
            streams = self._layout.streams
            if len({streams[frame.instance] for frame in frames}) == 1:
                return [exc] * len(frames)
            return await self._by_stream(frames, epoch)
        if not isinstance(done, _Refused):
            return done
        self._refused([done.command], done.refusal)
        if done.written:
            if progress is not None:
                # The progress was set with them, not atomically: the spool looks at it again.
                raise done.refusal
            return Unwritten.IDS_UNKNOWN
        return await self._unwatched(frames, progress)

    async def _watched(
        self, frames: Sequence[Frame], progress: tuple[str, int] | None, epoch: str
    ) -> Replies | Unwritten | _Refused:
        """``write`` in a transaction run only while Redis holds ``epoch``; a command of it the
        ACL refuses, as ``_Refused``."""
        key = self._layout.epoch
        async with self._link.client.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
            except NoPermissionError as exc:
                await _close(pipe.connection)
                return _Refused("WATCH", exc)
            try:
                found = await pipe.get(key)
            except NoPermissionError as exc:
                await _close(pipe.connection)
                return _Refused("GET", exc)
            if found is None or text(found) != epoch:
                refusal = await _unwatch(pipe)
                if refusal is not None:
                    self._refused(["UNWATCH"], refusal)
                return Unwritten.EPOCH_CHANGED
            pipe.multi()  # type: ignore[no-untyped-call]
            self._queue(pipe, frames, progress)
            connection = pipe.connection
            try:
                replies: Replies = await pipe.execute(raise_on_error=False)
            except WatchError:
                # The key changed after the GET (FLUSHALL touches it): nothing ran.
                return Unwritten.EPOCH_CHANGED
            except ResponseError as exc:
                # Given back to the pool by the pipeline's reset, maybe still watching or in
                # MULTI (its UNWATCH refused too): closed, which ends both.
                await _close(connection)
                return _refused_in_transaction(exc)
        return replies[: len(frames)]

    async def _probe(self) -> bool:
        """Whether the ACL lets the user run the watched transaction, found by running one that
        queues nothing: then batches go watched; else told (once), with the commands refused."""
        key = self._layout.epoch
        commands = [
            ("WATCH", key),
            ("UNWATCH",),
            ("WATCH", key),
            ("GET", key),
            ("MULTI",),
            ("EXEC",),
        ]
        refused: dict[str, ResponseError] = {}
        pool = self._link.client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        clean = False
        try:
            for command in commands:
                await connection.send_command(*command)
                try:
                    await connection.read_response()
                except (NoPermissionError, ExecAbortError) as exc:  # EXECABORT: EXEC refused
                    refused.setdefault(command[0], exc)
                except ResponseError:
                    if "MULTI" not in refused:  # else "EXEC without MULTI", as expected
                        raise
            clean = not refused
        finally:
            if not clean:
                # Maybe still watching (UNWATCH refused, MULTI, or a reply not read): closed,
                # which ends it, rather than given back so.
                await _close(connection)
            await pool.release(connection)
        if refused:
            self._refused(list(refused), next(iter(refused.values())))
            return False
        self._watching = True
        if self._told:
            self._told = False
            _logger.info(
                "Redis at %s lets the bridge's user run its watched transaction again (WATCH,"
                " UNWATCH, GET, MULTI, EXEC): batches written without a script compare the data"
                " set's epoch first",
                safe_url(self._link.url),
            )
        return True

    async def _by_stream(self, frames: Sequence[Frame], epoch: str) -> Replies | Unwritten:
        """``write`` of each stream's frames on their own (in order within each stream, which is
        read on its own): each entry's reply in its place."""
        streams = self._layout.streams
        keys = [streams[frame.instance] for frame in frames]
        placed: dict[int, bytes | ResponseError] = {}
        unknown = False
        for key in dict.fromkeys(keys):
            places = [index for index, each in enumerate(keys) if each == key]
            written = await self.write([frames[index] for index in places], None, epoch)
            if written is Unwritten.EPOCH_CHANGED:
                # Those written went with the data Redis lost: written again, after it.
                return written
            if written is Unwritten.IDS_UNKNOWN:
                # MULTI taken away since the probe: those ran at once; the other streams' go on,
                # unwatched, their replies unknown with them (a refusal among them unseen).
                unknown = True
                continue
            for index, reply in zip(places, written, strict=True):
                placed[index] = reply
        if unknown:
            return Unwritten.IDS_UNKNOWN
        return [placed[index] for index in range(len(frames))]

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

    def _refused(self, commands: list[str], refusal: ResponseError) -> None:
        self._watching = False
        self._probe_after = self._clock() + self._link.backoff.cap
        if self._told:
            return
        self._told = True
        _logger.warning(
            "Redis at %s refuses the bridge's user %s (%s), and EVALSHA: batches are written"
            " without comparing the data set's epoch first, so a message published just after"
            " Redis lost its data without a restart (FLUSHALL) may be written before those it"
            " lost are written again; give the user +watch +unwatch +multi +exec and GET on"
            " exesdb:bus:epoch (docs/redis.md#a-redis-user-for-the-bridge)",
            safe_url(self._link.url),
            " and ".join(commands),
            reason(refusal),
        )


async def _unwatch(pipe: Pipeline) -> NoPermissionError | None:
    """End ``pipe``'s WATCH, its refusal returned: its connection is closed then, which ends
    it too (the pipeline's reset would send UNWATCH again, and raise the refusal, giving the
    connection back to the pool still watching)."""
    try:
        await pipe.unwatch()  # type: ignore[no-untyped-call]
    except NoPermissionError as exc:
        await _close(pipe.connection)
        return exc
    return None


async def _close(connection: Connection | None) -> None:
    """Disconnect ``connection`` (None: the pipeline has none), whose WATCH or MULTI may last:
    the pool opens it again when next taken."""
    if connection is not None:
        await connection.disconnect()


def _refused_in_transaction(exc: ResponseError) -> _Refused:
    """The command of the transaction's own the ACL refused, which ``exc`` (raised by EXEC, or
    by the UNWATCH of the pipeline's reset, the error before as its context) tells; else
    ``exc`` again (an XADD or the progress's SET refused, the transaction aborted whole)."""
    errors: list[BaseException] = [exc]
    if exc.__context__ is not None:
        errors.append(exc.__context__)
    if any(_MULTI_REFUSED in str(error) for error in errors):
        return _Refused("MULTI", exc, written=True)  # the XADDs between ran at once
    named = _RUN_REFUSED.search(str(exc))
    if (
        isinstance(exc, NoPermissionError | ExecAbortError)
        and not _QUEUED.match(str(exc))
        and named is not None
    ):
        # UNWATCH after an aborted transaction (nothing ran), or EXEC.
        return _Refused(named.group(1).upper(), exc)
    raise exc
