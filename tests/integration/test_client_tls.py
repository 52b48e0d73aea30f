"""The client commands against a bridge whose web config serves TLS and asks for basic auth."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import ALERT_FIELDS, cli
from tests.support import ADMIN_TOKEN, TEST_SECRET, BridgeProcess, run_command, withhold
from tests.webconfig.files import WebFiles, basic, bcrypt_hash

# One pytest-xdist worker runs the module: the secured bridge (a module fixture) starts once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("client-tls-bridge")]

USERS = f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw')}\n"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BridgeProcess, Path]]:
    """A bridge with TLS (a throwaway CA) and basic auth for alice, ingest on; the CA file.
    The module's tests share it (only one publishes an alert); its own health is broadcast
    hourly, so not while they run: only what they send moves the counts they read."""
    folder = tmp_path_factory.mktemp("secured")
    files = WebFiles(folder / "web")
    files.write(files.tls_config() + USERS)
    process = BridgeProcess(
        state_dir=folder / "state",
        context=files.client_context(),
        headers={"Authorization": basic("alice", "alice-pw")},
        EXESDB_WEB_CONFIG_FILE=str(files.folder / "web.yml"),
        EXESDB_INGEST="true",
        EXESDB_HEALTH_BROADCAST_INTERVAL=str(3_600_000),
    )
    process.start(folder)
    try:
        yield process, files.ca_file
    finally:
        process.stop()


def _env(process: BridgeProcess) -> dict[str, Any]:
    """What a shell beside that bridge has: its address and web config, the key and token."""
    return {
        "EXESDB_HTTP_ADDR": process.env["EXESDB_HTTP_ADDR"],
        "EXESDB_WEB_CONFIG_FILE": process.env["EXESDB_WEB_CONFIG_FILE"],
        "SECRET_KEY_BASE": TEST_SECRET,
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
    }


def test_publish_and_alerts_work_over_https_with_basic_auth(
    secured: tuple[BridgeProcess, Path],
) -> None:
    """With --cacert and --user, publish and alerts list reach the https address the web config
    implies; the admin token then travels in X-ExESDB-Admin-Token."""
    process, ca = secured
    options = ["--cacert", str(ca), "--user", "alice:alice-pw"]
    published = cli(
        "publish", "system_alert", *ALERT_FIELDS, "-f", "alert_id=tls1", *options,
        **_env(process),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {"accepted": 1}
    listed = cli("alerts", "list", "--json", *options, **_env(process))
    assert listed.returncode == 0, listed.stderr
    assert [a["alert_id"] for a in json.loads(listed.stdout)["alerts"]] == ["tls1"]


def test_the_start_up_line_names_https_urls_when_tls_is_on(
    secured: tuple[BridgeProcess, Path],
) -> None:
    """With TLS on, the start-up's last line names the https URLs to open."""
    process, _ = secured
    assert process.url.startswith("https://")
    assert f"open {process.url} (the status page; /metrics for Prometheus)" in process.log()


def test_without_the_ca_or_the_password_the_command_says_why(
    secured: tuple[BridgeProcess, Path],
) -> None:
    """A certificate untrusted at a URL given names --cacert; a missing password is the
    bridge's 401."""
    process, ca = secured
    options = ["--url", process.url, "--user", "alice:alice-pw"]
    untrusted = cli("alerts", "list", *options, **_env(process))
    assert untrusted.returncode == 1
    assert f"TLS with {process.url} failed" in untrusted.stderr
    assert "--cacert" in untrusted.stderr
    unauthorised = cli("alerts", "list", "--cacert", str(ca), **_env(process))
    assert unauthorised.returncode == 1
    assert "401" in unauthorised.stderr


def test_the_address_of_its_web_config_is_asked_trusting_its_own_certificate(
    secured: tuple[BridgeProcess, Path],
) -> None:
    """Found through EXESDB_HTTP_ADDR, the bridge is asked trusting the certificate its web
    config names, as the health check trusts it: no --cacert for a CA of one's own."""
    process, _ = secured
    metric = ["-f", "metric_name=depth", "-f", "value=1", "-f", "unit=m", "-f", "component=c"]
    for command in (["alerts", "list", "--json"], ["publish", "performance_metric", *metric]):
        told = cli(*command, "--user", "alice:alice-pw", **_env(process))
        assert told.returncode == 0, told.stderr


