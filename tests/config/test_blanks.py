"""Blanks around a value trimmed, and a setting set to the empty string or blanks taken as
unset."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import load_settings
from bridge.settings import known_variables
from bridge.settings_checks import MIN_SECRET_LENGTH
from tests.support import TEST_SECRET, run_in_process

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize(("value", "token"), [("tok\n", "tok"), ("  tok  ", "tok"), (" \n", None)])
def test_the_admin_token_is_trimmed_and_a_blank_one_is_none(
    monkeypatch: pytest.MonkeyPatch, value: str, token: str | None
) -> None:
    """EXESDB_ADMIN_TOKEN is taken without surrounding whitespace (a file's line break), for
    the bridge, its pages and the client commands alike; a blank one is no token."""
    monkeypatch.setenv("EXESDB_ADMIN_TOKEN", value)
    admin = load_settings().admin_token
    assert (admin.get_secret_value() if admin is not None else None) == token


# Stray blanks around a value: spaces, an env file's tab, a file's final line break.
SURROUNDING_BLANKS = [(" ", " "), ("", "\n"), ("\t", "")]


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("EXESDB_NODE", "node"),
        ("EXESDB_STATE_DIR", "state_dir"),
        ("EXESDB_WEB_CONFIG_FILE", "web_config_file"),
        ("EXESDB_WEBHOOK_CONFIG_FILE", "webhook_config_file"),
        ("EXESDB_HEALTHCHECK_PASSWORD_FILE", "healthcheck_password_file"),
        ("EXESDB_HEALTHCHECK_CERT_FILE", "healthcheck_cert_file"),
        ("EXESDB_HEALTHCHECK_KEY_FILE", "healthcheck_key_file"),
    ],
)
@pytest.mark.parametrize("blanks", SURROUNDING_BLANKS, ids=repr)
def test_a_node_name_or_path_is_taken_without_surrounding_blanks(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    field: str,
    blanks: tuple[str, str],
) -> None:
    """EXESDB_NODE and the path settings are taken without the blanks around them (a stray
    space in an env file, a file's line break), as EXESDB_ADMIN_TOKEN is: " /tmp/x" is not a
    folder named so in the working directory, nor " n1 " a node apart from "n1"."""
    value = "n1" if variable == "EXESDB_NODE" else str(tmp_path / "file.yml")
    (tmp_path / "file.yml").write_text("{}\n")
    if variable == "EXESDB_STATE_DIR":  # a directory, as it must be
        value = str(tmp_path / "state")
    if variable in ("EXESDB_HEALTHCHECK_CERT_FILE", "EXESDB_HEALTHCHECK_KEY_FILE"):
        for pair in ("EXESDB_HEALTHCHECK_CERT_FILE", "EXESDB_HEALTHCHECK_KEY_FILE"):
            monkeypatch.setenv(pair, value)  # a client certificate needs both
    monkeypatch.setenv(variable, blanks[0] + value + blanks[1])
    assert getattr(load_settings(), field) == value


@pytest.mark.parametrize(
    ("variable", "field", "value"),
    [
        ("EXESDB_URL", "url", "http://127.0.0.1:9570"),
        ("EXESDB_EXTERNAL_URL", "external_url", "https://bridge.example:9570"),
        ("EXESDB_ALERTMANAGER_URL", "alertmanager_url", "http://alertmanager:9093"),
        ("EXESDB_BUS", "bus", "redis://redis:6379/0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otlp_traces_endpoint", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "otlp_logs_endpoint", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "otlp_metrics_endpoint", "collector:4317"),
    ],
)
@pytest.mark.parametrize("blanks", SURROUNDING_BLANKS, ids=repr)
def test_a_url_setting_is_taken_without_surrounding_blanks(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    field: str,
    value: str,
    blanks: tuple[str, str],
) -> None:
    """A URL setting is taken without the blanks around it, as the receivers of
    EXESDB_WEBHOOK_URLS are: a stray space in an env file is neither refused as "not a URL" (or
    as a Redis database that is no number) nor kept in every alert's link
    (" https://bridge.example:9570/alerts/…")."""
    monkeypatch.setenv("SECRET_KEY_BASE", TEST_SECRET)  # a Redis bus needs one
    monkeypatch.setenv(variable, blanks[0] + value + blanks[1])
    assert getattr(load_settings(), field) == value


@pytest.mark.parametrize(
    ("variable", "typed", "field", "taken"),
    [
        ("EXESDB_INGEST", "true ", "ingest", True),
        ("EXESDB_PUBSUB_INTEGRATION", " off", "pubsub_integration", False),
        ("EXESDB_OTLP_METRICS", "yes\n", "otlp_metrics", True),
        ("OTEL_SDK_DISABLED", "TRUE ", "otel_sdk_disabled", True),
        ("EXESDB_LOG_LEVEL", "info ", "log_level", "info"),
        ("EXESDB_LOG_FORMAT", " JSON", "log_format", "json"),
        ("EXESDB_WEBHOOK_MIN_SEVERITY", "error\t", "webhook_min_severity", "error"),
        ("OTEL_TRACES_EXPORTER", "none ", "otel_traces_exporter", "none"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf ", "otlp_protocol", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", " grpc", "otlp_logs_protocol", "grpc"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip ", "otlp_compression", "gzip"),
    ],
)
def test_a_switch_or_word_is_taken_without_surrounding_blanks(
    monkeypatch: pytest.MonkeyPatch, variable: str, typed: str, field: str, taken: object
) -> None:
    """A boolean, a level, a format or a protocol is one word, the blanks around it stray ones
    (an env file's "EXESDB_INGEST=true "), as they are around a number: not refused as
    "must be true or false (got 'true ')"."""
    monkeypatch.setenv("SECRET_KEY_BASE", TEST_SECRET)  # ingest needs one
    monkeypatch.setenv(variable, typed)
    assert getattr(load_settings(), field) == taken


# Set but holding nothing: empty, or blanks only (a stray space in a .env file or a YAML value,
# a value read from a file with only its line break).
BLANKS = ("", " ", "  \t", " \n")


@pytest.mark.parametrize("value", BLANKS, ids=repr)
@pytest.mark.parametrize("variable", sorted(known_variables()))
def test_every_setting_set_to_the_empty_string_or_blanks_is_unset(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A setting's variable set to "" (docker compose's ${X:-}, an empty Kubernetes value), or
    to blanks only ("  "), resolves to what it is when unset, as OpenTelemetry's specification
    asks of an empty one: never a refusal, a blank path, URL or name, or a blank secret."""
    unset = load_settings()
    monkeypatch.setenv(variable, value)
    assert load_settings() == unset


# A sample of the settings whose empty value was refused or taken as given, and an unknown name.
EMPTY_SAMPLE = (
    "EXESDB_NODE",
    "EXESDB_ALERT_FOR_MS",
    "EXESDB_HTTP_ADDR",
    "EXESDB_LOG_LEVEL",
    "EXESDB_PUBSUB_INTEGRATION",
    "EXESDB_STATE_DIR",
    "EXESDB_WEBHOOK_MIN_SEVERITY",
    "EXESDB_WEBHOOK_URLS",
    "EXESDB_EXTERNAL_URL",
    "SECRET_KEY_BASE",
    "EXESDB_WEBHOOK_URL",
)


@pytest.mark.parametrize("value", ["", "  ", "\t \n"], ids=repr)
def test_check_config_shows_empty_or_blank_variables_as_unset(value: str) -> None:
    """`check-config` with a sample of variables set to "" or to blanks only prints and warns
    exactly what it does with none of them set, an empty SECRET_KEY_BASE as <unset>."""
    unset = run_in_process("check-config")
    empty = run_in_process("check-config", env=dict.fromkeys(EMPTY_SAMPLE, value))
    assert (empty.returncode, unset.returncode) == (0, 0), empty.stderr
    assert empty.stdout == unset.stdout
    assert empty.stderr == unset.stderr
    assert re.search(r"^SECRET_KEY_BASE +<unset>$", empty.stdout, re.M)


@pytest.mark.parametrize(
    ("env", "needs"),
    [
        ({"EXESDB_INGEST": "true"}, "EXESDB_INGEST=true"),
        ({"EXESDB_BUS": "redis://127.0.0.1:6379"}, "a Redis bus (EXESDB_BUS)"),
    ],
)
@pytest.mark.parametrize("value", ["", "   "], ids=repr)
def test_an_empty_secret_is_refused_as_an_unset_one_where_it_must_be_set(
    env: dict[str, str], needs: str, value: str
) -> None:
    """With ingest or a Redis bus, SECRET_KEY_BASE="" (or blanks) stops `check-config` (exit 2)
    with the very lines an unset one gives: no empty key ever signs or verifies."""
    unset = run_in_process("check-config", env=env)
    empty = run_in_process("check-config", env={**env, "SECRET_KEY_BASE": value})
    assert (empty.returncode, unset.returncode) == (2, 2)
    assert empty.stderr == unset.stderr
    assert (
        f"SECRET_KEY_BASE: is not set; with {needs} it must be set to at least "
        f"{MIN_SECRET_LENGTH} characters"
    ) in empty.stderr
