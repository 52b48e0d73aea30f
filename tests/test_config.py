"""Configuration from environment variables (docs/configuration.md) and ``check-config``."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.bus.redis.link import OWN_OPTIONS
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.otlp_settings import otlp_enabled
from bridge.regular_files import MAX_FILE_BYTES
from bridge.settings import Settings, known_variables, unknown_variables
from bridge.settings_checks import MIN_SECRET_LENGTH, start_warnings
from bridge.unknown_variables import SETTINGS_WITHOUT_PREFIX
from tests.support import (
    DAMAGED_CA_NAMES,
    ROOT,
    TEST_SECRET,
    bridge_env,
    check_config,
    damaged_ca_files,
    make_settings,
    pem_files,
    run_bridge,
    run_in_process,
)
from tests.webconfig.files import WebFiles

LONG_SECRET = "s3cr3t-" + "k" * 40
SHORT_SECRET = "short-s3cr3t-value"


pytestmark = pytest.mark.usefixtures("clean_env")


def test_defaults_match_the_spec() -> None:
    """With no variables set, every setting has its documented default."""
    settings = load_settings()
    assert settings.secret_key_base is None
    assert settings.secret_key_base_previous == ()
    assert settings.pubsub_integration is True
    assert settings.health_broadcast_interval == 30_000
    assert settings.metrics_broadcast_interval == 60_000
    assert settings.node == socket.gethostname()
    assert settings.http_addr == "0.0.0.0:9570"
    assert settings.listen == ("0.0.0.0", 9570)
    assert settings.bus == "memory"
    assert not settings.uses_redis
    assert settings.replay_window_ms == 300_000
    assert settings.ingest is False
    assert settings.max_body_bytes == 1_048_576
    assert settings.admin_token is None
    assert settings.webhook_urls == ()
    assert settings.webhook_secret is None
    assert (settings.webhook_backoff_ms, settings.webhook_max_backoff_ms) == (1_000, 300_000)
    assert settings.webhook_deadline_ms == 86_400_000
    assert settings.webhook_timeout_ms == 10_000
    assert settings.webhook_min_severity == "warning"
    assert settings.alertmanager_url is None
    assert settings.escalation_after_ms == 900_000
    assert settings.state_dir == "./.exesdb-bridge"
    assert (settings.log_level, settings.log_format) == ("info", "text")
    assert settings.otlp_endpoint is None
    assert not otlp_enabled(settings)
    assert (settings.cpu_degraded, settings.cpu_unhealthy) == (85, 95)
    assert (settings.memory_degraded, settings.memory_unhealthy) == (85, 95)
    assert (settings.disk_degraded, settings.disk_unhealthy) == (85, 95)


def test_reads_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values come from the variables docs/configuration.md names, lists split on commas."""
    monkeypatch.setenv("SECRET_KEY_BASE", LONG_SECRET)
    monkeypatch.setenv(
        "EXESDB_SECRET_KEY_BASE_PREVIOUS", "old-one-" + "k" * 32 + ", old-two-" + "k" * 32 + ","
    )
    monkeypatch.setenv("EXESDB_PUBSUB_INTEGRATION", "false")
    monkeypatch.setenv("EXESDB_NODE", "node7@host")
    monkeypatch.setenv("EXESDB_HTTP_ADDR", "[::1]:8080")
    monkeypatch.setenv("EXESDB_BUS", "rediss://redis.example:6380/1")
    monkeypatch.setenv("EXESDB_INGEST", "true")
    monkeypatch.setenv("EXESDB_WEBHOOK_URLS", "https://a.example/hook, http://b.example/")
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", "http://am.example:9093/")
    settings = load_settings()
    assert settings.secret_key_base is not None
    assert settings.secret_key_base.get_secret_value() == LONG_SECRET
    assert [key.get_secret_value() for key in settings.secret_key_base_previous] == [
        "old-one-" + "k" * 32,
        "old-two-" + "k" * 32,
    ]
    assert settings.pubsub_integration is False
    assert settings.node == "node7@host"
    assert settings.listen == ("::1", 8080)
    assert settings.uses_redis
    assert settings.ingest
    assert settings.webhook_urls == ("https://a.example/hook", "http://b.example/")
    assert settings.alertmanager_url == "http://am.example:9093"


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("EXESDB_REPLAY_WINDOW_MS", "abc", "whole number of milliseconds"),
        ("EXESDB_REPLAY_WINDOW_MS", "0", "from 1 to 86400000"),
        ("EXESDB_HEALTH_BROADCAST_INTERVAL", "10", "100"),
        ("EXESDB_METRICS_BROADCAST_INTERVAL", "-5", "100"),
        (
            "EXESDB_PUBSUB_INTEGRATION",
            "perhaps",
            "true or false (also 1/0, yes/no, on/off, t/f, y/n",
        ),
        ("EXESDB_INGEST", "maybe", "true or false (also 1/0, yes/no, on/off, t/f, y/n"),
        ("EXESDB_HTTP_ADDR", "nope", "host:port"),
        # A host without its port is told that, with the address meant.
        (
            "EXESDB_HTTP_ADDR",
            "localhost",
            "host:port, and the port is missing, e.g. localhost:9570",
        ),
        ("EXESDB_HTTP_ADDR", "localhost:", "the port is missing, e.g. localhost:9570"),
        ("EXESDB_HTTP_ADDR", "[::1]", "the port is missing, e.g. [::1]:9570"),
        ("EXESDB_HTTP_ADDR", "0.0.0.0:99999", "0 to 65535"),
        ("EXESDB_HTTP_ADDR", "9571", "not a port alone: 0.0.0.0:9571 on every interface"),
        # A URL or an address with blanks is told the address meant, the user's own port.
        ("EXESDB_HTTP_ADDR", "http://127.0.0.1:19571", "not a URL, e.g. 127.0.0.1:19571 ("),
        ("EXESDB_HTTP_ADDR", "127.0.0.1:19571/", "not a URL, e.g. 127.0.0.1:19571 ("),
        ("EXESDB_HTTP_ADDR", "http://ops:pw@[::1]:19571/x", "not a URL, e.g. [::1]:19571 ("),
        ("EXESDB_HTTP_ADDR", "http://bridge.example/", "not a URL, e.g. 0.0.0.0:9570 ("),
        # A blank in the host was taken, then failed at listen (exit 1) and crashed the probe.
        ("EXESDB_HTTP_ADDR", " 127.0.0.1:19571", "blanks, e.g. 127.0.0.1:19571"),
        ("EXESDB_HTTP_ADDR", "127.0.0.1 :9570", "without spaces or other blanks, e.g. 127"),
        ("EXESDB_HTTP_ADDR", "1 2", "without spaces or other blanks, e.g. 0.0.0.0:9570"),
        # A host that is no name nor address was taken, then listened on or asked mangled.
        ("EXESDB_HTTP_ADDR", "::9570", "the host an IP address ([::1] for IPv6) or a host name"),
        # An IPv6 host without its brackets, as Go's net.SplitHostPort refuses it.
        ("EXESDB_HTTP_ADDR", "::1:9570", "IPv6 host in brackets; did you mean '[::1]:9570'?"),
        ("EXESDB_HTTP_ADDR", ":::9570", "IPv6 host in brackets; did you mean '[::]:9570'?"),
        ("EXESDB_HTTP_ADDR", "fe80::1%eth0:80", "did you mean '[fe80::1%eth0]:80'?"),
        ("EXESDB_HTTP_ADDR", "[bridge:9570", "the host an IP address"),
        ("EXESDB_HTTP_ADDR", "bridge?x:9570", "the host an IP address"),
        ("EXESDB_HTTP_ADDR", "*:9570", "the host an IP address"),
        ("EXESDB_BUS", "http://redis", "redis://"),
        ("EXESDB_BUS", "redis://", "redis://"),
        # host:port without its scheme is answered with the URL meant, as EXESDB_URL's is.
        ("EXESDB_BUS", "localhost:6379", "URL with a host, e.g. redis://localhost:6379"),
        ("EXESDB_BUS", "myredis:6380", "URL with a host, e.g. redis://myredis:6380"),
        ("EXESDB_BUS", "u:hunter2@myredis:6380", "e.g. redis://u:<redacted>@myredis:6380"),
        # ... and so is one whose :// is mistyped, as an http URL setting's is.
        ("EXESDB_BUS", "redis:/myredis", "URL with a host, e.g. redis://myredis"),
        ("EXESDB_BUS", "redis//myredis:6380", "URL with a host, e.g. redis://myredis:6380"),
        ("EXESDB_BUS", "rediss:///u:hunter2@r:1", "e.g. rediss://u:<redacted>@r:1"),
        # ... and memory mistyped with the kind meant, as a misspelt name is.
        ("EXESDB_BUS", "mem", "URL with a host; did you mean 'memory'?"),
        ("EXESDB_BUS", "memroy", "URL with a host; did you mean 'memory'?"),
        ("EXESDB_BUS", "in-memory", "URL with a host; did you mean 'memory'?"),
        ("EXESDB_BUS", "redis", "URL with a host, e.g. redis://127.0.0.1:6379"),
        ("EXESDB_BUS", "redis://redis:notaport/0", "a port from 1 to 65535"),
        ("EXESDB_BUS", "rediss://redis:70000", "a port from 1 to 65535"),
        ("EXESDB_BUS", "redis://redis/0?socket_timeout=soon", "'socket_timeout'"),
        ("EXESDB_BUS", "redis://redis/0?socket_timeout=1", "'socket_timeout' would override"),
        ("EXESDB_BUS", "rediss://redis/0?ssl_ca_cert=/ca.crt", "'ssl_ca_cert': not an option"),
        # ... told with the option it is spelt nearly as, as a setting's misspelt word is.
        ("EXESDB_BUS", "rediss://redis/0?ssl_ca_cert=/ca.crt", "; did you mean 'ssl_ca_certs'?"),
        (
            "EXESDB_BUS",
            "redis://redis/0?max_conections=3&socket_keepalve=1",
            "'max_conections': did you mean 'max_connections'?; 'socket_keepalve': did you mean"
            " 'socket_keepalive'?",
        ),
        ("EXESDB_BUS", "redis://redis/0?ssl_ca_certs=/ca.crt", "with rediss:// only"),
        ("EXESDB_BUS", "redis://redis/0?Hunter2=x", "query option (a name not shown)"),
        ("EXESDB_BUS", "redis://redis:6379/exesdb", "path is its database number"),
        ("EXESDB_BUS", "redis://redis:6379/0/1", "path is its database number"),
        ("EXESDB_BUS", "redis://redis:6379/2?db=3", "given twice"),
        ("EXESDB_MAX_BODY_BYTES", "10", "1024"),
        ("EXESDB_WEBHOOK_URLS", "ftp://a.example", "http://"),
        ("EXESDB_WEBHOOK_MIN_SEVERITY", "loud", "'critical'"),
        ("EXESDB_WEBHOOK_TIMEOUT_MS", "soon", "whole number of milliseconds"),
        ("EXESDB_ALERTMANAGER_URL", "am:9093", "http://"),
        ("EXESDB_URL", "127.0.0.1:9570", "URL with a host, e.g. http://127.0.0.1:9570"),
        # The commands' paths would go after the ? or #: every request to the status page.
        ("EXESDB_URL", "http://bridge:9570/?x=1", "query or fragment (? or #), after which"),
        ("EXESDB_URL", "http://bridge:9570/#top", "without them, e.g. http://bridge:9570"),
        ("EXESDB_WEBHOOK_URLS", "hooks.example:8080/t0k3n", "e.g. http://hooks.example:8080/…"),
        ("EXESDB_ALERTMANAGER_URL", "http://am:9093/api/v2/alerts/", "Alertmanager's own URL"),
        # The URL meant is the one given without that path, as a URL may be shown.
        ("EXESDB_ALERTMANAGER_URL", "http://am:9093/api/v2/alerts", "e.g. http://am:9093"),
        (
            "EXESDB_ALERTMANAGER_URL",
            "https://ops:hunter2@am.example/api/v1/alerts",
            "give that URL, e.g. https://ops:<redacted>@am.example",
        ),
        # An API path short of /alerts would post to /api/v2/api/v2/alerts: 404 each time.
        ("EXESDB_ALERTMANAGER_URL", "http://am:9093/api/v2/", "ends in /api/v2: "),
        # The web UI's address, copied from a browser: every post would go to / and get 405.
        (
            "EXESDB_ALERTMANAGER_URL",
            "http://am:9093/#/alerts",
            "has a query or fragment (? or #), as the address of Alertmanager's web UI has"
            " (/#/alerts): the bridge posts to Alertmanager's own URL + /api/v2/alerts, so give"
            " that URL without them, e.g. http://am:9093",
        ),
        ("EXESDB_ALERTMANAGER_URL", "http://am:9093/am?silenced=false", "e.g. http://am:9093/…"),
        ("EXESDB_EXTERNAL_URL", "https://ops:hunter2@bridge.example", "user name or password"),
        ("EXESDB_EXTERNAL_URL", "https://x.example/bridge?via=sso", "has a query or fragment"),
        ("EXESDB_EXTERNAL_URL", "https://x.example/bridge#top", "has a query or fragment"),
        ("EXESDB_EXTERNAL_URL", "https://x.example/bridge?", "has a query or fragment"),
        ("EXESDB_URL", "http:/127.0.0.1:9570", "with a host, e.g. http://127.0.0.1:9570"),
        ("EXESDB_URL", "https:///bridge.example", "with a host, e.g. https://bridge.example"),
        (
            "EXESDB_WEBHOOK_URLS",
            "http//user:pw@h.example/x",
            "with a host, e.g. http://user:<redacted>@h.example/…",
        ),
        # Separated by a blank or ';' the two URLs were one, sent to the first host's /x%20http…
        ("EXESDB_WEBHOOK_URLS", "http://a.example/x http://b.example/y", "a second URL after a"),
        ("EXESDB_WEBHOOK_URLS", "http://a.example/x;http://b.example/y", "separates several with"),
        # An env file keeps a comment after a value: the receiver would get the path "/x%20".
        ("EXESDB_WEBHOOK_URLS", "http://a.example/x # ops", "put the comment on a line of its"),
        ("EXESDB_EXTERNAL_URL", "http://bridge.example:9570 # public", "holds a comment (' #"),
        ("EXESDB_LOG_LEVEL", "chatty", "must be 'debug', 'info', 'warning' or 'error' (got"),
        ("EXESDB_LOG_FORMAT", "xml", "must be 'text' or 'json' (got 'xml')"),
        # A word mistyped is answered with the word meant, as EXESDB_BUS=memroy is.
        ("EXESDB_LOG_FORMAT", "jsn", "must be 'text' or 'json'; did you mean 'json'? (got 'jsn')"),
        ("EXESDB_WEBHOOK_MIN_SEVERITY", "eror", "or 'critical'; did you mean 'error'? (got"),
        ("EXESDB_WEBHOOK_MIN_SEVERITY", "Critcal", "or 'critical'; did you mean 'critical'? (got"),
        ("OTEL_TRACES_EXPORTER", "otlp_grpc", "or 'none'; did you mean 'otlp'? (got 'otlp_grpc')"),
        ("EXESDB_CPU_DEGRADED", "-1", "above 1 and at most 100"),
        ("EXESDB_MAX_SERIES", "0", "from 1 to 10000000"),
        ("EXESDB_BUS_QUEUE_SIZE", "0", "from 1 to 10000000"),
        ("EXESDB_REDIS_SPOOL_BYTES", "1000", "from 1048576 to 1099511627776"),
        ("EXESDB_BUS_QUEUE_BYTES", "1000", "from 1048576 to 1099511627776"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "udp", "'http/protobuf'"),
        # The specification lists http/json; the Python SDK has no exporter for it.
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json",
            "must be 'grpc' or 'http/protobuf': the OpenTelemetry Python SDK has no http/json"
            " exporter, only grpc (OTLP/gRPC) and http/protobuf (OTLP/HTTP) (got 'http/json')",
        ),
        # The SDK reads "1" as false: neither meaning is guessed.
        ("OTEL_SDK_DISABLED", "1", "must be true or false"),
        ("OTEL_TRACES_EXPORTER", "console", "must be 'otlp' or 'none' (got 'console')"),
        ("OTEL_METRICS_EXPORTER", "prometheus", "must be 'otlp' or 'none'"),
        # The specification's milliseconds, which the Python SDK would take for 2 h 46 min.
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "10000",
            "must be a number of seconds above 0 and at most 600",
        ),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "10s", "the Python SDK reads seconds"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "must be 'gzip' or 'none' (got 'zstd')"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "deltas",
            "must be 'cumulative', 'delta' or 'lowmemory'; did you mean 'delta'? (got 'deltas')",
        ),
    ],
)
def test_a_bad_value_stops_with_a_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    allowed: str,
) -> None:
    """check-config exits 2 and prints one line naming the variable and what is allowed."""
    status, out, err = check_config(monkeypatch, capsys, **{variable: value})
    assert status == 2
    assert out == ""
    # A warning may follow: EXESDB_INGEST=maybe meant as true would need SECRET_KEY_BASE.
    problems = [line.strip() for line in err.splitlines()[1:] if line.startswith("  ")]
    assert len(problems) == 1, err
    assert problems[0].startswith((f"{variable}: ", f"{variable} item 1: "))
    assert allowed in problems[0]


