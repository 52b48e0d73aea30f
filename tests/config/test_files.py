"""The files settings name (certificates, keys, CAs, config files): one that will not load stops
start-up naming its variable and its fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_settings
from bridge.regular_files import MAX_FILE_BYTES
from tests.config.helpers import OTLP_COLLECTOR
from tests.support import DAMAGED_CA_NAMES, check_config, damaged_ca_files, pem_files
from tests.webconfig.files import WebFiles

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize(
    ("variable", "file", "problem"),
    [
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "missing.pem", "cannot read {path}: No such file"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "directory", "cannot read {path}: Is a directory"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "notes.txt", "{path} holds no PEM certificate"),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "ca.der", "{path} holds no PEM certificate"),
        ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "client.key", "{path} holds no PEM certificate"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "client.pem", "{path} holds no PEM private key"),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "encrypted.key", "an encrypted private key"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "client.key", "holds no PEM certificate"),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "missing.pem", "cannot read {path}"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "openssh.key", "{path} holds an OpenSSH private key"),
    ],
)
def test_a_bad_otlp_certificate_or_key_file_stops_start_up_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    variable: str,
    file: str,
    problem: str,
) -> None:
    """With OTLP export on, a certificate or key file the SDK's exporters would read that is
    missing, unreadable, no PEM of its kind, an encrypted key or an OpenSSH one is exit 2 in
    check-config, one line naming the variable, the file and its fault."""
    path = pem_files(tmp_path)[file]
    status, _, err = check_config(monkeypatch, capsys, **OTLP_COLLECTOR, **{variable: path})
    assert status == 2
    [line] = [line for line in err.splitlines() if line.startswith(f"  {variable}: ")]
    assert problem.format(path=path) in line


@pytest.mark.parametrize("damaged", DAMAGED_CA_NAMES)
@pytest.mark.parametrize(
    "variable",
    [
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    ],
)
def test_an_otlp_ca_file_holding_a_damaged_certificate_is_told_as_damaged(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    variable: str,
    damaged: str,
) -> None:
    """An OTLP CA file whose certificate OpenSSL cannot read is exit 2 in check-config, one line
    naming the variable, the file and the damage as --cacert's is told, not as no certificate."""
    path, said = damaged_ca_files(tmp_path)[damaged]
    status, _, err = check_config(monkeypatch, capsys, **OTLP_COLLECTOR, **{variable: path})
    assert status == 2
    assert [line for line in err.splitlines() if variable in line] == [
        f"  {variable}: {path} {said}"
    ], err


@pytest.mark.parametrize("damaged", DAMAGED_CA_NAMES)
def test_a_rediss_ca_file_holding_a_damaged_certificate_is_told_as_damaged(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    damaged: str,
) -> None:
    """EXESDB_BUS's ssl_ca_certs holding a certificate OpenSSL cannot read is exit 2 in
    check-config, one line naming the query option, the file and the damage."""
    path, said = damaged_ca_files(tmp_path)[damaged]
    status, _, err = check_config(
        monkeypatch,
        capsys,
        EXESDB_BUS=f"rediss://redis:6380/0?ssl_ca_certs={path}",
        SECRET_KEY_BASE="x" * 32,
    )
    assert status == 2
    assert [line for line in err.splitlines() if "EXESDB_BUS" in line] == [
        f"  EXESDB_BUS: query option 'ssl_ca_certs': {path} {said}"
    ], err


@pytest.mark.parametrize("damaged", DAMAGED_CA_NAMES)
def test_a_web_client_ca_file_holding_a_damaged_certificate_is_told_as_damaged(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    damaged: str,
) -> None:
    """The web config's client_ca_file holding a certificate OpenSSL cannot read is exit 2 in
    check-config, one line naming the key, the file and the damage, not OpenSSL's "PEM lib"."""
    (tmp_path / "cas").mkdir()
    path, said = damaged_ca_files(tmp_path / "cas")[damaged]
    files = WebFiles(tmp_path)
    web = files.write(
        files.tls_config(f"client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: {path}")
    )
    status, _, err = check_config(monkeypatch, capsys, EXESDB_WEB_CONFIG_FILE=str(web))
    assert status == 2
    assert [line for line in err.splitlines() if "EXESDB_WEB_CONFIG_FILE" in line] == [
        f"  EXESDB_WEB_CONFIG_FILE: {web}: tls_server_config.client_ca_file: {path} {said}"
    ], err


