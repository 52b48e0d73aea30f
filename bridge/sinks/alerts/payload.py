"""The webhook body: Alertmanager's webhook format, version "4" (docs/alerts.md#webhook-payload).

Every field of the format is present, so receivers written for Alertmanager work unchanged,
those of later Alertmanagers included: ``routeLabels`` (0.34; empty, as the bridge has no routes)
and ``notification_reason`` (0.32), always ``unknown``, Alertmanager's own value when it cannot
tell: a payload carries the alerts that changed, not the receiver's whole group, and the bridge
keeps no notification log to tell a first notification from a repeat or a last resolve.
Fingerprints are computed as Alertmanager computes them (FNV-1a 64 over the sorted label names
and values), over the labels that identify the condition, so a resolve carries the fingerprint of
the alert it ends even when its severity or escalation level changed meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from bridge.messages import format_timestamp, utc_from_seconds
from bridge.sinks.alerts.records import AlertRecord, AlertState

__all__ = [
    "FORMAT_VERSION",
    "IDENTITY_LABELS",
    "NOTIFICATION_REASON",
    "RECEIVER",
    "WebhookAlert",
    "alert_path",
    "alert_url",
    "alerts_told",
    "build_payloads",
    "fingerprint",
    "restated",
    "split_body",
    "webhook_alert",
    "webhook_body",
]

FORMAT_VERSION: Final = "4"
RECEIVER: Final = "exesdb-bridge"
# The labels that name the condition; severity and escalation_level may change while it lasts.
IDENTITY_LABELS: Final = ("alert_id", "alertname", "category", "node")
# Alertmanager's notification_reason when it cannot tell (notify.ReasonUnknown).
NOTIFICATION_REASON: Final = "unknown"
# Alertmanager writes the zero time for an alert that has not ended.
ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_FNV_OFFSET: Final = 14695981039346656037
_FNV_PRIME: Final = 1099511628211
_MASK: Final = (1 << 64) - 1
_SEPARATOR: Final = 0xFF  # prometheus/common model.SeparatorByte


def alert_path(alert_id: str) -> str:
    """The path of an alert's page on the bridge (``/alerts/{alert_id}``, the id escaped)."""
    return "/alerts/" + quote(alert_id, safe="")


