"""Real OTLP receivers from opentelemetry-proto: gRPC (Trace, Logs, Metrics services) and HTTP.

Both keep what they received, decoded into plain ``ReceivedSpan`` / ``ReceivedLog`` values, and
run on 127.0.0.1 ports of their own (bound as port 0, the number read back once serving) in
threads of their own, so sync and async tests (and bridge subprocesses) can use them alike.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import trustme
from aiohttp import web
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.support import stop_serving

__all__ = [
    "GrpcOtlpReceiver",
    "HttpOtlpReceiver",
    "ReceivedHistogramPoint",
    "ReceivedLog",
    "ReceivedMetric",
    "ReceivedSpan",
]


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value (arrays as tuples, kvlists as dicts)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(any_value(item) for item in value.array_value.values)
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def attributes(key_values: Any) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict."""
    return {kv.key: any_value(kv.value) for kv in key_values}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector saw it."""

    resource: dict[str, Any]
    scope: str
    name: str
    kind: int
    status_code: int
    status_message: str
    start_ns: int
    end_ns: int
    trace_id: bytes
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class ReceivedLog:
    """One log record as the collector saw it."""

    resource: dict[str, Any]
    scope: str
    body: Any
    severity_number: int
    severity_text: str
    time_ns: int
    observed_ns: int
    event_name: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedHistogramPoint:
    """One explicit-bucket histogram point as the collector saw it (``min`` / ``max`` None when
    the message leaves them out)."""

    attributes: dict[str, Any]
    count: int
    sum: float | None
    bucket_counts: list[int]
    explicit_bounds: list[float]
    min: float | None
    max: float | None


@dataclass(frozen=True)
class ReceivedMetric:
    """One metric of one export: its kind (``sum``, ``gauge`` or ``histogram``), (attributes,
    value) points (a histogram's in ``histogram_points``), a sum's or histogram's
    ``AggregationTemporality`` (0 for a gauge) and each point's (start, time)."""

    resource: dict[str, Any]
    name: str
    kind: str
    is_monotonic: bool
    points: list[tuple[dict[str, Any], float]]
    temporality: int = 0
    times: list[tuple[int, int]] = field(default_factory=list)
    histogram_points: list[ReceivedHistogramPoint] = field(default_factory=list)


def _optional(point: Any, name: str) -> Any:
    """An ``optional`` field's value, None when the message leaves it out."""
    return getattr(point, name) if point.HasField(name) else None


def _histogram_point(point: Any) -> ReceivedHistogramPoint:
    return ReceivedHistogramPoint(
        attributes(point.attributes),
        point.count,
        _optional(point, "sum"),
        list(point.bucket_counts),
        list(point.explicit_bounds),
        _optional(point, "min"),
        _optional(point, "max"),
    )


def _metric(resource: dict[str, Any], metric: Any) -> ReceivedMetric:
    kind = metric.WhichOneof("data")
    data = getattr(metric, kind)
    histogram = kind == "histogram"
    points = [
        (attributes(point.attributes), getattr(point, point.WhichOneof("value")))
        for point in data.data_points
        if not histogram
    ]
    return ReceivedMetric(
        resource,
        metric.name,
        kind,
        kind == "sum" and data.is_monotonic,
        points,
        data.aggregation_temporality if kind in ("sum", "histogram") else 0,
        [(point.start_time_unix_nano, point.time_unix_nano) for point in data.data_points],
        [_histogram_point(point) for point in data.data_points] if histogram else [],
    )


class _Store:
    """What a receiver got, thread-safe, and the port it listens on once started."""

    def __init__(self) -> None:
        self.port = 0
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._logs: list[ReceivedLog] = []
        self._metrics: list[ReceivedMetric] = []
        self.requests = 0
        self.fail = False

    @property
    def endpoint(self) -> str:
        """The receiver's OTLP endpoint (once started)."""
        return f"http://127.0.0.1:{self.port}"

    def add_traces(self, request: Any) -> None:
        spans = [
            ReceivedSpan(
                attributes(resource_spans.resource.attributes),
                scope_spans.scope.name,
                span.name,
                span.kind,
                span.status.code,
                span.status.message,
                span.start_time_unix_nano,
                span.end_time_unix_nano,
                span.trace_id,
                attributes(span.attributes),
                [(event.name, attributes(event.attributes)) for event in span.events],
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.requests += 1
            self._spans.extend(spans)

    def add_logs(self, request: Any) -> None:
        logs = [
            ReceivedLog(
                attributes(resource_logs.resource.attributes),
                scope_logs.scope.name,
                any_value(record.body),
                record.severity_number,
                record.severity_text,
                record.time_unix_nano,
                record.observed_time_unix_nano,
                record.event_name,
                attributes(record.attributes),
            )
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]
        with self._lock:
            self.requests += 1
            self._logs.extend(logs)

    def add_metrics(self, request: Any) -> None:
        metrics = [
            _metric(attributes(resource_metrics.resource.attributes), metric)
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        ]
        with self._lock:
            self.requests += 1
            self._metrics.extend(metrics)

    @property
    def metrics(self) -> list[ReceivedMetric]:
        with self._lock:
            return list(self._metrics)

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    @property
    def logs(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self._logs)


class GrpcOtlpReceiver(_Store):
    """An OTLP/gRPC collector on ``endpoint``: plaintext, or TLS with ``tls`` (a certificate for
    127.0.0.1, as trustme issues one), requiring a client certificate ``client_ca`` signed."""

    def __init__(
        self, tls: trustme.LeafCert | None = None, client_ca: trustme.CA | None = None
    ) -> None:
        super().__init__()
        self._tls = tls
        self._client_ca = client_ca
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        """The receiver's OTLP endpoint (once started): ``https://`` with TLS."""
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> GrpcOtlpReceiver:
        """Serve until ``stop()``."""
        store = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                if store.fail:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "refused by the test")
                store.add_traces(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                if store.fail:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "refused by the test")
                store.add_logs(request)
                return logs_service_pb2.ExportLogsServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                store.add_metrics(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)  # type: ignore[no-untyped-call]
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)  # type: ignore[no-untyped-call]
        if self._tls is None:
            self.port = server.add_insecure_port("127.0.0.1:0")
        else:
            key = self._tls.private_key_pem.bytes()
            chain = b"".join(pem.bytes() for pem in self._tls.cert_chain_pems)
            client_ca = self._client_ca.cert_pem.bytes() if self._client_ca else None
            credentials = grpc.ssl_server_credentials(
                [(key, chain)], root_certificates=client_ca, require_client_auth=bool(client_ca)
            )
            self.port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving at once."""
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None


class HttpOtlpReceiver(_Store):
    """An OTLP/HTTP collector decoding protobuf bodies on ``/v1/traces`` and ``/v1/logs``."""

    def __init__(self) -> None:
        super().__init__()
        self.content_types: list[str] = []
        self.content_encodings: list[str | None] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._listening: list[socket.socket] = []

    async def _body(self, request: web.Request) -> bytes:
        self.content_types.append(request.content_type)
        self.content_encodings.append(request.headers.get("Content-Encoding"))
        return await request.read()  # a Content-Encoding: gzip undone by aiohttp already

    async def _export(
        self,
        request: web.Request,
        message: Any,
        answer: Any,
        add: Callable[[Any], None],
        *,
        refusable: bool = True,
    ) -> web.Response:
        """Read one export request into ``message`` and store it with ``add``, answering
        ``answer``; while ``fail`` is set a ``refusable`` one (traces, logs) is refused (400)."""
        message.ParseFromString(await self._body(request))
        if refusable and self.fail:
            return web.Response(status=400, text="refused by the test")
        add(message)
        return web.Response(body=answer.SerializeToString(), content_type="application/x-protobuf")

    async def _on_traces(self, request: web.Request) -> web.Response:
        return await self._export(
            request,
            trace_service_pb2.ExportTraceServiceRequest(),
            trace_service_pb2.ExportTraceServiceResponse(),
            self.add_traces,
        )

    async def _on_logs(self, request: web.Request) -> web.Response:
        return await self._export(
            request,
            logs_service_pb2.ExportLogsServiceRequest(),
            logs_service_pb2.ExportLogsServiceResponse(),
            self.add_logs,
        )

    async def _on_metrics(self, request: web.Request) -> web.Response:
        return await self._export(
            request,
            metrics_service_pb2.ExportMetricsServiceRequest(),
            metrics_service_pb2.ExportMetricsServiceResponse(),
            self.add_metrics,
            refusable=False,
        )

    def start(self) -> HttpOtlpReceiver:
        """Serve from a thread with its own event loop until ``stop()``."""
        started = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def serve() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/traces", self._on_traces)
            app.router.add_post("/v1/logs", self._on_logs)
            app.router.add_post("/v1/metrics", self._on_metrics)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            listening = socket.create_server(("127.0.0.1", 0))  # for stop_serving
            self._listening.append(listening)
            await web.SockSite(self._runner, listening).start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="otlp-http-receiver", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the OTLP HTTP receiver did not start")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        loop, runner = self._loop, self._runner
        if loop is None or self._thread is None:
            return
        if runner is not None:
            stopping = stop_serving(runner, self._listening)
            asyncio.run_coroutine_threadsafe(stopping, loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5)
        self._loop = None