@pytest.mark.parametrize(
    ("variable", "value", "taken"),
    [
        ("EXESDB_LOG_LEVEL", "DEBUG", "debug"),
        ("EXESDB_LOG_FORMAT", "JSON", "json"),
        ("EXESDB_WEBHOOK_MIN_SEVERITY", "Critical", "critical"),
        ("OTEL_LOGS_EXPORTER", "None", "none"),
        ("OTEL_SDK_DISABLED", "TRUE", True),
        ("EXESDB_BUS", " Memory ", "memory"),
        # Case-insensitive in the specification; the SDK's exporter trims it too.
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", " LowMemory ", "lowmemory"),
    ],
)
def test_a_word_setting_takes_any_letter_case(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, taken: str
) -> None:
    """EXESDB_LOG_LEVEL=DEBUG (as Python's logging spells a level), JSON or Critical are taken
    as the word they spell, as a boolean is in any letter case."""
    monkeypatch.setenv(variable, value)
    field = next(n for n, i in Settings.model_fields.items() if i.validation_alias == variable)
    assert getattr(load_settings(), field) == taken


@pytest.mark.parametrize("value", ["warn", "WARN", " Warn "])
@pytest.mark.parametrize(
    ("variable", "field"),
    [("EXESDB_LOG_LEVEL", "log_level"), ("EXESDB_WEBHOOK_MIN_SEVERITY", "webhook_min_severity")],
)
def test_warn_is_warning_as_a_log_level_and_a_min_severity(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str, value: str
) -> None:
    """EXESDB_LOG_LEVEL=warn is warning, as Python's logging takes WARN and the nodes' LogEntry
    levels spell it (debug, info, warn, error, critical), and so is
    EXESDB_WEBHOOK_MIN_SEVERITY=warn, which the refusal would only have answered with "did you
    mean 'warning'?"."""
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), field) == "warning"


@pytest.mark.parametrize(
    "option",
    [
        "socket_timeout=30",
        "socket_connect_timeout=10",
        "health_check_interval=0",
        "retry=3",
        "retry_on_timeout=true",
        "retry_on_error=TimeoutError",
        "decode_responses=false",
    ],
)
def test_a_bus_query_option_the_transport_sets_itself_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    """An EXESDB_BUS query option that would override what the Redis transport sets itself
    (redis-py lets the URL win without a word) stops check-config with exit 2, one line naming
    the variable and the option, saying what it would override; the password is not shown."""
    status, out, err = check_config(
        monkeypatch, capsys, EXESDB_BUS=f"redis://bridge:hunter2@redis:6379/0?{option}"
    )
    name = option.partition("=")[0]
    assert (status, out) == (2, "")
    assert [line.strip() for line in err.splitlines()[1:]] == [
        f"EXESDB_BUS: query option {name!r} would override {OWN_OPTIONS[name]}; remove it from"
        " the URL"
    ]
    assert "hunter2" not in err


@pytest.mark.parametrize(
    "bus",
    [
        "redis://redis:6379",
        "redis://redis:6379/",
        "redis://redis:6379/0",
        "redis://redis:6379/15/",
        "redis://redis:6379?db=2",
    ],
)
def test_bus_database_as_a_number_or_none_is_taken(bus: str) -> None:
    """EXESDB_BUS takes a Redis URL without a path (database 0), or with a database number as
    its path, or as ?db=."""
    assert Settings(EXESDB_BUS=bus, SECRET_KEY_BASE=LONG_SECRET).bus == bus


def test_bus_path_that_is_no_database_number_is_refused_unechoed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Redis URL path that redis-py would read as database 0 without a word (a key prefix,
    a token) stops start-up naming EXESDB_BUS, the path not shown, and what a database path
    looks like shown whole (/0, not an example URL whose path is redacted as /…)."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_BUS="redis://redis:6379/hunter2")
    assert status == 2
    assert (
        "EXESDB_BUS: a redis:// or rediss:// URL's path is its database number, as /0 or /15"
        " after the port (none: database 0), and this one's path is no number"
    ) in err
    assert "hunter2" not in err


