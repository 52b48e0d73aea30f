"""Operation statistics for ``track()`` and the bridge's own work, in bounded memory.

Latencies go into a fixed-size log-bucket histogram (about 4% relative error), never a list, so
percentiles cost the same at ten or ten million samples. ``Tracker`` (what ``track()`` returns)
times a block or a function, sync or async, into a recorder.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar

__all__ = ["LatencyHistogram", "OperationRecorder", "OperationSnapshot", "Tracker"]

_logger = logging.getLogger(__name__)

_MIN_SECONDS: Final = 1e-6
_GROWTH: Final = 1.08  # bucket i covers [MIN * GROWTH**i, MIN * GROWTH**(i+1))
_BUCKETS: Final = 320  # up to about 50 000 s
_LOG_GROWTH: Final = math.log(_GROWTH)


class LatencyHistogram:
    """Counts of latencies in log-spaced buckets, with exact min, max and sum."""

    __slots__ = ("count", "counts", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = 0.0

    def add(self, seconds: float) -> None:
        """Record one latency."""
        self.add_many(seconds, 1)

    def add_many(self, seconds: float, count: int) -> None:
        """Record ``count`` latencies of ``seconds`` each (what ``count`` calls of add() would)."""
        # Comparisons instead of min()/max() calls: this runs for every bus message.
        if count <= 0:
            return
        if seconds <= _MIN_SECONDS:
            if seconds < 0.0:
                seconds = 0.0
            index = 0
        else:
            index = int(math.log(seconds / _MIN_SECONDS) / _LOG_GROWTH)
            if index >= _BUCKETS:
                index = _BUCKETS - 1
        self.counts[index] += count
        self.count += count
        self.total += seconds * count
        if seconds < self.minimum:
            self.minimum = seconds
        if seconds > self.maximum:
            self.maximum = seconds

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in seconds; 0 when empty."""
        if not self.count:
            return 0.0
        if q <= 0:
            return self.minimum
        if q >= 1:
            return self.maximum
        rank = q * self.count
        seen = 0
        for index, bucket in enumerate(self.counts):
            seen += bucket
            if seen >= rank:
                # The bucket's geometric middle, clamped to what was actually seen.
                middle: float = _MIN_SECONDS * _GROWTH ** (index + 0.5)
                return min(max(middle, self.minimum), self.maximum)
        return self.maximum

    @property
    def mean(self) -> float:
        """The average latency in seconds; 0 when empty."""
        return self.total / self.count if self.count else 0.0


@dataclass(frozen=True, slots=True)
class OperationSnapshot:
    """One operation's figures over one collection interval."""

    operation: str
    succeeded: int
    failed: int
    latency: LatencyHistogram

    @property
    def count(self) -> int:
        """Operations finished in the interval, whatever their outcome."""
        return self.succeeded + self.failed


class OperationRecorder:
    """Thread-safe per-operation counts and latencies; ``drain()`` starts a new interval.

    Bounded: past ``max_operations`` names in one interval, new names are not recorded (a flood
    of names cannot grow memory); the first time that happens is logged as a warning.
    """

    def __init__(self, max_operations: int = 1_000) -> None:
        self._lock = threading.Lock()
        self._max = max_operations
        self._ops: dict[str, _Tally] = {}
        self._warned = False

    def record(self, operation: str, seconds: float, ok: bool = True) -> None:
        """Record one finished operation."""
        with self._lock:
            entry = self._ops.get(operation)
            if entry is None:
                if len(self._ops) >= self._max:
                    self._full()
                    return
                entry = self._ops[operation] = _Tally()
            if ok:
                entry.succeeded += 1
            else:
                entry.failed += 1
            entry.latency.add(seconds)

    def record_each(self, operations: tuple[str, ...], seconds: float, count: int = 1) -> None:
        """Record ``count`` successful operations of ``seconds`` under each of ``operations``.

        One lock for all of them: the bus-delivery recorder calls this for every batch.
        """
        with self._lock:
            ops = self._ops
            for operation in operations:
                entry = ops.get(operation)
                if entry is None:
                    if len(ops) >= self._max:
                        self._full()
                        continue
                    entry = ops[operation] = _Tally()
                entry.succeeded += count
                entry.latency.add_many(seconds, count)

    def _full(self) -> None:
        if not self._warned:
            self._warned = True
            _logger.warning(
                "%d operation names in one interval: further new names are not recorded",
                self._max,
            )

    def drain(self) -> Iterator[OperationSnapshot]:
        """The figures since the last drain, per operation; the recorder starts afresh."""
        with self._lock:
            ops, self._ops = self._ops, {}
        for name, tally in sorted(ops.items()):
            yield OperationSnapshot(name, tally.succeeded, tally.failed, tally.latency)


class _Tally:
    __slots__ = ("failed", "latency", "succeeded")

    def __init__(self) -> None:
        self.succeeded = 0
        self.failed = 0
        self.latency = LatencyHistogram()


P = ParamSpec("P")
R = TypeVar("R")


class Tracker:
    """Context manager (sync or async) and decorator recording an operation's outcome."""

    __slots__ = ("_operation", "_recorder", "_started", "_timer")

    def __init__(
        self,
        operation: str,
        recorder: OperationRecorder,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._operation = operation
        self._recorder = recorder
        self._timer = timer
        self._started = 0.0

    def __enter__(self) -> Tracker:
        self._started = self._timer()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._recorder.record(self._operation, self._timer() - self._started, ok=exc_type is None)

    async def __aenter__(self) -> Tracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        operation, recorder, timer = self._operation, self._recorder, self._timer
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with Tracker(operation, recorder, timer):
                    return await function(*args, **kwargs)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(function)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with Tracker(operation, recorder, timer):
                return function(*args, **kwargs)

        return timed
