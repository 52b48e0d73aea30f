"""What ``exesdb-bridge alerts`` prints: the states it lists unless asked, and an alert's row.

By default ``alerts list`` asks ``GET /v1/alerts`` for the alerts that want attention, firing and
acknowledged ones, one state at a time (the admin API keeps one state per request): resolved
alerts are kept, and would bury them. ``--state all`` asks once for every state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

__all__ = [
    "ALERT_COLUMNS",
    "NO_OPEN_ALERTS",
    "OPEN_STATES",
    "TITLE_WIDTH",
    "alert_row",
    "merged",
]

OPEN_STATES: Final = ("firing", "acknowledged")
NO_OPEN_ALERTS: Final = "no firing or acknowledged alerts (--state all lists resolved ones too)"
ALERT_COLUMNS: Final = (
    "ALERT_ID",
    "STATE",
    "LEVEL",
    "SEVERITY",
    "ALERTNAME",
    "NODE",
    "SINCE",
    "TITLE",
)
# A title may have 4 096 characters; the table shows its start, --json the whole of it.
TITLE_WIDTH: Final = 60


def alert_row(alert: dict[str, Any]) -> tuple[str, ...]:
    """An alert of ``GET /v1/alerts`` as a row under ``ALERT_COLUMNS``."""
    title = str(alert["annotations"]["title"])
    return (
        alert["alert_id"],
        alert["state"],
        alert["level"],
        alert["severity"],
        alert["labels"]["alertname"],
        alert["labels"]["node"],
        alert["starts_at"],
        title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 1] + "…",
    )


def merged(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``GET /v1/alerts`` answers (one per state asked) as one: every alert once, most recently
    changed first as each answer lists them, and the replica holding the work-queue lease only
    if every answer says so. An alert in two answers (acknowledged between the requests) is
    listed as last changed."""
    # updated_at is RFC 3339 in UTC, every one of one form: text order is time order.
    newest_first = sorted(
        (alert for answer in answers for alert in answer["alerts"]),
        key=lambda alert: str(alert["updated_at"]),
        reverse=True,
    )
    latest: dict[str, dict[str, Any]] = {}
    for alert in newest_first:
        latest.setdefault(alert["alert_id"], alert)
    alerts = list(latest.values())
    holder = all(answer.get("work_queue_holder", True) for answer in answers)
    return {"alerts": alerts, "work_queue_holder": holder}
