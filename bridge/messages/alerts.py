"""``ex_esdb_alerts``: alerts, their acknowledgement, escalation and notification delivery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from bridge.messages._base import (
    AlertId,
    JsonMap,
    Label,
    Message,
    Name,
    NodeLabel,
    NonNegInt,
    OmittedWhenNone,
    Text,
    Timestamp,
    random_hex,
    utc_now,
)
from bridge.messages.severities import SEVERITIES, AlertSeverity

__all__ = [
    "ACK_BY_DEFAULT",
    "SECURITY_SEVERITY",
    "SEVERITIES",
    "AlertAck",
    "AlertEscalation",
    "AlertSeverity",
    "NotificationStatus",
    "RiskSeverity",
    "SystemAlert",
]

INSTANCE: Final = "ex_esdb_alerts"

RiskSeverity = Literal["low", "medium", "high", "critical"]
"""The scale of security reports and error analyses, lowest first."""
SECURITY_SEVERITY: Final[Mapping[RiskSeverity, AlertSeverity]] = MappingProxyType(
    {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}
)
"""SecurityAlert and AccessViolation severities (low … critical) on the alerting scale."""
AlertCategory = Literal["system", "performance", "security", "data", "network"]
EscalationLevel = Literal["level1", "level2", "level3"]
DeliveryMethod = Literal["email", "sms", "webhook", "push"]
DeliveryStatus = Literal["sent", "delivered", "failed", "bounced"]

ACK_BY_DEFAULT: Final[frozenset[AlertSeverity]] = frozenset({"error", "critical"})
"""The severities whose alerts need acknowledging unless their message says otherwise."""


class SystemAlert(Message):
    """An alert raised by a component; error and critical ones need acknowledging by default."""

    TAG: ClassVar[str] = "system_alert"
    INSTANCE: ClassVar[str] = INSTANCE
    DERIVED: ClassVar[tuple[str, ...]] = ("requires_ack",)

    # The alert_id label of every notification of the alert.
    alert_id: AlertId = Field(default_factory=random_hex)
    severity: AlertSeverity
    category: AlertCategory
    title: Text
    description: Text
    source: Label  # the alert's source label
    node: NodeLabel
    metadata: JsonMap = Field(default_factory=dict)
    # Filled by _default_requires_ack from severity; False only stands when severity is not a
    # string, and then validation fails on it anyway.
    requires_ack: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_requires_ack(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("requires_ack") is not None:
            return data
        severity = data.get("severity")
        if isinstance(severity, str):
            return {**data, "requires_ack": severity in ACK_BY_DEFAULT}
        return data

    @classmethod
    def _derived(cls, fields: Any, missing: Sequence[str], node: str) -> dict[str, Any]:
        values = super()._derived(fields, missing, node)
        if "requires_ack" in missing:
            values["requires_ack"] = fields.severity in ACK_BY_DEFAULT
        return values


class AlertAck(Message):
    """Someone acknowledged an alert."""

    TAG: ClassVar[str] = "alert_acknowledged"
    INSTANCE: ClassVar[str] = INSTANCE

    alert_id: Text
    # Shown as who acknowledged (the alert page and its history, the admin API, the logs): no
    # character that breaks its line or reorders the text after it, as the admin API's ack.
    ack_by: Name
    ack_note: str | None = None
    resolution: str | None = None
    ack_timestamp: Timestamp = Field(default_factory=utc_now)
    # The start (``starts_at``) of the alert's episode acknowledged, when its maker knew it:
    # an ack that reaches the alert after it resolved and fired again changes nothing.
    # Left out, the ack is for whatever episode is current (as every sender of before).
    alert_starts_at: OmittedWhenNone[Timestamp] = None


class AlertEscalation(Message):
    """An alert moved to another escalation level."""

    TAG: ClassVar[str] = "alert_escalated"
    INSTANCE: ClassVar[str] = INSTANCE

    alert_id: Text
    from_level: EscalationLevel
    to_level: EscalationLevel
    escalation_reason: Text
    escalated_by: Text = "system"
    notify_contacts: list[str] = Field(default_factory=list)


class NotificationStatus(Message):
    """How delivering an alert notification went."""

    TAG: ClassVar[str] = "notification_status"
    INSTANCE: ClassVar[str] = INSTANCE

    alert_id: Text
    delivery_method: DeliveryMethod
    recipient: Text
    status: DeliveryStatus
    error_reason: str | None = None
    attempts: NonNegInt = 1
