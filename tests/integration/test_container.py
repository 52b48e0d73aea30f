"""The image from deploy/Dockerfile, built and run with podman: hardened, healthy, durable.

Every container runs as production would (``--read-only`` without podman's tmpfs mounts,
``--cap-drop=ALL``, the image's non-root user) on the host network, listening on 127.0.0.1 at a
port other than the default, so a health check that ignored ``EXESDB_HTTP_ADDR`` would fail.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge import __version__
from tests.integration.servers.podman import (
    HARDENED,
    BridgeImage,
    Container,
    Containers,
    Podman,
    bridge_image,
    containers,
    podman,
)
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.support import ROOT, TEST_SECRET, bridge_env, free_port, http_get, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["bridge_image", "containers", "podman", "webhook_receiver"]

DEFAULT_PORT = 9570
STATE_DIR = "/var/lib/exesdb-bridge"
# The image adds its virtualenv, a user and the state directory to the Python base.
USER_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
ADDED_ROOTS = ("/opt/exesdb-bridge", STATE_DIR, *USER_FILES)
PARENTS = frozenset({"/etc", "/opt", "/var", "/var/lib"})
MAX_ADDED_BYTES = 100_000_000
ALERT_FIELDS = [
    "-f", "severity=critical", "-f", "category=system", "-f", "title=Node down",
    "-f", "description=gone", "-f", "source=container-test",
]  # fmt: skip


def url(port: int, path: str = "") -> str:
    """The address of a container listening on 127.0.0.1:port (the host network)."""
    return f"http://127.0.0.1:{port}{path}"


def other_port(*taken: int) -> int:
    """A free loopback port that is neither the default nor one of ``taken``."""
    return wait_until(
        lambda: (port := free_port()) not in {DEFAULT_PORT, *taken} and port,
        what="a free port other than the default",
    )


def start_bridge(containers: Containers, port: int, volume: str, **env: str) -> Container:
    """A hardened container listening on 127.0.0.1:port, started and answering /healthz."""
    container = containers.run(
        {"EXESDB_HTTP_ADDR": f"127.0.0.1:{port}", "SECRET_KEY_BASE": TEST_SECRET, **env},
        volume=volume,
        flags=HARDENED,
    )
    wait_until(
        lambda: container.running() and http_get(url(port, "/healthz"))[0] == 200,
        timeout=60,
        what=f"the container's /healthz on port {port}",
    )
    return container


class Running(NamedTuple):
    container: Container
    port: int
    volume: str


@pytest.fixture(scope="module")
def running(podman: Podman, bridge_image: BridgeImage) -> Iterator[Running]:
    """One hardened container on a non-default port, shared by the read-only checks."""
    made = Containers(podman, bridge_image)
    try:
        port = other_port()
        volume = made.volume()
        yield Running(start_bridge(made, port, volume), port, volume)
    finally:
        made.close()


def proc_status(container: Container) -> dict[str, str]:
    """``/proc/1/status`` of the container: its main process's ids and capabilities."""
    completed = container.exec("cat", "/proc/1/status")
    assert completed.returncode == 0, completed.stderr
    return dict(line.split(":\t", 1) for line in completed.stdout.splitlines() if ":\t" in line)


def metric(port: int, sample: str, **labels: str) -> float:
    """One sample's value from the bridge's /metrics (0 when absent)."""
    text = http_get(url(port, "/metrics"))[1].decode()
    return sum(
        found.value
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample and labels.items() <= found.labels.items()
    )


