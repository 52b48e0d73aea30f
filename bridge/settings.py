"""The settings model: one environment variable each, its value checked, and what the values imply.

Every setting is one environment variable (docs/configuration.md); ``Settings`` reads them all,
checks each value on its own and derives what several of them say together (the address it
listens on, its own URL, the webhook receivers). The checks of one value live with what they
check (``bridge.urls``, ``bridge.bus_url``, ``bridge.probe_settings``), and the types of the
variables the client commands read too with those commands' models (``bridge.client_settings``,
where every settings model's way of reading the environment is); the loading that reports
every problem at once (``bridge.config``), the checks across values
(``bridge.settings_checks``), each OTLP signal's own settings (``bridge.otlp_settings``), how a
refused value is worded (``bridge.settings_errors``), how a value is shown
(``bridge.settings_display``) and which set variables are no setting
(``bridge.unknown_variables``) each have a module of their own.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import NoDecode

from bridge.bus_url import require_bus
from bridge.client_settings import (
    DEFAULT_STATE_DIR,
    AdminToken,
    BaseUrl,
    BridgeUrl,
    FromEnvironment,
    ListenAddress,
    NodeName,
    SigningKey,
    SigningKeyText,
    StateDir,
    Trimmed,
    raised_again,
    setting,
    trimmed,
)
from bridge.messages import AlertSeverity
from bridge.probe_settings import DEFAULT_HTTP_ADDR, split_addr
from bridge.receiver_keys import ReceiverKeys
from bridge.redaction import redact_urls, safe_url
from bridge.settings_display import shown_setting
from bridge.settings_errors import number_kind
from bridge.unknown_variables import unknown_variable_warnings
from bridge.urls import (
    commas_in_queries,
    own_url,
    require_alertmanager_url,
    require_external_url,
    require_http_url,
    require_link_origin,
)

if TYPE_CHECKING:
    from bridge.receivers import AlertmanagerConfig, Receiver, ReceiversFileRead
    from bridge.webconfig.loading import Judged

__all__ = [
    "Settings",
    "known_variables",
    "unknown_variables",
]

LogLevel = Literal["debug", "info", "warning", "error"]
# The longest a duration setting may say, by what a user could mean by it. Past them a value is a
# slip (a stray zero, seconds typed as milliseconds times a thousand) and, far past them, one the
# bridge cannot keep: a retry planned past the year 9999 is no time its pages and the outbox's
# rows can show, a claim time past 2**63 ms one Redis refuses.
_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 24 * _HOUR_MS
_WEEK_MS: Final = 7 * _DAY_MS
_MONTH_MS: Final = 30 * _DAY_MS
_YEAR_MS: Final = 365 * _DAY_MS
# Up to an hour: how long the bridge waits on a stop, on a client, or before a first delivery.
UpToAnHourMs = Annotated[int, Field(gt=0, le=_HOUR_MS)]
# Up to a day: the collectors' intervals, retries' waits, the clock skew taken, a lease.
UpToADayMs = Annotated[int, Field(gt=0, le=_DAY_MS)]
UpToAWeekMs = Annotated[int, Field(gt=0, le=_WEEK_MS)]
# Up to 30 days: how long an alert is followed before the bridge gives it up or says it again.
UpToAMonthMs = Annotated[int, Field(gt=0, le=_MONTH_MS)]
UpToAYearMs = Annotated[int, Field(gt=0, le=_YEAR_MS)]
# A resource threshold: above 100 no reading reaches it (100 turns the status off), and 1 or
# less is a fraction meant as percent (0.85), so nearly every sample would be degraded.
Percent = Annotated[float, Field(gt=1, le=100)]


# Each item checked on its own, so that every bad one is reported (``EXESDB_WEBHOOK_URLS``).
HttpUrlList = Annotated[tuple[Annotated[str, AfterValidator(require_http_url)], ...], NoDecode]
OriginList = Annotated[tuple[Annotated[str, AfterValidator(require_link_origin)], ...], NoDecode]
OtlpProtocol = Literal["grpc", "http/protobuf"]
OtlpSignal = Literal["traces", "logs", "metrics"]
# OTEL_<SIGNAL>_EXPORTER: the bridge exports over OTLP or not at all.
OtelExporter = Literal["otlp", "none"]
# OTEL_EXPORTER_OTLP_*TIMEOUT in seconds, as the Python SDK reads it; the specification says
# milliseconds, so a value above ten minutes is taken for milliseconds meant and refused.
OtlpTimeout = Annotated[float, Field(gt=0, le=600)]
OtlpCompression = Literal["gzip", "none"]
# OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: the specification's three values.
TemporalityPreference = Literal["cumulative", "delta", "lowmemory"]


class Settings(FromEnvironment):
    """The resolved configuration; ``check-config`` shows it, docs/configuration.md documents
    each variable. The variables the client commands read too have their types in
    ``bridge.client_settings``, which checks them for those commands alone."""

    # EXESDB_WEBHOOK_CONFIG_FILE as first read (receivers_file): one version of it for all.
    _receivers_file: ReceiversFileRead | None = PrivateAttr(default=None)
    # EXESDB_WEB_CONFIG_FILE as first read (web_config), likewise; the server starts from it.
    _web_config: Judged | None = PrivateAttr(default=None)

    # Signing and replay protection.
    secret_key_base: SigningKey = setting("SECRET_KEY_BASE", default=None)
    secret_key_base_previous: Annotated[tuple[SigningKeyText, ...], NoDecode] = setting(
        "EXESDB_SECRET_KEY_BASE_PREVIOUS", default=()
    )
    replay_window_ms: UpToADayMs = setting("EXESDB_REPLAY_WINDOW_MS", default=300_000)
    replay_memory: Annotated[int, Field(ge=1000, le=100_000_000)] = setting(
        "EXESDB_REPLAY_MEMORY", default=200_000
    )

    # The integration and its collectors.
    pubsub_integration: bool = setting("EXESDB_PUBSUB_INTEGRATION", default=True)
    health_broadcast_interval: Annotated[int, Field(ge=100, le=_DAY_MS)] = setting(
        "EXESDB_HEALTH_BROADCAST_INTERVAL", default=30_000
    )
    metrics_broadcast_interval: Annotated[int, Field(ge=100, le=_DAY_MS)] = setting(
        "EXESDB_METRICS_BROADCAST_INTERVAL", default=60_000
    )
    node: NodeName = setting("EXESDB_NODE", default_factory=socket.gethostname)
    node_forget_ms: UpToAMonthMs = setting("EXESDB_NODE_FORGET_MS", default=86_400_000)
    cpu_degraded: Percent = setting("EXESDB_CPU_DEGRADED", default=85.0)
    cpu_unhealthy: Percent = setting("EXESDB_CPU_UNHEALTHY", default=95.0)
    memory_degraded: Percent = setting("EXESDB_MEMORY_DEGRADED", default=85.0)
    memory_unhealthy: Percent = setting("EXESDB_MEMORY_UNHEALTHY", default=95.0)
    disk_degraded: Percent = setting("EXESDB_DISK_DEGRADED", default=85.0)
    disk_unhealthy: Percent = setting("EXESDB_DISK_UNHEALTHY", default=95.0)

    # The bus.
    bus: str = setting("EXESDB_BUS", default="memory")
    bus_queue_size: Annotated[int, Field(ge=1, le=10_000_000)] = setting(
        "EXESDB_BUS_QUEUE_SIZE", default=10_000
    )
    alert_queue_size: Annotated[int, Field(ge=1, le=10_000_000)] = setting(
        "EXESDB_ALERT_QUEUE_SIZE", default=100_000
    )
    bus_queue_bytes: Annotated[int, Field(ge=1_048_576, le=2**40)] = setting(
        "EXESDB_BUS_QUEUE_BYTES", default=134_217_728
    )
    redis_stream_maxlen: Annotated[int, Field(ge=100, le=1_000_000_000)] = setting(
        "EXESDB_REDIS_STREAM_MAXLEN", default=100_000
    )
    redis_buffer_size: Annotated[int, Field(ge=1, le=10_000_000)] = setting(
        "EXESDB_REDIS_BUFFER_SIZE", default=10_000
    )
    redis_claim_idle_ms: UpToADayMs = setting("EXESDB_REDIS_CLAIM_IDLE_MS", default=30_000)
    # The longest wait between the Redis transport's tries (its first is 100 ms): up to a minute,
    # for a refusal stays told two of these after its last try (docs/redis.md).
    redis_max_backoff_ms: Annotated[int, Field(ge=100, le=60_000)] = setting(
        "EXESDB_REDIS_MAX_BACKOFF_MS", default=5_000
    )
    # How long a Redis command waits for its answer (the socket timeout): above the 1 s its
    # blocking reads wait, so that a blocked read is not taken for a dead server.
    redis_timeout_ms: Annotated[int, Field(ge=1_500, le=60_000)] = setting(
        "EXESDB_REDIS_TIMEOUT_MS", default=6_000
    )
    redis_spool_bytes: Annotated[int, Field(ge=1_048_576, le=2**40)] = setting(
        "EXESDB_REDIS_SPOOL_BYTES", default=268_435_456
    )

    # HTTP.
    http_addr: ListenAddress = setting("EXESDB_HTTP_ADDR", default=DEFAULT_HTTP_ADDR)
    ingest: bool = setting("EXESDB_INGEST", default=False)
    max_body_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = setting(
        "EXESDB_MAX_BODY_BYTES", default=1_048_576
    )
    # The bytes of bodies the requests in progress may hold at once (unset: the listener's
    # BODIES_HELD, or twice EXESDB_MAX_BODY_BYTES when that is more).
    max_bodies_bytes: Annotated[int, Field(ge=1_048_576, le=2**40)] | None = setting(
        "EXESDB_MAX_BODIES_BYTES", default=None
    )
    admin_token: AdminToken = setting("EXESDB_ADMIN_TOKEN", default=None)
    # Where the client commands (publish, tail, alerts) find a bridge; unset: EXESDB_HTTP_ADDR.
    url: BridgeUrl = setting("EXESDB_URL", default=None)
    web_config_file: Trimmed | None = setting("EXESDB_WEB_CONFIG_FILE", default=None)
    # What `exesdb-bridge healthcheck` presents when the web config asks for it.
    healthcheck_username: str | None = setting("EXESDB_HEALTHCHECK_USERNAME", default=None)
    healthcheck_password_file: str | None = setting(
        "EXESDB_HEALTHCHECK_PASSWORD_FILE", default=None
    )
    healthcheck_cert_file: str | None = setting("EXESDB_HEALTHCHECK_CERT_FILE", default=None)
    healthcheck_key_file: str | None = setting("EXESDB_HEALTHCHECK_KEY_FILE", default=None)
    shutdown_timeout_ms: UpToAnHourMs = setting("EXESDB_SHUTDOWN_TIMEOUT_MS", default=8_000)
    http_header_timeout_ms: UpToAnHourMs = setting("EXESDB_HTTP_HEADER_TIMEOUT_MS", default=10_000)
    http_body_timeout_ms: UpToAnHourMs = setting("EXESDB_HTTP_BODY_TIMEOUT_MS", default=60_000)
    http_idle_timeout_ms: UpToAnHourMs = setting("EXESDB_HTTP_IDLE_TIMEOUT_MS", default=75_000)
    # TCP_USER_TIMEOUT takes a C int of milliseconds.
    http_write_timeout_ms: Annotated[int, Field(gt=0, le=2**31 - 1)] = setting(
        "EXESDB_HTTP_WRITE_TIMEOUT_MS", default=60_000
    )
    http_max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = setting(
        "EXESDB_HTTP_MAX_CONNECTIONS", default=1_024
    )

    # The Prometheus sink.
    series_ttl_ms: UpToAWeekMs = setting("EXESDB_SERIES_TTL_MS", default=600_000)
    max_series: Annotated[int, Field(ge=1, le=10_000_000)] = setting(
        "EXESDB_MAX_SERIES", default=10_000
    )
    max_series_bytes: Annotated[int, Field(ge=1_048_576, le=2**40)] = setting(
        "EXESDB_MAX_SERIES_BYTES", default=67_108_864
    )

    # Alerts.
    webhook_urls: HttpUrlList = setting("EXESDB_WEBHOOK_URLS", default=())
    webhook_config_file: str | None = setting("EXESDB_WEBHOOK_CONFIG_FILE", default=None)
    webhook_secret: SigningKey = setting("EXESDB_WEBHOOK_SECRET", default=None)
    webhook_backoff_ms: UpToADayMs = setting("EXESDB_WEBHOOK_BACKOFF_MS", default=1_000)
    webhook_max_backoff_ms: UpToADayMs = setting("EXESDB_WEBHOOK_MAX_BACKOFF_MS", default=300_000)
    webhook_deadline_ms: UpToAMonthMs = setting("EXESDB_WEBHOOK_DEADLINE_MS", default=86_400_000)
    webhook_dead_letter_ttl_ms: UpToAYearMs = setting(
        "EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS", default=7 * 86_400_000
    )
    webhook_renotify_interval_ms: UpToAMonthMs = setting(
        "EXESDB_WEBHOOK_RENOTIFY_INTERVAL_MS", default=4 * 3_600_000
    )
    # Up to ten minutes, as the OTLP exporters' timeouts: an attempt is not waited on longer.
    webhook_timeout_ms: Annotated[int, Field(gt=0, le=600_000)] = setting(
        "EXESDB_WEBHOOK_TIMEOUT_MS", default=10_000
    )
    webhook_min_severity: AlertSeverity = setting("EXESDB_WEBHOOK_MIN_SEVERITY", default="warning")
    webhook_group_wait_ms: Annotated[int, Field(ge=0, le=_HOUR_MS)] = setting(
        "EXESDB_WEBHOOK_GROUP_WAIT_MS", default=500
    )
    webhook_max_alerts: Annotated[int, Field(ge=1, le=100_000)] = setting(
        "EXESDB_WEBHOOK_MAX_ALERTS", default=50
    )
    alertmanager_url: BaseUrl = setting("EXESDB_ALERTMANAGER_URL", default=None)
    escalation_after_ms: UpToAMonthMs = setting("EXESDB_ESCALATION_AFTER_MS", default=900_000)
    alert_resolve_timeout_ms: UpToAYearMs = setting(
        "EXESDB_ALERT_RESOLVE_TIMEOUT_MS", default=300_000
    )
    # How long a health condition must hold before it alerts; unset: two health intervals.
    alert_for_ms: Annotated[int, Field(ge=0, le=_WEEK_MS)] | None = setting(
        "EXESDB_ALERT_FOR_MS", default=None
    )
    external_url: BaseUrl = setting("EXESDB_EXTERNAL_URL", default=None)
    # Origins whose links in alert metadata are shown whole (sinks/alerts/sources.py);
    # empty: every URL there shows its origin only.
    alert_link_origins: OriginList = setting("EXESDB_ALERT_LINK_ORIGINS", default=())
    state_dir: StateDir = setting("EXESDB_STATE_DIR", default=DEFAULT_STATE_DIR)

    # Logging.
    log_level: LogLevel = setting("EXESDB_LOG_LEVEL", default="info")
    log_format: Literal["text", "json"] = setting("EXESDB_LOG_FORMAT", default="text")
    # The source revision in exesdb_build_info (bridge/build.py); the image build sets it.
    revision: str | None = setting("EXESDB_REVISION", default=None)

    # OpenTelemetry: the standard variables; the SDK reads the rest itself.
    otlp_endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        default=None,
    )
    otlp_traces_endpoint: str | None = setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default=None)
    otlp_logs_endpoint: str | None = setting("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", default=None)
    otlp_metrics_endpoint: str | None = setting("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", default=None)
    otlp_protocol: OtlpProtocol = setting("OTEL_EXPORTER_OTLP_PROTOCOL", default="grpc")
    otlp_traces_protocol: OtlpProtocol | None = setting(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", default=None
    )
    otlp_logs_protocol: OtlpProtocol | None = setting(
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", default=None
    )
    otlp_metrics_protocol: OtlpProtocol | None = setting(
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", default=None
    )
    otlp_timeout: OtlpTimeout = setting("OTEL_EXPORTER_OTLP_TIMEOUT", default=10.0)
    otlp_traces_timeout: OtlpTimeout | None = setting(
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", default=None
    )
    otlp_logs_timeout: OtlpTimeout | None = setting("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", default=None)
    otlp_metrics_timeout: OtlpTimeout | None = setting(
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", default=None
    )
    otlp_compression: OtlpCompression = setting("OTEL_EXPORTER_OTLP_COMPRESSION", default="none")
    otlp_traces_compression: OtlpCompression | None = setting(
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", default=None
    )
    otlp_logs_compression: OtlpCompression | None = setting(
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", default=None
    )
    otlp_metrics_compression: OtlpCompression | None = setting(
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", default=None
    )
    # The TLS files the SDK's exporters read themselves, checked at start (settings_checks).
    otlp_certificate: str | None = setting("OTEL_EXPORTER_OTLP_CERTIFICATE", default=None)
    otlp_client_key: str | None = setting("OTEL_EXPORTER_OTLP_CLIENT_KEY", default=None)
    otlp_client_certificate: str | None = setting(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", default=None
    )
    otlp_traces_certificate: str | None = setting(
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", default=None
    )
    otlp_traces_client_key: str | None = setting(
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", default=None
    )
    otlp_traces_client_certificate: str | None = setting(
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", default=None
    )
    otlp_logs_certificate: str | None = setting("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", default=None)
    otlp_logs_client_key: str | None = setting("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", default=None)
    otlp_logs_client_certificate: str | None = setting(
        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", default=None
    )
    otlp_metrics_certificate: str | None = setting(
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", default=None
    )
    otlp_metrics_client_key: str | None = setting(
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", default=None
    )
    otlp_metrics_client_certificate: str | None = setting(
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", default=None
    )
    otel_service_name: str = setting("OTEL_SERVICE_NAME", default="exesdb-bridge")
    otlp_queue_size: Annotated[int, Field(ge=1, le=10_000_000)] = setting(
        "EXESDB_OTLP_QUEUE_SIZE", default=8_192
    )
    otlp_metrics: bool = setting("EXESDB_OTLP_METRICS", default=False)
    otlp_metrics_temporality_preference: TemporalityPreference = setting(
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", default="cumulative"
    )
    # The specification's off switches: for every signal, and for each one.
    otel_sdk_disabled: bool = setting("OTEL_SDK_DISABLED", default=False)
    otel_traces_exporter: OtelExporter = setting("OTEL_TRACES_EXPORTER", default="otlp")
    otel_logs_exporter: OtelExporter = setting("OTEL_LOGS_EXPORTER", default="otlp")
    otel_metrics_exporter: OtelExporter = setting("OTEL_METRICS_EXPORTER", default="otlp")

    @field_validator("*", mode="before")
    @classmethod
    def _no_digit_groups(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads a number as Python does: "10_000" is 10000, and a stray "8_5" is 85.
        # Refused, as ingest refuses "1_000": other parsers (Go's) refuse or read it otherwise.
        if not (isinstance(value, str) and "_" in value and info.field_name):
            return value
        kind, _ = number_kind(cls.model_fields[info.field_name])
        if kind is int:
            raise PydanticCustomError("int_parsing", "Input should be a valid integer")
        if kind is float:
            raise PydanticCustomError("float_parsing", "Input should be a valid number")
        return value

    @field_validator("secret_key_base_previous", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        return _split(value)

    @field_validator(
        "webhook_config_file",
        "healthcheck_password_file",
        "healthcheck_cert_file",
        "healthcheck_key_file",
        "otlp_metrics_temporality_preference",  # a word, which the SDK's exporter trims too
        "bus",
        "otlp_endpoint",
        "otlp_traces_endpoint",
        "otlp_logs_endpoint",
        "otlp_metrics_endpoint",
        "pubsub_integration",
        "ingest",
        "otlp_metrics",
        "otlp_protocol",
        "otlp_traces_protocol",
        "otlp_logs_protocol",
        "otlp_metrics_protocol",
        mode="before",
    )
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        # As the Trimmed settings are (bridge.client_settings.trimmed says why). The OTLP
        # exporters read their endpoints from the environment themselves: the OTLP sink trims
        # them there too (the bridge picks the exporter of a protocol itself; the SDK never
        # reads it).
        return trimmed(value)

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: Any) -> Any:
        # Set but empty (as the shipped Kubernetes Secret has it) is no key: unsigned, warned.
        return value or None

    @field_validator(
        "log_format",
        "otel_traces_exporter",
        "otel_logs_exporter",
        "otel_metrics_exporter",
        "otlp_compression",
        "otlp_traces_compression",
        "otlp_logs_compression",
        "otlp_metrics_compression",
        "otlp_metrics_temporality_preference",  # case-insensitive in the specification
        mode="before",
    )
    @classmethod
    def _any_letter_case(cls, value: Any) -> Any:
        # INFO as Python's logging spells a level, JSON, Critical: one word, as booleans are,
        # the blanks around it stray ones (an env file's "X=info ").
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", "webhook_min_severity", mode="before")
    @classmethod
    def _warn_is_warning(cls, value: Any) -> Any:
        # Python's logging takes WARN for WARNING, and the nodes' LogEntry levels spell it so:
        # the least alert severity, a word of the same scale, takes it as the log level does.
        word = value.strip().lower() if isinstance(value, str) else value
        return "warning" if word == "warn" else word

    @field_validator("otel_sdk_disabled", mode="before")
    @classmethod
    def _otel_boolean(cls, value: Any) -> Any:
        # The specification's boolean: "true" or "false" in any letter case. The SDK reads any
        # other value ("1", "yes") as false, so none is taken as one meaning or the other here.
        if isinstance(value, str):
            word = value.strip().lower()
            if word not in ("true", "false"):
                raise ValueError("must be true or false, as OpenTelemetry's booleans are")
            return word == "true"
        return value

    @field_validator("alert_link_origins", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("webhook_urls", mode="wrap")
    @classmethod
    def _each_receiver_once(
        cls, value: Any, handler: ValidatorFunctionWrapHandler
    ) -> tuple[str, ...]:
        # A URL given twice is one receiver, and merging the two items silently would hide a
        # mistake (one of them may have been meant to be another URL). The good items are
        # compared even when another item is bad: every problem of the list at once.
        items = _split(value)
        cut = commas_in_queries(items) if isinstance(items, tuple) else {}
        if cut:
            raise _with_items_cut(items, cut, handler)
        try:
            urls: tuple[str, ...] = handler(items)
        except ValidationError as exc:
            if not isinstance(items, tuple | list):
                raise  # no list to compare
            bad_items = {error["loc"][0] for error in exc.errors() if error["loc"]}
            good = {index: url for index, url in enumerate(items) if index not in bad_items}
            repeated = _repeated_receivers(good)
            if repeated is None:
                raise
            raise _with_problem(exc, items, repeated) from None
        repeated = _repeated_receivers(dict(enumerate(urls)))
        if repeated is not None:
            raise ValueError(repeated)
        return urls

    @field_validator("alertmanager_url")
    @classmethod
    def _check_alertmanager_url(cls, value: str | None) -> str | None:
        # Runs after BaseUrl's check: the poster adds /api/v2/alerts to this URL.
        return require_alertmanager_url(value) if value else None

    @field_validator("external_url")
    @classmethod
    def _check_external_url(cls, value: str | None) -> str | None:
        # Runs after BaseUrl's check.
        return require_external_url(value) if value else value

    @field_validator("bus")
    @classmethod
    def _check_bus(cls, value: str) -> str:
        return require_bus(value)

    # -- derived values --

    @property
    def uses_redis(self) -> bool:
        """True when the bus runs on Redis."""
        return self.bus != "memory"

    @property
    def alert_for_seconds(self) -> float:
        """``EXESDB_ALERT_FOR_MS`` in seconds; unset, two ``EXESDB_HEALTH_BROADCAST_INTERVAL``s."""
        if self.alert_for_ms is None:
            return 2 * self.health_broadcast_interval / 1000
        return self.alert_for_ms / 1000

    @property
    def resource_thresholds(self) -> dict[str, tuple[float, float]]:
        """Each resource's (degraded, unhealthy) percentages, by resource: cpu, memory, disk."""
        return {
            "cpu": (self.cpu_degraded, self.cpu_unhealthy),
            "memory": (self.memory_degraded, self.memory_unhealthy),
            "disk": (self.disk_degraded, self.disk_unhealthy),
        }

    @property
    def listen(self) -> tuple[str, int]:
        """``EXESDB_HTTP_ADDR`` as (host, port)."""
        return split_addr(self.http_addr)

    def web_config(self) -> Judged | None:
        """``EXESDB_WEB_CONFIG_FILE`` read and judged, its certificates loaded (None when unset),
        read at the first call only: the checks, the warnings, ``check-config`` and the server's
        first version see one version of the file, even one changed meanwhile (the server's
        reloader reads it again when it changes; docs/security.md#reloading)."""
        if not self.web_config_file:
            return None
        # Imported here: the web config's models and reader (with the YAML reader's) are for a
        # bridge given the file; this module is every command's that reads the settings.
        from bridge.webconfig.loading import judge

        read = self._web_config
        if read is None or read.path != Path(self.web_config_file):
            read = self._web_config = judge(Path(self.web_config_file))
        return read

    def serves_tls(self) -> bool:
        """True when ``EXESDB_WEB_CONFIG_FILE`` turns TLS on (as read at start, ``web_config``;
        a file the bridge would not start with counts as plain HTTP)."""
        read = self.web_config()
        return read is not None and read.serves_tls()

    def own_url(self, *, for_others: bool = False, port: int | None = None) -> str:
        """The bridge's base URL from ``EXESDB_HTTP_ADDR``, ``https`` when it serves TLS: for a
        client on this host, or ``for_others`` (a wildcard host named by ``EXESDB_NODE``);
        ``port``, when given, is the one bound (for a port of 0)."""
        host, listen_port = self.listen
        return own_url(
            host,
            listen_port if port is None else port,
            tls=self.serves_tls(),
            for_others=self.node if for_others else None,
        )

    def shown_links(self) -> str:
        """``own_url(for_others=True)`` as check-config and warnings show it: ``EXESDB_NODE`` in
        it as its own line shows it (it may be any text: ``db password=…``)."""
        host, port = self.listen
        return own_url(host, port, tls=self.serves_tls(), for_others=redact_urls(self.node))

    def receivers_file(self) -> ReceiversFileRead | None:
        """``EXESDB_WEBHOOK_CONFIG_FILE`` read and checked (None when unset), read at the first
        call only: the checks, the warnings, ``check-config`` and the alert sink see one version
        of the file, even one changed meanwhile (the files it names are read at each attempt)."""
        if not self.webhook_config_file:
            return None
        # Imported here: the receivers file's models (with the http_config ones) are for a
        # bridge given the file or a URL (``webhook_receivers``), as the web config's above.
        from bridge.receivers import read_receivers_file

        read = self._receivers_file
        if read is None or read.path != self.webhook_config_file:
            read = self._receivers_file = read_receivers_file(self.webhook_config_file)
        return read

    def webhook_receivers(
        self, keys: ReceiverKeys | None = None, *, urls: Mapping[int, str] | None = None
    ) -> tuple[tuple[Receiver, ...], AlertmanagerConfig | None]:
        """The webhook receivers (``EXESDB_WEBHOOK_URLS``, then ``EXESDB_WEBHOOK_CONFIG_FILE``'s)
        with the defaults these settings give, keyed by ``keys`` (the outbox's), and the file's
        ``alertmanager`` section; ConfigError when the file is bad. ``urls``, when given, stands
        for ``EXESDB_WEBHOOK_URLS``: the items taken of a list with others refused, by number."""
        given = self.webhook_urls if urls is None else urls
        if not given and not self.webhook_config_file:
            return (), None  # nothing to resolve: no receiver, no file's alertmanager section
        from bridge.receivers import resolve_receivers  # as in receivers_file

        return resolve_receivers(
            given,
            self.receivers_file(),
            secret=self.webhook_secret,
            timeout=self.webhook_timeout_ms / 1000,
            max_alerts=self.webhook_max_alerts,
            min_severity=self.webhook_min_severity,
            alertmanager_url=self.alertmanager_url,
            keys=keys,
        )

    def redacted(self) -> dict[str, str]:
        """Every setting by its variable name, as text, with secrets shown only as set/unset."""
        shown: dict[str, str] = {}
        for field_name, info in type(self).model_fields.items():
            variable = str(info.validation_alias)
            shown[variable] = shown_setting(variable, getattr(self, field_name))
        if self.alert_for_ms is None:
            derived = round(self.alert_for_seconds * 1000)
            shown["EXESDB_ALERT_FOR_MS"] = f"<unset: {derived}, two health intervals>"
        if self.external_url is None:
            # What alert links will say: a loopback address here is one a receiver cannot open.
            links = self.shown_links() if self.listen[1] else "the port picked at start"
            shown["EXESDB_EXTERNAL_URL"] = f"<unset: links in alerts go to {links}>"
        if not self.alert_link_origins:
            shown["EXESDB_ALERT_LINK_ORIGINS"] = "<empty: URLs in alert metadata show their origin>"
        if self.revision is None:
            # What exesdb_build_info will say: the commit installed from, or the clone's.
            from bridge.build import build_info  # check-config's alone: it reads files

            found = shown_setting("EXESDB_REVISION", build_info().revision)
            shown["EXESDB_REVISION"] = f"<unset: {found}, as exesdb_build_info shows it>"
        return shown

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield from self.redacted().items()


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _repeated_receivers(urls: Mapping[int, str]) -> str | None:
    """What is wrong when ``urls`` (by index in the list) hold a URL more than once, naming the
    items as a user counts them and each URL as it may be shown; None when each is once."""
    numbers: dict[str, list[int]] = {}
    for index, url in urls.items():
        numbers.setdefault(url, []).append(index + 1)
    repeated = [
        f"items {', '.join(map(str, given[:-1]))} and {given[-1]} are the same URL, {safe_url(url)}"
        for url, given in numbers.items()
        if len(given) > 1
    ]
    return f"{'; '.join(repeated)}; give each receiver once" if repeated else None


