"""GET /metrics: one document from the registry and the sink, negotiated, gzipped, valid."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector

from bridge.app import Bridge
from bridge.messages import LogEntry
from bridge.settings import Settings
from bridge.sinks.prometheus import OPENMETRICS_TYPE, TEXT_TYPE, PrometheusSink, negotiate
from tests.sinks.prometheus_support import envelope
from tests.sinks.test_prometheus_translate import GOLDEN
from tests.support import async_wait_until, http_get, require_binary

OPENMETRICS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
# What Prometheus 3 asks for by default.
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
# What Prometheus asks for with scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0].
TEXT_FIRST_ACCEPT = (
    "text/plain;version=0.0.4;q=0.6,"
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4"
)
OPENMETRICS_1 = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    """A started bridge on a free loopback port, with every golden message published."""
    settings = Settings(
        EXESDB_NODE="n1",
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_HEALTH_BROADCAST_INTERVAL=60_000,
        EXESDB_STATE_DIR=str(tmp_path / "state"),  # not the working directory
        # An unhealthy resource fails the host check: this one passes whatever the host reads.
        EXESDB_CPU_UNHEALTHY=100,
        EXESDB_MEMORY_UNHEALTHY=100,
        EXESDB_DISK_UNHEALTHY=100,
    )
    running = Bridge(settings)
    await running.start()
    for case in GOLDEN:
        running.integration.broadcast(case.tag, case.topic, **case.fields)
    sink = next(c for c in running.components if isinstance(c, PrometheusSink))
    await async_wait_until(
        lambda: sink.subscription.idle and "exesdb_log_rotations_total" in sink.render(False),
        what="the sink to translate every golden message",
    )
    yield running
    await running.aclose()


def _get(bridge: Bridge, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    import urllib.request

    assert bridge.address is not None
    url = f"http://127.0.0.1:{bridge.address[1]}/metrics"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as answer:
        return answer.status, answer.read(), dict(answer.headers)


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("", TEXT_TYPE),
        ("text/plain", TEXT_TYPE),
        ("text/plain;version=0.0.4", TEXT_TYPE),
        ("text/plain;version=1.0.0", "text/plain; version=1.0.0; charset=utf-8"),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", OPENMETRICS_1),
        ("application/openmetrics-text", OPENMETRICS_TYPE),
        (OPENMETRICS_ACCEPT, OPENMETRICS_1),
        (PROMETHEUS_3_ACCEPT, OPENMETRICS_1),
        ("application/openmetrics-text;version=0.0.1,text/plain;q=0.5", TEXT_TYPE),
        ("application/openmetrics-text;q=0", TEXT_TYPE),
        (
            "application/openmetrics-text; q=0.0, text/plain;version=1.0.0",
            "text/plain; version=1.0.0",
        ),
        ("application/openmetrics-text;q=0.1", OPENMETRICS_TYPE),
        ("application/openmetrics-text;q=x", OPENMETRICS_TYPE),
        ("application/json", TEXT_TYPE),
        ("application/openmetrics-text;version=x", TEXT_TYPE),
        ("application/openmetrics-text;version=99", TEXT_TYPE),
        (
            "application/openmetrics-text;version=2.0.0,text/plain;version=1.0.0;q=0.5",
            "text/plain; version=1.0.0",
        ),
        ("text/plain;version=abc", TEXT_TYPE),
        (TEXT_FIRST_ACCEPT, TEXT_TYPE),
        ("text/plain;q=1, application/openmetrics-text;q=0.1", TEXT_TYPE),
        ("text/plain;version=1.0.0;q=0.3,application/openmetrics-text;q=0.5", OPENMETRICS_TYPE),
        ("*/*;q=0.9,application/openmetrics-text;q=0.5", OPENMETRICS_TYPE),
        ("Application/OpenMetrics-Text", OPENMETRICS_TYPE),
    ],
)
def test_negotiation_takes_the_most_wanted_format(accept: str, content_type: str):
    """The most wanted type by weight (the first of equal weights) that prometheus_client
    serves, as it serves it (OpenMetrics only when asked, never with q=0); text 0.0.4 else."""
    chosen = negotiate(accept)
    assert chosen.content_type.startswith(content_type)
    assert chosen.openmetrics is content_type.startswith("application/openmetrics-text")


def _registry(names: tuple[str, str]) -> CollectorRegistry:
    """A registry of every kind of family, named after ``names`` (a counter's, a gauge's)."""
    registry = CollectorRegistry()
    Counter(names[0], "A counter.", ["node"], registry=registry).labels("n1").inc(3)
    Gauge(names[1], 'A "gauge".\\', ["node", "kind"], registry=registry).labels("n\n1", "x").set(2)
    Histogram("plain_seconds", "A histogram.", registry=registry).observe(0.2)
    Summary("plain_summary_seconds", "A summary.", ["slot"], registry=registry).labels("a").observe(
        1
    )
    Info("plain_build", "Info.", registry=registry).info({"version": "1"})
    Enum("plain_state", "Enum.", states=["up", "down"], registry=registry).state("down")
    return registry


@pytest.mark.parametrize(
    "names",
    [("plain_total_things", "plain_gauge"), ("with:colon", "plain_gauge"), ("a", "dotted.name")],
)
def test_openmetrics_is_byte_for_byte_prometheus_clients(names: tuple[str, str]):
    """The OpenMetrics the bridge renders is prometheus_client's own, names with a colon or a
    dot escaped as it escapes them."""
    registry = _registry(names)
    ours = negotiate(OPENMETRICS_ACCEPT).encode(registry)
    assert ours == openmetrics_generate_latest(registry)  # type: ignore[no-untyped-call]


class ReservedLabel(Collector):
    """A collector (a registry passed in as ``registry=`` may hold one) whose gauge has a
    label named as Prometheus reserves (``__x``), which prometheus_client's own metrics refuse."""

    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily("plain_gauge", "A gauge.", labels=["__x"])
        family.add_metric(["v"], 1)
        return [family]


