"""The OTLP sink: bus messages out as spans and log records, the series as metrics, via the SDK.

Importing this module imports the SDK and the exporters; ``bridge.sinks.otlp.otlp_component``
does so only when an OTLP endpoint is configured.

Pipeline: the bus subscriber translates a message (``mapping.translate``) and records it through
the SDK's tracer or logger (resource, ids and limits come from the SDK); the processors below
hand each finished span or record to a ``BoundedBatcher``, whose thread exports batches with the
SDK's OTLP exporter. Nothing on that path waits for the network. The spans of the bridge's own
webhook requests (``bridge.tracing.ClientSpan``) take the same path (``record_client_span``).
With ``EXESDB_OTLP_METRICS=true`` the metrics mirror (``series``) sends what ``GET /metrics``
shows, on its own interval. Failing exports are told in the log once, then once a minute per
signal (``failures``), the SDK's own per-retry warnings kept off the console meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

from opentelemetry import context as context_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry

from bridge import __version__
from bridge.bus import Bus, Envelope
from bridge.component import Context, HasExposition
from bridge.operations import OperationRecorder
from bridge.otlp_settings import (
    otlp_compression_of,
    otlp_endpoint_of,
    otlp_endpoint_variable,
    otlp_exports,
    otlp_protocol_of,
    otlp_timeout_of,
)
from bridge.redaction import safe_otlp_endpoint
from bridge.sinks.otlp.batching import BatchSettings, BoundedBatcher
from bridge.sinks.otlp.failures import ExportFailures, SdkLogCapture
from bridge.sinks.otlp.mapping import LogSpec, SpanSpec, translate
from bridge.sinks.otlp.metrics import OtlpMetrics, Signal
from bridge.sinks.otlp.sizes import log_bytes, span_bytes
from bridge.tracing import ClientSpan
from bridge.urls import grpc_dials_tls

if TYPE_CHECKING:
    from bridge.settings import Settings, TemporalityPreference
    from bridge.sinks.otlp.series import MetricsMirror

__all__ = ["OtlpSink", "build_exporters", "build_resource"]

_logger = logging.getLogger(__name__)

SCOPE_NAME: Final = "exesdb-bridge"
EXPORT_OPERATION: Final = "otlp.export"
_STATUS: Final = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}
# What each signal's SDK exporter returns when the collector took the batch.
_SUCCESS: Final[Mapping[Signal, Enum]] = {
    "traces": SpanExportResult.SUCCESS,
    "logs": LogRecordExportResult.SUCCESS,
}


class Exporter(Protocol):
    """What the SDK's span and log exporters have in common."""

    def export(self, batch: Any, /) -> Any:
        """Send one batch; returns the SDK's result enum."""

    def shutdown(self) -> None:
        """Release the exporter and abort retries in progress."""


def build_resource(
    service_name: str, node: str, environ: Mapping[str, str] = os.environ
) -> Resource:
    """The resource: service.name, service.version, service.instance.id = node, host.name.

    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` override these defaults.
    """
    defaults = Resource.create(
        {
            "service.name": service_name,
            "service.version": __version__,
            "service.instance.id": node,
            "host.name": socket.gethostname(),
        }
    )
    # Resource.create lets the given attributes win over the environment; put the
    # environment back on top, as the specification's precedence asks.
    if environ.get("OTEL_RESOURCE_ATTRIBUTES") or environ.get("OTEL_SERVICE_NAME"):
        return defaults.merge(OTELResourceDetector().detect())
    return defaults


def _unset_blank_variables(environ: MutableMapping[str, str] = os.environ) -> None:
    """Remove the ``OTEL_*`` variables set to nothing or blanks from ``environ``, before the SDK
    reads them: the settings take them for unset, as the OpenTelemetry specification asks, but
    the SDK's exporters would not (the gRPC exporters stop with a traceback on a blank
    ``OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT``; a blank ``_<SIGNAL>_CERTIFICATE`` would drop the
    general one). An endpoint is trimmed there as the settings trim it (``http://c:4317 ``
    would be dialled with its blank)."""
    for name in [name for name, value in environ.items() if name.startswith("OTEL_")]:
        if not environ[name].strip():
            del environ[name]
        elif name.startswith("OTEL_EXPORTER_OTLP_") and name.endswith("_ENDPOINT"):
            environ[name] = environ[name].strip()


