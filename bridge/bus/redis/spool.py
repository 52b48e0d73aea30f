"""The spool: frames taken in with a promise (HTTP ingest's 202), kept on disk until in Redis.

A batch is answered 202 only once it is here, written and fsync'd, so that neither a Redis
outage nor a crash of the bridge loses it; the writer sends the spool to Redis in order, from
the oldest record, and moves the spool's head past what Redis took. Past ``max_bytes`` of records
not yet sent the spool takes no more (ingest answers 503).

On disk, under ``<EXESDB_STATE_DIR>/spool/``::

    <seq>-<id>.spool   segments, appended in turn (a new one past ``segment_bytes``), deleted
                       once sent; each a run of records: length (4 bytes), CRC-32 of the rest
                       (4), the bus instance's index (1), the envelope's Unix time (8, a
                       double), the signature's length (1), the signature, the envelope bytes
    head               "<seq> <offset>": how far the writer got in the first segment
    lock               held (flock) while a bridge has the spool open: one bridge per spool

The writer also records its progress through a segment in Redis, in the same script call as the
entries it writes (``Layout.spool``), and a reopened spool resumes from the further of the two:
a crash between writing to Redis and moving the head sends nothing twice, nor does a write whose
answer was lost (Redis is asked again after any failed write). A record torn by a
crash while it was appended (never answered 202) is cut off when the spool is opened. A damaged
record with whole records after it (the disk changed it) is skipped, logged, and the records
after it are found again (the next offset where a whole record checks out) and sent.

The spool's files deleted or replaced under it (``rm -rf $EXESDB_STATE_DIR``, a tmp cleaner, a
volume mounted over it) are found (``bridge.displaced``: the lock it holds and each segment
against what their paths name) before and after each write and once a second
(``check_displaced``); a write found so after its fsync is cut back and refused, not answered
stored. The spool then takes nothing more (``displaced`` says why) and sends nothing from its
files, until they are back where they were.

Its disk refusing it otherwise (full, failing, read-only) is the spool's fault, not Redis's
(``spool_disk``): a write refused fails its batch, a read refused is tried again after a wait;
``fault`` says which, for readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import queue
import re
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from bridge.bus.redis.spool_disk import SpoolDiskError, SpoolDiskFaults
from bridge.bus.transport import Frame
from bridge.disk import sync_directory
from bridge.displaced import DisplacedWatch, first_displaced, identity
from bridge.messages import INSTANCES
from bridge.statelock import hold

__all__ = ["FOLDER", "Spool", "SpoolBatch", "SpoolDiskError", "SpoolDisplaced", "waiting"]

_logger = logging.getLogger(__name__)

FOLDER: Final = "spool"  # in EXESDB_STATE_DIR
_HEADER: Final = struct.Struct(">II")  # payload length, CRC-32 of the payload
_FIXED: Final = struct.Struct(">BdB")  # instance index, Unix time, signature length
_SUFFIX: Final = ".spool"
_HEAD: Final = "head"
_LOCK: Final = "lock"
_INDEX: Final = {name: index for index, name in enumerate(INSTANCES)}
# What one read from a segment takes (more when a single record is larger).
_READ_BYTES: Final = 1024 * 1024
_LAST_CALLS_SECONDS: Final = 0.1  # what the stop gives the thread past its budget
# Where a record may begin: its instance index (after the length and the CRC) is one of ours.
# A frame's body is JSON, which holds no byte below 0x20: no record is ever found inside one.
_MAY_BEGIN: Final = re.compile(b"(?=.{8}[\\x00-\\x%02x])" % (len(INSTANCES) - 1), re.DOTALL)

T = TypeVar("T")
# An append: its records, how many frames they hold, and its caller's answer.
_Append = tuple[bytes, int, asyncio.Future[bool]]
# A new process opens the spool at the path, and sends what its files hold; records in files
# deleted went with them.
_WHAT_TO_DO: Final = (
    "the messages it would store there would be lost at the next start, so it takes none"
    " (ingest answers 503) and reports not ready; restart the bridge (it opens a new spool"
    " there; what the files deleted held is lost), or move the folder back if it was moved"
)


class SpoolDisplaced(OSError):
    """An append refused: the spool's files are no longer the files at their paths (its
    message says which, and what to do)."""


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Records read from the head of the spool: the frames, each one's Unix time, and where they
    lie (the segment's id, the byte offsets before the first and after the last)."""

    frames: list[Frame]
    unix_ts: list[float]
    segment: str
    start: int
    end: int


