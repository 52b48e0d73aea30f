"""The warnings at start and by ``check-config``: a value an env file left a comment or quotes in,
unsigned webhooks, a short secret or admin token, a receiver that is no Alertmanager."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.settings import Settings
from bridge.settings_checks import MIN_SECRET_LENGTH, start_warnings
from tests.config.helpers import SHORT_SECRET
from tests.support import TEST_SECRET, check_config, pem_files

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize("length", [256, 5000])
def test_a_node_name_too_long_is_told_its_length_and_the_limit_not_shown_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], length: int
) -> None:
    """EXESDB_NODE past 255 characters is a bad configuration naming the variable, its length
    and the limit, without the value (which pydantic's words would have repeated whole)."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_NODE="n" * length)
    assert status == 2
    [line] = [line for line in err.splitlines() if "EXESDB_NODE" in line]
    assert line == f"  EXESDB_NODE: has {length} characters; at most 255 are allowed"


@pytest.mark.parametrize(("secret", "warned"), [(None, True), ("", True), ("s3cr3t", False)])
def test_webhooks_without_a_signing_key_are_warned_about_even_when_it_is_set_empty(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    secret: str | None,
    warned: bool,
) -> None:
    """EXESDB_WEBHOOK_URLS without EXESDB_WEBHOOK_SECRET warns that deliveries go unsigned, and
    how to sign them; set but empty (the shipped Kubernetes Secret's value) is no key and warns
    the same."""
    monkeypatch.delenv("EXESDB_WEBHOOK_SECRET", raising=False)
    if secret is not None:
        monkeypatch.setenv("EXESDB_WEBHOOK_SECRET", secret)
    status, out, err = check_config(monkeypatch, capsys, EXESDB_WEBHOOK_URLS="https://h.example/")
    assert status == 0
    assert (
        "EXESDB_WEBHOOK_SECRET is not set: webhook deliveries go unsigned; set it to a random key"
        " of at least 32 characters, e.g. $(openssl rand -hex 32), and give each receiver the same"
        " key to verify the X-ExESDB-Signature header" in err
    ) is warned
    assert re.search(r"^EXESDB_WEBHOOK_SECRET +<unset>$", out, re.M) is not None or not warned


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # docker --env-file and systemd EnvironmentFile= keep a comment after a value in it.
        ("SECRET_KEY_BASE", f"{TEST_SECRET} # the cluster's key"),
        ("EXESDB_ADMIN_TOKEN", "0123456789abcdef0123 # ops"),
        ("EXESDB_NODE", "bridge-1 # this host"),
        # systemd drops the quotes of "v" # note, the blank before the '#' with them.
        ("EXESDB_WEBHOOK_SECRET", f"{TEST_SECRET}# the receivers' key"),
    ],
)
def test_a_value_an_env_file_left_a_comment_in_is_warned_about_unshown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    """A setting taken with what reads as an env file's comment in it is warned about, the
    warning naming the variable, never its value (it may be a secret)."""
    status, _, err = check_config(monkeypatch, capsys, **{variable: value})
    assert status == 0
    assert (
        f"exesdb-bridge: warning: {variable} holds what reads as a comment written after its value"
        " in an env file (a '#' beside a blank; the value not shown): docker --env-file and"
        " systemd EnvironmentFile= keep it as part of the value; put the comment on a line of its"
        " own" in err
    )
    assert value.partition("#")[2] not in err


def test_a_value_refused_for_an_env_file_s_comment_is_followed_by_the_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused value holding an env file's comment is followed by the warning saying why."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_INGEST="true # on")
    assert status == 2
    problem, _, warnings = err.partition("exesdb-bridge: warning: ")
    assert "EXESDB_INGEST: must be true or false" in problem
    assert "EXESDB_INGEST holds what reads as a comment written after its value" in warnings


@pytest.mark.parametrize(
    "variable",
    [
        "EXESDB_URL",
        "EXESDB_EXTERNAL_URL",
        "EXESDB_WEBHOOK_URLS",
        "EXESDB_ALERTMANAGER_URL",
        "EXESDB_ALERT_LINK_ORIGINS",
    ],
)
def test_a_url_setting_refuses_an_env_file_s_comment_saying_so_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    """A URL setting with an env file's comment in it is refused saying so, without the
    warning every other setting gets besides."""
    status, _, err = check_config(monkeypatch, capsys, **{variable: "https://h.example # hooks"})
    assert status == 2
    assert "holds a comment (' #…') after the URL: an env file" in err
    assert "holds what reads as a comment" not in err


