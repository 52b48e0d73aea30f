"""Every query of the shipped dashboards works on a real Prometheus.

The live tests start ``exesdb-bridge run --demo`` and a real Prometheus scraping it every second,
then run every query of every panel (template variables replaced) through ``/api/v1/query``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.settings import Settings
from bridge.sinks.prometheus.store import SeriesStore
from bridge.sinks.prometheus.translate import Translator
from bridge.webconfig.live import LiveWebConfig
from bridge.webconfig.loading import judge
from tests.deploy.files import RECORDED, RULE_FILES, metrics_named, rules
from tests.doc_text import page
from tests.integration.dashboards_support import DASHBOARDS, queries, substitute, variables
from tests.integration.servers.alertmanager import AlertmanagerServer
from tests.integration.servers.otlp import GrpcOtlpReceiver
from tests.integration.servers.prometheus import PrometheusServer
from tests.integration.servers.redis import RedisServer
from tests.integration.servers.webhook import WebhookReceiver
from tests.support import (
    TEST_SECRET,
    BridgeProcess,
    http_get,
    pem_files,
    require_binary,
    wait_until,
)

# One pytest-xdist worker runs the module: the demo stack (a module fixture) starts once.
pytestmark = pytest.mark.xdist_group("demo-stack")


# The series no demo run can honestly feed, each with why: a query naming one may return nothing.
# Every other query must return data, so a panel the demo stops feeding fails the check.
EMPTY_IN_THE_DEMO = {
    # Refused only at a cap (EXESDB_MAX_SERIES, EXESDB_MAX_SERIES_BYTES): the demo's series stay
    # far below both, and flooding made-up label sets to reach it would be no demo of use.
    "exesdb_prometheus_series_refused_total",
}


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BridgeProcess, Any]]:
    """A --demo bridge, its webhook receiver and Alertmanager, and a Prometheus scraping the
    bridge every second with the shipped rules. The bridge runs on a Redis bus over TLS and with
    a web config file (serving plain HTTP, as an empty one does), so that the Redis bus and HTTP
    edge panels have data too."""
    workdir = tmp_path_factory.mktemp("demo-stack")
    redis = RedisServer(tls=True).start(workdir / "redis")
    (workdir / "web.yml").write_text("{}\n")
    receiver = WebhookReceiver().start()
    collector = GrpcOtlpReceiver().start()
    alertmanager = AlertmanagerServer()
    bridge = BridgeProcess(
        args=["--demo"],
        state_dir=workdir / "state",
        EXESDB_BUS=redis.url,
        EXESDB_WEB_CONFIG_FILE=str(workdir / "web.yml"),
        EXESDB_HEALTH_BROADCAST_INTERVAL="500",
        EXESDB_METRICS_BROADCAST_INTERVAL="500",
        EXESDB_NODE="bridge-under-test",
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_SECRET="test-webhook-secret",
        EXESDB_WEBHOOK_GROUP_WAIT_MS="100",
        EXESDB_ALERTMANAGER_URL=alertmanager.url,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
    )
    (workdir / "prometheus").mkdir()
    prometheus = PrometheusServer(
        require_binary("prometheus"),
        workdir / "prometheus",
        [f"127.0.0.1:{bridge.port}"],
        rule_files=RULE_FILES,
    )
    try:
        alertmanager.start(workdir / "alertmanager")
        bridge.start(workdir)
        prometheus.start()
        wait_until(prometheus.targets_up, 30, "Prometheus to scrape the bridge")
        # rate() over 1m needs two scrapes of the demo's counters.
        prometheus.wait_for("rate(exesdb_operations_total[1m]) > 0", timeout=60)
        yield bridge, prometheus
    finally:
        prometheus.stop()
        bridge.stop()
        alertmanager.stop()
        receiver.stop()
        collector.stop()
        redis.stop()


def run_all(prometheus: PrometheusServer) -> tuple[dict[str, str], list[str], list[str]]:
    """Every dashboard query: errors by expr, those with data, those without."""
    names = variables()
    errors: dict[str, str] = {}
    with_data: list[str] = []
    empty: list[str] = []
    for _, _, expr in queries():
        try:
            result = prometheus.query(substitute(expr, names))
        except AssertionError as exc:  # the fixture's way of reporting an API error
            errors[expr] = str(exc)
            continue
        (with_data if result else empty).append(expr)
    return errors, with_data, empty


# The sample names a family of each type is exposed as (prometheus_client's text format, with
# the _created series it adds): a counter is queried as name_total, a histogram as name_bucket.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def declared_families(bridge: BridgeProcess, tmp_path: Path) -> dict[str, str]:
    """Families the bridge declares, each with its type: ``# TYPE`` lines on /metrics, the
    Prometheus sink's catalog (the sink renders a family only once it has series), the web
    config's (declared only with EXESDB_WEB_CONFIG_FILE, which the demo runs without) and the
    Redis transport's (only with the bus on Redis; its TLS files' only when EXESDB_BUS names
    some)."""
    status, body = http_get(bridge.url + "/metrics")
    assert status == 200
    # A counter's TYPE line names it with _total, as its sample; the others by the family name.
    declared = {
        name.removesuffix("_total") if kind == "counter" else name: kind
        for name, kind in re.findall(r"^# TYPE (\w+) (\w+)$", body.decode(), re.M)
    }
    catalog = SeriesStore()
    Translator(catalog)
    declared |= {f.name: f.kind.value for f in catalog.families}
    web_config = tmp_path / "web.yml"
    web_config.write_text("{}\n")
    registry = CollectorRegistry()
    LiveWebConfig(judge(web_config), registry=registry)
    declared |= {metric.name: metric.type for metric in registry.collect()}
    on_redis = Bridge(  # built, never started
        Settings(
            EXESDB_NODE="n1",
            EXESDB_BUS=f"rediss://127.0.0.1:9/0?ssl_ca_certs={pem_files(tmp_path)['ca.pem']}",
            SECRET_KEY_BASE=TEST_SECRET,
            EXESDB_STATE_DIR=str(tmp_path / "state"),
        )
    )
    declared |= {
        metric.name: metric.type
        for metric in on_redis.registry.collect()
        if metric.name.startswith("exesdb_redis_")
    }
    return declared


def exposed_samples(declared: dict[str, str]) -> set[str]:
    """The sample names the families ``declared`` (name: type) are exposed as."""
    return {name + suffix for name, kind in declared.items() for suffix in SAMPLE_SUFFIXES[kind]}


def recorded() -> set[str]:
    """The series the shipped recording rules record (``exesdb:…``)."""
    return {rule["record"] for rule in rules() if "record" in rule}


def unknown_series(text: str, samples: set[str], records: set[str]) -> list[str]:
    """The ``exesdb_`` samples ``text`` names that are not in ``samples`` and the ``exesdb:``
    series it names that no rule of ``records`` records: what would leave a panel empty."""
    named = metrics_named(text) | set(RECORDED.findall(text))
    return sorted(name for name in named if name not in samples | records)


def test_the_unknown_series_finder_finds_a_wrong_suffix_and_an_unrecorded_rule() -> None:
    """The check below has teeth: a counter named without _total, a gauge with it, a misspelt
    metric and a recorded series no rule records are each reported; the right names are not."""
    samples = exposed_samples(
        {
            "exesdb_operations": "counter",
            "exesdb_alerts_active": "gauge",
            "exesdb_webhook_delivery_seconds": "histogram",
        }
    )
    records = {"exesdb:node_health:count"}
    right = (
        "rate(exesdb_operations_total[1m]) + exesdb_alerts_active"
        " + rate(exesdb_webhook_delivery_seconds_bucket[1m]) + exesdb:node_health:count"
    )
    assert unknown_series(right, samples, records) == []
    wrong = (
        "rate(exesdb_operations[1m]) + exesdb_alerts_active_total + exesdb_alert_active"
        " + exesdb:node_health:counts"
    )
    assert unknown_series(wrong, samples, records) == [
        "exesdb:node_health:counts",
        "exesdb_alert_active",
        "exesdb_alerts_active_total",
        "exesdb_operations",
    ]


def test_the_deployment_page_counts_every_dashboard_query() -> None:
    """docs/deployment.md gives the number of panel queries the check below evaluates, and of a
    run's that returned data, out of all of them: a panel added leaves no stale count."""
    text = " ".join(page("deployment").split())
    said = re.search(
        r"all (\d+) evaluate without error.*?\((\d+) of (\d+) in every passing run", text
    )
    assert said is not None
    assert (int(said[1]), int(said[3])) == (len(queries()), len(queries()))
    assert int(said[2]) >= len(queries()) - len(may_be_empty())


