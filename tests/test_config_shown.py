"""What ``check-config``, configuration errors and start-up's warnings show of the settings:
secrets redacted wherever they stand, and the non-secrets that tell things apart kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.build import build_info
from bridge.settings_checks import start_warnings
from tests.support import BridgeProcess, check_config, free_port, make_settings, run_bridge

pytestmark = pytest.mark.usefixtures("clean_env")

SECRET = "hunter2"


@pytest.fixture
def secret_folder(tmp_path: Path) -> Path:
    """A folder whose name reads as a password pair (``password=hunter2``)."""
    folder = tmp_path / f"password={SECRET}"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("variable", ["EXESDB_WEB_CONFIG_FILE", "EXESDB_WEBHOOK_CONFIG_FILE"])
def test_a_file_path_that_may_hold_a_secret_is_redacted_in_configuration_errors(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    secret_folder: Path,
    variable: str,
) -> None:
    """A file that cannot be read is named by its path, shown as every value is: a path such as
    /run/password=…/web.yml keeps its secret out of the error (exit 2, the variable named)."""
    status, out, err = check_config(monkeypatch, capsys, **{variable: str(secret_folder / "f")})
    assert (status, out) == (2, "")
    [problem] = err.splitlines()[1:]
    assert problem.startswith(f"  {variable}: ")
    assert "password=<redacted>" in problem
    assert SECRET not in err


def test_run_redacts_a_file_path_in_its_configuration_errors(secret_folder: Path) -> None:
    """`exesdb-bridge run` stops on the same unreadable file with the same redacted line."""
    completed = run_bridge(
        "run",
        env={
            "EXESDB_WEB_CONFIG_FILE": str(secret_folder / "web.yml"),
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
        },
    )
    assert completed.returncode == 2, completed.stderr
    assert "EXESDB_WEB_CONFIG_FILE: " in completed.stderr
    assert SECRET not in completed.stdout + completed.stderr


def test_a_receivers_file_path_that_may_hold_a_secret_is_redacted_in_its_warnings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], secret_folder: Path
) -> None:
    """A receivers file whose url_file cannot be read now is warned of, its path redacted."""
    receivers = secret_folder / "receivers.yml"
    receivers.write_text(f"webhook_configs:\n  - url_file: {secret_folder / 'url'}\n")
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_CONFIG_FILE=str(receivers), EXESDB_WEBHOOK_SECRET="k"
    )
    assert status == 0, err
    assert "cannot be read now" in err
    assert SECRET not in err


def test_a_node_name_that_may_hold_a_secret_is_redacted_in_every_line_derived_from_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_NODE is redacted as shown itself, and as part of where alert links go (unset
    EXESDB_EXTERNAL_URL) and of the warning that they name no host."""
    node = f"db password={SECRET}"
    status, out, err = check_config(
        monkeypatch, capsys, EXESDB_NODE=node, EXESDB_WEBHOOK_URLS="https://h.example/x"
    )
    assert status == 0, err
    assert SECRET not in out + err
    assert "alert links (generatorURL) would start with 'http://db password=<redacted>:9570'" in err
    settings = make_settings(EXESDB_NODE=node, EXESDB_WEBHOOK_URLS="https://h.example/x")
    assert settings.redacted()["EXESDB_EXTERNAL_URL"] == (
        "<unset: links in alerts go to http://db password=<redacted>:9570>"
    )
    assert not [note for note in start_warnings(settings, {}) if SECRET in note]


def test_an_external_url_with_a_query_or_fragment_stops_run_naming_the_variable() -> None:
    """`exesdb-bridge run` with an EXESDB_EXTERNAL_URL holding a query or fragment exits 2 before
    it listens: every alert link would add its path after the ? or #."""
    completed = run_bridge(
        "run",
        env={
            "EXESDB_EXTERNAL_URL": "https://x.example/bridge?via=sso#top",
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
        },
    )
    assert completed.returncode == 2, completed.stderr
    assert "EXESDB_EXTERNAL_URL: 'https://x.example/…' has a query or fragment" in completed.stderr
    assert "sso" not in completed.stderr


# The advice the EXESDB_WEBHOOK_URLS warning gives too (tests/config/test_warnings.py).
UNSIGNED = (
    "no secret nor secret_file, nor EXESDB_WEBHOOK_SECRET: deliveries go unsigned; set its secret"
    " (or secret_file) to a random key of at least 32 characters, e.g. $(openssl rand -hex 32),"
    " and give the receiver the same key to verify the X-ExESDB-Signature header"
)


