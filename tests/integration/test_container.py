"""The image from deploy/Dockerfile, built and run with podman: hardened, healthy, durable.

Every container runs as production would (``--read-only`` without podman's tmpfs mounts,
``--cap-drop=ALL``, the image's non-root user) on the host network, listening on 127.0.0.1 (or
the wildcard) at a port other than the default, so a health check that ignored
``EXESDB_HTTP_ADDR`` would fail.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge import __version__
from bridge.sinks.alerts.records import DeliveryState
from tests.deploy.files import DEPLOY, load_all_yaml, load_yaml
from tests.doc_text import README, page
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
from tests.integration.servers.webhook import HANG, WebhookReceiver, webhook_receiver
from tests.support import (
    TEST_SECRET,
    free_port,
    http_get,
    refusing_port,
    run_bridge,
    wait_until,
)
from tests.webconfig.files import WebFiles, bcrypt_hash

# One pytest-xdist worker runs the module: it builds the image (a session fixture) once.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("podman")]

__all__ = ["bridge_image", "containers", "podman", "webhook_receiver"]

DEFAULT_PORT = 9570
# Starts of a container whose port another process took first (see start_bridge).
PORT_TRIES = 3
STATE_DIR = "/var/lib/exesdb-bridge"
WEB_DIR = "/etc/exesdb-bridge"
# The image adds its virtualenv, a user and the state directory to the Python base (useradd
# touches its lock file too).
USER_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/.pwd.lock")
ADDED_ROOTS = ("/opt/exesdb-bridge", STATE_DIR, *USER_FILES)
PARENTS = frozenset({"/etc", "/opt", "/var", "/var/lib"})
MAX_ADDED_BYTES = 100_000_000
# The sizes the README and docs/deployment.md give, in MB as podman shows them (10**6 bytes).
ADDED_SIZE = re.compile(r"adds\s+(\d+)\s+MB\s+to\b")
TOTAL_SIZE = re.compile(r"\((\d+)\s+MB\s+in\s+all\s+on\s+the\s+stand-in\s+base")
# Within a few MB: a dependency's new release may grow it a little; 65 for 71 is stale.
SIZE_TOLERANCE_MB = 3
# A log line telling of trouble: above INFO in the text format ("<time> WARNING <logger>: …"), a
# Python warning or traceback, or a write refused by the read-only root (EROFS), however caught.
TROUBLE = re.compile(
    r"^\S+ (?:WARNING|ERROR|CRITICAL) |Traceback \(most recent call last\)|\w+Warning: "
    r"|Read-only file system|Errno 30\b|EROFS"
)
ALERT_FIELDS = [
    "-f", "severity=critical", "-f", "category=system", "-f", "title=Node down",
    "-f", "description=gone", "-f", "source=container-test",
]  # fmt: skip


def url(port: int, path: str = "") -> str:
    """The address of a container listening on 127.0.0.1:port (the host network)."""
    return f"http://127.0.0.1:{port}{path}"


def other_port(*taken: int) -> int:
    """A loopback port free a moment ago that is neither the default nor one of ``taken``."""
    return wait_until(
        lambda: (port := free_port()) not in {DEFAULT_PORT, *taken} and port,
        what="a free port other than the default",
    )


class Running(NamedTuple):
    container: Container
    port: int
    volume: str


def troubles(log: str) -> list[str]:
    """The lines of a bridge's log that tell of trouble (``TROUBLE``)."""
    return [line for line in log.splitlines() if TROUBLE.search(line)]


def healthz(port: int) -> bool:
    """True when /healthz on the port answers 200 over http."""
    return http_get(url(port, "/healthz"))[0] == 200


def start_bridge(
    containers: Containers,
    volume: str,
    *taken: int,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    ready: Callable[[int], bool] = healthz,
    flags: tuple[str, ...] = HARDENED,
    choose: Callable[..., int] = other_port,
    command: tuple[str, ...] = (),
) -> Running:
    """A hardened container with ``env`` (running ``command``, the image's own when empty),
    listening on ``host`` at a port ``choose(*taken)`` gives (free a moment ago, not the
    default), started and ``ready``.

    Ready only once the container's own log says it listens on that port: another process
    there (a parallel test's server) may answer in its place. When one took the port between
    its choice and the container's bind, the container exits saying the address is in use and
    starts again on another port, as ``start_listening`` restarts a server.
    """
    for _ in range(PORT_TRIES):
        port = choose(*taken)
        settings = {"EXESDB_HTTP_ADDR": f"{host}:{port}", "SECRET_KEY_BASE": TEST_SECRET}
        container = containers.run(
            {**settings, **(env or {})}, volume=volume, flags=flags, command=command
        )
        if _ready(container, port, ready):
            return Running(container, port, volume)
        taken = (*taken, port)
    pytest.fail(f"no free port for a container after {PORT_TRIES} tries: {container.logs()}")


