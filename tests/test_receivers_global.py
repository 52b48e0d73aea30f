"""The receivers file's global section, as Alertmanager's: global.http_config the whole
http_config of each receiver giving none, warned of when none takes it or its files cannot be
read, its other keys accepted and warned of."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.receivers import read_receivers_file, resolve_receivers
from tests.receivers_support import check_file, write
from tests.support import ALERTMANAGER_GLOBAL, BridgeProcess, free_port

pytestmark = pytest.mark.usefixtures("clean_env")


def test_global_http_config_is_the_whole_http_config_of_each_receiver_giving_none(
    tmp_path: Path,
) -> None:
    """As Alertmanager applies it: a receiver without http_config (or with a null one) takes
    global.http_config whole, paths from the file's folder; one giving its own (even {}) keeps
    it alone, nothing of global's merged in; the alertmanager section takes none of it."""
    path = write(
        tmp_path,
        ALERTMANAGER_GLOBAL + "webhook_configs:\n"
        "  - url: https://inherits.example.com/hook\n"
        "  - url: https://own.example.com/hook\n"
        "    http_config:\n      proxy_url: http://proxy.example.com:3128\n"
        "  - url: https://null.example.com/hook\n    http_config:\n"
        "  - url: https://empty.example.com/hook\n    http_config: {}\n"
        "alertmanager:\n  url: http://am.example.com:9093\n",
    )
    read = read_receivers_file(path)
    assert read.problems == ()
    assert read.inheriting == (0, 2)
    receivers, alertmanager = resolve_receivers(
        [], read, secret=None, timeout=5.0, max_alerts=50, min_severity="warning"
    )
    inherits, own, null, empty = (receiver.http_config for receiver in receivers)
    for config in (inherits, null):
        assert config.authorization is not None
        assert config.authorization.credentials_file == str(tmp_path / "token")
        assert config.tls_config.ca_file == str(tmp_path / "ca.pem")
        assert config.follow_redirects is True
    assert own.summary() == "proxy http://proxy.example.com:3128"
    assert empty.summary() == "no http_config"
    assert alertmanager is not None
    assert alertmanager.http_config.summary() == "no http_config"


def test_a_whole_alertmanager_global_section_loads_and_its_other_keys_are_warned_of_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alertmanager's global section pasted whole, as its dump prints it (<secret> in the keys
    of other integrations, which nothing sends), loads: check-config exits 0 and warns once,
    naming each key given that the bridge does not read, never a value."""
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "ca.pem").write_text("")
    text = ALERTMANAGER_GLOBAL + "webhook_configs:\n  - url: https://h/hook\n"
    status, _, err = check_file(monkeypatch, capsys, tmp_path, text)
    assert status == 0, err
    [warning] = [line for line in err.splitlines() if "ignored" in line]
    assert warning == (
        "exesdb-bridge: warning: "
        "EXESDB_WEBHOOK_CONFIG_FILE global: resolve_timeout, smtp_from, smtp_hello,"
        " smtp_smarthost, smtp_auth_password, smtp_require_tls, smtp_tls_config, slack_api_url,"
        " pagerduty_url, opsgenie_api_url, telegram_api_url ignored: the bridge reads only"
        " global.http_config (the other keys set up Alertmanager's e-mail, Slack, PagerDuty and"
        " other integrations, which the bridge does not have; its resolve_timeout is"
        " EXESDB_ALERT_RESOLVE_TIMEOUT_MS)"
    )
    assert "example.com" not in warning


def test_check_config_says_which_receivers_take_global_http_config_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config shows global.http_config on each receiver taking it, said to come from
    there, its credentials redacted; a tls_config taken from global by an http:// receiver is
    not warned of as having no effect (it is there for the https:// ones), its own is."""
    text = (
        "global:\n  http_config:\n    authorization: {credentials: gl0bal-tok3n}\n"
        "    tls_config: {insecure_skip_verify: true}\n"
        "webhook_configs:\n  - url: http://plain.example.com/hook\n"
        "  - url: http://own.example.com/hook\n    http_config:\n"
        "      tls_config: {insecure_skip_verify: true}\n"
    )
    status, out, err = check_file(monkeypatch, capsys, tmp_path, text)
    assert status == 0, err
    assert "tok3n" not in out + err
    inherits, own = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert inherits.endswith(
        "; from global.http_config: authorization Bearer (credentials <set, redacted>);"
        " tls_config insecure_skip_verify true"
    )
    assert own.endswith("; tls_config insecure_skip_verify true")
    [warned] = [line for line in err.splitlines() if "tls_config is set" in line]
    assert "webhook_configs.1 http://own.example.com/…: tls_config is set" in warned