@pytest.mark.parametrize("webhook_secret", [None, "k" * 32])
def test_check_config_warns_of_each_unsigned_receiver_of_the_receivers_file(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    webhook_secret: str | None,
) -> None:
    """A receiver of EXESDB_WEBHOOK_CONFIG_FILE with no secret nor secret_file, and no
    EXESDB_WEBHOOK_SECRET, is warned of by check-config as start-up warns of it, named as
    check-config lists it, with how to sign; one with its own secret, or with
    EXESDB_WEBHOOK_SECRET set, is not."""
    receivers = tmp_path / "receivers.yml"
    receivers.write_text(
        "webhook_configs:\n"
        "  - url: https://a.example/t0k3n\n"
        "  - url: https://b.example/t0k3n\n    secret: own-s3cret\n"
    )
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(receivers)}
    if webhook_secret is not None:
        env["EXESDB_WEBHOOK_SECRET"] = webhook_secret
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    warned = [line for line in err.splitlines() if "unsigned" in line]
    if webhook_secret is None:
        assert warned == [
            "exesdb-bridge: warning: "
            f"EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.0 https://a.example/…: {UNSIGNED}"
        ]
    else:
        assert warned == []
    assert "t0k3n" not in err
    assert "own-s3cret" not in err


def test_check_config_numbers_webhook_urls_as_run_names_their_receivers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two EXESDB_WEBHOOK_URLS on one origin show alike (their paths hold tokens): each is
    numbered, the number run's log gives the receiver beside its outbox key (``webhook receiver
    https://…#… is EXESDB_WEBHOOK_URLS item 2``)."""
    urls = "https://hooks.slack.com/services/AAAA,https://hooks.slack.com/services/BBBB"
    status, out, err = check_config(monkeypatch, capsys, EXESDB_WEBHOOK_URLS=urls)
    assert status == 0, err
    [line] = [line for line in out.splitlines() if line.startswith("EXESDB_WEBHOOK_URLS ")]
    assert line.split(None, 1)[1] == (
        "https://hooks.slack.com/… (item 1), https://hooks.slack.com/… (item 2)"
    )
    receivers, _ = make_settings(EXESDB_WEBHOOK_URLS=urls).webhook_receivers()
    assert [receiver.source for receiver in receivers] == [
        "EXESDB_WEBHOOK_URLS item 1",
        "EXESDB_WEBHOOK_URLS item 2",
    ]
    one = make_settings(EXESDB_WEBHOOK_URLS="https://hooks.slack.com/services/AAAA")
    assert one.redacted()["EXESDB_WEBHOOK_URLS"] == "https://hooks.slack.com/…"


def test_check_config_shows_the_external_url_whole_and_urls_that_may_hold_tokens_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_EXTERNAL_URL is shown with its path, the base of every alert's generatorURL (it
    holds no secret: a user, password, query or fragment is refused, and every alert sends
    it), and so are the origins of EXESDB_ALERT_LINK_ORIGINS; the webhook, Alertmanager and
    OTLP URLs, whose paths and queries may hold tokens, still show their origin only."""
    env = {
        "EXESDB_EXTERNAL_URL": "https://bridge.example:8443/ops/exesdb",
        "EXESDB_ALERT_LINK_ORIGINS": "https://wiki.example,https://runbooks.example:8443",
        "EXESDB_WEBHOOK_URLS": f"https://hooks.example/services/{SECRET}",
        "EXESDB_WEBHOOK_SECRET": "k" * 32,
        "EXESDB_ALERTMANAGER_URL": f"https://am.example/{SECRET}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://otlp.example:4318/?key={SECRET}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    status, out, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    shown = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith(" "))
    assert shown["EXESDB_EXTERNAL_URL"] == "https://bridge.example:8443/ops/exesdb"
    assert shown["EXESDB_ALERT_LINK_ORIGINS"] == (
        "https://wiki.example,https://runbooks.example:8443"
    )
    assert shown["EXESDB_WEBHOOK_URLS"] == "https://hooks.example/…"
    assert shown["EXESDB_ALERTMANAGER_URL"] == "https://am.example/…"
    assert shown["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otlp.example:4318/…"
    assert SECRET not in out + err


@pytest.mark.parametrize(
    ("bus", "shown"),
    [
        ("redis://default:pw@127.0.0.1:6379/2", "redis://default:<redacted>@127.0.0.1:6379/2"),
        ("rediss://127.0.0.1:6380/15?ssl_ca_certs=/ca.pem", "rediss://127.0.0.1:6380/15?…"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://u:pw@127.0.0.1:6379/?db=3", "redis://u:<redacted>@127.0.0.1:6379/…"),
        ("memory", "memory"),
    ],
)
def test_check_config_shows_the_redis_database_number(bus: str, shown: str) -> None:
    """EXESDB_BUS shows its database number (no secret), its password still redacted and its
    query as ?…."""
    assert make_settings(EXESDB_BUS=bus).redacted()["EXESDB_BUS"] == shown


def test_a_redis_password_holding_a_slash_is_refused_showing_no_piece_of_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A password with an unencoded "/" makes the rest of it read as the URL's path, which is no
    database number: check-config stops naming EXESDB_BUS, and no piece of the password (as
    host, port or path) is in its words."""
    bus = "redis://default:pa@ss/word@127.0.0.1:6379/0"
    status, out, err = check_config(monkeypatch, capsys, EXESDB_BUS=bus)
    assert (status, out) == (2, "")
    [problem] = err.splitlines()[1:]
    assert problem.startswith("  EXESDB_BUS: ")
    assert not {"pa", "ss", "word"} & set(re.findall(r"[a-z]+", problem.split(": ", 1)[1]))


