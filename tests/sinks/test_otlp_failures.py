"""Failing OTLP exports in the log: once at the start, a summary a minute, once at the end."""

from __future__ import annotations

import http.server
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any, Final, Protocol

import grpc
import pytest
import requests
import trustme
from urllib3 import HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import SSLError as Urllib3SSLError

from bridge.sinks.otlp.failures import SDK_LOGGER, ExportFailures, SdkLogCapture
from tests.support import ManualClock, free_port


def _captured_on_the_logs_thread(failures: ExportFailures, export: Callable[[], None]) -> None:
    """Run ``export`` on a thread named as the SDK's logs export thread, the SDK's log records
    captured into ``failures`` meanwhile."""
    capture = SdkLogCapture(failures)
    capture.install()
    try:
        thread = threading.Thread(target=export, name="otlp-logs")
        thread.start()
        thread.join()
    finally:
        capture.uninstall()


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bridge.sinks.otlp.failures"]


def test_a_failing_signal_is_told_once_then_once_a_minute_then_its_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failures every 5 s for two minutes make three lines (start, two summaries), then one
    for the recovery; the other signal is told apart."""
    clock = ManualClock()
    failures = ExportFailures(clock=clock)
    with caplog.at_level("INFO", logger="bridge.sinks.otlp.failures"):
        failures.reason("traces", "Failed to export traces to collector.example:4317, UNAVAILABLE")
        for _ in range(25):
            failures.failed("traces", 10)
            clock.now += 5
        failures.failed("logs", 3)
        failures.exported("traces")
        failures.exported("traces")  # nothing was failing any more: nothing to say
    assert _lines(caplog) == [
        "OTLP traces export failing: Failed to export traces to collector.example:4317, "
        "UNAVAILABLE; 10 record(s) lost after the exporter's retries, counted in"
        " exesdb_otlp_export_failures_total (newer records are still tried, next report within"
        " 60 s)",
        "OTLP traces export still failing: 12 export(s) failed after their retries, 120 record(s)"
        " lost, in the last 60s; latest: Failed to export traces to collector.example:4317,"
        " UNAVAILABLE",
        "OTLP traces export still failing: 12 export(s) failed after their retries, 120 record(s)"
        " lost, in the last 60s; latest: Failed to export traces to collector.example:4317,"
        " UNAVAILABLE",
        "OTLP logs export failing: the exporter gave no reason; 3 record(s) lost after the"
        " exporter's retries, counted in exesdb_otlp_export_failures_total (newer records are"
        " still tried, next report within 60 s)",
        "OTLP traces export recovered after 25 failed export(s)",
    ]


def test_the_sdk_exporters_own_records_stay_off_the_console_while_captured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While installed, the SDK exporters' warnings reach no handler of ours but become the
    reason of their signal (by the exporting thread's name), URLs redacted; uninstalled, they
    flow again."""
    failures = ExportFailures(clock=ManualClock())
    capture = SdkLogCapture(failures)
    sdk = logging.getLogger(SDK_LOGGER + ".proto.grpc.exporter")

    def export_thread() -> None:
        sdk.warning("Transient error for https://u:pw@collector.example/v1/traces, retrying")

    with caplog.at_level("INFO"):
        capture.install()
        capture.install()  # idempotent
        thread = threading.Thread(target=export_thread, name="otlp-traces")
        thread.start()
        thread.join()
        failures.failed("traces", 1)
        capture.uninstall()
        sdk.warning("after uninstall")
    shown = [r.getMessage() for r in caplog.records]
    assert not any("Transient error" in line for line in shown if "OTLP" not in line)
    assert any(
        "latest" not in line
        and "Transient error for https://u:<redacted>@collector.example/…, retrying" in line
        for line in shown
    )
    assert "pw@" not in " ".join(shown)
    assert "after uninstall" in shown


