"""``ex_esdb_security``: authentication, access violations, security alerts and sessions."""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field

from bridge.hidden import is_node_name
from bridge.messages._base import MAX_TEXT, JsonMap, Message, NodeLabel, Text
from bridge.messages.alerts import RiskSeverity

__all__ = ["AccessViolation", "AuthEvent", "SecurityAlert", "SessionEvent"]

INSTANCE: Final = "ex_esdb_security"

AuthEventType = Literal["login_success", "login_failure", "logout", "token_refresh"]
AuthMethod = Literal["password", "token", "certificate", "oauth"]
ViolationType = Literal[
    "unauthorized_access", "permission_denied", "rate_limit_exceeded", "invalid_token"
]
SecurityAlertType = Literal["brute_force", "suspicious_activity", "policy_violation", "data_breach"]
SessionEventType = Literal["created", "destroyed", "expired", "invalidated"]


class AuthEvent(Message):
    """A login, logout or token refresh, successful or not."""

    TAG: ClassVar[str] = "auth_event"
    INSTANCE: ClassVar[str] = INSTANCE

    user_id: Text
    event_type: AuthEventType
    auth_method: AuthMethod
    source_ip: str | None = None
    user_agent: str | None = None
    node: NodeLabel
    metadata: JsonMap = Field(default_factory=dict)


class AccessViolation(Message):
    """Someone was refused access to a resource."""

    TAG: ClassVar[str] = "access_violation"
    INSTANCE: ClassVar[str] = INSTANCE

    user_id: str | None = None
    violation_type: ViolationType
    resource: Text
    action: Text
    source_ip: Text
    severity: RiskSeverity = "medium"
    metadata: JsonMap = Field(default_factory=dict)

    def node_about(self, sender: str) -> str:
        """The node this violation is about, its alert's and its series' ``node``: the one its
        metadata names under ``node`` (a sender reporting for another node, as ``--demo`` does)
        when any message's ``node`` could be it, else ``sender``, the node that published it."""
        named = self.metadata.get("node")
        if isinstance(named, str) and 0 < len(named) <= MAX_TEXT and is_node_name(named):
            return named
        return sender


class SecurityAlert(Message):
    """A brute force attempt, suspicious activity, policy violation or data breach."""

    TAG: ClassVar[str] = "security_alert"
    INSTANCE: ClassVar[str] = INSTANCE

    alert_type: SecurityAlertType
    severity: RiskSeverity
    description: Text
    affected_users: list[str] = Field(default_factory=list)
    source_ip: str | None = None
    node: NodeLabel
    metadata: JsonMap = Field(default_factory=dict)


class SessionEvent(Message):
    """A user session was created, destroyed, expired or invalidated."""

    TAG: ClassVar[str] = "session_event"
    INSTANCE: ClassVar[str] = INSTANCE

    session_id: Text
    user_id: Text
    event_type: SessionEventType
    duration_ms: Annotated[float, Field(ge=0)] | None = None
    source_ip: str | None = None
    node: NodeLabel