def test_bus_query_options_the_transport_leaves_alone_are_taken() -> None:
    """A connection option the transport does not set itself (a pool size, a keepalive) is taken
    from EXESDB_BUS's query as before."""
    bus = "redis://redis:6379/0?max_connections=64&socket_keepalive=true"
    assert Settings(EXESDB_BUS=bus, SECRET_KEY_BASE=LONG_SECRET).bus == bus


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        (
            "EXESDB_SHUTDOWN_TIMEOUT_MS",
            "8s",
            "EXESDB_SHUTDOWN_TIMEOUT_MS: must be a whole number of milliseconds from 1 to"
            " 3600000, e.g. 8000; 8s is 8000 (got '8s')",
        ),
        (
            "EXESDB_HEALTH_BROADCAST_INTERVAL",
            "50",
            "EXESDB_HEALTH_BROADCAST_INTERVAL: must be a whole number of milliseconds"
            " from 100 to 86400000, e.g. 30000 (got '50')",
        ),
        (
            "EXESDB_ALERT_FOR_MS",
            "1.5m",
            "EXESDB_ALERT_FOR_MS: must be a whole number of milliseconds from 0 to 604800000;"
            " 1.5m is 90000 (got '1.5m')",
        ),
        # A size with a unit in bytes: a decimal unit both ways, as people use it for either.
        (
            "EXESDB_MAX_BODY_BYTES",
            "1MB",
            "EXESDB_MAX_BODY_BYTES: must be a whole number of bytes from 1024 to 268435456,"
            " e.g. 1048576; 1MB is 1048576 as MiB, 1000000 as MB (got '1MB')",
        ),
        (
            "EXESDB_BUS_QUEUE_BYTES",
            "256MiB",
            "EXESDB_BUS_QUEUE_BYTES: must be a whole number of bytes from 1048576 to"
            " 1099511627776, e.g. 134217728; 256MiB is 268435456 (got '256MiB')",
        ),
        (
            "EXESDB_REDIS_SPOOL_BYTES",
            "1Gi",
            "EXESDB_REDIS_SPOOL_BYTES: must be a whole number of bytes from 1048576 to"
            " 1099511627776, e.g. 268435456; 1Gi is 1073741824 (got '1Gi')",
        ),
        (
            "EXESDB_REPLAY_MEMORY",
            "lots",
            "EXESDB_REPLAY_MEMORY: must be a whole number from 1000 to 100000000, e.g. 200000"
            " (got 'lots')",
        ),
        (
            "EXESDB_WEBHOOK_TIMEOUT_MS",
            "2.5",
            "EXESDB_WEBHOOK_TIMEOUT_MS: must be a whole number of milliseconds from 1 to"
            " 600000, e.g. 10000 (got '2.5')",
        ),
        (
            "EXESDB_DISK_DEGRADED",
            "high",
            "EXESDB_DISK_DEGRADED: must be a number (percent) above 1 and at most 100 (100 turns"
            " that status off), e.g. 85 (got 'high')",
        ),
        # Above 100 no reading can reach it: the status would be off without a word.
        (
            "EXESDB_MEMORY_UNHEALTHY",
            "150",
            "EXESDB_MEMORY_UNHEALTHY: must be a number (percent) above 1 and at most 100 (100"
            " turns that status off), e.g. 95 (got '150')",
        ),
        # A fraction meant as 85 % would judge nearly every sample degraded: a storm of alerts.
        (
            "EXESDB_CPU_DEGRADED",
            "0.85",
            "EXESDB_CPU_DEGRADED: 0.85 looks like a fraction; thresholds are percent (above 1, at"
            " most 100), e.g. 85",
        ),
        # 1 is no fraction worth a hint: read as one it is 100, the value that turns it off.
        (
            "EXESDB_DISK_UNHEALTHY",
            "1",
            "EXESDB_DISK_UNHEALTHY: must be a number (percent) above 1 and at most 100 (100"
            " turns that status off), e.g. 95 (got '1')",
        ),
    ],
)
def test_a_bad_number_is_answered_with_its_unit_range_and_an_example(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    line: str,
) -> None:
    """A number setting's problem says its unit, its range and an example, a duration typed
    with a unit (`8s`, as the receivers file writes one) is given in milliseconds, and a size
    typed with a unit (`256MiB`) in bytes."""
    status, _, err = check_config(monkeypatch, capsys, **{variable: value})
    assert status == 2
    assert err.splitlines()[1:] == [f"  {line}"]


# Each bounded setting's range. Far past it a bridge started and failed later (backoffs and a
# deadline of 10**23 ms: a retry planned past the year 9999, which the alert page answered 500
# and `outbox list` a traceback for; with a Redis bus, a stream length or claim time of 2**63
# that Redis refused at every XADD or claim, a buffer of 2**63 that failed the writer), or
# silently meant never (a group wait of 2**63 ms: no alert delivered).
_LARGEST = {
    "EXESDB_REPLAY_WINDOW_MS": ("milliseconds", 1, 86_400_000),
    "EXESDB_REPLAY_MEMORY": ("", 1000, 100_000_000),
    "EXESDB_HEALTH_BROADCAST_INTERVAL": ("milliseconds", 100, 86_400_000),
    "EXESDB_METRICS_BROADCAST_INTERVAL": ("milliseconds", 100, 86_400_000),
    "EXESDB_NODE_FORGET_MS": ("milliseconds", 1, 2_592_000_000),
    "EXESDB_REDIS_STREAM_MAXLEN": ("", 100, 1_000_000_000),
    "EXESDB_REDIS_BUFFER_SIZE": ("", 1, 10_000_000),
    "EXESDB_REDIS_CLAIM_IDLE_MS": ("milliseconds", 1, 86_400_000),
    "EXESDB_REDIS_SPOOL_BYTES": ("bytes", 1_048_576, 2**40),
    "EXESDB_REDIS_MAX_BACKOFF_MS": ("milliseconds", 100, 60_000),
    "EXESDB_REDIS_TIMEOUT_MS": ("milliseconds", 1_500, 60_000),
    "EXESDB_SHUTDOWN_TIMEOUT_MS": ("milliseconds", 1, 3_600_000),
    "EXESDB_HTTP_HEADER_TIMEOUT_MS": ("milliseconds", 1, 3_600_000),
    "EXESDB_HTTP_BODY_TIMEOUT_MS": ("milliseconds", 1, 3_600_000),
    "EXESDB_HTTP_IDLE_TIMEOUT_MS": ("milliseconds", 1, 3_600_000),
    "EXESDB_SERIES_TTL_MS": ("milliseconds", 1, 604_800_000),
    "EXESDB_MAX_SERIES": ("", 1, 10_000_000),
    "EXESDB_MAX_SERIES_BYTES": ("bytes", 1_048_576, 2**40),
    "EXESDB_WEBHOOK_BACKOFF_MS": ("milliseconds", 1, 86_400_000),
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": ("milliseconds", 1, 86_400_000),
    "EXESDB_WEBHOOK_DEADLINE_MS": ("milliseconds", 1, 2_592_000_000),
    "EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS": ("milliseconds", 1, 31_536_000_000),
    "EXESDB_WEBHOOK_RENOTIFY_INTERVAL_MS": ("milliseconds", 1, 2_592_000_000),
    "EXESDB_WEBHOOK_TIMEOUT_MS": ("milliseconds", 1, 600_000),
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": ("milliseconds", 0, 3_600_000),
    "EXESDB_WEBHOOK_MAX_ALERTS": ("", 1, 100_000),
    "EXESDB_ESCALATION_AFTER_MS": ("milliseconds", 1, 2_592_000_000),
    "EXESDB_ALERT_RESOLVE_TIMEOUT_MS": ("milliseconds", 1, 31_536_000_000),
    "EXESDB_ALERT_FOR_MS": ("milliseconds", 0, 604_800_000),
    "EXESDB_OTLP_QUEUE_SIZE": ("", 1, 10_000_000),
}


@pytest.mark.parametrize("variable", sorted(_LARGEST))
def test_a_setting_takes_its_largest_value_and_refuses_one_past_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    """A duration, size or count past what a user could mean (one more than the largest, 2**63,
    10**23) stops check-config with exit 2, one line naming the variable and its range."""
    unit, low, high = _LARGEST[variable]
    # The pairs start-up holds together: the backoff at most its cap, the spool twice a body.
    fitting = {"EXESDB_WEBHOOK_MAX_BACKOFF_MS": str(high)} if "BACKOFF" in variable else {}
    taken = make_settings(**{**fitting, variable: str(high)})
    field = next(n for n, i in Settings.model_fields.items() if i.validation_alias == variable)
    assert getattr(taken, field) == high
    what = f"a whole number of {unit}" if unit else "a whole number"
    for past in (high + 1, 2**63, 10**23):
        status, _, err = check_config(monkeypatch, capsys, **{**fitting, variable: str(past)})
        assert status == 2
        line = next(line for line in err.splitlines() if line.startswith(f"  {variable}:"))
        assert f"must be {what} from {low} to {high}" in line, line
        assert line.endswith(f"(got '{past}')"), line


@pytest.mark.parametrize(
    ("bus", "ingest", "needs"),
    [
        ("memory", "true", "EXESDB_INGEST=true"),
        ("redis://127.0.0.1:6379/0", "false", "a Redis bus (EXESDB_BUS)"),
    ],
)
def test_a_short_retired_key_is_refused_where_it_would_verify(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bus: str,
    ingest: str,
    needs: str,
) -> None:
    """With ingest or a Redis bus a retired key still verifies what arrives, so each one of
    EXESDB_SECRET_KEY_BASE_PREVIOUS must be as long as SECRET_KEY_BASE: a short one is named
    by its place, never shown (exit 2)."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        SECRET_KEY_BASE=LONG_SECRET,
        EXESDB_BUS=bus,
        EXESDB_INGEST=ingest,
        EXESDB_SECRET_KEY_BASE_PREVIOUS="k" * 32 + ",,abc",
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        f"  EXESDB_SECRET_KEY_BASE_PREVIOUS item 2: has 3 characters; with {needs} a retired"
        " key still verifies messages, so it too must have at least 32"
    ]
    assert "abc" not in err


def test_every_bad_item_of_a_list_is_a_problem_of_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`EXESDB_WEBHOOK_URLS=ftp://x,notaurl` reports two problems, each naming its item."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS="https://ok.example/a,ftp://x,notaurl"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 2: 'ftp://x' is not an http:// or https:// URL with a host",
        "  EXESDB_WEBHOOK_URLS item 3: not a URL; allowed: an http:// or https:// URL with a host",
    ]


def test_a_url_given_twice_in_the_webhook_urls_is_refused_naming_the_items(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same URL twice in EXESDB_WEBHOOK_URLS is refused naming the variable and the items
    (each group once), the URL shown without its credentials or path, not merged silently."""
    first, second = "https://u:pw@a.example/t0k3n", "http://b.example/hook"
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=f"{first},{second}, {first},{first},{second}"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS: items 1, 3 and 4 are the same URL, https://u:<redacted>@a.example/…;"
        " items 2 and 5 are the same URL, http://b.example/…; give each receiver once"
    ]
    assert "pw" not in err
    assert "t0k3n" not in err


