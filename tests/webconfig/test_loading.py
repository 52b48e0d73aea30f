"""The web config file is read once at start: the checks, the warnings, check-config and the
server's first version share that read; only the reloader reads the file again.

The opens are counted as the kernel reports them (``FileOpens``, inotify), patching nothing.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

import pytest

from bridge.webconfig.live import LiveWebConfig
from bridge.webconfig.loading import judge
from tests.support import (
    ADMIN_TOKEN,
    TEST_SECRET,
    FileOpens,
    bridge_env,
    check_config,
    free_port,
    spawn_logged,
    terminate,
    wait_until,
)
from tests.webconfig.files import WebFiles, bcrypt_hash

USERS = f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw')}\n"


@pytest.mark.parametrize(
    ("body", "exit_status", "shown"),
    [
        (USERS, 0, "TLS on"),
        # Refused by the checks, which find its problems in that read.
        (USERS + "colour: red\n", 2, "colour: unknown key"),
    ],
    ids=["good", "bad"],
)
def test_check_config_reads_the_web_config_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    body: str,
    exit_status: int,
    shown: str,
) -> None:
    """check-config opens EXESDB_WEB_CONFIG_FILE once for its checks, its warnings, its own URL
    and its summary, good file or bad; the certificate it names is hashed and loaded with it,
    once each."""
    files = WebFiles(tmp_path)
    web = files.write(files.tls_config() + body)
    for name in ("EXESDB_HEALTHCHECK_USERNAME", "EXESDB_HEALTHCHECK_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    with FileOpens(web) as opens, FileOpens(tmp_path / "server.pem") as certificate_opens:
        status, out, err = check_config(monkeypatch, capsys, EXESDB_WEB_CONFIG_FILE=str(web))
        assert status == exit_status, err
        assert opens.count() == 1
        if exit_status == 0:
            assert certificate_opens.count() == 2  # hashed for the reloader, then loaded
    [line] = [line for line in (out + err).splitlines() if "EXESDB_WEB_CONFIG_FILE" in line]
    assert shown in line
    if exit_status == 0:  # the warnings, from that read: the probe has no credentials
        assert "basic auth (basic_auth_users)" in err


def test_the_server_starts_from_the_version_read_at_start(tmp_path: Path) -> None:
    """The server takes the file as read at start without reading it again, and its first look
    takes a version written since, as any change."""
    files = WebFiles(tmp_path)
    web = files.write(USERS)
    read = judge(web)
    files.write(f"basic_auth_users:\n  bob: {bcrypt_hash('bob-pw')}\n")
    with FileOpens(web) as opens:
        live = LiveWebConfig(read)
        assert opens.count() == 0
        assert list(live.config.basic_auth_users) == ["alice"]
        assert asyncio.run(live.reload())
    assert list(live.config.basic_auth_users) == ["bob"]


def test_the_server_context_refuses_renegotiation(tmp_path: Path) -> None:
    """The TLS server context sets OP_NO_RENEGOTIATION, whatever OpenSSL the build links."""
    files = WebFiles(tmp_path)
    loaded = judge(files.write(files.tls_config())).loaded
    assert loaded is not None
    assert loaded.context is not None
    assert loaded.context.options & ssl.OP_NO_RENEGOTIATION


def test_run_reads_the_web_config_once_at_start(tmp_path: Path) -> None:
    """``run`` opens EXESDB_WEB_CONFIG_FILE once: its checks, its warnings and the server's TLS
    and users all come from that one read (until the reloader looks, at a request)."""
    files = WebFiles(tmp_path)
    web = files.write(files.tls_config() + USERS)
    env = bridge_env(
        EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
        EXESDB_WEB_CONFIG_FILE=str(web),
        EXESDB_STATE_DIR=str(tmp_path / "state"),
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_ADMIN_TOKEN=ADMIN_TOKEN,
        EXESDB_LOG_LEVEL="info",
    )
    log = tmp_path / "bridge.log"
    with FileOpens(web) as opens:
        # No request is made (each may have the reloader look): the log says when it listens.
        process = spawn_logged([sys.executable, "-m", "bridge", "run"], log, env=env)
        try:
            wait_until(
                lambda: "listening on https://" in log.read_text() or process.poll() is not None,
                timeout=30,
                what="the bridge listening",
            )
            assert process.poll() is None, log.read_text()
            assert opens.count() == 1
        finally:
            assert terminate(process, 15) == 0, log.read_text()


def test_check_config_says_client_certificates_are_verified_against_the_systems_cas(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    """RequireAndVerifyClientCert without a client CA loads, as in the toolkit; check-config's
    summary says the system's CAs verify client certificates, and it warns that any of them may
    issue one that is let in, naming client_ca_file; with a client CA neither is said."""
    files = WebFiles(tmp_path / "web")
    path = files.write(files.tls_config("client_auth_type: RequireAndVerifyClientCert"))
    status, out, err = check_config(monkeypatch, capsys, EXESDB_WEB_CONFIG_FILE=str(path))
    assert status == 0, err
    assert "client certificates: RequireAndVerifyClientCert against the system's CAs" in out
    [warned] = [line for line in err.splitlines() if "system's CAs" in line]
    assert warned == (
        "exesdb-bridge: warning: EXESDB_WEB_CONFIG_FILE: client_auth_type "
        "RequireAndVerifyClientCert without client_ca_file or client_ca verifies client "
        "certificates against the system's CAs, as the toolkit does, so a certificate any of "
        "them issued for client authentication is let in: give client_ca_file to let in only "
        "your own CA's"
    )
    files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
        )
    )
    status, out, err = check_config(monkeypatch, capsys)
    assert status == 0, err
    assert "system's CAs" not in out + err