def test_credentials_in_a_url_beside_those_it_takes_from_global_are_a_problem(
    tmp_path: Path,
) -> None:
    """A receiver with user:password@ in its URL and no http_config would send global's
    credentials too, which no request can carry: a problem naming it, said beside the file's
    other problems, no secret shown; its own http_config (even {}) takes none from global."""
    path = write(
        tmp_path,
        "global:\n  http_config: {authorization: {credentials: gl0bal-tok3n}}\n"
        "webhook_configs:\n  - url: http://u:hook-tok3n@h/a\n"
        "  - url: http://u:hook-tok3n@h/b\n    http_config: {}\n"
        "  - {url: http://h/c, colour: red}\n",
    )
    problems = [problem.removeprefix(f"{path}: ") for problem in read_receivers_file(path).problems]
    assert problems == [
        "webhook_configs.2.colour: unknown key; allowed here: url, url_file, send_resolved,"
        " max_alerts, timeout, http_config, secret, secret_file, min_severity",
        "webhook_configs.0: url holds credentials (user:password@) and global.http_config,"
        " taken as it gives no http_config, sets authorization, basic_auth or oauth2: give them"
        " in one place",
    ]


# A global.http_config sending a token: the receivers giving no http_config take it.
GLOBAL_TOKEN = "global:\n  http_config: {authorization: {credentials: gl0bal-tok3n}}\n"


def test_receivers_of_exesdb_webhook_urls_never_take_global_http_config(tmp_path: Path) -> None:
    """An EXESDB_WEBHOOK_URLS receiver has only the environment's defaults, no http_config,
    beside the file's receiver giving none, which takes global.http_config."""
    read = read_receivers_file(write(tmp_path, GLOBAL_TOKEN + "webhook_configs: [{url: http://f}]"))
    receivers, _ = resolve_receivers(
        ["http://env/h"], read, secret=None, timeout=5.0, max_alerts=50, min_severity="warning"
    )
    from_env, from_file = receivers
    assert from_env.source == "EXESDB_WEBHOOK_URLS item 1"
    assert from_env.http_config.summary() == "no http_config"
    assert from_file.http_config.summary() == "authorization Bearer (credentials <set, redacted>)"


@pytest.mark.parametrize(
    ("rest", "status", "warned"),
    [
        pytest.param("alertmanager: {url: http://am.example.com:9093}\n", 0, True, id="no-hooks"),
        pytest.param(
            "webhook_configs:\n  - {url: https://own.example.com/h, http_config: {}}\n",
            0,
            True,
            id="each-its-own",
        ),
        pytest.param(
            "webhook_configs:\n  - {url: https://own.example.com/h, http_config: {}}\n"
            "  - url: https://takes.example.com/h\n",
            0,
            False,
            id="one-takes-it",
        ),
        pytest.param(
            "webhook_configs:\n  - {url: https://bad.example.com/h, colour: red}\n",
            2,
            False,
            id="a-bad-one-takes-it",
        ),
        pytest.param(
            "webhook_configs:\n  - {url: https://bad.example.com/h, colour: red,"
            " http_config: {}}\n",
            2,
            True,
            id="a-bad-one-gives-its-own",
        ),
    ],
)
def test_a_global_http_config_no_receiver_takes_is_warned_of(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rest: str,
    status: int,
    warned: bool,
) -> None:
    """A global.http_config no receiver takes (each of the file's gives its own, or there are
    none, the EXESDB_WEBHOOK_URLS receivers and the alertmanager section never taking it) is
    warned of once, saying why, no secret shown; not when a receiver of the file, even one with
    a problem, gives none."""
    status_got, _, err = check_file(
        monkeypatch, capsys, tmp_path, GLOBAL_TOKEN + rest, EXESDB_WEBHOOK_URLS="https://env.x/h"
    )
    assert status_got == status, err
    assert "tok3n" not in err
    said = [line.split("warning: ", 1)[1] for line in err.splitlines() if "by no receiver" in line]
    assert said == (
        [
            "EXESDB_WEBHOOK_CONFIG_FILE global: http_config is taken by no receiver: only a"
            " receiver in webhook_configs without an http_config of its own takes it, and there"
            " is none; EXESDB_WEBHOOK_URLS receivers and the alertmanager section never take it"
            " (list a receiver needing it in webhook_configs without http_config, or give it"
            " those keys in its own)"
        ]
        if warned
        else []
    ), err


