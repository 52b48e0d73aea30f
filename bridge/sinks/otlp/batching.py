"""A bounded queue with a batching export thread: what keeps a slow collector off the bus.

``offer()`` never blocks: a full queue drops the record and says so. One daemon thread per signal
exports batches of up to ``max_batch`` records every ``schedule_delay`` (sooner when a full batch
is waiting), as the SDK's batch processors do, but with every drop and every failure counted and
a shutdown that returns by its deadline even when an export hangs. A batch goes in requests of
at most ``max_batch_bytes`` of records (``sizes.MAX_REQUEST_BYTES``, as ``size`` estimates them,
on the export thread), under what a collector takes in one request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from bridge.otlp_settings import otlp_number
from bridge.sinks.otlp.sizes import MAX_REQUEST_BYTES

__all__ = ["BatchSettings", "BoundedBatcher"]

_logger = logging.getLogger(__name__)

T = TypeVar("T")

# The default of the OpenTelemetry SDK's BatchSpanProcessor / BatchLogRecordProcessor
# (specification, "Batching processor").
_DEFAULT_BATCH: Final = 512


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """How often and how much to export."""

    schedule_delay: float = 5.0
    max_batch: int = _DEFAULT_BATCH

    @classmethod
    def from_env(cls, prefix: str, environ: Mapping[str, str] = os.environ) -> BatchSettings:
        """Read ``<prefix>_SCHEDULE_DELAY`` (ms) and ``<prefix>_MAX_EXPORT_BATCH_SIZE``.

        ``prefix`` is ``OTEL_BSP`` (spans) or ``OTEL_BLRP`` (logs); a bad value falls back to
        the SDK's default, as the SDK itself does (warned of at start: ``otlp_number``).
        """
        delay, _ = otlp_number(environ, f"{prefix}_SCHEDULE_DELAY")
        batch, _ = otlp_number(environ, f"{prefix}_MAX_EXPORT_BATCH_SIZE")
        return cls(schedule_delay=delay / 1000, max_batch=max(1, int(batch)))


class BoundedBatcher(Generic[T]):
    """A bounded FIFO drained in batches by one export thread."""

    def __init__(
        self,
        name: str,
        export: Callable[[list[T]], bool],
        *,
        max_queue: int,
        settings: BatchSettings,
        on_drop: Callable[[int], None],
        on_export: Callable[[int, bool, float], None],
        clock: Callable[[], float] = time.monotonic,
        size: Callable[[T], int] = lambda _: 0,
        max_batch_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.name = name
        self._export = export
        self._max_queue = max_queue
        self._settings = settings
        self._on_drop = on_drop
        self._on_export = on_export
        self._clock = clock
        self._size = size
        self._max_batch_bytes = max_batch_bytes
        self._queue: deque[T] = deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._stopping = False
        self._flush_until = 0.0
        self._thread: threading.Thread | None = None

    @property
    def depth(self) -> int:
        """Records waiting for export."""
        return len(self._queue)

    def offer(self, item: T) -> bool:
        """Queue ``item`` for export; False (and counted as dropped) when full or stopping."""
        with self._lock:
            if self._stopping or len(self._queue) >= self._max_queue:
                accepted = False
            else:
                self._queue.append(item)
                accepted = True
                if len(self._queue) >= self._settings.max_batch:
                    self._wakeup.notify()
        if not accepted:
            self._on_drop(1)
        return accepted

    def start(self) -> None:
        """Start the export thread (a daemon: a hung export never holds the process)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _next_batch(self) -> list[T] | None:
        """Wait for a batch; None when stopped and done."""
        with self._lock:
            deadline = self._clock() + self._settings.schedule_delay
            while not self._stopping and len(self._queue) < self._settings.max_batch:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._wakeup.wait(remaining)
            if self._stopping and (not self._queue or self._clock() >= self._flush_until):
                return None
            count = min(len(self._queue), self._settings.max_batch)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            for request in self._requests(batch):
                self._export_batch(request)

    def _requests(self, batch: list[T]) -> list[list[T]]:
        """``batch`` in order, cut where a request would pass ``max_batch_bytes``; a record
        larger than that goes alone. Sized here, on the export thread: never on the bus's."""
        requests: list[list[T]] = []
        request: list[T] = []
        taken = 0
        for item in batch:
            size = self._size(item)
            if request and taken + size > self._max_batch_bytes:
                requests.append(request)
                request, taken = [], 0
            request.append(item)
            taken += size
        if request:
            requests.append(request)
        return requests

    def _export_batch(self, batch: list[T]) -> None:
        started = self._clock()
        try:
            ok = bool(self._export(batch))
        except Exception:
            # Exporters should return a result, not raise; one that raises loses the batch only.
            _logger.exception("%s: export raised", self.name)
            ok = False
        self._on_export(len(batch), ok, self._clock() - started)

    def close(self, flush_seconds: float, interrupt: Callable[[], None], grace: float) -> bool:
        """Stop taking records, export what is queued for up to ``flush_seconds``, then stop.

        ``interrupt`` (the exporter's shutdown, which aborts its retries) runs in a daemon
        thread given ``grace`` seconds; records still queued are counted as dropped. Returns
        True when the export thread finished in time. Blocks for at most about
        ``flush_seconds + 2 * grace``.
        """
        with self._lock:
            if self._stopping:
                return self._thread is None or not self._thread.is_alive()
            self._stopping = True
            self._flush_until = self._clock() + flush_seconds
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(flush_seconds)
        stopper = threading.Thread(target=_quietly(interrupt), name=f"{self.name}-shutdown")
        stopper.daemon = True
        stopper.start()
        stopper.join(grace)
        finished = True
        if self._thread is not None:
            self._thread.join(grace)
            finished = not self._thread.is_alive()
            if not finished:
                _logger.warning(
                    "%s: an export was still running at shutdown; left behind", self.name
                )
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self._on_drop(left)
        return finished


def _quietly(action: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            action()
        except Exception:
            _logger.exception("exporter shutdown failed")

    return run
