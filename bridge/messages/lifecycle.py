"""``ex_esdb_lifecycle``: node, process and supervision events, and cluster membership."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, TypeAdapter, ValidationError, ValidationInfo, model_validator

from bridge.messages._base import JsonMap, Label, Message, NodeLabel, NonNegInt, Text

__all__ = ["ClusterMembership", "NodeLifecycle", "ProcessLifecycle", "SupervisionEvent"]

INSTANCE: Final = "ex_esdb_lifecycle"

NodeEvent = Literal["joining", "joined", "leaving", "left", "down", "reconnected"]
ProcessEvent = Literal["started", "stopped", "crashed", "restarted"]
SupervisorEvent = Literal["child_started", "child_terminated", "restart_limit_exceeded"]
MembershipEvent = Literal["node_added", "node_removed", "partition_detected", "partition_healed"]
QuorumStatus = Literal["available", "lost"]

_NODES: Final = TypeAdapter(list[str])


class NodeLifecycle(Message):
    """A node joined, left, went down or came back."""

    TAG: ClassVar[str] = "node_lifecycle_event"
    INSTANCE: ClassVar[str] = INSTANCE

    node: NodeLabel
    event: NodeEvent
    cluster_size: NonNegInt
    metadata: JsonMap = Field(default_factory=dict)


class ProcessLifecycle(Message):
    """A process started, stopped, crashed or was restarted."""

    TAG: ClassVar[str] = "process_lifecycle_event"
    INSTANCE: ClassVar[str] = INSTANCE

    pid: Text
    name: str | None = None
    module: Label
    event: ProcessEvent
    node: NodeLabel
    reason: str | None = None
    restart_count: NonNegInt = 0


class SupervisionEvent(Message):
    """A supervisor started or terminated a child, or gave up restarting it."""

    TAG: ClassVar[str] = "supervision_event"
    INSTANCE: ClassVar[str] = INSTANCE

    supervisor: Label
    child_spec: JsonMap = Field(default_factory=dict)
    event: SupervisorEvent
    node: NodeLabel
    reason: str | None = None


class ClusterMembership(Message):
    """The cluster's membership changed.

    ``total_nodes`` defaults to ``len(active_nodes)``; ``originating_node`` defaults to the
    validation context's node, like ``node`` elsewhere.
    """

    TAG: ClassVar[str] = "cluster_membership_changed"
    INSTANCE: ClassVar[str] = INSTANCE
    DERIVED: ClassVar[tuple[str, ...]] = ("total_nodes", "originating_node")

    event: MembershipEvent
    affected_nodes: list[NodeLabel]
    active_nodes: list[NodeLabel]
    # Filled by _fill_defaults from active_nodes; 0 only stands when active_nodes is invalid,
    # and then validation fails on it anyway.
    total_nodes: NonNegInt = 0
    quorum_status: QuorumStatus = "available"
    originating_node: NodeLabel

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        if filled.get("originating_node") is None and info.context and info.context.get("node"):
            filled["originating_node"] = info.context["node"]
        if filled.get("total_nodes") is None:
            # An invalid active_nodes is reported by its own field.
            with contextlib.suppress(ValidationError):
                filled["total_nodes"] = len(_NODES.validate_python(filled.get("active_nodes")))
        return filled

    @classmethod
    def _derived(cls, fields: Any, missing: Sequence[str], node: str) -> dict[str, Any]:
        values = super()._derived(fields, missing, node)
        if "originating_node" in missing:
            values["originating_node"] = node
        if "total_nodes" in missing:
            values["total_nodes"] = len(fields.active_nodes)
        return values
