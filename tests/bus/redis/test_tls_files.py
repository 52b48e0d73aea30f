"""The TLS files a rediss:// EXESDB_BUS names, checked at start as redis-py will load them."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest

from bridge.regular_files import MAX_FILE_BYTES
from tests.support import TEST_SECRET, check_config, pem_files, run_bridge

pytestmark = pytest.mark.usefixtures("clean_env")

PASSWORD = "hunter2-in-the-url"


def filled(text: str, files: dict[str, str]) -> str:
    """``text`` with each ``{name}`` in it the path of ``pem_files``'s file ``name``."""
    return re.sub(r"\{([^{}]+)\}", lambda named: files[named[1]], text)


def bus(query: str, files: dict[str, str]) -> str:
    """A rediss:// URL with a password, its query ``query`` filled with ``files``."""
    return f"rediss://bridge:{PASSWORD}@redis:6380/0?{filled(query, files)}"


@pytest.mark.parametrize(
    ("query", "said"),
    [
        (
            "ssl_ca_certs={missing.pem}",
            "query option 'ssl_ca_certs': cannot read {missing.pem}: No such file or directory",
        ),
        (
            "ssl_ca_certs={directory}",
            "query option 'ssl_ca_certs': cannot read {directory}: Is a directory",
        ),
        ("ssl_ca_certs={notes.txt}", "query option 'ssl_ca_certs': {notes.txt} holds no PEM cert"),
        ("ssl_ca_certs={ca.der}", "query option 'ssl_ca_certs': {ca.der} holds no PEM certificate"),
        (
            "ssl_ca_certs={ca.pem}&ssl_certfile={client.key}&ssl_keyfile={client.key}",
            "query option 'ssl_certfile': {client.key} holds no PEM certificate",
        ),
        (
            "ssl_certfile={missing.pem}&ssl_keyfile={client.key}",
            "query option 'ssl_certfile': cannot read {missing.pem}: No such file or directory",
        ),
        (
            "ssl_certfile={client.pem}&ssl_keyfile={client.pem}",
            "query option 'ssl_keyfile': {client.pem} holds no PEM private key",
        ),
        (
            "ssl_certfile={client.pem}&ssl_keyfile={openssh.key}",
            "query option 'ssl_keyfile': {openssh.key} holds an OpenSSH private key (-----BEGIN"
            " OPENSSH PRIVATE KEY-----), which OpenSSL does not load",
        ),
        (
            "ssl_certfile={client.pem}&ssl_keyfile={openssh.key}&ssl_password=unused",
            "query option 'ssl_keyfile': {openssh.key} holds an OpenSSH private key",
        ),
        (
            "ssl_certfile={client.pem}&ssl_keyfile={missing.pem}",
            "query option 'ssl_keyfile': cannot read {missing.pem}: No such file or directory",
        ),
        (
            "ssl_certfile={client.pem}&ssl_keyfile={encrypted.key}",
            "query option 'ssl_keyfile': {encrypted.key} holds an encrypted private key: give"
            " ssl_password too, or the key unencrypted",
        ),
        (
            "ssl_certfile={client.pem}&ssl_keyfile={encrypted.key}&ssl_password=wrong",
            "query options 'ssl_certfile' and 'ssl_keyfile': the key in {encrypted.key} does not"
            " open with ssl_password",
        ),
        (
            "ssl_certfile={client.pem}&ssl_keyfile={other.key}",
            "query options 'ssl_certfile' and 'ssl_keyfile': the key in {other.key} is not the"
            " certificate's in {client.pem}",
        ),
        (
            "ssl_certfile={client.pem}&ssl_keyfile={rsa.key}&ssl_password=unused",
            "query options 'ssl_certfile' and 'ssl_keyfile': the key in {rsa.key} is not the"
            " certificate's in {client.pem}",
        ),
        (
            "ssl_certfile={client.pem}",
            "query option 'ssl_certfile': {client.pem} holds no PEM private key",
        ),
        (
            "ssl_certfile={client.pem}&ssl_password=unused",
            "query option 'ssl_certfile': {client.pem} holds no PEM private key",
        ),
        ("ssl_keyfile={client.key}", "query option 'ssl_keyfile' without 'ssl_certfile'"),
        (
            "ssl_ca_path={missing.pem}",
            "query option 'ssl_ca_path': cannot read {missing.pem}: No such file or directory",
        ),
        ("ssl_ca_path={ca.pem}", "query option 'ssl_ca_path': {ca.pem} is not a folder"),
        ("ssl_ca_data=not-pem", "query option 'ssl_ca_data': must be PEM CA certificates"),
    ],
)
def test_a_tls_file_redis_py_would_not_load_stops_check_config_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    query: str,
    said: str,
) -> None:
    """A TLS file of EXESDB_BUS's query that is missing, a folder, no PEM of its kind, an
    encrypted key without its pass phrase (or with a wrong one), an OpenSSH key (with
    ssl_password or not), a key not the certificate's
    (of its type or another), a key without a certificate (ssl_password or not), or an
    ssl_ca_path that is no folder, is exit 2 in check-config: one line naming EXESDB_BUS, the
    query option and the file, and never the URL's password (redis-py would fail every
    connection, told as Redis unreachable)."""
    files = pem_files(tmp_path)
    status, out, err = check_config(
        monkeypatch, capsys, EXESDB_BUS=bus(query, files), SECRET_KEY_BASE=TEST_SECRET
    )
    assert status == 2
    [line] = [line for line in err.splitlines() if line.startswith("  EXESDB_BUS: ")]
    assert line.startswith(f"  EXESDB_BUS: {filled(said, files)}"), line
    assert PASSWORD not in out + err