def test_each_signal_keeps_its_reason_when_the_sdk_words_them_alike(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK's gRPC exporter logger drops a record worded as the one before it (its
    DuplicateFilter), so traces failing just after logs had no reason; captured, each signal's
    own record is its reason, and the filter is back once uninstalled."""
    from opentelemetry.exporter.otlp.proto.grpc import exporter as grpc_exporter

    sdk = grpc_exporter.logger
    before = list(sdk.filters)
    assert any(type(found).__name__ == "DuplicateFilter" for found in before)
    failures = ExportFailures(clock=ManualClock())
    capture = SdkLogCapture(failures)

    def fail(signal: str) -> None:
        def export() -> None:
            sdk.error("Failed to export %s to %s, error code: %s", signal, "127.0.0.1:9", "X")

        thread = threading.Thread(target=export, name=f"otlp-{signal}")
        thread.start()
        thread.join()
        failures.failed(signal, 1)  # type: ignore[arg-type]

    with caplog.at_level("INFO", logger="bridge.sinks.otlp.failures"):
        capture.install()
        try:
            fail("logs")
            fail("traces")
        finally:
            capture.uninstall()
    assert [line.partition(";")[0] for line in _lines(caplog)] == [
        "OTLP logs export failing: Failed to export logs to 127.0.0.1:9, error code: X",
        "OTLP traces export failing: Failed to export traces to 127.0.0.1:9, error code: X",
    ]
    assert sdk.filters == before


@pytest.mark.parametrize(
    ("variable", "path"),
    [
        (None, "its path (/v1/logs)"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "its path (/v1/logs)"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "its path (the exporter adds /v1/logs to it)"),
    ],
)
def test_an_http_status_is_the_reason_with_the_endpoint_redacted(
    caplog: pytest.LogCaptureFixture, variable: str | None, path: str
) -> None:
    """The SDK's HTTP exporter, answered 404 by a real server, makes a warning naming the
    endpoint as the bridge shows URLs (its token-bearing path hidden) and the status, and as
    what to check the variable the endpoint is set by (the signal's own, or the general one to
    which the exporter adds the path; both when not told), a 404 likely, not surely, from no
    collector."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}/tok-secret/v1/logs"
    failures = ExportFailures(
        clock=ManualClock(),
        endpoints={"logs": endpoint},
        endpoint_variables={"logs": variable} if variable else None,
    )
    exporter = OTLPLogExporter(endpoint=endpoint, timeout=5)

    def export() -> None:
        exporter.export([])  # fails: the server answers 404
        failures.failed("logs", 1)

    with caplog.at_level("INFO", logger="bridge.sinks.otlp.failures"):
        try:
            _captured_on_the_logs_thread(failures, export)
        finally:
            server.shutdown()
            server.server_close()
            exporter.shutdown()  # type: ignore[no-untyped-call]
    assert [line.partition(";")[0] for line in _lines(caplog)] == [
        f"OTLP logs export to http://127.0.0.1:{server.server_port}/… failing: HTTP 404 (Not Found)"
        + _not_a_collector("logs", variable, path)
    ]
    assert "tok-secret" not in caplog.text


def _not_a_collector(signal: str, variable: str | None = None, path: str = "") -> str:
    """The advice after a status no collector answers an export at its path with."""
    checked = (
        variable or f"OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT)"
    )
    return (
        f": the URL is likely not an OTLP collector's /v1/{signal}: check {checked}, its port"
        f" (4318 for OTLP/HTTP, 4317 for gRPC) and {path or f'its path (/v1/{signal})'}"
    )


