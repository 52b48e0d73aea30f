"""Which messages become spans or log records, and how their fields become attributes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opentelemetry.semconv._incubating.attributes import messaging_attributes as semconv

from bridge.bus import Envelope
from bridge.messages import (
    SEVERITIES,
    TAGS,
    AccessLog,
    AccessViolation,
    ClusterMembership,
    DebugTrace,
    HealthCheck,
    LogEntry,
    Message,
    NodeHealth,
    NodeLifecycle,
    NotificationStatus,
    ProcessLifecycle,
    SystemAlert,
)
from bridge.sinks.otlp import LOG_TAGS, SPAN_TAGS, LogSpec, SpanSpec, mapping, translate
from bridge.sinks.otlp.mapping import (
    MAX_ARRAY_ITEMS,
    MAX_KEY_LENGTH,
    MAX_PAYLOAD_ATTRIBUTES,
    MAX_PAYLOAD_CHARACTERS,
    MAX_STRING_LENGTH,
    flatten_payload,
)

NOW = datetime(2026, 11, 28, 0, 0, 1, 500_000, tzinfo=UTC)
NOW_NS = 1_795_824_001_500_000_000


def envelope(message: Message, topic: str = "t", node: str = "node1") -> Envelope:
    return Envelope(
        "id-00000001", message.INSTANCE, topic, message.TAG, node, NOW, message, NOW.timestamp()
    )


def test_debug_trace_span_ends_at_its_timestamp_and_starts_duration_earlier() -> None:
    """A DebugTrace span is named by its operation and spans [timestamp - duration, timestamp]."""
    spec = translate(
        envelope(
            DebugTrace(
                trace_id="t1",
                component="c",
                operation="append",
                duration_ms=1.5,
                node="node1",
                timestamp=NOW,
            )
        )
    )
    assert isinstance(spec, SpanSpec)
    assert spec.name == "append"
    assert (spec.start_ns, spec.end_ns) == (NOW_NS - 1_500_000, NOW_NS)
    assert spec.attributes["exesdb.trace_id"] == "t1"


@pytest.mark.parametrize(
    ("result", "error", "status", "description"),
    [
        ("pass", None, "ok", None),
        ("fail", "disk full", "error", "disk full"),
        ("timeout", None, "error", "timeout"),
    ],
)
def test_health_check_status_follows_result(
    result: str, error: str | None, status: str, description: str | None
) -> None:
    """fail and timeout make an ERROR span with the error (or the result) as description."""
    spec = translate(
        envelope(
            HealthCheck(check_name="c", node="node1", result=result, duration_ms=2, error=error)
        )
    )
    assert isinstance(spec, SpanSpec)
    assert (spec.status, spec.status_description) == (status, description)


@pytest.mark.parametrize(
    ("level", "severity"),
    [("debug", 5), ("info", 9), ("warn", 13), ("error", 17), ("critical", 21)],
)
def test_log_entry_level_maps_to_severity_number(level: str, severity: int) -> None:
    """LogEntry levels map onto OpenTelemetry severity numbers."""
    spec = translate(envelope(LogEntry(level=level, message="hello", module="m", node="node1")))
    assert isinstance(spec, LogSpec)
    assert (spec.body, spec.severity_number) == ("hello", severity)
    assert "exesdb.message" not in spec.attributes


@pytest.mark.parametrize(
    ("message", "severity"),
    [
        (
            SystemAlert(
                severity="warning",
                category="system",
                title="t",
                description="d",
                source="s",
                node="n",
            ),
            13,
        ),
        (
            AccessViolation(
                violation_type="permission_denied",
                resource="r",
                action="a",
                source_ip="1.2.3.4",
                severity="critical",
            ),
            21,
        ),
        (NodeLifecycle(node="n2", event="down", cluster_size=3), 17),
        (NodeLifecycle(node="n2", event="joined", cluster_size=3), 9),
        (ProcessLifecycle(pid="<0.1.0>", module="m", event="crashed", node="n"), 17),
        (
            ClusterMembership(
                event="node_added",
                affected_nodes=["a"],
                active_nodes=["a"],
                quorum_status="lost",
                originating_node="n",
            ),
            17,
        ),
        (
            AccessLog(
                user_id="u",
                resource_type="stream",
                resource_id="s",
                action="read",
                success=False,
                duration_ms=1,
                node="n",
            ),
            13,
        ),
        (
            NotificationStatus(
                alert_id="a", delivery_method="email", recipient="ops@example.com", status="bounced"
            ),
            13,
        ),
    ],
)
def test_log_severity_fits_the_message(message: Message, severity: int) -> None:
    """Alerts, violations and lifecycle events get a severity matching what happened."""
    spec = translate(envelope(message))
    assert isinstance(spec, LogSpec)
    assert spec.severity_number == severity


def test_every_alert_severity_maps_to_a_level_of_its_own_rising_with_the_scale() -> None:
    """Each severity a SystemAlert may have (the whole scale, lowest first) becomes a log record
    at a level of its own, each above the one before, critical at FATAL."""
    levels = []
    for severity in SEVERITIES:
        alert = SystemAlert(
            severity=severity, category="system", title="t", description="d", source="s", node="n"
        )
        spec = translate(envelope(alert))
        assert isinstance(spec, LogSpec)
        levels.append(spec.severity_number)
    assert levels == sorted(set(levels))
    assert levels[-1] == 21


def test_webhook_delivery_span_hides_the_url_path() -> None:
    """A reported webhook attempt is a span whose recipient is shown as everywhere else: origin,
    a marker for the credentials and one for the path."""
    spec = translate(
        envelope(
            NotificationStatus(
                alert_id="a",
                delivery_method="webhook",
                recipient="https://user:pw@hooks.example.com:8443/T0/B1/secret?x=1",
                status="delivered",
            )
        )
    )
    assert isinstance(spec, SpanSpec)
    assert (spec.name, spec.status) == ("webhook delivery", "ok")
    assert spec.attributes["exesdb.recipient"] == "https://user:<redacted>@hooks.example.com:8443/…"
    assert spec.attributes["url.full"] == "https://REDACTED:REDACTED@hooks.example.com:8443/…"
    assert (spec.attributes["server.address"], spec.attributes["server.port"]) == (
        "hooks.example.com",
        8443,
    )
    assert "secret" not in repr(spec.attributes)
    assert "pw" not in repr(spec.attributes)


@pytest.mark.parametrize(
    ("status", "error_type"), [("delivered", None), ("failed", "_OTHER"), ("bounced", "_OTHER")]
)
def test_webhook_delivery_span_carries_the_http_client_conventions_it_can_know(
    status: str, error_type: str | None
) -> None:
    """A webhook delivery span has the HTTP client attributes a NotificationStatus can tell:
    POST, the receiver's origin as server.address/port and url.full, and on a failure the
    conventions' fallback error.type; no status code, which the message does not carry."""
    spec = translate(
        envelope(
            NotificationStatus(
                alert_id="a",
                delivery_method="webhook",
                recipient="http://hooks.example.com/T0/secret",
                status=status,
                error_reason="HTTP 503; will retry" if error_type else None,
            )
        )
    )
    assert isinstance(spec, SpanSpec)
    assert spec.attributes["http.request.method"] == "POST"
    assert spec.attributes["url.full"] == "http://hooks.example.com/…"
    assert (spec.attributes["server.address"], spec.attributes["server.port"]) == (
        "hooks.example.com",
        80,
    )
    assert spec.attributes.get("error.type") == error_type
    assert "http.response.status_code" not in spec.attributes


