"""``ex_esdb_health``: node, cluster and component health, and health check results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Final, Literal, Self

from pydantic import Field, model_validator

from bridge.messages._base import (
    JsonMap,
    Label,
    Message,
    NodeLabel,
    NonNegInt,
    OmittedWhenNone,
    Timestamp,
)

__all__ = [
    "HOST_RESOURCES",
    "ClusterHealth",
    "ComponentHealth",
    "HealthCheck",
    "HealthStatus",
    "NodeHealth",
    "NodeStatus",
    "healthy_resources",
    "resource_metric",
    "resource_of_metric",
]

INSTANCE: Final = "ex_esdb_health"

NodeStatus = Literal["healthy", "degraded", "unhealthy", "unknown"]

# The host resources a NodeHealth's ``checks`` report ({resource: {"status": ...}}), each also the
# subject of a MetricAlert on ``<resource>_usage_percent`` (collectors/health.py sends both).
HOST_RESOURCES: Final = ("cpu", "disk", "memory")
_RESOURCE_SUFFIX: Final = "_usage_percent"


def resource_metric(resource: str) -> str:
    """The MetricAlert ``metric_name`` about a host resource (``cpu_usage_percent``)."""
    return resource + _RESOURCE_SUFFIX


def resource_of_metric(metric_name: str) -> str | None:
    """The host resource a MetricAlert's ``metric_name`` is about, if it is about one."""
    resource = metric_name.removesuffix(_RESOURCE_SUFFIX)
    return resource if resource != metric_name and resource in HOST_RESOURCES else None


def healthy_resources(checks: Mapping[str, object]) -> list[str]:
    """The host resources a NodeHealth's ``checks`` report healthy, each by its own check (the
    node's status alone says nothing of which resource crossed)."""
    return [
        resource
        for resource in HOST_RESOURCES
        if isinstance(check := checks.get(resource), dict) and check.get("status") == "healthy"
    ]


HealthStatus = Literal["healthy", "degraded", "unhealthy"]
QuorumStatus = Literal["available", "lost"]
Percent = Annotated[float, Field(ge=0)]


class NodeHealth(Message):
    """A node's overall health, with its resource readings."""

    TAG: ClassVar[str] = "node_health_updated"
    INSTANCE: ClassVar[str] = INSTANCE

    node: NodeLabel
    status: NodeStatus
    checks: JsonMap = Field(default_factory=dict)
    load_avg: float | None = None
    memory_usage: Percent | None = None
    disk_usage: Percent | None = None


class ClusterHealth(Message):
    """The cluster's health as one node sees it.

    ``degraded_count`` and ``unhealthy_count`` count the nodes in each state when the lists name
    only some of them (the cluster monitor names at most a hundred of each); None means each
    list names them all, and leaves the field out of the payload: a replica of the version
    before the counts refuses a ClusterHealth that has them (its models forbid extra fields).
    """

    TAG: ClassVar[str] = "cluster_health_updated"
    INSTANCE: ClassVar[str] = INSTANCE

    status: HealthStatus
    healthy_nodes: NonNegInt
    total_nodes: NonNegInt
    degraded_nodes: list[NodeLabel] = Field(default_factory=list)
    unhealthy_nodes: list[NodeLabel] = Field(default_factory=list)
    quorum_status: QuorumStatus = "available"
    degraded_count: OmittedWhenNone[NonNegInt] = None
    unhealthy_count: OmittedWhenNone[NonNegInt] = None

    @model_validator(mode="after")
    def _counts_cover_their_nodes(self) -> Self:
        if self.total_nodes < self.healthy_nodes:
            raise ValueError("total_nodes must be >= healthy_nodes")
        if self.degraded_count is not None and self.degraded_count < len(self.degraded_nodes):
            raise ValueError("degraded_count must be >= the nodes degraded_nodes names")
        if self.unhealthy_count is not None and self.unhealthy_count < len(self.unhealthy_nodes):
            raise ValueError("unhealthy_count must be >= the nodes unhealthy_nodes names")
        return self

    @property
    def degraded(self) -> int:
        """How many nodes are degraded: ``degraded_count``, else those ``degraded_nodes`` names."""
        count = self.degraded_count
        return len(self.degraded_nodes) if count is None else count

    @property
    def unhealthy(self) -> int:
        """How many nodes are unhealthy, as ``degraded`` counts the degraded ones."""
        count = self.unhealthy_count
        return len(self.unhealthy_nodes) if count is None else count


class ComponentHealth(Message):
    """One component's health on one node."""

    TAG: ClassVar[str] = "component_health_updated"
    INSTANCE: ClassVar[str] = INSTANCE

    component: Label
    node: NodeLabel
    status: HealthStatus
    details: JsonMap = Field(default_factory=dict)
    last_check: Timestamp | None = None


class HealthCheck(Message):
    """The result of one health check."""

    TAG: ClassVar[str] = "health_check_completed"
    INSTANCE: ClassVar[str] = INSTANCE

    check_name: Label
    node: NodeLabel
    result: Literal["pass", "fail", "timeout"]
    duration_ms: Annotated[float, Field(ge=0)]
    details: JsonMap = Field(default_factory=dict)
    error: str | None = None
