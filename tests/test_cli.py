"""The exesdb-bridge command (docs/cli.md), run as real processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge import __version__
from tests.support import (
    ADMIN_TOKEN,
    ROOT,
    TEST_SECRET,
    BridgeProcess,
    bridge_env,
    free_port,
    http_get,
    wait_until,
)

ALERT_FIELDS = [
    "-f", "severity=critical",
    "-f", "category=system",
    "-f", "title=Node down",
    "-f", "description=node3 stopped answering",
    "-f", "source=cli-test",
]  # fmt: skip


def cli(
    *args: str, timeout: float = 60, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bridge`` with the given arguments and environment; capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        env=bridge_env(**env),
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _start(processes: list[BridgeProcess], tmp_path: Path, **env: str) -> BridgeProcess:
    process = BridgeProcess(state_dir=tmp_path / "state")
    process.env.update(env)
    processes.append(process)
    return process.start(tmp_path)


def test_version_prints_the_version() -> None:
    """python -m bridge --version prints the version and exits 0."""
    completed = cli("--version")
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"exesdb-bridge {__version__}"


def test_the_console_script_is_installed() -> None:
    """The exesdb-bridge console script runs the same command."""
    script = Path(sys.executable).parent / "exesdb-bridge"
    completed = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0
    assert __version__ in completed.stdout


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["tail", "--count", "many"]])
def test_bad_usage_exits_2(args: list[str]) -> None:
    """A missing or unknown subcommand, or a bad option, exits 2."""
    assert cli(*args).returncode == 2


@pytest.mark.parametrize(
    ("command", "env", "variable"),
    [
        (["run"], {"EXESDB_INGEST": "true"}, "SECRET_KEY_BASE"),
        (["run"], {"EXESDB_HTTP_ADDR": "nowhere"}, "EXESDB_HTTP_ADDR"),
        (["check-config"], {"EXESDB_LOG_LEVEL": "loud"}, "EXESDB_LOG_LEVEL"),
        (["publish", "system_alert"], {"EXESDB_REPLAY_WINDOW_MS": "x"}, "EXESDB_REPLAY_WINDOW_MS"),
        (["tail"], {"EXESDB_BUS": "nats://x"}, "EXESDB_BUS"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(
    command: list[str], env: dict[str, str], variable: str
) -> None:
    """Every subcommand refuses a bad environment with exit 2 and a line naming the variable."""
    completed = cli(*command, **env)  # type: ignore[arg-type]
    assert completed.returncode == 2
    assert f"  {variable}: " in completed.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_exits_0_on_sigterm_and_sigint(
    bridge_processes: list[BridgeProcess], tmp_path: Path, signum: signal.Signals
) -> None:
    """exesdb-bridge run stops accepting, drains and exits 0 on SIGTERM or SIGINT."""
    process = _start(bridge_processes, tmp_path)
    assert process.process is not None
    process.process.send_signal(signum)
    assert process.process.wait(30) == 0
    log = process.log()
    assert "stopping" in log
    assert "Traceback" not in log
    with pytest.raises(urllib.error.URLError):  # no longer listening
        http_get(process.url + "/healthz", timeout=2)


def test_run_exits_1_when_the_address_is_taken(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A second bridge on a port already in use says so and exits 1."""
    first = _start(bridge_processes, tmp_path)
    completed = cli("run", EXESDB_HTTP_ADDR=f"127.0.0.1:{first.port}")
    assert completed.returncode == 1
    assert "cannot listen" in completed.stderr