def test_openmetrics_of_a_reserved_label_name_is_prometheus_clients_too() -> None:
    """A label name beginning with ``__`` is rendered as prometheus_client's OpenMetrics renders
    it, bare (the "allow-utf-8" escaping would quote it, which Prometheus 2 cannot parse)."""
    registry = CollectorRegistry()
    registry.register(ReservedLabel())
    ours = negotiate(OPENMETRICS_ACCEPT).encode(registry)
    assert ours == openmetrics_generate_latest(registry)  # type: ignore[no-untyped-call]


def test_openmetrics_of_plain_names_is_not_escaped_a_character_at_a_time(monkeypatch):
    """Rendering OpenMetrics of names that need no escaping asks prometheus_client's escaping
    of no character one at a time (the loop of Python calls that made a third of its cost)."""
    tested: list[str] = []

    def legacy_rune(character: str, index: int) -> bool:
        tested.append(character)
        return True

    monkeypatch.setattr(openmetrics_exposition, "_is_legacy_labelname_rune", legacy_rune)
    negotiate(OPENMETRICS_ACCEPT).encode(_registry(("plain_things", "plain_gauge")))
    assert tested == []


async def test_text_format_parses_and_has_every_part(bridge: Bridge):
    """Text 0.0.4 parses, holds each name once, and carries registry and sink families."""
    status, body, headers = await asyncio.to_thread(_get, bridge, {})
    assert status == 200
    assert headers["Content-Type"] == TEXT_TYPE
    families = list(parse_text(body.decode()))
    names = [family.name for family in families]
    assert len(names) == len(set(names))
    for name in (
        "exesdb_build_info",
        "exesdb_integration_enabled",
        "exesdb_bus_published",
        "process_resident_memory_bytes",
        "exesdb_node_cpu_usage_percent",
        "exesdb_operation_latency_seconds",
        "exesdb_prometheus_series",
        "exesdb_collector_runs",
    ):
        assert name in names, name
    assert b"instance=" not in body