@dataclass(slots=True)
class _Segment:
    seq: int
    id: str
    path: Path
    size: int
    # The file's ``identity`` as opened or made: not held open, a segment is told deleted
    # (no file at its path) or replaced (another there) by it.
    identity: tuple[int, int]


class Spool:
    """The spool's files, touched only from its own thread; see the module docstring."""

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int,
        segment_bytes: int,
        changed: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_bytes``: room for records not yet sent; ``segment_bytes``: when to start a new
        segment file; ``changed`` is called as ``displaced`` changes, and once a read the disk
        refused may be tried again; ``clock`` (monotonic seconds) ages a write refused."""
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._head = 0  # offset in the first segment
        # Segments whose progress in Redis was asked, or that this spool made (none to ask).
        self._checked: set[str] = set()
        self._head_failing = False  # the head file could not be written last time
        self._pool = _Thread("redis-spool")
        # Appends waiting for the thread, and those it writes (touched on the event loop only).
        self._waiting: list[_Append] = []
        self._writing: list[_Append] = []
        self._appending: asyncio.Task[None] | None = None
        self._lock: int | None = None  # the lock file's descriptor while open
        # The lock file's path and identity (held open: its inode stays its own), as checked.
        self._lock_held: list[tuple[Path, tuple[int, int]]] = []
        self._opened = False
        self._closed = False
        # Bytes of records stored, and sent: each counted by one thread alone (the first on
        # the event loop as a write is answered, the second on the spool's), so that neither
        # count loses the other's change.
        self._stored = 0
        self._sent = 0
        # The same for records (frames), for what a stop says the spool holds.
        self._stored_frames = 0
        self._sent_frames = 0
        self._displaced = DisplacedWatch(
            self._check_files,
            changed,
            what_to_do=_WHAT_TO_DO,
            label="spool",
            back="the spool's files are at their paths again",
            logger=_logger,
            told=self._held,
        )
        # Spent segments the disk would not delete yet (touched on the spool's thread), the
        # ids of those deleted since ``advance`` last said them, and whether any is left (the
        # event loop's copy: a retry of the deletion comes with the disk fault's wake).
        self._undeleted: list[_Segment] = []
        self._deleted: list[str] = []
        self._spent_left = False
        self._deleting: asyncio.Task[None] | None = None
        self._changed = changed
        self._disk = SpoolDiskFaults(
            self._disk_again,
            self.directory,
            clock=clock,
            waiting=lambda: self.pending_bytes > 0,
        )

    @property
    def displaced(self) -> str | None:
        """Why the spool takes nothing now, its files deleted or replaced under it (with what
        to do), as last found; None while they are at their paths."""
        return self._displaced.problem

    @property
    def fault(self) -> str | None:
        """What the spool's disk refuses now (``spool_disk``), with what comes of it; None when
        nothing."""
        return self._disk.fault

    @property
    def unwritable(self) -> str | None:
        """Why the last append failed on the disk, while none has been written since."""
        return self._disk.unwritable

    @property
    def disk_errors(self) -> int:
        """Operations the spool's disk refused, counted."""
        return self._disk.errors

    @property
    def pending_bytes(self) -> int:
        """Bytes of records not yet sent (what ``max_bytes`` bounds)."""
        return self._stored - self._sent

    @property
    def sendable_bytes(self) -> int:
        """``pending_bytes`` the writer may read now: none while the spool's files are
        displaced, nor while a read the disk refused waits to be tried again (``changed`` is
        called then)."""
        if self._displaced.problem is not None or self._disk.resting:
            return 0
        return self.pending_bytes

    @property
    def pending_frames(self) -> int:
        """Records (frames) not yet sent: this run's and those an earlier run left."""
        return self._stored_frames - self._sent_frames

    # -- from the event loop --

    async def open(self) -> int:
        """Open (creating as needed) the spool directory and find where it left off; returns
        the number of records still to send."""
        return await self._call(self._open)

    async def append(self, frames: Sequence[Frame]) -> bool:
        """Write ``frames`` to the end of the spool and fsync; False (none written) when they do
        not fit in ``max_bytes``. Raises ``SpoolDiskError`` when the disk refuses them (none
        counted as written), ``SpoolDisplaced`` when the spool's files went.

        Appends arriving while one is written are written after it together, with one fsync.
        """
        if self._closed:
            raise OSError(errno.ESHUTDOWN, "the spool is closed")
        if self._displaced.problem is not None:
            raise SpoolDisplaced(self._displaced.problem)
        data = b"".join(_record(frame) for frame in frames)
        # Those the thread writes too: they count in ``pending_bytes`` once their write is
        # answered, in the step that takes them out of ``_writing``.
        taken = self.pending_bytes + sum(
            len(item) for item, _, _ in (*self._writing, *self._waiting)
        )
        if taken + len(data) > self.max_bytes:
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((data, len(frames), future))
        if self._appending is None:
            self._appending = asyncio.get_running_loop().create_task(self._append_waiting())
        return await asyncio.shield(future)

    async def peek(self, count: int) -> SpoolBatch | None:
        """Up to ``count`` records from the head (which does not move), or None when nothing
        waits, the spool's files are displaced (then none can be read), or the disk refuses
        the read (tried again once ``sendable_bytes`` says so)."""
        if not self.sendable_bytes:
            return None
        try:
            return await self._call(self._peek, count)
        except OSError as exc:
            # Its segment deleted since the last look: the spool's files went.
            if isinstance(exc, FileNotFoundError) and await self.check_displaced() is not None:
                return None
            if exc.errno is None:
                raise
            self._disk.send_failed(exc)
            return None

    async def check_displaced(self) -> str | None:
        """Look whether the spool's files are still at their paths (on its thread: a stat
        each); ``displaced`` as it is now."""
        return await self._displaced.check()

    def checked(self, batch: SpoolBatch) -> bool:
        """True once Redis was asked how far the writer got through ``batch``'s segment, and
        for a segment this spool made since it opened (Redis cannot know it before a write)."""
        return batch.segment in self._checked

    def recheck(self, batch: SpoolBatch) -> None:
        """Ask Redis again before sending ``batch``'s segment on: a write that failed on the
        way back may have been taken."""
        self._checked.discard(batch.segment)

    async def resume(self, batch: SpoolBatch, offset: int | None) -> bool:
        """Redis says the writer got to ``offset`` in ``batch``'s segment (None: it does not
        know); True when the head moved past ``batch.start`` for that, or when the disk
        refused the move (nothing to send now: Redis is asked again after the wait)."""
        self._checked.add(batch.segment)
        if offset is None or offset <= batch.start:
            return False
        _logger.info(
            "spool: Redis already holds records up to byte %d of %s", offset, batch.segment
        )
        try:
            await self._call(self._move, batch.segment, offset, None)
        except OSError as exc:
            if exc.errno is None:
                raise
            self._checked.discard(batch.segment)  # sent from the head, it would come twice
            self._disk.send_failed(exc)
            return True
        await self._delete_spent()
        return True

    async def advance(self, batch: SpoolBatch) -> list[str]:
        """Move the head past ``batch`` (now in Redis); the ids of the spent segments deleted
        since the last call (their progress in Redis is no longer needed). A spent segment the
        disk refuses to delete is told (``fault``, while frames wait) and its deletion tried
        again after the wait, its id said once it is deleted: until then Redis's progress says
        how far the spool got, should the head's file not be written either (``resume``)."""
        try:
            await self._call(self._move, batch.segment, batch.end, len(batch.frames))
        except OSError as exc:
            if exc.errno is None:
                raise
            self._disk.send_failed(exc)
            return []
        await self._delete_spent()
        deleted, self._deleted = self._deleted, []
        return deleted

    async def _delete_spent(self) -> None:
        """Delete the spent segments left; the disk refusing it is its fault (tried again)."""
        try:
            await self._call(self._unlink_spent)
        except OSError as exc:
            if exc.errno is None:
                raise
            self._spent_left = True
            self._disk.send_failed(exc)
            return
        self._spent_left = False
        self._disk.sent()

    def _disk_again(self) -> None:
        """The disk fault's wait is over: try the deletions left again, and wake the writer."""
        if self._spent_left and not self._closed and self._deleting is None:
            self._deleting = asyncio.get_running_loop().create_task(self._retry_deleting())
        self._changed()

    async def _retry_deleting(self) -> None:
        try:
            await self._delete_spent()
        finally:
            self._deleting = None

    async def aclose(self, seconds: float | None = None) -> None:
        """Finish what is being written (for up to ``seconds``; None: however long the disk
        takes) and stop the thread; idempotent. Appends the disk has not finished by then (one
        hanging in fsync) fail with ``OSError``, logged: none of them counts as written (one
        the disk finishes after all may be sent after the next start too). The lock is held
        until the thread has ended what it was doing (given 0.1 s past ``seconds`` for it)."""
        if self._closed:
            return
        self._closed = True
        self._disk.close()
        if self._deleting is not None:
            await asyncio.wait([self._deleting], timeout=seconds)
        deadline = None if seconds is None else asyncio.get_running_loop().time() + seconds
        if self._appending is not None:
            await asyncio.wait([self._appending], timeout=seconds)
        abandoned = self._appending is not None
        if abandoned:
            self._abandon(seconds or 0.0)
        if self._lock is not None:
            # Released by the thread once its call under way is over (or by the process's
            # exit): a spool opened before would have its records cut off by a failed write.
            self._pool.submit(os.close, self._lock)
            self._lock = None
        self._pool.shutdown()
        # A thread not done then is left to the disk (a daemon: it holds no exit of the
        # process); said once, appends abandoned or not.
        # Its last calls (the lock's close) get a moment even with no budget left: a thread
        # idle till then is not called stuck.
        left = (
            None
            if deadline is None
            else max(deadline - asyncio.get_running_loop().time(), _LAST_CALLS_SECONDS)
        )
        if not abandoned and not await asyncio.to_thread(self._pool.join, left):
            _logger.error(
                "spool %s: the disk did not finish a call within the stop's %gs"
                " (EXESDB_SHUTDOWN_TIMEOUT_MS); left to it, the spool locked until it has",
                self.directory,
                seconds,
            )

    def _abandon(self, seconds: float) -> None:
        """Fail the appends the disk did not finish within the stop's ``seconds``."""
        assert self._appending is not None
        self._appending.cancel()
        self._appending = None
        left, self._writing, self._waiting = self._writing + self._waiting, [], []
        _logger.error(
            "spool %s: the disk did not finish writing within the stop's %gs"
            " (EXESDB_SHUTDOWN_TIMEOUT_MS): %d batch(es) of %d frame(s) not stored, counted as"
            " lost (an ingest batch's ids forgotten: its resend after the restart is taken)",
            self.directory,
            seconds,
            len(left),
            sum(count for _, count, _ in left),
        )
        unwritten = OSError(errno.ETIMEDOUT, "the disk did not finish writing before the stop")
        for _, _, future in left:
            if not future.done():
                future.set_exception(unwritten)

    async def _append_waiting(self) -> None:
        try:
            while self._waiting:
                self._writing, self._waiting = self._waiting, []
                try:
                    await self._call(self._write, [data for data, _, _ in self._writing])
                except SpoolDisplaced as exc:
                    self._displaced.found(str(exc))
                    for _, _, future in self._writing:
                        if not future.done():
                            future.set_exception(SpoolDisplaced(self._displaced.problem))
                    continue
                except OSError as exc:
                    failed: OSError = exc
                    if exc.errno is not None:  # the disk's (none: the spool's own refusal)
                        failed = self._disk.write_failed(exc)
                    for _, _, future in self._writing:
                        if not future.done():
                            future.set_exception(failed)
                    continue
                self._disk.written()
                # Stored in the very step the batch stops being one written (nothing awaited
                # before the next one is): append never counts it twice, as both.
                self._stored += sum(len(data) for data, _, _ in self._writing)
                self._stored_frames += sum(count for _, count, _ in self._writing)
                for _, _, future in self._writing:
                    if not future.done():
                        future.set_result(True)
        finally:
            self._writing = []
            if self._appending is asyncio.current_task():
                self._appending = None

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    # -- on the spool's thread --

    def _open(self) -> int:
        # The state dir too, when this makes it: ``parents=True`` would leave it 0755.
        self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.mkdir(mode=0o700, exist_ok=True)
        # Two bridges appending to one spool would interleave their records: the second is
        # refused (each replica needs its own EXESDB_STATE_DIR).
        self._lock = hold(self.directory / _LOCK, "another bridge process has it open")
        self._lock_held = [(self.directory / _LOCK, identity(os.fstat(self._lock)))]
        found: list[_Segment] = []
        for seq, path in _segment_names(self.directory):
            found_stat = path.stat()
            token = path.stem.partition("-")[2]
            found.append(_Segment(seq, token, path, found_stat.st_size, identity(found_stat)))
        found.sort(key=lambda segment: segment.seq)
        head_seq, head = self._read_head()
        # Segments before the head's are spent (a crash came between moving and deleting).
        while found and found[0].seq < head_seq:
            _unlink(found.pop(0).path)
        if not found or found[0].seq != head_seq:
            head = 0
        waiting = 0
        for index, segment in enumerate(found):
            # A record torn by a crash as it was appended was never answered 202: cut it off.
            start = min(head, segment.size) if index == 0 else 0
            count, segment.size = _repair(segment.path, start)
            waiting += count
        self._segments = found
        self._head = min(head, found[0].size) if found else 0
        # Set here, on the spool's thread, before the event loop counts anything.
        self._stored, self._sent = sum(segment.size for segment in found), self._head
        self._stored_frames, self._sent_frames = waiting, 0
        self._opened = True
        return waiting

    def _write(self, chunks: list[bytes]) -> None:
        if not self._opened:
            raise OSError("the spool is not open")
        # Written to files that went, records answered 202 would be lost at the next start:
        # refused before anything is made in a folder not the spool's (its lock's stat).
        if (displaced := self._files_displaced(())) is not None:
            raise SpoolDisplaced(displaced)
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.size >= self._segment_bytes:
            segment = self._new_segment()
        data = b"".join(chunks)
        try:
            # Never made again here: the records before would be read from the wrong place.
            # Not O_APPEND: written at ``segment.size``, over a torn tail a failed write left
            # when the disk refused its cut back too (appended after it, records answered 202
            # would lie past where the spool reads them).
            descriptor = os.open(segment.path, os.O_WRONLY)
        except FileNotFoundError:
            if (displaced := self._files_displaced([segment])) is None:
                raise
            raise SpoolDisplaced(displaced) from None
        try:
            # Unbuffered: a buffer a failed write left would be written by the close, after
            # the cut back below.
            _write_all(descriptor, data, segment.size)
            os.fsync(descriptor)
            # Its folder removed while it was written, the records went to a file lost at the
            # next start: refused (a stat or two beside the fsync), not counted.
            if (displaced := self._files_displaced([segment])) is not None:
                raise SpoolDisplaced(displaced)
        except OSError as exc:
            # Nothing of a failed write counts: cut the file back to what it was.
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, segment.size)
            if isinstance(exc, SpoolDisplaced) or exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror, str(segment.path)) from exc  # named
        finally:
            with contextlib.suppress(OSError):  # written and synced, or failed already
                os.close(descriptor)
        segment.size += len(data)

    def _new_segment(self) -> _Segment:
        # After every segment known, on disk or not (a spent one left undeleted, with the head
        # not stored either, would share its number: read again after a restart).
        seq = 1 + max(
            [self._read_head()[0]]
            + [segment.seq for segment in (*self._segments, *self._undeleted)]
            + [seq for seq, _ in _segment_names(self.directory)]
        )
        token = secrets.token_hex(8)
        path = self.directory / f"{seq:010d}-{token}{_SUFFIX}"
        path.touch(mode=0o600)
        segment = _Segment(seq, token, path, 0, identity(path.stat()))
        sync_directory(self.directory)
        if not self._segments:
            self._head = 0
        self._segments.append(segment)
        # Made here, under a new id: Redis holds no progress through it to ask for (until a
        # write of it fails, which asks again: ``recheck``).
        self._checked.add(segment.id)
        return segment

    def _peek(self, count: int) -> SpoolBatch | None:
        if not self._segments or self._head >= self._segments[0].size:
            return None
        return _read(self._segments[0], self._head, count)

    def _move(self, segment_id: str, offset: int, frames: int | None) -> None:
        """Move the head to ``offset``, past ``frames`` records (None: not known, counted)."""
        if not self._segments or self._segments[0].id != segment_id:
            return
        first = self._segments[0]
        moved = min(offset, first.size) - self._head
        if moved <= 0:
            return
        if frames is None:  # Redis's progress (``resume``): rare, so read rather than kept
            with first.path.open("rb") as file:
                file.seek(self._head)
                frames = _count(file.read(moved))[0]
        self._head += moved
        self._sent += moved
        self._sent_frames += frames
        # A segment sent to the end goes, the last one too (the next append starts a new one):
        # the spool's files hold only what waits.
        while self._segments and self._head >= self._segments[0].size:
            segment = self._segments.pop(0)
            self._checked.discard(segment.id)
            self._head = 0
            if not self._segments:
                # Past the head's segment: the next one starts after it (see _new_segment).
                self._store_head(segment.seq, segment.size)
            self._undeleted.append(segment)
        if self._segments:
            self._store_head(self._segments[0].seq, self._head)

    def _unlink_spent(self) -> None:
        """Delete the spent segments left, oldest first, noting each one's id; raises the
        disk's refusal (the rest left for the next try)."""
        while self._undeleted:
            _unlink(self._undeleted[0].path)
            self._deleted.append(self._undeleted.pop(0).id)

    def _read_head(self) -> tuple[int, int]:
        return _head_of(self.directory)

    async def _check_files(self) -> str | None:
        if not self._opened or self._closed:
            return None
        return await self._call(self._files_displaced, self._segments)

    def _files_displaced(self, segments: Sequence[_Segment]) -> str | None:
        """Why the lock held, or one of ``segments``, is no longer the file at its path; None
        while each is (a stat each)."""
        if self._lock is None:
            return None
        held = self._lock_held + [(segment.path, segment.identity) for segment in segments]
        return first_displaced(held, "the Redis bus spool's")

    def _held(self) -> str:
        """What the spool held not yet sent as its files were found gone, for the log: taken
        with a promise (ingest's 202, an acknowledgement's 200), or kept by a stop."""
        return (
            f" (the spool held {self.pending_frames} frame(s) not yet written to Redis: those in"
            " files deleted are lost)"
        )

    def _store_head(self, seq: int, offset: int) -> None:
        # Not fsync'd, and a failure to write it (a full disk) is only logged: Redis keeps the
        # same progress (see ``resume``), and a head that lags behind it only costs reading
        # records again. Raised, it would stop the writer as if Redis had failed.
        path = self.directory / _HEAD
        temporary = path.with_suffix(".tmp")
        if self._files_displaced(()) is not None:
            return  # another folder's (or none): the spool's own is gone
        try:
            temporary.write_text(f"{seq} {offset}\n")
            temporary.replace(path)
        except OSError as exc:
            if not self._head_failing:
                _logger.warning(
                    "spool %s: cannot store its head (%s); Redis keeps the progress", path, exc
                )
            self._head_failing = True
        else:
            self._head_failing = False


