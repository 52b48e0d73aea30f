"""The receivers file's warnings at start and from check-config: a file a receiver names that
cannot be read now, a tls_config (a receiver's or oauth2's) that no TLS handshake uses, a
signing key too short."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from bridge.cli import main
from tests.receivers_support import write
from tests.support import DAMAGED_CA_NAMES, damaged_ca_files, pem_files

pytestmark = pytest.mark.usefixtures("clean_env")


# Files a receiver names that cannot be read at start: missing ones, and a folder.
UNREADABLE_AT_START = """
webhook_configs:
  - url_file: missing-url
  - url: https://hooks.example.com/services/url-tok3n
    secret_file: a-folder
    http_config:
      authorization:
        credentials_file: missing-token
      tls_config:
        ca_file: missing-ca.pem
  - url: https://fine.example.com/hook
    secret_file: readable-secret
    http_config:
      basic_auth:
        username: alerts
        password_file: readable-password
alertmanager:
  url: http://am.example.com:9093
  http_config:
    basic_auth:
      username: am
      password_file: missing-am-password
"""


def test_check_config_warns_of_each_receiver_file_it_cannot_read_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file a receiver names that cannot be read now is a warning, not an error: check-config
    exits 0 and names the receiver (origin or url_file), the key and the file, never a content;
    readable files are not named."""
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "readable-secret").write_text(f"secret-tok3n-{'k' * 32}\n")
    (tmp_path / "readable-password").write_text("password-tok3n\n")
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, UNREADABLE_AT_START)))
    assert main(["check-config"]) == 0
    captured = capsys.readouterr()
    assert "tok3n" not in captured.out + captured.err
    warned = [line for line in captured.err.splitlines() if "cannot be read now" in line]
    hooks = "webhook_configs.1 https://hooks.example.com/…"
    expected = [
        (f"webhook_configs.0 url_file:{tmp_path / 'missing-url'}", "url_file", "missing-url"),
        (hooks, "secret_file", "a-folder"),
        (hooks, "tls_config.ca_file", "missing-ca.pem"),
        (hooks, "authorization.credentials_file", "missing-token"),
        ("alertmanager", "basic_auth.password_file", "missing-am-password"),
    ]
    assert len(warned) == len(expected), captured.err
    for line, (receiver, key, name) in zip(warned, expected, strict=True):
        assert line.startswith("exesdb-bridge: warning: ")
        assert f"{receiver}: {key} {tmp_path / name} cannot be read now" in line
    assert "readable-" not in captured.err


