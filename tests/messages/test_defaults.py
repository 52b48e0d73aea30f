"""What the message models fill in: the node from the envelope's context, ids, documented defaults,
values derived from others, and timestamps of now written as RFC 3339."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

import bridge.messages as messages
from bridge.messages import (
    AlertAck,
    ClusterMembership,
    ErrorAnalysis,
    LogEntry,
    LogSummary,
    Message,
    SystemAlert,
    ThroughputMetric,
)
from tests.messages.helpers import (
    ALL_MODELS,
    CASES,
    ID_DEFAULTS,
    NODE,
    STATIC_DEFAULTS,
    TS,
    WITH_NODE,
    build,
    error_locations,
    recent,
)


@pytest.mark.parametrize("model", WITH_NODE, ids=lambda m: m.__name__)
def test_node_defaults_to_context_node(model: type[Message]) -> None:
    """A payload without node takes the envelope's node from the validation context."""
    assert build(model, CASES[model].minimal).model_dump()["node"] == NODE


@pytest.mark.parametrize("model", WITH_NODE, ids=lambda m: m.__name__)
def test_payload_node_wins_over_context_node(model: type[Message]) -> None:
    """A node given in the payload is kept even when the context has another."""
    message = build(model, {**CASES[model].minimal, "node": "other@host"})
    assert message.model_dump()["node"] == "other@host"


@pytest.mark.parametrize("model", WITH_NODE, ids=lambda m: m.__name__)
def test_node_is_required_without_context(model: type[Message]) -> None:
    """Without a context node, a payload lacking node is refused."""
    with pytest.raises(ValidationError) as exc:
        build(model, CASES[model].minimal, node=None)
    assert "node" in error_locations(exc)


@pytest.mark.parametrize(("model", "field", "prefix"), ID_DEFAULTS)
def test_ids_default_to_prefix_and_16_hex(model: type[Message], field: str, prefix: str) -> None:
    """A generated id is its prefix plus 16 lowercase hex characters, new for each message."""
    first = getattr(build(model, CASES[model].minimal), field)
    second = getattr(build(model, CASES[model].minimal), field)
    assert re.fullmatch(re.escape(prefix) + "[0-9a-f]{16}", first)
    assert first != second


@pytest.mark.parametrize(("model", "field", "expected"), STATIC_DEFAULTS)
def test_documented_default(model: type[Message], field: str, expected: Any) -> None:
    """An omitted field takes the default docs/messages.md documents."""
    assert getattr(build(model, CASES[model].minimal), field) == expected


def test_throughput_rate_is_computed_from_count_and_duration() -> None:
    """rate_per_sec defaults to count / (duration_ms / 1000)."""
    message = build(ThroughputMetric, {"operation": "append", "count": 10, "duration_ms": 500})
    assert isinstance(message, ThroughputMetric)
    assert message.rate_per_sec == 20.0


def test_throughput_rate_uses_coerced_inputs() -> None:
    """The computed rate uses the same coercion as the fields, so numeric strings work."""
    message = ThroughputMetric.model_validate_json(
        '{"operation": "append", "count": "30", "duration_ms": "1500", "node": "n@h"}'
    )
    assert message.rate_per_sec == 20.0


@pytest.mark.parametrize("duration_ms", [5e-324, 1e-306])
def test_throughput_rate_of_a_vanishing_duration_is_infinite(duration_ms: float) -> None:
    """A positive duration too small for a float rate (subnormal, or near it) gives an infinite
    rate, not an error: the decoder would otherwise fail on a valid message."""
    payload = {"operation": "append", "count": 10, "duration_ms": duration_ms}
    message = build(ThroughputMetric, payload)
    assert isinstance(message, ThroughputMetric)
    assert message.rate_per_sec == float("inf")


def test_throughput_rate_given_is_kept() -> None:
    """A given rate_per_sec is kept even when it disagrees with count and duration."""
    payload = {"operation": "append", "count": 10, "duration_ms": 500, "rate_per_sec": 7}
    message = build(ThroughputMetric, payload)
    assert isinstance(message, ThroughputMetric)
    assert message.rate_per_sec == 7.0


@pytest.mark.parametrize(
    ("severity", "requires_ack"),
    [("info", False), ("warning", False), ("error", True), ("critical", True)],
)
def test_system_alert_requires_ack_follows_severity(severity: str, requires_ack: bool) -> None:
    """requires_ack defaults to true for error and critical alerts, false otherwise."""
    message = build(SystemAlert, {**CASES[SystemAlert].minimal, "severity": severity})
    assert isinstance(message, SystemAlert)
    assert message.requires_ack is requires_ack


@pytest.mark.parametrize(("severity", "given"), [("critical", False), ("info", True)])
def test_system_alert_requires_ack_given_is_kept(severity: str, given: bool) -> None:
    """A given requires_ack overrides the severity-based default."""
    payload = {**CASES[SystemAlert].minimal, "severity": severity, "requires_ack": given}
    message = build(SystemAlert, payload)
    assert isinstance(message, SystemAlert)
    assert message.requires_ack is given