def _ready(container: Container, port: int, ready: Callable[[int], bool]) -> bool:
    """True once ``ready(port)`` holds and the container's log says it listens on ``port``
    itself; False when it exited because another process had the port; any other exit fails
    the test."""
    listening = re.compile(rf"listening on https?://\S+:{port}\b")

    def settled() -> str | None:
        if container.inspect("{{.State.Status}}") == "exited":
            return "exited"
        # The log is read only once the port answers: as cheap as polling the port alone.
        return "ready" if ready(port) and listening.search(container.logs()) else None

    state = wait_until(settled, 60, f"the container ready on port {port}")
    if state == "exited" and "address already in use" not in container.logs().lower():
        pytest.fail(f"container {container.name} exited: {container.logs()}")
    return bool(state == "ready")


@pytest.fixture(scope="module")
def running(podman: Podman, bridge_image: BridgeImage) -> Iterator[Running]:
    """One hardened container on a non-default port, shared by the read-only checks."""
    made = Containers(podman, bridge_image)
    try:
        yield start_bridge(made, made.volume())
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


def pending_alert_ids(podman: Podman, volume: str) -> list[list[str]]:
    """The alert ids of each pending delivery in the outbox on ``volume`` (read-only)."""
    mountpoint = podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout
    outbox = Path(mountpoint.strip()) / "alerts.sqlite3"
    db = sqlite3.connect(f"{outbox.as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT alert_ids FROM deliveries WHERE state = ? ORDER BY rowid",
            (DeliveryState.PENDING.value,),
        ).fetchall()
    finally:
        db.close()
    return [json.loads(alert_ids) for (alert_ids,) in rows]


