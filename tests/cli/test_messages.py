"""The message commands (``bridge.cli.messages``): ``publish`` signs and sends one, ``tail`` prints
them as they arrive."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.helpers import (
    ALERT_FIELDS,
    Bridges,
    cli,
    cli_process,
    command_at_a_terminal,
    start_bridge_process,
    terminal_output,
)
from tests.support import (
    ADMIN_TOKEN,
    ROOT,
    TEST_SECRET,
    BridgeProcess,
    ThreadedBridge,
    bridge_env,
    free_port,
    http_get,
    wait_until,
)


def test_publish_signs_and_a_bridge_with_ingest_accepts_it(
    bridges: Bridges, tmp_path: Path
) -> None:
    """publish signs one message with SECRET_KEY_BASE; the bridge answers 202 and it exits 0."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    completed = cli(
        "publish", "system_alert", "--topic", "node_failure", *ALERT_FIELDS,
        "--url", bridge.url, SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"accepted": 1}
    _, metrics = http_get(bridge.url + "/metrics")
    assert re.search(
        rb'exesdb_bus_published_total\{pubsub="ex_esdb_alerts",tag="system_alert"\} 1\.0', metrics
    )


def test_publish_gives_a_string_field_the_text_as_written(bridges: Bridges, tmp_path: Path) -> None:
    """-f values are JSON, or text: a string field given what reads as a number keeps the text
    exactly as typed (unit=1.50 stays "1.50"), while a number field still takes a number."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    completed = cli(
        "publish", "performance_metric", "-f", "metric_name=007", "-f", "value=12",
        "-f", "unit=1.50", "-f", "component=42", "--url", bridge.url,
        SECRET_KEY_BASE=TEST_SECRET, EXESDB_NODE="cli-node",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    _, metrics = http_get(bridge.url + "/metrics")
    assert (
        b'exesdb_performance_value{node="cli-node",component="42",metric="007",unit="1.50"} 12.0'
        in metrics
    )


def test_publish_reads_the_payload_from_stdin(bridges: Bridges, tmp_path: Path) -> None:
    """publish --stdin takes the payload as JSON."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    payload = json.dumps({"status": "degraded", "checks": {"disk": "slow"}})
    completed = cli_process(
        "publish", "node_health_updated", "--stdin", "--url", bridge.url,
        stdin=payload, SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr


def test_publish_at_a_terminal_says_it_reads_the_payload_from_it() -> None:
    """publish --stdin at a terminal says on stderr that it reads the payload there and how to
    end it, rather than wait in silence, and then takes what is typed (here sent to a port
    where nothing listens: exit 1)."""
    with command_at_a_terminal(
        "publish", "node_health_updated", "--stdin",
        SECRET_KEY_BASE=TEST_SECRET, EXESDB_URL="http://127.0.0.1:9",
    ) as (process, master):  # fmt: skip
        asked = terminal_output(master, b"start of a line\r\n")
        os.write(master, b'{"status": "healthy"}\n\x04')  # the line, then Ctrl-D
        rest = terminal_output(master, b"\0")  # to the end
        assert process.wait(30) == 1
    assert asked == (
        b"exesdb-bridge: reading the payload from the terminal: type one JSON object, then"
        b" Ctrl-D at the start of a line\r\n"
    ), asked
    assert b"cannot reach the bridge at http://127.0.0.1:9" in rest, rest


def test_publish_with_a_wrong_key_is_refused_and_exits_1(bridges: Bridges, tmp_path: Path) -> None:
    """A bridge refuses a message signed with another key (401): publish exits 1 saying why on
    stderr in words, the code and the field at fault after them, and prints nothing on stdout."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    completed = cli(
        "publish", "system_alert", *ALERT_FIELDS, "--url", bridge.url,
        SECRET_KEY_BASE="a-different-secret-key-base-of-enough-length",
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.startswith(
        f"exesdb-bridge: {bridge.url}/v1/messages answered 401: the X-ExESDB-Signature header"
        " does not match the body: signed with a key other than the bridge's SECRET_KEY_BASE"
    )
    assert completed.stderr.endswith(" (invalid_signature, field X-ExESDB-Signature)\n")
    assert "{" not in completed.stderr


def test_publish_to_a_bridge_without_ingest_exits_1(bridges: Bridges, tmp_path: Path) -> None:
    """With ingest off the bridge answers 404 and publish exits 1, saying on stderr how to turn
    ingest on: on the bridge, not in the shell that publishes."""
    bridge = bridges(tmp_path)
    completed = cli(
        "publish", "system_alert", *ALERT_FIELDS, "--url", bridge.url,
        SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 1
    assert (completed.stdout, completed.stderr) == (
        "",
        f"exesdb-bridge: {bridge.url}/v1/messages answered 404: ingest is off: set"
        " EXESDB_INGEST=true to enable it (ingest_disabled); EXESDB_INGEST is the bridge's"
        " setting: start the bridge with it\n",
    )


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
        (
            ["performance_metrc"],
            None,
            {"SECRET_KEY_BASE": TEST_SECRET},
            "mean 'performance_metric'?",
        ),
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
        (["system_alert", "--stdin"], "not json", {"SECRET_KEY_BASE": TEST_SECRET}, "--stdin"),
        (["system_alert", "--stdin"], "[1, 2]", {"SECRET_KEY_BASE": TEST_SECRET}, "object"),
        (["performance_metrc"], None, {}, "mean 'performance_metric'?"),
        (
            ["system_alert", *ALERT_FIELDS, "-f", "severity=huge"],
            None,
            {},
            "system_alert.severity: must be 'info', 'warning', 'error' or 'critical' (got 'huge')",
        ),
        (
            ["system_alert", *ALERT_FIELDS, "-f", "severity=WARN"],
            None,
            {},
            # The words listed and the one meant named, in any letter case, as ingest does.
            "exesdb-bridge: system_alert.severity: must be 'info', 'warning', 'error' or"
            " 'critical'; did you mean 'warning'? (got 'WARN')\n",
        ),
        # A word misspelt, or in another letter case, is answered with the one meant.
        (
            ["system_alert", *ALERT_FIELDS, "-f", "severity=eror"],
            None,
            {},
            "system_alert.severity: must be 'info', 'warning', 'error' or 'critical';"
            " did you mean 'error'? (got 'eror')",
        ),
        (
            ["system_alert", *ALERT_FIELDS, "-f", "category=Data"],
            None,
            {},
            "did you mean 'data'? (got 'Data')",
        ),
        (
            ["system_alert", *ALERT_FIELDS, "-f", "severity=" + "x" * 100],
            None,
            {},
            "(got '" + "x" * 78 + "…)",
        ),
        (
            ["performance_metric", "-f", "metric_name=q", "-f", "unit=m", "-f", "component=o"],
            None,
            {},
            "performance_metric.value: required: give it with -f value=VALUE\n"
            "exesdb-bridge: `exesdb-bridge schema performance_metric` lists its fields\n",
        ),
        (
            ["performance_metric", "-f", "metric_name=q", "-f", "valu=12", "-f", "value=1"],
            None,
            {},
            "performance_metric.valu: not a field of performance_metric; did you mean 'value'?"
            " (got 12)\n",
        ),
        (
            ["performance_metric", "-f", "metric_name=q", "-f", "valu=12"],
            None,
            {},
            # The misspelt field first, the missing ones it explains after it.
            "exesdb-bridge: performance_metric.valu: not a field of performance_metric; did you"
            " mean 'value'? (got 12)\nexesdb-bridge: performance_metric.value: required",
        ),
        (
            ["performance_metric", "-f", 'tags={"a": "1", "a": "2"}'],
            None,
            {},
            "--field 'tags': the key 'a' is given twice",
        ),
        (
            [
                "health_check_completed",
                "-f",
                "check_name=c",
                "-f",
                "result=pass",
                "-f",
                "duration_ms=1",
                "-f",
                'details={"lag": Infinity}',
            ],
            None,
            {},
            "health_check_completed.details: Input should be a valid dictionary"
            """ (got '{"lag": Infinity}'); it is not JSON: Infinity is not JSON\n""",
        ),
        (
            ["performance_metric", "--stdin"],
            '{"metric_name": "q", "value": 1, "value": 2, "unit": "m", "component": "o"}',
            {},
            "--stdin: the key 'value' is given twice",
        ),
        (
            ["performance_metric", "--stdin"],
            '{"metric_name": "q", "value": 1, "unit": "m", "component": "o", "tags": {"a": NaN}}',
            {},
            "--stdin: not JSON (NaN is not JSON)",
        ),
        # Empty (a pipe that gave nothing), or a line break alone: said so.
        (["performance_metric", "--stdin"], "", {}, "--stdin: nothing was read; it must hold"),
        (["performance_metric", "--stdin"], "\n", {}, "--stdin: nothing was read; it must hold"),
        (["system_alert", *ALERT_FIELDS], None, {}, "SECRET_KEY_BASE"),
        (
            ["system_alert", *ALERT_FIELDS],
            None,
            {"SECRET_KEY_BASE": ""},
            "publish needs SECRET_KEY_BASE to sign with: set it to the key the bridge runs with",
        ),
        (
            ["system_alert", *ALERT_FIELDS],
            None,
            {"SECRET_KEY_BASE": "k" * 31},
            "SECRET_KEY_BASE: has 31 characters; a bridge with EXESDB_INGEST=true runs with at"
            " least 32, so it is not the bridge's key",
        ),
        # A byte that is no UTF-8 character (random bytes): a traceback, no key signs so.
        (
            ["system_alert", *ALERT_FIELDS],
            None,
            {"SECRET_KEY_BASE": "\udcff" + "k" * 40},
            "SECRET_KEY_BASE: holds bytes that are not UTF-8 text",
        ),
    ],
)
def test_publish_refuses_bad_input_with_exit_2(
    args: list[str], stdin: str | None, env: dict[str, str], message: str
) -> None:
    """An unknown tag, a bad field (with the value given), a key given twice in a JSON value
    (which was meant is a guess), NaN or Infinity (no JSON, which a free-form object would carry
    on as null), bad stdin, no key to sign with, one shorter than any ingesting bridge's or one
    that is no UTF-8 text exit 2 and say why, nothing sent; a missing or unknown field says what
    to give, and where the fields are listed, a word a field does not take names the words it
    takes and the one meant, a missing key what to set it to; a bad message is named before a
    missing key, and an unknown field before the missing ones (the one it misspells among
    them)."""
    completed = cli("publish", *args, "--url", "http://127.0.0.1:9", stdin=stdin, **env)  # type: ignore[arg-type]
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_tail_prints_one_verified_message_per_line(bridges: Bridges, tmp_path: Path) -> None:
    """tail --count 1 prints the next verified message as one line and exits 0."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")

    def publish() -> None:
        published = cli(
            "publish", "system_alert", "--topic", "node_failure", *ALERT_FIELDS,
            "--url", bridge.url, SECRET_KEY_BASE=TEST_SECRET,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr

    tail = _tail_until(bridge, publish, "--count", "1", "--instance", "ex_esdb_alerts")
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 1
    ts, instance, topic, tag, node, payload = lines[0].split(" ", 5)
    assert (instance, topic, tag) == ("ex_esdb_alerts", "node_failure", "system_alert")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)
    assert node
    assert json.loads(payload)["title"] == "Node down"


