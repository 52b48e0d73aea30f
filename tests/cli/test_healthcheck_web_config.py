"""``exesdb-bridge healthcheck`` and the web config file: a file it cannot use named with why, one
the bridge refused while it serves the old one told as healthy."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.http import healthz
from tests.cli.healthcheck_helpers import PASSWORD, healthcheck, rotate_badly
from tests.support import (
    FifoReleaser,
    ThreadedBridge,
    free_port,
    http_get,
    run_command,
    wait_until,
    withhold,
)
from tests.webconfig.files import WebFiles, basic, bcrypt_hash


def test_a_web_config_whose_certificate_is_a_fifo_is_told_within_the_timeout(
    tmp_path: Path,
) -> None:
    """A web config whose server certificate file is a FIFO is refused, and the probe's line
    says so within --timeout: the probe read the certificate to pin it, and waited on the FIFO
    for a writer past its timeout (15 s and more against 2)."""
    files = WebFiles(tmp_path)
    files.write(files.tls_config())
    # A reader still waiting after the probe's timeout is let go, so the test fails, not hangs.
    # (10 s: the command's start, on a busy machine, counts too.)
    with FifoReleaser(tmp_path / "server.pem", after=12.0) as fifo:
        began = time.monotonic()
        completed = healthcheck(
            "--timeout",
            "10",
            EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
            EXESDB_WEB_CONFIG_FILE=str(tmp_path / "web.yml"),
        )
        took = time.monotonic() - began
    assert (completed.returncode, fifo.released) == (1, 0)
    assert (
        f"cannot trust the server's cert_file {fifo.path}: a FIFO (named pipe), not a regular"
        " file)" in completed.stderr
    )
    assert took < 10, f"took {took:.1f} s"


@pytest.mark.parametrize("fault", ["unreadable", "no certificate"])
def test_a_web_config_certificate_the_probe_cannot_use_is_named_with_why(
    tmp_path: Path, fault: str
) -> None:
    """A web config whose server certificate file the probe may not read, or which holds no
    certificate (the key given as cert_file), is named in the probe's line with why, in the
    system's or the bridge's words (not a Python tuple), as a bad file is; exit 1, nothing of
    the key shown."""
    files = WebFiles(tmp_path)
    prefix: list[str] = []
    cert = tmp_path / "server.pem"
    if fault == "unreadable":
        files.write(files.tls_config())
        prefix = withhold(cert)
        why, refusal = "Permission denied", f"cannot read {cert}: Permission denied"
    else:
        cert = tmp_path / "server.key"
        files.write("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n")
        why = f"no PEM certificate in {cert}"
        refusal = f"cannot load {cert} with key_file {cert}: {cert} holds no PEM certificate"
    completed = run_command(
        [*prefix, sys.executable, "-m", "bridge", "healthcheck"],
        {
            "EXESDB_HTTP_ADDR": f"127.0.0.1:{free_port()}",
            "EXESDB_WEB_CONFIG_FILE": str(tmp_path / "web.yml"),
        },
    )
    assert completed.returncode == 1, completed.stderr
    assert f"(cannot trust the server's cert_file {cert}: {why});" in completed.stderr
    assert (
        f"the web config file is bad: {tmp_path / 'web.yml'}: tls_server_config.cert_file:"
        f" {refusal}"
    ) in completed.stderr
    key = (tmp_path / "server.key").read_text().splitlines()[1]
    assert key not in completed.stdout + completed.stderr


OTHER_HASH = bcrypt_hash("other")


@pytest.mark.parametrize(
    ("bad", "unshown"),
    [
        pytest.param("  other: not-a-hash\n", "not-a-hash", id="bad-hash"),
        pytest.param(f"  probe: '{OTHER_HASH}'\n", OTHER_HASH, id="user-twice"),
        pytest.param("colour: vermilion\n", "vermilion", id="unknown-key"),
    ],
)
def test_a_bad_new_web_config_leaves_the_bridge_healthy_while_it_serves_the_old_one(
    tmp_path: Path, bad: str, unshown: str
) -> None:
    """A bad file written over a good one is refused by the running bridge, which keeps serving
    the old version: the probe still asks as the file's own TLS section says and exits 0, saying
    the file is refused, so a liveness probe does not restart a serving bridge into a start-up
    that fails (exit 2) on that file; the bad value is not shown."""
    files = WebFiles(tmp_path)
    good = files.tls_config() + f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n"
    path = files.write(good)
    port, _, completed = probe_a_refused_rewrite(tmp_path, files, path, good + bad)
    assert completed.returncode == 0, completed.stderr
    url = f"https://127.0.0.1:{port}/healthz"
    assert completed.stdout.startswith(
        f"healthy: {url} answered 200; the web config file is refused (the bridge serves the "
        f"version before it): {path}: "
    )
    assert unshown not in completed.stdout  # a value in basic_auth_users may be a secret


def probe_a_refused_rewrite(
    folder: Path, files: WebFiles, path: Path, rewrite: str
) -> tuple[int, dict[str, str], subprocess.CompletedProcess[str]]:
    """Start a bridge (in this process: what is tested is the probe) serving the web config
    file ``path`` of ``files``, whose basic auth knows ``probe``; write ``rewrite`` over the file
    and, once the bridge refused it, run the probe as ``probe``; the bridge is stopped after.
    Its port, the probe's environment and what the probe said."""
    (folder / "password").write_text(PASSWORD)
    with ThreadedBridge(
        EXESDB_WEB_CONFIG_FILE=str(path), EXESDB_STATE_DIR=str(folder / "state")
    ) as bridge:
        env = {
            "EXESDB_HTTP_ADDR": f"127.0.0.1:{bridge.port}",
            "EXESDB_WEB_CONFIG_FILE": str(path),
            "EXESDB_HEALTHCHECK_USERNAME": "probe",
            "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(folder / "password"),
        }
        files.write(rewrite)
        wait_for_refusal(bridge.port, files)
        return bridge.port, env, healthcheck(**env)


