"""Reading the variables (docs/configuration.md): the defaults, each value taken, and a bad one
stopping start-up with a line naming the variable, its range and an example."""

from __future__ import annotations

import socket

import pytest

from bridge.bus.redis.link import OWN_OPTIONS
from bridge.config import load_settings
from bridge.otlp_settings import otlp_enabled
from bridge.settings import Settings
from bridge.settings_errors import number_kind
from tests.config.helpers import LONG_SECRET
from tests.support import check_config, make_settings

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
        # Numbers and dots that are no IPv4 address were looked up as a name, failing at run.
        ("EXESDB_HTTP_ADDR", "999.1.1.1:9781", "the host 999.1.1.1 is no IPv4 address (four"),
        ("EXESDB_HTTP_ADDR", "10.0.0:9570", "the host 10.0.0 is no IPv4 address"),
        ("EXESDB_HTTP_ADDR", "10.0.0.256:9570", "numbers from 0 to 255, joined by dots"),
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
        # A byte no UTF-8 character is made of, held by the environment as a surrogate escape
        # (a key made with $(head -c 32 /dev/urandom)): it stopped run with a traceback.
        ("SECRET_KEY_BASE", "\udcff" + LONG_SECRET, "holds bytes that are not UTF-8 text"),
        (
            "EXESDB_SECRET_KEY_BASE_PREVIOUS",
            "\udcff" + LONG_SECRET,
            "holds bytes that are not UTF-8 text",
        ),
        # The webhooks' key likewise: each delivery's worker failed on it, retrying for ever.
        ("EXESDB_WEBHOOK_SECRET", "\udcff" + LONG_SECRET, "holds bytes that are not UTF-8 text"),
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
        ("EXESDB_MAX_BODIES_BYTES", "1000", "from 1048576 to 1099511627776"),
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
        # Go's compound form, as the receivers file's durations are written.
        (
            "EXESDB_WEBHOOK_DEADLINE_MS",
            "1h30m",
            "EXESDB_WEBHOOK_DEADLINE_MS: must be a whole number of milliseconds from 1 to"
            " 2592000000, e.g. 86400000; 1h30m is 5400000 (got '1h30m')",
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
    with a unit (`8s`, or `1h30m`, as the receivers file writes one) is given in milliseconds,
    and a size typed with a unit (`256MiB`) in bytes."""
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


def test_every_number_setting_refuses_digits_grouped_with_an_underscore(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``10_000`` is no number a setting takes, in every number setting at once: Python (and
    so pydantic) reads it as 10000 and a stray ``8_5`` as 85, where Go's parsers refuse it;
    refused as ingest refuses ``"1_000"``, each line saying why."""
    numbers = [
        str(info.validation_alias)
        for info in Settings.model_fields.values()
        if number_kind(info)[0] is not None
    ]
    assert {"EXESDB_MAX_SERIES", "EXESDB_CPU_DEGRADED", "OTEL_EXPORTER_OTLP_TIMEOUT"} <= {*numbers}
    status, _, err = check_config(monkeypatch, capsys, **dict.fromkeys(numbers, "1_0"))
    assert status == 2
    refused = {
        line.split(":")[0].strip(): line
        for line in err.splitlines()[1:]
        if "digits grouped with _ are not taken" in line
    }
    assert sorted(refused) == sorted(numbers)
    assert all(line.endswith("(got '1_0')") for line in refused.values())


@pytest.mark.parametrize(
    ("node", "said"),
    [
        ("\u2800", "must not be blank at its start or end (whitespace, the braille blank U+2800"),
        ("db\u200b1", "or contain a control character, a format character"),
        ("db\u200c1", "or a joiner (U+200C, U+200D) where it joins nothing"),
    ],
)
def test_a_node_name_refused_is_told_in_ingest_s_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], node: str, said: str
) -> None:
    """EXESDB_NODE refused is said as ingest says a node name it refuses (a braille blank as
    blank), never as the pattern pydantic quotes."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_NODE=node)
    assert status == 2
    line = err.splitlines()[1]
    assert line.startswith("  EXESDB_NODE: a node name must not be blank"), line
    assert said in line
    assert "pattern" not in line


def test_check_config_refuses_a_listen_host_of_numbers_that_is_no_ipv4_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_HTTP_ADDR=999.1.1.1:9781, which run fails to listen on (no such host name), stops
    check-config (exit 2) naming the variable, as run's own check of it does."""
    status, out, err = check_config(monkeypatch, capsys, EXESDB_HTTP_ADDR="999.1.1.1:9781")
    assert status == 2
    assert out == ""
    assert (
        "\n  EXESDB_HTTP_ADDR: must be host:port, and the host 999.1.1.1 is no IPv4 address" in err
    )
