"""What the log says of failing OTLP exports: when they start, once a minute, when they stop.

A signal's first failure is told at once, then a summary once a minute while it goes on, and a
line when it recovers.

The OpenTelemetry SDK's exporters log every failed attempt and every retry themselves (most of
the console when a collector is down). While the sink runs, ``SdkLogCapture`` keeps those
records out of the console and hands the latest cause, per signal, to ``ExportFailures`` as the
reason its summaries quote (with the signal's endpoint, redacted). A retry the SDK aborts because
the bridge is stopping is said as INFO, not as a failure, its records as not sent (not as lost
while still being retried). Every record not sent is still counted in
``exesdb_otlp_export_failures_total{signal}``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, get_args

from bridge.httpclient.reasons import NO_TLS_ANSWER
from bridge.redaction import redact_urls, safe_otlp_endpoint
from bridge.sinks.otlp.metrics import Signal

__all__ = ["SDK_LOGGER", "SUMMARY_SECONDS", "ExportFailures", "SdkLogCapture"]

_logger = logging.getLogger(__name__)

SDK_LOGGER: Final = "opentelemetry.exporter.otlp"
SUMMARY_SECONDS: Final = 60.0
_REASON_CHARS: Final = 300
_EVERY_SIGNAL: Final[tuple[Signal, ...]] = get_args(Signal)
# The SDK exporters' words for a retry cut short by their shutdown (the bridge stopping), for a
# batch offered after it, and for giving up, which names no cause: the retry record before it does.
_STOPPED: Final = {
    "Shutdown in progress": "the bridge stopped while their export was being retried",
    "Exporter already shutdown": "the bridge stopped",
}
_GAVE_UP: Final = "due to timeout, max retries or shutdown"
# The HTTP exporters give up without a retry record when the first attempt took the whole export
# timeout (a collector that takes the connection and never answers): that silence is the cause.
_NO_ANSWER: Final = "no answer within the export timeout (OTEL_EXPORTER_OTLP_TIMEOUT)"
_RETRYING: Final = "Transient error %s"
_NOT_RETRIED: Final = "Failed to export %s batch code: %s, reason: %s"
# A collector's port that speaks another protocol than the exporter, or no TLS, fails in words
# of the transport that say nothing of the cause (gRPC's message, long, is cut before its point):
# each is told as what to set. An OTLP/gRPC port answers an HTTP/1.1 request with an HTTP/2
# frame (a SETTINGS frame, type 4, after its 3-byte length), which requests shows as a
# BadStatusLine of escaped bytes; an HTTP/1.1 port answers gRPC's HTTP/2 preface as HTTP/1.1
# (gRPC finds no SETTINGS frame first, and may say why); a port without TLS answers a TLS
# handshake with bytes OpenSSL reads as a wrong version number (``NO_TLS_ANSWER``).
_HTTP2_ANSWER: Final = re.compile(r"BadStatusLine\('\\x00\\x00(?:\\x[0-9a-f]{2}|.)\\x04")
_HTTP1_ANSWER: Final = re.compile(
    r"Trying to connect an http1\.x server|Expected SETTINGS frame as the first frame"
)
# A collector's certificate refused: for a name it does not hold (gRPC's words, then Python's
# ssl's), else as unverified (OpenSSL's code, gRPC cutting it; Python's ssl gives the reason).
_NOT_ITS_NAME: Final = re.compile(
    r"Hostname Verification Check failed|Hostname mismatch|IP address mismatch"
)
_NOT_VERIFIED: Final = re.compile(r"CERTIFICATE_VERIFY_FA|certificate verify failed")
_NOT_VERIFIED_WHY: Final = re.compile(r"certificate verify failed: ([^(']*[^(' ])")
# Nothing listens at the endpoint's port (gRPC's words end so, long; requests' are shortened by
# _said): told as what to do, the collector's start or the endpoint's port.
_REFUSED: Final = re.compile(r"connection refused", re.IGNORECASE)
# Statuses a collector's OTLP/HTTP receiver does not answer an export at its path with: another
# server listens there (Python's http.server answers a POST 501 "Unsupported method"), or the
# path is not the signal's. Told as what to check, the bare status saying neither.
_NOT_A_COLLECTOR: Final = frozenset({404, 405, 501})
_GENERAL_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"


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
        endpoints: Mapping[Signal, str] | None = None,
        endpoint_variables: Mapping[Signal, str] | None = None,
    ) -> None:
        self._summary_seconds = summary_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._streaks: dict[Signal, _Streak] = {}
        self._reasons: dict[Signal, str] = {}
        self._stopped: dict[Signal, str] = {}
        # The signals whose export under way has had its cause told.
        self._told: set[Signal] = set()
        # Where each signal goes, as the bridge shows URLs (a token in a path stays hidden).
        self._targets = {
            signal: f" to {safe_otlp_endpoint(endpoint)}"
            for signal, endpoint in (endpoints or {}).items()
        }
        # The variable each signal's endpoint is set by, which the advice names.
        self._variables = dict(endpoint_variables or {})

    def reason(self, signal: Signal, text: str) -> None:
        """The latest thing the SDK said about ``signal``'s exports (quoted in the next line)."""
        with self._lock:
            self._reasons[signal] = redact_urls(text)[:_REASON_CHARS]
            self._told.add(signal)

    def endpoint_variable(self, signal: Signal) -> str | None:
        """The variable ``signal``'s endpoint is set by; None when not told."""
        return self._variables.get(signal)

    def latest(self, signal: Signal) -> str | None:
        """The cause of ``signal``'s latest failed export, as its warning quotes it (redacted);
        None when none was told."""
        with self._lock:
            return self._reasons.get(signal)

    def gave_up(self, signal: Signal) -> None:
        """The SDK gave ``signal``'s export up; unless it told why during that export, it had
        no answer in time."""
        with self._lock:
            if signal not in self._told:
                self._reasons[signal] = _NO_ANSWER

    def stopped(self, signal: Signal, how: str) -> None:
        """``signal``'s exporter was shut down (the bridge stopping) during an export: its
        failure is no fault, and is said as ``how`` at INFO."""
        with self._lock:
            self._stopped[signal] = how

    def failed(self, signal: Signal, records: int) -> None:
        """One export of ``records`` records failed for good (after the SDK's own retries)."""
        now = self._clock()
        with self._lock:
            self._told.discard(signal)
            stopped = self._stopped.pop(signal, None)
            if stopped is not None:
                _logger.info("OTLP %s: %d record(s) not sent: %s", signal, records, stopped)
                return
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
            target = self._targets.get(signal, "")
        if first:
            _logger.warning(
                # Lost: failed() hears of an export only once the SDK gave its retries up, and
                # its records are not tried again; newer records' exports are.
                "OTLP %s export%s failing: %s; %d record(s) lost after the exporter's retries,"
                " counted in exesdb_otlp_export_failures_total (newer records are still tried,"
                " next report within %g s)",
                signal,
                target,
                reason,
                lost,
                self._summary_seconds,
            )
        else:
            _logger.warning(
                "OTLP %s export%s still failing: %d export(s) failed after their retries, %d"
                " record(s) lost, in the last %.0fs; latest: %s",
                signal,
                target,
                batches,
                lost,
                since,
                reason,
            )

    def exported(self, signal: Signal) -> None:
        """An export of ``signal`` succeeded: a failing streak, if any, is over."""
        with self._lock:
            self._told.discard(signal)
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
        if signal is None:
            return
        template = str(record.msg)
        stopped = [how for words, how in _STOPPED.items() if template.startswith(words)]
        if stopped:
            self._failures.stopped(signal, stopped[0])
        elif _GAVE_UP in template:
            self._failures.gave_up(signal)  # a retry record before it may have named the cause
        else:
            variable = self._failures.endpoint_variable(signal)
            self._failures.reason(signal, _cause_of(record, signal, variable))

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


