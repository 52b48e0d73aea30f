"""OTLP export's standard variables at start, in real bridges: the certificate and key files
checked before the SDK reads them, and a blank variable unset for the SDK as for the settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.bus import Envelope, new_message_id
from bridge.config import load_settings
from bridge.messages import HealthCheck, LogEntry, utc_now
from bridge.sinks.otlp import otlp_component
from tests.integration.servers.otlp import GrpcOtlpReceiver
from tests.support import (
    BridgeProcess,
    async_wait_until,
    free_port,
    post_signed,
    run_bridge,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def ca() -> trustme.CA:
    """A throwaway CA for the collector's certificate and the bridge's client certificate."""
    return trustme.CA()


@pytest.fixture
def tls_receiver(ca: trustme.CA) -> Iterator[GrpcOtlpReceiver]:
    """An OTLP/gRPC collector over TLS with a certificate ``ca`` signed for 127.0.0.1, which
    takes only clients presenting a certificate ``ca`` signed."""
    server = GrpcOtlpReceiver(tls=ca.issue_cert("127.0.0.1"), client_ca=ca).start()
    yield server
    server.stop()


def _written(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("protocol", "variable", "content", "problem"),
    [
        ("grpc", "OTEL_EXPORTER_OTLP_CERTIFICATE", None, "cannot read {path}: No such file"),
        (
            "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            b"not a certificate\n",
            "{path} holds no PEM certificate",
        ),
        ("grpc", "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "cert", "{path} holds no PEM private key"),
    ],
)
def test_a_bad_certificate_or_key_file_stops_run_naming_its_variable(
    tmp_path: Path,
    ca: trustme.CA,
    protocol: str,
    variable: str,
    content: bytes | str | None,
    problem: str,
) -> None:
    """`run` with OTLP export to an https endpoint and a certificate or key file that is
    missing or no PEM of its kind exits 2 naming the variable and the file's fault, with no
    traceback (the gRPC exporter logged one and went on, the HTTP one failed at each export)."""
    path = tmp_path / "file.pem"
    if content == "cert":
        content = ca.cert_pem.bytes()
    if isinstance(content, bytes):
        path.write_bytes(content)
    completed = run_bridge(
        "run",
        env={
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            "EXESDB_STATE_DIR": str(tmp_path / "state"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://127.0.0.1:{free_port()}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            variable: str(path),
        },
        timeout=30,
    )
    assert completed.returncode == 2, completed.stderr
    assert f"  {variable}: {problem.format(path=path)}" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("traces_certificate", [None, ""])
async def test_spans_reach_a_collector_over_mutual_tls_with_the_certificate_files(
    tls_receiver: GrpcOtlpReceiver,
    ca: trustme.CA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    traces_certificate: str | None,
) -> None:
    """With OTEL_EXPORTER_OTLP_CERTIFICATE (the collector's CA), _CLIENT_CERTIFICATE and
    _CLIENT_KEY naming good PEM files, spans reach a gRPC collector that requires a client
    certificate; an empty OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE is unset, so the general one
    still holds (the SDK's gRPC exporter would trust the system's CAs for it instead)."""
    client = ca.issue_cert("exesdb-bridge")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tls_receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_CERTIFICATE", _written(tmp_path / "ca.pem", ca.cert_pem.bytes())
    )
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        _written(tmp_path / "client.pem", client.cert_chain_pems[0].bytes()),
    )
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        _written(tmp_path / "client.key", client.private_key_pem.bytes()),
    )
    if traces_certificate is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", traces_certificate)
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), components=[otlp_component])
    await bridge.start(serve_http=False)
    try:
        bridge.bus.publish(
            "store1:health",
            HealthCheck(check_name="tls", node="n", result="pass", duration_ms=1.0),
        )
        await async_wait_until(lambda: tls_receiver.spans, 15, "the span over TLS")
    finally:
        await bridge.aclose()
    assert [span.name for span in tls_receiver.spans] == ["tls"]


def _envelope(payload: Any) -> bytes:
    return Envelope(
        new_message_id(), payload.INSTANCE, "checks", payload.TAG, "n1", utc_now(), payload
    ).to_bytes()


def test_blank_per_signal_timeouts_are_unset_for_the_exporters_too(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """`run` with OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_TIMEOUT set to nothing or blanks
    (as docker compose's ${X:-} sets them) exports every signal with the general timeout,
    where the SDK's gRPC exporters stopped start-up with a traceback."""
    receiver = GrpcOtlpReceiver().start()
    try:
        process = BridgeProcess(
            state_dir=tmp_path / "state",
            EXESDB_INGEST="true",
            EXESDB_OTLP_METRICS="true",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="",
            OTEL_EXPORTER_OTLP_LOGS_TIMEOUT="  ",
            OTEL_EXPORTER_OTLP_METRICS_TIMEOUT="",
            OTEL_BSP_SCHEDULE_DELAY="50",
            OTEL_BLRP_SCHEDULE_DELAY="50",
            OTEL_METRIC_EXPORT_INTERVAL="200",
        )
        bridge_processes.append(process)
        process.start(tmp_path)
        post_signed(
            process.url,
            b"\n".join(
                [
                    _envelope(
                        HealthCheck(check_name="blank", node="n1", result="pass", duration_ms=1.0)
                    ),
                    _envelope(LogEntry(level="info", message="blank", module="m", node="n1")),
                ]
            ),
        )
        wait_until(
            lambda: (
                "blank" in [log.body for log in receiver.logs]
                and "blank" in [span.name for span in receiver.spans]
                and receiver.metrics
            ),
            20,
            "the log record, the span and metrics",
        )
    finally:
        receiver.stop()
    assert "Traceback" not in process.log()
