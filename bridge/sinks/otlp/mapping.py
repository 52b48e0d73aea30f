"""Which bus messages become OTLP spans, which become log records, and with what attributes.

Pure translation, free of OpenTelemetry imports: an ``Envelope`` in, a ``SpanSpec``, a
``LogSpec`` or None out. Attribute sizes are bounded here, so one odd payload can never make a
record that the collector (or the SDK's own limits) would refuse.

Every span and record carries OpenTelemetry's messaging conventions (semantic conventions 1.3x,
"Development" status there, so written out here rather than imported): ``messaging.system`` is
``exesdb``, ``messaging.destination.name`` the bus instance, ``messaging.message.id`` the
envelope id, and ``messaging.operation.type`` / ``messaging.operation.name`` are ``process``
(the sink processes a message the bus delivered to it). So every span is recorded as a CONSUMER
span, the kind the conventions give ``process``; a webhook delivery a NotificationStatus reports
too, since the HTTP request it tells of was made by its publisher (the bridge's own requests are
CLIENT spans of their own, ``bridge.tracing``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from bridge.bus import Envelope
from bridge.messages import (
    SECURITY_SEVERITY,
    SEVERITIES,
    AccessLog,
    AccessViolation,
    AdminAction,
    AlertAck,
    AlertEscalation,
    AuthEvent,
    ClusterMembership,
    ComplianceEvent,
    DataChange,
    DebugTrace,
    ErrorAnalysis,
    HealthCheck,
    LogEntry,
    Message,
    MetricAlert,
    NodeLifecycle,
    NotificationStatus,
    PerformanceAnalysis,
    ProcessLifecycle,
    SecurityAlert,
    SessionEvent,
    SupervisionEvent,
    SystemAlert,
    SystemLifecycle,
)
from bridge.redaction import at_past_host, redact_urls, safe_url, span_url
from bridge.tracing import (
    ERROR_TYPE,
    ERROR_TYPE_OTHER,
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_RESEND_COUNT,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_FULL,
)
from bridge.urls import DEFAULT_PORTS

__all__ = [
    "ATTRIBUTE_PREFIX",
    "DEBUG",
    "ERROR",
    "FATAL",
    "INFO",
    "LOG_TAGS",
    "MAX_ARRAY_ITEMS",
    "MAX_KEY_LENGTH",
    "MAX_PAYLOAD_ATTRIBUTES",
    "MAX_PAYLOAD_CHARACTERS",
    "MAX_STRING_LENGTH",
    "MESSAGING_DESTINATION_NAME",
    "MESSAGING_MESSAGE_ID",
    "MESSAGING_OPERATION_NAME",
    "MESSAGING_OPERATION_TYPE",
    "MESSAGING_SYSTEM",
    "SPAN_TAGS",
    "SYSTEM",
    "WARN",
    "AttributeValue",
    "LogSpec",
    "SpanSpec",
    "flatten_payload",
    "translate",
]

AttributeValue = (
    str
    | bool
    | int
    | float
    | tuple[str, ...]
    | tuple[bool, ...]
    | tuple[int, ...]
    | tuple[float, ...]
)
Attributes = dict[str, AttributeValue]

# OpenTelemetry SeverityNumber values (logs data model, "Field: SeverityNumber").
DEBUG: Final = 5
INFO: Final = 9
WARN: Final = 13
ERROR: Final = 17
FATAL: Final = 21

ATTRIBUTE_PREFIX: Final = "exesdb."
MESSAGING_SYSTEM: Final = "messaging.system"
MESSAGING_DESTINATION_NAME: Final = "messaging.destination.name"
MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
MESSAGING_MESSAGE_ID: Final = "messaging.message.id"
SYSTEM: Final = "exesdb"
_OPERATION: Final = "process"
MAX_PAYLOAD_ATTRIBUTES: Final = 64
# The text all of a record's payload attributes hold together: 64 attributes, each an array of 32
# strings of 1024 characters, would be 2 MB a record (measured), 16 GB for a full export queue
# while the collector does not answer.
MAX_PAYLOAD_CHARACTERS: Final = 8192
MAX_STRING_LENGTH: Final = 1024
MAX_BODY_LENGTH: Final = 8192
MAX_ARRAY_ITEMS: Final = 32
MAX_KEY_LENGTH: Final = 128
MAX_DEPTH: Final = 3
MAX_EVENTS: Final = 32
_ELLIPSIS: Final = "…"
_INT64: Final = 2**63
# Envelope attributes; a payload field of the same name goes under ``exesdb.payload.``.
_ENVELOPE_KEYS: Final = frozenset({"instance", "topic", "tag", "node"})
_SEVERITY_NAMES: Final = {
    DEBUG: "DEBUG",
    INFO: "INFO",
    WARN: "WARN",
    ERROR: "ERROR",
    FATAL: "FATAL",
}


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """A timed annotation on a span."""

    name: str
    time_ns: int
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class SpanSpec:
    """A finished CONSUMER span to record: times in nanoseconds since the epoch."""

    name: str
    start_ns: int
    end_ns: int
    attributes: Attributes
    status: Literal["unset", "ok", "error"] = "unset"
    status_description: str | None = None
    events: tuple[SpanEvent, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class LogSpec:
    """A log record to emit: severity as an OpenTelemetry SeverityNumber."""

    body: str
    severity_number: int
    timestamp_ns: int
    observed_ns: int
    attributes: Attributes
    event_name: str

    @property
    def severity_text(self) -> str:
        """The severity's short name (``INFO``, ``WARN``...)."""
        return _SEVERITY_NAMES.get(self.severity_number, "INFO")


