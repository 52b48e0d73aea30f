"""A real Prometheus scrapes a bridge process over HTTPS with basic auth and client certificates.

The bridge runs as ``exesdb-bridge run`` with ``EXESDB_WEB_CONFIG_FILE``; Prometheus is configured
as for any exporter behind exporter-toolkit (``scheme: https``, ``tls_config``, ``basic_auth``).
"""

from __future__ import annotations

import http.client
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bridge import __version__
from tests.doc_text import fenced, page, section
from tests.support import (
    BridgeProcess,
    http_get,
    require_binary,
    run_bridge,
    run_in_process,
    wait_until,
)
from tests.webconfig.files import WebFiles, basic, bcrypt_hash

pytestmark = pytest.mark.integration

ALICE = {"Authorization": basic("alice", "alice-pw")}
USERS = f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw')}\n"
# What Go's net/http (and so an exporter-toolkit exporter) answers plain HTTP on its TLS port.
GO_PLAIN_HTTP_BODY = b"Client sent an HTTP request to an HTTPS server.\n"
MUTUAL_TLS = "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"


def _start(
    tmp_path: Path,
    bridge_processes: list[BridgeProcess],
    files: WebFiles,
    context: ssl.SSLContext,
) -> BridgeProcess:
    bridge = BridgeProcess(
        state_dir=tmp_path / "state",
        context=context,
        headers=ALICE,
        EXESDB_WEB_CONFIG_FILE=str(files.folder / "web.yml"),
        EXESDB_NODE="tls-node",
    )
    bridge_processes.append(bridge)
    return bridge.start(tmp_path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BridgeProcess, WebFiles]]:
    """A bridge serving HTTPS with alice's basic auth (``files.tls_config() + USERS``) and its
    files, started once for the tests that only ask it (the module is one pytest-xdist group)."""
    folder = tmp_path_factory.mktemp("served")
    files = WebFiles(folder / "web")
    files.write(files.tls_config() + USERS)
    started: list[BridgeProcess] = []
    try:
        yield _start(folder, started, files, files.client_context()), files
    finally:
        for bridge in started:
            bridge.stop()


def _prometheus_options(files: WebFiles, password: str = "alice-pw") -> dict[str, object]:
    return {
        "scheme": "https",
        "tls_config": {"ca_file": str(files.ca_file)},
        "basic_auth": {"username": "alice", "password": password},
    }


def test_prometheus_scrapes_over_https_with_basic_auth(
    tmp_path, bridge_processes, start_prometheus
):
    """Prometheus with scheme https, the CA and alice's password sees the target up, with
    exesdb_build_info naming this build and exesdb_start_time_seconds when the process began."""
    files = WebFiles(tmp_path / "web")
    files.write(files.tls_config() + USERS)
    before = time.time()
    bridge = _start(tmp_path, bridge_processes, files, files.client_context())
    started = time.time()
    prometheus = start_prometheus(
        [f"127.0.0.1:{bridge.port}"], scrape_options=_prometheus_options(files)
    )
    prometheus.wait_for('up{job="exesdb-bridge"} == 1')
    [info] = prometheus.wait_for("exesdb_build_info == 1")
    assert info["metric"]["version"] == __version__
    assert info["metric"]["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert info["metric"]["revision"]
    [start] = prometheus.wait_for("exesdb_start_time_seconds")
    assert before <= float(start["value"][1]) <= started


def test_without_credentials_or_with_a_wrong_password_the_bridge_answers_401(
    served, start_prometheus
):
    """No credentials or a wrong password: 401 with a Basic challenge; Prometheus sees it down."""
    bridge, files = served
    for headers in ({}, {"Authorization": basic("alice", "wrong")}):
        status, _ = http_get(bridge.url + "/metrics", headers, context=files.client_context())
        assert status == 401
    prometheus = start_prometheus(
        [f"127.0.0.1:{bridge.port}"], scrape_options=_prometheus_options(files, "wrong")
    )
    prometheus.wait_for('up{job="exesdb-bridge"} == 0')
    [target] = prometheus.api("targets")["activeTargets"]
    assert "401" in target["lastError"], target


def test_the_challenge_is_basic(served):
    """A 401 carries WWW-Authenticate: Basic (a browser or curl then asks for a password)."""
    bridge, files = served
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bridge.url + "/healthz", context=files.client_context(), timeout=5)
    with refused.value:  # it holds the connection
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"].startswith("Basic ")