def test_a_bad_webhook_url_does_not_hide_a_url_given_twice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`EXESDB_WEBHOOK_URLS=…/x,…/x,notaurl` reports both problems at once, exit 2: the bad
    item, and the good items given twice, compared without it."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        EXESDB_WEBHOOK_URLS="http://a.example/x,http://a.example/x,notaurl,notaurl",
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 3: not a URL; allowed: an http:// or https:// URL with a host",
        "  EXESDB_WEBHOOK_URLS item 4: not a URL; allowed: an http:// or https:// URL with a host",
        "  EXESDB_WEBHOOK_URLS: items 1 and 2 are the same URL, http://a.example/…;"
        " give each receiver once",
    ]


def test_a_comma_in_a_webhook_url_s_query_is_told_as_the_list_s_split(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_WEBHOOK_URLS is split at every comma: an item after a query that is no URL is told
    as the query's rest, to be written %2C; a query holding a URL before a comma and a URL is
    refused as a guess either way, saying how to write each; neither shows the URLs."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS="https://a.example/t0k3n?tags=x,y"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 2: not a URL, and it follows item 1's query: the list is split"
        " at every comma, so a comma in a URL is written %2C (?tags=a%2Cb), or the URL goes in"
        " the receivers file (EXESDB_WEBHOOK_CONFIG_FILE)"
    ]
    relay = "https://a.example/t0k3n?to=https://b.example/s3cr3t"
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=f"{relay},https://c.example/x,https://c.example/x"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 1: its query holds a URL and a comma follows it, so whether"
        " item 2 is a receiver of its own or the rest of this query is a guess; the list is split"
        " at every comma: write a comma of the query as %2C (?to=URL%2CURL), or, for receivers of"
        " their own, the URL in the query percent-encoded (?to=https%3A%2F%2Fhost%2Fpath)",
        "  EXESDB_WEBHOOK_URLS: items 2 and 3 are the same URL, https://c.example/…;"
        " give each receiver once",
    ]
    assert "t0k3n" not in err
    assert "s3cr3t" not in err
    for taken in (f"{relay}%2Chttps://c.example/x", "https://a.example/x?a=1,https://c.example/x"):
        status, _, err = check_config(monkeypatch, capsys, EXESDB_WEBHOOK_URLS=taken)
        assert status == 0, err


def test_each_item_a_comma_cut_from_a_webhook_url_s_query_is_told_as_its_rest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every item no URL after a query, not only the first (`?tags=x,y,z`: `y` and `z`), is told
    as that query's rest, naming the item the query is in; a URL after them, that query holding
    a URL, is refused as a guess as it is right after the query."""
    rest = (
        "not a URL, and it follows item 1's query: the list is split at every comma, so a comma"
        " in a URL is written %2C (?tags=a%2Cb), or the URL goes in the receivers file"
        " (EXESDB_WEBHOOK_CONFIG_FILE)"
    )
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS="https://a.example/t0k3n?tags=x,y,z"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        f"  EXESDB_WEBHOOK_URLS item 2: {rest}",
        f"  EXESDB_WEBHOOK_URLS item 3: {rest}",
    ]
    relay = "https://a.example/t0k3n?to=https://b.example/s3cr3t"
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=f"{relay},x,https://c.example/x"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_WEBHOOK_URLS item 1: its query holds a URL and a comma follows it, so whether"
        " item 3 is a receiver of its own or the rest of this query is a guess; the list is split"
        " at every comma: write a comma of the query as %2C (?to=URL%2CURL), or, for receivers of"
        " their own, the URL in the query percent-encoded (?to=https%3A%2F%2Fhost%2Fpath)",
        f"  EXESDB_WEBHOOK_URLS item 2: {rest}",
    ]


def no_setting_warned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> str:
    """What check-config, passing, says of ``variable`` set to ``value`` in its one warning that
    the variable is no setting, after "(ignored)"."""
    status, _, err = check_config(monkeypatch, capsys, **{variable: value})
    assert status == 0
    [warning] = [line for line in err.splitlines() if variable + " " in line]
    ignored = (
        f"exesdb-bridge: warning: {variable} is set but is not a setting of the bridge (ignored)"
    )
    assert warning.startswith(ignored), warning
    return warning.removeprefix(ignored)


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("EXESDB_WEBHOOK_URL", "EXESDB_WEBHOOK_URLS"),
        ("EXESDB_HTTP_ADRESS", "EXESDB_HTTP_ADDR"),
        ("EXESDB_SECRET_KEY_BASE", "SECRET_KEY_BASE"),
        ("EXESDB_ALERT_FOR", "EXESDB_ALERT_FOR_MS"),
        ("exesdb_ingest", "EXESDB_INGEST"),  # names are case-sensitive: this one is ignored
        ("Exesdb_Webhook_Url", "EXESDB_WEBHOOK_URLS"),
        # Names of the setting elsewhere, not its spelling: the Redis URL is EXESDB_BUS.
        ("EXESDB_REDIS_URL", "EXESDB_BUS"),
        ("EXESDB_BUS_URL", "EXESDB_BUS"),
        ("EXESDB_PORT", "EXESDB_HTTP_ADDR"),
        ("EXESDB_LISTEN_ADDRESS", "EXESDB_HTTP_ADDR"),  # node_exporter's --web.listen-address
        ("EXESDB_DEBUG", "EXESDB_LOG_LEVEL"),
        ("EXESDB_LOG", "EXESDB_LOG_LEVEL"),  # EXESDB_LOG=debug
        ("exesdb_redis_url", "EXESDB_BUS"),
        # The health check asks EXESDB_HTTP_ADDR (nearest by spelling: ..._USERNAME).
        ("EXESDB_HEALTHCHECK_URL", "EXESDB_HTTP_ADDR"),
        ("EXESDB_HEALTHCHECK_ADDR", "EXESDB_HTTP_ADDR"),
    ],
)
def test_an_unknown_variable_is_warned_about_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    meant: str,
) -> None:
    """A set EXESDB_* variable that is no setting is named in a warning with the one meant: the
    closest name, or the setting it is another name for."""
    assert no_setting_warned(monkeypatch, capsys, variable, "x") == f"; did you mean {meant}?"


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


def test_an_unknown_variable_far_from_every_setting_points_at_the_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With nothing close, the warning points at docs/configuration.md; known names say nothing."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_ZZZ="1", EXESDB_NODE="n1")
    assert status == 0
    assert (
        "exesdb-bridge: warning: "
        "EXESDB_ZZZ is set but is not a setting of the bridge (ignored); the "
        "settings: docs/configuration.md" in err
    )
    assert "EXESDB_NODE" not in err


@pytest.mark.parametrize(
    ("variable", "value", "answer"),
    [
        (
            "EXESDB_HEALTHCHECK_TIMEOUT",
            "5",
            "the health check's timeout is its option: exesdb-bridge healthcheck --timeout S",
        ),
        ("EXESDB_DEMO", "true", "demo traffic is an option of run: exesdb-bridge run --demo"),
    ],
)
def test_a_variable_for_a_commands_option_is_answered_with_the_option(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    answer: str,
) -> None:
    """EXESDB_HEALTHCHECK_TIMEOUT and EXESDB_DEMO are no settings, nor misspellings of one: the
    warning names the command's option (healthcheck --timeout, run --demo), not
    EXESDB_HEALTHCHECK_USERNAME or the list of settings."""
    assert no_setting_warned(monkeypatch, capsys, variable, value) == f"; {answer}"


@pytest.mark.parametrize(
    ("variable", "setting", "unset"),
    [
        ("EXESDB_ADMIN_TOKEN_FILE", "EXESDB_ADMIN_TOKEN", ""),
        ("EXESDB_WEBHOOK_SECRET_FILE", "EXESDB_WEBHOOK_SECRET", ""),
        ("SECRET_KEY_BASE_FILE", "SECRET_KEY_BASE", " and SECRET_KEY_BASE is unset"),
        ("EXESDB_SECRET_KEY_BASE_FILE", "SECRET_KEY_BASE", ""),
    ],
)
def test_a_setting_named_with_a_file_suffix_is_answered_that_it_takes_the_value_itself(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    setting: str,
    unset: str,
) -> None:
    """A setting's name with the _FILE suffix of Docker's and Kubernetes' secrets is warned of as
    no setting, saying the setting takes the value itself: not "did you mean" it, which would
    have its value set to the file's path (a token /run/secrets/token)."""
    monkeypatch.delenv(setting, raising=False)
    assert no_setting_warned(monkeypatch, capsys, variable, "/run/secrets/x") == (
        f"{unset}; {setting} takes the value itself, not a file's path:"
        f' {setting}="$(cat FILE)" reads it from the file'
    )