def test_a_tls_file_over_its_limit_stops_check_config_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A CA file EXESDB_BUS names holding more than MAX_FILE_BYTES (the CA, then a log copied
    after it by mistake, which OpenSSL would load) is exit 2 in check-config, naming the query
    option, the file and the limit: the bus's rotation would read it at every look."""
    ca = Path(pem_files(tmp_path)["ca.pem"])
    grown = tmp_path / "grown-ca.pem"
    grown.write_bytes(ca.read_bytes() + b"#" * MAX_FILE_BYTES + b"\n")
    status, _, err = check_config(
        monkeypatch,
        capsys,
        EXESDB_BUS=bus(f"ssl_ca_certs={grown}", {}),
        SECRET_KEY_BASE=TEST_SECRET,
    )
    assert status == 2
    assert (
        f"  EXESDB_BUS: query option 'ssl_ca_certs': cannot read {grown}: larger than 1024 KiB,"
        " the most this file may hold: is it the right file?\n"
    ) in err


@pytest.mark.parametrize(
    "query",
    [
        "ssl_ca_certs={ca.pem}",
        "ssl_ca_certs={labelled-ca.pem}",
        "ssl_ca_certs={trusted-ca.pem}",
        "ssl_ca_certs={ca.pem}&ssl_certfile={trusted-client.pem}&ssl_keyfile={client.key}",
        "ssl_ca_certs={ca.pem}&ssl_certfile={client.pem}&ssl_keyfile={client.key}",
        "ssl_certfile={combined.pem}",
        "ssl_certfile={client.pem}&ssl_keyfile={encrypted.key}&ssl_password="
        + quote("pass phrase"),
        "ssl_ca_path={directory}",
    ],
)
def test_tls_files_redis_py_loads_pass(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, query: str
) -> None:
    """A private CA (after a label in UTF-8 too, or as OpenSSL's TRUSTED CERTIFICATE), a client
    certificate (a TRUSTED CERTIFICATE too) with its key (in its own file or the certificate's,
    encrypted with ssl_password given), a folder of CAs: check-config takes them (exit 0), as
    redis-py loads them."""
    url = bus(query, pem_files(tmp_path))
    status, _, err = check_config(monkeypatch, capsys, EXESDB_BUS=url, SECRET_KEY_BASE=TEST_SECRET)
    assert status == 0, err


def test_a_tls_file_not_there_stops_run_with_exit_2(tmp_path: Path) -> None:
    """`exesdb-bridge run` stops before it starts (exit 2) on a CA file EXESDB_BUS names that
    is not there, rather than retry forever saying Redis is unreachable."""
    missing = tmp_path / "redis-ca.pem"
    completed = run_bridge(
        "run",
        env={
            "EXESDB_BUS": f"rediss://bridge:{PASSWORD}@127.0.0.1:1/0?ssl_ca_certs={missing}",
            "SECRET_KEY_BASE": TEST_SECRET,
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            "EXESDB_STATE_DIR": str(tmp_path / "state"),
        },
        timeout=30,
    )
    assert completed.returncode == 2, completed.stderr
    assert (
        f"  EXESDB_BUS: query option 'ssl_ca_certs': cannot read {missing}: No such file or"
        " directory\n"
    ) in completed.stderr
    assert PASSWORD not in completed.stdout + completed.stderr