def test_an_http_export_to_a_server_that_is_no_collector_says_to_check_the_endpoint() -> None:
    """The SDK's HTTP exporter, answered 501 Unsupported method ('POST') by a real plain HTTP
    server (Python's, which has no POST), is told that likely no OTLP collector listens there
    and what to check (the endpoint, the ports 4318/4317, the signal's path), not the status
    alone; so is the latest cause readiness quotes."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    class NoPost(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoPost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
    failures = ExportFailures(clock=ManualClock(), endpoints={"traces": endpoint})
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=5)
    capture = SdkLogCapture(failures)
    capture.install()
    try:
        thread = threading.Thread(target=lambda: exporter.export([]), name="otlp-traces")
        thread.start()
        thread.join()
    finally:
        capture.uninstall()
        server.shutdown()
        server.server_close()
        exporter.shutdown()  # type: ignore[no-untyped-call]
    assert failures.latest("traces") == (
        "HTTP 501 (Unsupported method ('POST'))" + _not_a_collector("traces")
    )


def test_a_retry_aborted_by_the_stop_is_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """The SDK's "Shutdown in progress, aborting retry." (the bridge stopping) makes the lost
    records an INFO line saying so, and no warning of a failure."""
    failures = ExportFailures(clock=ManualClock())
    sdk = logging.getLogger(SDK_LOGGER + ".proto.http._log_exporter")

    def export() -> None:
        sdk.warning("Shutdown in progress, aborting retry.")
        failures.failed("logs", 4)

    with caplog.at_level("INFO", logger="bridge.sinks.otlp.failures"):
        _captured_on_the_logs_thread(failures, export)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "INFO",
            "OTLP logs: 4 record(s) not sent: the bridge stopped while their export was being"
            " retried",
        )
    ]


def test_a_collector_that_never_answers_is_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    """A collector that takes the connection and never answers (the SDK's HTTP exporter gives
    up with no retry record: its one attempt took the whole timeout) is said as that, not as
    no reason."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the backlog), never answers
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}/v1/logs"
    failures = ExportFailures(clock=ManualClock())
    exporter = OTLPLogExporter(endpoint=endpoint, timeout=0.3)

    def export() -> None:
        exporter.export([])  # fails: no answer within 0.3 s
        failures.failed("logs", 1)

    with caplog.at_level("INFO", logger="bridge.sinks.otlp.failures"):
        try:
            _captured_on_the_logs_thread(failures, export)
        finally:
            silent.close()
            exporter.shutdown()  # type: ignore[no-untyped-call]
    assert [line.partition(";")[0] for line in _lines(caplog)] == [
        "OTLP logs export failing: no answer within the export timeout (OTEL_EXPORTER_OTLP_TIMEOUT)"
    ]


def test_a_cause_told_in_an_earlier_export_is_not_this_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A give-up without a retry record, after an export that had one and then succeeded, is
    said as no answer in time, not as the earlier export's cause; within one export the retry
    record's cause stands."""
    failures = ExportFailures(clock=ManualClock())
    with caplog.at_level("INFO", logger="bridge.sinks.otlp.failures"):
        failures.reason("traces", "connection refused")
        failures.exported("traces")
        failures.gave_up("traces")
        failures.failed("traces", 1)
        failures.reason("logs", "connection refused")
        failures.gave_up("logs")
        failures.failed("logs", 1)
    assert [line.partition(";")[0] for line in _lines(caplog)] == [
        "OTLP traces export failing: no answer within the export timeout "
        "(OTEL_EXPORTER_OTLP_TIMEOUT)",
        "OTLP logs export failing: connection refused",
    ]


