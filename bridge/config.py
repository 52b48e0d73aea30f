"""Configuration from environment variables (docs/configuration.md).

Every setting is one environment variable; ``load_settings()`` reads them all and reports every
bad value at once, one line each, naming the variable, its fault and what is allowed, without
ever echoing a secret.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import typing
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bridge.errors import ConfigError
from bridge.messages import NO_CONTROL_CHARACTERS, AlertSeverity
from bridge.probe_settings import (
    DEFAULT_HTTP_ADDR,
    client_certificate_problem,
    credential_warnings,
    split_addr,
    value_problem,
    variable_value,
)
from bridge.receiver_keys import ReceiverKeys
from bridge.receivers import (
    AlertmanagerConfig,
    Receiver,
    file_warnings,
    resolve_receivers,
)
from bridge.redaction import redact_urls, safe_url
from bridge.urls import (
    names_a_host,
    otlp_endpoint_problem,
    own_url,
    require_alertmanager_url,
    require_http_url,
    require_link_origin,
)
from bridge.webconfig import load_web_config

__all__ = [
    "MIN_SECRET_LENGTH",
    "Settings",
    "known_variables",
    "load_settings",
    "split_addr",
    "unknown_variables",
]

MIN_SECRET_LENGTH: Final = 32
# Below this an admin token can be guessed by trying: the admin endpoints do not slow refusals.
MIN_ADMIN_TOKEN_LENGTH: Final = 16
LogLevel = Literal["debug", "info", "warning", "error"]
PositiveMs = Annotated[int, Field(gt=0)]
Percent = Annotated[float, Field(gt=0)]


# Each item checked on its own, so that every bad one is reported (``EXESDB_WEBHOOK_URLS``).
HttpUrlList = Annotated[tuple[Annotated[str, AfterValidator(require_http_url)], ...], NoDecode]
OriginList = Annotated[tuple[Annotated[str, AfterValidator(require_link_origin)], ...], NoDecode]
OtlpProtocol = Literal["grpc", "http/protobuf"]
OtlpSignal = Literal["traces", "logs", "metrics"]


def _env(name: str, **kwargs: Any) -> Any:
    return Field(validation_alias=name, **kwargs)


class _Environment(EnvSettingsSource):
    """The environment as the settings read it: a variable set to blanks only is unset, as one
    set to the empty string is (``env_ignore_empty``), for every setting."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if isinstance(value, str) and not value.strip():
            return None, key, is_complex
        return value, key, is_complex


