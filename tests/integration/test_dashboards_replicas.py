"""The dashboards' queries and the shipped rules over two scraped replicas give the answers of
one bridge: the series of messages counted once (Prometheus' own engine, through promtool)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from bridge.sinks.prometheus import MetricType
from tests.deploy.files import metrics_named, rules
from tests.integration.dashboards_support import (
    LEASE,
    OUTBOX,
    cluster_names,
    message_families,
    queries,
    restricted,
    substitute,
    variables,
)
from tests.support import require_binary

# The target labels of one bridge alone, and of two replicas as a ServiceMonitor scrapes two pods.
ALONE = {"job": "alone", "instance": "127.0.0.1:9570"}
REPLICAS = [
    {
        "job": "replicas",
        "instance": f"10.0.0.{n + 1}:9570",
        "pod": f"exesdb-bridge-{n}",
        "namespace": "exesdb",
        "service": "exesdb-bridge",
        "endpoint": "http",
        "container": "exesdb-bridge",
    }
    for n in range(2)
]
# Values of the labels the queries select on; every other label takes "a" and "b".
LABEL_VALUES = {
    "status": ("healthy", "degraded", "unhealthy", "unknown"),
    "state": ("total", "healthy", "degraded", "unhealthy", "down"),
    "result": ("success", "error"),
    "quantile": ("0", "0.5", "0.95", "0.99", "1"),
    "resource": ("cpu", "memory", "disk"),
}


def label_sets(labelnames: tuple[str, ...]) -> list[dict[str, str]]:
    sets: list[dict[str, str]] = [{}]
    for name in labelnames:
        values = LABEL_VALUES.get(name, ("a", "b"))
        sets = [{**labels, name: value} for labels in sets for value in values]
    return sets


def selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def replica_input() -> list[dict[str, str]]:
    """promtool input series: each series of messages exposed alike by the bridge alone and by
    both replicas (one step every 15 s, counters rising, no two series alike); the outbox gauge
    of the bridge alone on the first replica, which holds the lease, and 0 on the second."""
    found: list[dict[str, str]] = []
    for index, (name, labelnames, kind) in enumerate([*message_families(), OUTBOX]):
        for offset, labels in enumerate(label_sets(labelnames)):
            step = (index + offset) % 7 + 1
            values = f"0+{step}x80" if kind is MetricType.COUNTER else f"{step}x80"
            for target in (ALONE, *REPLICAS):
                # Without the lease a replica shows no open alert of its own outbox.
                no_lease = name == OUTBOX[0] and target is REPLICAS[1]
                shown = "0x80" if no_lease else values
                found.append({"series": selector(name, {**target, **labels}), "values": shown})
    for target, leader in zip(REPLICAS, ("1", "0"), strict=True):
        found.append({"series": selector(LEASE, target), "values": f"{leader}x80"})
    return found


def cluster_queries() -> list[tuple[str, str]]:
    """(where, expr) of each dashboard query and rule that reads only ``cluster_names()``, and
    not the lease alone, with Grafana's variables replaced; ``where`` is a panel's dashboard and
    title, or a rule's name. The lease is a deployment's, not the cluster's: one bridge on the
    in-process bus shows none, its replicas one, and what counts its holders groups by job."""
    found = [(f"{uid} / {title}", substitute(expr, variables())) for uid, title, expr in queries()]
    found += [(rule.get("record") or rule["alert"], rule["expr"]) for rule in rules()]
    names = cluster_names()
    return [
        (where, expr)
        for where, expr in found
        if (named := metrics_named(expr)) <= names and named - {LEASE}
    ]


def replica_test_file(directory: Path) -> Path:
    """A promtool test file: at 15 minutes each query gives the same series and values over the
    two replicas as over the bridge alone (none missing, none added, none different), and,
    unless it is an alert's condition, some."""
    names = cluster_names()
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    checks: list[dict[str, Any]] = []
    for _, expr in cluster_queries():
        alone = restricted(expr, names, f'job="{ALONE["job"]}"')
        replicas = restricted(expr, names, f'job="{REPLICAS[0]["job"]}"')
        for check in (
            f"({replicas}) unless ({alone})",
            f"({alone}) unless ({replicas})",
            # Sums may add the same values in another order: equal to a billionth.
            f"abs(({replicas}) - ({alone})) > 1e-9 * abs({alone})",
        ):
            checks.append({"expr": check, "eval_time": "15m", "exp_samples": []})
    for where, expr in cluster_queries():
        if where not in alerts:  # an alert's condition holds for some inputs only
            alone = restricted(expr, names, f'job="{ALONE["job"]}"')
            checks.append({"expr": f"absent({alone})", "eval_time": "15m", "exp_samples": []})
    tests = [{"interval": "15s", "input_series": replica_input(), "promql_expr_test": checks}]
    path = directory / "replicas_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "tests": tests}, sort_keys=False))
    return path


def test_most_queries_read_the_series_of_messages() -> None:
    """The two-replica check below covers the dashboards' cluster, node and operation panels and
    the rules about them, not a handful."""
    found = dict(cluster_queries())
    assert len(found) >= 40
    assert "exesdb:node_health:count" in found
    assert "ExesdbNodeUnhealthy" in found
    assert "exesdb-cluster-overview / Node health" in found


def test_two_scraped_replicas_give_the_answers_of_one_bridge(tmp_path: Path) -> None:
    """With the bus on Redis every replica exposes every node's series: each dashboard query and
    rule over them gives, with two replicas scraped, the series and values one bridge gives, so
    no node, operation or alert counts twice (Prometheus' own engine, through promtool)."""
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", str(replica_test_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    failed = re.findall(r'expr: "(.*?)", time', result.stdout)
    assert result.returncode == 0, "\n".join(failed) or result.stdout + result.stderr
