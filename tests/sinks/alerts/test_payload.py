"""The webhook body: Alertmanager format v4, fingerprints, grouping limits."""

from __future__ import annotations

import json

from bridge.sinks.alerts.payload import alert_url, build_payloads, fingerprint, restated
from bridge.sinks.alerts.records import AlertRecord, AlertState
from tests.sinks.alerts.helpers import T0

EXTERNAL = "http://bridge.example:9570"


def record(alert_id: str = "a1", **changes: object) -> AlertRecord:
    """A stored alert with sensible defaults."""
    fields: dict[str, object] = {
        "alert_id": alert_id,
        "alertname": "node_failure",
        "severity": "critical",
        "category": "system",
        "node": "n1",
        "title": "node n1 is down",
        "description": "went silent",
        "requires_ack": True,
        "state": AlertState.FIRING,
        "level": 1,
        "starts_at": T0,
        "updated_at": T0,
        "ends_at": None,
        "level_since": T0,
    }
    fields.update(changes)
    return AlertRecord(**fields)  # type: ignore[arg-type]


def test_fingerprint_is_alertmanagers_fnv64a() -> None:
    """The empty label set hashes to FNV-1a's offset basis, and label order does not matter."""
    assert fingerprint({}) == "cbf29ce484222325"
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "1"}) != fingerprint({"a": "2"})
    assert len(fingerprint({"alertname": "x"})) == 16


def test_body_has_every_field_of_the_v4_format() -> None:
    """A firing alert's body carries version 4 and every Alertmanager webhook field, those of
    Alertmanager 0.32 and 0.34 (notification_reason "unknown", empty routeLabels) included."""
    [(body, ids)] = build_payloads([record()], max_alerts=10, external_url=EXTERNAL)
    payload = json.loads(body)
    assert ids == ["a1"]
    assert payload == {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "exesdb-bridge",
        "notification_reason": "unknown",
        "groupLabels": {},
        "commonLabels": {
            "alert_id": "a1",
            "alertname": "node_failure",
            "category": "system",
            "node": "n1",
            "severity": "critical",
        },
        "commonAnnotations": {
            "description": "went silent",
            "summary": "node n1 is down",
            "title": "node n1 is down",
        },
        "routeLabels": {},
        "externalURL": EXTERNAL,
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "node_failure",
                    "severity": "critical",
                    "category": "system",
                    "node": "n1",
                    "alert_id": "a1",
                },
                "annotations": {
                    "summary": "node n1 is down",
                    "title": "node n1 is down",
                    "description": "went silent",
                },
                "startsAt": "2027-01-15T08:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": EXTERNAL + "/alerts/a1",
                "fingerprint": payload["alerts"][0]["fingerprint"],
            }
        ],
    }


def test_resolve_keeps_the_fingerprint_through_severity_and_escalation() -> None:
    """A resolved alert has endsAt set and the same fingerprint as when it fired."""
    firing = build_payloads([record()], max_alerts=10, external_url=EXTERNAL)[0][0]
    resolved = build_payloads(
        [record(state=AlertState.RESOLVED, ends_at=T0 + 60, severity="warning", level=3)],
        max_alerts=10,
        external_url=EXTERNAL,
    )[0][0]
    before, after = json.loads(firing), json.loads(resolved)
    assert after["status"] == "resolved"
    assert after["alerts"][0]["endsAt"] == "2027-01-15T08:01:00.000Z"
    assert after["alerts"][0]["labels"]["escalation_level"] == "level3"
    assert after["alerts"][0]["fingerprint"] == before["alerts"][0]["fingerprint"]


def test_groups_are_split_at_max_alerts_and_count_truncated() -> None:
    """Seven alerts with at most three per payload make 3+3+1, each saying how many it lacks."""
    records = [record(f"a{i}", node=f"n{i}") for i in range(7)]
    payloads = build_payloads(records, max_alerts=3, external_url=EXTERNAL)
    assert [ids for _, ids in payloads] == [["a0", "a1", "a2"], ["a3", "a4", "a5"], ["a6"]]
    bodies = [json.loads(body) for body, _ in payloads]
    assert [b["truncatedAlerts"] for b in bodies] == [4, 4, 6]
    assert "node" not in bodies[0]["commonLabels"]
    assert bodies[0]["commonLabels"]["alertname"] == "node_failure"


def test_the_generator_url_is_the_alerts_page_with_its_id_escaped() -> None:
    """generatorURL is EXESDB_EXTERNAL_URL + /alerts/{alert_id}, the id escaped whole."""
    [(body, _)] = build_payloads(
        [record("node_failure:n3@db/x")], max_alerts=10, external_url=EXTERNAL
    )
    url = json.loads(body)["alerts"][0]["generatorURL"]
    assert url == EXTERNAL + "/alerts/node_failure%3An3%40db%2Fx"
    assert url == alert_url(EXTERNAL, "node_failure:n3@db/x")


def test_a_system_alerts_source_is_a_label_and_its_metadata_annotations() -> None:
    """An alert with a source carries it as the ``source`` label, its details as annotations
    beside summary, title and description; the fingerprint ignores the source, as it does
    severity."""
    details = (("metadata_lag", "12"), ("metadata_stream", "orders"))
    [(body, _)] = build_payloads(
        [record(source="backup-job", details=details)], max_alerts=5, external_url=EXTERNAL
    )
    [alert] = json.loads(body)["alerts"]
    assert alert["labels"]["source"] == "backup-job"
    assert alert["annotations"] == {
        "summary": "node n1 is down",
        "title": "node n1 is down",
        "description": "went silent",
        "metadata_lag": "12",
        "metadata_stream": "orders",
    }
    assert alert["fingerprint"] == fingerprint(
        {"alertname": "node_failure", "category": "system", "node": "n1", "alert_id": "a1"}
    )
    [(plain, _)] = build_payloads([record()], max_alerts=5, external_url=EXTERNAL)
    assert "source" not in json.loads(plain)["alerts"][0]["labels"]


def test_restated_tells_the_firing_alerts_as_they_stand_and_leaves_the_rest() -> None:
    """A stored payload restated with the alerts' current records tells each alert it fires as
    its record stands (severity, level, text), under its own externalURL, with its common
    labels made again; a resolve it tells, an alert without a record, and a payload already
    telling them so, or not in the format, are left (None when nothing changed)."""
    [(body, _)] = build_payloads(
        [record("a1", severity="warning"), record("a2", severity="warning"),
         record("a3", state=AlertState.RESOLVED, ends_at=T0 + 1)],
        max_alerts=50,
        external_url=EXTERNAL,
    )  # fmt: skip
    raised = record("a1", severity="critical", level=2)
    now = restated(body, [raised, record("a3", severity="critical")])
    assert now is not None
    data, before = json.loads(now), json.loads(body)
    assert [a["labels"]["severity"] for a in data["alerts"]] == ["critical", "warning", "critical"]
    assert data["alerts"][0]["labels"]["escalation_level"] == raised.level_name
    assert data["alerts"][0]["generatorURL"] == alert_url(EXTERNAL, "a1")
    assert data["alerts"][1:] == before["alerts"][1:]  # a2 unchanged, a3 told resolved
    assert "severity" not in data["commonLabels"]
    assert {k: v for k, v in data.items() if k not in ("alerts", "commonLabels")} == {
        k: v for k, v in before.items() if k not in ("alerts", "commonLabels")
    }
    assert restated(now, [raised]) is None
    assert restated(body, []) is None
    assert restated(b"[1]", [raised]) is None