def test_webhook_delivery_span_to_a_url_with_an_at_past_its_host_names_no_server() -> None:
    """A recipient whose password may hold an unencoded ``/`` (an ``@`` past the host) is shown
    as safe_url shows it, without server.address, server.port or url.full, which may hold
    pieces of the password."""
    spec = translate(
        envelope(
            NotificationStatus(
                alert_id="a",
                delivery_method="webhook",
                recipient="https://u:pa@ss:12/word@hooks.example.com/x",
                status="failed",
            )
        )
    )
    assert isinstance(spec, SpanSpec)
    assert spec.attributes["exesdb.recipient"] == "https://<redacted>@…"
    assert not {"server.address", "server.port", "url.full"} & set(spec.attributes)


def test_webhook_delivery_span_to_a_receiver_key_has_no_server_address() -> None:
    """A recipient that is no URL (a url_file receiver's key) gives the method but no origin."""
    spec = translate(
        envelope(
            NotificationStatus(
                alert_id="a",
                delivery_method="webhook",
                recipient="url_file:/run/secrets/hook",
                status="failed",
            )
        )
    )
    assert isinstance(spec, SpanSpec)
    assert spec.attributes["http.request.method"] == "POST"
    assert spec.attributes["error.type"] == "_OTHER"
    assert not {"server.address", "server.port", "url.full"} & set(spec.attributes)


