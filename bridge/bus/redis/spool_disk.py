"""The Redis bus spool's disk refusing it (full, failing, read-only), told as the spool's fault.

A write the disk refuses (ENOSPC, EIO, EDQUOT, EFBIG, EROFS, EACCES) fails its batch (ingest answers
503 ``not_committed``, quoting it until a write is taken or for 30 s); a read of what the spool
holds, or the deletion of a segment sent, is tried again after a wait (0.5 s doubling up to 5 s),
the frames staying in the spool meanwhile. Either is the spool's disk, not Redis: told so once at
error as it begins or changes (naming the file and the system's words) and at info as it ends,
counted (``exesdb_redis_spool_errors_total``), and said by ``/readyz``'s ``bus`` check (``fault``):
a read or deletion refused while frames wait, until one is next taken (``sent``), a write until one
is taken or for 30 s after the last refused (a replica not ready may be sent none to try).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from bridge.backoff import Backoff

__all__ = ["SpoolDiskError", "SpoolDiskFaults"]

_logger = logging.getLogger(__name__)

# How long a write the disk refused is said by readiness when none is tried since.
_WRITE_FAULT_SECONDS: Final = 30.0
# One process reading its own files again: no herd to spread, so no jitter.
_AGAIN: Final = Backoff(base=0.5, cap=5.0, jitter=0.0)


class SpoolDiskError(OSError):
    """A spool file the disk refused: the system's errno and words, and the file (``filename``:
    the segment, or the spool's folder)."""


class SpoolDiskFaults:
    """The spool's disk faults as they come and go (see the module docstring), kept on the
    event loop. ``wake`` is called once a refused read may be tried again; ``directory`` (the
    spool's) names a fault of no file; ``clock`` is monotonic seconds; ``waiting`` says whether
    frames wait to be sent (a read or deletion refused with none waiting is not told as
    holding any)."""

    __slots__ = (
        "_clock",
        "_closed",
        "_directory",
        "_retry",
        "_send",
        "_sends_failed",
        "_waiting",
        "_wake",
        "_write",
        "errors",
    )

    def __init__(
        self,
        wake: Callable[[], None],
        directory: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        waiting: Callable[[], bool] = lambda: True,
    ) -> None:
        self._wake = wake
        self._waiting = waiting
        self._directory = directory
        self._clock = clock
        self._write: tuple[float, str] | None = None  # when a write was last refused, and why
        self._send: str | None = None  # why reading or moving past what was sent fails
        self._sends_failed = 0  # in a row
        self._retry: asyncio.TimerHandle | None = None  # the wake of a read refused
        self._closed = False  # no wake scheduled once closed (a read refused after the close)
        self.errors = 0  # every refusal, counted

    @property
    def fault(self) -> str | None:
        """What the spool's disk refuses now, with what comes of it; None when nothing."""
        if self._send is not None and self._waiting():
            return (
                f"the Redis bus spool's disk refuses reading what it holds or moving past what"
                f" was sent ({self._send}): those frames wait in the spool, tried again"
            )
        if self._write is not None and (ago := self._clock() - self._write[0]) < (
            _WRITE_FAULT_SECONDS
        ):
            return (
                f"the Redis bus spool's disk refused a write {ago:.0f} s ago ({self._write[1]}):"
                " ingest answers 503 until it takes one"
            )
        return None

    @property
    def unwritable(self) -> str | None:
        """Why the last write failed, while none has succeeded since and for as long as
        ``fault`` tells it (30 s; for ingest's 503: a batch refused for another cause later is
        not answered with an old disk error)."""
        if self._write is None or self._clock() - self._write[0] >= _WRITE_FAULT_SECONDS:
            return None
        return f"the Redis bus spool's disk refused the batch ({self._write[1]}); send it again"

    @property
    def resting(self) -> bool:
        """True while a read refused waits to be tried again."""
        return self._retry is not None

    def write_failed(self, exc: OSError) -> SpoolDiskError:
        """Note a write the disk refused (``exc``); what its batch fails with."""
        self.errors += 1
        failed = self._disk_error(exc)
        said = str(failed)
        if self._write is None or self._write[1] != said:
            _logger.error(
                "spool: the Redis bus spool's disk refused a write (%s): the batch is not"
                " stored (ingest answers 503 not_committed) and the bus reports not ready until"
                " a write is taken",
                said,
            )
        self._write = (self._clock(), said)
        return failed

    def written(self) -> None:
        """Note a write taken: a fault told ends."""
        if self._write is not None:
            self._write = None
            _logger.info("spool: the Redis bus spool's disk takes writes again")

    def send_failed(self, exc: OSError) -> None:
        """Note a read of what the spool holds, or a move past what was sent, the disk refused
        (``exc``); ``wake`` is called once it may be tried again."""
        self.errors += 1
        self._sends_failed += 1
        said = str(self._disk_error(exc))
        if said != self._send:
            _logger.error(
                "spool: the Redis bus spool's disk refuses reading what it holds or moving past"
                " what was sent (%s): the frames wait in the spool, tried again",
                said,
            )
        self._send = said
        if self._retry is None and not self._closed:
            self._retry = asyncio.get_running_loop().call_later(
                _AGAIN.delay(self._sends_failed), self._again
            )

    def sent(self) -> None:
        """Note a read or a move past what was sent that succeeded: a fault told ends."""
        self._sends_failed = 0
        if self._send is not None:
            self._send = None
            _logger.info("spool: the Redis bus spool's disk gives what it holds again")

    def close(self) -> None:
        """Call ``wake`` no more; idempotent."""
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _again(self) -> None:
        self._retry = None
        self._wake()

    def _disk_error(self, exc: OSError) -> SpoolDiskError:
        """``exc`` as the spool's disk's: its errno and words, and its file (else the spool's
        folder)."""
        if isinstance(exc, SpoolDiskError):
            return exc
        return SpoolDiskError(exc.errno, exc.strerror, exc.filename or str(self._directory))
