# ruff: noqa: E501  (PromQL expressions read best on one line)
"""The Throughput and latency dashboard: operations per second, errors, latency percentiles."""

from __future__ import annotations

from ..panels import Dashboard, P, Q, Row, query_variable, series, table, thresholds
from ..queries import NODE, RATE

_OP = f'{NODE}, operation=~"$operation"'

PANELS: list[P | Row] = [
    Row("Throughput"),
    series(
        "Operations per second",
        [
            Q(
                f"sum by (operation) (max by (node, operation, result) (rate(exesdb_operations_total{{{_OP}}}[{RATE}])))",
                "{{operation}}",
            )
        ],
        "ops",
    ),
    series(
        "Reported rate by node",
        [
            Q(
                f"sum by (node) (max by (node, operation) (exesdb_operation_rate_per_second{{{_OP}}}))",
                "{{node}}",
            )
        ],
        "ops",
        description="The rate_per_sec of the latest ThroughputMetric of each operation, summed per node.",
    ),
    series(
        "Failed operations per second",
        [
            Q(
                f'sum by (operation) (max by (node, operation, result) (rate(exesdb_operations_total{{{_OP}, result="error"}}[{RATE}])))',
                "{{operation}}",
            )
        ],
        "ops",
    ),
    series(
        "Error ratio",
        [
            Q(
                f'sum by (operation) (max by (node, operation, result) (rate(exesdb_operations_total{{{_OP}, result="error"}}[{RATE}])))'
                f" / sum by (operation) (max by (node, operation, result) (rate(exesdb_operations_total{{{_OP}}}[{RATE}])))",
                "{{operation}}",
            )
        ],
        "percentunit",
    ),
    Row("Latency"),
    series(
        "p50 latency",
        [
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.5"}})',
                "{{operation}}",
            )
        ],
        "s",
    ),
    series(
        "p95 latency",
        [
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.95"}})',
                "{{operation}}",
            )
        ],
        "s",
    ),
    series(
        "p99 latency",
        [
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.99"}})',
                "{{operation}}",
            )
        ],
        "s",
        defaults={"thresholds": thresholds((None, "green"), (0.5, "red"))},
    ),
    series(
        "Average and maximum latency",
        [
            Q(
                f"max by (operation) (exesdb_operation_latency_avg_seconds{{{_OP}}})",
                "{{operation}} avg",
            ),
            Q(
                f'max by (operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="1"}})',
                "{{operation}} max",
            ),
        ],
        "s",
    ),
    series(
        "Latency samples",
        [
            Q(
                f"sum by (operation) (max by (node, operation) (exesdb_operation_latency_samples{{{_OP}}}))",
                "{{operation}}",
            )
        ],
        "short",
        description="How many operations the latest latency figures were computed from.",
    ),
    table(
        "Latency by node and operation",
        [
            Q(
                f'max by (node, operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.5"}})',
                "p50",
            ),
            Q(
                f'max by (node, operation) (exesdb_operation_latency_seconds{{{_OP}, quantile="0.99"}})',
                "p99",
            ),
            Q(f"max by (node, operation) (exesdb_operation_latency_avg_seconds{{{_OP}}})", "avg"),
        ],
        "s",
    ),
    series(
        "Metric alerts",
        [
            Q(
                f"sum by (metric, severity) (max by (node, metric, severity) (increase(exesdb_metric_alerts_total{{{NODE}}}[5m])))",
                "{{metric}} {{severity}}",
            )
        ],
        "short",
        width=24,
        description="MetricAlert messages: a metric crossed its threshold.",
    ),
]

THROUGHPUT_LATENCY = Dashboard(
    "exesdb-throughput-latency",
    "ExESDB / Throughput & latency",
    "Operations per second, errors and latency percentiles per operation.",
    PANELS,
    [
        query_variable(
            "operation",
            "Operation",
            'label_values(exesdb_operations_total{node=~"$node"}, operation)',
        )
    ],
)