def _cause_of(record: logging.LogRecord, signal: Signal, variable: str | None) -> str:
    """What went wrong, in a record of the SDK's HTTP exporters, shortly; else its message;
    nothing listening, a collector's port speaking another protocol, or no TLS, as what to
    set; a status no collector answers an export with (404, 405, 501), as what to check. The
    endpoint's variable named is ``variable`` (the signal's own, or the general one), when
    known."""
    args = record.args if isinstance(record.args, tuple) else ()
    template = str(record.msg)
    if template.startswith(_RETRYING) and args:
        text = _said(args[0])
    elif template == _NOT_RETRIED and len(args) == 3:
        status, reason = args[1], args[2]
        text = _said(reason) if status is None else f"HTTP {status} ({_said(reason)})"
        if status in _NOT_A_COLLECTOR:
            # Likely, not sure: a collector answers so too, for a path not its signal's.
            path = (
                f"its path (the exporter adds /v1/{signal} to it)"
                if variable == _GENERAL_ENDPOINT
                else f"its path (/v1/{signal})"
            )
            text += (
                f": the URL is likely not an OTLP collector's /v1/{signal}: check"
                f" {_endpoint_said(variable, signal)}, its port (4318 for OTLP/HTTP, 4317 for"
                f" gRPC) and {path}"
            )
    else:
        text = record.getMessage()
    return _advised(text, signal, variable)