@pytest.mark.parametrize(
    ("variable", "value", "status"),
    [
        ("SECRET_KEY_BASE", f'"{TEST_SECRET}"', 0),  # taken: it would sign with its quotes
        ("EXESDB_WEBHOOK_URLS", "'https://hooks.example/t0k3n'", 2),  # refused as no URL
        ("EXESDB_INGEST", "'true'", 2),
    ],
)
def test_a_value_in_quotes_is_warned_about_unshown(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    status: int,
) -> None:
    """A setting wholly in quotes, as docker --env-file passes "X='v'" on, is warned about by
    name, its value never shown: taken, or after the problem its refusal names."""
    found, _, err = check_config(monkeypatch, capsys, **{variable: value})
    assert found == status
    quote = value[0]
    assert err.endswith(
        f"exesdb-bridge: warning: {variable} is in quotes ({quote}…{quote}, the value not shown):"
        " docker --env-file keeps them as part of the value, as compose does those of"
        f" '- {variable}=\"…\"' under environment:; write it without quotes\n"
    ), err
    assert "t0k3n" not in err
    assert TEST_SECRET not in err


@pytest.mark.parametrize(
    ("env", "fault"),
    [
        ({"EXESDB_INGEST": "true"}, "is not set"),
        ({"EXESDB_INGEST": "true", "SECRET_KEY_BASE": SHORT_SECRET}, "has 18 characters"),
        ({"EXESDB_BUS": "redis://localhost:6379"}, "is not set"),
        ({"EXESDB_BUS": "redis://localhost", "SECRET_KEY_BASE": "x" * 31}, "has 31 characters"),
    ],
)
def test_ingest_or_redis_need_a_long_secret(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    fault: str,
) -> None:
    """With ingest or a Redis bus, SECRET_KEY_BASE must be set and at least 32 characters."""
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 2
    assert f"SECRET_KEY_BASE: {fault}" in err
    assert f"at least {MIN_SECRET_LENGTH} characters" in err


