"""The shipped Prometheus configuration and rules pass promtool, and their unit tests pass."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping

import pytest

from tests.deploy.files import DEPLOY, RULE_FILES, SELECTOR, load_yaml, rules
from tests.doc_text import TARGET_LABELS, catalog_rows
from tests.support import require_binary

PROMETHEUS = DEPLOY / "prometheus"
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def alert_rules() -> list[dict[str, object]]:
    return [rule for rule in rules() if "alert" in rule]


def test_rule_files_are_shipped() -> None:
    """There are rule files and rule unit test files to check."""
    assert RULE_FILES
    assert TEST_FILES


def test_promtool_check_rules() -> None:
    """`promtool check rules` accepts every shipped rule file."""
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    """The rule unit tests (deploy/prometheus/tests) pass under `promtool test rules`."""
    result = promtool("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config() -> None:
    """`promtool check config` accepts prometheus.yml, including the rule files it loads."""
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_promtool_test_rules_can_fail(tmp_path) -> None:
    """A rule unit test expecting the wrong alert makes promtool fail (the check has teeth)."""
    text = next(t for t in (f.read_text() for f in TEST_FILES) if "severity: critical" in t)
    broken = text.replace("severity: critical", "severity: info", 1)
    path = tmp_path / "broken_test.yml"
    path.write_text(broken.replace("../rules/", f"{PROMETHEUS}/rules/"))
    result = promtool("test", "rules", str(path))
    assert result.returncode != 0


def test_amtool_check_config() -> None:
    """`amtool check-config` accepts the shipped Alertmanager configuration."""
    result = subprocess.run(
        [require_binary("amtool"), "check-config", str(DEPLOY / "alertmanager/alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("severity", "receiver"),
    [("critical", "critical"), ("error", "critical"), ("warning", "default"), ("info", "default")],
)
def test_the_shipped_alertmanager_routes_each_severity(severity: str, receiver: str) -> None:
    """Alertmanager's own router (`amtool config routes test`) sends the bridge's error alerts,
    which it holds until acknowledged and escalates, to the critical receiver beside the critical
    ones (they went to default), and warning and info ones to default: as docs/alerts.md says."""
    result = subprocess.run(
        [
            require_binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={DEPLOY / 'alertmanager/alertmanager.yml'}",
            "alertname=backup_failed",
            f"severity={severity}",
            "node=n1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


@pytest.mark.parametrize(
    "topic",
    [
        "ExesdbNodeDown",
        "ExesdbNodeUnhealthy",
        "ExesdbHighLatency",
        "ExesdbWebhookDeadLetters",
        "ExesdbBusRejections",
        "ExesdbBridgeScrapeFailing",
    ],
)
def test_the_required_alerts_exist(topic: str) -> None:
    """Node down, unhealthy health, high latency, dead letters, bus rejections, scrape failing."""
    assert topic in {rule["alert"] for rule in alert_rules()}


def test_every_alert_is_unit_tested_and_documented() -> None:
    """Each alert has a severity, a summary and a description, and a promtool test names it."""
    tested = set(re.findall(r"alertname: (\w+)", "".join(p.read_text() for p in TEST_FILES)))
    for rule in alert_rules():
        labels = rule.get("labels") or {}
        annotations = rule.get("annotations") or {}
        assert isinstance(labels, dict)
        assert isinstance(annotations, dict)
        assert labels.get("severity") in {"info", "warning", "critical"}, rule["alert"]
        assert annotations.get("summary"), rule["alert"]
        assert annotations.get("description"), rule["alert"]
        assert rule["alert"] in tested, f"{rule['alert']} has no promtool unit test"


def test_every_alert_is_in_the_deployment_page() -> None:
    """The table of shipped alerts in docs/deployment.md lists every alert rule."""
    page = (DEPLOY.parent / "docs" / "deployment.md").read_text()
    missing = [rule["alert"] for rule in alert_rules() if f"`{rule['alert']}`" not in page]
    assert not missing


def _minutes(duration: str) -> int:
    """A Prometheus duration of whole minutes or hours (``10m``, ``1h``) in minutes."""
    match = re.fullmatch(r"(\d+)([mh])", duration)
    assert match is not None, duration
    return int(match.group(1)) * (60 if match.group(2) == "h" else 1)


def test_the_deployment_page_gives_each_alert_s_severity_and_wait() -> None:
    """Each row of docs/deployment.md's alert table has its rule's severity, and a row that says
    "for N min" has the rule's wait: its ``for:``, plus the window of a ``max_over_time`` (the
    condition holds through the window before ``for:`` starts counting)."""
    page = (DEPLOY.parent / "docs" / "deployment.md").read_text()
    wrong = []
    for rule in alert_rules():
        row = re.search(rf"^\| `{rule['alert']}` \| (\w+) \| (.*) \|$", page, re.M)
        assert row is not None, rule["alert"]
        severity = rule["labels"]["severity"]  # type: ignore[index]
        if row.group(1) != severity:
            wrong.append(f"{rule['alert']}: the page says {row.group(1)}, the rule {severity}")
        said = re.search(r"for (\d+) min\b", row.group(2))
        if said is None:
            continue
        window = re.search(r"max_over_time\(.*\[(\d+[mh])\]\)", str(rule["expr"]))
        waits = _minutes(str(rule.get("for", "0m"))) + (_minutes(window.group(1)) if window else 0)
        if int(said.group(1)) != waits:
            wrong.append(f"{rule['alert']}: the page says {said.group(1)} min, the rule {waits}")
    assert wrong == []


# A label matcher of a series a rule or a rule test selects (``SELECTOR``'s second group).
MATCHED = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")
# The labels an aggregation keeps or drops, or a binary operation matches on: `by (node, status)`.
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def unknown_labels(
    rule: Mapping[str, object], rows: dict[str, tuple[str, set[str], str]]
) -> list[str]:
    """The ``exesdb_`` series ``rule``'s expression selects that no catalog row of ``rows``
    lists, the labels it matches on one that its row lacks, and the labels it groups or matches
    on, or its annotations show (``{{ $labels.node }}``), that none of its series carries."""
    expr = str(rule["expr"])
    wrong = []
    carried = set(TARGET_LABELS)
    for name, matchers in SELECTOR.findall(expr):
        if name not in rows:
            wrong.append(f"{name}: no such series in the catalog")
            continue
        carried |= rows[name][1]
        unknown = set(MATCHED.findall(matchers)) - rows[name][1] - TARGET_LABELS
        wrong += [f"{name}: no label {label} on its row" for label in sorted(unknown)]
    if not SELECTOR.search(expr):
        return wrong  # up{job=...}: Prometheus' own series
    used = {label for group in GROUPING.findall(expr) for label in re.findall(r"\w+", group)}
    annotations = rule.get("annotations") or {}
    assert isinstance(annotations, dict)
    for text in annotations.values():
        used |= set(re.findall(r"\$labels\.(\w+)", text))
    wrong += [f"no series carries {label}" for label in sorted(used - carried)]
    return wrong


def test_every_series_and_label_a_rule_names_is_in_the_catalog() -> None:
    """Each ``exesdb_`` series a rule selects is a row of docs/metrics.md's catalog, and each label
    it matches, groups or matches on, or shows in an annotation, is on its series' rows (or one
    every target gets): a series or label renamed in the bridge fails here, not as a rule that
    never fires."""
    rows = catalog_rows()
    wrong = [
        f"{rule.get('alert') or rule.get('record')}: {problem}"
        for rule in rules()
        for problem in unknown_labels(rule, rows)
    ]
    assert wrong == []


def test_every_series_a_rule_test_feeds_is_in_the_catalog() -> None:
    """Each ``exesdb_`` input series of the rule unit tests is a catalog row with its labels (or
    those every target gets), so that no test of an alert not firing passes on a series gone."""
    rows = catalog_rows()
    wrong = []
    for path in TEST_FILES:
        for test in load_yaml(path)["tests"]:
            for given in test["input_series"]:
                fed = {"expr": given["series"]}
                wrong += [f"{path.name}: {problem}" for problem in unknown_labels(fed, rows)]
    assert wrong == []


def test_the_catalog_check_finds_unknown_series_and_labels() -> None:
    """The checks above can fail: a series no row lists, and a label matched, grouped on or shown
    that its series lack, are each reported, and the right names are not."""
    rows = {"exesdb_bus_dropped_total": ("counter", {"subscriber"}, "Messages dropped.")}
    right = {
        "expr": 'sum by (instance, subscriber) (exesdb_bus_dropped_total{subscriber="a"})',
        "annotations": {"summary": "{{ $labels.subscriber }} drops on {{ $labels.instance }}"},
    }
    assert unknown_labels(right, rows) == []
    wrong = {
        "expr": 'sum by (sink) (rate(exesdb_bus_dropped_total{queue="a"}[5m])) + exesdb_bus_drops',
        "annotations": {"summary": "{{ $labels.pubsub }}"},
    }
    assert unknown_labels(wrong, rows) == [
        "exesdb_bus_dropped_total: no label queue on its row",
        "exesdb_bus_drops: no such series in the catalog",
        "no series carries pubsub",
        "no series carries sink",
    ]