def test_a_healthcheck_password_variable_is_answered_with_the_file_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_HEALTHCHECK_PASSWORD is no setting: the warning says the health check reads its
    password from a file named in EXESDB_HEALTHCHECK_PASSWORD_FILE, rather than "did you mean"
    that setting, which would then be given the password for a path."""
    assert no_setting_warned(monkeypatch, capsys, "EXESDB_HEALTHCHECK_PASSWORD", "s3cret") == (
        "; the health check reads its password from a file: put it in one and give that file's"
        " path in EXESDB_HEALTHCHECK_PASSWORD_FILE"
    )


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPIONT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ("OTEL_EXPORTER_OTLP_TRACE_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ("OTEL_SERVIC_NAME", "OTEL_SERVICE_NAME"),
        ("OTEL_SKD_DISABLED", "OTEL_SDK_DISABLED"),
        # Read by the SDK, not the bridge's settings: named all the same.
        ("OTEL_EXPORTER_OTLP_HEADER", "OTEL_EXPORTER_OTLP_HEADERS"),
        ("OTEL_RESOURCE_ATTRIBUTE", "OTEL_RESOURCE_ATTRIBUTES"),
        ("otel_service_name", "OTEL_SERVICE_NAME"),  # names are case-sensitive
    ],
)
def test_a_misspelt_otel_variable_is_warned_about_with_the_one_meant(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    meant: str,
) -> None:
    """A set OTEL_* variable that neither the bridge nor the OpenTelemetry SDK reads, spelt
    nearly as one they do, is named in a warning with that one; check-config still passes."""
    status, _, err = check_config(monkeypatch, capsys, **{variable: "http://c:4317"})
    assert status == 0
    [warning] = [line for line in err.splitlines() if variable + " " in line]
    assert warning == (
        "exesdb-bridge: warning: "
        f"{variable} is set but neither the bridge nor its OpenTelemetry SDK reads it"
        f" (ignored); did you mean {meant}?"
    )


def _sdk_variables() -> list[str]:
    """Every OTEL_* name the installed API's and SDK's environment_variables modules hold."""
    import opentelemetry.environment_variables as api
    import opentelemetry.sdk.environment_variables as sdk

    return sorted(
        value
        for module in (api, sdk)
        for value in vars(module).values()
        if isinstance(value, str) and value.startswith("OTEL_")
    )


def test_no_variable_the_opentelemetry_sdk_reads_is_warned_about() -> None:
    """Every OTEL_* variable the installed OpenTelemetry API and SDK list, each set, is no
    warning, though the bridge's settings read few of them (OTEL_BSP_*, OTEL_PYTHON_*, ...)."""
    names = _sdk_variables()
    assert {"OTEL_PROPAGATORS", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_TRACES_SAMPLER_ARG"} <= set(names)
    assert len(names) > 80
    assert unknown_variables(dict.fromkeys(names, "1")) == []


@pytest.mark.parametrize(
    "variable",
    [
        # The OpenTelemetry Operator's, named in OTEL_RESOURCE_ATTRIBUTES as $(...).
        "OTEL_RESOURCE_ATTRIBUTES_POD_NAME",
        "OTEL_RESOURCE_ATTRIBUTES_NODE_NAME",
        # Instrumentations' and other SDKs', which an environment shared with them may hold.
        "OTEL_PYTHON_CONFIGURATOR",
        "OTEL_PYTHON_LOG_CORRELATION",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        "OTEL_EXPORTER_JAEGER_ENDPOINT",
        "OTEL_JAVAAGENT_ENABLED",
        "OTEL_NODE_RESOURCE_DETECTORS",
    ],
)
def test_an_otel_variable_unlike_any_read_is_not_warned_about(variable: str) -> None:
    """An OTEL_* name not spelt nearly as one the bridge or the SDK reads is taken for another
    tool's, not a typo: no warning."""
    assert unknown_variables({variable: "x"}) == []


def test_the_settings_without_a_prefix_are_those_of_the_model() -> None:
    """The near-miss check knows the settings named without EXESDB_ (or OTEL_) as the model does:
    a new one added to the model alone would go unchecked."""
    assert {
        name for name in known_variables() if not name.startswith(("EXESDB_", "OTEL_"))
    } == SETTINGS_WITHOUT_PREFIX


@pytest.mark.parametrize("variable", ["SECRET_KEY", "secret_key_base", "SECRET_KEYBASE"])
def test_a_variable_spelt_nearly_as_an_unset_key_is_warned_about_with_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    """With SECRET_KEY_BASE unset, a set variable spelt nearly as it (SECRET_KEY, as other
    frameworks call theirs) is named in a warning with SECRET_KEY_BASE."""
    monkeypatch.delenv("SECRET_KEY_BASE", raising=False)
    status, _, err = check_config(monkeypatch, capsys, **{variable: "k" * 40})
    assert status == 0
    assert err.splitlines() == [
        f"exesdb-bridge: warning: {variable} is set but is not a setting of the bridge (ignored)"
        " and SECRET_KEY_BASE is unset; did you mean SECRET_KEY_BASE?"
    ]


def test_a_variable_spelt_nearly_as_a_key_that_is_set_is_no_warning() -> None:
    """With SECRET_KEY_BASE set, another program's SECRET_KEY sharing the environment is its own:
    no warning; nor is a name unlike the key's with it unset."""
    assert unknown_variables({"SECRET_KEY": "x", "SECRET_KEY_BASE": "k" * 40}) == []
    assert unknown_variables({"DJANGO_SECRET": "x", "API_KEY": "y"}) == []


def test_run_warns_about_an_unknown_variable_at_start(tmp_path) -> None:
    """`exesdb-bridge run` logs the same warning at start-up, once (it then runs as
    configured)."""
    from tests.support import BridgeProcess, http_get

    process = BridgeProcess(state_dir=tmp_path / "state", EXESDB_WEBHOOK_URL="https://h.example/x")
    try:
        process.start(tmp_path)
        assert http_get(process.url + "/healthz")[0] == 200
    finally:
        assert process.stop() == 0
    warning = (
        "EXESDB_WEBHOOK_URL is set but is not a setting of the bridge (ignored); "
        "did you mean EXESDB_WEBHOOK_URLS?"
    )
    assert process.log().count(warning) == 1, process.log()


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


def test_alert_link_origins_other_than_origins_stop_start_up_naming_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An EXESDB_ALERT_LINK_ORIGINS item with a path (said so), a query, a user name and
    password (never shown), or that is no http(s) URL stops check-config with exit 2, a line
    naming each bad item."""
    status, out, err = check_config(
        monkeypatch,
        capsys,
        EXESDB_ALERT_LINK_ORIGINS="https://wiki.example,https://wiki.example/runbooks,"
        "https://ops:hunter2@wiki.example,https://wiki.example?space=ops,ftp://files.example,"
        "wiki.example:8443",
    )
    assert (status, out) == (2, "")
    allowed = (
        "allowed: an origin alone (scheme, host and port), e.g. https://wiki.example or"
        " https://wiki.example:8443 (every path on it is allowed)"
    )
    assert err.splitlines()[1:] == [
        f"  EXESDB_ALERT_LINK_ORIGINS item 2: 'https://wiki.example/…' has a path; {allowed}",
        "  EXESDB_ALERT_LINK_ORIGINS item 3: must not hold a user name or password (before an"
        " @): a link with user info is always redacted; give the origin alone, e.g."
        " https://wiki.example",
        "  EXESDB_ALERT_LINK_ORIGINS item 4: 'https://wiki.example/…' has a query or fragment;"
        f" {allowed}",
        "  EXESDB_ALERT_LINK_ORIGINS item 5: 'ftp://files.example' is not an http:// or https://"
        " URL with a host",
        "  EXESDB_ALERT_LINK_ORIGINS item 6: not a URL; allowed: an http:// or https:// URL with"
        " a host, e.g. http://wiki.example:8443",
    ]
    for hidden in ("hunter2", "runbooks", "space=ops"):
        assert hidden not in err


@pytest.mark.parametrize(
    "origins", ["*", "https://*", "https://*.example.com", "https://[*", "https://wiki.example,*"]
)
def test_a_wildcard_alert_link_origin_stops_start_up_saying_to_list_origins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], origins: str
) -> None:
    """A `*` in EXESDB_ALERT_LINK_ORIGINS (meant as any origin, or any subdomain) is refused, not
    compared as written: check-config exits 2, the line naming the variable and saying to list
    the origins explicitly."""
    status, out, err = check_config(monkeypatch, capsys, EXESDB_ALERT_LINK_ORIGINS=origins)
    assert (status, out) == (2, "")
    item = len(origins.split(","))
    assert err.splitlines()[1:] == [
        f"  EXESDB_ALERT_LINK_ORIGINS item {item}: a wildcard (*) is not allowed: only links on"
        " the origins listed are shown whole; list each origin explicitly, e.g."
        " https://wiki.example,https://runbooks.example:8443 (every path on an origin is"
        " allowed)"
    ]


def test_a_password_with_a_star_in_an_alert_link_origin_is_told_as_a_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An EXESDB_ALERT_LINK_ORIGINS item whose password holds a `*` is refused for its user name
    and password, as any other, not as a wildcard its author did not write; the password is not
    shown."""
    status, out, err = check_config(
        monkeypatch, capsys, EXESDB_ALERT_LINK_ORIGINS="https://ops:hun*ter2@wiki.example"
    )
    assert (status, out) == (2, "")
    assert err.splitlines()[1:] == [
        "  EXESDB_ALERT_LINK_ORIGINS item 1: must not hold a user name or password (before an"
        " @): a link with user info is always redacted; give the origin alone, e.g."
        " https://wiki.example"
    ]
    assert "hun*ter2" not in err


def test_run_stops_at_start_on_a_wildcard_alert_link_origin() -> None:
    """`exesdb-bridge run` with EXESDB_ALERT_LINK_ORIGINS=* exits 2 before it listens, saying to
    list the origins explicitly."""
    completed = run_bridge(
        "run",
        env={"EXESDB_ALERT_LINK_ORIGINS": "*", "EXESDB_HTTP_ADDR": "127.0.0.1:0"},
        timeout=30,
    )
    assert completed.returncode == 2, completed.stderr
    assert "  EXESDB_ALERT_LINK_ORIGINS item 1: a wildcard (*) is not allowed:" in completed.stderr
    assert "list each origin explicitly" in completed.stderr


def test_run_stops_at_start_on_an_alert_link_origin_with_a_path() -> None:
    """`exesdb-bridge run` with an origin that has a path exits 2 before it listens, the line
    naming EXESDB_ALERT_LINK_ORIGINS and saying the item has a path."""
    completed = run_bridge(
        "run",
        env={
            "EXESDB_ALERT_LINK_ORIGINS": "https://wiki.example/runbooks",
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
        },
        timeout=30,
    )
    assert completed.returncode == 2, completed.stderr
    assert "  EXESDB_ALERT_LINK_ORIGINS item 1: 'https://wiki.example/…' has a path;" in (
        completed.stderr
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EXESDB_CPU_DEGRADED": "96"}, "EXESDB_CPU_DEGRADED"),
        ({"EXESDB_MEMORY_DEGRADED": "97"}, "EXESDB_MEMORY_DEGRADED"),
        ({"EXESDB_DISK_DEGRADED": "90", "EXESDB_DISK_UNHEALTHY": "80"}, "EXESDB_DISK_DEGRADED"),
        (
            {"EXESDB_WEBHOOK_BACKOFF_MS": "5000", "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "1000"},
            "EXESDB_WEBHOOK_BACKOFF_MS",
        ),
        (
            {
                "EXESDB_BUS": "redis://127.0.0.1:6379/0",
                "SECRET_KEY_BASE": TEST_SECRET,
                "EXESDB_MAX_BODY_BYTES": "1048576",
                "EXESDB_REDIS_SPOOL_BYTES": "2000000",
            },
            "EXESDB_REDIS_SPOOL_BYTES",
        ),
        (
            {"EXESDB_MAX_BODY_BYTES": "4194304", "EXESDB_BUS_QUEUE_BYTES": "2097152"},
            "EXESDB_BUS_QUEUE_BYTES",
        ),
        # Only one of the two set: the line names it, not the other one left at its default.
        ({"EXESDB_CPU_UNHEALTHY": "50"}, "EXESDB_CPU_UNHEALTHY"),
        ({"EXESDB_MAX_BODY_BYTES": "200000000"}, "EXESDB_MAX_BODY_BYTES"),
        ({"EXESDB_WEBHOOK_MAX_BACKOFF_MS": "500"}, "EXESDB_WEBHOOK_MAX_BACKOFF_MS"),
        (
            {
                "EXESDB_BUS": "redis://127.0.0.1:6379/0",
                "SECRET_KEY_BASE": TEST_SECRET,
                "EXESDB_MAX_BODY_BYTES": "200000000",
            },
            "EXESDB_MAX_BODY_BYTES",
        ),
    ],
)
def test_inconsistent_values_stop_start_up(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    variable: str,
) -> None:
    """Values that contradict each other stop start-up with a line naming the variable."""
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 2
    assert f"  {variable}: " in err


def test_a_degraded_threshold_above_the_unhealthy_one_says_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_CPU_DEGRADED=97 above EXESDB_CPU_UNHEALTHY=95 exits 2 with a line saying both
    values and the two ways out: at most the unhealthy one, or 100 (that status off)."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_CPU_DEGRADED="97", EXESDB_CPU_UNHEALTHY="95"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_DEGRADED: 97 is above EXESDB_CPU_UNHEALTHY (95); allowed: at most that, or"
        " 100 to turn that status off"
    ]


