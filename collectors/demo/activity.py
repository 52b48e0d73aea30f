"""The simulated cluster's background activity: security, audit, feature toggles and diagnostics.

``ex_esdb_security`` (logins, failures, brute force, violations, sessions, and the security
desk acknowledging the alerts that wait for it), ``ex_esdb_audit``
(data changes, accesses, admin actions, compliance events), ``ex_esdb_system`` (feature toggles)
and ``ex_esdb_diagnostics`` (traces, error analyses, performance analyses, CPU hotspots, each
node's system state snapshot a minute), with the emitter restarts a crash brings
(``ex_esdb_lifecycle``).
"""

from __future__ import annotations

import random
from typing import Final

from bridge.messages import (
    SECURITY_SEVERITY,
    AccessLog,
    AccessViolation,
    AdminAction,
    AlertAck,
    AuthEvent,
    ComplianceEvent,
    DataChange,
    DebugTrace,
    ErrorAnalysis,
    FeatureToggle,
    Message,
    PerformanceAnalysis,
    SecurityAlert,
    SessionEvent,
    SupervisionEvent,
    SystemState,
)
from bridge.messages.alerts import ACK_BY_DEFAULT
from collectors.demo.lifecycle import process
from collectors.demo.state import NODE_MEMORY_BYTES, Build, ClusterState, Pairs, SimNode

__all__ = [
    "acknowledgements",
    "audit",
    "diagnostics",
    "features",
    "needs_ack",
    "security",
    "snapshots",
]

_USERS: Final = ("alice", "bob", "carol", "ops-bot", "billing-svc")
_FEATURES: Final = ("snapshot_compression", "read_cache", "emitter_batching")
# Steps between two system state snapshots of a node (a minute at a step a second); the nodes
# take theirs a few steps apart, the first at step 1.
_SNAPSHOT_EVERY: Final = 60
_SNAPSHOT_STAGGER: Final = 3


def security(state: ClusterState, build: Build) -> Pairs:
    """A step's security news: logins, the odd failure, brute force, violations, sessions."""
    out: Pairs = []
    rng = state.rng
    node = state.pick_up()
    for _ in range(rng.randint(0, 3)):
        out.append(
            (
                "auth",
                build(
                    AuthEvent,
                    user_id=rng.choice(_USERS),
                    event_type=rng.choice(("login_success", "token_refresh", "logout")),
                    auth_method=rng.choice(("password", "token", "oauth")),
                    source_ip=f"10.0.{rng.randint(0, 3)}.{rng.randint(2, 250)}",
                    node=node.name,
                    metadata={},
                ),
            )
        )
    if rng.random() < 0.3:
        out.append(_auth_failure(build, node, rng.choice(_USERS), _random_ip(rng)))
    if state.chance(0.02, "brute_force"):
        # A brute-force burst from one address, reported as a security alert.
        ip = _random_ip(rng)
        out.extend(_auth_failure(build, node, "admin", ip) for _ in range(rng.randint(5, 10)))
        out.append(
            (
                "security",
                build(
                    SecurityAlert,
                    alert_type="brute_force",
                    severity="high",
                    description=f"repeated login failures for admin from {ip}",
                    affected_users=["admin"],
                    source_ip=ip,
                    node=node.name,
                    metadata={},
                ),
            )
        )
    if state.chance(0.1, "access_violation"):
        out.append(
            (
                "security",
                build(
                    AccessViolation,
                    user_id=rng.choice(_USERS),
                    violation_type=rng.choice(
                        ("permission_denied", "rate_limit_exceeded", "invalid_token")
                    ),
                    resource=f"/stores/{rng.choice(state.stores)}/streams",
                    action=rng.choice(("read", "append", "delete")),
                    source_ip=_random_ip(rng),
                    severity=rng.choice(("low", "medium", "medium", "high")),
                    # No node field: named here, or its alert would name the bridge's host.
                    metadata={"node": node.name},
                ),
            )
        )
    if rng.random() < 0.2:
        out.append(
            (
                "sessions",
                build(
                    SessionEvent,
                    session_id=f"sess_{rng.getrandbits(48):012x}",
                    user_id=rng.choice(_USERS),
                    event_type=rng.choice(("created", "destroyed", "expired")),
                    node=node.name,
                ),
            )
        )
    return out