def test_a_file_of_the_alertmanager_section_that_cannot_be_read_fails_its_posts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable file of the alertmanager section is said to fail the poster's posts, not
    deliveries, which are the webhook receivers' (their warning keeps the word)."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, UNREADABLE_AT_START)))
    assert main(["check-config"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "cannot be read now" in line]
    [poster] = [line for line in warned if "alertmanager: " in line]
    assert poster.endswith("; its posts fail and are retried until it can be"), poster
    hooks = [line for line in warned if "webhook_configs." in line]
    assert hooks
    assert all("; its deliveries fail and are retried" in line for line in hooks)


def test_a_tls_config_file_a_plain_http_url_never_reads_is_not_warned_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing CA file in the tls_config of an http:// receiver is no delivery failure to
    come: check-config says only that the tls_config has no effect; on an https:// receiver
    the same missing file is warned of."""
    missing = tmp_path / "missing-ca.pem"
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n"
        f"  - url: http://plain.example.com/hook\n    http_config:\n"
        f"      tls_config: {{ca_file: {missing}}}\n"
        f"  - url: https://secure.example.com/hook\n    http_config:\n"
        f"      tls_config: {{ca_file: {missing}}}\n"
    )
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(path))
    monkeypatch.setenv("EXESDB_WEBHOOK_SECRET", "k" * 32)  # no unsigned receiver to warn of
    assert main(["check-config"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "webhook_configs" in line]
    said = [line.removeprefix("exesdb-bridge: warning: ").split(": ", 1) for line in warnings]
    assert said == [
        [
            "EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.0 http://plain.example.com/…",
            "tls_config is set, but its URL is http://, which no TLS protects: it has no effect"
            " (use the https:// URL, or leave tls_config out)",
        ],
        [
            "EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.1 https://secure.example.com/…",
            f"tls_config.ca_file {missing} cannot be read now (No such file or directory); its"
            " deliveries fail and are retried until it can be",
        ],
    ], warnings


def test_a_tls_config_file_that_reads_but_holds_no_pem_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tls_config certificate, key or CA file that reads but could not be loaded (no PEM
    certificate or key in it: a file mixed up with another) is warned of as an unreadable one
    is, at start rather than at the first alert; good files are not named."""
    leaf = trustme.CA().issue_cert("bridge.test")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "good.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "good.key"))
    (tmp_path / "notes.txt").write_text("not PEM\n")
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n"
        "  - url: https://hooks.example.com/hook\n    http_config:\n"
        "      tls_config: {ca_file: good.key, cert_file: good.pem, key_file: good.pem}\n"
        "  - url: https://fine.example.com/hook\n    http_config:\n"
        "      tls_config: {ca_file: good.pem, cert_file: good.pem, key_file: good.key}\n"
        "  - url: https://third.example.com/hook\n"
        "global:\n  http_config:\n    tls_config: {ca_file: notes.txt}\n"
    )
    warned = _signed_file_warnings(path, monkeypatch, capsys)
    failing = "; its deliveries fail and are retried until it can be"
    hooks = "webhook_configs.0 https://hooks.example.com/…: tls_config"
    no_certificate = "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    assert warned == [
        f"{hooks}.ca_file {tmp_path / 'good.key'} cannot be used now ({no_certificate}){failing}",
        f"{hooks}.key_file {tmp_path / 'good.pem'} cannot be used now (holds no PEM private key"
        f" (-----BEGIN PRIVATE KEY-----)){failing}",
        f"global.http_config.tls_config.ca_file {tmp_path / 'notes.txt'} cannot be used now"
        f" ({no_certificate}); the deliveries of the receivers taking it (webhook_configs.2) fail"
        " and are retried until it can be",
    ], warned


@pytest.mark.parametrize("damaged", DAMAGED_CA_NAMES)
def test_a_tls_config_ca_file_holding_a_damaged_certificate_is_told_as_damaged(
    damaged: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A receiver's tls_config.ca_file whose certificate OpenSSL cannot read is warned of once,
    naming the key, the file and the damage as --cacert's is told, not as no certificate."""
    ca_file, said = damaged_ca_files(tmp_path)[damaged]
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n"
        "  - url: https://hooks.example.com/hook\n    http_config:\n"
        f"      tls_config: {{ca_file: {ca_file}}}\n"
    )
    warned = _signed_file_warnings(path, monkeypatch, capsys)
    assert warned == [
        f"webhook_configs.0 https://hooks.example.com/…: tls_config.ca_file {ca_file} cannot be"
        f" used now ({said}); its deliveries fail and are retried until it can be"
    ], warned