def publish_alert(port: int, alert_id: str) -> None:
    """Sign and post one critical SystemAlert to the bridge's ingest with the CLI."""
    fields = [*ALERT_FIELDS, "-f", f"alert_id={alert_id}"]
    completed = subprocess.run(
        [sys.executable, "-m", "bridge", "publish", "system_alert", *fields, "--url", url(port)],
        env=bridge_env(SECRET_KEY_BASE=TEST_SECRET),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr  # 202: accepted


# -- the image --


def test_image_is_labelled_and_adds_only_the_installed_bridge(
    podman: Podman, bridge_image: BridgeImage
) -> None:
    """OCI labels name this version; over its base the image adds a virtualenv, a user, a dir."""
    inspected = json.loads(podman("image", "inspect", bridge_image.tag).stdout)[0]
    labels = inspected["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert inspected["Healthcheck"]["Test"] == ["CMD", "exesdb-bridge", "healthcheck"]
    diff = podman("image", "diff", bridge_image.tag, bridge_image.base).stdout.split()
    paths = [path for path in diff if path.startswith("/")]
    assert f"{STATE_DIR}" in paths
    assert "/opt/exesdb-bridge/bin/exesdb-bridge" in paths
    assert not [p for p in paths if p.endswith(".whl")]
    assert not [p for p in paths if re.search(r"/site-packages/(pip|setuptools|wheel)\b", p)]
    assert [p for p in paths if not p.startswith(ADDED_ROOTS) and p not in PARENTS] == []
    base_size = json.loads(podman("image", "inspect", bridge_image.base).stdout)[0]["Size"]
    assert inspected["Size"] - base_size < MAX_ADDED_BYTES


# -- one running container, read-only, without capabilities --


def test_reports_healthy_on_a_port_other_than_the_default(running: Running) -> None:
    """The image's HEALTHCHECK asks the configured port and reports the container healthy."""
    container = running.container
    wait_until(
        lambda: container.healthcheck().returncode == 0, timeout=60, what="a passing health check"
    )
    assert container.inspect("{{.State.Health.Status}}") == "healthy"
    last = json.loads(container.inspect("{{json .State.Health.Log}}"))[-1]
    assert last["Output"].strip() == (
        f"healthy: http://127.0.0.1:{running.port}/healthz answered 200"
    )


def test_serves_the_pages_from_the_installed_package(running: Running) -> None:
    """The wheel carries the pages' templates, stylesheet and script: / and /static/ answer."""
    status, body = http_get(url(running.port, "/"))
    assert status == 200
    assert b'<link rel="stylesheet" href="./static/pages.css">' in body
    for name in ("pages.css", "pages.js", "favicon.svg"):
        assert http_get(url(running.port, f"/static/{name}"))[0] == 200, name


def test_healthcheck_fails_in_one_line_where_the_bridge_does_not_listen(running: Running) -> None:
    """Pointed at another port, the same command exits 1 with one line naming the URL."""
    port = other_port(running.port)
    completed = running.container.exec(
        "exesdb-bridge", "healthcheck", env={"EXESDB_HTTP_ADDR": f"127.0.0.1:{port}"}
    )
    assert completed.returncode == 1
    assert completed.stderr == (
        f"unhealthy: cannot connect to http://127.0.0.1:{port}/healthz: Connection refused\n"
    )


def test_runs_as_uid_10001_without_any_capability(running: Running) -> None:
    """The bridge process runs as 10001:10001 with every capability set empty."""
    status = proc_status(running.container)
    assert status["Uid"].split() == ["10001"] * 4
    assert status["Gid"].split() == ["10001"] * 4
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, capabilities


def test_writes_nowhere_but_its_state_volume(running: Running, podman: Podman) -> None:
    """Root, /tmp and /run are read-only (no tmpfs); the outbox lives on the volume, as 10001,
    readable by it alone (the volume 0700, the file 0600)."""
    container = running.container
    for path in ("/probe", "/tmp/probe", "/var/tmp/probe", "/run/probe", "/opt/exesdb-bridge/p"):
        touched = container.exec("touch", path)
        assert touched.returncode != 0, path
        assert "Read-only file system" in touched.stderr, path
    mounts = container.exec("cat", "/proc/mounts").stdout.splitlines()
    tmpfs = {line.split()[1] for line in mounts if line.split()[2] == "tmpfs"}
    assert not tmpfs & {"/tmp", "/var/tmp", "/run"}
    mountpoint = podman("volume", "inspect", "--format", "{{.Mountpoint}}", running.volume)
    outbox = Path(mountpoint.stdout.strip()) / "alerts.sqlite3"
    assert outbox.stat().st_uid == 10001
    assert outbox.stat().st_mode & 0o777 == 0o600
    assert outbox.parent.stat().st_mode & 0o777 == 0o700


# -- stopping, crashing and starting again --


def test_stop_is_graceful_within_the_stop_timeout(containers: Containers) -> None:
    """SIGTERM drains within EXESDB_SHUTDOWN_TIMEOUT_MS, before podman's kill: exit 0."""
    container = start_bridge(containers, other_port(), containers.volume())
    stop_timeout = int(container.inspect("{{.Config.StopTimeout}}"))
    assert container.inspect("{{.Config.StopSignal}}") in {str(int(signal.SIGTERM)), "SIGTERM"}
    env = dict(item.split("=", 1) for item in json.loads(container.inspect("{{json .Config.Env}}")))
    assert int(env["EXESDB_SHUTDOWN_TIMEOUT_MS"]) < stop_timeout * 1000
    container.podman("stop", container.name, timeout=stop_timeout + 60)
    assert container.inspect("{{.State.ExitCode}}") == "0"  # a kill after the timeout is 137
    log = container.logs()
    assert "stopping" in log
    assert "Traceback" not in log


def test_an_alert_accepted_before_a_sigkill_is_delivered_by_the_next_container(
    containers: Containers, webhook_receiver
) -> None:
    """Accepted with the receiver down, then SIGKILL: the next container on the volume sends it."""
    receiver: WebhookReceiver = webhook_receiver(start=False)
    volume = containers.volume()
    env = {
        "EXESDB_INGEST": "true",
        "EXESDB_WEBHOOK_URLS": receiver.url,
        "EXESDB_WEBHOOK_BACKOFF_MS": "100",
        "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "300",
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "50",
    }
    first_port = other_port()
    first = start_bridge(containers, first_port, volume, **env)
    alert_ids = [f"container-{uuid.uuid4().hex[:8]}-{n}" for n in range(3)]
    for alert_id in alert_ids:
        publish_alert(first_port, alert_id)
    wait_until(
        lambda: metric(first_port, "exesdb_webhook_deliveries_total", result="retry") >= 1,
        timeout=30,
        what="a failed delivery to the receiver that is down",
    )
    first.podman("kill", "--signal=KILL", first.name)
    wait_until(lambda: first.inspect("{{.State.Status}}") == "exited", what="the killed container")
    assert first.inspect("{{.State.ExitCode}}") == str(128 + int(signal.SIGKILL))

    receiver.start()
    start_bridge(containers, other_port(first_port), volume, **env)
    wait_until(
        lambda: set(alert_ids) <= receiver.accepted_alert_ids(),
        timeout=60,
        what="every accepted alert delivered by the second container",
    )
    delivered = [a for r in receiver.accepted() for a in r.alert_ids() if a in alert_ids]
    assert sorted(delivered) == sorted(alert_ids)  # each exactly once