def test_publish_signs_and_a_bridge_with_ingest_accepts_it(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """publish signs one message with SECRET_KEY_BASE; the bridge answers 202 and it exits 0."""
    process = _start(bridge_processes, tmp_path, EXESDB_INGEST="true")
    completed = cli(
        "publish", "system_alert", "--topic", "node_failure", *ALERT_FIELDS,
        "--url", process.url, SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"accepted": 1}
    _, metrics = http_get(process.url + "/metrics")
    assert re.search(
        rb'exesdb_bus_published_total\{pubsub="ex_esdb_alerts",tag="system_alert"\} 1\.0', metrics
    )


def test_publish_reads_the_payload_from_stdin(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """publish --stdin takes the payload as JSON."""
    process = _start(bridge_processes, tmp_path, EXESDB_INGEST="true")
    payload = json.dumps({"status": "degraded", "checks": {"disk": "slow"}})
    completed = cli(
        "publish", "node_health_updated", "--stdin", "--url", process.url,
        stdin=payload, SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr


def test_publish_with_a_wrong_key_is_refused_and_exits_1(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A bridge refuses a message signed with another key (401) and publish exits 1."""
    process = _start(bridge_processes, tmp_path, EXESDB_INGEST="true")
    completed = cli(
        "publish", "system_alert", *ALERT_FIELDS, "--url", process.url,
        SECRET_KEY_BASE="a-different-secret-key-base-of-enough-length",
    )  # fmt: skip
    assert completed.returncode == 1
    assert json.loads(completed.stdout)["error"] == "invalid_signature"


def test_publish_to_a_bridge_without_ingest_exits_1(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """With ingest off the bridge answers 404 and publish exits 1."""
    process = _start(bridge_processes, tmp_path)
    completed = cli(
        "publish", "system_alert", *ALERT_FIELDS, "--url", process.url,
        SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 1


def test_publish_to_nowhere_exits_1() -> None:
    """When no bridge listens, publish says so and exits 1."""
    completed = cli(
        "publish", "system_alert", *ALERT_FIELDS, "--url", f"http://127.0.0.1:{free_port()}",
        SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "cannot reach" in completed.stdout + completed.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "env", "message"),
    [
        (["no_such_tag"], None, {"SECRET_KEY_BASE": TEST_SECRET}, "unknown tag"),
        (
            ["system_alert", "-f", "severity=huge"],
            None,
            {"SECRET_KEY_BASE": TEST_SECRET},
            "severity",
        ),
        (
            ["system_alert", "-f", "no-equals-sign"],
            None,
            {"SECRET_KEY_BASE": TEST_SECRET},
            "name=value",
        ),
        (["system_alert", "--stdin"], "not json", {"SECRET_KEY_BASE": TEST_SECRET}, ""),
        (["system_alert", "--stdin"], "[1, 2]", {"SECRET_KEY_BASE": TEST_SECRET}, "object"),
        (["system_alert", *ALERT_FIELDS], None, {}, "SECRET_KEY_BASE"),
    ],
)
def test_publish_refuses_bad_input_with_exit_2(
    args: list[str], stdin: str | None, env: dict[str, str], message: str
) -> None:
    """An unknown tag, a bad field, bad stdin or no key to sign with exit 2 and say why."""
    completed = cli("publish", *args, "--url", "http://127.0.0.1:9", stdin=stdin, **env)  # type: ignore[arg-type]
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_tail_prints_one_verified_message_per_line(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """tail --count 1 prints the next verified message as one line and exits 0."""
    process = _start(bridge_processes, tmp_path, EXESDB_INGEST="true")
    tail = subprocess.Popen(
        [sys.executable, "-m", "bridge", "tail", "--count", "1", "--url", process.url,
         "--instance", "ex_esdb_alerts"],
        env=bridge_env(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        # Once tail is connected its subscription shows up in the queue-depth gauge.
        wait_until(
            lambda: (
                b'exesdb_bus_queue_depth{subscriber="stream"}'
                in http_get(process.url + "/metrics")[1]
            ),
            30,
            "tail to connect",
        )
        published = cli(
            "publish", "system_alert", "--topic", "node_failure", *ALERT_FIELDS,
            "--url", process.url, SECRET_KEY_BASE=TEST_SECRET,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    ts, instance, topic, tag, node, payload = lines[0].split(" ", 5)
    assert (instance, topic, tag) == ("ex_esdb_alerts", "node_failure", "system_alert")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)
    assert node
    assert json.loads(payload)["title"] == "Node down"


def test_tail_without_the_admin_token_exits_2() -> None:
    """tail needs EXESDB_ADMIN_TOKEN."""
    completed = cli("tail", "--url", "http://127.0.0.1:9")
    assert completed.returncode == 2
    assert "EXESDB_ADMIN_TOKEN" in completed.stderr


def test_tail_with_a_wrong_token_exits_1(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A bridge refusing tail's token makes it exit 1."""
    process = _start(bridge_processes, tmp_path)
    completed = cli("tail", "--url", process.url, EXESDB_ADMIN_TOKEN="wrong-token")
    assert completed.returncode == 1
    assert "401" in completed.stderr


def test_outbox_list_redacts_webhook_urls(tmp_path: Path) -> None:
    """`outbox list` shows webhook URLs by origin: credentials, path and query may be tokens."""
    from bridge.sinks.alerts import AlertEvent, Outbox

    secret_url = "https://user:hunter2@hooks.example/services/x?token=s3cr3t"
    outbox = Outbox.in_dir(tmp_path, urls=[secret_url])
    alert = AlertEvent(
        alert_id="a1",
        alertname="node_failure",
        status="firing",
        severity="critical",
        category="system",
        node="n1",
        title="n1 is down",
        description="n1 stopped answering",
        requires_ack=False,
        at=datetime.now(UTC),
    )
    outbox.observe(alert, now=1.0)
    # One delivery of the queued alert, to the secret URL.
    assert outbox.group(secret_url, 1.0, 0.0, lambda alerts: [(b"{}", ["a1"])]) == 1
    outbox.close()
    for extra in ([], ["--json"]):
        result = cli("outbox", "list", *extra, EXESDB_STATE_DIR=str(tmp_path))
        assert result.returncode == 0, result.stderr
        shown = result.stdout.replace("\\u2026", "…")  # JSON escapes the ellipsis
        assert "https://user:<redacted>@hooks.example/…" in shown
        assert "services" not in result.stdout  # a path may hold a token (Slack-style)
        assert "hunter2" not in result.stdout
        assert "s3cr3t" not in result.stdout
