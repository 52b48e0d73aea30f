"""``ex_esdb_logging``: log entries, summaries, filters and rotations.

Named ``logs`` so that it never shadows the standard library's ``logging``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, TypeAdapter, ValidationError, ValidationInfo, model_validator

from bridge.messages._base import (
    BOOLEANS_APART,
    JsonMap,
    Label,
    Message,
    NodeLabel,
    NonNegInt,
    Text,
    random_hex,
)

__all__ = ["LogEntry", "LogFilter", "LogRotation", "LogSummary"]

INSTANCE: Final = "ex_esdb_logging"

LogLevel = Literal["debug", "info", "warn", "error", "critical"]
FilterType = Literal["level", "module", "pattern", "node"]
FilterAction = Literal["include", "exclude", "rate_limit"]
LogCounts = dict[LogLevel, NonNegInt]

# Reads the counts as the field does (BOOLEANS_APART: "1e2" is 100), so the total is theirs.
_LOG_COUNTS: Final = TypeAdapter(Annotated[LogCounts, BOOLEANS_APART])


class LogEntry(Message):
    """One log line."""

    TAG: ClassVar[str] = "log_entry"
    INSTANCE: ClassVar[str] = INSTANCE

    log_id: Text = Field(default_factory=partial(random_hex, "log_"))
    level: LogLevel
    message: Text
    module: Text
    function: str | None = None
    line: NonNegInt | None = None
    node: NodeLabel
    pid: str | None = None
    metadata: JsonMap = Field(default_factory=dict)


class LogSummary(Message):
    """Log counts per level over a period, from the nodes that reported.

    ``total_logs`` defaults to the sum of ``log_counts``; ``nodes_reporting`` defaults to the
    validation context's node, or to ``[]`` without one.
    """

    TAG: ClassVar[str] = "log_summary"
    INSTANCE: ClassVar[str] = INSTANCE
    DERIVED: ClassVar[tuple[str, ...]] = ("nodes_reporting", "total_logs")

    summary_id: Text = Field(default_factory=partial(random_hex, "summary_"))
    time_period: Label
    log_counts: LogCounts = Field(default_factory=dict)
    top_errors: list[JsonMap] = Field(default_factory=list)
    error_rate: float = Field(default=0.0, ge=0)
    nodes_reporting: list[str] = Field(default_factory=list)
    # Filled by _fill_defaults from log_counts; 0 only stands when log_counts is invalid, and
    # then validation fails on it anyway.
    total_logs: NonNegInt = 0

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        if filled.get("nodes_reporting") is None:
            node = info.context.get("node") if info.context else None
            filled["nodes_reporting"] = [node] if node else []
        if filled.get("total_logs") is None:
            try:
                counts = _LOG_COUNTS.validate_python(filled.get("log_counts") or {})
            except ValidationError:
                pass
            else:
                filled["total_logs"] = sum(counts.values())
        return filled

    @classmethod
    def _derived(cls, fields: Any, missing: Sequence[str], node: str) -> dict[str, Any]:
        values = super()._derived(fields, missing, node)
        if "nodes_reporting" in missing:
            values["nodes_reporting"] = [node]
        if "total_logs" in missing:
            values["total_logs"] = sum(fields.log_counts.values())
        return values


class LogFilter(Message):
    """A log filter was created or changed."""

    TAG: ClassVar[str] = "log_filter_updated"
    INSTANCE: ClassVar[str] = INSTANCE

    filter_id: Text = Field(default_factory=partial(random_hex, "filter_"))
    filter_type: FilterType
    filter_value: Text
    action: FilterAction
    enabled: bool = True
    created_by: Text = "system"
    metadata: JsonMap = Field(default_factory=dict)


class LogRotation(Message):
    """A log file was rotated."""

    TAG: ClassVar[str] = "log_rotation"
    INSTANCE: ClassVar[str] = INSTANCE

    rotation_id: Text = Field(default_factory=partial(random_hex, "rotation_"))
    log_type: Label
    old_file: Text
    new_file: Text
    file_size: NonNegInt
    entries_count: NonNegInt
    node: NodeLabel