def may_be_empty() -> list[str]:
    """The dashboard queries that name a series of ``EMPTY_IN_THE_DEMO``."""
    return [expr for _, _, expr in queries() if metrics_named(expr) & EMPTY_IN_THE_DEMO]


@pytest.mark.integration
def test_every_dashboard_query_evaluates_and_all_but_the_named_few_have_data(demo_stack) -> None:
    """Every panel query evaluates without error, and every one but those naming a series of
    EMPTY_IN_THE_DEMO returns demo data."""
    _, prometheus = demo_stack
    excused = may_be_empty()
    assert 0 < len(excused) <= 2, excused  # a named few, each still on a panel

    def evaluated() -> tuple[dict[str, str], list[str], list[str]]:
        errors, with_data, empty = found = run_all(prometheus)
        unfed = [expr for expr in empty if expr not in excused]
        # Raised, not returned: the last shortfall is what a timeout reports.
        assert errors or not unfed, f"{len(with_data)} with data; empty: {unfed}"
        return found

    # The demo's rarer messages may need a few more seconds.
    errors, with_data, empty = wait_until(evaluated, 45, "the dashboard queries", every=1.0)
    assert not errors, errors
    assert len(with_data) + len(empty) == len(queries())
    print(
        f"{len(queries())} queries evaluated without error; {len(with_data)} "
        f"({len(with_data) / len(queries()):.0%}) returned data; empty: {empty}"
    )


