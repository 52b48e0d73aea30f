"""What the message models refuse, naming the field: a value outside an enum or a range, a missing
or unknown field, a wrong type, an unreadable timestamp or one past the years UTC holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.messages import (
    AccessViolation,
    AlertAck,
    ClusterHealth,
    HealthCheck,
    LatencyMetric,
    LogSummary,
    Message,
    ResourceUsage,
    SystemConfig,
    SystemState,
    ThroughputMetric,
)
from tests.messages.helpers import ALL_MODELS, CASES, NODE, WITH_ENUMS, build, error_locations


@pytest.mark.parametrize("model", WITH_ENUMS, ids=lambda m: m.__name__)
def test_rejects_value_outside_enum(model: type[Message]) -> None:
    """An enum field refuses a value the catalog does not list."""
    case = CASES[model]
    assert case.bad_enum is not None
    field, value = case.bad_enum
    with pytest.raises(ValidationError) as exc:
        build(model, {**case.minimal, field: value})
    assert error_locations(exc) == {field}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_rejects_missing_required_field(model: type[Message]) -> None:
    """Leaving out a required field fails, naming that field."""
    case = CASES[model]
    payload = {key: value for key, value in case.minimal.items() if key != case.required}
    assert payload != case.minimal, "the required field must be in the minimal payload"
    with pytest.raises(ValidationError) as exc:
        build(model, payload)
    assert case.required in error_locations(exc)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_rejects_wrong_type(model: type[Message]) -> None:
    """A value of the wrong type fails, naming only that field."""
    case = CASES[model]
    field, value = case.bad_type
    with pytest.raises(ValidationError) as exc:
        build(model, {**case.minimal, field: value})
    assert error_locations(exc) == {field}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_rejects_unknown_field(model: type[Message]) -> None:
    """A field the catalog does not define is refused, not dropped."""
    with pytest.raises(ValidationError) as exc:
        build(model, {**CASES[model].minimal, "surprise": 1})
    assert error_locations(exc) == {"surprise"}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("field", ["timestamp"])
def test_rejects_unparseable_timestamp(model: type[Message], field: str) -> None:
    """Every model's timestamp refuses a value that is not a date and time."""
    with pytest.raises(ValidationError) as exc:
        build(model, {**CASES[model].minimal, field: "not a time"})
    assert error_locations(exc) == {field}


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_rejects_timestamp_outside_the_years_utc_holds(model: type[Message], value: str) -> None:
    """A timestamp whose offset puts it before year 1 or after 9999 in UTC is refused as a
    ValidationError naming the field (its conversion overflowed: an error no caller expects)."""
    with pytest.raises(ValidationError) as exc:
        build(model, {**CASES[model].minimal, "timestamp": value})
    assert error_locations(exc) == {"timestamp"}


# What pydantic's datetime alone reads but an RFC 3339 date-time with seconds is not: a Unix time
# in seconds or milliseconds (a number, or text), a bare date, a time without seconds, a bool.
NOT_RFC3339: list[Any] = [
    0,
    "0",
    1764288000,
    "1764288000",
    1764288000123,
    1764288000.5,
    "2026-11-28",
    "2026-11-28T00:00",
    "2026-11-28T00:00+02:00",
    True,
]