def test_plain_http_to_the_tls_port_is_answered_400_as_go_answers_it(served, start_prometheus):
    """http:// to the TLS port gets Go's 400, whole, in curl and Python's http.client (as from
    an exporter-toolkit exporter, not curl's "Empty reply from server"), and Prometheus scraping
    without scheme https says so; https is served."""
    bridge, files = served
    curl = subprocess.run(
        [require_binary("curl"), "-sS", "-i", f"http://127.0.0.1:{bridge.port}/metrics"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout.startswith(b"HTTP/1.0 400 Bad Request\r\n"), curl.stdout
    assert curl.stdout.endswith(b"\r\n\r\n" + GO_PLAIN_HTTP_BODY), curl.stdout
    assert b"Connection: close\r\n" in curl.stdout
    connection = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=5)
    try:
        connection.request("GET", "/healthz", headers=ALICE)
        response = connection.getresponse()
        assert (response.status, response.read()) == (400, GO_PLAIN_HTTP_BODY)
        assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
    finally:
        connection.close()
    status, _ = http_get(bridge.url + "/healthz", ALICE, context=files.client_context())
    assert status == 200
    prometheus = start_prometheus(
        [f"127.0.0.1:{bridge.port}"],
        scrape_options={"basic_auth": {"username": "alice", "password": "alice-pw"}},
    )
    prometheus.wait_for('up{job="exesdb-bridge"} == 0')
    [target] = prometheus.api("targets")["activeTargets"]
    assert "server returned HTTP status 400 Bad Request" in target["lastError"], target


def _handshake_failures(bridge: BridgeProcess, kind: str) -> float:
    """exesdb_http_tls_handshake_failures_total{kind} as the bridge's /metrics gives it."""
    exposition = http_get(bridge.url + "/metrics", ALICE, context=bridge.context)[1].decode()
    found = re.search(
        rf'^exesdb_http_tls_handshake_failures_total\{{kind="{kind}"\}} (\S+)$', exposition, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_require_and_verify_client_cert(tmp_path, bridge_processes, start_prometheus):
    """No certificate: the connection is refused at once, the bridge counting a failed handshake
    of kind client_certificate; Prometheus with one from the client CA scrapes."""
    files = WebFiles(tmp_path / "web")
    files.write(files.tls_config(MUTUAL_TLS) + USERS)
    client = files.client_cert(name="prometheus")
    client.cert_chain_pems[0].write_to_path(str(files.folder / "client.pem"))
    client.private_key_pem.write_to_path(str(files.folder / "client.key"))
    bridge = _start(tmp_path, bridge_processes, files, files.client_context(client))
    assert _handshake_failures(bridge, "client_certificate") == 0
    # urllib wraps what fails while it sends (URLError); what fails on the answer comes as is.
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)) as refused:
        http_get(bridge.url + "/healthz", ALICE, context=files.client_context())
    # Closed or refused by TLS, not left to time out, nor a port nobody listens on.
    cause = getattr(refused.value, "reason", refused.value)
    assert isinstance(cause, ssl.SSLError | ConnectionError), repr(refused.value)
    assert not isinstance(cause, ConnectionRefusedError), repr(refused.value)
    wait_until(
        lambda: _handshake_failures(bridge, "client_certificate") == 1,
        10,
        "the refused handshake counted as the client certificate's",
    )
    options = _prometheus_options(files)
    options["tls_config"] = {
        "ca_file": str(files.ca_file),
        "cert_file": str(files.folder / "client.pem"),
        "key_file": str(files.folder / "client.key"),
    }
    prometheus = start_prometheus([f"127.0.0.1:{bridge.port}"], scrape_options=options)
    prometheus.wait_for('up{job="exesdb-bridge"} == 1')


def test_a_changed_file_takes_effect_and_a_broken_one_keeps_the_old(tmp_path, bridge_processes):
    """A new user is let in without a restart; a broken file is logged and changes nothing."""
    files = WebFiles(tmp_path / "web")
    files.write(files.tls_config() + USERS)
    bridge = _start(tmp_path, bridge_processes, files, files.client_context())
    bob = {"Authorization": basic("bob", "bob-pw")}
    assert http_get(bridge.url + "/healthz", bob, context=files.client_context())[0] == 401
    files.write(files.tls_config() + USERS + f"  bob: {bcrypt_hash('bob-pw')}\n")
    wait_until(
        lambda: http_get(bridge.url + "/healthz", bob, context=files.client_context())[0] == 200,
        10,
        "bob let in",
    )
    files.write(files.tls_config() + USERS + "  bob: [\n")
    # Requests are when the file is looked at (at most once a second).
    wait_until(
        lambda: (
            b"exesdb_web_config_last_reload_successful 0.0"
            in http_get(bridge.url + "/metrics", ALICE, context=files.client_context())[1]
        ),
        10,
        "the reload gauge at 0",
    )
    # The old users, not none: bob is let in and a request without credentials is not.
    assert http_get(bridge.url + "/healthz", bob, context=files.client_context())[0] == 200
    assert http_get(bridge.url + "/healthz", {}, context=files.client_context())[0] == 401
    # Logged once per broken version (tests/webconfig/test_serving.py looks several times).
    assert bridge.log().count("not reloaded") == 1


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_an_unknown_key_stops_start_up_with_exit_2_naming_it(tmp_path, command):
    """exesdb-bridge run and check-config exit 2 and name the unknown key and the variable."""
    files = WebFiles(tmp_path / "web")
    path = files.write(files.tls_config("client_auth: RequireAndVerifyClientCert"))
    # run in a process of its own (it serves once it starts); check-config in this one.
    completed = (run_bridge if command == "run" else run_in_process)(
        command,
        env={
            "EXESDB_WEB_CONFIG_FILE": str(path),
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            "EXESDB_STATE_DIR": str(tmp_path / "state"),
        },
    )
    assert completed.returncode == 2, completed.stderr
    assert "EXESDB_WEB_CONFIG_FILE" in completed.stderr
    assert "tls_server_config.client_auth: unknown key" in completed.stderr


