"""Every series a shipped rule reads, and every series of the metrics catalog, is on a
dashboard panel (or left off by name, with why): an operator paged finds a panel of what fired."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.files import RECORDED, metrics_named, rules
from tests.doc_text import catalog_rows
from tests.integration.dashboards_support import queries

# A PromQL string (a label value, a regex): double- or single-quoted with escapes, or in backticks.
PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
# A series of the catalog by its name: a label name, a function or a keyword is none of these.
SERIES_NAME = re.compile(r"\b((?:exesdb|process|python)_\w+)")


def shown_series(exprs: list[str], records: list[dict[str, Any]]) -> set[str]:
    """The series the dashboard queries ``exprs`` show: the metric names they select
    (``exesdb_``, ``process_`` or ``python_``; a name inside a quoted label value selects
    nothing), and the ``exesdb_`` series the recording rules of ``records`` read to record an
    ``exesdb:`` series they name."""
    recorded_from = {rule["record"]: metrics_named(rule["expr"]) for rule in records}
    shown: set[str] = set()
    for expr in exprs:
        selecting = PROMQL_STRING.sub('""', expr)
        shown |= set(SERIES_NAME.findall(selecting))
        for name in RECORDED.findall(selecting):
            shown |= recorded_from.get(name, set())
    return shown


def unshown_series(shipped: list[dict[str, Any]], exprs: list[str]) -> list[str]:
    """``rule: series`` for each ``exesdb_`` series a rule of ``shipped`` reads that no dashboard
    query of ``exprs`` shows."""
    shown = shown_series(exprs, [rule for rule in shipped if "record" in rule])
    return [
        f"{rule.get('alert') or rule['record']}: {name}"
        for rule in shipped
        for name in sorted(metrics_named(rule["expr"]) - shown)
    ]


def test_every_series_a_rule_reads_is_on_a_dashboard() -> None:
    """Each ``exesdb_`` series a shipped rule reads is shown by some dashboard query, itself or
    through a recorded series: an operator paged by an alert finds a panel of what fired."""
    missing = unshown_series(rules(), [expr for _, _, expr in queries()])
    assert missing == [], "on no dashboard:\n" + "\n".join(missing)


# The catalog's series on no dashboard, each with why: every other one is on some panel, so a new
# series is placed on a panel or left off here on purpose.
NOT_ON_A_DASHBOARD = {
    "exesdb_node_cluster_size": "each node's view of what Nodes shows, the monitor's count",
    "exesdb_log_period_entries": "a LogSummary's restatement of Log entries by level",
    "exesdb_log_period_error_rate_per_minute": "a LogSummary's restatement of error entries",
    "exesdb_log_filter_updates_total": "a change to what is logged, no sign of health or load",
    "exesdb_log_rotations_total": "log housekeeping; the node's disk use is on Disk",
    "exesdb_log_rotated_bytes_total": "log housekeeping; the node's disk use is on Disk",
    "exesdb_system_state_snapshots_total": "a count of snapshots; their content is on System state",
    "process_virtual_memory_bytes": "address space reserved, not used; resident memory is shown",
    "process_start_time_seconds": "the instant exesdb_start_time_seconds gives, shown as Up for",
    "python_info": "the Python version is exesdb_build_info's python_version label",
}


def series_off_dashboards(
    catalog: dict[str, tuple[str, set[str], str]], shown: set[str], left_off: set[str]
) -> tuple[list[str], list[str]]:
    """The catalog's series on no panel and not in ``left_off``, and those of ``left_off`` that
    are on a panel after all or in no catalog row. A histogram's ``_count`` and ``_sum`` are on
    a panel with its ``_bucket``."""

    def on_a_panel(name: str) -> bool:
        if catalog[name][0] == "histogram":
            family = re.sub(r"_(bucket|count|sum)$", "", name)
            return any(family + suffix in shown for suffix in ("_bucket", "_count", "_sum"))
        return name in shown

    missing = sorted(name for name in catalog if not on_a_panel(name) and name not in left_off)
    wrongly_left_off = sorted(name for name in left_off if name not in catalog or on_a_panel(name))
    return missing, wrongly_left_off


def test_every_catalog_series_is_on_a_dashboard_or_left_off_by_name() -> None:
    """Each series of the metrics catalog is shown by some dashboard query, itself or through a
    recorded series, or is in NOT_ON_A_DASHBOARD with its reason, and nothing in that set is on a
    panel or out of the catalog: a new series is placed on a panel or left off on purpose."""
    catalog = catalog_rows()
    records = [rule for rule in rules() if "record" in rule]
    shown = shown_series([expr for _, _, expr in queries()], records)
    missing, wrongly_left_off = series_off_dashboards(catalog, shown, set(NOT_ON_A_DASHBOARD))
    assert len(catalog) >= 120
    assert missing == [], "on no dashboard, nor in NOT_ON_A_DASHBOARD"
    assert wrongly_left_off == [], "in NOT_ON_A_DASHBOARD, yet on a panel or in no catalog row"


def test_the_off_dashboard_finder_reports_a_new_series_and_a_stale_exception() -> None:
    """The check above has teeth: a catalog series no query shows and the set leaves out is
    reported, as is a set entry a query shows or the catalog lacks; a histogram counts as shown
    by its _bucket, a series by a process_ name as any other."""
    catalog = {
        "exesdb_new_total": ("counter", set(), "New."),
        "exesdb_old": ("gauge", set(), "Old."),
        "process_open_fds": ("gauge", set(), "Fds."),
        "exesdb_took_seconds_bucket": ("histogram", {"le"}, "Took."),
        "exesdb_took_seconds_count": ("histogram", {"le"}, "Took."),
    }
    exprs = ["max(process_open_fds)", "histogram_quantile(0.9, exesdb_took_seconds_bucket)"]
    shown = shown_series(exprs, [])
    assert series_off_dashboards(catalog, shown, {"exesdb_old"}) == (["exesdb_new_total"], [])
    assert series_off_dashboards(catalog, shown, {"exesdb_old", "exesdb_new_total"}) == ([], [])
    stale = {"exesdb_old", "exesdb_new_total", "process_open_fds", "exesdb_gone"}
    assert series_off_dashboards(catalog, shown, stale) == (
        [],
        ["exesdb_gone", "process_open_fds"],
    )


@pytest.mark.parametrize(
    "expr",
    [
        'max(up{job="exesdb_old"})',
        "max(up{job='it\\'s exesdb_old'})",
        'max(up{job=~"a\\"|exesdb_old"})',
        "max(up{job=~`exesdb_old|exesdb_new_total`})",
        'label_replace(up, "exesdb_old", "$1", "exesdb_new_total", "(.*)")',
    ],
    ids=["double-quoted", "single-quoted-escape", "double-quoted-escape", "backticks", "arguments"],
)
def test_a_series_named_only_in_a_quoted_string_is_not_shown(expr: str) -> None:
    """A series named only inside a quoted label value or string argument is on no panel, so the
    catalog check still reports it and does not call its NOT_ON_A_DASHBOARD entry stale."""
    catalog: dict[str, tuple[str, set[str], str]] = {
        "exesdb_new_total": ("counter", set(), "New."),
        "exesdb_old": ("gauge", set(), "Old."),
    }
    shown = shown_series([expr], [])
    assert shown == set()
    assert series_off_dashboards(catalog, shown, {"exesdb_old"}) == (["exesdb_new_total"], [])


def test_the_unshown_series_finder_finds_a_series_on_no_panel() -> None:
    """The check above has teeth: a series an alert reads that no query selects (naming it in a
    quoted label value is not selecting it) is reported, with its rule; one a query selects, or
    reads through a recorded series, is not."""
    shipped = [
        {
            "record": "exesdb:bus_rejected:rate5m",
            "expr": "sum(rate(exesdb_bus_rejected_total[5m]))",
        },
        {"alert": "Rejecting", "expr": "sum(rate(exesdb_bus_rejected_total[4m])) > 0"},
        {"alert": "Unusable", "expr": "max(exesdb_redis_connected) == 0 or exesdb_build_info"},
    ]
    exprs = ["exesdb:bus_rejected:rate5m", 'exesdb_build_info{instance=~".*"}']
    assert unshown_series(shipped, exprs) == ["Unusable: exesdb_redis_connected"]
    quoted = 'exesdb_build_info{job="exesdb_redis_connected"}'  # a label value selects nothing
    assert unshown_series(shipped, [*exprs, quoted]) == ["Unusable: exesdb_redis_connected"]
    assert unshown_series(shipped, [*exprs, "max(exesdb_redis_connected)"]) == []