def wait_for_refusal(port: int, files: WebFiles) -> None:
    """Until the bridge on ``port`` has refused its changed web config file (its reload gauge at
    0, set as it logs "not reloaded") and still serves the old one.

    A request makes the bridge look at the file (at most once a second)."""
    login = {"Authorization": basic("probe", PASSWORD)}

    def refused() -> bool:
        status, exposition = http_get(
            f"https://127.0.0.1:{port}/metrics", login, context=files.client_context()
        )
        return status == 200 and b"exesdb_web_config_last_reload_successful 0.0" in exposition

    wait_until(refused, 15, "the refusal")


@pytest.mark.parametrize("how", ["mismatched-key", "missing-key-file", "missing-cert-file"])
def test_a_bad_certificate_rotation_leaves_a_serving_bridge_healthy_saying_so(
    tmp_path: Path, how: str
) -> None:
    """A refused file whose certificate is not the one served (or is not there): the probe asks
    again without verifying the certificate and without credentials, exits 0 on the bridge's
    answer (401: basic auth asked) saying so; once the bridge stops, the probe exits 1."""
    files = WebFiles(tmp_path)
    users = f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n"
    path = files.write(files.tls_config() + users)
    port, env, completed = probe_a_refused_rewrite(
        tmp_path, files, path, rotate_badly(files, how) + users
    )
    assert completed.returncode == 0, completed.stderr
    url = f"https://127.0.0.1:{port}/healthz"
    assert completed.stdout.startswith(
        f"healthy: {url} answered 401, its certificate not verified and no credentials sent ("
    )
    assert (
        f"; the web config file is refused (the bridge serves the version before it): {path}: "
        in completed.stdout
    )
    assert completed.stdout.count("\n") == 1
    stopped = healthcheck(**env)
    assert stopped.returncode == 1
    assert stopped.stderr.startswith(f"unhealthy: cannot connect to {url}: Connection refused")
    assert f"; the web config file is bad: {path}: tls_server_config" in stopped.stderr


def test_the_bridge_answers_what_the_probe_takes_for_it() -> None:
    """The probe knows the bridge by its /healthz body (and by its realm, which a bridge asking
    for basic auth answers in the bad rotation test): the bridge's /healthz answers that body."""
    response = asyncio.run(healthz(None))  # type: ignore[arg-type]  # the request is not read
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == {"status": "ok"}  # as docs/http-api.md gives it


def test_a_bad_web_config_with_nothing_listening_is_told_as_bad_not_as_served_around(
    tmp_path: Path,
) -> None:
    """A bad file and nothing answering (a bridge stopping on that file at start-up): exit 1,
    the line calling the file bad, not saying the bridge serves the version before it."""
    path = WebFiles(tmp_path).write("basic_auth_users:\n  other: not-a-hash\n")
    port = free_port()
    completed = healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{port}", EXESDB_WEB_CONFIG_FILE=str(path))
    assert completed.returncode == 1
    assert completed.stderr.startswith(
        f"unhealthy: cannot connect to http://127.0.0.1:{port}/healthz: Connection refused; "
        f"the web config file is bad: {path}: basic_auth_users"
    )
    assert "version before it" not in completed.stderr


def test_a_web_config_whose_tls_section_is_bad_leaves_nothing_to_probe_with(
    tmp_path: Path,
) -> None:
    """When the file's TLS section itself is bad there is no certificate to trust: exit 1,
    naming the problem."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config("min_version: TLS99"))
    completed = healthcheck(EXESDB_HTTP_ADDR="127.0.0.1:9", EXESDB_WEB_CONFIG_FILE=str(path))
    assert completed.returncode == 1
    assert completed.stderr.startswith(
        f"unhealthy: bad configuration: EXESDB_WEB_CONFIG_FILE: {path}: "
    )
    assert "tls_server_config.min_version" in completed.stderr


# A probe's target made in a process of its own, counting how often it opens the web config file
# (an audit hook sees every open) and hands YAML text to PyYAML (every reading starts a Reader).
_COUNTED_TARGET = """
import sys, yaml.reader
from bridge.cli.healthcheck import target
from bridge.probe_settings import ProbeSettings
path = sys.argv[1]
opened, parsed = [], []
sys.addaudithook(lambda event, args: event == "open" and args[0] == path and opened.append(1))
def counting(self, stream, _original=yaml.reader.Reader.__init__):
    if stream:
        parsed.append(1)
    _original(self, stream)
yaml.reader.Reader.__init__ = counting
where = target(ProbeSettings.from_environ(
    {"EXESDB_HTTP_ADDR": "127.0.0.1:9", "EXESDB_WEB_CONFIG_FILE": path}
))
print(len(opened), len(parsed), bool(where.refusal))
"""


def test_a_refused_web_config_is_read_once_and_its_yaml_parsed_once(tmp_path: Path) -> None:
    """The probe of a refused file (a bad key beside a good TLS section) opens it once, and gives
    its text to PyYAML twice, as the bridge's own reading does (loaded, and composed to find
    keys given twice): the refusal and the TLS section to probe with come from that one reading."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config() + "colour: vermilion\n")
    completed = run_command([sys.executable, "-c", _COUNTED_TARGET, str(path)])
    assert completed.stdout.split() == ["1", "2", "True"], completed.stderr