def _tail_until(
    process: BridgeProcess | ThreadedBridge, end: Callable[[], object], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``tail`` against ``process`` until ``end`` (called once tail is connected) makes it
    exit: its exit status and what it printed."""
    tail = subprocess.Popen(
        [sys.executable, "-m", "bridge", "tail", *args, "--url", process.url],
        env=bridge_env(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
        end()
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    return subprocess.CompletedProcess(tail.args, tail.returncode, out, err)


def test_tail_says_so_and_exits_1_when_the_bridge_ends_the_stream(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A bridge stopping under tail ends it with exit 1 and a line saying the stream closed."""
    process = start_bridge_process(bridge_processes, tmp_path)

    def stop() -> None:
        assert process.stop() == 0

    tail = _tail_until(process, stop, "--count", "5")
    assert tail.returncode == 1
    assert f"the bridge at {process.url} closed the stream" in tail.stderr


def test_tail_says_the_stream_broke_off_when_the_bridge_is_killed(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A bridge killed under tail: exit 1 saying the stream broke off, not that it is
    unreachable (it was reached), and no traceback."""
    process = start_bridge_process(bridge_processes, tmp_path)
    assert process.process is not None
    tail = _tail_until(process, process.process.kill)
    assert tail.returncode == 1
    # The bridge's collectors may have published a message or two before the kill.
    pattern = rf"the stream from {re.escape(process.url)} broke off after \d+ message"
    assert re.search(pattern, tail.stderr)
    assert "cannot reach" not in tail.stderr
    assert "Traceback" not in tail.stderr