def needs_ack(message: Message, message_id: str) -> str | None:
    """The id of the alert ``message`` raises when it waits for an acknowledgement (error and
    above), else None; ``message_id`` is the id of the envelope it went out in."""
    kind: str
    if isinstance(message, SecurityAlert):
        kind = message.alert_type
    elif isinstance(message, AccessViolation):
        kind = message.violation_type
    else:
        return None
    if SECURITY_SEVERITY[message.severity] not in ACK_BY_DEFAULT:
        return None
    # The id the alert sink derives for a security event: its type and the envelope's id.
    return f"{kind}:{message_id}"


def acknowledgements(state: ClusterState, build: Build) -> Pairs:
    """The security desk's acknowledgements due this step (``ClusterState.acks_due``)."""
    out: Pairs = []
    while state.acks_due and state.acks_due[0][0] <= state.steps:
        _, alert_id = state.acks_due.popleft()
        out.append(
            (
                "alerts",
                build(
                    AlertAck,
                    alert_id=alert_id,
                    ack_by="demo_security_desk",
                    ack_note="made-up demo traffic: nothing to do",
                ),
            )
        )
    return out


def _auth_failure(build: Build, node: SimNode, user: str, ip: str) -> tuple[str, Message]:
    return (
        "auth",
        build(
            AuthEvent,
            user_id=user,
            event_type="login_failure",
            auth_method="password",
            source_ip=ip,
            node=node.name,
            metadata={"reason": "bad credentials"},
        ),
    )


def audit(state: ClusterState, build: Build) -> Pairs:
    """A step's audit trail: data changes, an access, now and then an admin action."""
    out: Pairs = []
    rng = state.rng
    node = state.pick_up()
    for _ in range(rng.randint(1, 3)):
        store = rng.choice(state.stores)
        out.append(
            (
                "audit",
                build(
                    DataChange,
                    user_id=rng.choice(_USERS),
                    resource_type="stream",
                    resource_id=f"{store}/order-{rng.randint(1, 5000)}",
                    action=rng.choices(("create", "update", "delete", "read"), (50, 30, 5, 15))[0],
                    changes={"events": rng.randint(1, 20)},
                    metadata={"store_id": store},
                    node=node.name,
                ),
            )
        )
    out.append(
        (
            "audit",
            build(
                AccessLog,
                user_id=rng.choice(_USERS),
                resource_type="stream",
                resource_id=f"{rng.choice(state.stores)}/order-{rng.randint(1, 5000)}",
                action="read",
                success=rng.random() > 0.05,
                duration_ms=round(rng.uniform(0.3, 12), 3),
                node=node.name,
            ),
        )
    )
    if state.chance(0.02, "admin_action"):
        out.append(
            (
                "audit",
                build(
                    AdminAction,
                    admin_user_id="alice",
                    action_type=rng.choice(("config_updated", "permissions_changed")),
                    target_resource=rng.choice(state.stores),
                    details={"by": "demo"},
                    justification="routine maintenance",
                    node=node.name,
                ),
            )
        )
    if state.chance(0.005, "compliance_event"):
        out.append(("audit", _compliance(state, build, node)))
    return out


def _compliance(state: ClusterState, build: Build, node: SimNode) -> Message:
    """A retention run archiving old events, or a user's data exported or erased on request."""
    rng = state.rng
    store = rng.choice(state.stores)
    kind = rng.choices(("data_retention", "data_export", "data_deletion"), (6, 2, 1))[0]
    if kind == "data_retention":
        return build(
            ComplianceEvent,
            event_type=kind,
            compliance_rule="retain_events_90_days",
            affected_data={"store_id": store, "events": rng.randint(100, 20_000)},
            action_taken="archived the events older than 90 days",
            automated=True,
            node=node.name,
        )
    return build(
        ComplianceEvent,
        event_type=kind,
        compliance_rule="gdpr_subject_request",
        affected_data={"store_id": store, "streams": rng.randint(1, 12)},
        action_taken="exported on request" if kind == "data_export" else "erased on request",
        user_id="carol",
        node=node.name,
    )