def test_tls_config_files_are_judged_as_the_client_loads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CA and a client certificate in OpenSSL's TRUSTED CERTIFICATE form, which the client
    loads, are not warned of; an OpenSSH key, which it cannot load, is, as one."""
    files = pem_files(tmp_path)
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n"
        "  - url: https://trusted.example.com/hook\n    http_config:\n"
        f"      tls_config: {{ca_file: {files['trusted-ca.pem']},"
        f" cert_file: {files['trusted-client.pem']}, key_file: {files['client.key']}}}\n"
        "  - url: https://openssh.example.com/hook\n    http_config:\n"
        f"      tls_config: {{cert_file: {files['client.pem']},"
        f" key_file: {files['openssh.key']}}}\n"
    )
    warned = _signed_file_warnings(path, monkeypatch, capsys)
    assert warned == [
        f"webhook_configs.1 https://openssh.example.com/…: tls_config.key_file"
        f" {files['openssh.key']} cannot be used now (holds an OpenSSH private key (-----BEGIN"
        " OPENSSH PRIVATE KEY-----), which OpenSSL does not load: give a PEM private key"
        " (-----BEGIN PRIVATE KEY-----; ssh-keygen -p -m PEM converts an RSA or ECDSA one));"
        " its deliveries fail and are retried until it can be"
    ], warned


TLS_ON_PLAIN_HTTP = """
webhook_configs:
  - url: http://plain.example.com/hook
    http_config:
      tls_config: {insecure_skip_verify: true}
  - url: https://secure.example.com/hook
    http_config:
      tls_config: {insecure_skip_verify: true}
  - url: http://proxied.example.com/hook
    http_config:
      proxy_url: https://proxy.example.com:3128
      tls_config: {insecure_skip_verify: true}
  - url: http://bare.example.com/hook
alertmanager:
  http_config:
    tls_config: {server_name: am.example.com}