class _Http1Collector:
    """A real HTTP/1.1 server answering every POST 404, as a port of another protocol would."""

    def __init__(self) -> None:
        class NotFound(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.send_error(404)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _grpc_port() -> tuple[grpc.Server, int]:
    """A real gRPC server without TLS (no service: its HTTP/2 answers are what counts)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class _Exporter(Protocol):
    """What the tests ask of an SDK exporter, gRPC or HTTP."""

    def export(self, batch: Sequence[Any]) -> Any: ...

    def shutdown(self) -> None: ...


# One gRPC export attempt, with time for a handshake on a loaded host: the first failure is the
# one told. (A 1 s timeout left its handshake short under load, or the retry that a backoff of
# under a second let in ran out of time: DEADLINE_EXCEEDED, not the failure under test.)
ONE_ATTEMPT: Final[dict[str, Any]] = {
    "timeout": 30,
    "retryable_error_codes": [grpc.StatusCode.DATA_LOSS],  # never answered here: no retry
}


def _failing_export_said(
    caplog: pytest.LogCaptureFixture, exporter: _Exporter, variable: str | None = None
) -> str:
    """The warning's reason for one export of ``exporter`` on the logs thread, which fails
    (its endpoint set by ``variable``, when given)."""
    failures = ExportFailures(
        clock=ManualClock(), endpoint_variables={"logs": variable} if variable else None
    )

    def export() -> None:
        exporter.export([])
        failures.failed("logs", 1)

    with caplog.at_level("INFO", logger="bridge.sinks.otlp.failures"):
        try:
            _captured_on_the_logs_thread(failures, export)
        finally:
            exporter.shutdown()
    [line] = _lines(caplog)
    return line.partition("failing: ")[2].rpartition("; ")[0]


def test_a_grpc_export_to_an_http1_port_says_to_set_the_http_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gRPC exporter sent to an HTTP/1.1 port (a collector's OTLP/HTTP 4318) is told to set
    the protocol to http/protobuf or give the gRPC port, not gRPC's parsing error cut short."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    collector = _Http1Collector()
    try:
        endpoint = f"http://127.0.0.1:{collector.port}"
        said = _failing_export_said(caplog, OTLPLogExporter(endpoint=endpoint, **ONE_ATTEMPT))
    finally:
        collector.close()
    assert said == (
        "the endpoint answers in HTTP/1.1, as an OTLP/HTTP port does (a collector's 4318), not "
        "gRPC: set OTEL_EXPORTER_OTLP_PROTOCOL (or OTEL_EXPORTER_OTLP_LOGS_PROTOCOL) to "
        "http/protobuf, or give the collector's gRPC port (4317)"
    )


def test_an_http_export_to_a_grpc_port_says_to_set_the_grpc_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The HTTP exporter sent to a gRPC port (a collector's 4317), which answers in HTTP/2, is
    told to set the protocol to grpc or give the OTLP/HTTP port, not the escaped bytes of the
    HTTP/2 frame requests could not read."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    server, port = _grpc_port()
    try:
        endpoint = f"http://127.0.0.1:{port}/v1/logs"
        # 2.5 s: the first attempt's failure is retried once, its cause logged, within it.
        said = _failing_export_said(caplog, OTLPLogExporter(endpoint=endpoint, timeout=2.5))
    finally:
        server.stop(grace=None)
    assert said == (
        "the endpoint answers in HTTP/2, as an OTLP/gRPC port does (a collector's 4317), not "
        "OTLP/HTTP: set OTEL_EXPORTER_OTLP_PROTOCOL (or OTEL_EXPORTER_OTLP_LOGS_PROTOCOL) to "
        "grpc, or give the collector's OTLP/HTTP port (4318)"
    )


REFUSED = (
    "connection refused: nothing listens at the endpoint: start the collector, or set"
    " OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) to where it listens"
)
REFUSED_OWN = REFUSED.replace(
    "OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


def test_a_grpc_export_to_a_port_nothing_listens_on_says_to_start_the_collector_or_set_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gRPC exporter sent to a port nothing listens on is told to start the collector or
    set the endpoint, not gRPC's long "failed to connect to all addresses" cut short."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    endpoint = f"http://127.0.0.1:{free_port()}"
    assert _failing_export_said(caplog, OTLPLogExporter(endpoint=endpoint, **ONE_ATTEMPT)) == (
        REFUSED
    )


@pytest.mark.parametrize(
    ("variable", "told"), [(None, REFUSED), ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", REFUSED_OWN)]
)
def test_an_http_export_to_a_port_nothing_listens_on_says_to_start_the_collector_or_set_it(
    caplog: pytest.LogCaptureFixture, variable: str | None, told: str
) -> None:
    """The HTTP exporter sent to a port nothing listens on is told as the gRPC one is: to set
    the variable its endpoint is set by, when known (the signal's own here), else either."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    endpoint = f"http://127.0.0.1:{free_port()}/v1/logs"
    # 2.5 s: the first attempt's failure is retried once, its cause logged, within it.
    exporter = OTLPLogExporter(endpoint=endpoint, timeout=2.5)
    assert _failing_export_said(caplog, exporter, variable) == told


NO_TLS = (
    "TLS handshake failed: the endpoint answers without TLS (OpenSSL: wrong version number): "
    "write it with http:// for a collector without TLS"
)


def test_an_https_export_to_a_collector_without_tls_says_to_write_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The HTTP exporter given https:// for a collector without TLS is told to write http://,
    not requests' chain of wrappers around OpenSSL's wrong version number."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    collector = _Http1Collector()
    try:
        endpoint = f"https://127.0.0.1:{collector.port}/v1/logs"
        said = _failing_export_said(caplog, OTLPLogExporter(endpoint=endpoint, timeout=2.5))
    finally:
        collector.close()
    assert said == NO_TLS


class _Tls32Refusal(requests.adapters.BaseAdapter):
    """What requests raises, over OpenSSL 3.2 or later, for https:// to a port without TLS:
    that OpenSSL words the failure "record layer failure" (this machine's, 3.0, cannot)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        pool = HTTPSConnectionPool("127.0.0.1", 4318)
        said = ssl.SSLError(1, "[SSL] record layer failure (_ssl.c:1006)")
        raise requests.exceptions.SSLError(
            MaxRetryError(pool, "/v1/logs", Urllib3SSLError(said)), request=request
        )

    def close(self) -> None:
        """Nothing held."""


def test_an_https_export_to_a_collector_without_tls_over_openssl_3_2_says_to_write_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over OpenSSL 3.2 or later (Debian 13's among them), whose handshake with a port without
    TLS fails as a "record layer failure", the HTTP exporter given https:// is told to write
    http:// as over OpenSSL 3.0."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    session = requests.Session()
    session.mount("https://", _Tls32Refusal())
    exporter = OTLPLogExporter(
        endpoint="https://127.0.0.1:4318/v1/logs", timeout=2.5, session=session
    )
    said = _failing_export_said(caplog, exporter)
    assert said == NO_TLS.replace("wrong version number", "record layer failure")


def test_a_grpc_export_with_tls_to_a_collector_without_it_says_to_write_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gRPC exporter dialling a plaintext gRPC collector with TLS (https://, or no scheme)
    is told to write http://."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    server, port = _grpc_port()
    try:
        endpoint = f"https://127.0.0.1:{port}"
        said = _failing_export_said(caplog, OTLPLogExporter(endpoint=endpoint, **ONE_ATTEMPT))
    finally:
        server.stop(grace=None)
    assert said == NO_TLS


def _grpc_tls_port(leaf: trustme.LeafCert) -> tuple[grpc.Server, int]:
    """A real gRPC server with TLS, serving ``leaf``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
    credentials = grpc.ssl_server_credentials([(leaf.private_key_pem.bytes(), chain)])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


def _grpc_tls_export_said(
    caplog: pytest.LogCaptureFixture, leaf: trustme.LeafCert, trusting: trustme.CA, host: str
) -> str:
    """What the gRPC log exporter's one failing export to ``host`` says, at a TLS port
    serving ``leaf``, the exporter trusting ``trusting``'s certificate alone."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

    server, port = _grpc_tls_port(leaf)
    trusted = grpc.ssl_channel_credentials(root_certificates=trusting.cert_pem.bytes())
    try:
        exporter = OTLPLogExporter(
            endpoint=f"https://{host}:{port}", credentials=trusted, **ONE_ATTEMPT
        )
        return _failing_export_said(caplog, exporter)
    finally:
        server.stop(grace=None)


def test_a_grpc_collector_certificate_no_ca_trusted_signed_says_which_variable_to_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gRPC exporter refusing a collector's certificate that the CA it trusts did not sign
    is told to set the certificate variables to the signing CA's file, not OpenSSL's code cut
    short."""
    said = _grpc_tls_export_said(
        caplog, trustme.CA().issue_cert("127.0.0.1"), trustme.CA(), "127.0.0.1"
    )
    assert said == (
        "TLS handshake failed: the collector's certificate did not verify: set"
        " OTEL_EXPORTER_OTLP_CERTIFICATE (or OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE) to the file of"
        " the CA that signed it (unset, the system's CAs are trusted)"
    )


def test_a_grpc_collector_certificate_for_another_name_says_to_use_a_name_it_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The gRPC exporter dialling ``localhost`` where the certificate holds only 127.0.0.1 is
    told to give the endpoint by a name its certificate holds."""
    ca = trustme.CA()
    said = _grpc_tls_export_said(caplog, ca.issue_cert("127.0.0.1"), ca, "localhost")
    assert said == (
        "TLS handshake failed: the collector's certificate does not hold the endpoint's host"
        " name: give the endpoint by a name (or address) its certificate holds"
    )


def test_an_http_collector_certificate_no_ca_trusted_signed_says_why_and_what_to_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The HTTP exporter refusing a collector's certificate that the CA file it was given did not
    sign is told OpenSSL's reason and to set the certificate variables to the signing CA's
    file, not requests' chain of wrappers."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    collector = _Http1Collector()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    collector.server.socket = context.wrap_socket(collector.server.socket, server_side=True)
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    try:
        exporter = OTLPLogExporter(
            endpoint=f"https://127.0.0.1:{collector.port}/v1/logs",
            certificate_file=str(other),
            timeout=2.5,  # the first attempt's failure is retried once, its cause logged
        )
        said = _failing_export_said(caplog, exporter)
    finally:
        collector.close()
    assert said == (
        "TLS handshake failed: the collector's certificate did not verify (unable to get local"
        " issuer certificate): set OTEL_EXPORTER_OTLP_CERTIFICATE (or"
        " OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE) to the file of the CA that signed it (unset, the"
        " system's CAs are trusted)"
    )
