"""How the client commands reach a running bridge (``bridge.cli.client``), and their process
stopped by Ctrl-C or a closed pipe."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

from tests.cli.helpers import ALERT_FIELDS, Bridges, cli
from tests.integration.test_alert_crash import ingest_alerts
from tests.support import ADMIN_TOKEN, ROOT, TEST_SECRET, ThreadedBridge, bridge_env, free_port


def _ingest(process: ThreadedBridge, count: int) -> None:
    ingest_alerts(process.url, [f"alert-{number:04d}" for number in range(count)])


def test_with_only_the_http_addr_set_publish_and_alerts_reach_that_bridge(
    bridges: Bridges, tmp_path: Path
) -> None:
    """On a port that is not the default, with no --url and no EXESDB_URL, publish and alerts
    list find the bridge through EXESDB_HTTP_ADDR (a wildcard host asked on loopback)."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true", EXESDB_HTTP_ADDR="0.0.0.0:0")
    env: dict[str, Any] = {
        "EXESDB_HTTP_ADDR": f"0.0.0.0:{bridge.port}",
        "SECRET_KEY_BASE": TEST_SECRET,
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    published = cli(
        "publish", "system_alert", "--topic", "disk_full", *ALERT_FIELDS, "-f", "alert_id=a1",
        **env,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {"accepted": 1}
    listed = cli("alerts", "list", **env)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "ALERT_ID",
        "STATE",
        "LEVEL",
        "SEVERITY",
        "ALERTNAME",
        "NODE",
        "SINCE",
        "TITLE",
    ]
    assert row.split()[:5] == ["a1", "firing", "level1", "critical", "disk_full"]
    assert row.endswith("  Node down")


def test_exesdb_url_is_asked_before_the_http_addr_and_url_before_both(
    bridges: Bridges, tmp_path: Path
) -> None:
    """EXESDB_URL wins over EXESDB_HTTP_ADDR, and --url over EXESDB_URL."""
    bridge = bridges(tmp_path)
    nowhere = f"http://127.0.0.1:{free_port()}"
    env: dict[str, Any] = {
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        "EXESDB_HTTP_ADDR": f"127.0.0.1:{free_port()}",
    }
    empty = cli("alerts", "list", EXESDB_URL=bridge.url, **env)
    assert (empty.returncode, empty.stdout, empty.stderr) == (
        0,
        "",
        "exesdb-bridge: no firing or acknowledged alerts (--state all lists resolved ones too)\n",
    )
    assert cli("alerts", "list", "--url", bridge.url, EXESDB_URL=nowhere, **env).returncode == 0
    missed = cli("alerts", "list", EXESDB_URL=nowhere, **env)
    assert missed.returncode == 1
    assert missed.stderr == (
        f"exesdb-bridge: cannot reach the bridge at {nowhere}: Connection refused (from"
        " EXESDB_URL; --url names another)\n"
    )


def test_alerts_list_into_head_ends_quietly(bridges: Bridges, tmp_path: Path) -> None:
    """`alerts list | head -3` prints the header and two alerts, no BrokenPipeError, exit 0
    (with pipefail, so the exit status is the command's own)."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    _ingest(bridge, 1000)  # far more output than a pipe holds
    completed = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            # --limit 0: every alert, far more than a pipe holds (50, the default, fit in it).
            f"{sys.executable} -m bridge alerts list --limit 0 --url {bridge.url} | head -3",
        ],
        env=bridge_env(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert len(completed.stdout.splitlines()) == 3
    assert completed.stdout.startswith("ALERT_ID")
    assert completed.stderr == ""
    assert completed.returncode == 0  # a reader that stops early is no failure


@pytest.mark.parametrize(
    "args",
    [
        ("alerts", "list", "--url", "{url}"),
        ("publish", "performance_metric", "-f", "metric_name=q", "-f", "value=1", "-f", "unit=m",
         "-f", "component=c", "--url", "{url}"),
        ("healthcheck", "--timeout", "60"),  # its light path, not bridge.cli
    ],
    ids=["alerts", "publish", "healthcheck"],
)  # fmt: skip
def test_ctrl_c_while_waiting_on_the_bridge_exits_130_without_a_traceback(
    args: tuple[str, ...],
) -> None:
    """Ctrl-C while a client command waits for a bridge that does not answer stops it quietly:
    exit 130 (as a shell reports Ctrl-C), nothing but what it printed before."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", *(arg.format(url=f"http://{addr}") for arg in args)],
            env=bridge_env(
                EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, SECRET_KEY_BASE=TEST_SECRET, EXESDB_HTTP_ADDR=addr
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As in a terminal's foreground: a suite started in the background (``make test &``)
            # passes on SIGINT ignored, and the command would rightly keep ignoring it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            silent.settimeout(60)
            connection, _ = silent.accept()
            with connection:
                connection.settimeout(60)
                assert connection.recv(65536)  # the request is out: the command waits
                process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:  # failed: leave no process behind for later tests
                process.kill()
                process.communicate()
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert out == ""


# Ctrl-C pressed while a command's modules are still importing, made certain: the import of
# ``{importing}`` (a module the command imports before it runs) raises KeyboardInterrupt, as
# Python does when SIGINT comes then.
INTERRUPTED_IMPORT: Final = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "{importing}":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
from bridge.__main__ import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("args", "importing"),
    [
        (("alerts", "list"), "bridge.cli.shared"),
        (("run",), "bridge.cli.shared"),
        (("check-config",), "bridge.cli.shared"),
        # The probe's light path imports none of what the other commands share.
        (("healthcheck",), "bridge.cli.healthcheck"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else value,
)
def test_ctrl_c_while_the_command_is_still_importing_exits_130_without_a_traceback(
    args: tuple[str, ...], importing: str
) -> None:
    """Ctrl-C pressed just after the command is typed, while its modules import, stops it as
    quietly as later on: exit 130, no traceback."""
    completed = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT.replace("{importing}", importing), *args],
        env=bridge_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (130, "", "")
