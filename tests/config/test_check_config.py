"""What ``check-config`` shows: every variable, where alert links go, webhook URLs by their origin,
and never a secret."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.settings import Settings
from tests.config.helpers import LONG_SECRET, SHORT_SECRET
from tests.support import check_config

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize(
    ("env", "shown"),
    [({}, "cumulative"), ({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta"}, "delta")],
)
def test_check_config_shows_the_metrics_temporality(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    shown: str,
) -> None:
    """check-config shows OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE as the OTLP metrics
    mirror takes it: cumulative unset, else the value given, in lower case."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", raising=False)
    status, out, _ = check_config(monkeypatch, capsys, **env)
    assert status == 0
    pattern = rf"^OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE +{shown}$"
    assert re.search(pattern, out, re.M) is not None, out


def test_alert_for_defaults_to_two_health_intervals() -> None:
    """Unset, EXESDB_ALERT_FOR_MS is twice EXESDB_HEALTH_BROADCAST_INTERVAL (check-config says
    so); 0 alerts at once."""
    shown = Settings(EXESDB_HEALTH_BROADCAST_INTERVAL=5000).redacted()["EXESDB_ALERT_FOR_MS"]
    assert shown == "<unset: 10000, two health intervals>"
    assert Settings(EXESDB_ALERT_FOR_MS=0).redacted()["EXESDB_ALERT_FOR_MS"] == "0"
    assert Settings(EXESDB_HEALTH_BROADCAST_INTERVAL=5000).alert_for_seconds == 10.0
    assert Settings().alert_for_seconds == 60.0
    assert Settings(EXESDB_ALERT_FOR_MS=0).alert_for_seconds == 0.0
    assert Settings(EXESDB_ALERT_FOR_MS=1500).alert_for_seconds == 1.5


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ({"EXESDB_HTTP_ADDR": "127.0.0.1:9681"}, "http://127.0.0.1:9681"),
        ({"EXESDB_HTTP_ADDR": "0.0.0.0:9570", "EXESDB_NODE": "db-1"}, "http://db-1:9570"),
        ({"EXESDB_HTTP_ADDR": "0.0.0.0:0"}, "the port picked at start"),
    ],
)
def test_check_config_shows_where_alert_links_go(env: dict[str, Any], shown: str) -> None:
    """Unset, EXESDB_EXTERNAL_URL is shown as the base alert links get from the listen address
    (so a loopback one, which no receiver elsewhere can open, is seen before it is sent)."""
    assert Settings(**env).redacted()["EXESDB_EXTERNAL_URL"] == (
        f"<unset: links in alerts go to {shown}>"
    )
    given = Settings(EXESDB_EXTERNAL_URL="https://bridge.example", **env)
    assert given.redacted()["EXESDB_EXTERNAL_URL"] == "https://bridge.example"


def test_check_config_shows_the_alert_link_origins_as_compared() -> None:
    """EXESDB_ALERT_LINK_ORIGINS is read as comma-separated origins, each shown as links are
    compared with it (lower case, a default port left out); empty, check-config says every URL
    in alert metadata shows its origin."""
    settings = Settings(
        EXESDB_ALERT_LINK_ORIGINS=" https://Wiki.Example:443/ ,http://runbooks.example:8080,"
        "http://[2001:DB8::7]:80"
    )
    assert settings.alert_link_origins == (
        "https://wiki.example",
        "http://runbooks.example:8080",
        "http://[2001:db8::7]",
    )
    assert settings.redacted()["EXESDB_ALERT_LINK_ORIGINS"] == (
        "https://wiki.example,http://runbooks.example:8080,http://[2001:db8::7]"
    )
    assert Settings().alert_link_origins == ()
    assert Settings().redacted()["EXESDB_ALERT_LINK_ORIGINS"] == (
        "<empty: URLs in alert metadata show their origin>"
    )


