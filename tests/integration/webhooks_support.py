"""What the alert webhook tests share: settings that retry fast and sign, deliveries counted."""

from __future__ import annotations

from typing import Any

__all__ = ["FAST", "SECRET", "counted"]

SECRET = "webhook-secret-for-tests"
FAST: dict[str, Any] = {
    "EXESDB_WEBHOOK_BACKOFF_MS": "50",
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "200",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
    "EXESDB_WEBHOOK_SECRET": SECRET,
}


def counted(bridge: Any, result: str) -> float:
    """exesdb_webhook_deliveries_total for one result."""
    value = bridge.registry.get_sample_value("exesdb_webhook_deliveries_total", {"result": result})
    return value or 0.0