@pytest.mark.integration
def test_a_wrong_query_is_reported(demo_stack) -> None:
    """The check has teeth: a bad expression errors, an unknown metric returns nothing."""
    _, prometheus = demo_stack
    with pytest.raises(AssertionError, match="bad_data"):
        prometheus.query("sum by (node) (rate(exesdb_operations_total[1m])")
    assert prometheus.query('exesdb_no_such_metric{node=~".*"}') == []


@pytest.mark.integration
def test_demo_shows_three_nodes(demo_stack) -> None:
    """The demo cluster appears as three nodes with health, resources and latency."""
    _, prometheus = demo_stack
    for expr in (
        "count(max by (node) (exesdb_node_health_status))",
        "count(exesdb_node_cpu_usage_percent)",
        'count(count by (node) (exesdb_operation_latency_seconds{quantile="0.99"}))',
    ):
        result = prometheus.query(expr)
        assert result, expr
        assert float(result[0]["value"][1]) >= 3, expr


@pytest.mark.integration
def test_the_rules_load_and_evaluate_on_live_data(demo_stack) -> None:
    """Prometheus loads the shipped rules without error and every rule evaluates."""
    _, prometheus = demo_stack
    groups = prometheus.api("rules")["groups"]
    assert {g["file"] for g in groups} == {str(path.resolve()) for path in RULE_FILES}
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] != "err", (rule["name"], rule.get("lastError"))
            prometheus.query(rule["query"])


@pytest.mark.integration
def test_dashboards_name_only_series_the_bridge_exposes(demo_stack, tmp_path: Path) -> None:
    """Every exesdb_ sample a dashboard or rule names is one the bridge exposes, suffix and all
    (a counter's _total, a histogram's _bucket), and every exesdb: series one names is recorded
    by a shipped rule: a misspelt name fails here rather than showing an empty panel."""
    bridge, _ = demo_stack
    samples = exposed_samples(declared_families(bridge, tmp_path))
    records = recorded()
    unknown = {
        path.name: found
        for path in (*DASHBOARDS, *RULE_FILES)
        if (found := unknown_series(path.read_text(), samples, records))
    }
    assert unknown == {}


@pytest.mark.integration
def test_demo_exposition_passes_promtool_check_metrics(demo_stack) -> None:
    """With the demo's label sets on it, /metrics still draws no complaint from promtool."""
    bridge, _ = demo_stack
    status, body = http_get(bridge.url + "/metrics")
    assert status == 200
    assert b'node="exesdb-1@demo"' in body
    result = subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=body,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == b""