async def test_openmetrics_format_parses_and_ends_once(bridge: Bridge):
    """OpenMetrics parses with the reference parser and ends with exactly one # EOF."""
    status, body, headers = await asyncio.to_thread(_get, bridge, {"Accept": OPENMETRICS_ACCEPT})
    assert status == 200
    assert headers["Content-Type"].startswith(OPENMETRICS_1)
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    families = {family.name: family for family in parse_om(text)}  # type: ignore[no-untyped-call]
    assert families["exesdb_operation_latency_seconds"].type == "summary"
    assert families["exesdb_alerts"].type == "counter"


async def test_gzip_when_accepted(bridge: Bridge):
    """With Accept-Encoding: gzip the body is compressed and decompresses to the exposition."""
    status, body, headers = await asyncio.to_thread(_get, bridge, {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    assert b"exesdb_build_info" in gzip.decompress(body)


async def test_promtool_accepts_every_message_kind(bridge: Bridge, tmp_path):
    """promtool check metrics prints nothing for a document holding all 36 message kinds."""
    promtool = require_binary("promtool")
    assert bridge.address is not None
    status, body = await asyncio.to_thread(
        http_get, f"http://127.0.0.1:{bridge.address[1]}/metrics"
    )
    assert status == 200
    result = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=body,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b""
    assert result.stderr == b""


async def test_default_components_feed_metrics_and_readiness(bridge: Bridge):
    """make run's components: the sink is ready and the collectors' first figures are exposed."""
    checks = bridge.readiness()
    assert checks["prometheus"] == {"ready": True, "required": True, "reason": None}
    assert {"health_collector", "throughput_collector", "lifecycle_collector"} <= set(checks)

    def rendered() -> str:
        return bridge.render_metrics("")[0].decode()

    await async_wait_until(
        lambda: 'exesdb_node_cpu_usage_percent{node="n1"}' in rendered(),
        what="the health collector's first run",
    )
    text = rendered()
    started = 'exesdb_system_lifecycle_state{node="n1",system="exesdb_bridge",state="started"} 1.0'
    assert started in text
    assert 'exesdb_component_health_status{node="n1",component="bus",status="healthy"} 1.0' in text
    assert 'exesdb_health_checks_total{node="n1",check="host_resources",result="pass"}' in text


async def test_sink_stops_being_ready_when_closed():
    """A closed sink reports why it is not ready."""
    bridge = Bridge(Settings(EXESDB_NODE="n1"), components=[])
    sink = PrometheusSink(bridge.bus)
    assert sink.readiness() == "the Prometheus sink has not started"
    await sink.start()
    assert sink.readiness() is None
    await sink.aclose()
    await sink.aclose()
    assert sink.readiness() == "the Prometheus sink is closed"


async def test_a_failing_message_is_counted_and_the_rest_of_its_batch_translated():
    """The batch handler counts a message that fails in exesdb_sink_errors and goes on."""
    bridge = Bridge(Settings(EXESDB_NODE="n1"), components=[])
    sink = PrometheusSink(bridge.bus)
    good = [envelope("node_lifecycle_event", event="joined", cluster_size=3)]
    # A message whose payload is not what its tag says: its translation fails.
    wrong = LogEntry(level="info", message="m", module="x", node="n1")
    bad = msgspec.structs.replace(good[0], payload=wrong)
    sink.handle_batch([bad, *good])
    errors = bridge.registry.get_sample_value(
        "exesdb_sink_errors_total", {"subscriber": "prometheus"}
    )
    assert errors == 1.0
    text = sink.render(False)
    assert 'exesdb_node_cluster_size{node="n1"} 3.0' in text
    # Both messages counted, the failed one too (as handle() counts before translating).
    assert (
        'exesdb_prometheus_messages_total{pubsub="ex_esdb_lifecycle",tag="node_lifecycle_event"}'
        " 2.0" in text
    )