def _endpoint_said(variable: str | None, signal: Signal) -> str:
    """``variable``; when not known, the general endpoint's and the signal's own."""
    own = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    return variable or f"{_GENERAL_ENDPOINT} (or {own})"


def _advised(text: str, signal: Signal, variable: str | None) -> str:
    protocol = f"OTEL_EXPORTER_OTLP_PROTOCOL (or OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL)"
    if _REFUSED.search(text):
        return (
            "connection refused: nothing listens at the endpoint: start the collector, or set"
            f" {_endpoint_said(variable, signal)} to where it listens"
        )
    if _HTTP1_ANSWER.search(text):
        return (
            "the endpoint answers in HTTP/1.1, as an OTLP/HTTP port does (a collector's 4318),"
            f" not gRPC: set {protocol} to http/protobuf, or give the collector's gRPC port (4317)"
        )
    if _HTTP2_ANSWER.search(text):
        return (
            "the endpoint answers in HTTP/2, as an OTLP/gRPC port does (a collector's 4317), not"
            f" OTLP/HTTP: set {protocol} to grpc, or give the collector's OTLP/HTTP port (4318)"
        )
    if found := NO_TLS_ANSWER.search(text):
        said = "wrong version number" if found[0] == "WRONG_VERSION_NUMBER" else found[0]
        return (
            f"TLS handshake failed: the endpoint answers without TLS (OpenSSL: {said}): write"
            " it with http:// for a collector without TLS"
        )
    if _NOT_ITS_NAME.search(text):
        return (
            "TLS handshake failed: the collector's certificate does not hold the endpoint's host"
            " name: give the endpoint by a name (or address) its certificate holds"
        )
    if _NOT_VERIFIED.search(text):
        found = _NOT_VERIFIED_WHY.search(text)
        why = f" ({found.group(1)})" if found else ""
        if "expired" in why or "not yet valid" in why:
            return f"TLS handshake failed: the collector's certificate did not verify{why}"
        return (
            f"TLS handshake failed: the collector's certificate did not verify{why}: set"
            f" OTEL_EXPORTER_OTLP_CERTIFICATE (or OTEL_EXPORTER_OTLP_{signal.upper()}_CERTIFICATE)"
            " to the file of the CA that signed it (unset, the system's CAs are trusted)"
        )
    return text


def _said(cause: object) -> str:
    # A requests ConnectionError's text is a long chain of wrappers around the errno.
    text = str(cause)
    if "Connection refused" in text:
        return "connection refused"
    return text


def _signal_of(thread_name: str) -> Signal | None:
    # The sink's export threads are named otlp-traces, otlp-logs and otlp-metrics.
    for signal in _EVERY_SIGNAL:
        if thread_name.startswith(f"otlp-{signal}"):
            return signal
    return None