def test_cluster_membership_total_defaults_to_active_count() -> None:
    """total_nodes defaults to the number of active nodes."""
    message = build(ClusterMembership, CASES[ClusterMembership].minimal)
    assert isinstance(message, ClusterMembership)
    assert message.total_nodes == 2


def test_cluster_membership_total_given_is_kept() -> None:
    """A given total_nodes is kept."""
    message = build(ClusterMembership, {**CASES[ClusterMembership].minimal, "total_nodes": 5})
    assert isinstance(message, ClusterMembership)
    assert message.total_nodes == 5


def test_cluster_membership_originating_node_defaults_to_context_node() -> None:
    """originating_node defaults to the envelope's node."""
    message = build(ClusterMembership, CASES[ClusterMembership].minimal)
    assert isinstance(message, ClusterMembership)
    assert message.originating_node == NODE


def test_cluster_membership_originating_node_required_without_context() -> None:
    """Without a context node, originating_node must be given."""
    with pytest.raises(ValidationError) as exc:
        build(ClusterMembership, CASES[ClusterMembership].minimal, node=None)
    assert error_locations(exc) == {"originating_node"}


def test_log_summary_total_defaults_to_sum_of_counts() -> None:
    """total_logs defaults to the sum of log_counts."""
    payload = {"time_period": "last_hour", "log_counts": {"info": 7, "warn": 2, "error": 1}}
    message = build(LogSummary, payload)
    assert isinstance(message, LogSummary)
    assert message.total_logs == 10


def test_log_summary_total_is_zero_without_counts() -> None:
    """With no log_counts, total_logs defaults to 0."""
    message = build(LogSummary, CASES[LogSummary].minimal)
    assert isinstance(message, LogSummary)
    assert message.log_counts == {}
    assert message.total_logs == 0


def test_log_summary_nodes_reporting_defaults_to_context_node() -> None:
    """nodes_reporting defaults to [the envelope's node]."""
    message = build(LogSummary, CASES[LogSummary].minimal)
    assert isinstance(message, LogSummary)
    assert message.nodes_reporting == [NODE]


def test_log_summary_nodes_reporting_empty_without_context() -> None:
    """Without a context node, nodes_reporting defaults to []."""
    message = build(LogSummary, CASES[LogSummary].minimal, node=None)
    assert isinstance(message, LogSummary)
    assert message.nodes_reporting == []


def test_alert_ack_timestamp_defaults_to_now() -> None:
    """ack_timestamp defaults to the current time."""
    message = build(AlertAck, CASES[AlertAck].minimal)
    assert isinstance(message, AlertAck)
    assert recent(message.ack_timestamp)


def test_error_analysis_seen_times_default_to_one_now() -> None:
    """first_seen and last_seen both default to the same current time."""
    message = build(ErrorAnalysis, CASES[ErrorAnalysis].minimal)
    assert isinstance(message, ErrorAnalysis)
    assert recent(message.first_seen)
    assert message.first_seen == message.last_seen


def test_error_analysis_last_seen_defaults_to_now_when_first_seen_given() -> None:
    """With only first_seen given, last_seen defaults to now."""
    message = build(ErrorAnalysis, {**CASES[ErrorAnalysis].minimal, "first_seen": TS})
    assert isinstance(message, ErrorAnalysis)
    assert message.first_seen == datetime(2026, 11, 28, 0, 0, 0, 123000, tzinfo=UTC)
    assert recent(message.last_seen)


def test_timestamp_defaults_to_now_at_millisecond_precision() -> None:
    """The timestamp every model carries is now, truncated to the millisecond, in UTC."""
    message = build(LogEntry, CASES[LogEntry].minimal)
    assert recent(message.timestamp)
    assert message.timestamp.tzinfo is UTC
    assert message.timestamp.microsecond % 1000 == 0


@pytest.mark.parametrize(
    ("moment", "written"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "0999-12-31T23:59:59.999Z"),
        (datetime(2026, 11, 28, 0, 0, 0, 123000, tzinfo=UTC), "2026-11-28T00:00:00.123Z"),
        (datetime(9999, 12, 31, tzinfo=UTC), "9999-12-31T00:00:00.000Z"),
    ],
)
def test_a_timestamp_of_any_year_is_written_as_rfc_3339_and_read_back(
    moment: datetime, written: str
) -> None:
    """Every year a timestamp holds is written with four digits, as RFC 3339 (and Go, and
    Alertmanager, which refuse the whole post of a time they cannot parse) require, and a
    message written so is read back as it was."""
    assert messages.format_timestamp(moment) == written
    message = build(LogEntry, {**CASES[LogEntry].minimal, "timestamp": written})
    assert message.timestamp == moment


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_a_model_with_a_before_validator_names_the_fields_it_derives(model: type[Message]) -> None:
    """A model has a before-validator exactly when it names DERIVED fields (its only job)."""
    befores = [
        decorator
        for decorator in model.__pydantic_decorators__.model_validators.values()
        if decorator.info.mode == "before"
    ]
    assert bool(befores) == bool(model.DERIVED)
    assert set(model.DERIVED) <= set(model.model_fields)