@pytest.mark.parametrize("variable", ["EXESDB_WEB_CONFIG_FILE", "EXESDB_WEBHOOK_CONFIG_FILE"])
@pytest.mark.parametrize(
    ("file", "fault"),
    [
        ("missing.yml", "No such file or directory"),
        ("a-folder", "Is a directory"),
        ("latin-1.yml", "not UTF-8 text (byte 0xe9 at offset 5)"),
        (
            "too-large.yml",
            "larger than 1024 KiB, the most this file may hold: is it the right file?",
        ),
    ],
)
def test_a_config_file_that_cannot_be_read_is_named_once_with_its_fault(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    variable: str,
    file: str,
    fault: str,
) -> None:
    """A web config or receivers file missing, a folder, not UTF-8 or over MAX_FILE_BYTES (read
    no further) is exit 2 in check-config, one line naming the variable and the file once, then
    the fault in a few words: neither the system's errno nor Python's codec message."""
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "latin-1.yml").write_bytes("# caf\u00e9 config\n".encode("latin-1"))
    (tmp_path / "too-large.yml").write_bytes(b"#" * MAX_FILE_BYTES + b"\n")
    path = tmp_path / file
    status, _, err = check_config(monkeypatch, capsys, **{variable: str(path)})
    assert status == 2
    assert f"\n  {variable}: {path}: cannot read: {fault}\n" in err


@pytest.mark.parametrize("variable", ["EXESDB_WEB_CONFIG_FILE", "EXESDB_WEBHOOK_CONFIG_FILE"])
def test_a_config_file_named_with_a_tilde_is_told_that_only_a_shell_expands_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    """A web config or receivers file named ``~/…`` (an env file or a quoted value leaves the ~)
    is not found, and the line says only a shell expands ~, giving the full path meant."""
    monkeypatch.setenv("HOME", "/home/ops")
    status, _, err = check_config(monkeypatch, capsys, **{variable: "~/bridge.yml"})
    assert status == 2
    assert (
        f"\n  {variable}: ~/bridge.yml: cannot read: No such file or directory; only a shell"
        " expands ~ (not in quotes, an env file, a systemd unit or a container's environment):"
        " give the full path, e.g. /home/ops/bridge.yml\n"
    ) in err


def test_good_otlp_certificate_and_key_files_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """PEM CA certificates, a client certificate (alone, or with its key in one file) and its
    unencrypted key load, per signal as in general, the CA and the certificate in OpenSSL's
    TRUSTED CERTIFICATE form too (both exporters load it)."""
    files = pem_files(tmp_path)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", files["ca.pem"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", files["client.pem"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", files["client.key"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", files["combined.pem"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", files["ca.pem"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", files["trusted-ca.pem"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", files["trusted-client.pem"])
    assert load_settings().otlp_certificate == files["ca.pem"]


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_CERTIFICATE": "missing.pem"},
        {
            **OTLP_COLLECTOR,
            "OTEL_SDK_DISABLED": "true",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": "missing.pem",
        },
        {**OTLP_COLLECTOR, "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE": "missing.pem"},
        {
            **OTLP_COLLECTOR,
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": "missing.pem",
        },
    ],
)
def test_otlp_files_of_a_signal_not_exported_are_not_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, env: dict[str, str]
) -> None:
    """The certificate and key variables are checked only where they would be used: none with
    OTLP export off (no endpoint, OTEL_SDK_DISABLED), a signal's own not when that signal is
    not exported (metrics without EXESDB_OTLP_METRICS, OTEL_TRACES_EXPORTER=none)."""
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value) if value.endswith(".pem") else value)
    load_settings()
