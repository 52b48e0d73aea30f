"""``ex_esdb_metrics``: performance, throughput, latency, resource usage and metric alerts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from bridge.messages._base import BOOLEANS_APART, JsonMap, Label, Message, NodeLabel, NonNegInt

__all__ = [
    "LatencyMetric",
    "MetricAlert",
    "PerformanceMetric",
    "ResourceUsage",
    "ThroughputMetric",
]

INSTANCE: Final = "ex_esdb_metrics"

NonNegFloat = Annotated[float, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Percentile = Literal["p50", "p95", "p99", "max", "min", "avg"]
ResourceType = Literal["cpu", "memory", "disk", "network"]

# Each reads a value as the field does (BOOLEANS_APART: "1e2" is 100, " 10 " is refused), so a
# rate is derived from the very values the fields take.
_COUNT: Final = TypeAdapter(Annotated[NonNegInt, BOOLEANS_APART])
_DURATION: Final = TypeAdapter(Annotated[PositiveFloat, BOOLEANS_APART])
_ANY_FLOAT: Final = TypeAdapter(Annotated[float, Field(allow_inf_nan=True), BOOLEANS_APART])


class PerformanceMetric(Message):
    """One named measurement of a component."""

    TAG: ClassVar[str] = "performance_metric"
    INSTANCE: ClassVar[str] = INSTANCE

    metric_name: Label
    value: float
    unit: Label
    node: NodeLabel
    component: Label
    tags: JsonMap = Field(default_factory=dict)


class ThroughputMetric(Message):
    """How many operations ran in a time span; the rate is derived when not given."""

    TAG: ClassVar[str] = "throughput_metric"
    INSTANCE: ClassVar[str] = INSTANCE
    DERIVED: ClassVar[tuple[str, ...]] = ("rate_per_sec",)

    operation: Label
    count: NonNegInt
    duration_ms: PositiveFloat
    # Filled by _default_rate from count and duration_ms; 0.0 only stands when those are invalid,
    # and then validation fails on them anyway. Infinite when derived from a subnormal duration
    # (see _rate), so the one float field that takes an infinity (NaN still fails ge=0); a given
    # one must be finite (_default_rate here, Message.wire_schema on the envelope's fast paths).
    rate_per_sec: Annotated[float, Field(ge=0, allow_inf_nan=True)] = 0.0
    node: NodeLabel

    @model_validator(mode="before")
    @classmethod
    def _default_rate(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = data.get("rate_per_sec")
        if given is not None:
            _check_finite(given)
            return data
        try:
            # The same coercion the fields apply, so "10" and 10 give the same rate.
            count = _COUNT.validate_python(data.get("count"))
            duration_ms = _DURATION.validate_python(data.get("duration_ms"))
        except ValidationError:
            return data
        return {**data, "rate_per_sec": _rate(count, duration_ms)}

    @classmethod
    def _derived(cls, fields: Any, missing: Sequence[str], node: str) -> dict[str, Any]:
        values = super()._derived(fields, missing, node)
        if "rate_per_sec" in missing:
            values["rate_per_sec"] = _rate(fields.count, fields.duration_ms)
        return values


def _check_finite(rate: Any) -> None:
    """Refuse a given rate that reads as an infinity ("inf", 1e400 as text, float("inf")) at
    its field: only a derived rate may be infinite."""
    if type(rate) is int or (type(rate) is float and math.isfinite(rate)):
        return
    try:
        value = _ANY_FLOAT.validate_python(rate)
    except ValidationError:
        return  # not a number at all: the field says so
    if not math.isfinite(value):
        raise ValidationError.from_exception_data(
            "ThroughputMetric",
            [InitErrorDetails(type="finite_number", loc=("rate_per_sec",), input=rate)],
        )


def _rate(count: int, duration_ms: float) -> float:
    seconds = duration_ms / 1000
    # A subnormal duration (positive, as the contract asks) is 0.0 once divided: the rate is
    # then as a float has it (infinite), as it already is for a duration a little longer.
    return count / seconds if seconds else count * 1000 / duration_ms


class LatencyMetric(Message):
    """One latency percentile of an operation."""

    TAG: ClassVar[str] = "latency_metric"
    INSTANCE: ClassVar[str] = INSTANCE

    operation: Label
    latency_ms: NonNegFloat
    percentile: Percentile
    sample_count: NonNegInt
    node: NodeLabel


class ResourceUsage(Message):
    """How much of a node's CPU, memory, disk or network is in use."""

    TAG: ClassVar[str] = "resource_usage"
    INSTANCE: ClassVar[str] = INSTANCE

    resource_type: ResourceType
    usage_percent: Annotated[float, Field(ge=0, le=100)]
    total_available: NonNegFloat
    current_used: NonNegFloat
    node: NodeLabel


class MetricAlert(Message):
    """A metric crossed its threshold."""

    TAG: ClassVar[str] = "metric_alert"
    INSTANCE: ClassVar[str] = INSTANCE

    metric_name: Label
    current_value: float
    threshold_value: float
    threshold_type: Literal["min", "max"]
    severity: Literal["warning", "critical"]
    node: NodeLabel