"""


@pytest.mark.parametrize(
    ("alertmanager_url", "warned"),
    [
        (
            "http://am.example.com:9093",
            ["webhook_configs.0 http://plain.example.com/…", "alertmanager"],
        ),
        ("https://am.example.com:9093", ["webhook_configs.0 http://plain.example.com/…"]),
    ],
)
def test_a_tls_config_an_http_url_never_uses_is_warned_of(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    alertmanager_url: str,
    warned: list[str],
) -> None:
    """A tls_config on a receiver (or Alertmanager, by EXESDB_ALERTMANAGER_URL) reached over
    http:// has no effect, which Alertmanager leaves unsaid: check-config warns, naming it; not
    on an https:// one, nor through an https:// proxy, which may use it."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, TLS_ON_PLAIN_HTTP)))
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", alertmanager_url)
    assert main(["check-config"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "tls_config is set" in line]
    assert [line.split(": tls_config")[0] for line in lines] == [
        f"exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE {who}" for who in warned
    ]
    assert lines[0].endswith(
        ": tls_config is set, but its URL is http://, which no TLS protects: it has no effect"
        " (use the https:// URL, or leave tls_config out)"
    )


def _signed_file_warnings(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """What ``check-config`` (exit 0) warns of the receivers file at ``path``, each line after
    the variable's name, with a signing key set so that no receiver is warned of as unsigned."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(path))
    monkeypatch.setenv("EXESDB_WEBHOOK_SECRET", "k" * 32)
    assert main(["check-config"]) == 0
    return [
        line.removeprefix("exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE ")
        for line in capsys.readouterr().err.splitlines()
    ]


def _oauth2(token_url: str, extra: str = "") -> str:
    """An oauth2 block, on one line, whose token endpoint has a tls_config of its own."""
    return (
        f"{{oauth2: {{client_id: x, client_secret: tok3n, token_url: '{token_url}',"
        f" tls_config: {{server_name: idp.example.com}}{extra}}}}}"
    )


def test_an_oauth2_tls_config_its_http_token_url_never_uses_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An oauth2 tls_config whose token_url is http:// has no effect: check-config warns once
    for each block holding one (a receiver's, the alertmanager section's, global's), as for a
    receiver's own tls_config; not for an https:// token_url nor one reached through an
    https:// proxy, which may use it."""
    plain, secure = "http://idp.example.com/token", "https://idp.example.com/token"
    proxied = _oauth2(plain, ", proxy_url: 'https://proxy.example.com:3128'")
    path = write(
        tmp_path,
        "global:\n"
        f"  http_config: {_oauth2(plain)}\n"
        "webhook_configs:\n"
        f"  - url: https://a.example.com/hook\n    http_config: {_oauth2(plain)}\n"
        f"  - url: https://b.example.com/hook\n    http_config: {_oauth2(secure)}\n"
        f"  - url: https://c.example.com/hook\n    http_config: {proxied}\n"
        "  - url: http://d.example.com/hook\n"  # takes global's: warned of once, as global's
        "alertmanager:\n"
        f"  url: http://am.example.com:9093\n  http_config: {_oauth2(plain)}\n",
    )
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(path))
    monkeypatch.setenv("EXESDB_WEBHOOK_SECRET", "k" * 32)  # no unsigned receiver to warn of
    assert main(["check-config"]) == 0
    said = (
        "oauth2.tls_config is set, but its token_url is http://, which no TLS protects: it has"
        " no effect (use the https:// token_url, or leave oauth2.tls_config out)"
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if "tls_config" in line]
    assert lines == [
        f"exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE {where}{said}"
        for where in (
            "webhook_configs.0 https://a.example.com/…: ",
            "alertmanager: ",
            "global.http_config.",
        )
    ], lines


NO_RECEIVER = (
    "exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE lists no receiver: its webhook_configs is"
    " empty or missing and it has no alertmanager section, so it sends no alert anywhere (a"
    " receiver is an entry '- url: https://…' under a top-level webhook_configs)"
)


@pytest.mark.parametrize(
    ("text", "warned"),
    [
        ("", True),
        ("webhook_configs:\n", True),
        ("webhook_configs: []\n", True),
        ("# webhook_configs:\n#   - url: https://hooks.example.com/a\n", True),
        ("global:\n  resolve_timeout: 5m\n", True),
        ("webhook_configs:\n  - url: https://hooks.example.com/a\n", False),
        ("alertmanager:\n  url: http://am.example.com:9093\n", False),
    ],
    ids=["empty", "null", "empty-list", "commented-out", "global-only", "receiver", "alertmanager"],
)
def test_a_file_listing_no_receiver_is_warned_of(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    warned: bool,
) -> None:
    """A receivers file that names nothing to send to (empty, its entries commented out, only a
    global section) loads, check-config exits 0, and a warning says it sends no alert; not one
    with a receiver or an alertmanager section."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, text)))
    assert main(["check-config"]) == 0
    assert (NO_RECEIVER in capsys.readouterr().err.splitlines()) is warned


def test_a_receiver_s_own_short_signing_key_is_warned_of_as_the_variable_s_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A receiver's secret, or the key its secret_file holds, under 32 characters is warned of
    as a short EXESDB_WEBHOOK_SECRET is, naming the receiver and never the key; a long one and
    an empty file (each delivery refuses it) are not."""
    (tmp_path / "short-key").write_text("tok3n\n")
    (tmp_path / "long-key").write_text(f"tok3n{'k' * 32}\n")
    (tmp_path / "empty-key").write_text("\n")
    text = f"""
webhook_configs:
  - url: https://a.example/hook
    secret: tok3n
  - url: https://b.example/hook
    secret_file: short-key
  - url: https://c.example/hook
    secret_file: long-key
  - url: https://d.example/hook
    secret: tok3n{"k" * 32}
  - url: https://e.example/hook
    secret_file: empty-key
"""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, text)))
    assert main(["check-config"]) == 0
    captured = capsys.readouterr()
    assert "tok3n" not in captured.out + captured.err
    warned = [line for line in captured.err.splitlines() if "is shorter than 32" in line]
    tail = (
        "is shorter than 32 characters: one signed delivery lets anyone who sees it try keys"
        " offline; use a long random one, e.g. $(openssl rand -hex 32)"
    )
    assert warned == [
        "exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.0"
        f" https://a.example/…: its secret {tail}",
        "exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.1"
        f" https://b.example/…: the key in its secret_file {tmp_path / 'short-key'} {tail}",
    ]