def publish_alert(port: int, alert_id: str) -> None:
    """Sign and post one critical SystemAlert to the bridge's ingest with the CLI."""
    fields = [*ALERT_FIELDS, "-f", f"alert_id={alert_id}"]
    completed = run_bridge(
        "publish", "system_alert", *fields, "--url", url(port), env={"SECRET_KEY_BASE": TEST_SECRET}
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr  # 202: accepted


# -- the image --


def test_image_is_labelled_and_adds_only_the_installed_bridge(
    podman: Podman, bridge_image: BridgeImage
) -> None:
    """OCI labels name this version and the build's revision; over its base the image adds a
    virtualenv, a user, a dir: as many MB as the README and docs/deployment.md say."""
    inspected = json.loads(podman("image", "inspect", bridge_image.tag).stdout)[0]
    labels = inspected["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == bridge_image.revision
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert inspected["Healthcheck"]["Test"] == ["CMD", "exesdb-bridge", "healthcheck"]
    diff = podman("image", "diff", bridge_image.tag, bridge_image.base).stdout.split()
    paths = [path for path in diff if path.startswith("/")]
    assert f"{STATE_DIR}" in paths
    assert "/opt/exesdb-bridge/bin/exesdb-bridge" in paths
    # The MIT licence travels with the package, as pyproject's license-files says.
    assert [p for p in paths if re.search(r"exesdb_bridge-[^/]+\.dist-info/licenses/LICENSE$", p)]
    assert not [p for p in paths if p.endswith(".whl")]
    assert not [p for p in paths if re.search(r"/site-packages/(pip|setuptools|wheel)\b", p)]
    assert [p for p in paths if not p.startswith(ADDED_ROOTS) and p not in PARENTS] == []
    base_size = json.loads(podman("image", "inspect", bridge_image.base).stdout)[0]["Size"]
    added = inspected["Size"] - base_size
    assert added < MAX_ADDED_BYTES
    deployment = page("deployment")
    for text, pattern, measured in (
        (README.read_text(), ADDED_SIZE, added),
        (deployment, ADDED_SIZE, added),
        (deployment, TOTAL_SIZE, inspected["Size"]),
    ):
        [documented] = pattern.findall(text)
        assert abs(int(documented) - measured / 10**6) <= SIZE_TOLERANCE_MB, (
            f"documented {documented} MB, measured {measured / 10**6:.0f} MB"
        )


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


def test_reports_healthy_with_tls_and_basic_auth_from_a_web_config(
    containers: Containers, tmp_path: Path
) -> None:
    """With a web config (TLS, basic auth) and the probe's user and password file mounted
    read-only, /healthz refuses a request without the password and the HEALTHCHECK, asking https
    as that user, is healthy; a wrong password shows as 401."""
    files = WebFiles(tmp_path / "web")
    files.write(files.tls_config() + f"basic_auth_users:\n  probe: {bcrypt_hash('probe-pw')}\n")
    (files.folder / "probe-password").write_text("probe-pw\n")
    (files.folder / "wrong-password").write_text("not-it\n")
    files.folder.chmod(0o755)  # read by uid 10001 in the container
    for path in files.folder.iterdir():
        path.chmod(0o644)
    container, port, _ = start_bridge(
        containers,
        containers.volume(),
        host="0.0.0.0",
        # /healthz over https refusing a request without the password
        ready=lambda port: (
            http_get(f"https://127.0.0.1:{port}/healthz", context=files.client_context())[0] == 401
        ),
        flags=(*HARDENED, f"--volume={files.folder}:{WEB_DIR}:ro"),
        env={
            "EXESDB_WEB_CONFIG_FILE": f"{WEB_DIR}/web.yml",
            "EXESDB_HEALTHCHECK_USERNAME": "probe",
            "EXESDB_HEALTHCHECK_PASSWORD_FILE": f"{WEB_DIR}/probe-password",
        },
    )
    asked = f"https://127.0.0.1:{port}/healthz"
    assert container.healthcheck().returncode == 0
    assert container.inspect("{{.State.Health.Status}}") == "healthy"
    last = json.loads(container.inspect("{{json .State.Health.Log}}"))[-1]
    assert last["Output"].strip() == f"healthy: {asked} answered 200"
    wrong = container.exec(
        "exesdb-bridge",
        "healthcheck",
        env={"EXESDB_HEALTHCHECK_PASSWORD_FILE": f"{WEB_DIR}/wrong-password"},
    )
    assert wrong.returncode == 1
    assert wrong.stderr == (
        f"unhealthy: {asked} answered 401 Unauthorized: the user and password given"
        " (EXESDB_HEALTHCHECK_USERNAME, EXESDB_HEALTHCHECK_PASSWORD_FILE) are not one of the"
        " bridge's basic_auth_users\n"
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
    with refusing_port() as port:
        completed = running.container.exec(
            "exesdb-bridge", "healthcheck", env={"EXESDB_HTTP_ADDR": f"127.0.0.1:{port}"}
        )
    assert completed.returncode == 1
    assert completed.stderr == (
        f"unhealthy: cannot connect to http://127.0.0.1:{port}/healthz: Connection refused\n"
    )


@contextmanager
def impostor() -> Iterator[int]:
    """Another server on a loopback port, answering every GET 200 as a bridge's /healthz would
    (a parallel test's bridge on the port a container was about to take)."""

    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    # shutdown() returns once the loop next looks, every poll_interval (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_container_whose_port_another_server_took_starts_again_on_another(
    containers: Containers,
) -> None:
    """A port taken between its choice and the container's bind (by a server answering /healthz
    200 in the bridge's place) is not mistaken for the container's: the container, refused the
    address, is started again on another port, where it is the bridge that answers."""
    with impostor() as taken:
        chosen: list[int] = []

        def choose(*others: int) -> int:
            chosen.append(taken if not chosen else other_port(taken, *others))
            return chosen[-1]

        started = start_bridge(containers, containers.volume(), choose=choose)
        assert chosen[0] == taken
        assert started.port == chosen[-1] != taken
        assert metric(started.port, "exesdb_build_info") == 1
        assert f"listening on http://127.0.0.1:{started.port}" in started.container.logs()


def test_build_info_names_the_revision_the_image_was_built_from(
    running: Running, bridge_image: BridgeImage
) -> None:
    """The build's REVISION reaches exesdb_build_info, as the revision label has it."""
    assert metric(running.port, "exesdb_build_info", revision=bridge_image.revision) == 1


def test_runs_as_uid_10001_without_any_capability(running: Running) -> None:
    """The bridge process runs as 10001:10001 with every capability set empty."""
    status = proc_status(running.container)
    assert status["Uid"].split() == ["10001"] * 4
    assert status["Gid"].split() == ["10001"] * 4
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, capabilities


def test_writes_nowhere_but_its_state_volume(running: Running, podman: Podman) -> None:
    """Root, /tmp and /run are read-only (no tmpfs); the outbox lives on the volume, as 10001,
    readable by it alone (the volume 0700, the file 0600); the bridge tried no other write: its
    log, from its start on, holds no refused write (EROFS) and no warning or error at all."""
    container = running.container
    log = container.logs()
    assert f"listening on http://127.0.0.1:{running.port}" in log  # the bridge's own log
    assert troubles(log) == [], log
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


@pytest.mark.parametrize(
    ("how", "volume_options", "flags", "reason"),
    [
        (
            "mounted read-only",
            "ro",
            (),
            "'{state}' is on a read-only file system; allowed: a directory on a writable one",
        ),
        (
            "another uid's",
            "",
            ("--user=10002:10002",),
            "cannot open the alert outbox in '{state}': [Errno 13] Permission denied",
        ),
    ],
)
def test_a_state_volume_it_cannot_write_stops_start_up_with_exit_2(
    running: Running,
    containers: Containers,
    how: str,
    volume_options: str,
    flags: tuple[str, ...],
    reason: str,
) -> None:
    """A state volume the bridge cannot write (read-only, though its outbox reads; another
    uid's) stops start-up with exit 2 and one line naming EXESDB_STATE_DIR and what is wrong
    with it, no traceback."""
    volume = running.volume if volume_options else containers.volume()
    completed = containers.run_to_exit(
        {"EXESDB_HTTP_ADDR": "127.0.0.1:0"},  # it stops before listening: any port will do
        volume=f"{volume}:{volume_options}" if volume_options else volume,
        flags=(*HARDENED, *flags),
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert f"EXESDB_STATE_DIR: {reason.format(state=STATE_DIR)}" in output
    assert "Traceback" not in output, how


# -- stopping, crashing and starting again --


def test_stop_is_graceful_within_the_stop_timeout_with_a_delivery_in_flight(
    containers: Containers, webhook_receiver
) -> None:
    """SIGTERM while a webhook delivery hangs (its timeout longer than the stop's): the bridge
    drains within EXESDB_SHUTDOWN_TIMEOUT_MS, before podman's kill, exit 0, and the delivery
    stays pending in the outbox on the volume for the next start."""
    receiver: WebhookReceiver = webhook_receiver().script(HANG)
    volume = containers.volume()
    container, port, _ = start_bridge(
        containers,
        volume,
        env={
            "EXESDB_INGEST": "true",
            "EXESDB_WEBHOOK_URLS": receiver.url,
            "EXESDB_WEBHOOK_TIMEOUT_MS": "60000",
            "EXESDB_WEBHOOK_GROUP_WAIT_MS": "50",
        },
    )
    stop_timeout = int(container.inspect("{{.Config.StopTimeout}}"))
    assert container.inspect("{{.Config.StopSignal}}") in {str(int(signal.SIGTERM)), "SIGTERM"}
    env = dict(item.split("=", 1) for item in json.loads(container.inspect("{{json .Config.Env}}")))
    assert int(env["EXESDB_SHUTDOWN_TIMEOUT_MS"]) < stop_timeout * 1000
    alert_id = f"container-{uuid.uuid4().hex[:8]}-in-flight"
    publish_alert(port, alert_id)
    [in_flight] = receiver.wait_for_requests(1, timeout=30)
    assert in_flight.alert_ids() == [alert_id]

    container.podman("stop", container.name, timeout=stop_timeout + 60)
    assert container.inspect("{{.State.ExitCode}}") == "0"  # a kill after the timeout is 137
    log = container.logs()
    assert "stopping" in log
    assert "Traceback" not in log
    # The bridge's last line: how long its drain took, within what the setting allows.
    [took] = re.findall(r"stopped in (\d+\.\d)s \(EXESDB_SHUTDOWN_TIMEOUT_MS allows", log)
    assert float(took) <= int(env["EXESDB_SHUTDOWN_TIMEOUT_MS"]) / 1000
    assert pending_alert_ids(containers.podman, volume) == [[alert_id]]


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
    first, first_port, _ = start_bridge(containers, volume, env=env)
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
    start_bridge(containers, volume, first_port, env=env)
    wait_until(
        lambda: set(alert_ids) <= receiver.accepted_alert_ids(),
        timeout=60,
        what="every accepted alert delivered by the second container",
    )
    delivered = [a for r in receiver.accepted() for a in r.alert_ids() if a in alert_ids]
    assert sorted(delivered) == sorted(alert_ids)  # each exactly once


# -- as the compose file and the Kubernetes manifests run it --

# What the StatefulSet's fieldRef variables hold in its first pod (the kustomization's namespace).
POD_FIELDS = {"metadata.name": "exesdb-bridge-0", "metadata.namespace": "exesdb"}


class Deployed(NamedTuple):
    """How a deployment file runs the image: the arguments after its entrypoint, the user, the
    podman flags its security settings come to, its environment (without ``EXESDB_HTTP_ADDR``),
    the host that names, its probe commands and the grace period of a stop."""

    command: tuple[str, ...]
    user: str
    flags: tuple[str, ...]
    env: dict[str, str]
    host: str
    probes: tuple[tuple[str, ...], ...]
    grace_seconds: int


def _without_address(env: dict[str, str]) -> tuple[dict[str, str], str]:
    """``env`` without ``EXESDB_HTTP_ADDR``, and the host it named (the test picks the port)."""
    host = env.pop("EXESDB_HTTP_ADDR").rpartition(":")[0]
    return env, host


def compose_runs() -> Deployed:
    """The bridge service of deploy/docker-compose.yml, with compose's ``${VAR:-default}``
    defaults (nothing set in the shell). Its ``ulimits`` are left to ``Podman.ulimits``: 65536
    is above this machine's hard limit, which runc refuses."""
    service = load_yaml(DEPLOY / "docker-compose.yml")["services"]["bridge"]
    env, host = _without_address(
        {
            name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
            for name, value in service["environment"].items()
        }
    )
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return Deployed(
        command=tuple(service["command"]),
        user=service["user"],
        flags=(
            f"--user={service['user']}",
            *(("--read-only", "--read-only-tmpfs=false") if service.get("read_only") else ()),
            *(f"--cap-drop={cap}" for cap in service.get("cap_drop", [])),
            *(f"--security-opt={option}" for option in service.get("security_opt", [])),
        ),
        env=env,
        host=host,
        probes=(tuple(test[1:]),),
        grace_seconds=int(service["stop_grace_period"].removesuffix("s")),
    )


def kubernetes_runs() -> Deployed:
    """The StatefulSet's first pod: its security contexts (the container's over the pod's), the
    ConfigMap and the Secret as shipped (empty) through ``envFrom``, then its ``env`` with the
    pod's fields and ``$(VAR)`` references filled in."""
    objects = {
        (obj["kind"], obj["metadata"]["name"]): obj
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for obj in load_all_yaml(path)
    }
    [statefulset] = [obj for (kind, _), obj in objects.items() if kind == "StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "bridge"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            env.update(objects["ConfigMap", source["configMapRef"]["name"]]["data"])
        else:
            env.update(objects["Secret", source["secretRef"]["name"]]["stringData"])
    for item in container["env"]:
        if "valueFrom" in item:
            env[item["name"]] = POD_FIELDS[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], item["value"])
    capabilities = security.get("capabilities", {})
    user = f"{security['runAsUser']}:{security['runAsGroup']}"
    env, host = _without_address(env)
    return Deployed(
        command=tuple(container.get("args", [])),
        user=user,
        flags=(
            f"--user={user}",
            *((f"--group-add={security['fsGroup']}",) if "fsGroup" in security else ()),
            *(
                ("--read-only", "--read-only-tmpfs=false")
                if security.get("readOnlyRootFilesystem")
                else ()
            ),
            *(f"--cap-drop={cap}" for cap in capabilities.get("drop", [])),
            *(f"--cap-add={cap}" for cap in capabilities.get("add", [])),
            *(
                ("--security-opt=no-new-privileges",)
                if security.get("allowPrivilegeEscalation") is False
                else ()
            ),
        ),
        env=env,
        host=host,
        probes=tuple(
            tuple(container[probe]["exec"]["command"])
            for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        ),
        grace_seconds=int(pod["terminationGracePeriodSeconds"]),
    )


@pytest.mark.parametrize("runs", [compose_runs, kubernetes_runs], ids=["compose", "kubernetes"])
def test_runs_as_the_compose_file_and_the_statefulset_run_it(
    containers: Containers, runs: Callable[[], Deployed]
) -> None:
    """With a deployment file's command, user, read-only root, capabilities, privileges and
    environment (on another port), the image passes each probe the file defines, runs as its
    user, and stops within its grace period with exit 0, its last line saying it stopped."""
    deployed = runs()
    container = start_bridge(
        containers,
        containers.volume(),
        env=deployed.env,
        host=deployed.host,
        flags=deployed.flags,
        command=deployed.command,
    ).container
    for probe in deployed.probes:
        completed = container.exec(*probe)
        assert completed.returncode == 0, f"{probe}: {completed.stdout}{completed.stderr}"
    status = proc_status(container)
    uid, gid = deployed.user.split(":")
    assert status["Uid"].split() == [uid] * 4
    assert status["Gid"].split() == [gid] * 4
    assert uid != "0"  # runAsNonRoot: the kubelet would refuse to start it
    grace = deployed.grace_seconds
    container.podman("stop", f"--time={grace}", container.name, timeout=grace + 60)
    assert container.inspect("{{.State.ExitCode}}") == "0"  # a kill after the grace is 137
    assert re.search(r"stopped in \d+\.\ds ", container.logs())