def _options(settings: Settings, signal: Signal) -> dict[str, Any]:
    """The timeout and compression of ``signal``'s exporter, as the bridge checked them: given
    to the exporter, which then leaves the general variables alone (the gRPC exporter would
    stop start-up with a traceback on the specification's ``OTEL_EXPORTER_OTLP_COMPRESSION=none``,
    or on a timeout that is no number)."""
    gzip = otlp_compression_of(settings, signal) == "gzip"
    if otlp_protocol_of(settings, signal) == "grpc":
        from grpc import Compression as GrpcCompression

        compression: Enum = GrpcCompression.Gzip if gzip else GrpcCompression.NoCompression
    else:
        from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

        compression = HttpCompression.Gzip if gzip else HttpCompression.NoCompression
    return {"timeout": otlp_timeout_of(settings, signal), "compression": compression}


def _metrics_exporter(settings: Settings) -> Exporter:
    options = _options(settings, "metrics")
    if otlp_protocol_of(settings, "metrics") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(**options)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(**options)


def build_exporters(settings: Settings) -> dict[Signal, Exporter]:
    """The SDK's OTLP exporters for the signals with an endpoint, per ``*_PROTOCOL``.

    The exporters read the endpoint, headers, insecure and certificate variables themselves;
    the timeout and compression are the bridge's checked ones (``_options``). With only
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or ``_LOGS_``) set, only that signal is exported.
    Metrics (the registry's series) only with ``EXESDB_OTLP_METRICS=true``, to
    ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` or the general one. ``OTEL_SDK_DISABLED=true`` or
    ``OTEL_<SIGNAL>_EXPORTER=none`` leaves a signal out. A blank ``OTEL_*`` variable is unset
    first (``_unset_blank_variables``), for the SDK as for the settings.
    """
    _unset_blank_variables()
    # gRPC's core would write its own lines to stderr (every failed TLS handshake, in a format
    # of its own, past the bridge's log and its JSON): the bridge says why exports fail. Read
    # once, as grpc is imported: one set by the user wins.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    exporters: dict[Signal, Exporter] = {}
    if otlp_exports(settings, "traces"):
        options = _options(settings, "traces")
        if otlp_protocol_of(settings, "traces") == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )

            exporters["traces"] = GrpcSpanExporter(**options)
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpSpanExporter,
            )

            exporters["traces"] = HttpSpanExporter(**options)
    if otlp_exports(settings, "logs"):
        options = _options(settings, "logs")
        if otlp_protocol_of(settings, "logs") == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
                OTLPLogExporter as GrpcLogExporter,
            )

            exporters["logs"] = GrpcLogExporter(**options)
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import (
                OTLPLogExporter as HttpLogExporter,
            )

            exporters["logs"] = HttpLogExporter(**options)
    if otlp_exports(settings, "metrics"):
        exporters["metrics"] = _metrics_exporter(settings)
    return exporters


class _SpanHandOff(SpanProcessor):
    """Ended spans into the traces batcher; never blocks."""

    def __init__(self, batcher: BoundedBatcher[ReadableSpan]) -> None:
        self._batcher = batcher

    def on_end(self, span: ReadableSpan) -> None:
        self._batcher.offer(span)


class _LogHandOff(LogRecordProcessor):
    """Emitted log records into the logs batcher; never blocks."""

    def __init__(self, batcher: BoundedBatcher[ReadableLogRecord]) -> None:
        self._batcher = batcher

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        # As the SDK's batch processor does: freeze the record for the exporter.
        record = copy.copy(log_record.log_record)
        record.context = context_api.Context()
        self._batcher.offer(
            ReadableLogRecord(
                log_record=record,
                resource=log_record.resource or Resource.create({}),
                instrumentation_scope=log_record.instrumentation_scope,
                limits=log_record.limits,
            )
        )

    def shutdown(self) -> None:
        """The sink closes the batcher itself, with a deadline."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Exports run on the batcher's schedule."""
        return True


