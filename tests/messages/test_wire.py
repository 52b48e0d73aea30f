"""What a payload writes for a field that is None: ``null`` for the first release's optional
fields, nothing for a field declared ``OmittedWhenNone`` on any message type."""

from __future__ import annotations

import json
from typing import ClassVar

from bridge.messages import TAGS, ClusterHealth, Message, NodeHealth
from bridge.messages._base import NonNegInt, OmittedWhenNone
from tests.messages.helpers import CASES, TS, build

# The optional fields of the first release: None is written as null, as it always was (a
# receiver may read the key). Any field added since is OmittedWhenNone.
WRITTEN_AS_NULL = frozenset(
    {
        "AccessLog.source_ip",
        "AccessLog.user_agent",
        "AccessViolation.user_id",
        "AdminAction.justification",
        "AdminAction.source_ip",
        "AlertAck.ack_note",
        "AlertAck.resolution",
        "AuthEvent.source_ip",
        "AuthEvent.user_agent",
        "ComplianceEvent.user_id",
        "ComponentHealth.last_check",
        "DataChange.source_ip",
        "DebugTrace.duration_ms",
        "DebugTrace.stack_trace",
        "HealthCheck.error",
        "LogEntry.function",
        "LogEntry.line",
        "LogEntry.pid",
        "NodeHealth.disk_usage",
        "NodeHealth.load_avg",
        "NodeHealth.memory_usage",
        "NotificationStatus.error_reason",
        "ProcessLifecycle.name",
        "ProcessLifecycle.reason",
        "SecurityAlert.source_ip",
        "SessionEvent.duration_ms",
        "SessionEvent.source_ip",
        "SupervisionEvent.reason",
        "SystemConfig.previous_config",
    }
)
# The fields added after the first release, left out of the payload while None.
LEFT_OUT = frozenset(
    {
        "AlertAck.alert_starts_at",
        "ClusterHealth.degraded_count",
        "ClusterHealth.unhealthy_count",
    }
)


class Later(Message):
    """A message type as a later release might add a field to it."""

    TAG: ClassVar[str] = "later_test_message"
    INSTANCE: ClassVar[str] = "ex_esdb_system"

    name: str
    added: OmittedWhenNone[NonNegInt] = None


def test_a_field_declared_omitted_when_none_is_left_out_of_any_message_type_while_none() -> None:
    """A field declared ``OmittedWhenNone`` on any message type is left out of the payload
    (and of ``model_dump``) while None, written when set, and read back either way."""
    unset = Later(timestamp=TS, name="a")
    given = Later(timestamp=TS, name="a", added=3)
    assert unset.model_dump_json() == f'{{"timestamp":"{TS}","name":"a"}}'
    assert given.model_dump_json() == f'{{"timestamp":"{TS}","name":"a","added":3}}'
    assert "added" not in unset.model_dump()
    assert Later.model_validate_json(unset.model_dump_json()) == unset
    assert Later.model_validate_json(given.model_dump_json()) == given


def test_every_payload_writes_null_for_the_first_releases_fields_and_leaves_out_the_later() -> None:
    """Every message type's payload with only its required fields writes null for exactly the
    first release's optional fields, and leaves out exactly the fields added since: a new
    optional field is OmittedWhenNone, or it changes the wire."""
    assert set(CASES) == set(TAGS.values())
    null, left_out = set(), set()
    for model, case in CASES.items():
        payload = json.loads(build(model, case.minimal).model_dump_json())
        null |= {f"{model.__name__}.{name}" for name, value in payload.items() if value is None}
        left_out |= {f"{model.__name__}.{name}" for name in set(model.model_fields) - set(payload)}
    assert null == WRITTEN_AS_NULL
    assert left_out == LEFT_OUT


def test_cluster_health_and_node_health_are_written_byte_for_byte_as_before() -> None:
    """ClusterHealth leaves its counts out while None and writes them when given; NodeHealth
    writes its readings that are None as null: the bytes the previous releases wrote."""
    names = {"healthy_nodes": 2, "total_nodes": 3, "degraded_nodes": ["n3"]}
    health = build(ClusterHealth, {"timestamp": TS, "status": "degraded", **names})
    counted = build(
        ClusterHealth,
        {"timestamp": TS, "status": "degraded", **names, "degraded_count": 1, "unhealthy_count": 0},
    )
    node = build(NodeHealth, {"timestamp": TS, "status": "healthy", "memory_usage": 12.5})
    head = f'{{"timestamp":"{TS}","status":"degraded","healthy_nodes":2,"total_nodes":3,'
    cluster = f'{head}"degraded_nodes":["n3"],"unhealthy_nodes":[],"quorum_status":"available"'
    assert health.model_dump_json() == cluster + "}"
    assert counted.model_dump_json() == cluster + ',"degraded_count":1,"unhealthy_count":0}'
    assert node.model_dump_json() == (
        f'{{"timestamp":"{TS}","node":"node1@host","status":"healthy","checks":{{}},'
        '"load_avg":null,"memory_usage":12.5,"disk_usage":null}'
    )