class _Thread:
    """One daemon thread running calls in turn (started at the first): a call a hung disk
    holds does not hold the process's exit, as a ``ThreadPoolExecutor``'s thread would (it is
    joined at exit)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        """Run ``fn(*args)`` on the thread, after the calls before it."""
        if self._stopped:
            raise RuntimeError("the spool's thread has stopped")
        future: Future[T] = Future()
        self._calls.put((future, functools.partial(fn, *args)))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return future

    def shutdown(self) -> None:
        """Stop once the calls submitted are done (``join`` waits for that); idempotent."""
        if not self._stopped:
            self._stopped = True
            self._calls.put(None)

    def join(self, seconds: float | None) -> bool:
        """Wait (up to ``seconds``; None: no limit) for a thread stopped to end; True once it
        has (or never started)."""
        if self._thread is None:
            return True
        self._thread.join(None if seconds is None else max(0.0, seconds))
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn = call
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)


def _write_all(descriptor: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (a write may take part of it; one taking none is
    the disk's failure, not a reason to try forever)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(descriptor, view, offset)
        if written == 0:
            raise OSError(errno.EIO, "the disk took none of a write")
        view = view[written:]
        offset += written


def _record(frame: Frame) -> bytes:
    signature = (frame.signature or "").encode("ascii", "replace")
    unix_ts = frame.decoded.unix_ts if frame.decoded is not None else 0.0
    payload = _FIXED.pack(_INDEX[frame.instance], unix_ts, len(signature)) + signature + frame.body
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _records(data: bytes, limit: int) -> tuple[list[tuple[Frame, float]], int]:
    """Up to ``limit`` whole, intact records from the start of ``data``, and the offset after
    the last of them."""
    out: list[tuple[Frame, float]] = []
    position = 0
    while len(out) < limit:
        record = _record_at(data, position)
        if record is None:
            break
        out.append(record[0])
        position = record[1]
    return out, position


def _record_at(data: bytes, position: int) -> tuple[tuple[Frame, float], int] | None:
    """The whole, intact record at ``position`` in ``data`` and the offset after it, or None."""
    end = len(data)
    if position + _HEADER.size > end:
        return None
    length, crc = _HEADER.unpack_from(data, position)
    begin = position + _HEADER.size
    if begin + length > end or length < _FIXED.size:
        return None
    payload = data[begin : begin + length]
    if zlib.crc32(payload) != crc:
        return None
    index, unix_ts, signature_length = _FIXED.unpack_from(payload)
    body_start = _FIXED.size + signature_length
    if index >= len(INSTANCES) or body_start > length:
        return None
    signature = payload[_FIXED.size : body_start].decode("ascii", "replace") or None
    return (Frame(INSTANCES[index], payload[body_start:], signature), unix_ts), begin + length


def _resync(data: bytes, position: int) -> int | None:
    """Where the first intact record after the one that does not check out at ``position``
    begins, or None when none follows (a torn tail)."""
    if position + _HEADER.size <= len(data):
        # Damage inside the record leaves its length whole: the next record begins after it.
        after: int = position + _HEADER.size + _HEADER.unpack_from(data, position)[0]
        if _record_at(data, after) is not None:
            return after
    for candidate in _MAY_BEGIN.finditer(data, position + 1):
        if _record_at(data, candidate.start()) is not None:
            return candidate.start()
    return None


def _read(segment: _Segment, offset: int, count: int) -> SpoolBatch:
    with segment.path.open("rb") as file:
        file.seek(offset)
        data = file.read(min(_READ_BYTES, segment.size - offset))
        if len(data) >= _HEADER.size:
            # A single record larger than one read: read all of it.
            length = _HEADER.unpack_from(data)[0]
            if _HEADER.size + length > len(data):
                file.seek(offset)
                data = file.read(min(_HEADER.size + length, segment.size - offset))
    records, consumed = _records(data, count)
    if not records:
        # A record that does not check out inside a segment (the disk changed it under us):
        # skipped up to the next one that does, in the rest of the segment (logged).
        with segment.path.open("rb") as file:
            file.seek(offset)
            rest = file.read(segment.size - offset)
        found = _resync(rest, 0)
        skipped = len(rest) if found is None else found
        _logger.error(
            "spool segment %s: a damaged record at byte %d; skipping %d byte(s)%s",
            segment.path,
            offset,
            skipped,
            " (the rest of it)" if found is None else ", to the next whole record",
        )
        return SpoolBatch([], [], segment.id, offset, offset + skipped)
    return SpoolBatch(
        [frame for frame, _ in records],
        [unix_ts for _, unix_ts in records],
        segment.id,
        offset,
        offset + consumed,
    )


def _repair(path: Path, start: int) -> tuple[int, int]:
    """Count the whole records of ``path`` from ``start`` and cut off what follows the last
    (damaged records with whole ones after them stay, to be skipped when read); returns
    (records, the file's new size)."""
    data = path.read_bytes()
    count, good = _count(data, start, path)
    if good < len(data):
        _logger.warning(
            "spool segment %s: cutting off %d byte(s) after the last whole record",
            path,
            len(data) - good,
        )
        with path.open("r+b") as file:
            file.truncate(good)
            os.fsync(file.fileno())
    return count, good


def _count(data: bytes, start: int = 0, path: Path | None = None) -> tuple[int, int]:
    """The whole records of ``data`` from ``start`` (damaged ones with whole ones after them
    skipped: logged, as found in the segment ``path``, when given), and the offset after the
    last."""
    count, good = 0, start
    while True:
        records, consumed = _records(data[good:], len(data))
        count += len(records)
        good += consumed
        found = _resync(data, good) if good < len(data) else None
        if found is None:
            break
        if path is not None:
            _logger.error(
                "spool segment %s: a damaged record at byte %d, whole records again from byte %d",
                path,
                good,
                found,
            )
        good = found
    return count, good


def waiting(directory: Path | str) -> int:
    """The records the spool in ``directory`` holds not yet written to Redis, counted without
    opening it (no lock taken, nothing cut off); 0 when there is none. A bridge started on the
    in-process bus, which never writes them, tells of them."""
    directory = Path(directory)
    head_seq, head = _head_of(directory)
    count = 0
    for path in directory.glob(f"*{_SUFFIX}"):
        seq, _, token = path.stem.partition("-")
        if not (seq.isascii() and seq.isdigit() and token) or int(seq) < head_seq:
            continue  # not a segment, or one spent (see Spool._open)
        with contextlib.suppress(OSError):
            count += _count(path.read_bytes(), head if int(seq) == head_seq else 0)[0]
    return count


def _head_of(directory: Path) -> tuple[int, int]:
    """The spool's head file: the first segment's number and how far into it was written."""
    try:
        seq, offset = (directory / _HEAD).read_text().split()
        return int(seq), int(offset)
    except (OSError, ValueError):
        return 0, 0


def _segment_names(directory: Path) -> list[tuple[int, Path]]:
    """The segment files in ``directory``, each with its number (in no order)."""
    found = []
    for path in directory.glob(f"*{_SUFFIX}"):
        seq, _, token = path.stem.partition("-")
        # ASCII digits only: str.isdigit() takes a superscript, which int() refuses.
        if seq.isascii() and seq.isdigit() and token:
            found.append((int(seq), path))
    return found


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