class OtlpSink:
    """The ``otlp`` component: spans and log records to an OpenTelemetry collector.

    Not required for readiness: a collector that cannot be reached shows in ``/readyz``'s
    body, with the bridge still ready. ``clock`` (monotonic seconds) times the batches,
    ``wall_clock`` (Unix seconds) dates when an export began failing, as readiness says.
    """

    name = "otlp"
    required = False

    def __init__(
        self,
        bus: Bus,
        exporters: Mapping[Signal, Exporter],
        *,
        resource: Resource,
        registry: CollectorRegistry,
        recorder: OperationRecorder,
        queue_size: int,
        close_seconds: float = 4.0,
        environ: Mapping[str, str] = os.environ,
        expositions: Callable[[], Sequence[HasExposition]] = tuple,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        destinations: Mapping[Signal, tuple[str, str]] | None = None,
        endpoint_variables: Mapping[Signal, str] | None = None,
        temporality: TemporalityPreference = "cumulative",
    ) -> None:
        # Each signal's (endpoint, protocol), for the log: the exporters read them themselves.
        self._destinations = dict(destinations or {})
        self._metrics = OtlpMetrics(registry)
        self._failures = ExportFailures(
            clock=clock,
            endpoints={signal: endpoint for signal, (endpoint, _) in self._destinations.items()},
            endpoint_variables=endpoint_variables,
        )
        self._sdk_log = SdkLogCapture(self._failures)
        self._recorder = recorder
        self._exporters = dict(exporters)
        self._close_seconds = close_seconds
        self._closed = False
        # Written by the export threads, read by /readyz.
        self._failing_lock = threading.Lock()
        self._failing: dict[Signal, tuple[int, float]] = {}
        self._wall_clock = wall_clock  # dates a failing streak's start, which readiness shows
        self._batchers: dict[Signal, BoundedBatcher[Any]] = {}
        prefixes: dict[Signal, str] = {"traces": "OTEL_BSP", "logs": "OTEL_BLRP"}
        self._mirror: MetricsMirror | None = None
        if "metrics" in self._exporters:
            from bridge.sinks.otlp.series import MetricsMirror

            self._metrics.init_signal("metrics")
            self._mirror = MetricsMirror(
                registry,
                self._exporters["metrics"],
                resource,
                InstrumentationScope(SCOPE_NAME, __version__),
                self._exported_callback("metrics"),
                environ,
                expositions,
                temporality=temporality,
            )
        for signal, exporter in self._exporters.items():
            if signal == "metrics":
                continue
            batcher: BoundedBatcher[Any] = BoundedBatcher(
                f"otlp-{signal}",
                _exporting(exporter, _SUCCESS[signal]),
                max_queue=queue_size,
                settings=BatchSettings.from_env(prefixes[signal], environ),
                on_drop=self._metrics.dropped.labels(signal).inc,
                on_export=self._exported_callback(signal),
                clock=clock,
                size=span_bytes if signal == "traces" else log_bytes,
            )
            self._batchers[signal] = batcher
            self._metrics.watch_depth(signal, _depth_of(batcher))
        self._tracer_provider: TracerProvider | None = None
        self._logger_provider: LoggerProvider | None = None
        if "traces" in self._batchers:
            self._tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            self._tracer_provider.add_span_processor(_SpanHandOff(self._batchers["traces"]))
        if "logs" in self._batchers:
            self._logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            self._logger_provider.add_log_record_processor(_LogHandOff(self._batchers["logs"]))
        self._tracer = (
            self._tracer_provider.get_tracer(SCOPE_NAME, __version__)
            if self._tracer_provider
            else None
        )
        self._otel_logger = (
            self._logger_provider.get_logger(SCOPE_NAME, __version__)
            if self._logger_provider
            else None
        )
        self._root = context_api.Context()
        bus.subscribe(self.name, self._handle)

    @classmethod
    def from_context(cls, context: Context) -> OtlpSink:
        """The sink the bridge's settings and the standard OTEL_* variables describe."""
        settings = context.settings
        exporters = build_exporters(settings)  # first: it unsets the blank OTEL_* variables
        return cls(
            context.bus,
            exporters,
            resource=build_resource(settings.otel_service_name, settings.node),
            registry=context.registry,
            recorder=context.recorder,
            queue_size=settings.otlp_queue_size,
            # Leave the bus and the HTTP server their share of the shutdown budget.
            close_seconds=min(5.0, settings.shutdown_timeout_ms / 2000),
            # What GET /metrics appends after the registry (the Prometheus sink's store).
            expositions=context.expositions,
            destinations={
                signal: (otlp_endpoint_of(settings, signal), otlp_protocol_of(settings, signal))
                for signal in exporters
            },
            endpoint_variables={
                signal: otlp_endpoint_variable(settings, signal) for signal in exporters
            },
            temporality=settings.otlp_metrics_temporality_preference,
            wall_clock=context.clock,
        )

    # -- the bus side --

    def _handle(self, envelope: Envelope) -> None:
        spec = translate(envelope)
        if spec is None:
            return
        if isinstance(spec, SpanSpec):
            if self._closed:
                self._drop("traces")
            elif self._tracer is not None:
                self._record_span(spec)
        elif self._closed:
            self._drop("logs")
        elif self._otel_logger is not None:
            self._record_log(spec)

    def _drop(self, signal: Signal) -> None:
        if signal in self._batchers:
            self._metrics.dropped.labels(signal).inc()

    def _record_span(self, spec: SpanSpec) -> None:
        assert self._tracer is not None
        span = self._tracer.start_span(
            spec.name,
            context=self._root,
            # Semantic conventions, messaging spans: a "process" operation is a CONSUMER span.
            kind=SpanKind.CONSUMER,
            attributes=spec.attributes,
            start_time=spec.start_ns,
            record_exception=False,
        )
        for event in spec.events:
            span.add_event(event.name, event.attributes, event.time_ns)
        if spec.status != "unset":
            span.set_status(Status(_STATUS[spec.status], spec.status_description))
        span.end(end_time=spec.end_ns)

    def record_client_span(self, span: ClientSpan) -> None:
        """A span of the bridge's own HTTP requests (a webhook attempt), exported as CLIENT."""
        if self._closed:
            self._drop("traces")
            return
        if self._tracer is None:
            return
        recorded = self._tracer.start_span(
            span.name,
            context=self._root,
            kind=SpanKind.CLIENT,
            attributes=dict(span.attributes),
            start_time=span.start_ns,
            record_exception=False,
        )
        if span.error is not None:
            recorded.set_status(Status(StatusCode.ERROR, span.error))
        recorded.end(end_time=span.end_ns)

    def _record_log(self, spec: LogSpec) -> None:
        assert self._otel_logger is not None
        self._otel_logger.emit(
            timestamp=spec.timestamp_ns,
            observed_timestamp=spec.observed_ns,
            context=self._root,
            severity_number=SeverityNumber(spec.severity_number),
            severity_text=spec.severity_text,
            body=spec.body,
            attributes=spec.attributes,
            event_name=spec.event_name,
        )

    # -- the export side (batcher threads) --

    def _exported_callback(self, signal: Signal) -> Callable[[int, bool, float], None]:
        exported = self._metrics.exported.labels(signal)
        failures = self._metrics.export_failures.labels(signal)

        def on_export(count: int, ok: bool, seconds: float) -> None:
            self._recorder.record(EXPORT_OPERATION, seconds, ok)
            # Readiness first, counters after: whoever sees the count sees the readiness too.
            if ok:
                with self._failing_lock:
                    self._failing.pop(signal, None)
                self._failures.exported(signal)
                exported.inc(count)
            else:
                with self._failing_lock:
                    streak, since = self._failing.get(signal, (0, self._wall_clock()))
                    self._failing[signal] = (streak + 1, since)
                self._failures.failed(signal, count)
                failures.inc(count)

        return on_export

    # -- Component --

    async def start(self) -> None:
        """Start the export threads."""
        self._sdk_log.install()
        if self._destinations:  # a sink built by hand (tests) may not know them
            sends_deltas = self._mirror is not None and self._mirror.sends_deltas
            deltas = "; metric sums and histograms as deltas" if sends_deltas else ""
            _logger.info("OTLP export: %s%s", _destinations_said(self._destinations), deltas)
        for batcher in self._batchers.values():
            batcher.start()
        if self._mirror is not None:
            self._mirror.start()

    def readiness(self) -> str | None:
        """Which signals' exports fail, each with its latest cause (an unreachable collector,
        a refusal, a protocol or certificate it does not take); informational: this sink is not
        required."""
        with self._failing_lock:
            failing = sorted(self._failing.items())
        problems = []
        for signal, (streak, since) in failing:
            when = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            cause = self._failures.latest(signal)
            latest = f" (latest: {cause})" if cause else ""
            problems.append(f"{signal}: {streak} failed export(s) in a row since {when}{latest}")
        if not problems:
            return None
        return "OTLP export failing: " + "; ".join(problems)

    async def aclose(self) -> None:
        """Flush for a bounded time, then stop, even when the collector never answers."""
        if self._closed:
            return
        self._closed = True
        flush = self._close_seconds * 0.6
        grace = self._close_seconds * 0.2
        closers = [
            _in_thread(
                functools.partial(batcher.close, flush, self._exporters[signal].shutdown, grace),
                f"otlp-{signal}-close",
            )
            for signal, batcher in self._batchers.items()
        ]
        if self._mirror is not None:
            closers.append(
                _in_thread(
                    functools.partial(self._mirror.close, grace, flush), "otlp-metrics-close"
                )
            )
        gathered = asyncio.gather(*closers)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gathered, self._close_seconds + 0.5)
        finally:  # cancelled too (the bridge's stop deadline passed)
            self._sdk_log.uninstall()
            # Cut short, the closers end cancelled: taken here, not logged by asyncio as an
            # error "never retrieved", with a traceback, when the gathering is collected.
            gathered.add_done_callback(_retrieved)