class Settings(BaseSettings):
    """The resolved configuration; ``check-config`` shows it, docs/configuration.md documents
    each variable."""

    # A variable set to the empty string is unset (docker compose's ${X:-}, an empty Kubernetes
    # value), as the OpenTelemetry environment-variable specification asks: its default, never
    # a refusal or an empty path; so is one set to blanks only (_Environment).
    model_config = SettingsConfigDict(
        case_sensitive=True,
        extra="ignore",
        frozen=True,
        populate_by_name=False,
        env_ignore_empty=True,
    )

    # Signing and replay protection.
    secret_key_base: SecretStr | None = _env("SECRET_KEY_BASE", default=None)
    secret_key_base_previous: Annotated[tuple[SecretStr, ...], NoDecode] = _env(
        "EXESDB_SECRET_KEY_BASE_PREVIOUS", default=()
    )
    replay_window_ms: PositiveMs = _env("EXESDB_REPLAY_WINDOW_MS", default=300_000)
    replay_memory: Annotated[int, Field(ge=1000)] = _env("EXESDB_REPLAY_MEMORY", default=200_000)

    # The integration and its collectors.
    pubsub_integration: bool = _env("EXESDB_PUBSUB_INTEGRATION", default=True)
    health_broadcast_interval: Annotated[int, Field(ge=100)] = _env(
        "EXESDB_HEALTH_BROADCAST_INTERVAL", default=30_000
    )
    metrics_broadcast_interval: Annotated[int, Field(ge=100)] = _env(
        "EXESDB_METRICS_BROADCAST_INTERVAL", default=60_000
    )
    node: Annotated[str, Field(min_length=1, max_length=255, pattern=NO_CONTROL_CHARACTERS)] = _env(
        "EXESDB_NODE", default_factory=socket.gethostname
    )
    node_forget_ms: PositiveMs = _env("EXESDB_NODE_FORGET_MS", default=86_400_000)
    cpu_degraded: Percent = _env("EXESDB_CPU_DEGRADED", default=85.0)
    cpu_unhealthy: Percent = _env("EXESDB_CPU_UNHEALTHY", default=95.0)
    memory_degraded: Percent = _env("EXESDB_MEMORY_DEGRADED", default=85.0)
    memory_unhealthy: Percent = _env("EXESDB_MEMORY_UNHEALTHY", default=95.0)
    disk_degraded: Percent = _env("EXESDB_DISK_DEGRADED", default=85.0)
    disk_unhealthy: Percent = _env("EXESDB_DISK_UNHEALTHY", default=95.0)

    # The bus.
    bus: str = _env("EXESDB_BUS", default="memory")
    bus_queue_size: Annotated[int, Field(ge=1, le=10_000_000)] = _env(
        "EXESDB_BUS_QUEUE_SIZE", default=10_000
    )
    alert_queue_size: Annotated[int, Field(ge=1, le=10_000_000)] = _env(
        "EXESDB_ALERT_QUEUE_SIZE", default=100_000
    )
    redis_stream_maxlen: Annotated[int, Field(ge=100)] = _env(
        "EXESDB_REDIS_STREAM_MAXLEN", default=100_000
    )
    redis_buffer_size: Annotated[int, Field(ge=1)] = _env(
        "EXESDB_REDIS_BUFFER_SIZE", default=10_000
    )
    redis_claim_idle_ms: PositiveMs = _env("EXESDB_REDIS_CLAIM_IDLE_MS", default=30_000)
    redis_spool_bytes: Annotated[int, Field(ge=1_048_576)] = _env(
        "EXESDB_REDIS_SPOOL_BYTES", default=268_435_456
    )

    # HTTP.
    http_addr: str = _env("EXESDB_HTTP_ADDR", default=DEFAULT_HTTP_ADDR)
    ingest: bool = _env("EXESDB_INGEST", default=False)
    max_body_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = _env(
        "EXESDB_MAX_BODY_BYTES", default=1_048_576
    )
    admin_token: SecretStr | None = _env("EXESDB_ADMIN_TOKEN", default=None)
    # Where the client commands (publish, tail, alerts) find a bridge; unset: EXESDB_HTTP_ADDR.
    url: str | None = _env("EXESDB_URL", default=None)
    web_config_file: str | None = _env("EXESDB_WEB_CONFIG_FILE", default=None)
    # What `exesdb-bridge healthcheck` presents when the web config asks for it.
    healthcheck_username: str | None = _env("EXESDB_HEALTHCHECK_USERNAME", default=None)
    healthcheck_password_file: str | None = _env("EXESDB_HEALTHCHECK_PASSWORD_FILE", default=None)
    healthcheck_cert_file: str | None = _env("EXESDB_HEALTHCHECK_CERT_FILE", default=None)
    healthcheck_key_file: str | None = _env("EXESDB_HEALTHCHECK_KEY_FILE", default=None)
    shutdown_timeout_ms: PositiveMs = _env("EXESDB_SHUTDOWN_TIMEOUT_MS", default=8_000)
    http_header_timeout_ms: PositiveMs = _env("EXESDB_HTTP_HEADER_TIMEOUT_MS", default=10_000)
    http_body_timeout_ms: PositiveMs = _env("EXESDB_HTTP_BODY_TIMEOUT_MS", default=60_000)
    http_idle_timeout_ms: PositiveMs = _env("EXESDB_HTTP_IDLE_TIMEOUT_MS", default=75_000)
    http_max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = _env(
        "EXESDB_HTTP_MAX_CONNECTIONS", default=1_024
    )

    # The Prometheus sink.
    series_ttl_ms: PositiveMs = _env("EXESDB_SERIES_TTL_MS", default=600_000)
    max_series: Annotated[int, Field(ge=1)] = _env("EXESDB_MAX_SERIES", default=10_000)

    # Alerts.
    webhook_urls: HttpUrlList = _env("EXESDB_WEBHOOK_URLS", default=())
    webhook_config_file: str | None = _env("EXESDB_WEBHOOK_CONFIG_FILE", default=None)
    webhook_secret: SecretStr | None = _env("EXESDB_WEBHOOK_SECRET", default=None)
    webhook_backoff_ms: PositiveMs = _env("EXESDB_WEBHOOK_BACKOFF_MS", default=1_000)
    webhook_max_backoff_ms: PositiveMs = _env("EXESDB_WEBHOOK_MAX_BACKOFF_MS", default=300_000)
    webhook_deadline_ms: PositiveMs = _env("EXESDB_WEBHOOK_DEADLINE_MS", default=86_400_000)
    webhook_dead_letter_ttl_ms: PositiveMs = _env(
        "EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS", default=7 * 86_400_000
    )
    webhook_timeout_ms: PositiveMs = _env("EXESDB_WEBHOOK_TIMEOUT_MS", default=10_000)
    webhook_min_severity: AlertSeverity = _env("EXESDB_WEBHOOK_MIN_SEVERITY", default="warning")
    webhook_group_wait_ms: Annotated[int, Field(ge=0)] = _env(
        "EXESDB_WEBHOOK_GROUP_WAIT_MS", default=500
    )
    webhook_max_alerts: Annotated[int, Field(ge=1)] = _env("EXESDB_WEBHOOK_MAX_ALERTS", default=50)
    alertmanager_url: str | None = _env("EXESDB_ALERTMANAGER_URL", default=None)
    escalation_after_ms: PositiveMs = _env("EXESDB_ESCALATION_AFTER_MS", default=900_000)
    alert_resolve_timeout_ms: PositiveMs = _env("EXESDB_ALERT_RESOLVE_TIMEOUT_MS", default=300_000)
    # How long a health condition must hold before it alerts; unset: two health intervals.
    alert_for_ms: Annotated[int, Field(ge=0)] | None = _env("EXESDB_ALERT_FOR_MS", default=None)
    external_url: str | None = _env("EXESDB_EXTERNAL_URL", default=None)
    # Origins whose links in alert metadata are shown whole (sinks/alerts/sources.py);
    # empty: every URL there shows its origin only.
    alert_link_origins: OriginList = _env("EXESDB_ALERT_LINK_ORIGINS", default=())
    state_dir: str = _env("EXESDB_STATE_DIR", default="./.exesdb-bridge")

    # Logging.
    log_level: LogLevel = _env("EXESDB_LOG_LEVEL", default="info")
    log_format: Literal["text", "json"] = _env("EXESDB_LOG_FORMAT", default="text")
    # The source revision in exesdb_build_info (bridge/build.py); the image build sets it.
    revision: str | None = _env("EXESDB_REVISION", default=None)

    # OpenTelemetry: the standard variables; the SDK reads the rest itself.
    otlp_endpoint: str | None = _env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        default=None,
    )
    otlp_traces_endpoint: str | None = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default=None)
    otlp_logs_endpoint: str | None = _env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", default=None)
    otlp_metrics_endpoint: str | None = _env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", default=None)
    otlp_protocol: OtlpProtocol = _env("OTEL_EXPORTER_OTLP_PROTOCOL", default="grpc")
    otlp_traces_protocol: OtlpProtocol | None = _env(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", default=None
    )
    otlp_logs_protocol: OtlpProtocol | None = _env("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", default=None)
    otlp_metrics_protocol: OtlpProtocol | None = _env(
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", default=None
    )
    otel_service_name: str = _env("OTEL_SERVICE_NAME", default="exesdb-bridge")
    otlp_queue_size: Annotated[int, Field(ge=1)] = _env("EXESDB_OTLP_QUEUE_SIZE", default=8_192)
    otlp_metrics: bool = _env("EXESDB_OTLP_METRICS", default=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' sources, the environment read as ``_Environment`` reads it."""
        return init_settings, _Environment(settings_cls), dotenv_settings, file_secret_settings

    @field_validator("secret_key_base_previous", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("admin_token", mode="before")
    @classmethod
    def _trimmed_token(cls, value: Any) -> Any:
        # A token kept in a file (a Kubernetes secret) ends in a line break: trimmed, for the
        # bridge, its pages and the client commands alike; nothing left is no token.
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: Any) -> Any:
        # Set but empty (as the shipped Kubernetes Secret has it) is no key: unsigned, warned.
        return value or None

    @field_validator("log_level", "log_format", "webhook_min_severity", mode="before")
    @classmethod
    def _any_letter_case(cls, value: Any) -> Any:
        # INFO as Python's logging spells a level, JSON, Critical: one word, as booleans are.
        return value.lower() if isinstance(value, str) else value

    @field_validator("webhook_urls", "alert_link_origins", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("alertmanager_url", "external_url", "url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value:
            return require_http_url(value).rstrip("/")
        return None

    @field_validator("alertmanager_url")
    @classmethod
    def _check_alertmanager_url(cls, value: str | None) -> str | None:
        # Runs after _check_url: the poster adds /api/v2/alerts to this URL.
        return require_alertmanager_url(value) if value else None

    @field_validator("external_url")
    @classmethod
    def _check_external_url(cls, value: str | None) -> str | None:
        # Runs after _check_url. Every webhook and Alertmanager post carries this URL.
        if value and "@" in urlsplit(value).netloc:
            raise ValueError(
                "must not hold a user name or password (before an @): it is the link sent in "
                "every alert, to every receiver; give the URL people open (their browser asks "
                "for any login)"
            )
        return value

    @field_validator("bus")
    @classmethod
    def _check_bus(cls, value: str) -> str:
        if value == "memory":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(
                "must be 'memory' or a redis:// or rediss:// URL with a host, e.g."
                " redis://127.0.0.1:6379"
            )
        try:
            port = parts.port  # None when not given; ValueError when no number or out of range
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("a redis:// or rediss:// URL's port must be a port from 1 to 65535")
        from redis.asyncio.connection import parse_url  # what the transport's from_url reads

        from bridge.bus.redis.link import OWN_OPTIONS

        # redis-py lets the query override what the transport sets, without a word; before
        # parse_url, which would refuse a value it cannot read without saying that.
        owned = [name for name in parse_qs(parts.query) if name in OWN_OPTIONS]
        if owned:
            raise ValueError(
                "; ".join(
                    f"query option {name!r} would override {OWN_OPTIONS[name]}; remove it"
                    " from the URL"
                    for name in owned
                )
            )
        # Its errors name a query option whose value it cannot read, never the value.
        options = parse_url(value)
        # An option redis-py does not know it hands on as is, and the first connection then fails
        # with a TypeError, at every retry, for as long as the bridge runs.
        unknown = sorted(set(options) - _redis_connection_options(options))
        if unknown:
            names = ", ".join(
                repr(name) if re.fullmatch(r"[a-z_]{1,40}", name) else "(a name not shown)"
                for name in unknown
            )
            raise ValueError(
                f"query option{'s' if len(unknown) > 1 else ''} {names}: not "
                f"{'options' if len(unknown) > 1 else 'an option'} a {parts.scheme}:// connection "
                "takes (redis-py's connection options; a private CA or a client certificate, "
                "with rediss:// only: ?ssl_ca_certs=FILE&ssl_certfile=FILE&ssl_keyfile=FILE)"
            )
        return value

    @field_validator("http_addr")
    @classmethod
    def _check_addr(cls, value: str) -> str:
        split_addr(value)
        return value

    # -- derived values --

    @property
    def uses_redis(self) -> bool:
        """True when the bus runs on Redis."""
        return self.bus != "memory"

    @property
    def otlp_enabled(self) -> bool:
        """OTLP export is on when any OTLP endpoint is set (the metrics one with
        ``EXESDB_OTLP_METRICS``)."""
        return bool(
            self.otlp_endpoint
            or self.otlp_traces_endpoint
            or self.otlp_logs_endpoint
            or (self.otlp_metrics and self.otlp_metrics_endpoint)
        )

    def otlp_protocol_of(self, signal: OtlpSignal) -> OtlpProtocol:
        """The protocol ``signal``'s exporter speaks: its own
        ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`` when set, else the general one."""
        own = {
            "traces": self.otlp_traces_protocol,
            "logs": self.otlp_logs_protocol,
            "metrics": self.otlp_metrics_protocol,
        }[signal]
        return own or self.otlp_protocol

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

    def serves_tls(self) -> bool:
        """True when ``EXESDB_WEB_CONFIG_FILE`` turns TLS on (read now; a file the bridge would
        not start with counts as plain HTTP)."""
        if not self.web_config_file:
            return False
        try:
            return load_web_config(self.web_config_file).tls is not None
        except ConfigError:
            return False

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

    def webhook_receivers(
        self, keys: ReceiverKeys | None = None
    ) -> tuple[tuple[Receiver, ...], AlertmanagerConfig | None]:
        """The webhook receivers (``EXESDB_WEBHOOK_URLS``, then ``EXESDB_WEBHOOK_CONFIG_FILE``'s)
        with the defaults these settings give, keyed by ``keys`` (the outbox's), and the file's
        ``alertmanager`` section; ConfigError when the file is bad."""
        return resolve_receivers(
            self.webhook_urls,
            self.webhook_config_file,
            secret=self.webhook_secret,
            timeout=self.webhook_timeout_ms / 1000,
            max_alerts=self.webhook_max_alerts,
            min_severity=self.webhook_min_severity,
            alertmanager_url=self.alertmanager_url,
            keys=keys,
        )

    def cross_checks(self) -> list[str]:
        """Problems that involve several variables or a file one names, one line each."""
        problems: list[str] = []
        if self.web_config_file:
            try:
                load_web_config(self.web_config_file)
            except ConfigError as exc:
                problems += [f"EXESDB_WEB_CONFIG_FILE: {problem}" for problem in exc.problems]
        if self.webhook_config_file:
            try:
                self.webhook_receivers()
            except ConfigError as exc:
                problems += [f"EXESDB_WEBHOOK_CONFIG_FILE: {problem}" for problem in exc.problems]
        certificate = client_certificate_problem(
            self.healthcheck_cert_file, self.healthcheck_key_file
        )
        if certificate is not None:
            problems.append(certificate)
        secret = self.secret_key_base.get_secret_value() if self.secret_key_base else ""
        if (self.ingest or self.uses_redis) and len(secret) < MIN_SECRET_LENGTH:
            fault = "is not set" if not secret else f"has {len(secret)} characters"
            needs = "EXESDB_INGEST=true" if self.ingest else "a Redis bus (EXESDB_BUS)"
            problems.append(
                f"SECRET_KEY_BASE: {fault}; with {needs} it must be set to at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        if self.ingest or self.uses_redis:
            # A retired key verifies as the current one does: a short one could be guessed.
            for index, key in enumerate(self.secret_key_base_previous, 1):
                if len(key.get_secret_value()) < MIN_SECRET_LENGTH:
                    needs = "EXESDB_INGEST=true" if self.ingest else "a Redis bus (EXESDB_BUS)"
                    problems.append(
                        f"EXESDB_SECRET_KEY_BASE_PREVIOUS item {index}: has "
                        f"{len(key.get_secret_value())} characters; with {needs} a retired key "
                        f"still verifies messages, so it too must have at least "
                        f"{MIN_SECRET_LENGTH}"
                    )
        for name, (degraded, unhealthy) in self.resource_thresholds.items():
            # 100 or more disables a status (docs/configuration.md): only enabled pairs must order.
            if degraded > unhealthy and degraded < 100 and unhealthy < 100:
                problems.append(
                    f"EXESDB_{name.upper()}_DEGRADED: {degraded:g} is above "
                    f"EXESDB_{name.upper()}_UNHEALTHY ({unhealthy:g}); allowed: at most that"
                )
        if self.uses_redis and self.redis_spool_bytes < 2 * self.max_body_bytes:
            problems.append(
                f"EXESDB_REDIS_SPOOL_BYTES: {self.redis_spool_bytes} is below twice "
                f"EXESDB_MAX_BODY_BYTES ({self.max_body_bytes}), so the largest batch ingest "
                "takes might never fit; allowed: at least that"
            )
        problems += self._otlp_endpoint_problems()
        if self.webhook_backoff_ms > self.webhook_max_backoff_ms:
            problems.append(
                f"EXESDB_WEBHOOK_BACKOFF_MS: {self.webhook_backoff_ms} is above "
                f"EXESDB_WEBHOOK_MAX_BACKOFF_MS ({self.webhook_max_backoff_ms})"
            )
        return problems

    def _otlp_endpoint_problems(self) -> list[str]:
        """Each OTLP endpoint the exporter of a signal using it could never send to, checked
        against that signal's protocol (the general endpoint against each falling back on it)."""
        signals: list[tuple[OtlpSignal, str | None]] = [
            ("traces", self.otlp_traces_endpoint),
            ("logs", self.otlp_logs_endpoint),
        ]
        if self.otlp_metrics:
            signals.append(("metrics", self.otlp_metrics_endpoint))
        problems: dict[str, str] = {}
        for signal, own in signals:
            protocol = self.otlp_protocol_of(signal)
            variable, value = (
                (f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", own)
                if own
                else ("OTEL_EXPORTER_OTLP_ENDPOINT", self.otlp_endpoint)
            )
            if value and variable not in problems:
                problem = otlp_endpoint_problem(value, protocol, general=not own)
                if problem is not None:
                    problems[variable] = f"{variable}: {problem}"
        return list(problems.values())

    def warnings(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """Things that work but that an operator should know about at start-up, among them the
        variables of ``environ`` (the process environment) that look meant for the bridge but
        are not among its settings."""
        notes = unknown_variables(os.environ if environ is None else environ)
        secret = self.secret_key_base.get_secret_value() if self.secret_key_base else ""
        if not secret:
            notes.append(
                "SECRET_KEY_BASE is not set: using an ephemeral key for the in-process bus"
            )
        elif len(secret) < MIN_SECRET_LENGTH:
            notes.append(
                f"SECRET_KEY_BASE is shorter than {MIN_SECRET_LENGTH} characters; use a longer one"
            )
        token = self.admin_token.get_secret_value() if self.admin_token else ""
        if token and len(token) < MIN_ADMIN_TOKEN_LENGTH:
            notes.append(
                f"EXESDB_ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters: "
                "anyone reaching the port may guess it by trying; use a long random one"
            )
        links = self.own_url(for_others=True)
        sends = self.webhook_urls or self.webhook_config_file or self.alertmanager_url
        if sends and self.external_url is None and not names_a_host(links):
            notes.append(
                f"alert links (generatorURL) would start with {links!r}, which names no host "
                "(EXESDB_NODE stands for a wildcard EXESDB_HTTP_ADDR): set EXESDB_EXTERNAL_URL "
                "to the bridge's URL as people reach it"
            )
        if self.webhook_urls and self.webhook_secret is None:
            notes.append("EXESDB_WEBHOOK_SECRET is not set: webhook deliveries go unsigned")
        try:
            web = load_web_config(self.web_config_file) if self.web_config_file else None
        except ConfigError:  # a problem cross_checks names
            web = None
        if web is not None:
            notes += credential_warnings(self, web)
        return notes + self.receivers_file_warnings()

    def receivers_file_warnings(self) -> list[str]:
        """The warnings about ``EXESDB_WEBHOOK_CONFIG_FILE``'s receivers (``file_warnings``),
        said with its problems too when it has some."""
        if not self.webhook_config_file:
            return []
        return [
            f"EXESDB_WEBHOOK_CONFIG_FILE {note}"
            for note in file_warnings(
                self.webhook_config_file, alertmanager_url=self.alertmanager_url
            )
        ]

    def redacted(self) -> dict[str, str]:
        """Every setting by its variable name, as text, with secrets shown only as set/unset."""
        shown: dict[str, str] = {}
        for field_name, info in type(self).model_fields.items():
            value = getattr(self, field_name)
            variable = str(info.validation_alias)
            if variable in _URL_VARIABLES and value:
                # Shown as safe_url shows each, never searched for in text: a password may hold
                # characters that end a URL in free text.
                items = value if isinstance(value, tuple) else (value,)
                value = ",".join(_shown_url(str(item)) for item in items)
            shown[variable] = _show(value)
        if self.alert_for_ms is None:
            derived = round(self.alert_for_seconds * 1000)
            shown["EXESDB_ALERT_FOR_MS"] = f"<unset: {derived}, two health intervals>"
        if self.external_url is None:
            # What alert links will say: a loopback address here is one a receiver cannot open.
            links = self.own_url(for_others=True) if self.listen[1] else "the port picked at start"
            shown["EXESDB_EXTERNAL_URL"] = f"<unset: links in alerts go to {links}>"
        if not self.alert_link_origins:
            shown["EXESDB_ALERT_LINK_ORIGINS"] = "<empty: URLs in alert metadata show their origin>"
        return shown

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield from self.redacted().items()


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


_NAMED_PARAMETER: Final = ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")


def _redis_connection_options(options: Mapping[str, Any]) -> set[str]:
    """The keyword arguments the pool ``parse_url``'s ``options`` ask for takes with its
    connection class (``SSLConnection`` for rediss://), as ``Redis.from_url`` hands them on."""
    import inspect

    from redis.asyncio.connection import Connection, ConnectionPool

    taken = {"connection_class"}
    for cls in (ConnectionPool, *options.get("connection_class", Connection).__mro__):
        if "__init__" in vars(cls):
            taken.update(
                name
                for name, parameter in inspect.signature(cls.__init__).parameters.items()
                if name != "self" and parameter.kind.name in _NAMED_PARAMETER
            )
    return taken


def _shown_url(value: str) -> str:
    # A word such as EXESDB_BUS=memory is no URL and holds no credentials.
    return safe_url(value) if "://" in value or "@" in value else value


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "<set, redacted>" if value.get_secret_value() else "<empty>"
    if value is None:
        return "<unset>"
    if isinstance(value, tuple):
        if not value:
            return "<empty>"
        if isinstance(value[0], SecretStr):
            return f"<{len(value)} set, redacted>"
        return redact_urls(",".join(str(item) for item in value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return redact_urls(str(value))


# Settings holding URLs: a bad value is never echoed (a mistyped one may still hold a password
# that redact_urls cannot find); the message shows it only as safe_url does.
_URL_VARIABLES: Final = frozenset(
    {
        "EXESDB_BUS",
        "EXESDB_WEBHOOK_URLS",
        "EXESDB_ALERTMANAGER_URL",
        "EXESDB_URL",
        "EXESDB_EXTERNAL_URL",
        "EXESDB_ALERT_LINK_ORIGINS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    }
)

_SECRET_VARIABLES: Final = frozenset(
    {
        "SECRET_KEY_BASE",
        "EXESDB_SECRET_KEY_BASE_PREVIOUS",
        "EXESDB_ADMIN_TOKEN",
        "EXESDB_WEBHOOK_SECRET",
    }
)


# What a boolean setting takes, as docs/configuration.md says it.
_BOOLEAN_ALLOWED: Final = (
    "must be true or false (also 1/0, yes/no, on/off, t/f, y/n, in any letter case)"
)


def load_settings() -> Settings:
    """Read the environment; raise ConfigError listing every problem, one line each."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        failing = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        fallback = _without(failing)
        if fallback is None:
            raise ConfigError(problems) from None
        # The cross-checks and file warnings of the other variables: every problem at once.
        problems += _not_naming(failing, fallback.cross_checks())
        notes = _not_naming(failing, fallback.receivers_file_warnings())
        raise ConfigError(problems, warnings=notes) from None
    problems = settings.cross_checks()
    if problems:
        # A receivers file with problems may also name a file it cannot read: both are said.
        raise ConfigError(problems, warnings=settings.receivers_file_warnings())
    return settings


def _without(failing: set[str]) -> Settings | None:
    """The settings with the ``failing`` variables at their defaults (None when that fails)."""
    defaults = {
        str(info.validation_alias): info.get_default(call_default_factory=True)
        for info in Settings.model_fields.values()
        if str(info.validation_alias) in failing
    }
    try:
        return Settings(**defaults)
    except ValidationError:
        return None


def _not_naming(variables: set[str], lines: list[str]) -> list[str]:
    return [line for line in lines if not any(variable in line for variable in variables)]


def known_variables() -> frozenset[str]:
    """Every environment variable the bridge reads as a setting."""
    return frozenset(str(info.validation_alias) for info in Settings.model_fields.values())


# Prefixes of the variables meant for the bridge: a set one it does not know is likely a typo.
_OURS: Final = ("EXESDB_",)
# Names other tools give what the bridge calls otherwise, which spelling alone would not lead to
# (EXESDB_REDIS_URL is nearest to EXESDB_REDIS_BUFFER_SIZE; the Redis URL goes in EXESDB_BUS).
_ALSO_CALLED: Final = {
    "EXESDB_REDIS_URL": "EXESDB_BUS",
    "EXESDB_REDIS": "EXESDB_BUS",
    "EXESDB_BUS_URL": "EXESDB_BUS",
    "EXESDB_PORT": "EXESDB_HTTP_ADDR",
    "EXESDB_HOST": "EXESDB_HTTP_ADDR",
}


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``EXESDB_*`` variable of ``environ`` (in any case) that is no setting,
    naming the closest setting when one is close (``EXESDB_WEBHOOK_URL``: did you mean
    ``EXESDB_WEBHOOK_URLS``?)."""
    known = known_variables()
    # Compared without the common prefix, which would make every name look close.
    by_stem = {_stem(name): name for name in known}
    notes = []
    for name in sorted(environ):
        # Names are case-sensitive: a lower-case one is ignored, so it is named too. One set to
        # the empty string or blanks is unset, as a setting's is, so has nothing to be ignored.
        if (
            not name.upper().startswith(_OURS)
            or name in known
            or variable_value(environ, name) is None
        ):
            continue
        upper = name.upper()
        close = [_stem(_ALSO_CALLED[upper])] if upper in _ALSO_CALLED else []
        close = close or difflib.get_close_matches(_stem(upper), by_stem, n=1)
        hint = (
            f"did you mean {by_stem[close[0]]}?" if close else "the settings: docs/configuration.md"
        )
        notes.append(f"{name} is set but is not a setting of the bridge (ignored); {hint}")
    return notes


def _stem(name: str) -> str:
    for prefix in _OURS:
        name = name.removeprefix(prefix)
    return name


def _describe(error: Any) -> str:
    variable = str(error["loc"][0]) if error["loc"] else "configuration"
    message = redact_urls(str(error["msg"]).removeprefix("Value error, "))
    if error["type"] == "bool_parsing":
        message = _BOOLEAN_ALLOWED  # pydantic's message does not say what it takes
    if error["type"] == "literal_error":
        message = f"must be {error['ctx']['expected']}"  # in the words of the other settings
    if error["type"] in _NUMBER_ERRORS and len(error["loc"]) == 1:
        # pydantic's "Input should be a valid integer" names neither the unit nor the range.
        message = _number_allowed(variable, error.get("input")) or message
    if len(error["loc"]) > 1 and isinstance(error["loc"][1], int):
        # One item of a comma-separated list; the message shows it as it may be shown.
        return f"{variable} item {error['loc'][1] + 1}: {message}"
    if variable in _SECRET_VARIABLES:
        return f"{variable}: {message}"
    given = error.get("input")
    if variable in _URL_VARIABLES:
        return f"{variable}: {message}"  # the message shows the URL as it may be shown
    return value_problem(variable, message, given)


# pydantic's errors for a number setting that is no number, or out of its range.
_NUMBER_ERRORS: Final = frozenset(
    {
        "int_parsing",
        "int_from_float",
        "int_type",
        "float_parsing",
        "float_type",
        "finite_number",
        "greater_than",
        "greater_than_equal",
        "less_than_equal",
    }
)
# A duration as the receivers file (and Go) writes one: 5s, 1.5m, 250ms.
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_MS_PER: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000}


def _number_allowed(variable: str, given: object) -> str | None:
    """What a number setting takes, its unit and range (``must be a whole number of
    milliseconds, at least 100, e.g. 30000``), and a duration given with a unit
    (``5s``) in milliseconds; None for a variable that is no number setting."""
    info = next((i for i in Settings.model_fields.values() if i.validation_alias == variable), None)
    kind, bounds = _number_kind(info.annotation, list(info.metadata)) if info else (None, [])
    if info is None or kind is None:
        return None
    in_ms = variable.endswith(("_MS", "_INTERVAL"))
    if kind is float:
        what = (
            "a number (percent)" if variable.endswith(("_DEGRADED", "_UNHEALTHY")) else "a number"
        )
    elif in_ms:
        what = "a whole number of milliseconds"
    else:
        what = "a whole number of bytes" if variable.endswith("_BYTES") else "a whole number"
    low = next((b.ge for b in bounds if hasattr(b, "ge")), None)
    above = next((b.gt for b in bounds if hasattr(b, "gt")), None)
    high = next((b.le for b in bounds if hasattr(b, "le")), None)
    if kind is int and above is not None:
        low, above = above + 1, None
    if low is not None and high is not None:
        what += f" from {low} to {high}"
    elif low is not None:
        what += f", at least {low}"
    elif above is not None:
        what += f" above {above:g}"
    if isinstance(info.default, int | float) and not isinstance(info.default, bool):
        what += f", e.g. {info.default:g}" if kind is float else f", e.g. {info.default}"
    duration = _DURATION.fullmatch(given.strip()) if in_ms and isinstance(given, str) else None
    if duration is not None and (ms := float(duration[1]) * _MS_PER[duration[2]]).is_integer():
        what += f"; {duration[0]} is {int(ms)}"
    return f"must be {what}"


def _number_kind(annotation: Any, metadata: list[Any]) -> tuple[type | None, list[Any]]:
    """``int`` or ``float`` and the bounds of a setting's annotation (``Annotated[int,
    Field(ge=0)] | None`` included), or None when it is no number."""
    if annotation in (int, float):
        return annotation, metadata
    args = typing.get_args(annotation)
    # Annotated[int, Field(ge=0)]: the bounds follow the type.
    metadata = metadata + [m for arg in args if isinstance(arg, FieldInfo) for m in arg.metadata]
    for arg in args:
        if not isinstance(arg, FieldInfo) and arg is not type(None):
            kind, found = _number_kind(arg, [])
            if kind is not None:
                return kind, metadata + found
    return None, metadata
