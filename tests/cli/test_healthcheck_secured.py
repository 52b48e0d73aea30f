"""``exesdb-bridge healthcheck`` against a bridge serving TLS with client certificates and basic
auth: healthy with what it needs, one line naming what is missing or refused."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from bridge.cli.healthcheck import READINESS, probe
from bridge.headers import REALM
from tests.cli.healthcheck_helpers import PASSWORD, Server, healthcheck, secured_bridge
from tests.support import FifoReleaser, run_command, withhold
from tests.webconfig.files import WebFiles

# One pytest-xdist worker runs the module: the TLS bridge (a module fixture) starts once.
pytestmark = pytest.mark.xdist_group("secured-bridge")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    """A bridge process serving HTTPS, requiring a client certificate and basic auth, and the
    files a probe needs: (bridge, environment for a working healthcheck, files)."""
    folder = tmp_path_factory.mktemp("secured")
    bridge, env = secured_bridge(folder, PASSWORD + "\n")
    bridge.start(folder)
    try:
        yield bridge, env, folder
    finally:
        bridge.stop()


def test_command_is_healthy_over_https_with_client_certificate_and_basic_auth(secured) -> None:
    """With the TLS, client certificate and basic auth of the web config, https answers: exit 0."""
    bridge, env, _ = secured
    completed = healthcheck(**env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"healthy: https://127.0.0.1:{bridge.port}/healthz answered 200\n"
    assert PASSWORD not in completed.stdout + completed.stderr


@pytest.mark.parametrize("ready", [False, True], ids=["healthcheck", "healthcheck --ready"])
def test_a_probe_that_may_not_read_the_key_or_client_ca_is_healthy_without_a_refusal(
    secured, tmp_path: Path, ready: bool
) -> None:
    """A probe run as another user than the bridge's, who may not read its key and client CA
    (0600, the bridge's user's), leaves them unread as a client command does: healthy (ready)
    with no refusal in its line, the file the bridge serves being good."""
    bridge, env, folder = secured
    for name in ("server.key", "client-ca.pem"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    web = (folder / "web.yml").read_text()
    web = web.replace("cert_file: server.pem", f"cert_file: {folder / 'server.pem'}")
    web = web.replace("key_file: server.key", f"key_file: {tmp_path / 'server.key'}")
    web = web.replace("client_ca_file: client-ca.pem", f"client_ca_file: {tmp_path}/client-ca.pem")
    (tmp_path / "web.yml").write_text(web)
    prefix = withhold(tmp_path / "server.key")
    withhold(tmp_path / "client-ca.pem")
    args = ["--ready"] if ready else []
    completed = run_command(
        [*prefix, sys.executable, "-m", "bridge", "healthcheck", *args],
        {**env, "EXESDB_WEB_CONFIG_FILE": str(tmp_path / "web.yml")},
    )
    assert completed.returncode == 0, completed.stderr
    good, path = ("ready", "readyz") if ready else ("healthy", "healthz")
    assert completed.stdout == f"{good}: https://127.0.0.1:{bridge.port}/{path} answered 200\n"


async def test_the_bridge_s_401_says_why_in_publish_s_words(server: Server) -> None:
    """A 401 in the bridge's realm says in the line why, as publish says it: credentials sent
    are not among its basic_auth_users, or none were sent and which settings send them; a 401
    of another server (no such realm) is said as its status alone (above)."""

    async def bridge_refusing(request: web.Request) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})

    await server.start(bridge_refusing)
    sent = await asyncio.to_thread(probe, server.url(), credentials=("ops", "wrong"))
    assert sent.line == (
        f"unhealthy: {server.url()} answered 401 Unauthorized: the user and password given"
        " (EXESDB_HEALTHCHECK_USERNAME, EXESDB_HEALTHCHECK_PASSWORD_FILE) are not one of the"
        " bridge's basic_auth_users"
    )
    unsent = await asyncio.to_thread(probe, server.url(), endpoint=READINESS)
    assert unsent.line == (
        f"not ready: {server.url()} answered 401 Unauthorized: the bridge asks for one of its"
        " basic_auth_users: set EXESDB_HEALTHCHECK_USERNAME and EXESDB_HEALTHCHECK_PASSWORD_FILE"
    )
    assert "wrong" not in sent.line


@pytest.mark.parametrize(
    ("unset", "said"),
    [
        (
            ["EXESDB_HEALTHCHECK_USERNAME", "EXESDB_HEALTHCHECK_PASSWORD_FILE"],
            "set EXESDB_HEALTHCHECK_USERNAME and EXESDB_HEALTHCHECK_PASSWORD_FILE",
        ),
        (
            ["EXESDB_HEALTHCHECK_USERNAME"],
            "set EXESDB_HEALTHCHECK_USERNAME too, beside EXESDB_HEALTHCHECK_PASSWORD_FILE",
        ),
        (
            ["EXESDB_HEALTHCHECK_PASSWORD_FILE"],
            "set EXESDB_HEALTHCHECK_PASSWORD_FILE too, beside EXESDB_HEALTHCHECK_USERNAME",
        ),
    ],
)
def test_command_without_basic_auth_settings_says_which_to_set(
    secured, unset: list[str], said: str
) -> None:
    """Basic auth asked for but no user or password file: exit 1 naming the settings missing,
    the one set said set (asked to set both, a person looks at the one set)."""
    env = dict(secured[1])
    for name in unset:
        del env[name]
    completed = healthcheck(**env)
    assert completed.returncode == 1
    assert completed.stderr == (
        f"unhealthy: cannot probe: the web config asks for basic auth: {said}\n"
    )


@pytest.mark.parametrize(
    ("asked", "said"), [([], "unhealthy: {}/healthz"), (["--ready"], "not ready: {}/readyz")]
)
def test_command_without_the_web_config_says_the_port_speaks_tls(
    secured, asked: list[str], said: str
) -> None:
    """Run without EXESDB_WEB_CONFIG_FILE against the bridge's TLS port, the probe (--ready too)
    asks in plain HTTP and is answered 400: exit 1, its one line saying the port speaks TLS and
    which setting makes it ask over https, not the status alone."""
    bridge, env, _ = secured
    completed = healthcheck(*asked, EXESDB_HTTP_ADDR=env["EXESDB_HTTP_ADDR"])
    assert completed.returncode == 1
    assert completed.stderr == (
        said.format(f"http://127.0.0.1:{bridge.port}")
        + " answered 400 Bad Request: this port speaks TLS: set EXESDB_WEB_CONFIG_FILE to the"
        " web config the bridge runs with, and the probe asks over https\n"
    )


def test_command_with_a_wrong_password_is_unhealthy_with_401(secured) -> None:
    """A wrong password in the password file: the bridge answers 401 and the probe exits 1, its
    one line saying why as publish says it (the user and password are not among the bridge's
    basic_auth_users), naming the settings, never the password."""
    bridge, env, folder = secured
    wrong = folder / "wrong-password"
    wrong.write_text("not-it")
    completed = healthcheck(**{**env, "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(wrong)})
    assert completed.returncode == 1
    assert completed.stderr == (
        f"unhealthy: https://127.0.0.1:{bridge.port}/healthz answered 401 Unauthorized: the user"
        " and password given (EXESDB_HEALTHCHECK_USERNAME, EXESDB_HEALTHCHECK_PASSWORD_FILE) are"
        " not one of the bridge's basic_auth_users\n"
    )


def test_command_without_a_client_certificate_says_which_to_set(secured) -> None:
    """RequireAndVerifyClientCert and no probe certificate: exit 1 naming the settings."""
    env = dict(secured[1])
    del env["EXESDB_HEALTHCHECK_CERT_FILE"], env["EXESDB_HEALTHCHECK_KEY_FILE"]
    completed = healthcheck(**env)
    assert completed.returncode == 1
    assert "set EXESDB_HEALTHCHECK_CERT_FILE and EXESDB_HEALTHCHECK_KEY_FILE" in completed.stderr


def test_command_with_a_certificate_of_another_ca_is_refused_by_the_server(secured) -> None:
    """A client certificate the server's client CA did not sign fails the handshake: exit 1."""
    _, env, folder = secured
    stranger = WebFiles(folder / "stranger").client_cert(name="stranger")
    stranger.cert_chain_pems[0].write_to_path(str(folder / "stranger.pem"))
    stranger.private_key_pem.write_to_path(str(folder / "stranger.key"))
    completed = healthcheck(
        **{
            **env,
            "EXESDB_HEALTHCHECK_CERT_FILE": str(folder / "stranger.pem"),
            "EXESDB_HEALTHCHECK_KEY_FILE": str(folder / "stranger.key"),
        }
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("unhealthy: ")
    assert "healthy: https" not in completed.stdout


@pytest.mark.parametrize(
    ("variable", "kind", "said"),
    [
        ("PASSWORD", "fifo", "cannot read {name} {path}: a FIFO (named pipe), not a regular file"),
        ("CERT", "fifo", "cannot load {name} {path}: a FIFO (named pipe), not a regular file"),
        ("KEY", "fifo", "cannot load {name} {path}: a FIFO (named pipe), not a regular file"),
        ("PASSWORD", "device", "cannot read {name} {path}: a character device, not a regular file"),
        ("KEY", "device", "cannot load {name} {path}: a character device, not a regular file"),
        (
            "PASSWORD",
            "large",
            "cannot read {name} {path}: larger than 64 KiB, the most this file may hold: is it"
            " the right file?",
        ),
        (
            "CERT",
            "large",
            "cannot load {name} {path}: larger than 1024 KiB, the most this file may hold: is it"
            " the right file?",
        ),
    ],
)
def test_a_probe_file_that_is_a_fifo_a_device_or_too_large_is_refused_within_the_timeout(
    secured, tmp_path: Path, variable: str, kind: str, said: str
) -> None:
    """The probe's password, certificate or key file that is a FIFO or a device is refused
    unopened, and one over the most such a file holds (64 KiB for a password, 1 MiB for a
    certificate or key) unread, the line naming the variable and why, within --timeout: a FIFO
    held the probe past its timeout until a writer came, and ``/dev/zero`` as the password took
    8 GB in 15 s."""
    env = dict(secured[1])
    name = f"EXESDB_HEALTHCHECK_{variable}_FILE"
    path = tmp_path / "file"
    if kind == "device":
        path = Path("/dev/null")
    elif kind == "large":
        path.write_bytes(b"#" * ((1 << 20) + 1))
    # A reader still waiting after the probe's timeout is let go, so the test fails, not hangs.
    # (10 s: the command's start, on a busy machine, counts too.)
    fifo = FifoReleaser(tmp_path / "file", after=12.0) if kind == "fifo" else None
    with fifo or contextlib.nullcontext():
        began = time.monotonic()
        completed = healthcheck("--timeout", "10", **{**env, name: str(path)})
        took = time.monotonic() - began
    assert completed.returncode == 1
    assert completed.stderr == f"unhealthy: cannot probe: {said.format(name=name, path=path)}\n"
    assert took < 10, f"took {took:.1f} s"


def test_ready_command_exits_0_against_a_ready_bridge_over_https(secured) -> None:
    """--ready asks /readyz with the same TLS, client certificate and basic auth as the probe of
    /healthz: a ready bridge answers 200, exit 0, one line on stdout."""
    bridge, env, _ = secured
    completed = healthcheck("--ready", **env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"ready: https://127.0.0.1:{bridge.port}/readyz answered 200\n"
    assert PASSWORD not in completed.stdout + completed.stderr