def _destinations_said(
    destinations: Mapping[Signal, tuple[str, str]], environ: Mapping[str, str] = os.environ
) -> str:
    """``traces, logs → http://127.0.0.1:4318 (http/protobuf)``, one part per destination;
    for gRPC whether it dials with TLS (``127.0.0.1:4317 (grpc, TLS)``), which its endpoint
    alone does not say (``bridge.urls.grpc_dials_tls``)."""
    signals: dict[tuple[str, str], list[str]] = {}
    for signal, (endpoint, protocol) in destinations.items():
        if protocol == "grpc":
            protocol += ", TLS" if grpc_dials_tls(endpoint, signal, environ) else ", plaintext"
        signals.setdefault((endpoint, protocol), []).append(signal)
    parts = [
        f"{', '.join(names)} → {safe_otlp_endpoint(endpoint)} ({protocol})"
        for (endpoint, protocol), names in signals.items()
    ]
    return "; ".join(parts)


def _depth_of(batcher: BoundedBatcher[Any]) -> Callable[[], int]:
    return lambda: batcher.depth


def _exporting(exporter: Exporter, success: Enum) -> Callable[[list[Any]], bool]:
    def export(batch: list[Any]) -> bool:
        return exporter.export(batch) is success

    return export


def _retrieved(gathered: asyncio.Future[Any]) -> None:
    if not gathered.cancelled():
        gathered.exception()


async def _in_thread(action: Callable[[], object], name: str) -> None:
    """Run a blocking call in a daemon thread of its own and await it.

    Not ``asyncio.to_thread``: ``asyncio.run`` joins the default executor on exit, and a hung
    exporter shutdown would then hold the process.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            action()
        except Exception:
            _logger.exception("%s failed", name)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(finish)

    threading.Thread(target=run, name=name, daemon=True).start()
    await asyncio.shield(done)
