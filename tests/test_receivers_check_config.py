"""check-config's account of the receivers file: a line per receiver without a secret (oauth2
blocks included), how each signs, the variables a 0 stands for, the file read once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.receivers import describe_receivers, read_receivers_file
from tests.receivers_support import ALERTMANAGER_BLOCK, check_file, write
from tests.support import ROOT, BridgeProcess, FileOpens, check_config, free_port

pytestmark = pytest.mark.usefixtures("clean_env")


def test_check_config_lists_each_receiver_without_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config shows one line per receiver and one for Alertmanager: origins, options,
    file paths; never a token, password or the URL's path."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, ALERTMANAGER_BLOCK)))
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "tok3n" not in out
    lines = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert lines[0].startswith("webhook_configs.0 https://hooks.example.com:8443/…: ")
    assert "send_resolved=false, max_alerts=10, timeout=90s" in lines[0]
    assert "authorization Bearer (credentials <set, redacted>)" in lines[0]
    assert f"ca_file {tmp_path / 'ca.pem'}" in lines[0]
    assert "proxy http://proxy-user:<redacted>@proxy.example.com:3128" in lines[0]
    assert lines[1].startswith("webhook_configs.1 url_file:/run/secrets/hook-url:")
    assert "basic_auth alerts (password <set, redacted>)" in lines[1]
    assert lines[2].startswith("alertmanager (EXESDB_ALERTMANAGER_URL): timeout=5s")
    assert f"credentials_file {tmp_path / 'am-token'}" in lines[2]


def test_check_config_shows_the_receivers_under_the_file_that_holds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The receivers' lines follow the EXESDB_WEBHOOK_CONFIG_FILE line, indented under it, not
    after the last setting, where they would read as part of it."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, ALERTMANAGER_BLOCK)))
    assert main(["check-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    [at] = [i for i, line in enumerate(lines) if line.startswith("EXESDB_WEBHOOK_CONFIG_FILE ")]
    assert lines[at + 1].startswith("  webhook_configs.0 https://hooks.example.com:8443/…: ")
    assert lines[at + 2].startswith("  webhook_configs.1 url_file:/run/secrets/hook-url:")
    assert lines[at + 3].startswith("  alertmanager (EXESDB_ALERTMANAGER_URL): ")
    assert not lines[at + 4].startswith(" ")
    assert not lines[-1].startswith(" ")


# An oauth2 block as Alertmanager's documentation writes one (a token endpoint behind its own CA
# and proxy), pasted unchanged.
OAUTH2_BLOCK = """
webhook_configs:
  - url: https://hooks.example.com/alerts
    http_config:
      oauth2:
        client_id: exesdb
        client_secret: client-tok3n
        scopes: [alerts.write, alerts.read]
        token_url: https://idp.example.com/oauth2/token
        endpoint_params: {audience: hooks-tok3n}
        tls_config: {ca_file: idp-ca.pem}
        proxy_url: http://proxy-user:proxy-tok3n@proxy.example.com:3128
  - url: https://hooks.example.com/ops
    http_config:
      oauth2:
        client_id: exesdb
        client_secret_file: client-secret
        token_url: https://idp.example.com/oauth2/token
"""


def test_check_config_shows_an_oauth2_block_redacted_and_warns_of_its_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An Alertmanager oauth2 block loads (paths from the file's folder) and check-config shows
    its client, token URL, secret source, scopes and parameter names, never the client secret,
    a parameter's value or the proxy's password; a client_secret_file that cannot be read is
    warned of, naming its key."""
    (tmp_path / "idp-ca.pem").write_text("not read: check-config loads no certificate\n")
    status, out, err = check_file(monkeypatch, capsys, tmp_path, OAUTH2_BLOCK)
    assert status == 0, err
    assert "tok3n" not in out + err
    lines = [line.strip() for line in out.splitlines() if line.startswith("  webhook_configs")]
    assert lines[0].endswith(
        "oauth2 client_id exesdb at https://idp.example.com/… (client_secret <set, redacted>),"
        " scopes alerts.write alerts.read, endpoint_params audience <values not shown>, for the"
        f" token: tls_config ca_file {tmp_path / 'idp-ca.pem'}; proxy"
        " http://proxy-user:<redacted>@proxy.example.com:3128"
    )
    assert lines[1].endswith(
        "oauth2 client_id exesdb at https://idp.example.com/…"
        f" (client_secret_file {tmp_path / 'client-secret'})"
    )
    assert (
        f"webhook_configs.1 https://hooks.example.com/…: oauth2.client_secret_file"
        f" {tmp_path / 'client-secret'} cannot be read now (No such file or directory)"
    ) in err