@pytest.mark.parametrize("value", NOT_RFC3339, ids=repr)
@pytest.mark.parametrize("field", ["timestamp", "ack_timestamp", "alert_starts_at"])
def test_rejects_a_timestamp_not_an_rfc3339_date_time(value: Any, field: str) -> None:
    """A timestamp field refuses a Unix time, a bare date or a time without seconds, from a
    dict (as the reference decoder gives it) and from JSON, naming the field."""
    payload = {**CASES[AlertAck].minimal, field: value}
    with pytest.raises(ValidationError) as exc:
        build(AlertAck, payload)
    assert error_locations(exc) == {field}
    with pytest.raises(ValidationError) as exc:
        AlertAck.model_validate_json(json.dumps(payload))
    assert error_locations(exc) == {field}
    assert "RFC 3339" in exc.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    ("value", "instant"),
    [
        ("2026-11-28T00:00:00Z", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28T02:00:00.123456+02:00", datetime(2026, 11, 28, 0, 0, 0, 123000, UTC)),
        ("2026-11-28T00:00:00", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28t00:00:00.5z", datetime(2026, 11, 28, 0, 0, 0, 500000, UTC)),
        ("2026-11-28 00:00:00.123456789Z", datetime(2026, 11, 28, 0, 0, 0, 123000, UTC)),
        (datetime(2026, 11, 28), datetime(2026, 11, 28, tzinfo=UTC)),
        (
            datetime(2026, 11, 28, 2, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 11, 28, tzinfo=UTC),
        ),
    ],
    ids=repr,
)
def test_an_rfc3339_date_time_or_a_datetime_is_taken_as_its_instant(
    value: Any, instant: datetime
) -> None:
    """RFC 3339 date-times with seconds (a fraction, an offset, none: UTC) and datetime objects
    (the integration API's) are taken as the instant they name, in UTC to the millisecond."""
    payload = {**CASES[AlertAck].minimal, "timestamp": value}
    assert build(AlertAck, payload).timestamp == instant
    if isinstance(value, str):
        assert AlertAck.model_validate_json(json.dumps(payload)).timestamp == instant


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_a_number_field_refuses_a_bool_and_takes_text(model: type[Message]) -> None:
    """Each int or float field refuses true and false, from a dict (the integration API's, the
    reference decoder's) and from JSON, naming the field, where pydantic's lax number reads 1
    and 0; the number given as text is taken, as the docs promise."""
    case = CASES[model]
    for name, value in case.full.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        for given in (True, False):
            payload = {**case.full, name: given}
            with pytest.raises(ValidationError) as exc:
                build(model, payload)
            assert error_locations(exc) == {name}, given
            if "node" in model.model_fields:  # JSON has no context to give it
                payload = {"node": NODE, **payload}
            with pytest.raises(ValidationError) as exc:
                model.model_validate_json(json.dumps(payload))
            assert error_locations(exc) == {name}, given
        assert getattr(build(model, {**case.full, name: str(value)}), name) == value


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_a_boolean_field_takes_true_and_false_alone(model: type[Message]) -> None:
    """Each boolean field refuses text and numbers, from a dict (the integration API's, the
    reference decoder's) and from JSON, naming the field and saying it takes true or false,
    where pydantic's lax bool reads "yes", "0", 1 and the like."""
    case = CASES[model]
    for name, value in case.full.items():
        if type(value) is not bool:
            continue
        for given in ("true", "no", "1", 1, 0, 1.0):
            payload = {**case.full, name: given}
            with pytest.raises(ValidationError) as exc:
                build(model, payload)
            assert [(e["loc"], e["msg"]) for e in exc.value.errors()] == [
                ((name,), "Input should be a boolean, true or false")
            ], given
            if "node" in model.model_fields:  # JSON has no context to give it
                payload = {"node": NODE, **payload}
            with pytest.raises(ValidationError) as exc:
                model.model_validate_json(json.dumps(payload))
            assert error_locations(exc) == {name}, given
        assert getattr(build(model, {**case.full, name: not value}), name) is (not value)


def test_a_count_in_a_log_summary_refuses_a_bool() -> None:
    """A number inside a field (log_counts' values) refuses a bool too."""
    payload = {**CASES[LogSummary].minimal, "log_counts": {"error": True}}
    with pytest.raises(ValidationError) as exc:
        build(LogSummary, payload)
    assert error_locations(exc) == {"log_counts"}


@pytest.mark.parametrize("model", [ClusterHealth, AlertAck, AccessViolation])
def test_payloads_documented_without_node_refuse_one(model: type[Message]) -> None:
    """A payload the catalog documents with no node field has none and refuses one."""
    assert "node" not in model.model_fields
    with pytest.raises(ValidationError):
        build(model, {**CASES[model].minimal, "node": NODE})


@pytest.mark.parametrize("usage", [-0.1, 100.1, 250])
def test_resource_usage_refuses_percent_outside_0_to_100(usage: float) -> None:
    """usage_percent must lie in 0..100."""
    with pytest.raises(ValidationError):
        build(ResourceUsage, {**CASES[ResourceUsage].minimal, "usage_percent": usage})


@pytest.mark.parametrize("usage", [0, 100])
def test_resource_usage_accepts_percent_bounds(usage: float) -> None:
    """usage_percent accepts 0 and 100 themselves."""
    message = build(ResourceUsage, {**CASES[ResourceUsage].minimal, "usage_percent": usage})
    assert isinstance(message, ResourceUsage)
    assert message.usage_percent == usage


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (ThroughputMetric, "duration_ms", 0),
        (ThroughputMetric, "count", -1),
        (HealthCheck, "duration_ms", -1),
        (LatencyMetric, "latency_ms", -0.5),
        (ClusterHealth, "healthy_nodes", -1),
        (ClusterHealth, "healthy_nodes", 4),
        (ClusterHealth, "degraded_count", -1),
        (SystemState, "memory_usage", -1),
        (LogSummary, "log_counts", {"info": -1}),
        (SystemConfig, "component", ""),
    ],
)
def test_rejects_out_of_range_value(model: type[Message], field: str, value: Any) -> None:
    """Numbers outside their documented range and empty required strings are refused."""
    with pytest.raises(ValidationError):
        build(model, {**CASES[model].minimal, field: value})


@pytest.mark.parametrize("kind", ["degraded", "unhealthy"])
def test_cluster_health_refuses_a_count_below_the_nodes_its_list_names(kind: str) -> None:
    """``degraded_count`` (``unhealthy_count``) counts at least the nodes its list names; the
    error names the count."""
    payload = {**CASES[ClusterHealth].minimal, f"{kind}_nodes": ["a", "b"], f"{kind}_count": 1}
    with pytest.raises(ValidationError, match=f"{kind}_count must be >= the nodes"):
        build(ClusterHealth, payload)
    assert (
        build(ClusterHealth, {**payload, f"{kind}_count": 2000}).model_dump()[f"{kind}_count"]
        == 2000
    )