def test_run_warns_once_of_an_unsigned_receiver_of_the_receivers_file(tmp_path: Path) -> None:
    """Start-up warns of a receiver of EXESDB_WEBHOOK_CONFIG_FILE that signs nothing once, in the
    words check-config uses, not again from the alert sink."""
    receivers = tmp_path / "receivers.yml"
    receivers.write_text(f"webhook_configs:\n  - url: http://127.0.0.1:{free_port()}/t0k3n\n")
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_WEBHOOK_CONFIG_FILE=str(receivers))
    try:
        bridge.start(tmp_path)
        # The alert sink starts before the port answers: its lines are in the log by now.
        assert "listening on" in bridge.log()
    finally:
        assert bridge.stop() == 0
    warned = [line for line in bridge.log().splitlines() if "unsigned" in line]
    assert len(warned) == 1, warned
    assert UNSIGNED in warned[0]
    assert "t0k3n" not in bridge.log()


def test_an_unsigned_receiver_named_by_a_url_file_path_that_may_hold_a_secret_is_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], secret_folder: Path
) -> None:
    """check-config's warning of an unsigned receiver of the receivers file names it by its
    url_file path, redacted as every other line is (a folder named ``password=…``)."""
    url_file = secret_folder / "url"
    url_file.write_text("https://h.example/t0k3n\n")
    receivers = secret_folder / "receivers.yml"
    receivers.write_text(f"webhook_configs:\n  - url_file: {url_file}\n")
    status, _, err = check_config(monkeypatch, capsys, EXESDB_WEBHOOK_CONFIG_FILE=str(receivers))
    assert status == 0, err
    [warned] = [line for line in err.splitlines() if UNSIGNED in line]
    assert "url_file:" in warned
    assert SECRET not in err


def test_check_config_shows_each_default_as_the_configuration_page_writes_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With nothing set, every setting whose default docs/configuration.md gives as a value
    (`85`, `10`, `memory`) is shown by check-config as written there, not as `85.0`."""
    from tests.support import ROOT

    documented = dict(
        re.findall(
            r"^\| `([A-Z_]+)` \| `([^`|]+)` \|",
            (ROOT / "docs" / "configuration.md").read_text(),
            re.MULTILINE,
        )
    )
    status, out, _ = check_config(monkeypatch, capsys)
    assert status == 0
    shown = dict(line.split(None, 1) for line in out.splitlines())
    unlike = {
        variable: (default, shown[variable].strip())
        for variable, default in documented.items()
        if shown[variable].strip() != default
    }
    assert len(documented) > 40
    assert not unlike, unlike


def test_an_unset_revision_is_shown_as_the_one_build_info_reports(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config shows what exesdb_build_info will carry when EXESDB_REVISION is unset (the
    test run's editable install: its clone's commit), not a bare <unset>; a set one as given."""
    status, out, err = check_config(monkeypatch, capsys)
    assert status == 0, err
    revision = build_info().revision
    assert re.search(
        rf"^EXESDB_REVISION +<unset: {revision}, as exesdb_build_info shows it>$", out, re.M
    ), out
    assert make_settings(EXESDB_REVISION="f00d").redacted()["EXESDB_REVISION"] == "f00d"