@pytest.mark.parametrize(
    ("block", "said"),
    [
        (
            "oauth2: {client_id: x, client_secret: tok3n, token_url: 'http://i/t'}\n"
            "      authorization: {credentials: tok3n}\n",
            "webhook_configs.0.http_config: oauth2 cannot be given with authorization",
        ),
        (
            "oauth2: {client_id: x, client_secret: <secret>, token_url: 'http://i/t'}\n",
            "webhook_configs.0.http_config.oauth2.client_secret: `<secret>` is how Alertmanager's"
            " dump hides a secret",
        ),
        (
            "oauth2: {client_id: x, client_secret: tok3n, token_url: 'http://i', claims: {a: b}}\n",
            "webhook_configs.0.http_config.oauth2.claims: not supported by exesdb-bridge: the"
            " bridge makes the client_credentials grant only",
        ),
    ],
)
def test_a_bad_oauth2_block_stops_check_config_with_exit_2_naming_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    block: str,
    said: str,
) -> None:
    """check-config exits 2 on an oauth2 block the bridge cannot use, naming the key and why,
    never the client secret."""
    text = f"webhook_configs:\n  - url: http://h/hook\n    http_config:\n      {block}"
    status, _, err = check_file(monkeypatch, capsys, tmp_path, text)
    assert status == 2
    assert said in err
    assert "tok3n" not in err


@pytest.mark.parametrize(
    ("text", "exit_status", "warned"),
    [
        ("webhook_configs:\n  - url: http://h/hook\n", 0, "deliveries go unsigned"),
        # Problems, then the warnings of the receivers good on their own, from the same read.
        (
            "webhook_configs:\n  - {url: http://h/hook, secret_file: missing-key}\n"
            "  - {url: http://i/hook, colour: red}\n",
            2,
            "secret_file",
        ),
    ],
    ids=["good", "bad"],
)
def test_check_config_reads_the_receivers_file_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    exit_status: int,
    warned: str,
) -> None:
    """check-config opens EXESDB_WEBHOOK_CONFIG_FILE once for its checks, its lines and its
    warnings, good file or bad: they all see one version of it."""
    receivers = write(tmp_path, text)
    monkeypatch.delenv("EXESDB_WEBHOOK_SECRET", raising=False)
    with FileOpens(receivers) as opens:
        status, _, err = check_config(
            monkeypatch, capsys, EXESDB_WEBHOOK_CONFIG_FILE=str(receivers)
        )
        assert status == exit_status
        assert opens.count() == 1
    [warning] = [line for line in err.splitlines() if "warning" in line]
    assert warned in warning


def test_run_reads_the_receivers_file_once_at_start(tmp_path: Path) -> None:
    """``run`` opens EXESDB_WEBHOOK_CONFIG_FILE once: its checks, its warnings and the alert
    sink's receivers all come from that one read, never from a version changed in between."""
    receivers = write(tmp_path, f"webhook_configs:\n  - url: http://127.0.0.1:{free_port()}/h\n")
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_WEBHOOK_CONFIG_FILE=str(receivers))
    with FileOpens(receivers) as opens:
        try:
            bridge.start(tmp_path)
            # The alert sink starts before the port answers: start-up is over.
            assert "alerts: 1 webhook receiver(s)" in bridge.log()
            assert opens.count() == 1
        finally:
            assert bridge.stop() == 0


