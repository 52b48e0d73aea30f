"""``ex_esdb_audit``: data changes, administrative actions, access logs and compliance events."""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field

from bridge.messages._base import JsonMap, Label, Message, NodeLabel, Text

__all__ = ["AccessLog", "AdminAction", "ComplianceEvent", "DataChange"]

INSTANCE: Final = "ex_esdb_audit"

DataAction = Literal["create", "update", "delete", "read"]
AdminActionType = Literal["user_created", "user_deleted", "permissions_changed", "config_updated"]
ComplianceEventType = Literal["data_retention", "data_export", "data_deletion", "policy_violation"]


class DataChange(Message):
    """A user created, read, updated or deleted a resource."""

    TAG: ClassVar[str] = "data_change"
    INSTANCE: ClassVar[str] = INSTANCE

    user_id: Text
    resource_type: Label
    resource_id: Text
    action: DataAction
    changes: JsonMap = Field(default_factory=dict)
    metadata: JsonMap = Field(default_factory=dict)
    source_ip: str | None = None
    node: NodeLabel


class AdminAction(Message):
    """An administrator changed users, permissions or configuration."""

    TAG: ClassVar[str] = "admin_action"
    INSTANCE: ClassVar[str] = INSTANCE

    admin_user_id: Text
    action_type: AdminActionType
    target_resource: Text
    details: JsonMap = Field(default_factory=dict)
    justification: str | None = None
    source_ip: str | None = None
    node: NodeLabel


class AccessLog(Message):
    """One access to a resource and whether it succeeded."""

    TAG: ClassVar[str] = "access_log"
    INSTANCE: ClassVar[str] = INSTANCE

    user_id: Text
    resource_type: Label
    resource_id: Text
    action: Text
    success: bool
    duration_ms: Annotated[float, Field(ge=0)]
    source_ip: str | None = None
    user_agent: str | None = None
    node: NodeLabel


class ComplianceEvent(Message):
    """A data retention, export or deletion, or a policy violation."""

    TAG: ClassVar[str] = "compliance_event"
    INSTANCE: ClassVar[str] = INSTANCE

    event_type: ComplianceEventType
    compliance_rule: Text
    affected_data: JsonMap = Field(default_factory=dict)
    action_taken: Text
    user_id: str | None = None
    automated: bool = False
    metadata: JsonMap = Field(default_factory=dict)
    node: NodeLabel