def test_thresholds_given_as_fractions_are_each_refused_without_an_order_complaint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_CPU_DEGRADED=0.85 and EXESDB_CPU_UNHEALTHY=0.95 exit 2 with one line each saying
    the percent meant, and no line comparing the two (each is refused on its own)."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_CPU_DEGRADED="0.85", EXESDB_CPU_UNHEALTHY="0.95"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_DEGRADED: 0.85 looks like a fraction; thresholds are percent (above 1, at"
        " most 100), e.g. 85",
        "  EXESDB_CPU_UNHEALTHY: 0.95 looks like a fraction; thresholds are percent (above 1, at"
        " most 100), e.g. 95",
    ]


def test_a_contradiction_with_a_default_names_the_variable_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_CPU_UNHEALTHY=50 alone is refused as itself below the default EXESDB_CPU_DEGRADED,
    saying so, rather than as a fault of EXESDB_CPU_DEGRADED, which the user never set."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_CPU_UNHEALTHY="50")
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_UNHEALTHY: 50 is below EXESDB_CPU_DEGRADED (85, its default); allowed: at"
        " least that, or set EXESDB_CPU_DEGRADED lower too"
    ]


def test_every_bad_variable_is_reported_at_once() -> None:
    """python -m bridge check-config exits 2 with one line per bad variable."""
    env = bridge_env(
        EXESDB_REPLAY_WINDOW_MS="abc",
        EXESDB_INGEST="maybe",
        EXESDB_LOG_LEVEL="loud",
        EXESDB_HTTP_ADDR="nowhere",
    )
    completed = subprocess.run(
        [sys.executable, "-m", "bridge", "check-config"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    named = sorted(line.strip().split(":")[0] for line in lines[1:] if line.startswith("  "))
    assert named == sorted(
        ["EXESDB_REPLAY_WINDOW_MS", "EXESDB_INGEST", "EXESDB_LOG_LEVEL", "EXESDB_HTTP_ADDR"]
    )


def test_field_errors_and_cross_checks_are_reported_together(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad value does not hide a missing secret or a contradiction elsewhere."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        EXESDB_INGEST="true",
        EXESDB_LOG_LEVEL="loud",
        EXESDB_CPU_DEGRADED="x",
        EXESDB_CPU_UNHEALTHY="50",
        EXESDB_DISK_DEGRADED="99",
    )
    assert status == 2
    problems = [line for line in err.splitlines()[1:] if line.startswith("  ")]
    named = sorted(line.strip().split(":")[0] for line in problems)
    # CPU_DEGRADED is reported for its own fault only, not compared through its default.
    assert named == [
        "EXESDB_CPU_DEGRADED",
        "EXESDB_DISK_DEGRADED",
        "EXESDB_LOG_LEVEL",
        "SECRET_KEY_BASE",
    ]
    assert (
        "exesdb-bridge: warning: "
        "with EXESDB_CPU_DEGRADED at its default (85): EXESDB_CPU_DEGRADED: 85 is above"
        " EXESDB_CPU_UNHEALTHY (50)"
    ) in err


@pytest.mark.parametrize(
    ("urls", "problems"),
    [
        ("http://a/x,notaurl", ["EXESDB_WEBHOOK_URLS item 2: not a URL"]),
        ("notaurl,http://a/x", ["EXESDB_WEBHOOK_URLS item 1: not a URL"]),
        (
            "notaurl,http://a/x,http://a/x",
            [
                "EXESDB_WEBHOOK_URLS item 1: not a URL",
                "EXESDB_WEBHOOK_URLS: items 2 and 3 are the same URL, http://a/…",
            ],
        ),
    ],
)
def test_a_receiver_beside_a_refused_item_is_compared_with_the_receivers_file_at_once(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    urls: str,
    problems: list[str],
) -> None:
    """The items of EXESDB_WEBHOOK_URLS taken beside a refused one are compared with the
    receivers file in the same round, each named by its own item number: a receiver listed in
    both is said at once, not after the bad item is mended."""
    receivers = tmp_path / "receivers.yml"
    receivers.write_text("webhook_configs:\n  - url: http://a/x\n")
    status, out, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=urls, EXESDB_WEBHOOK_CONFIG_FILE=str(receivers)
    )
    assert (status, out) == (2, "")
    number = urls.split(",").index("http://a/x") + 1
    lines = [line.strip() for line in err.splitlines()[1:]]
    assert [line.split(";")[0] for line in lines] == [
        *problems,
        f"EXESDB_WEBHOOK_CONFIG_FILE: {receivers}: webhook_configs.0: the same receiver as in"
        f" EXESDB_WEBHOOK_URLS item {number}",
    ]


def test_a_threshold_is_ordered_against_a_refused_one_once_that_is_taken(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_CPU_UNHEALTHY refused as a fraction is named alone: EXESDB_CPU_DEGRADED=97 is not
    ordered against a value nobody gave (its default) as a problem, and a warning says what
    that check finds at the default; once it is taken (95), the order is the one problem."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_CPU_DEGRADED="97", EXESDB_CPU_UNHEALTHY="0.95"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_UNHEALTHY: 0.95 looks like a fraction; thresholds are percent (above 1, at"
        " most 100), e.g. 95",
        "exesdb-bridge: warning: with EXESDB_CPU_UNHEALTHY at its default (95):"
        " EXESDB_CPU_DEGRADED: 97 is above EXESDB_CPU_UNHEALTHY (95); allowed: at most that, or"
        " 100 to turn that status off",
    ]
    status, _, err = check_config(monkeypatch, capsys, EXESDB_CPU_UNHEALTHY="95")
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_DEGRADED: 97 is above EXESDB_CPU_UNHEALTHY (95); allowed: at most that, or"
        " 100 to turn that status off"
    ]


def test_a_refused_switch_names_what_its_other_reading_would_find(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_INGEST=maybe with SECRET_KEY_BASE unset: the warning says what the next round
    brings if true was meant (the secret must be set), not only that a check waits, naming
    that reading once: the problem's own words name it."""
    monkeypatch.delenv("SECRET_KEY_BASE", raising=False)
    status, _, err = check_config(monkeypatch, capsys, EXESDB_INGEST="maybe")
    assert status == 2
    assert [line for line in err.splitlines() if "warning" in line] == [
        "exesdb-bridge: warning: SECRET_KEY_BASE: is not set; with EXESDB_INGEST=true it must"
        " be set to at least 32 characters"
    ]


@pytest.mark.parametrize(
    ("env", "problems", "held"),
    [
        (
            # Refused, the protocol is no default: with http/protobuf credentials in the URL
            # are sent, with grpc they are not.
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:pw@collector:4318",
            },
            ["OTEL_EXPORTER_OTLP_PROTOCOL"],
            "with OTEL_EXPORTER_OTLP_PROTOCOL=grpc: OTEL_EXPORTER_OTLP_ENDPOINT: holds credentials"
            " (user:<redacted>@), which the grpc exporter does not send",
        ),
        (
            # Meant as true, no certificate would be read.
            {
                "OTEL_SDK_DISABLED": "yes",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem",
            },
            ["OTEL_SDK_DISABLED"],
            "with OTEL_SDK_DISABLED=false: OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read"
            " /nonexistent/ca.pem",
        ),
        (
            # Whatever the traces exporter was meant to be, logs read the certificate.
            {
                "OTEL_TRACES_EXPORTER": "no",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem",
            },
            ["OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_CERTIFICATE"],
            None,
        ),
    ],
)
def test_no_cross_check_problem_is_reported_as_a_consequence_of_a_refused_value(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    problems: list[str],
    held: str | None,
) -> None:
    """Beside a refused switch or choice, a check across settings is reported only when it
    fails whatever value was meant: not one that only one reading makes fail, which a warning
    says with that reading."""
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 2
    lines = [line for line in err.splitlines()[1:] if not line.startswith("exesdb-bridge:")]
    assert [line.strip().split(":")[0] for line in lines] == problems
    assert "pw" not in err
    warned = [line for line in err.splitlines() if line.startswith("exesdb-bridge: warning:")]
    if held is not None:  # a check held back is said, with the reading that finds it
        [warning] = warned
        assert warning.startswith(f"exesdb-bridge: warning: {held}")
    else:
        assert warned == []


