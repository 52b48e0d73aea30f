"""``ex_esdb_system``: configuration changes, system lifecycle and feature toggles."""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import Field

from bridge.messages._base import JsonMap, Label, Message, NodeLabel, Text

__all__ = ["FeatureToggle", "SystemConfig", "SystemEvent", "SystemLifecycle"]

INSTANCE: Final = "ex_esdb_system"

SystemEvent = Literal["starting", "started", "stopping", "stopped"]


class SystemConfig(Message):
    """A component's configuration changed."""

    TAG: ClassVar[str] = "system_config_changed"
    INSTANCE: ClassVar[str] = INSTANCE

    component: Label
    changes: JsonMap = Field(default_factory=dict)
    previous_config: JsonMap | None = None
    changed_by: Text = "system"
    node: NodeLabel


class SystemLifecycle(Message):
    """The system is starting, started, stopping or stopped."""

    TAG: ClassVar[str] = "system_lifecycle_event"
    INSTANCE: ClassVar[str] = INSTANCE

    event: SystemEvent
    system_name: Label
    version: Text
    node: NodeLabel


class FeatureToggle(Message):
    """A feature was switched on or off."""

    TAG: ClassVar[str] = "feature_toggle_changed"
    INSTANCE: ClassVar[str] = INSTANCE

    feature: Label
    enabled: bool
    previous_state: bool
    changed_by: Text
    node: NodeLabel