@pytest.mark.parametrize(
    "recipient",
    [
        "https:/alerts:hunter2@hooks.example.com/T0",
        "webhook+https://alerts:hunter2@hooks.example.com",
    ],
)
def test_webhook_delivery_span_to_a_mistyped_url_shows_no_password(recipient: str) -> None:
    """A recipient that is no http(s) URL but holds ``user:password@`` (a slash missing, an odd
    scheme) is shown with the password redacted, as the bridge's logs show it."""
    spec = translate(
        envelope(
            NotificationStatus(
                alert_id="a", delivery_method="webhook", recipient=recipient, status="failed"
            )
        )
    )
    assert isinstance(spec, SpanSpec)
    assert "<redacted>@hooks.example.com" in str(spec.attributes["exesdb.recipient"])
    assert "hunter2" not in repr(spec.attributes)


def test_webhook_delivery_span_to_a_url_urllib_cannot_split_is_recorded() -> None:
    """A recipient urllib refuses to split (an IPv6 host without its closing bracket) still
    gives a span, with no origin and no password, instead of an error in the sink."""
    spec = translate(
        envelope(
            NotificationStatus(
                alert_id="a",
                delivery_method="webhook",
                recipient="https://alerts:hunter2@[::1/hook",
                status="failed",
            )
        )
    )
    assert isinstance(spec, SpanSpec)
    assert not {"server.address", "server.port", "url.full"} & set(spec.attributes)
    assert "hunter2" not in repr(spec.attributes)


def test_every_tag_is_either_exported_or_deliberately_left_to_prometheus() -> None:
    """The mapping covers 24 of the 36 types; the rest are metrics and state, left to Prometheus."""
    left_out = set(TAGS) - SPAN_TAGS - LOG_TAGS
    assert left_out == {
        "system_config_changed",
        "feature_toggle_changed",
        "node_health_updated",
        "cluster_health_updated",
        "component_health_updated",
        "performance_metric",
        "throughput_metric",
        "latency_metric",
        "resource_usage",
        "system_state",
        "log_summary",
        "log_filter_updated",
        "log_rotation",
    }
    assert translate(envelope(NodeHealth(node="node1", status="healthy"))) is None


def test_envelope_attributes_and_a_differing_payload_node() -> None:
    """Records carry the envelope's instance, topic, tag and node; a differing payload node too."""
    spec = translate(
        envelope(LogEntry(level="info", message="x", module="m", node="other"), topic="logs")
    )
    assert spec is not None
    assert {
        key: spec.attributes[key]
        for key in ("exesdb.instance", "exesdb.topic", "exesdb.tag", "exesdb.node")
    } == {
        "exesdb.instance": "ex_esdb_logging",
        "exesdb.topic": "logs",
        "exesdb.tag": "log_entry",
        "exesdb.node": "node1",
    }
    assert spec.attributes["exesdb.payload.node"] == "other"


def test_flattening_bounds_strings_arrays_depth_and_count() -> None:
    """Long strings are cut, arrays capped, deep or mixed values JSON, extra fields counted."""
    payload = {
        "long": "x" * 5000,
        "items": list(range(100)),
        "mixed": [1, "a", None],
        "deep": {"a": {"b": {"c": {"d": 1}}}},
        "huge": 2**70,
        "many": {f"k{i}": i for i in range(200)},
    }
    attributes = flatten_payload(payload)
    assert len(str(attributes["exesdb.long"])) == MAX_STRING_LENGTH
    assert str(attributes["exesdb.long"]).endswith("…")
    assert attributes["exesdb.items"] == tuple(range(MAX_ARRAY_ITEMS))
    assert attributes["exesdb.mixed"] == '[1,"a",null]'
    assert attributes["exesdb.deep.a.b"] == '{"c":{"d":1}}'
    assert attributes["exesdb.huge"] == str(2**70)
    assert len(attributes) == MAX_PAYLOAD_ATTRIBUTES + 1
    assert attributes["exesdb.attributes_dropped"] == 200 + 5 - MAX_PAYLOAD_ATTRIBUTES


def test_flattening_bounds_the_text_all_attributes_hold_together() -> None:
    """Attributes each within the bounds still hold at most MAX_PAYLOAD_CHARACTERS of text in
    all: the strings past it, and an array of 32 long strings (more than all of it), are
    counted in exesdb.attributes_dropped, so a record queued for a collector that does not
    answer holds kilobytes, not the 2 MB that 30 such arrays made one."""
    strings = flatten_payload({"metadata": {f"k{n:02}": "x" * 2000 for n in range(20)}})
    kept = MAX_PAYLOAD_CHARACTERS // MAX_STRING_LENGTH
    assert [key for key in strings if key != "exesdb.attributes_dropped"] == [
        f"exesdb.metadata.k{n:02}" for n in range(kept)
    ]
    assert strings["exesdb.attributes_dropped"] == 20 - kept
    arrays = flatten_payload({"metadata": {f"k{n}": ["x" * 1030] * 32 for n in range(30)}})
    assert arrays == {"exesdb.attributes_dropped": 30}
    mixed = flatten_payload({"count": 3, "flags": [True, False], "metadata": {"a": "x" * 5000}})
    assert mixed["exesdb.count"] == 3
    assert mixed["exesdb.flags"] == (True, False)
    assert len(str(mixed["exesdb.metadata.a"])) == MAX_STRING_LENGTH