def test_check_config_names_the_variable_a_zero_stands_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """max_alerts: 0 and timeout: 0s (as an Alertmanager dump prints them) are shown as the
    variables they stand for, not as Alertmanager's "no limit"."""
    text = (
        "webhook_configs:\n  - {url: http://h, max_alerts: 0, timeout: 0s}\n"
        "alertmanager: {url: http://am, timeout: 0s}\n"
    )
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, text)))
    assert main(["check-config"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert "max_alerts=(EXESDB_WEBHOOK_MAX_ALERTS), timeout=(EXESDB_WEBHOOK_TIMEOUT_MS)" in lines[0]
    assert lines[1].startswith("alertmanager http://am: timeout=(EXESDB_WEBHOOK_TIMEOUT_MS);")


@pytest.mark.parametrize(
    ("hook", "webhook_secret", "shown"),
    [
        ("{url: http://h, secret: s3cr3t}", None, "secret <set, redacted>"),
        ("{url: http://h, secret_file: /run/key}", None, "secret_file /run/key"),
        ("{url: http://h}", "env-s3cr3t", "secret from EXESDB_WEBHOOK_SECRET"),
        ("{url: http://h}", None, "unsigned (no secret, secret_file nor EXESDB_WEBHOOK_SECRET)"),
        ("{url: http://h}", "", "unsigned (no secret, secret_file nor EXESDB_WEBHOOK_SECRET)"),
    ],
)
def test_check_config_says_how_each_receiver_signs_or_that_it_does_not(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    hook: str,
    webhook_secret: str | None,
    shown: str,
) -> None:
    """A receiver without a secret of its own signs with EXESDB_WEBHOOK_SECRET, and check-config
    says it goes unsigned when that is unset too, rather than naming an unset variable."""
    monkeypatch.setenv(
        "EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, f"webhook_configs: [{hook}]\n"))
    )
    if webhook_secret is None:
        monkeypatch.delenv("EXESDB_WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("EXESDB_WEBHOOK_SECRET", webhook_secret)
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    [line] = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert f", {shown}; " in line
    assert "s3cr3t" not in out


def test_docs_name_the_variable_each_zero_is_shown_as(tmp_path: Path) -> None:
    """docs/alerts.md's account of check-config names each variable a 0 is shown as, beside the
    option it stands in for."""
    path = write(tmp_path, "webhook_configs:\n  - {url: http://h, max_alerts: 0, timeout: 0s}\n")
    [line] = describe_receivers(read_receivers_file(path), webhook_secret=True)
    shown = dict(re.findall(r"(max_alerts|timeout)=(\(EXESDB_\w+\))", line))
    assert set(shown) == {"max_alerts", "timeout"}
    docs = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    paragraph = docs[docs.index("`exesdb-bridge check-config` prints one line per receiver") :]
    paragraph = " ".join(paragraph[: paragraph.index("\n\n")].split())
    for option, variable in shown.items():
        assert f"`{option}` (a 0 shown as `{variable}`" in paragraph


def test_check_config_redacts_what_reads_as_a_secret_in_a_file_path(tmp_path: Path) -> None:
    """A receiver's file paths are shown as written, save what reads as a secret in them (a
    folder named ``password=…``), as every other check-config line is redacted."""
    folder = tmp_path / "password=hunter2"
    path = write(
        tmp_path,
        "webhook_configs:\n"
        f"  - url: https://hooks.example/x\n    secret_file: {folder}/hook-secret\n"
        "    http_config:\n"
        f"      authorization: {{credentials_file: {folder}/token}}\n",
    )
    [line] = describe_receivers(read_receivers_file(path), webhook_secret=True)
    assert "hunter2" not in line
    assert "secret_file " in line
    assert "credentials_file " in line


def test_check_config_warns_of_the_file_s_receivers_in_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warnings of the receivers file come receiver by receiver in the file's order, each
    receiver's together: the settings' (unsigned, at Alertmanager's alerts API) beside the
    file's (a secret_file it cannot read), not each kind in a heap of its own."""
    monkeypatch.delenv("EXESDB_WEBHOOK_SECRET", raising=False)
    text = (
        "webhook_configs:\n"
        f"  - {{url: https://a.example/hook, secret_file: {tmp_path / 'missing'}}}\n"
        "  - {url: https://am.example/api/v2/alerts}\n"
        "  - {url: https://c.example/hook, secret: short}\n"
    )
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_CONFIG_FILE=str(write(tmp_path, text))
    )
    assert status == 0, err
    prefix = "exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE webhook_configs."
    said = [line.removeprefix(prefix) for line in err.splitlines() if line.startswith(prefix)]
    expected = [
        "0 https://a.example/…: secret_file ",
        "1 https://am.example/…: its path ends in /api/v2/alerts",
        "1 https://am.example/…: no secret nor secret_file",
        "2 https://c.example/…: its secret is shorter",
    ]
    assert len(said) == len(expected), said
    assert all(line.startswith(start) for line, start in zip(said, expected, strict=True)), said