def test_an_operator_who_may_not_read_the_key_reaches_the_bridge(
    secured: tuple[BridgeProcess, Path], tmp_path: Path
) -> None:
    """Found through EXESDB_HTTP_ADDR with a web config whose key is the bridge's user's alone
    (0600), which the operator may not read, the bridge is asked trusting the certificate: the
    key is not read, a client has no use for it."""
    process, _ = secured
    folder = Path(process.env["EXESDB_WEB_CONFIG_FILE"]).parent
    (tmp_path / "server.key").write_bytes((folder / "server.key").read_bytes())
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {folder / 'server.pem'}\n"
        f"  key_file: {tmp_path / 'server.key'}\n{USERS}"
    )
    prefix = withhold(tmp_path / "server.key")
    env = _env(process) | {"EXESDB_WEB_CONFIG_FILE": str(web)}
    told = run_command(
        [*prefix, sys.executable, "-m", "bridge", "alerts", "list", "--user", "alice:alice-pw"],
        env,
    )
    assert told.returncode == 0, told.stderr


def test_a_web_config_of_another_certificate_is_said_to_be_so(
    secured: tuple[BridgeProcess, Path], tmp_path: Path
) -> None:
    """A web config whose certificate is not the one served at EXESDB_HTTP_ADDR is named as
    such, with --cacert to trust a CA instead."""
    process, _ = secured
    other = WebFiles(tmp_path / "other")
    env = _env(process) | {"EXESDB_WEB_CONFIG_FILE": str(other.write(other.tls_config()))}
    told = cli("alerts", "list", "--user", "alice:alice-pw", **env)
    assert told.returncode == 1
    assert told.stderr.startswith(f"exesdb-bridge: TLS with {process.url} failed: "), told.stderr
    assert told.stderr.endswith(
        "(it serves another certificate than EXESDB_WEB_CONFIG_FILE's, the one trusted here: is"
        " that the web config of the bridge at this address? --cacert names a CA to trust"
        " instead)\n"
    ), told.stderr


def test_a_basic_auth_refusal_says_what_to_send(secured: tuple[BridgeProcess, Path]) -> None:
    """The web config's 401 to alerts and tail says, in one sentence, that --user sends basic
    auth, or, with a wrong password given, that the bridge has no such user and password (never
    the password)."""
    process, ca = secured
    for command in (["alerts", "list"], ["tail", "--count", "1"]):
        missing = cli(*command, "--cacert", str(ca), **_env(process))
        assert missing.returncode == 1
        assert missing.stderr.endswith(
            " answered 401: the bridge asks for one of its basic_auth_users:"
            " --user USER[:PASSWORD] sends it\n"
        )
        wrong = cli(*command, "--cacert", str(ca), "--user", "alice:nope-pw", **_env(process))
        assert wrong.returncode == 1
        assert wrong.stderr.endswith(
            " answered 401: the user and password given are not one of the bridge's"
            " basic_auth_users\n"
        )
        assert "nope-pw" not in wrong.stderr


def test_plain_http_to_the_tls_port_says_to_use_https(secured: tuple[BridgeProcess, Path]) -> None:
    """An http:// URL for the TLS port gets the listener's 400 (Go's words); alerts, tail and
    publish say that the port speaks TLS and to use https://, not that no bridge is there."""
    process, ca = secured
    plain = process.url.replace("https://", "http://")
    for command in (
        ["alerts", "list"],
        ["tail", "--count", "1"],
        ["publish", "system_alert", *ALERT_FIELDS],
    ):
        told = cli(*command, "--url", plain, "--cacert", str(ca), **_env(process))
        assert told.returncode == 1, command
        assert told.stderr.startswith(f"exesdb-bridge: {plain}/"), told.stderr
        assert told.stderr.endswith(
            " answered 400: this port speaks TLS: use https:// (and --cacert for a private CA)\n"
        ), told.stderr


def test_the_tls_port_asked_at_its_address_without_the_web_config_names_that_setting(
    secured: tuple[BridgeProcess, Path],
) -> None:
    """In a shell with the bridge's EXESDB_HTTP_ADDR but not its EXESDB_WEB_CONFIG_FILE, the
    commands ask the TLS port in plain HTTP: the line says to set that variable (which makes
    them ask over https, trusting its certificate), not to type an https:// no URL holds."""
    process, _ = secured
    env = {**_env(process), "EXESDB_WEB_CONFIG_FILE": ""}
    plain = process.url.replace("https://", "http://")
    for command in (
        ["alerts", "list"],
        ["tail", "--count", "1"],
        ["publish", "system_alert", *ALERT_FIELDS],
    ):
        told = cli(*command, "--user", "alice:alice-pw", **env)
        assert told.returncode == 1, command
        assert told.stderr.startswith(f"exesdb-bridge: {plain}/"), told.stderr
        assert told.stderr.endswith(
            " answered 400: this port speaks TLS: set EXESDB_WEB_CONFIG_FILE to the web config"
            " the bridge runs with (then https, its certificate trusted)\n"
        ), told.stderr