def _with_items_cut(
    items: tuple[str, ...], cut: Mapping[int, str], handler: ValidatorFunctionWrapHandler
) -> ValidationError:
    """The list's problems with the items a comma in a query may have cut (``cut``, by index)
    told as such, each other item checked as usual."""
    errors: list[InitErrorDetails] = [
        {
            "type": "value_error",
            "loc": (index,),
            "input": items[index],
            "ctx": {"error": ValueError(why)},
        }
        for index, why in cut.items()
    ]
    refused: set[int | str] = set(cut)
    try:
        handler(items)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            refused.update(error["loc"][:1])
            if not (error["loc"][:1] and error["loc"][0] in cut):  # else told above, as cut
                errors.append(raised_again(error))
    # By item number, as the problems of a list are told.
    errors.sort(key=lambda error: next(iter(error["loc"]), -1))
    good = {index: url for index, url in enumerate(items) if index not in refused}
    repeated = _repeated_receivers(good)
    if repeated is not None:
        errors.append(
            {
                "type": "value_error",
                "loc": (),
                "input": items,
                "ctx": {"error": ValueError(repeated)},
            }
        )
    return ValidationError.from_exception_data("Settings", errors)


def _with_problem(exc: ValidationError, value: Any, problem: str) -> ValidationError:
    """``exc``'s errors (each bad item's) and ``problem``, one of the whole ``value``."""
    errors = [raised_again(error) for error in exc.errors(include_url=False)]
    errors.append(
        {"type": "value_error", "loc": (), "input": value, "ctx": {"error": ValueError(problem)}}
    )
    return ValidationError.from_exception_data(exc.title, errors)


def known_variables() -> frozenset[str]:
    """Every environment variable the bridge reads as a setting."""
    return frozenset(str(info.validation_alias) for info in Settings.model_fields.values())


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``EXESDB_*`` variable of ``environ`` (in any case) that is no setting,
    naming the closest setting when one is close (``EXESDB_WEBHOOK_URL``: did you mean
    ``EXESDB_WEBHOOK_URLS``?), and for each ``OTEL_*`` one that neither the bridge nor the
    OpenTelemetry SDK reads and that is spelt nearly as one they do."""
    return unknown_variable_warnings(environ, known_variables())