# Three receivers taking global.http_config, whose files are missing, one of them http://; and
# one naming the same CA file in an http_config of its own.
GLOBAL_FILES_UNREADABLE = """
global:
  http_config:
    authorization: {credentials_file: missing-token}
    tls_config: {ca_file: missing-ca.pem}
webhook_configs:
  - url: https://one.example.com/hook
  - url: http://plain.example.com/hook
    secret_file: missing-secret
  - url: https://three.example.com/hook
  - url: https://own.example.com/hook
    http_config: {tls_config: {ca_file: missing-ca.pem}}
"""


def test_a_file_global_http_config_names_is_warned_of_once_under_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of global.http_config that cannot be read now is warned of once, by its key in
    global, naming the receivers taking it that read it (not an http:// one for its tls_config),
    not once per receiver by each one's name; a receiver's own files are still warned of by it."""
    status, _, err = check_file(monkeypatch, capsys, tmp_path, GLOBAL_FILES_UNREADABLE)
    assert status == 0, err
    warned = [
        line.removeprefix("exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE ")
        for line in err.splitlines()
        if "cannot be read now" in line
    ]
    missing = "cannot be read now (No such file or directory);"
    retried = "fail and are retried until it can be"
    ca, token, secret = (
        tmp_path / name for name in ("missing-ca.pem", "missing-token", "missing-secret")
    )
    assert warned == [
        f"webhook_configs.1 http://plain.example.com/…: secret_file {secret} {missing} its"
        f" deliveries {retried}",
        f"webhook_configs.3 https://own.example.com/…: tls_config.ca_file {ca} {missing} its"
        f" deliveries {retried}",
        f"global.http_config.tls_config.ca_file {ca} {missing} the deliveries of the receivers"
        f" taking it (webhook_configs.0, webhook_configs.2) {retried}",
        f"global.http_config.authorization.credentials_file {token} {missing} the deliveries of"
        f" the receivers taking it (webhook_configs.0, webhook_configs.1, webhook_configs.2)"
        f" {retried}",
    ], err


def test_run_logs_the_global_keys_it_does_not_read_once_at_start(tmp_path: Path) -> None:
    """``run`` with Alertmanager's global section pasted starts, and its log names the keys it
    does not read in one warning, said once."""
    receivers = write(
        tmp_path,
        "global:\n  resolve_timeout: 5m\n  smtp_auth_password: <secret>\n"
        f"webhook_configs:\n  - url: http://127.0.0.1:{free_port()}/h\n",
    )
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_WEBHOOK_CONFIG_FILE=str(receivers))
    try:
        bridge.start(tmp_path)
        # The alert sink starts before the port answers: start-up is over.
        assert "alerts: 1 webhook receiver(s)" in bridge.log()
        warned = [line for line in bridge.log().splitlines() if " ignored: " in line]
        assert len(warned) == 1, bridge.log()
        assert "global: resolve_timeout, smtp_auth_password ignored: " in warned[0]
    finally:
        assert bridge.stop() == 0
