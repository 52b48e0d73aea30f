"""The alerting scale, lowest first, without pydantic: alerts, filters and the outbox rank by it."""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["SEVERITIES", "AlertSeverity"]

AlertSeverity = Literal["info", "warning", "error", "critical"]
SEVERITIES: Final[tuple[AlertSeverity, ...]] = get_args(AlertSeverity)
"""The alerting scale, lowest first: every alert, webhook and severity setting uses it."""