# -- attributes --


def _truncate(text: str, limit: int = MAX_STRING_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 1] + _ELLIPSIS


def _json(value: Any) -> str:
    return _truncate(json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False))


def _scalar(value: Any) -> AttributeValue | None:
    if value is None:
        return None
    if isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        # OTLP ints are int64; a bigger one travels as text (cut as any) rather than refused.
        return value if -_INT64 <= value < _INT64 else _truncate(str(value))
    if isinstance(value, str):
        return _truncate(value)
    return None


def _array(values: list[Any]) -> AttributeValue | None:
    """A homogeneous array of scalars as a bounded tuple, else None (sent as JSON text)."""
    kinds = {type(item) for item in values}
    if len(kinds) != 1 or kinds & {type(None)}:
        return None
    kind = kinds.pop()
    items = values[:MAX_ARRAY_ITEMS]
    if kind is str:
        return tuple(_truncate(item) for item in items)
    if kind is bool:
        return tuple(bool(item) for item in items)
    if kind is int and all(-_INT64 <= item < _INT64 for item in items):
        return tuple(int(item) for item in items)
    if kind is float:
        return tuple(float(item) for item in items)
    return None


def _text_size(value: AttributeValue) -> int:
    """The characters of text ``value`` holds (a string's, or those of an array's strings)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, tuple):
        return sum(len(item) for item in value if isinstance(item, str))
    return 0


def flatten_payload(
    payload: Mapping[str, Any],
    *,
    exclude: frozenset[str] = frozenset(),
    node: str | None = None,
) -> Attributes:
    """The payload's fields as ``exesdb.``-prefixed attributes, bounded in count and size.

    Nested objects become dotted keys (up to ``MAX_DEPTH`` levels, deeper ones JSON text);
    homogeneous lists of scalars become arrays of at most ``MAX_ARRAY_ITEMS``; strings (a
    whole number past int64's as text too) are cut to ``MAX_STRING_LENGTH``, keys to
    ``MAX_KEY_LENGTH``; after ``MAX_PAYLOAD_ATTRIBUTES`` the rest, each attribute whose text
    would take the attributes past ``MAX_PAYLOAD_CHARACTERS`` in all (a shorter one after it is
    still kept), and each whose key an attribute before it has (two keys cut alike) are counted
    in ``exesdb.attributes_dropped``. A payload ``node`` equal to the envelope's is
    left out.
    """
    out: Attributes = {}
    dropped = 0
    left = MAX_PAYLOAD_CHARACTERS  # of text the attributes may still hold

    def visit(key: str, value: Any, depth: int) -> None:
        nonlocal dropped, left
        if value is None:
            return
        if isinstance(value, Mapping):
            if value and depth < MAX_DEPTH:
                for sub_key, sub_value in value.items():
                    visit(f"{key}.{sub_key}", sub_value, depth + 1)
                return
            converted: AttributeValue = _json(value)
        elif isinstance(value, list | tuple):
            array = _array(list(value)) if value else None
            converted = _json(value) if array is None else array
        else:
            scalar = _scalar(value)
            converted = _truncate(str(value)) if scalar is None else scalar
        size = _text_size(converted)
        name = _truncate(key, MAX_KEY_LENGTH)
        # A key another attribute has already (two long ones cut alike, ``a.b`` and ``a``'s
        # ``b``) would replace its value, its text counted twice: the first one stays.
        if name in out or len(out) >= MAX_PAYLOAD_ATTRIBUTES or size > left:
            dropped += 1
            return
        left -= size
        out[name] = converted

    for name, value in payload.items():
        if name in exclude:
            continue
        if name in _ENVELOPE_KEYS:
            if name == "node" and value == node:
                continue
            visit(f"{ATTRIBUTE_PREFIX}payload.{name}", value, 1)
        else:
            visit(ATTRIBUTE_PREFIX + name, value, 1)
    if dropped:
        out[ATTRIBUTE_PREFIX + "attributes_dropped"] = dropped
    return out


def _attributes(envelope: Envelope, exclude: frozenset[str] = frozenset()) -> Attributes:
    attributes: Attributes = {
        "exesdb.instance": envelope.instance,
        "exesdb.topic": envelope.topic,
        "exesdb.tag": envelope.tag,
        "exesdb.node": envelope.node,
        "exesdb.message_id": envelope.id,
        MESSAGING_SYSTEM: SYSTEM,
        MESSAGING_DESTINATION_NAME: envelope.instance,
        MESSAGING_OPERATION_TYPE: _OPERATION,
        MESSAGING_OPERATION_NAME: _OPERATION,
        MESSAGING_MESSAGE_ID: envelope.id,
    }
    payload = envelope.payload.model_dump(mode="json", exclude={"timestamp"})
    attributes.update(flatten_payload(payload, exclude=exclude, node=envelope.node))
    return attributes


# OTLP carries times as unsigned 64-bit nanoseconds since the epoch (fixed64: 1970 to 2554). A
# time outside them (a message dated in year 1 or 9999, a span of 1e300 ms) would fail the
# encoding of the whole batch it is in, and every other record of the batch would be lost with
# it: such a time is taken as the nearest one OTLP carries.
_MAX_NS: Final = 2**64 - 1


def _ns(moment: datetime) -> int:
    return _carried(int(moment.timestamp() * 1_000_000) * 1000)


def _carried(nanoseconds: int) -> int:
    return min(max(nanoseconds, 0), _MAX_NS)


def _began(end: int, duration_ms: float) -> int:
    """The start of a span that ended at ``end`` (nanoseconds) after ``duration_ms``."""
    return _carried(end - int(duration_ms * 1_000_000))


# -- spans --


def _debug_trace(envelope: Envelope, message: DebugTrace) -> SpanSpec:
    end = _ns(message.timestamp)
    start = _began(end, message.duration_ms or 0.0)
    return SpanSpec(message.operation, start, end, _attributes(envelope))


def _health_check(envelope: Envelope, message: HealthCheck) -> SpanSpec:
    end = _ns(message.timestamp)
    failed = message.result != "pass"
    return SpanSpec(
        message.check_name,
        _began(end, message.duration_ms),
        end,
        _attributes(envelope),
        status="error" if failed else "ok",
        status_description=_truncate(message.error or message.result) if failed else None,
    )


def _performance_analysis(envelope: Envelope, message: PerformanceAnalysis) -> SpanSpec:
    at = _ns(message.timestamp)
    events = tuple(
        SpanEvent("recommendation", at, {"exesdb.recommendation": _truncate(text)})
        for text in message.recommendations[:MAX_EVENTS]
    )
    return SpanSpec(
        f"performance_analysis {message.analysis_type}",
        at,
        at,
        _attributes(envelope),
        events=events,
    )


def _safe_recipient(recipient: str) -> tuple[str, str | None, int | None]:
    """A webhook URL as ``bridge.redaction.safe_url`` shows it everywhere (paths and queries
    often hold tokens), with its host and port on their own; any other recipient (an address)
    as it is, but for the password of a URL mistyped there (``redact_urls``)."""
    try:
        parts = urlsplit(recipient)
    except ValueError:  # an IPv6 host without its closing bracket
        return _truncate(redact_urls(recipient), 256), None, None
    # A host with an "@" past it may be a piece of a password: shown as safe_url shows it alone.
    if parts.scheme in ("http", "https") and parts.hostname and not at_past_host(parts):
        try:
            port = parts.port
        except ValueError:
            port = None
        return safe_url(recipient), parts.hostname, port or DEFAULT_PORTS[parts.scheme]
    return _truncate(redact_urls(recipient), 256), None, None


def _webhook_delivery(envelope: Envelope, message: NotificationStatus) -> SpanSpec:
    at = _ns(message.timestamp)
    attributes = _attributes(envelope, exclude=frozenset({"recipient"}))
    recipient, host, port = _safe_recipient(message.recipient)
    attributes["exesdb.recipient"] = recipient
    # The HTTP attributes of the delivery the message tells of, as far as it tells them: a
    # webhook is a POST; the status code and the error's kind are on the request's own CLIENT
    # span (bridge.tracing), which its publisher recorded.
    attributes[HTTP_REQUEST_METHOD] = "POST"
    if host is not None:
        attributes[URL_FULL] = span_url(recipient)
        attributes[SERVER_ADDRESS] = host
    if port is not None:
        attributes[SERVER_PORT] = port
    if message.attempts > 1:
        attributes[HTTP_REQUEST_RESEND_COUNT] = message.attempts - 1
    failed = message.status in ("failed", "bounced")
    if failed:
        attributes[ERROR_TYPE] = ERROR_TYPE_OTHER
    return SpanSpec(
        "webhook delivery",
        at,
        at,
        attributes,
        status="error" if failed else "ok",
        status_description=_truncate(message.error_reason or message.status) if failed else None,
    )


# -- log records --


def _log(
    envelope: Envelope,
    body: str,
    severity: int,
    exclude: frozenset[str] = frozenset(),
) -> LogSpec:
    return LogSpec(
        _truncate(body, MAX_BODY_LENGTH),
        severity,
        _ns(envelope.payload.timestamp),
        _ns(envelope.ts),
        _attributes(envelope, exclude),
        f"exesdb.{envelope.tag}",
    )


_LOG_LEVELS: Final = {"debug": DEBUG, "info": INFO, "warn": WARN, "error": ERROR, "critical": FATAL}
# The alerting scale's levels in its order (SEVERITIES, lowest first): a severity added there
# without a level here stops the import, rather than a KeyError for its first alert.
_ALERT_LEVELS: Final = dict(zip(SEVERITIES, (INFO, WARN, ERROR, FATAL), strict=True))
# Security alerts and access violations (low … critical) at the level of the alerts they raise.
_RISK_LEVELS: Final = {risk: _ALERT_LEVELS[alert] for risk, alert in SECURITY_SEVERITY.items()}


def _log_entry(envelope: Envelope, message: LogEntry) -> LogSpec:
    return _log(envelope, message.message, _LOG_LEVELS[message.level], frozenset({"message"}))


def _system_alert(envelope: Envelope, message: SystemAlert) -> LogSpec:
    return _log(envelope, message.title, _ALERT_LEVELS[message.severity], frozenset({"title"}))


def _metric_alert(envelope: Envelope, message: MetricAlert) -> LogSpec:
    side = "above" if message.threshold_type == "max" else "below"
    body = (
        f"{message.metric_name} is {message.current_value:g}, "
        f"{side} its threshold {message.threshold_value:g}"
    )
    return _log(envelope, body, FATAL if message.severity == "critical" else WARN)


def _security_alert(envelope: Envelope, message: SecurityAlert) -> LogSpec:
    return _log(
        envelope, message.description, _RISK_LEVELS[message.severity], frozenset({"description"})
    )


def _access_violation(envelope: Envelope, message: AccessViolation) -> LogSpec:
    body = f"{message.violation_type}: {message.action} on {message.resource} refused"
    return _log(envelope, body, _RISK_LEVELS[message.severity])


def _auth_event(envelope: Envelope, message: AuthEvent) -> LogSpec:
    body = f"{message.event_type} for {message.user_id} by {message.auth_method}"
    return _log(envelope, body, WARN if message.event_type == "login_failure" else INFO)


def _session_event(envelope: Envelope, message: SessionEvent) -> LogSpec:
    return _log(envelope, f"session {message.event_type} for {message.user_id}", INFO)


def _data_change(envelope: Envelope, message: DataChange) -> LogSpec:
    body = f"{message.action} {message.resource_type} {message.resource_id} by {message.user_id}"
    return _log(envelope, body, INFO)


def _admin_action(envelope: Envelope, message: AdminAction) -> LogSpec:
    body = f"{message.action_type} on {message.target_resource} by {message.admin_user_id}"
    return _log(envelope, body, INFO)


def _access_log(envelope: Envelope, message: AccessLog) -> LogSpec:
    outcome = "succeeded" if message.success else "failed"
    body = (
        f"{message.action} {message.resource_type} {message.resource_id} "
        f"by {message.user_id} {outcome}"
    )
    return _log(envelope, body, INFO if message.success else WARN)


def _compliance_event(envelope: Envelope, message: ComplianceEvent) -> LogSpec:
    body = f"{message.event_type} under {message.compliance_rule}: {message.action_taken}"
    return _log(envelope, body, WARN if message.event_type == "policy_violation" else INFO)


_NODE_EVENT_LEVELS: Final = {"down": ERROR, "leaving": WARN, "left": WARN}
_PROCESS_EVENT_LEVELS: Final = {"crashed": ERROR, "restarted": WARN}
_MEMBERSHIP_LEVELS: Final = {"partition_detected": ERROR, "node_removed": WARN}


def _node_lifecycle(envelope: Envelope, message: NodeLifecycle) -> LogSpec:
    body = f"node {message.node} {message.event} (cluster size {message.cluster_size})"
    return _log(envelope, body, _NODE_EVENT_LEVELS.get(message.event, INFO))


def _process_lifecycle(envelope: Envelope, message: ProcessLifecycle) -> LogSpec:
    body = f"process {message.name or message.pid} ({message.module}) {message.event}"
    if message.reason:
        body += f": {message.reason}"
    return _log(envelope, body, _PROCESS_EVENT_LEVELS.get(message.event, INFO))


def _supervision_event(envelope: Envelope, message: SupervisionEvent) -> LogSpec:
    body = f"supervisor {message.supervisor}: {message.event}"
    if message.reason:
        body += f": {message.reason}"
    return _log(envelope, body, ERROR if message.event == "restart_limit_exceeded" else INFO)


def _cluster_membership(envelope: Envelope, message: ClusterMembership) -> LogSpec:
    affected = ", ".join(message.affected_nodes[:MAX_ARRAY_ITEMS])
    body = f"cluster {message.event}: {affected} ({message.total_nodes} nodes active)"
    severity = _MEMBERSHIP_LEVELS.get(message.event, INFO)
    if message.quorum_status == "lost":
        severity = ERROR
    return _log(envelope, body, severity)


def _system_lifecycle(envelope: Envelope, message: SystemLifecycle) -> LogSpec:
    return _log(envelope, f"{message.system_name} {message.version} {message.event}", INFO)


def _error_analysis(envelope: Envelope, message: ErrorAnalysis) -> LogSpec:
    return _log(envelope, f"{message.error_type}: {message.error_message}", ERROR)


def _alert_ack(envelope: Envelope, message: AlertAck) -> LogSpec:
    return _log(envelope, f"alert {message.alert_id} acknowledged by {message.ack_by}", INFO)


def _alert_escalation(envelope: Envelope, message: AlertEscalation) -> LogSpec:
    body = (
        f"alert {message.alert_id} escalated from {message.from_level} to {message.to_level}: "
        f"{message.escalation_reason}"
    )
    return _log(envelope, body, WARN)


def _notification_status(envelope: Envelope, message: NotificationStatus) -> SpanSpec | LogSpec:
    if message.delivery_method == "webhook":
        return _webhook_delivery(envelope, message)
    failed = message.status in ("failed", "bounced")
    body = f"{message.delivery_method} notification of alert {message.alert_id} {message.status}"
    if failed and message.error_reason:
        body += f": {message.error_reason}"
    return _log(envelope, body, WARN if failed else INFO)


_Translator = Callable[[Envelope, Any], SpanSpec | LogSpec]

_SPANS: Final[dict[type[Message], _Translator]] = {
    DebugTrace: _debug_trace,
    HealthCheck: _health_check,
    PerformanceAnalysis: _performance_analysis,
    NotificationStatus: _notification_status,  # webhook attempts; other methods are logs
}
_LOGS: Final[dict[type[Message], _Translator]] = {
    LogEntry: _log_entry,
    SystemAlert: _system_alert,
    MetricAlert: _metric_alert,
    AlertAck: _alert_ack,
    AlertEscalation: _alert_escalation,
    SecurityAlert: _security_alert,
    AccessViolation: _access_violation,
    AuthEvent: _auth_event,
    SessionEvent: _session_event,
    DataChange: _data_change,
    AdminAction: _admin_action,
    AccessLog: _access_log,
    ComplianceEvent: _compliance_event,
    SystemLifecycle: _system_lifecycle,
    NodeLifecycle: _node_lifecycle,
    ProcessLifecycle: _process_lifecycle,
    SupervisionEvent: _supervision_event,
    ClusterMembership: _cluster_membership,
    ErrorAnalysis: _error_analysis,
}
_TRANSLATORS: Final = {model.TAG: translator for model, translator in (_SPANS | _LOGS).items()}

SPAN_TAGS: Final = frozenset(model.TAG for model in _SPANS)
"""Tags that become spans (``notification_status`` only for ``delivery_method=webhook``)."""
LOG_TAGS: Final = frozenset(model.TAG for model in _LOGS) | {NotificationStatus.TAG}
"""Tags that become log records."""


def translate(envelope: Envelope) -> SpanSpec | LogSpec | None:
    """The span or log record a verified message becomes; None for types OTLP leaves out."""
    translator = _TRANSLATORS.get(envelope.tag)
    return None if translator is None else translator(envelope, envelope.payload)
