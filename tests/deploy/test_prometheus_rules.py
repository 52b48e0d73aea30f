"""The shipped Prometheus configuration and rules pass promtool, and their unit tests pass."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.files import DEPLOY, load_yaml
from tests.support import require_binary

PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
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
    return [
        rule
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


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
    broken = (TEST_FILES[0]).read_text().replace("severity: critical", "severity: info", 1)
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