def test_check_config_summarises_the_file_without_secrets(tmp_path):
    """check-config shows the path, TLS on, the client-auth type and the user count, no hash."""
    files = WebFiles(tmp_path / "web")
    path = files.write(files.tls_config(MUTUAL_TLS) + USERS)
    completed = run_in_process("check-config", env={"EXESDB_WEB_CONFIG_FILE": str(path)})
    assert completed.returncode == 0, completed.stderr
    [line] = [line for line in completed.stdout.splitlines() if "EXESDB_WEB_CONFIG_FILE" in line]
    assert str(path) in line
    assert "TLS on" in line
    assert "RequireAndVerifyClientCert" in line
    assert "1 user" in line
    assert "$2b$" not in completed.stdout
    assert "alice" not in completed.stdout


def test_the_kubernetes_web_config_as_the_deployment_page_lays_it_out_serves_probes_and_scrapes(
    tmp_path, bridge_processes, start_prometheus
):
    """The deployment page's Kubernetes web config, made as it says (its openssl line, the files
    its Secret holds, mounted where its patch says): the bridge serves it, the probes' commands
    with the patch's variables are healthy and ready, a command run in the pod as the page says
    (``alerts list``, trusting the web config's certificate) reaches it, and Prometheus
    scraping as its ServiceMonitor says (https, the Secret's certificate for its serverName, basic
    auth) has the target up."""
    text = section(page("deployment"), "Kubernetes and systemd")
    [openssl] = [
        line
        for block in fenced(text, "sh")
        for line in block.splitlines()
        if line.startswith("openssl req ")
    ]
    (tmp_path / "deploy/kubernetes/web").mkdir(parents=True)
    subprocess.run(openssl, shell=True, cwd=tmp_path, check=True, capture_output=True)
    folder = tmp_path / "deploy/kubernetes/web"
    [patch] = [block for block in fenced(text, "yaml") if block.startswith("apiVersion: apps/")]
    statefulset, monitor = yaml.safe_load_all(patch)
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    [mount] = container["volumeMounts"]
    # The Secret's files, as the page names them: two users, each its password file.
    passwords = {"probe": "probe-pw", "prometheus": "prometheus-pw"}
    users = "".join(f"  {user}: {bcrypt_hash(pw)}\n" for user, pw in passwords.items())
    (folder / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n{users}"
    )
    (folder / "probe-password").write_text("probe-pw\n")
    (folder / "prometheus-username").write_text("prometheus")
    (folder / "prometheus-password").write_text("prometheus-pw\n")
    env = {
        item["name"]: item["value"].replace(mount["mountPath"], str(folder))
        for item in container["env"]
    }
    context = ssl.create_default_context(cafile=str(folder / "server.crt"))
    context.check_hostname = False  # asked at 127.0.0.1; the name is Prometheus's to check
    bridge = BridgeProcess(
        state_dir=tmp_path / "state",
        context=context,
        headers={"Authorization": basic("prometheus", "prometheus-pw")},
        **env,
    )
    bridge_processes.append(bridge)
    bridge.start(tmp_path)
    for probe in (["healthcheck"], ["healthcheck", "--ready"]):
        done = subprocess.run(
            [sys.executable, "-m", "bridge", *probe],
            env=bridge.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    # The page's command in a pod: --user the probe's, the web config's certificate trusted.
    [in_pod] = re.findall(r"`kubectl exec -it\s+exesdb-bridge-0 -- (exesdb-bridge [^`]+)`", text)
    command = in_pod.replace(mount["mountPath"], str(folder)).split()
    assert command[-2:] == ["--user", "probe"]
    listed = subprocess.run(
        [sys.executable, "-m", "bridge", *command[1:-1], "probe:probe-pw"],
        env=bridge.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    [endpoint] = monitor["spec"]["endpoints"]
    secret_file = {
        "ca": folder / endpoint["tlsConfig"]["ca"]["secret"]["key"],
        "username": folder / endpoint["basicAuth"]["username"]["secret"]["key"],
        "password": folder / endpoint["basicAuth"]["password"]["secret"]["key"],
    }
    options = {
        "scheme": endpoint["scheme"],
        "tls_config": {
            "ca_file": str(secret_file["ca"]),
            "server_name": endpoint["tlsConfig"]["serverName"],
        },
        "basic_auth": {
            "username": secret_file["username"].read_text(),
            "password_file": str(secret_file["password"]),
        },
    }
    prometheus = start_prometheus(
        [f"127.0.0.1:{bridge.port}"], metrics_path=endpoint["path"], scrape_options=options
    )
    prometheus.wait_for('up{job="exesdb-bridge"} == 1')