def test_an_attribute_past_the_text_left_is_dropped_and_a_shorter_one_after_it_kept() -> None:
    """The text bound drops the attribute that would pass it, not all that follow: a short
    one after a dropped array of long strings is still kept."""
    attributes = flatten_payload({"a": ["x" * 1000] * 9, "b": "short", "c": 7})
    assert attributes == {"exesdb.b": "short", "exesdb.c": 7, "exesdb.attributes_dropped": 1}


def test_an_attribute_whose_cut_key_another_has_is_dropped_not_put_over_it() -> None:
    """Two keys alike in their first MAX_KEY_LENGTH characters, cut to one (or ``a.b`` and
    ``a``'s ``b``): the first keeps it, the second is counted in exesdb.attributes_dropped, and
    its text is not counted against MAX_PAYLOAD_CHARACTERS (it would have replaced the first
    value, its text counted twice)."""
    stem = "k" * MAX_KEY_LENGTH
    text = "x" * MAX_STRING_LENGTH
    others = {f"c{n}": text for n in range(MAX_PAYLOAD_CHARACTERS // MAX_STRING_LENGTH - 1)}
    attributes = flatten_payload(
        {"metadata": {f"{stem}1": text, f"{stem}2": text}, "a.b": 1, "a": {"b": 2}, **others}
    )
    [cut] = [key for key in attributes if key.startswith("exesdb.metadata.k")]
    assert len(cut) == MAX_KEY_LENGTH
    assert attributes == {
        cut: text,
        "exesdb.a.b": 1,
        **{f"exesdb.{key}": value for key, value in others.items()},
        "exesdb.attributes_dropped": 2,
    }


def test_a_whole_number_past_int64_travels_as_text_cut_as_a_string_is() -> None:
    """A payload's whole number no OTLP int holds (past 2^63 - 1, up to the 4 300 digits JSON
    parsing takes) travels as text, cut to MAX_STRING_LENGTH as any string is: not 3 001
    characters of one attribute."""
    attributes = flatten_payload({"metadata": {"big": 10**3000, "small": -(2**63)}})
    assert len(str(attributes["exesdb.metadata.big"])) == MAX_STRING_LENGTH
    assert str(attributes["exesdb.metadata.big"]).startswith("1000")
    assert attributes["exesdb.metadata.small"] == -(2**63)
    assert "exesdb.attributes_dropped" not in attributes


@pytest.mark.parametrize(
    "message",
    [
        LogEntry(level="info", message="x", module="m", node="node1"),
        NodeLifecycle(node="node2", event="down", cluster_size=2),
        NotificationStatus(
            alert_id="a", delivery_method="webhook", recipient="https://h", status="sent"
        ),
    ],
    ids=lambda message: message.TAG,
)
def test_every_record_carries_the_messaging_conventions(message: Message) -> None:
    """Spans and log records name the system, the bus instance as destination, the operation
    and the envelope id as OpenTelemetry's messaging conventions do."""
    spec = translate(envelope(message))
    assert spec is not None
    assert {
        key: value for key, value in spec.attributes.items() if key.startswith("messaging.")
    } == {
        "messaging.system": "exesdb",
        "messaging.destination.name": message.INSTANCE,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.message.id": "id-00000001",
    }


def test_the_messaging_names_are_the_semantic_conventions_current_ones() -> None:
    """The messaging names written out in the mapping are the current (incubating) constants of
    opentelemetry-semantic-conventions, and ``process`` is an operation type it defines, not one
    of the deprecated ones (``deliver``, ``publish``)."""
    assert mapping.MESSAGING_SYSTEM == semconv.MESSAGING_SYSTEM
    assert mapping.MESSAGING_DESTINATION_NAME == semconv.MESSAGING_DESTINATION_NAME
    assert mapping.MESSAGING_OPERATION_TYPE == semconv.MESSAGING_OPERATION_TYPE
    assert mapping.MESSAGING_OPERATION_NAME == semconv.MESSAGING_OPERATION_NAME
    assert mapping.MESSAGING_MESSAGE_ID == semconv.MESSAGING_MESSAGE_ID
    assert semconv.MessagingOperationTypeValues.PROCESS.value == "process"