@pytest.mark.parametrize(
    "env",
    [
        {"EXESDB_INGEST": "true", "SECRET_KEY_BASE": "x" * MIN_SECRET_LENGTH},
        {"EXESDB_BUS": "redis://localhost", "SECRET_KEY_BASE": "x" * MIN_SECRET_LENGTH},
    ],
)
def test_a_secret_of_32_characters_is_enough(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    """Exactly 32 characters satisfy the length rule."""
    status, _, _ = check_config(monkeypatch, capsys, **env)
    assert status == 0


def test_a_rediss_url_takes_a_private_ca_and_a_client_certificate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """EXESDB_BUS takes redis-py's TLS options in its query, as docs/redis.md shows them (files
    that load: tests/bus/redis/test_tls_files.py has those that do not)."""
    files = pem_files(tmp_path)
    url = (
        f"rediss://redis:6380/0?ssl_ca_certs={files['ca.pem']}&ssl_certfile={files['client.pem']}"
        f"&ssl_keyfile={files['client.key']}"
    )
    status, _, err = check_config(monkeypatch, capsys, EXESDB_BUS=url, SECRET_KEY_BASE="x" * 32)
    assert status == 0, err


@pytest.mark.parametrize(
    ("env", "warning"),
    [
        ({"SECRET_KEY_BASE": SHORT_SECRET}, "SECRET_KEY_BASE is shorter than 32"),
        ({"EXESDB_WEBHOOK_URLS": "http://hook.example/"}, "EXESDB_WEBHOOK_SECRET is not set"),
        ({"EXESDB_WEBHOOK_SECRET": "change-me"}, "EXESDB_WEBHOOK_SECRET is shorter than 32"),
    ],
)
def test_without_ingest_or_redis_a_short_secret_only_warns(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    warning: str,
) -> None:
    """On the in-process bus a short secret is a warning, not a stop (a missing one is not even
    a warning: tests/test_app.py)."""
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0
    assert f"exesdb-bridge: warning: {warning}" in err


LINKS_WARNING = "alert links (generatorURL) would start with"


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"EXESDB_NODE": "exesdb-1@host-1"}, "'http://exesdb-1@host-1:9570'"),
        ({"EXESDB_NODE": "db 1"}, "'http://db 1:9570'"),
        ({"EXESDB_NODE": "db-1.example", "EXESDB_HTTP_ADDR": "[::]:9570"}, None),
        ({"EXESDB_NODE": "db_1"}, None),
        ({"EXESDB_NODE": "x@y", "EXESDB_EXTERNAL_URL": "https://bridge.example"}, None),
        ({"EXESDB_NODE": "x@y", "EXESDB_HTTP_ADDR": "10.0.0.5:9570"}, None),
    ],
)
def test_a_node_name_that_is_no_host_name_in_alert_links_is_warned_of(
    env: dict[str, Any], warned: str | None
) -> None:
    """With receivers, no EXESDB_EXTERNAL_URL and a wildcard listen address, alert links name
    the node as their host: an Erlang-style name@host or a name with a space is no host, so
    start-up and check-config warn, naming the link and the setting that mends it."""
    settings = Settings(EXESDB_WEBHOOK_URLS="https://hooks.example/x", **env)
    notes = [note for note in start_warnings(settings, {}) if note.startswith(LINKS_WARNING)]
    if warned is None:
        assert notes == []
    else:
        assert notes == [
            f"{LINKS_WARNING} {warned}, which names no host (EXESDB_NODE stands for a wildcard"
            " EXESDB_HTTP_ADDR): set EXESDB_EXTERNAL_URL to the bridge's URL as people reach it"
        ]
    without_receivers = start_warnings(Settings(**env), {})
    assert not [note for note in without_receivers if note.startswith(LINKS_WARNING)]


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({}, None),
        ({"EXESDB_SERIES_TTL_MS": "120000"}, None),
        ({"EXESDB_SERIES_TTL_MS": "119999"}, ("EXESDB_METRICS_BROADCAST_INTERVAL", 60_000)),
        (
            {"EXESDB_SERIES_TTL_MS": "45000", "EXESDB_METRICS_BROADCAST_INTERVAL": "10000"},
            ("EXESDB_HEALTH_BROADCAST_INTERVAL", 30_000),
        ),
        ({"EXESDB_SERIES_TTL_MS": "30000"}, ("EXESDB_METRICS_BROADCAST_INTERVAL", 60_000)),
        ({"EXESDB_SERIES_TTL_MS": "1000", "EXESDB_PUBSUB_INTEGRATION": "false"}, None),
    ],
)
def test_a_series_ttl_under_two_collector_intervals_is_warned_of(
    env: dict[str, Any], warned: tuple[str, int] | None
) -> None:
    """A series TTL under twice the health or metrics interval loses the series (and resolves
    the health alerts they keep up) at one late reading: start-up and check-config warn, naming
    the interval and the least TTL that holds; with the collectors off it is not warned of."""
    settings = Settings(**env)
    notes = [n for n in start_warnings(settings, {}) if n.startswith("EXESDB_SERIES_TTL_MS")]
    if warned is None:
        assert notes == []
    else:
        name, interval = warned
        [note] = notes
        assert f"is under twice {name} ({interval} ms)" in note
        assert note.endswith(f"make it at least {2 * interval}")


@pytest.mark.parametrize("token", ["short-token", "  short-token   \n"])
def test_a_short_admin_token_is_warned_of(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], token: str
) -> None:
    """An admin token under 16 characters (surrounding whitespace not counted) can be guessed
    by trying over the network: check-config and start-up warn, without showing it."""
    status, out, err = check_config(monkeypatch, capsys, EXESDB_ADMIN_TOKEN=token)
    assert status == 0
    assert "exesdb-bridge: warning: EXESDB_ADMIN_TOKEN is shorter than 16 characters" in err
    assert token.strip() not in out + err


@pytest.mark.parametrize(
    ("endpoints", "warned"),
    [
        ({}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, False),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4317"}, False),
    ],
)
def test_otlp_metrics_without_an_endpoint_for_them_is_warned_of(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    endpoints: dict[str, str],
    warned: bool,
) -> None:
    """EXESDB_OTLP_METRICS=true with no endpoint the metrics could go to exports nothing:
    check-config and start-up say so rather than leave it silent."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_OTLP_METRICS="true", **endpoints)
    assert status == 0
    said = (
        "exesdb-bridge: warning: "
        "EXESDB_OTLP_METRICS is true but neither OTEL_EXPORTER_OTLP_ENDPOINT nor "
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set: no metrics are exported over OTLP"
    )
    assert (said in err) is warned


def test_an_admin_token_of_16_characters_is_not_warned_of(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """16 characters satisfy the admin token's length rule."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_ADMIN_TOKEN="t" * 16)
    assert status == 0
    assert "EXESDB_ADMIN_TOKEN" not in err