def test_check_config_prints_every_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config prints one line per setting, by variable name."""
    status, out, _ = check_config(monkeypatch, capsys, EXESDB_NODE="node3@host")
    assert status == 0
    shown = dict(line.split(None, 1) for line in out.splitlines())
    names = {str(info.validation_alias) for info in Settings.model_fields.values()}
    assert set(shown) == names
    assert shown["EXESDB_NODE"] == "node3@host"
    assert shown["SECRET_KEY_BASE"] == "<unset>"


SECRETS = {
    "SECRET_KEY_BASE": LONG_SECRET,
    "EXESDB_SECRET_KEY_BASE_PREVIOUS": (
        "retired-s3cr3t-one-of-32-characters,retired-s3cr3t-two-of-32-characters"
    ),
    "EXESDB_ADMIN_TOKEN": "admin-t0ken-s3cr3t",
    "EXESDB_WEBHOOK_SECRET": "webhook-s3cr3t",
    "EXESDB_BUS": "redis://:redis-passw0rd@localhost:6379/0",
    "EXESDB_WEBHOOK_URLS": "https://user:hook-passw0rd@hooks.example/alerts",
    "EXESDB_ALERTMANAGER_URL": "http://am:am-passw0rd@localhost:9093",
}


SECRET_STRINGS = [
    LONG_SECRET,
    "retired-s3cr3t-one-of-32-characters",
    "retired-s3cr3t-two-of-32-characters",
    "admin-t0ken-s3cr3t",
    "webhook-s3cr3t",
    "redis-passw0rd",
    "hook-passw0rd",
    "am-passw0rd",
]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"EXESDB_INGEST": "maybe"},  # a failing configuration prints too
        {"SECRET_KEY_BASE": SHORT_SECRET, "EXESDB_INGEST": "true"},
        {"EXESDB_BUS": "http://u:redis-passw0rd@redis"},
        {"EXESDB_BUS": "redis://default:redis-passw0rd@redis:notaport/0"},
        {"EXESDB_WEBHOOK_URLS": "ftp://user:hook-passw0rd@hooks.example"},
        # Mistyped URLs, which no URL pattern recognises.
        {"EXESDB_BUS": "redis:/default:redis-passw0rd@redis:6379"},
        {"EXESDB_BUS": "redis//default:redis-passw0rd@redis:6379"},
        {"EXESDB_URL": "http:/u:am-passw0rd@bridge"},
        {"EXESDB_EXTERNAL_URL": "bridge:am-passw0rd@host:9570"},
        {"EXESDB_WEBHOOK_URLS": "user:hook-passw0rd@hooks.example:8443/t"},
        {"EXESDB_EXTERNAL_URL": "https://bridge:am-passw0rd@host:9570"},
        {"EXESDB_ALERTMANAGER_URL": "am:/user:am-passw0rd@host"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:hook-passw0rd@otel:4317"},
        {"EXESDB_ALERT_LINK_ORIGINS": "https://ops:hook-passw0rd@wiki.example"},
        {"EXESDB_ALERT_LINK_ORIGINS": "wiki:hook-passw0rd@wiki.example:443/x"},
        # Characters that end a URL in free text, inside a password redis accepts.
        {"EXESDB_BUS": "redis://default:x,redis-passw0rd@redis:6379/0"},
        {"EXESDB_BUS": "redis://default:x'redis-passw0rd@redis:6379/0"},
        {"EXESDB_BUS": "redis://default:x redis-passw0rd@redis:6379/0"},
    ],
)
def test_check_config_never_prints_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], extra: dict[str, str]
) -> None:
    """No secret, token or URL password appears in check-config's output, good or bad config."""
    status, out, err = check_config(monkeypatch, capsys, **{**SECRETS, **extra})
    assert status in (0, 2)
    for secret in [*SECRET_STRINGS, SHORT_SECRET]:
        assert secret not in out
        assert secret not in err
    if status == 0:
        assert "<set, redacted>" in out
        bus = extra.get("EXESDB_BUS", SECRETS["EXESDB_BUS"])
        assert f"redis://{bus[8:].split(':')[0]}:<redacted>@" in out


def test_settings_repr_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """repr(settings), e.g. in a traceback or a log line, hides every secret."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    shown = repr(load_settings()) + str(load_settings())
    for secret in SECRET_STRINGS:
        assert secret not in shown


def test_load_settings_raises_config_error_with_every_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """load_settings raises ConfigError holding one line per problem."""
    monkeypatch.setenv("EXESDB_MAX_SERIES", "none")
    monkeypatch.setenv("EXESDB_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert sorted(problem.split(":")[0] for problem in caught.value.problems) == [
        "EXESDB_LOG_FORMAT",
        "EXESDB_MAX_SERIES",
    ]


@pytest.mark.parametrize(
    "extra",
    [
        {
            "EXESDB_WEBHOOK_URLS": "https://hooks.example.com/services/T0/B0/hook-tok3n?token=q-tok3n"
        },
        {"EXESDB_ALERTMANAGER_URL": "https://am.example.com:9093/hook-tok3n"},
        {"EXESDB_WEBHOOK_URLS": "ftp://hooks.example.com/hook-tok3n"},  # refused, still hidden
    ],
)
def test_check_config_shows_only_the_origin_of_webhook_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], extra: dict[str, str]
) -> None:
    """Webhook and Alertmanager URLs show scheme, host and port only: paths often hold tokens."""
    status, out, err = check_config(monkeypatch, capsys, **extra)
    assert "tok3n" not in out + err
    assert "example.com" in out + err
    refused = any(value.startswith("ftp") for value in extra.values())
    assert status == (2 if refused else 0)
