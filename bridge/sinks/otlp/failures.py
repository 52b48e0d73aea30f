"""What the log says of failing OTLP exports: when they start, once a minute, when they stop.

A signal's first failure is told at once, then a summary once a minute while it goes on, and a
line when it recovers.

The OpenTelemetry SDK's exporters log every failed attempt and every retry themselves (most of
the console when a collector is down). While the sink runs, ``SdkLogCapture`` keeps those
records out of the console and hands the latest one, per signal, to ``ExportFailures`` as the
reason its summaries quote. Every lost record is still counted in
``exesdb_otlp_export_failures_total{signal}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, get_args

from bridge.redaction import redact_urls
from bridge.sinks.otlp.metrics import Signal

__all__ = ["SDK_LOGGER", "SUMMARY_SECONDS", "ExportFailures", "SdkLogCapture"]

_logger = logging.getLogger(__name__)

SDK_LOGGER: Final = "opentelemetry.exporter.otlp"
SUMMARY_SECONDS: Final = 60.0
_REASON_CHARS: Final = 300
_EVERY_SIGNAL: Final[tuple[Signal, ...]] = get_args(Signal)


@dataclass(slots=True)
class _Streak:
    batches: int = 0  # failed exports since the streak began
    window_batches: int = 0  # ... and since the last line about it
    window_records: int = 0
    told_at: float = 0.0


class ExportFailures:
    """Failed and successful exports in, a few log lines out; safe from any thread."""

    def __init__(
        self,
        *,
        summary_seconds: float = SUMMARY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._summary_seconds = summary_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._streaks: dict[Signal, _Streak] = {}
        self._reasons: dict[Signal, str] = {}

    def reason(self, signal: Signal, text: str) -> None:
        """The latest thing the SDK said about ``signal``'s exports (quoted in the next line)."""
        with self._lock:
            self._reasons[signal] = redact_urls(text)[:_REASON_CHARS]

    def failed(self, signal: Signal, records: int) -> None:
        """One export of ``records`` records failed for good (after the SDK's own retries)."""
        now = self._clock()
        with self._lock:
            streak = self._streaks.get(signal)
            first = streak is None
            if streak is None:
                streak = self._streaks[signal] = _Streak(told_at=now)
            streak.batches += 1
            streak.window_batches += 1
            streak.window_records += records
            due = first or now - streak.told_at >= self._summary_seconds
            if not due:
                return
            reason = self._reasons.get(signal, "the exporter gave no reason")
            batches, lost = streak.window_batches, streak.window_records
            since = now - streak.told_at
            streak.window_batches = streak.window_records = 0
            streak.told_at = now
        if first:
            _logger.warning(
                "OTLP %s export failing: %s; %d record(s) lost so far, counted in "
                "exesdb_otlp_export_failures_total (the next word on it within %gs)",
                signal,
                reason,
                lost,
                self._summary_seconds,
            )
        else:
            _logger.warning(
                "OTLP %s export still failing: %d export(s), %d record(s) lost in the last %.0fs;"
                " latest: %s",
                signal,
                batches,
                lost,
                since,
                reason,
            )

    def exported(self, signal: Signal) -> None:
        """An export of ``signal`` succeeded: a failing streak, if any, is over."""
        with self._lock:
            streak = self._streaks.pop(signal, None)
        if streak is not None:
            _logger.info(
                "OTLP %s export recovered after %d failed export(s)", signal, streak.batches
            )


class SdkLogCapture(logging.Handler):
    """Takes the SDK exporters' log records off the console while installed, and tells
    ``failures`` the latest one of each signal (known by the exporting thread's name)."""

    def __init__(self, failures: ExportFailures) -> None:
        super().__init__(logging.WARNING)
        self._failures = failures
        self._logger = logging.getLogger(SDK_LOGGER)
        self._propagated = self._logger.propagate
        self._installed = False
        self._lifted: list[tuple[logging.Logger, logging.Filter]] = []

    def emit(self, record: logging.LogRecord) -> None:
        signal = _signal_of(record.threadName or "")
        if signal is not None:
            self._failures.reason(signal, record.getMessage())

    def install(self) -> None:
        """Capture the SDK exporters' records from now on; idempotent."""
        if not self._installed:
            self._installed = True
            self._propagated = self._logger.propagate
            self._logger.addHandler(self)
            self._logger.propagate = False
            # The SDK's exporter loggers drop a record worded as the one before (a
            # DuplicateFilter, against logging loops): a signal failing just after another would
            # lose its reason. Captured, the records go nowhere but here: no loop to guard.
            self._lifted = [
                (logger, found)
                for logger in _sdk_loggers()
                for found in logger.filters
                if isinstance(found, logging.Filter) and type(found).__name__ == "DuplicateFilter"
            ]
            for logger, found in self._lifted:
                logger.removeFilter(found)

    def uninstall(self) -> None:
        """Give the SDK exporters' records back to the usual handlers; idempotent."""
        if self._installed:
            self._installed = False
            self._logger.removeHandler(self)
            self._logger.propagate = self._propagated
            for logger, found in self._lifted:
                logger.addFilter(found)
            self._lifted = []


def _sdk_loggers() -> list[logging.Logger]:
    """The loggers made so far at or under ``SDK_LOGGER`` (one per exporter module)."""
    return [
        logger
        # A copy: another thread may make a logger meanwhile.
        for name, logger in dict(logging.Logger.manager.loggerDict).items()
        if (name == SDK_LOGGER or name.startswith(SDK_LOGGER + "."))
        and isinstance(logger, logging.Logger)
    ]


def _signal_of(thread_name: str) -> Signal | None:
    # The sink's export threads are named otlp-traces, otlp-logs and otlp-metrics.
    for signal in _EVERY_SIGNAL:
        if thread_name.startswith(f"otlp-{signal}"):
            return signal
    return None
