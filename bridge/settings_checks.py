"""The checks across settings at start: the problems that refuse it, the warnings that do not.

``load_settings`` refuses a start with every problem of ``cross_checks`` (settings that
contradict each other, a file one of them names that is bad); a bridge logs ``start_warnings``
as it starts (``Bridge.start``, run by the command or embedded) and ``check-config`` prints
them: what works but an operator should know. The checks of one value live with the settings
(``bridge.settings``) and what they check (``bridge.urls``, ``bridge.bus_url``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal, cast
from urllib.parse import urlsplit

from bridge.client_environment import env_file_slips
from bridge.client_settings import MIN_SECRET_LENGTH
from bridge.errors import ConfigError
from bridge.otlp_settings import (
    otlp_enabled,
    otlp_endpoint_of,
    otlp_exports,
    otlp_number_warnings,
    otlp_protocol_of,
)
from bridge.probe_settings import (
    client_certificate_problem,
    credential_warnings,
    holds_no_text,
    variable_value,
)
from bridge.redaction import redact_urls, safe_url
from bridge.settings import (
    OtlpProtocol,
    OtlpSignal,
    Settings,
    known_variables,
    unknown_variables,
)
from bridge.state_dir import unusable_state_dir
from bridge.tlsutil import pem_file_problem
from bridge.unknown_variables import sdk_variables
from bridge.urls import grpc_tls_unsaid, names_a_host, otlp_endpoint_problem

__all__ = [
    "MIN_SECRET_LENGTH",
    "cross_checks",
    "receivers_file_warnings",
    "start_warnings",
]

# Below this an admin token can be guessed by trying: the admin endpoints do not slow refusals.
MIN_ADMIN_TOKEN_LENGTH: Final = 16
# The TLS files of OTLP export: the general ones and each signal's own.
_OTLP_FILE: Final = re.compile(
    r"OTEL_EXPORTER_OTLP_(?:(TRACES|LOGS|METRICS)_)?(CERTIFICATE|CLIENT_KEY|CLIENT_CERTIFICATE)"
)
# What each file must hold: the gRPC exporter (grpcio) and the HTTP one (Python's ssl) read the
# CA, the client certificate and its key alike.
_OTLP_KINDS: Final[Mapping[str, Literal["ca_file", "cert_file", "key"]]] = {
    "CERTIFICATE": "ca_file",
    "CLIENT_CERTIFICATE": "cert_file",
    "CLIENT_KEY": "key",
}
# Alertmanager's alerts API, where a webhook is no body it takes.
_ALERTMANAGER_API: Final = re.compile(r"/api/v[12]/alerts$")
# Chat services' incoming webhooks, which take a message of their own (Slack's ``text``,
# Discord's ``content``) and answer the bridge's Alertmanager-format notification 400, each one
# dead-lettered: by host, and the path their incoming webhooks have (Slack's workflow webhooks,
# /workflows/ and /triggers/, take variables of one's own and are left alone).
_DISCORD_WEBHOOK: Final = ("Discord", re.compile(r"^/api/(v\d+/)?webhooks/"))
_SLACK_WEBHOOK: Final = ("Slack", re.compile(r"^/services/"))
_CHAT_WEBHOOKS: Final = {
    "hooks.slack.com": _SLACK_WEBHOOK,
    # Slack's GovSlack workspaces have incoming webhooks of their own host.
    "hooks.slack-gov.com": _SLACK_WEBHOOK,
    "discord.com": _DISCORD_WEBHOOK,
    "discordapp.com": _DISCORD_WEBHOOK,
    # Discord's test clients copy a webhook's URL with their own host.
    "ptb.discord.com": _DISCORD_WEBHOOK,
    "canary.discord.com": _DISCORD_WEBHOOK,
}
# A collector's standard OTLP ports: each protocol's is the other's wrong one.
_OTHER_PORT: Final[Mapping[OtlpProtocol, int]] = {"grpc": 4318, "http/protobuf": 4317}
_PORT_KIND: Final[Mapping[int, str]] = {4317: "OTLP/gRPC", 4318: "OTLP/HTTP"}
# One item of OTEL_EXPORTER_OTLP_[<SIGNAL>_]HEADERS as the Python SDK's exporters read it
# (opentelemetry.util.re, liberal): an HTTP token, "=", and a value of printable ASCII but for
# '"', ',', ';' and backslash (URL-encoded, blanks as written). They drop any other item.
_OTLP_HEADER: Final = re.compile(
    r"[ \t]*[\x21\x23-\x27\x2a\x2b\x2d\x2e\x30-\x39\x41-\x5a\x5e-\x7a\x7c\x7e]+[ \t]*"
    r"=[ \t]*[\x20\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*[ \t]*"
)
_OTLP_HEADERS_DELIMITER: Final = re.compile(r"[ \t]*,[ \t]*")
# Why an OTEL_* variable the SDK reads, holding bytes that are no UTF-8 text, is refused: no
# setting, so not "every setting is read as text" (NOT_TEXT), but read as text all the same.
_SDK_NOT_TEXT: Final = (
    "holds bytes that are not UTF-8 text (the value not shown), which the OpenTelemetry SDK reads"
    " as text for the OTLP export; allowed: UTF-8 text"
)


def cross_checks(settings: Settings, *, webhook_urls: Mapping[int, str] | None = None) -> list[str]:
    """Problems that involve several variables or a file one names, one line each, shown as
    ``redact_urls`` shows text (a path, a file's problem, may hold anything). ``webhook_urls``,
    when given, stands for ``EXESDB_WEBHOOK_URLS``: the items taken of a list with others
    refused, by item number, compared with the receivers file all the same."""
    return [redact_urls(problem) for problem in _cross_checks(settings, webhook_urls)]


def _cross_checks(settings: Settings, webhook_urls: Mapping[int, str] | None) -> list[str]:
    problems: list[str] = []
    if (web := settings.web_config()) is not None and web.loaded is None:
        problems += [f"EXESDB_WEB_CONFIG_FILE: {problem}" for problem in web.problems]
    if settings.webhook_config_file:
        try:
            settings.webhook_receivers(urls=webhook_urls)
        except ConfigError as exc:
            problems += [f"EXESDB_WEBHOOK_CONFIG_FILE: {problem}" for problem in exc.problems]
    certificate = client_certificate_problem(
        settings.healthcheck_cert_file, settings.healthcheck_key_file
    )
    if certificate is not None:
        problems.append(certificate)
    secret = settings.secret_key_base.get_secret_value() if settings.secret_key_base else ""
    if (settings.ingest or settings.uses_redis) and len(secret) < MIN_SECRET_LENGTH:
        fault = "is not set" if not secret else f"has {len(secret)} characters"
        needs = "EXESDB_INGEST=true" if settings.ingest else "a Redis bus (EXESDB_BUS)"
        problems.append(
            f"SECRET_KEY_BASE: {fault}; with {needs} it must be set to at least "
            f"{MIN_SECRET_LENGTH} characters"
        )
    if settings.ingest or settings.uses_redis:
        # A retired key verifies as the current one does: a short one could be guessed.
        for index, key in enumerate(settings.secret_key_base_previous, 1):
            if len(key.get_secret_value()) < MIN_SECRET_LENGTH:
                needs = "EXESDB_INGEST=true" if settings.ingest else "a Redis bus (EXESDB_BUS)"
                problems.append(
                    f"EXESDB_SECRET_KEY_BASE_PREVIOUS item {index}: has "
                    f"{len(key.get_secret_value())} characters; with {needs} a retired key "
                    f"still verifies messages, so it too must have at least "
                    f"{MIN_SECRET_LENGTH}"
                )
    for name, (degraded, unhealthy) in settings.resource_thresholds.items():
        # 100 disables a status (docs/configuration.md): only enabled pairs must order.
        if degraded > unhealthy and degraded < 100 and unhealthy < 100:
            low, high = f"EXESDB_{name.upper()}_DEGRADED", f"EXESDB_{name.upper()}_UNHEALTHY"
            problems.append(
                _blaming_the_one_set(
                    settings,
                    (f"{name}_degraded", f"{name}_unhealthy"),
                    f"{low}: {degraded:g} is above {high} ({unhealthy:g}); allowed: at most"
                    " that, or 100 to turn that status off",
                    f"{high}: {unhealthy:g} is below {low} ({degraded:g}, its default);"
                    f" allowed: at least that, or set {low} lower too",
                )
            )
    if settings.uses_redis and settings.redis_spool_bytes < 2 * settings.max_body_bytes:
        problems.append(
            _blaming_the_one_set(
                settings,
                ("redis_spool_bytes", "max_body_bytes"),
                f"EXESDB_REDIS_SPOOL_BYTES: {settings.redis_spool_bytes} is below twice "
                f"EXESDB_MAX_BODY_BYTES ({settings.max_body_bytes}), so the largest batch ingest "
                "takes might never fit; allowed: at least that",
                f"EXESDB_MAX_BODY_BYTES: {settings.max_body_bytes} is above half "
                f"EXESDB_REDIS_SPOOL_BYTES ({settings.redis_spool_bytes}, its default), so the "
                "largest batch ingest takes might never fit in the spool; allowed: at most "
                "that, or set EXESDB_REDIS_SPOOL_BYTES higher too",
            )
        )
    if settings.bus_queue_bytes < settings.max_body_bytes:
        problems.append(
            _blaming_the_one_set(
                settings,
                ("bus_queue_bytes", "max_body_bytes"),
                f"EXESDB_BUS_QUEUE_BYTES: {settings.bus_queue_bytes} is below "
                f"EXESDB_MAX_BODY_BYTES ({settings.max_body_bytes}), so the largest batch ingest "
                "takes might never fit in a subscriber's queue; allowed: at least that",
                f"EXESDB_MAX_BODY_BYTES: {settings.max_body_bytes} is above "
                f"EXESDB_BUS_QUEUE_BYTES ({settings.bus_queue_bytes}, its default), so the "
                "largest batch ingest takes might never fit in a subscriber's queue; allowed: "
                "at most that, or set EXESDB_BUS_QUEUE_BYTES higher too",
            )
        )
    bodies = settings.max_bodies_bytes
    if bodies is not None and bodies < settings.max_body_bytes:
        problems.append(
            f"EXESDB_MAX_BODIES_BYTES: {bodies} is below EXESDB_MAX_BODY_BYTES "
            f"({settings.max_body_bytes}), so a body of the largest size taken could never be "
            "read whole; allowed: at least that, or unset for 64 MiB (or twice "
            "EXESDB_MAX_BODY_BYTES when that is more)"
        )
    if settings.uses_redis and urlsplit(settings.bus).query:
        # TLS files are named in the URL's query alone; with none, redis-py (which reads them)
        # is not imported to find none.
        from bridge.bus.redis.tls_files import tls_file_problems

        problems += [f"EXESDB_BUS: {problem}" for problem in tls_file_problems(settings.bus)]
    if (state := unusable_state_dir(settings.state_dir)) is not None:
        problems.append(f"EXESDB_STATE_DIR: {state}")
    problems += _otlp_endpoint_problems(settings)
    problems += _otlp_file_problems(settings)
    problems += _sdk_variables_not_text(settings, os.environ)
    problems += _otlp_header_problems(settings, os.environ)
    if settings.webhook_backoff_ms > settings.webhook_max_backoff_ms:
        problems.append(
            _blaming_the_one_set(
                settings,
                ("webhook_backoff_ms", "webhook_max_backoff_ms"),
                f"EXESDB_WEBHOOK_BACKOFF_MS: {settings.webhook_backoff_ms} is above "
                f"EXESDB_WEBHOOK_MAX_BACKOFF_MS ({settings.webhook_max_backoff_ms})",
                f"EXESDB_WEBHOOK_MAX_BACKOFF_MS: {settings.webhook_max_backoff_ms} is below "
                f"EXESDB_WEBHOOK_BACKOFF_MS ({settings.webhook_backoff_ms}, its default); "
                "allowed: at least that, or set EXESDB_WEBHOOK_BACKOFF_MS lower too",
            )
        )
    return problems


def _blaming_the_one_set(
    settings: Settings, fields: tuple[str, str], said: str, said_of_second: str
) -> str:
    """The problem of two settings that contradict each other, as ``said`` (naming the
    first of ``fields`` at fault), or as ``said_of_second`` when only the second was set:
    the line names the variable the user set, not one left at its default."""
    first, second = fields
    only_second = second in settings.model_fields_set and first not in settings.model_fields_set
    return said_of_second if only_second else said


def _otlp_endpoint_problems(settings: Settings) -> list[str]:
    """Each OTLP endpoint the exporter of a signal using it could never send to, checked
    against that signal's protocol (the general endpoint against each falling back on it)."""
    signals: list[tuple[OtlpSignal, str | None]] = [
        ("traces", settings.otlp_traces_endpoint),
        ("logs", settings.otlp_logs_endpoint),
    ]
    if settings.otlp_metrics:
        signals.append(("metrics", settings.otlp_metrics_endpoint))
    problems: dict[str, str] = {}
    for signal, own in signals:
        protocol = otlp_protocol_of(settings, signal)
        variable, value = (
            (f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", own)
            if own
            else ("OTEL_EXPORTER_OTLP_ENDPOINT", settings.otlp_endpoint)
        )
        if value and variable not in problems:
            problem = otlp_endpoint_problem(value, protocol, general=not own)
            if problem is not None:
                problems[variable] = f"{variable}: {problem}"
    return list(problems.values())


def _otlp_file_problems(settings: Settings) -> list[str]:
    """Each certificate or key file an exported signal's exporter would read that is
    missing, unreadable or no PEM (``pem_file_problem``): the gRPC exporter would log a
    traceback and go on without it, the HTTP one fail at every export. The general
    variables count when any signal is exported, a signal's own when that one is."""
    problems = []
    for name, info in type(settings).model_fields.items():
        variable = str(info.validation_alias)
        file, path = _OTLP_FILE.fullmatch(variable), getattr(settings, name)
        if file is None or not path:
            continue
        signal = cast(OtlpSignal | None, file[1] and file[1].lower())
        used = otlp_exports(settings, signal) if signal else otlp_enabled(settings)
        if used and (problem := pem_file_problem(path, _OTLP_KINDS[file[2]])) is not None:
            problems.append(f"{variable}: {problem}")
    return problems


def _sdk_variables_not_text(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """A problem for each ``OTEL_*`` variable of ``environ`` that is no setting but one the
    OpenTelemetry SDK reads itself (``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_RESOURCE_ATTRIBUTES``;
    ``sdk_variables``) holding bytes that are not UTF-8 text, when OTLP export is on (with it
    off, the SDK reads none of them): it would send them in a header or a resource attribute,
    failing at each export, or show them in a warning. Its value is never shown (a header may be
    a token). Any other such variable is not read at all: the unknown variables' warning says
    so, never a refusal."""
    settings_read = known_variables()
    unread = [
        name
        for name in sorted(environ)
        if name.startswith("OTEL_") and name not in settings_read and holds_no_text(environ[name])
    ]
    if not unread or not otlp_enabled(settings):
        return []  # the SDK's list is read only then: it imports OpenTelemetry
    read = sdk_variables()
    return [f"{name}: {_SDK_NOT_TEXT}" for name in unread if name in read]


def _otlp_header_problems(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """The items of each OTLP headers variable an exported signal's exporter would read that it
    would drop (``Authorization: Bearer …``, a value holding a ``;``): the SDK warns and sends
    without them, and a collector asking for a token refuses every export. A signal reads its
    own variable when set, else the general one. Named by item number: a value holds secrets."""
    signals: tuple[OtlpSignal, ...] = ("traces", "logs", "metrics")
    read = set()
    for signal in signals:
        own = f"OTEL_EXPORTER_OTLP_{signal.upper()}_HEADERS"
        if otlp_exports(settings, signal):
            read.add(
                own if variable_value(environ, own) is not None else "OTEL_EXPORTER_OTLP_HEADERS"
            )
    problems = []
    for variable in sorted(read):
        value = variable_value(environ, variable) or ""
        if holds_no_text(value):
            continue  # refused as bytes that are no text (_sdk_variables_not_text), not as pairs
        items = [item for item in _OTLP_HEADERS_DELIMITER.split(value) if item]
        dropped = [
            str(number)
            for number, item in enumerate(items, 1)
            if not _OTLP_HEADER.fullmatch(item.strip())
        ]
        if dropped:
            which, them = (
                (f"item {dropped[0]} of {len(items)} is no name=value pair", "it")
                if len(dropped) == 1
                else (f"items {', '.join(dropped)} of {len(items)} are no name=value pairs", "them")
            )
            problems.append(
                f"{variable}: {which} the OTLP exporters read, so they would send without"
                f" {them}; allowed: comma-separated name=value pairs, each value URL-encoded"
                " (%20 for a blank, %2C for a comma, %3B for a semicolon)"
            )
    return problems


def start_warnings(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Things that work but that an operator should know about at start-up, among them the
    variables of ``environ`` (the process environment) that look meant for the bridge but
    are not among its settings."""
    environ = os.environ if environ is None else environ
    notes = unknown_variables(environ) + env_file_slips(environ, known_variables())
    secret = settings.secret_key_base.get_secret_value() if settings.secret_key_base else ""
    # Unset is no warning: it is refused with ingest or a Redis bus, so the key is the
    # in-process bus's alone, nothing outside to sign or verify (an info line at start).
    if secret and len(secret) < MIN_SECRET_LENGTH:
        notes.append(
            f"SECRET_KEY_BASE is shorter than {MIN_SECRET_LENGTH} characters; use a longer one"
        )
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if token and len(token) < MIN_ADMIN_TOKEN_LENGTH:
        notes.append(
            f"EXESDB_ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters: "
            "anyone reaching the port may guess it by trying; use a long random one"
        )
    links = settings.own_url(for_others=True)
    sends = settings.webhook_urls or settings.webhook_config_file or settings.alertmanager_url
    if sends and settings.external_url is None and not names_a_host(links):
        notes.append(
            f"alert links (generatorURL) would start with {settings.shown_links()!r}, which "
            "names no host (EXESDB_NODE stands for a wildcard EXESDB_HTTP_ADDR): set "
            "EXESDB_EXTERNAL_URL to the bridge's URL as people reach it"
        )
    if settings.webhook_urls and settings.webhook_secret is None:
        notes.append(
            "EXESDB_WEBHOOK_SECRET is not set: webhook deliveries go unsigned; set it to a random"
            f" key of at least {MIN_SECRET_LENGTH} characters, e.g. $(openssl rand -hex 32), and"
            " give each receiver the same key to verify the X-ExESDB-Signature header"
        )
    notes += _receivers_refusing_notifications(settings)
    hook_secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    # Every delivery carries an HMAC of a known body: a short key is found offline from one.
    if hook_secret and len(hook_secret) < MIN_SECRET_LENGTH:
        notes.append(
            f"EXESDB_WEBHOOK_SECRET is shorter than {MIN_SECRET_LENGTH} characters: one signed"
            " delivery lets anyone who sees it try keys offline; use a long random one"
        )
    if settings.otlp_metrics and not (settings.otlp_endpoint or settings.otlp_metrics_endpoint):
        notes.append(
            "EXESDB_OTLP_METRICS is true but neither OTEL_EXPORTER_OTLP_ENDPOINT nor "
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set: no metrics are exported over OTLP"
        )
    notes += otlp_number_warnings(settings, environ)
    notes += _series_outlived_by_intervals(settings)
    notes += _grpc_tls_unsaid(settings, environ)
    notes += _http_signal_endpoints_without_path(settings)
    notes += _other_protocols_port(settings)
    web = settings.web_config()
    if web is not None and web.loaded is not None:  # a bad file: what cross_checks names
        # Their paths (a password file's) may hold anything: shown as a value is.
        notes += [redact_urls(note) for note in credential_warnings(settings, web.loaded.config)]
        tls = web.loaded.config.tls
        if tls is not None and tls.system_client_cas:
            notes.append(
                f"EXESDB_WEB_CONFIG_FILE: client_auth_type {tls.client_auth_type} without "
                "client_ca_file or client_ca verifies client certificates against the system's "
                "CAs, as the toolkit does, so a certificate any of them issued for client "
                "authentication is let in: give client_ca_file to let in only your own CA's"
            )
    return notes + receivers_file_warnings(settings, own=_file_receivers_notes(settings))


def _series_outlived_by_intervals(settings: Settings) -> list[str]:
    """A series TTL under two of the collectors' intervals: one reading late or lost and the
    series go from /metrics, and the health alerts they keep up resolve and fire again."""
    if not settings.pubsub_integration:  # no collectors here: other nodes' intervals are theirs
        return []
    intervals = (
        ("EXESDB_HEALTH_BROADCAST_INTERVAL", settings.health_broadcast_interval),
        ("EXESDB_METRICS_BROADCAST_INTERVAL", settings.metrics_broadcast_interval),
    )
    # The longer first: the TTL it asks for holds for both.
    for name, interval_ms in sorted(intervals, key=lambda named: -named[1]):
        if settings.series_ttl_ms < 2 * interval_ms:
            return [
                f"EXESDB_SERIES_TTL_MS ({settings.series_ttl_ms} ms) is under twice {name}"
                f" ({interval_ms} ms): one reading late or lost and its series go from /metrics,"
                " and the health alerts they keep up resolve and fire again; make it at least"
                f" {2 * interval_ms}"
            ]
    return []


def _grpc_tls_unsaid(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """A note for each gRPC endpoint in use written without a scheme (``collector:4317``), or with
    one neither http nor https (``grpc://collector:4317``), while no
    ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]INSECURE`` is set: the exporter dials it with TLS, the
    specification's default there, which a collector without TLS fails at every export."""
    notes: dict[str, str] = {}
    signals: tuple[OtlpSignal, ...] = ("traces", "logs", "metrics")
    for signal in signals:
        if not otlp_exports(settings, signal) or otlp_protocol_of(settings, signal) != "grpc":
            continue
        value = otlp_endpoint_of(settings, signal)
        own = getattr(settings, f"otlp_{signal}_endpoint") is not None
        prefix = f"OTEL_EXPORTER_OTLP_{signal.upper()}_" if own else "OTEL_EXPORTER_OTLP_"
        variable, insecure = prefix + "ENDPOINT", prefix + "INSECURE"
        said = (f"OTEL_EXPORTER_OTLP_{signal.upper()}_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")
        unsaid = grpc_tls_unsaid(value)
        if variable in notes or unsaid is None:
            continue
        if any(variable_value(environ, name) is not None for name in said):
            continue
        what, dialled = unsaid
        # A bare host is dialled at 443, gRPC's default port, whatever the scheme.
        port = "" if ":" in dialled.rpartition("]")[2] else " (nor port: 443 is dialled)"
        notes[variable] = redact_urls(
            f"{variable} {value} {what}{port}, so the grpc exporter dials it with TLS (the "
            f"OpenTelemetry specification's default while {insecure} is unset), and every "
            f"export to a collector without TLS fails: write http://{dialled} for one without "
            f"TLS, or https://{dialled} to say TLS"
        )
    return list(notes.values())


def _http_signal_endpoints_without_path(settings: Settings) -> list[str]:
    """A note for each signal's own endpoint (``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT``) that
    the http/protobuf exporter posts to with no path: it takes that URL as it is, adding no
    ``/v1/<signal>`` (only the general endpoint gets one), so a collector, which takes each
    signal at its ``/v1/<signal>``, answers every export 404."""
    notes = []
    signals: tuple[OtlpSignal, ...] = ("traces", "logs", "metrics")
    for signal in signals:
        own = getattr(settings, f"otlp_{signal}_endpoint")
        if not own or not otlp_exports(settings, signal):
            continue
        if otlp_protocol_of(settings, signal) != "http/protobuf":
            continue
        if urlsplit(own).path.strip("/"):
            continue
        variable = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        notes.append(
            redact_urls(
                f"{variable} {own} has no path, and the http/protobuf exporter posts to a"
                f" signal's own endpoint as it is, adding nothing: a collector takes {signal} at"
                f" /v1/{signal} and answers 404 elsewhere; end the URL in /v1/{signal}, or give"
                " the collector's base URL in OTEL_EXPORTER_OTLP_ENDPOINT instead, to which"
                " the exporter adds /v1/<signal>"
            )
        )
    return notes


def _other_protocols_port(settings: Settings) -> list[str]:
    """A note for each endpoint in use that names the other protocol's standard port: 4318
    (OTLP/HTTP) with grpc, 4317 (OTLP/gRPC) with http/protobuf. Every export to it fails, in
    words of the transport that say nothing of the cause until the first one is made."""
    # By endpoint variable, value and protocol: the signals sent so, and the protocol
    # variable deciding each one's (its own when set, else the general one).
    wrong: dict[tuple[str, str, OtlpProtocol], dict[str, str]] = {}
    signals: tuple[OtlpSignal, ...] = ("traces", "logs", "metrics")
    for signal in signals:
        if not otlp_exports(settings, signal):
            continue
        value, protocol = otlp_endpoint_of(settings, signal), otlp_protocol_of(settings, signal)
        if _port_of(value) != _OTHER_PORT[protocol]:
            continue
        own = getattr(settings, f"otlp_{signal}_endpoint") is not None
        deciding = getattr(settings, f"otlp_{signal}_protocol") is not None
        variable = f"OTEL_EXPORTER_OTLP_{signal.upper() + '_' if own else ''}ENDPOINT"
        said = f"OTEL_EXPORTER_OTLP_{signal.upper() + '_' if deciding else ''}PROTOCOL"
        wrong.setdefault((variable, value, protocol), {})[signal] = said
    notes = []
    for (variable, value, protocol), named in wrong.items():
        port = _OTHER_PORT[protocol]
        other: OtlpProtocol = "http/protobuf" if protocol == "grpc" else "grpc"
        notes.append(
            redact_urls(
                f"{variable} {value} names port {port}, a collector's {_PORT_KIND[port]} port,"
                f" while {', '.join(named)} go over {protocol}: every export fails there; set"
                f" {' and '.join(sorted(set(named.values())))} to {other}, or give the"
                f" collector's {_PORT_KIND[_OTHER_PORT[other]]} port, {_OTHER_PORT[other]}"
            )
        )
    return notes


def _port_of(endpoint: str) -> int | None:
    """The port an OTLP endpoint names: a URL's, or a gRPC ``host:port`` target's; None when
    it names none or cannot be read."""
    try:
        parts = urlsplit(endpoint)
        if parts.netloc:
            return parts.port
    except ValueError:
        return None
    port = endpoint.rpartition("]")[2].rpartition(":")[2]
    return int(port) if ":" in endpoint.rpartition("]")[2] and port.isdigit() else None


def _receivers_refusing_notifications(settings: Settings) -> list[str]:
    """A note for each ``EXESDB_WEBHOOK_URLS`` receiver whose URL refuses the notifications
    the bridge sends (``_refuses_notifications``: Alertmanager's alerts API, a chat service's
    incoming webhook); the receivers file's are said with its other warnings
    (``_file_receivers_notes``). Named as ``check-config`` lists receivers: no path shown."""
    return [
        redact_urls(f"EXESDB_WEBHOOK_URLS item {number} {safe_url(url)}: {note}")
        for number, url in enumerate(settings.webhook_urls, 1)
        if (note := _refuses_notifications(url)) is not None
    ]


def _refuses_notifications(url: str) -> str | None:
    """What to say of a webhook receiver's ``url`` whose path ends in ``/api/v2/alerts`` or
    ``/api/v1/alerts``, Alertmanager's alerts API: that API takes a list of alerts, not a
    webhook's notification, and answers every delivery 400 (each dead-lettered), where
    ``EXESDB_ALERTMANAGER_URL`` posts the alerts as it takes them; and of a chat service's
    incoming webhook (``_at_a_chat_webhook``); None for any other."""
    api = _ALERTMANAGER_API.search(urlsplit(url).path.rstrip("/"))
    if api is None:
        return _at_a_chat_webhook(url)
    return (
        f"its path ends in {api.group(0)}, Alertmanager's alerts API, which takes a list of"
        " alerts, not a webhook's notification, and answers every delivery 400: for"
        " Alertmanager to take the bridge's alerts, set EXESDB_ALERTMANAGER_URL to its own URL"
        f" (this one without {api.group(0)}) instead"
    )


def _at_a_chat_webhook(url: str) -> str | None:
    """What to say of a receiver's ``url`` that is a chat service's incoming webhook
    (``_CHAT_WEBHOOKS``), which refuses the notification the bridge sends: send through
    Alertmanager, whose receivers speak to it; None for any other URL."""
    parts = urlsplit(url)
    service, path = _CHAT_WEBHOOKS.get((parts.hostname or "").lower(), ("", None))
    if path is None or not path.search(parts.path):
        return None
    return (
        f"it is a {service} incoming webhook, which takes {service}'s own message, not the"
        " Alertmanager-format notification the bridge sends, and answers every delivery 400:"
        f" send alerts to {service} through an Alertmanager with a {service.lower()}_configs"
        " receiver (EXESDB_ALERTMANAGER_URL), or a relay that turns the notification into a"
        f" {service} message"
    )


def _file_receivers_notes(settings: Settings) -> dict[int, list[str]]:
    """The start warnings of each receiver of ``EXESDB_WEBHOOK_CONFIG_FILE`` (by its index)
    that are the settings' to give, not the file's: a URL that refuses the notifications
    (``_refuses_notifications``: Alertmanager's alerts API, a chat service's webhook), and
    signing nothing (no ``secret``, no ``secret_file``, no ``EXESDB_WEBHOOK_SECRET``; a bad
    file's problems are what cross_checks names). Each begins with the receiver as
    ``check-config`` lists it."""
    read = settings.receivers_file()
    if read is None:
        return {}
    unsigned = not read.problems and settings.webhook_secret is None
    notes: dict[int, list[str]] = {}
    for index, hook in read.hooks:
        who = f"webhook_configs.{index} {hook.shown}"
        if hook.url and (api := _refuses_notifications(hook.url)) is not None:
            notes.setdefault(index, []).append(f"{who}: {api}")
        if unsigned and hook.secret is None and hook.secret_file is None:
            notes.setdefault(index, []).append(
                f"{who}: no secret nor secret_file, nor EXESDB_WEBHOOK_SECRET: deliveries go"
                f" unsigned; set its secret (or secret_file) to a random key of at least"
                f" {MIN_SECRET_LENGTH} characters, e.g. $(openssl rand -hex 32), and give the"
                " receiver the same key to verify the X-ExESDB-Signature header"
            )
    return notes


def receivers_file_warnings(
    settings: Settings, own: Mapping[int, Sequence[str]] | None = None
) -> list[str]:
    """The warnings about ``EXESDB_WEBHOOK_CONFIG_FILE``'s receivers (``file_warnings``),
    said with its problems too when it has some; each receiver's in its place in the file,
    ``own``'s for it (by index) first."""
    read = settings.receivers_file()
    if read is None:
        return []
    from bridge.receivers import file_warnings  # with the file only, as Settings reads it

    # A receiver named by its url_file shows that path, which may hold anything.
    return [
        redact_urls(f"EXESDB_WEBHOOK_CONFIG_FILE {note}")
        for note in file_warnings(read, alertmanager_url=settings.alertmanager_url, own=own)
    ]
