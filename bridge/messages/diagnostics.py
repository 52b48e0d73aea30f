"""``ex_esdb_diagnostics``: debug traces, performance analyses, state snapshots and errors."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from bridge.messages._base import (
    JsonMap,
    Label,
    Message,
    NodeLabel,
    NonNegInt,
    Text,
    Timestamp,
    random_hex,
    utc_now,
)
from bridge.messages.alerts import RiskSeverity

__all__ = ["DebugTrace", "ErrorAnalysis", "PerformanceAnalysis", "SystemState"]

INSTANCE: Final = "ex_esdb_diagnostics"

AnalysisType = Literal["bottleneck", "memory_leak", "cpu_hotspot", "io_analysis"]
SnapshotType = Literal["full", "partial", "process_tree", "memory_dump"]


class DebugTrace(Message):
    """A trace of one operation in a component."""

    TAG: ClassVar[str] = "debug_trace"
    INSTANCE: ClassVar[str] = INSTANCE

    trace_id: Text = Field(default_factory=partial(random_hex, "trace_"))
    component: Label
    operation: Text
    trace_data: JsonMap = Field(default_factory=dict)
    stack_trace: list[Any] | None = None
    duration_ms: Annotated[float, Field(ge=0)] | None = None
    node: NodeLabel
    metadata: JsonMap = Field(default_factory=dict)


class PerformanceAnalysis(Message):
    """Findings and recommendations about a component's performance."""

    TAG: ClassVar[str] = "performance_analysis"
    INSTANCE: ClassVar[str] = INSTANCE

    analysis_id: Text = Field(default_factory=partial(random_hex, "analysis_"))
    component: Label
    analysis_type: AnalysisType
    findings: JsonMap = Field(default_factory=dict)
    recommendations: list[str] = Field(default_factory=list)
    severity: RiskSeverity = "medium"
    node: NodeLabel


class SystemState(Message):
    """A snapshot of a node's state."""

    TAG: ClassVar[str] = "system_state"
    INSTANCE: ClassVar[str] = INSTANCE

    snapshot_id: Text = Field(default_factory=partial(random_hex, "snapshot_"))
    snapshot_type: SnapshotType
    state_data: JsonMap = Field(default_factory=dict)
    process_count: NonNegInt
    memory_usage: NonNegInt
    node: NodeLabel
    trigger_reason: Text


class ErrorAnalysis(Message):
    """A recurring error, how often it was seen and when.

    ``first_seen`` and ``last_seen`` default to one shared "now", so a fresh error never looks
    as if it was last seen before it was first seen.
    """

    TAG: ClassVar[str] = "error_analysis"
    INSTANCE: ClassVar[str] = INSTANCE
    DERIVED: ClassVar[tuple[str, ...]] = ("first_seen", "last_seen")

    error_id: Text = Field(default_factory=partial(random_hex, "error_"))
    error_type: Label
    error_message: Text
    stack_trace: list[Any] = Field(default_factory=list)
    context: JsonMap = Field(default_factory=dict)
    frequency: NonNegInt = 1
    first_seen: Timestamp = Field(default_factory=utc_now)
    last_seen: Timestamp = Field(default_factory=utc_now)
    node: NodeLabel

    @model_validator(mode="before")
    @classmethod
    def _default_seen(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        missing = [key for key in ("first_seen", "last_seen") if data.get(key) is None]
        if not missing:
            return data
        now = utc_now()
        return {**data, **dict.fromkeys(missing, now)}

    @classmethod
    def _derived(cls, fields: Any, missing: Sequence[str], node: str) -> dict[str, Any]:
        values = super()._derived(fields, missing, node)
        seen = [name for name in ("first_seen", "last_seen") if name in missing]
        if seen:
            values.update(dict.fromkeys(seen, utc_now()))
        return values