def _receivers_checked(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    urls: str,
    file: str,
) -> str:
    """What check-config says (it passes) of receivers given in EXESDB_WEBHOOK_URLS (``urls``)
    and a receivers file (``file``), either left out when empty."""
    env = {"EXESDB_WEBHOOK_SECRET": "k" * 32}
    if urls:
        env["EXESDB_WEBHOOK_URLS"] = urls
    if file:
        (tmp_path / "receivers.yml").write_text(file)
        env["EXESDB_WEBHOOK_CONFIG_FILE"] = str(tmp_path / "receivers.yml")
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    return err


@pytest.mark.parametrize(
    ("urls", "file", "warned"),
    [
        ("http://am:9093/api/v1/alerts/", "", ["EXESDB_WEBHOOK_URLS item 1 http://am:9093/…"]),
        (
            "",
            "webhook_configs:\n  - url: https://am.example/alertmanager/api/v2/alerts\n",
            ["EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.0 https://am.example/…"],
        ),
        ("http://hooks:8080/api/v2/alerts/new,http://hooks:8080/alerts", "", []),
    ],
    ids=["v1, trailing slash", "file, behind a path", "other paths"],
)
def test_a_webhook_receiver_at_alertmanagers_alerts_api_is_warned_of(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    urls: str,
    file: str,
    warned: list[str],
) -> None:
    """A receiver whose URL path ends in Alertmanager's alerts API (v1 or v2), given in
    EXESDB_WEBHOOK_URLS or the receivers file, is warned of, named as check-config names
    receivers (no path shown); a path that merely holds it is not."""
    err = _receivers_checked(tmp_path, monkeypatch, capsys, urls, file)
    lines = [line for line in err.splitlines() if "Alertmanager's alerts API" in line]
    assert [
        line.partition(": its path")[0].removeprefix("exesdb-bridge: warning: ") for line in lines
    ] == warned
    assert "alertmanager/api" not in err


@pytest.mark.parametrize(
    ("urls", "file", "warned"),
    [
        (
            "https://hooks.slack.com/services/T0/B0/tok3n,https://discord.com/api/webhooks/1/tok3n",
            "",
            [
                ("EXESDB_WEBHOOK_URLS item 1 https://hooks.slack.com/…", "Slack", "slack"),
                ("EXESDB_WEBHOOK_URLS item 2 https://discord.com/…", "Discord", "discord"),
            ],
        ),
        (
            "",
            "webhook_configs:\n  - url: https://discordapp.com/api/v10/webhooks/1/tok3n\n",
            [
                (
                    "EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.0 https://discordapp.com/…",
                    "Discord",
                    "discord",
                )
            ],
        ),
        (
            "https://canary.discord.com/api/webhooks/1/tok3n",
            "",
            [("EXESDB_WEBHOOK_URLS item 1 https://canary.discord.com/…", "Discord", "discord")],
        ),
        (
            "https://hooks.slack-gov.com/services/T0/B0/tok3n",
            "",
            [("EXESDB_WEBHOOK_URLS item 1 https://hooks.slack-gov.com/…", "Slack", "slack")],
        ),
        # Slack's workflow webhooks take variables of one's own; other hosts are anyone's.
        ("https://hooks.slack.com/workflows/T0/A0/tok3n,https://hooks.example/services/x", "", []),
    ],
    ids=[
        "slack and discord",
        "file, discord's versioned api",
        "discord's test client's host",
        "govslack's host",
        "workflow, other hosts",
    ],
)
def test_a_chat_service_s_incoming_webhook_as_a_receiver_is_warned_of(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    urls: str,
    file: str,
    warned: list[tuple[str, str, str]],
) -> None:
    """A Slack or Discord incoming webhook given as a receiver, which takes its service's own
    message and answers the bridge's Alertmanager-format notification 400 (every delivery
    dead-lettered), is warned of with the way there, Alertmanager's receiver for it; its path,
    a token, is not shown."""
    err = _receivers_checked(tmp_path, monkeypatch, capsys, urls, file)
    lines = [line for line in err.splitlines() if "incoming webhook" in line]
    assert lines == [
        f"exesdb-bridge: warning: {who}: it is a {service} incoming webhook, which takes"
        f" {service}'s own message, not the Alertmanager-format notification the bridge sends,"
        f" and answers every delivery 400: send alerts to {service} through an Alertmanager with"
        f" a {configs}_configs receiver (EXESDB_ALERTMANAGER_URL), or a relay that turns the"
        f" notification into a {service} message"
        for who, service, configs in warned
    ]
    assert "tok3n" not in err