def test_too_many_refused_switches_to_read_each_way_say_the_checks_across_settings_wait(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seven refused switches (128 ways to read them) are each named, and a warning says the
    checks across settings wait until they are taken."""
    switches = [
        "EXESDB_INGEST",
        "EXESDB_PUBSUB_INTEGRATION",
        "EXESDB_OTLP_METRICS",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_METRICS_EXPORTER",
    ]
    status, _, err = check_config(monkeypatch, capsys, **dict.fromkeys(switches, "perhaps"))
    assert status == 2
    problems = [line.strip() for line in err.splitlines()[1:] if line.startswith("  ")]
    assert sorted(line.split(":")[0] for line in problems) == sorted(switches)
    assert err.splitlines()[len(problems) + 1] == (
        "exesdb-bridge: warning: checks across settings wait until the values above are taken:"
        " check again then"
    )


def test_web_config_file_problems_are_reported_with_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    """A bad web config file is one more problem line, beside a bad variable."""
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: hunter2\nbogus: 1\n")
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEB_CONFIG_FILE=str(web), EXESDB_LOG_LEVEL="loud"
    )
    assert status == 2
    lines = [line.strip() for line in err.splitlines()[1:]]
    assert [line.split(":")[0] for line in lines].count("EXESDB_WEB_CONFIG_FILE") == 2
    assert any(line.startswith("EXESDB_LOG_LEVEL") for line in lines)
    assert "hunter2" not in err


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


@pytest.mark.parametrize("resource", ["CPU", "MEMORY", "DISK"])
def test_a_threshold_of_100_disables_the_status_without_tripping_the_order_check(
    monkeypatch: pytest.MonkeyPatch, resource: str
) -> None:
    """DEGRADED=100 turns that status off though it is above UNHEALTHY (docs/configuration.md)."""
    monkeypatch.setenv(f"EXESDB_{resource}_DEGRADED", "100")
    assert getattr(load_settings(), f"{resource.lower()}_degraded") == 100
    monkeypatch.setenv(f"EXESDB_{resource}_DEGRADED", "97")
    with pytest.raises(ConfigError, match=f"EXESDB_{resource}_DEGRADED"):
        load_settings()


def test_a_bad_per_signal_otlp_protocol_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is checked like every other variable: exit 2."""
    status, _, err = check_config(
        monkeypatch, capsys, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/json"
    )
    assert status == 2
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" in err


# Each bad number of the SDK's batch processors and metric reader, and the warning it gets.
_BAD_OTLP_NUMBERS = [
    (
        {"OTEL_BSP_SCHEDULE_DELAY": "1s"},
        "OTEL_BSP_SCHEDULE_DELAY='1s' is not a positive number of milliseconds (write 1000"
        " for 1s); using 5000, the default",
    ),
    (
        {"OTEL_BSP_SCHEDULE_DELAY": "soon"},
        "OTEL_BSP_SCHEDULE_DELAY='soon' is not a positive number of milliseconds; using 5000,"
        " the default",
    ),
    (
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-1"},
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE='-1' is not a positive number of records; using 512,"
        " the default",
    ),
    (
        {"OTEL_BLRP_SCHEDULE_DELAY": "0"},
        "OTEL_BLRP_SCHEDULE_DELAY='0' is not a positive number of milliseconds; using 1000,"
        " the default",
    ),
    (
        {"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "many"},
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE='many' is not a positive number of records; using 512,"
        " the default",
    ),
    (
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "inf"},
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE='inf' is not a positive number of records; using 512,"
        " the default",
    ),
    (
        {"OTEL_METRIC_EXPORT_INTERVAL": "inf", "EXESDB_OTLP_METRICS": "true"},
        "OTEL_METRIC_EXPORT_INTERVAL='inf' is not a positive number of milliseconds; using"
        " 60000, the default",
    ),
    (
        {"OTEL_METRIC_EXPORT_INTERVAL": "1e13", "EXESDB_OTLP_METRICS": "true"},
        "OTEL_METRIC_EXPORT_INTERVAL='1e13' is not a positive number of milliseconds of at most"
        " 9223372036000 (a thread's longest wait); using 60000, the default",
    ),
    (
        {"OTEL_METRIC_EXPORT_INTERVAL": "1m30s", "EXESDB_OTLP_METRICS": "true"},
        "OTEL_METRIC_EXPORT_INTERVAL='1m30s' is not a positive number of milliseconds (write"
        " 90000 for 1m30s); using 60000, the default",
    ),
]


@pytest.mark.parametrize(("env", "said"), _BAD_OTLP_NUMBERS)
def test_check_config_warns_of_a_bad_otlp_batching_number(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    said: str,
) -> None:
    """A bad OTEL_BSP_*, OTEL_BLRP_* or OTEL_METRIC_EXPORT_INTERVAL is warned of by check-config
    in its unit, with the number meant for a duration, and the default it falls back on."""
    status, _, err = check_config(
        monkeypatch, capsys, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317", **env
    )
    assert status == 0
    assert f"exesdb-bridge: warning: {said}\n" in err


def test_a_bad_batching_number_of_a_signal_not_exported_is_no_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """OTEL_BSP_* with traces off and OTEL_METRIC_EXPORT_INTERVAL without EXESDB_OTLP_METRICS
    are read by no exporter: check-config says nothing of them."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317",
        OTEL_TRACES_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="soon",
        OTEL_METRIC_EXPORT_INTERVAL="soon",
        OTEL_BLRP_SCHEDULE_DELAY="soon",
    )
    assert status == 0
    assert "OTEL_BSP" not in err
    assert "OTEL_METRIC" not in err
    assert "OTEL_BLRP_SCHEDULE_DELAY='soon'" in err


# OTEL_EXPORTER_OTLP_ENDPOINT values by protocol. http/protobuf: the SDK posts to the value plus
# /v1/<signal> with requests, which needs an http(s) URL with a host. grpc: the SDK dials the
# URL's host:port, or the value itself when it has none, as a gRPC target (a name or address,
# port 443 when none is given, or a target URI such as unix:/path).
OTLP_ENDPOINTS_REFUSED = [
    ("http/protobuf", "notaurl"),
    ("http/protobuf", "collector:4318"),
    ("http/protobuf", "ftp://collector:4318"),
    ("http/protobuf", "http://:4318"),
    ("http/protobuf", "http:/collector:4318"),
    ("http/protobuf", "http://collector:port"),
    ("http/protobuf", "http://collector:99999"),
    ("http/protobuf", "http://coll ector:4318"),
    ("grpc", ":4317"),
    ("grpc", "https://:4317"),
    ("grpc", "http://"),
    ("grpc", "collector:port"),
    ("grpc", "[::1]:port"),
    ("grpc", "[::1"),
    ("grpc", "not a url"),
    ("grpc", "collector:4317:1"),
    ("grpc", "collector:99999"),
]
OTLP_ENDPOINTS_ACCEPTED = [
    ("http/protobuf", "http://collector:4318"),
    ("http/protobuf", "HTTPS://collector.example.com"),
    ("http/protobuf", "http://[::1]:4318/"),
    ("grpc", "notaurl"),  # a host name: TLS to its port 443
    ("grpc", "collector:4317"),
    ("grpc", "http://collector:4317"),
    ("grpc", "https://collector.example.com"),
    ("grpc", "[::1]:4317"),
    ("grpc", "::1"),
    ("grpc", "unix:/run/otel.sock"),
    ("grpc", "dns:///collector:4317"),
]


@pytest.mark.parametrize(("protocol", "value"), OTLP_ENDPOINTS_REFUSED)
def test_an_otlp_endpoint_the_exporter_can_never_use_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], protocol: str, value: str
) -> None:
    """An OTLP endpoint the protocol's exporter could never send to is exit 2 naming the
    variable, not a failure at the first export."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        OTEL_EXPORTER_OTLP_ENDPOINT=value,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
    )
    assert status == 2
    assert "  OTEL_EXPORTER_OTLP_ENDPOINT: " in err
    assert protocol in err


@pytest.mark.parametrize(("protocol", "value"), OTLP_ENDPOINTS_ACCEPTED)
def test_an_otlp_endpoint_the_exporter_can_use_is_accepted(
    monkeypatch: pytest.MonkeyPatch, protocol: str, value: str
) -> None:
    """Every form the protocol's exporter dials loads, gRPC's host:port forms included."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    assert load_settings().otlp_endpoint == value


@pytest.mark.parametrize(
    "value", ["http://user:s3cr3t-pw@collector:4317", "user:s3cr3t-pw@collector:4317"]
)
def test_credentials_in_a_grpc_otlp_endpoint_are_refused_saying_where_they_go(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """A grpc endpoint holding user:password@ stops start-up saying the gRPC exporter does not
    send them and that OTEL_EXPORTER_OTLP_HEADERS does, without showing the password."""
    status, out, err = check_config(
        monkeypatch,
        capsys,
        OTEL_EXPORTER_OTLP_ENDPOINT=value,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    assert status == 2
    [line] = [line for line in err.splitlines() if "OTEL_EXPORTER_OTLP_ENDPOINT:" in line]
    assert "grpc exporter does not send" in line
    assert "OTEL_EXPORTER_OTLP_HEADERS" in line
    assert "s3cr3t" not in out + err


@pytest.mark.parametrize(
    ("variable", "value", "meant"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "http://localhost:4318"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4318/", "http://collector:4318"),
    ],
)
def test_an_http_otlp_endpoint_without_its_scheme_is_refused_with_the_url_meant(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    meant: str,
) -> None:
    """With http/protobuf an endpoint written host:port, as a gRPC one may be, stops start-up
    (exit 2) naming the variable, saying it has no scheme and giving the URL meant: the
    specification's OTLP/HTTP endpoint is a URL, which the SDK would fail to post to at every
    export."""
    status, _, err = check_config(
        monkeypatch, capsys, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", **{variable: value}
    )
    assert status == 2
    [problem] = [line for line in err.splitlines() if line.startswith("  ")]
    assert problem == (
        f"  {variable}: not usable with http/protobuf: it has no scheme; allowed: an http:// or"
        f" https:// URL with a host, e.g. {meant}"
    )


def warned_lines(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    saying: str,
) -> list[str]:
    """The lines of check-config's output, passing with ``env`` set, that say ``saying``."""
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    return [line for line in err.splitlines() if saying in line]


def _tls_warning(variable: str, value: str, insecure: str, port: str = "") -> str:
    """The warning of a gRPC endpoint written without a scheme, dialled with TLS."""
    return (
        f"exesdb-bridge: warning: {variable} {value} has no scheme{port}, so the grpc exporter"
        f" dials it with TLS (the OpenTelemetry specification's default while {insecure} is"
        f" unset), and every export to a collector without TLS fails: write http://{value} for"
        f" one without TLS, or https://{value} to say TLS"
    )


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
            [
                _tls_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "OTEL_EXPORTER_OTLP_INSECURE"
                )
            ],
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318", "EXESDB_OTLP_METRICS": "true"},
            [
                _tls_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "OTEL_EXPORTER_OTLP_INSECURE"
                )
            ],
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector"},
            [
                _tls_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "collector",
                    "OTEL_EXPORTER_OTLP_INSECURE",
                    " (nor port: 443 is dialled)",
                )
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "collector:4317",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
            },
            [
                _tls_warning(
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "collector:4317",
                    "OTEL_EXPORTER_OTLP_LOGS_INSECURE",
                )
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            },
            [],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
                "OTEL_EXPORTER_OTLP_INSECURE": "false",
            },
            [],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
                "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true",
                "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "false",
            },
            [],
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "unix:/run/otel.sock"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "dns:///collector:4317"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_SDK_DISABLED": "true"}, []),
    ],
    ids=[
        "host:port",
        "the HTTP port",
        "a bare host",
        "a signal's own",
        "insecure true",
        "insecure false",
        "each signal's insecure",
        "http URL",
        "https URL",
        "gRPC unix target",
        "gRPC dns target",
        "export off",
    ],
)
def test_a_grpc_endpoint_without_a_scheme_is_taken_warning_that_it_is_dialled_with_tls(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    warned: list[str],
) -> None:
    """A gRPC endpoint written host:port (the specification lets gRPC take any target) is
    accepted, and while no OTEL_EXPORTER_OTLP_[<SIGNAL>_]INSECURE is set check-config warns that
    the exporter dials it with TLS (the specification's Insecure default), what to write
    instead; a scheme, a gRPC target URI or an insecure setting says it, and nothing is warned."""
    assert warned_lines(monkeypatch, capsys, env, "TLS") == warned


@pytest.mark.parametrize(
    ("value", "scheme", "dialled", "port"),
    [
        ("grpc://collector:4317", "grpc", "collector:4317", ""),
        ("htp://collector:4317", "htp", "collector:4317", ""),
        ("grpc://collector", "grpc", "collector", " (nor port: 443 is dialled)"),
    ],
)
def test_a_grpc_endpoint_of_another_scheme_is_warned_that_it_is_dialled_with_tls(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    scheme: str,
    dialled: str,
    port: str,
) -> None:
    """A gRPC endpoint URL whose scheme is neither http nor https (grpc://, a mistyped htp://),
    whose host:port the exporter dials with TLS as it dials one without a scheme, is warned of
    as that one is, saying what to write instead."""
    status, _, err = check_config(monkeypatch, capsys, OTEL_EXPORTER_OTLP_ENDPOINT=value)
    assert status == 0, err
    assert [line for line in err.splitlines() if "TLS" in line] == [
        f"exesdb-bridge: warning: OTEL_EXPORTER_OTLP_ENDPOINT {value} has the scheme {scheme!r},"
        f" neither http nor https{port}, so the grpc exporter dials it with TLS (the OpenTelemetry"
        " specification's default while OTEL_EXPORTER_OTLP_INSECURE is unset), and every export"
        f" to a collector without TLS fails: write http://{dialled} for one without TLS, or"
        f" https://{dialled} to say TLS"
    ]