def alert_url(external_url: str, alert_id: str) -> str:
    """The ``generatorURL`` of an alert: its page, under ``EXESDB_EXTERNAL_URL``."""
    return external_url + alert_path(alert_id)


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's label-set fingerprint: 16 lowercase hex digits."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
            value = ((value ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


@dataclass(frozen=True, slots=True)
class WebhookAlert:
    """One entry of a payload's ``alerts`` list."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the identifying labels."""
        return fingerprint({k: v for k, v in self.labels.items() if k in IDENTITY_LABELS})

    def as_json(self) -> dict[str, Any]:
        """The alert as the format writes it."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": _time(self.starts_at),
            "endsAt": _time(self.ends_at) if self.ends_at is not None else ZERO_TIME,
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


def _time(value: datetime) -> str:
    return format_timestamp(value.astimezone(UTC))


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {
        key: value
        for key, value in sorted(first.items())
        if all(other.get(key) == value for other in maps[1:])
    }


def webhook_body(alerts: Iterable[WebhookAlert], *, external_url: str, truncated: int = 0) -> bytes:
    """The JSON body for one delivery.

    ``truncated`` counts the alerts of the same group that did not fit in this payload
    (``EXESDB_WEBHOOK_MAX_ALERTS``); the bridge sends them in sibling payloads, never drops them.
    """
    chosen = list(alerts)
    body = {
        "version": FORMAT_VERSION,
        # No group_by: one group per receiver, as Alertmanager keys a route without group_by.
        "groupKey": "{}:{}",
        "truncatedAlerts": truncated,
        "status": "firing" if any(a.status == "firing" for a in chosen) else "resolved",
        "receiver": RECEIVER,
        "notification_reason": NOTIFICATION_REASON,
        "groupLabels": {},
        "commonLabels": _common([a.labels for a in chosen]),
        "commonAnnotations": _common([a.annotations for a in chosen]),
        "routeLabels": {},
        "externalURL": external_url,
        "alerts": [a.as_json() for a in chosen],
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_alert(record: AlertRecord, external_url: str) -> WebhookAlert:
    """A stored alert as a payload entry, in its current state."""
    resolved = record.state is AlertState.RESOLVED
    return WebhookAlert(
        status="resolved" if resolved else "firing",
        labels=record.labels,
        annotations=record.sent_annotations,
        starts_at=utc_from_seconds(record.starts_at),
        ends_at=utc_from_seconds(record.ends_at)
        if resolved and record.ends_at is not None
        else None,
        generator_url=alert_url(external_url, record.alert_id),
    )


def build_payloads(
    records: Sequence[AlertRecord], *, max_alerts: int, external_url: str
) -> list[tuple[bytes, list[str]]]:
    """One group of alerts as payloads of at most ``max_alerts`` each: ``(body, alert_ids)``."""
    payloads: list[tuple[bytes, list[str]]] = []
    for start in range(0, len(records), max_alerts):
        chunk = records[start : start + max_alerts]
        body = webhook_body(
            (webhook_alert(record, external_url) for record in chunk),
            external_url=external_url,
            truncated=len(records) - len(chunk),
        )
        payloads.append((body, [record.alert_id for record in chunk]))
    return payloads


def split_body(body: bytes, alert_ids: Collection[str]) -> tuple[bytes, bytes]:
    """A stored payload as two: without the alerts of ``alert_ids``, and with only them; each
    with its ``status``, ``commonLabels`` and ``commonAnnotations`` made again for its alerts,
    the rest as stored. ValueError for a body not in this format."""
    try:
        data = json.loads(body)
        entries = data["alerts"]
        parts = (
            [e for e in entries if e["labels"]["alert_id"] not in alert_ids],
            [e for e in entries if e["labels"]["alert_id"] in alert_ids],
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a webhook body: {exc}") from exc
    return _with_entries(data, parts[0]), _with_entries(data, parts[1])


def restated(body: bytes, records: Sequence[AlertRecord]) -> bytes | None:
    """A stored payload with each alert of ``records`` (open ones) that it tells firing as the
    record stands now (``webhook_alert``, under the payload's ``externalURL``), its ``status``,
    ``commonLabels`` and ``commonAnnotations`` made again; the rest as stored. None when that
    changes none of its alerts, or for a body not in this format."""
    now = {record.alert_id: record for record in records}
    try:
        data = json.loads(body)
        external_url = str(data["externalURL"])
        entries = data["alerts"]
        changed = [
            webhook_alert(now[alert_id], external_url).as_json()
            if entry.get("status") == "firing" and (alert_id := entry["labels"]["alert_id"]) in now
            else entry
            for entry in entries
        ]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return None if changed == entries else _with_entries(data, changed)


def _with_entries(data: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> bytes:
    """The payload ``data`` holding ``entries`` as its alerts, its ``status``, ``commonLabels``
    and ``commonAnnotations`` made for them."""
    whole = {
        **data,
        "status": "firing" if any(e.get("status") == "firing" for e in entries) else "resolved",
        "commonLabels": _common([e.get("labels", {}) for e in entries]),
        "commonAnnotations": _common([e.get("annotations", {}) for e in entries]),
        "alerts": entries,
    }
    return json.dumps(whole, separators=(",", ":"), ensure_ascii=False).encode()


def alerts_told(body: bytes) -> dict[str, tuple[str, str]]:
    """What a stored payload told its receiver of each alert: ``alert_id`` → (status, endsAt);
    empty for a body not in this format."""
    try:
        alerts = json.loads(body).get("alerts", [])
    except (ValueError, AttributeError):
        return {}
    return {
        str(alert["labels"]["alert_id"]): (str(alert.get("status")), str(alert.get("endsAt")))
        for alert in alerts
        if isinstance(alert, dict) and "alert_id" in alert.get("labels", {})
    }