def features(state: ClusterState, build: Build) -> Pairs:
    """Now and then an operator switches a feature on or off on one node."""
    rng = state.rng
    if not state.chance(1 / 240, "feature_toggle"):
        return []
    node = state.pick_up()
    key = (node.name, rng.choice(_FEATURES))
    before = state.features.get(key, False)
    state.features[key] = not before
    return [
        (
            "system",
            build(
                FeatureToggle,
                feature=key[1],
                enabled=not before,
                previous_state=before,
                changed_by="alice",
                node=node.name,
            ),
        )
    ]


def diagnostics(state: ClusterState, build: Build) -> Pairs:
    """A step's diagnostics: traces, error analyses, a process restart, hotspots of busy nodes."""
    out: Pairs = []
    rng = state.rng
    node = state.pick_up()
    if state.chance(0.1, "debug_trace"):
        out.append(
            (
                "diagnostics",
                build(
                    DebugTrace,
                    component=rng.choice(state.stores),
                    operation="stream_append",
                    trace_data={"events": rng.randint(1, 50)},
                    duration_ms=round(rng.uniform(0.5, 30), 3),
                    node=node.name,
                    metadata={},
                ),
            )
        )
    if state.chance(0.05, "error_analysis"):
        out.append(
            (
                "diagnostics",
                build(
                    ErrorAnalysis,
                    error_type="timeout",
                    error_message="emitter did not acknowledge in time",
                    context={"store_id": rng.choice(state.stores)},
                    frequency=rng.randint(1, 5),
                    node=node.name,
                ),
            )
        )
    if state.chance(0.02, "process_restart"):
        # An emitter worker crashes and its supervisor restarts it.
        store = rng.choice(state.stores)
        out.append(process(state, build, node, store, "crashed"))
        out.append(process(state, build, node, store, "restarted"))
        out.append(
            (
                "lifecycle",
                build(
                    SupervisionEvent,
                    supervisor="ExESDB.EmitterSystem",
                    child_spec={"id": f"{store}_emitter_pool"},
                    event="child_started",
                    node=node.name,
                    reason="restart after crash",
                ),
            )
        )
    if state.chance(0.005, "performance_analysis"):
        # A routine look at a store's write path, finding nothing to worry about.
        out.append(
            (
                "diagnostics",
                build(
                    PerformanceAnalysis,
                    analysis_id=f"analysis_{rng.getrandbits(48):012x}",
                    component=rng.choice(("persistence", "emitter_pool")),
                    analysis_type=rng.choice(("bottleneck", "io_analysis")),
                    findings={
                        "store_id": rng.choice(state.stores),
                        "p99_ms": round(rng.uniform(2, 9), 2),
                    },
                    recommendations=[],
                    severity="low",
                    node=node.name,
                ),
            )
        )
    if node.status != "healthy" and rng.random() < 0.1:
        out.append(
            (
                "diagnostics",
                build(
                    PerformanceAnalysis,
                    analysis_id=f"analysis_{rng.getrandbits(48):012x}",
                    component="persistence",
                    analysis_type="cpu_hotspot",
                    findings={"cpu_percent": round(node.cpu, 1)},
                    recommendations=["add a node", "lower the snapshot frequency"],
                    severity="high" if node.status == "unhealthy" else "medium",
                    node=node.name,
                ),
            )
        )
    return out


def snapshots(state: ClusterState, build: Build) -> Pairs:
    """Each node that is up takes a system state snapshot every ``_SNAPSHOT_EVERY`` steps."""
    out: Pairs = []
    rng = state.rng
    for index, node in enumerate(state.nodes):
        if not node.up or (state.steps - 1 - index * _SNAPSHOT_STAGGER) % _SNAPSHOT_EVERY:
            continue
        out.append(
            (
                "diagnostics",
                build(
                    SystemState,
                    snapshot_id=f"snapshot_{rng.getrandbits(48):012x}",
                    snapshot_type="partial",
                    state_data={"schedulers": 8, "ets_tables": rng.randint(90, 140)},
                    process_count=rng.randint(1_800, 2_600),
                    memory_usage=int(NODE_MEMORY_BYTES * node.memory / 100),
                    node=node.name,
                    trigger_reason="periodic",
                ),
            )
        )
    return out


def _random_ip(rng: random.Random) -> str:
    return f"203.0.113.{rng.randint(1, 254)}"