def _port_warning(variable: str, value: str, signals: str, protocol: str, said: str) -> str:
    """The warning of an endpoint naming the other protocol's standard port."""
    port, kind, other, right, its = (
        ("4318", "OTLP/HTTP", "http/protobuf", "4317", "OTLP/gRPC")
        if protocol == "grpc"
        else ("4317", "OTLP/gRPC", "grpc", "4318", "OTLP/HTTP")
    )
    return (
        f"exesdb-bridge: warning: {variable} {value} names port {port}, a collector's {kind}"
        f" port, while {signals} go over {protocol}: every export fails there; set {said} to"
        f" {other}, or give the collector's {its} port, {right}"
    )


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            [
                _port_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://collector:4318",
                    "traces, logs",
                    "grpc",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                )
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [
                _port_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://collector:4317",
                    "traces, logs",
                    "http/protobuf",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                )
            ],
        ),
        (  # only the signal sent over the other protocol; its own protocol variable decides
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
            },
            [
                _port_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://collector:4318",
                    "logs",
                    "grpc",
                    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
                )
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            },
            [
                _port_warning(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "collector:4318",
                    "traces",
                    "grpc",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                )
            ],
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, []),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [],
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:14318"}, []),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
            [],
        ),
    ],
    ids=[
        "grpc to 4318",
        "http to 4317",
        "one signal's protocol",
        "grpc target",
        "grpc to 4317",
        "http to 4318",
        "another port",
        "export off",
    ],
)
def test_an_endpoint_naming_the_other_protocols_port_is_warned_of(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    warned: list[str],
) -> None:
    """An endpoint naming a collector's OTLP/HTTP port (4318) for signals sent over grpc, or its
    gRPC port (4317) for http/protobuf, is warned of, naming the signals, the protocol variable
    that decides theirs and the port meant; the right port, another one or export off: nothing."""
    assert warned_lines(monkeypatch, capsys, env, "names port") == warned


def _no_path_warning(signal: str, value: str) -> str:
    """The warning of a signal's own http/protobuf endpoint without a path."""
    return (
        f"exesdb-bridge: warning: OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT {value} has no"
        " path, and the http/protobuf exporter posts to a signal's own endpoint as it is, adding"
        f" nothing: a collector takes {signal} at /v1/{signal} and answers 404 elsewhere; end"
        f" the URL in /v1/{signal}, or give the collector's base URL in"
        " OTEL_EXPORTER_OTLP_ENDPOINT instead, to which the exporter adds /v1/<signal>"
    )


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [_no_path_warning("traces", "http://collector:4318")],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://collector:4318/",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317",
            },
            [_no_path_warning("logs", "https://collector:4318")],  # shown as every URL is
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "EXESDB_OTLP_METRICS": "true",
            },
            [_no_path_warning("metrics", "http://collector:4318")],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [],
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, []),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_EXPORTER": "none",
            },
            [],
        ),
    ],
    ids=[
        "traces",
        "logs, trailing slash",
        "metrics",
        "with its path",
        "grpc",
        "general endpoint",
        "export off",
    ],
)
def test_a_signals_own_http_endpoint_without_a_path_is_warned_of(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    warned: list[str],
) -> None:
    """A signal's own http/protobuf endpoint given as the collector's base URL (which the
    exporter posts to as it is, so a collector answers 404) is warned of, saying to end it in
    /v1/<signal> or use the general endpoint; with the path, over gRPC, as the general endpoint
    or not exported, nothing is warned."""
    assert warned_lines(monkeypatch, capsys, env, "has no path") == warned


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "notaurl",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            },
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        ),
        # grpc for traces (the default), but the logs exporter posts to it over HTTP.
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
            },
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
    ],
)
def test_an_otlp_endpoint_is_checked_for_each_protocol_that_uses_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    variable: str,
) -> None:
    """A per-signal endpoint is checked against its signal's protocol; the general endpoint
    against the protocol of every signal that falls back on it."""
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", **env}
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 2
    [problem] = [line for line in err.splitlines() if line.startswith("  ")]
    assert problem.startswith(f"  {variable}: ")


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs/", "/otlp/v1/metrics"])
def test_a_general_http_endpoint_ending_in_a_signal_s_path_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    """With http/protobuf the exporter adds /v1/<signal> to OTEL_EXPORTER_OTLP_ENDPOINT, so one
    ending in such a path already (every export a 404 at /v1/traces/v1/traces) stops start-up
    naming it; the same URL as a signal's own endpoint is used as it is, and taken."""
    url = f"http://otel.internal:4318{path}"
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    status, _, err = check_config(monkeypatch, capsys, OTEL_EXPORTER_OTLP_ENDPOINT=url, **env)
    assert status == 2
    [problem] = [line for line in err.splitlines() if line.startswith("  ")]
    signal_path = "/v1/" + path.rstrip("/").rpartition("/")[2]
    assert problem.startswith(f"  OTEL_EXPORTER_OTLP_ENDPOINT: ends in {signal_path}, ")
    assert "(http://collector:4318)" in problem  # the base URL to give instead, as an example
    assert "otel.internal" not in problem  # never the value (its path may hold a token)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    for signal in ("TRACES", "LOGS"):
        monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", url)
    assert load_settings().otlp_traces_endpoint == url


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


_COLLECTOR = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4317"}


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
    status, _, err = check_config(monkeypatch, capsys, **_COLLECTOR, **{variable: path})
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
    status, _, err = check_config(monkeypatch, capsys, **_COLLECTOR, **{variable: path})
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
            **_COLLECTOR,
            "OTEL_SDK_DISABLED": "true",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": "missing.pem",
        },
        {**_COLLECTOR, "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE": "missing.pem"},
        {
            **_COLLECTOR,
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


# OTLP headers values the SDK's exporters drop an item of, and the item numbers said.
_HEADERS_DROPPED = [
    ("Authorization: Bearer s3cr3t-token", "item 1 of 1 is"),
    ("tenant=a;b", "item 1 of 1 is"),
    ('x-note="quoted"', "item 1 of 1 is"),
    ("x-team=équipe", "item 1 of 1 is"),
    ("x-team=ops,Authorization: Bearer s3cr3t-token, x-b=1\\2", "items 2, 3 of 3 are"),
]
# Values every item of which they send: URL-encoded, with blanks as written, blanks around.
_HEADERS_SENT = [
    "Authorization=Bearer%20s3cr3t-token",
    "Authorization=Bearer s3cr3t-token",
    " x-team = ops , api-key=a%3Bb ,",
]


@pytest.mark.parametrize(("value", "which"), _HEADERS_DROPPED)
def test_otlp_headers_the_exporters_would_drop_stop_start_up_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str, which: str
) -> None:
    """An OTEL_EXPORTER_OTLP_HEADERS item that is no name=value pair the exporters read is exit
    2 naming the variable and the item by number, never its text: the SDK would only warn and
    send without it, so a collector asking for a token would refuse every export."""
    status, _, err = check_config(
        monkeypatch, capsys, **_COLLECTOR, OTEL_EXPORTER_OTLP_HEADERS=value
    )
    assert status == 2
    assert f"  OTEL_EXPORTER_OTLP_HEADERS: {which} no name=value pair" in err
    assert "s3cr3t" not in err
    assert "équipe" not in err


@pytest.mark.parametrize("value", _HEADERS_SENT)
def test_otlp_headers_the_exporters_send_whole_are_taken(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Headers every item of which the exporters send load, blanks in a value included (the
    SDK takes them as written, as other languages' SDKs do)."""
    for name, given in {**_COLLECTOR, "OTEL_EXPORTER_OTLP_HEADERS": value}.items():
        monkeypatch.setenv(name, given)
    load_settings()


def test_the_headers_rule_is_the_sdk_s() -> None:
    """What the check refuses, the OpenTelemetry SDK's parser (as its exporters call it) drops
    an item of, and what it takes the parser keeps whole: a newer SDK reading otherwise fails
    here."""
    from opentelemetry.util.re import parse_env_headers

    for value, _ in _HEADERS_DROPPED:
        items = [item for item in value.split(",") if item.strip()]
        assert len(parse_env_headers(value, liberal=True)) < len(items), value
    for value in _HEADERS_SENT:
        items = [item for item in value.split(",") if item.strip()]
        assert len(parse_env_headers(value, liberal=True)) == len(items), value


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_HEADERS": "Authorization: Bearer x"},
        {**_COLLECTOR, "OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_HEADERS": "a:b"},
        {**_COLLECTOR, "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "a:b"},
        {
            **_COLLECTOR,
            "OTEL_EXPORTER_OTLP_HEADERS": "a:b",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=1",
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "a=1",
        },
    ],
)
def test_otlp_headers_no_exporter_reads_are_not_judged(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """Headers are judged only where an exporter reads them: none with OTLP export off, a
    signal's own not while that signal is not exported (metrics without EXESDB_OTLP_METRICS),
    the general one not when every exported signal has its own."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    load_settings()


def test_a_signal_s_own_headers_are_judged_under_their_own_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signal's own headers variable the exporter would drop an item of is named as itself."""
    status, _, err = check_config(
        monkeypatch, capsys, **_COLLECTOR, OTEL_EXPORTER_OTLP_LOGS_HEADERS="a=1,b"
    )
    assert status == 2
    assert "  OTEL_EXPORTER_OTLP_LOGS_HEADERS: item 2 of 2 is no name=value pair" in err


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
    env = {"EXESDB_WEBHOOK_SECRET": "k" * 32}
    if urls:
        env["EXESDB_WEBHOOK_URLS"] = urls
    if file:
        (tmp_path / "receivers.yml").write_text(file)
        env["EXESDB_WEBHOOK_CONFIG_FILE"] = str(tmp_path / "receivers.yml")
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
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
        # Slack's workflow webhooks take variables of one's own; other hosts are anyone's.
        ("https://hooks.slack.com/workflows/T0/A0/tok3n,https://hooks.example/services/x", "", []),
    ],
    ids=["slack and discord", "file, discord's versioned api", "workflow, other hosts"],
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
    env = {"EXESDB_WEBHOOK_SECRET": "k" * 32}
    if urls:
        env["EXESDB_WEBHOOK_URLS"] = urls
    if file:
        (tmp_path / "receivers.yml").write_text(file)
        env["EXESDB_WEBHOOK_CONFIG_FILE"] = str(tmp_path / "receivers.yml")
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
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
