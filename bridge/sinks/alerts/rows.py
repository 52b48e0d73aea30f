"""Outbox rows and records: a row read as a record, a record as named parameters, filters as SQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from bridge.sinks.alerts.records import AlertRecord, AlertState, Delivery, DeliveryState

__all__ = ["alert_params", "delivery_of", "matching", "one_of", "record_of"]


def matching(filters: Mapping[str, object]) -> tuple[str, dict[str, object]]:
    """`` WHERE column = :column AND …`` for each filter given (not None), and its parameters.

    The column names come from the caller's code, never from a request.
    """
    given = {column: value for column, value in filters.items() if value is not None}
    if not given:
        return "", {}
    return " WHERE " + " AND ".join(f"{column} = :{column}" for column in given), given


def one_of(
    column: str, values: Sequence[str], *, negate: bool = False
) -> tuple[str, dict[str, str]]:
    """``column IN (:column_0, …)`` (``NOT IN`` when ``negate``) and its parameters."""
    params = {f"{column}_{n}": value for n, value in enumerate(values)}
    names = ", ".join(f":{name}" for name in params)
    return f"{column} {'NOT IN' if negate else 'IN'} ({names})", params


def alert_params(record: AlertRecord) -> dict[str, object]:
    """``record`` as the named parameters of the alerts table's INSERT."""
    return {
        "alert_id": record.alert_id,
        "alertname": record.alertname,
        "severity": record.severity,
        "category": record.category,
        "node": record.node,
        "title": record.title,
        "description": record.description,
        "requires_ack": int(record.requires_ack),
        "state": record.state.value,
        "level": record.level,
        "starts_at": record.starts_at,
        "updated_at": record.updated_at,
        "ends_at": record.ends_at,
        "level_since": record.level_since,
        "ack_by": record.ack_by,
        "ack_note": record.ack_note,
        "ack_at": record.ack_at,
        "resolution": record.resolution,
        "auto_resolve": int(record.auto_resolve),
        "last_seen": record.last_seen,
        "source": record.source,
        "details": json.dumps(record.details, ensure_ascii=False),
        "event_at": record.event_at,
    }


def record_of(row: sqlite3.Row) -> AlertRecord:
    # By position (as fast as a tuple; a name is a scan): the table's columns are the record's
    # fields in order, files of earlier versions included, whose later columns were appended.
    return AlertRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        bool(row[7]),
        AlertState(row[8]),
        int(row[9]),
        float(row[10]),
        float(row[11]),
        None if row[12] is None else float(row[12]),
        float(row[13]),
        row[14],
        row[15],
        None if row[16] is None else float(row[16]),
        row[17],
        bool(row[18]),
        None if row[19] is None else float(row[19]),
        row[20],
        tuple((name, value) for name, value in json.loads(row[21])),
        None if row[22] is None else float(row[22]),
    )


def delivery_of(row: sqlite3.Row) -> Delivery:
    """The delivery a deliveries table row holds."""
    return Delivery(
        id=row["id"],
        url=row["url"],
        body=bytes(row["body"]),
        alert_ids=tuple(json.loads(row["alert_ids"])),
        created_at=float(row["created_at"]),
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        state=DeliveryState(row["state"]),
        last_status=row["last_status"],
        last_error=row["last_error"],
        finished_at=None if row["finished_at"] is None else float(row["finished_at"]),
        retried_at=None if row["retried_at"] is None else float(row["retried_at"]),
        renotified_at=None if row["renotified_at"] is None else float(row["renotified_at"]),
    )
