"""The integration API after ExESDB.PubSubIntegration (bridge/integration.py)."""

from __future__ import annotations

import asyncio
import inspect
import pydoc
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import pytest

import bridge.integration as api
from bridge.app import Bridge
from bridge.bus import Envelope, PublishStatus
from bridge.errors import MessageError
from bridge.integration import Integration
from bridge.messages import (
    ClusterHealth,
    ClusterMembership,
    ComponentHealth,
    DataChange,
    DebugTrace,
    LogEntry,
    Message,
    NodeLifecycle,
    PerformanceMetric,
    SystemAlert,
    SystemConfig,
    SystemLifecycle,
    ThroughputMetric,
)
from bridge.operations import LatencyHistogram, OperationRecorder
from bridge.settings import Settings
from tests.support import async_wait_until, make_settings, nested_map


class Inbox:
    """Every envelope the bus delivers."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    def __call__(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def pairs(self) -> list[tuple[str, type[Message]]]:
        return [(envelope.topic, type(envelope.payload)) for envelope in self.envelopes]


@pytest.fixture
async def running() -> AsyncIterator[Bridge]:
    """A bridge with its bus running (no HTTP server, no components)."""
    bridge = Bridge(
        make_settings(
            EXESDB_HEALTH_BROADCAST_INTERVAL="1500", EXESDB_METRICS_BROADCAST_INTERVAL="2500"
        ),
        components=[],
    )
    bridge.integration.recorder = OperationRecorder()
    await bridge.start(serve_http=False)
    yield bridge
    await bridge.aclose()


@pytest.fixture
async def inbox(running: Bridge) -> Inbox:
    """Subscribed to everything on the running bridge's bus."""
    collected = Inbox()
    running.bus.subscribe("inbox", collected)
    return collected


async def _settle(bridge: Bridge) -> None:
    await async_wait_until(
        lambda: all(subscription.idle for subscription in bridge.bus.subscriptions),
        what="subscribers idle",
    )


BROADCASTS: list[tuple[str, Callable[[Integration], Any], list[tuple[str, type[Message]]]]] = [
    (
        "system_lifecycle",
        lambda i: i.broadcast_system_lifecycle("started", "ex_esdb", "0.8.0"),
        [("lifecycle", SystemLifecycle)],
    ),
    (
        "system_config",
        lambda i: i.broadcast_system_config("store", {"pool_size": 10}, changed_by="ops"),
        [("config", SystemConfig)],
    ),
    (
        "health_update",
        lambda i: i.broadcast_health_update("persistence", "degraded", {"lag_ms": 40}),
        [("persistence:health", ComponentHealth)],
    ),
    (
        "store_health",
        lambda i: i.broadcast_store_health("store1", "persistence", "healthy"),
        [("store1:health", ComponentHealth)],
    ),
    (
        "cluster_health",
        lambda i: i.broadcast_cluster_health(["n1", "n2", "n3"], ["n3"], "node_down"),
        [("cluster:health", ClusterHealth), ("cluster:membership", ClusterMembership)],
    ),
    (
        "cluster_status",
        lambda i: i.broadcast_cluster_health(["n1", "n2"], [], "status_update"),
        [("cluster:health", ClusterHealth)],
    ),
    (
        "metrics",
        lambda i: i.broadcast_metrics(
            "store", {"duration_ms": 1000, "operations_count": 50, "label": "x"}
        ),
        [("store", PerformanceMetric), ("store", PerformanceMetric), ("store", ThroughputMetric)],
    ),
    (
        "alert",
        lambda i: i.broadcast_alert("node_failure", "critical", "Node down", {"node": "n3"}),
        [("node_failure", SystemAlert)],
    ),
    (
        "audit_event",
        lambda i: i.broadcast_audit_event(
            "data_change", user_id="u1", resource_type="stream", resource_id="s1", action="create"
        ),
        [("audit", DataChange)],
    ),
    (
        "lifecycle_event",
        lambda i: i.broadcast_lifecycle_event(
            "node_lifecycle_event", event="joined", cluster_size=3
        ),
        [("lifecycle", NodeLifecycle)],
    ),
    (
        "diagnostic",
        lambda i: i.broadcast_diagnostic(
            "debug_trace", component="store", operation="append", topic="traces"
        ),
        [("traces", DebugTrace)],
    ),
    (
        "broadcast_by_tag",
        lambda i: i.broadcast("log_entry", level="info", message="hello", module="store"),
        [("log_entry", LogEntry)],
    ),
]


@pytest.mark.parametrize(
    ("call", "expected"),
    [(call, expected) for _, call, expected in BROADCASTS],
    ids=[name for name, _, _ in BROADCASTS],
)
async def test_each_broadcast_publishes_the_right_model_on_the_right_topic(
    running: Bridge,
    inbox: Inbox,
    call: Callable[[Integration], Any],
    expected: list[tuple[str, type[Message]]],
) -> None:
    """Every broadcast function publishes its message type(s) on the conventional topic."""
    result = call(running.integration)
    assert result.status is PublishStatus.PUBLISHED
    await async_wait_until(lambda: len(inbox.envelopes) >= len(expected), what="delivery")
    await _settle(running)
    assert inbox.pairs() == expected
    assert all(envelope.node == "node1@host" for envelope in inbox.envelopes)


# Each helper with topic= given: the calls of BROADCASTS, the message types they publish there.
ELSEWHERE: Final[list[tuple[str, Callable[[Any], Any], list[type[Message]]]]] = [
    (
        "system_lifecycle",
        lambda i: i.broadcast_system_lifecycle("started", "ex_esdb", "0.8.0", topic="t"),
        [SystemLifecycle],
    ),
    (
        "system_config",
        lambda i: i.broadcast_system_config("s", {"a": 1}, topic="t"),
        [SystemConfig],
    ),
    (
        "health_update",
        lambda i: i.broadcast_health_update("p", "healthy", topic="t"),
        [ComponentHealth],
    ),
    (
        "store_health",
        lambda i: i.broadcast_store_health("s1", "p", "healthy", topic="t"),
        [ComponentHealth],
    ),
    (
        "cluster_health",
        lambda i: i.broadcast_cluster_health(["n1"], [], "status_update", topic="t"),
        [ClusterHealth],
    ),
    (
        "metrics",
        lambda i: i.broadcast_metrics("store", {"a_count": 1}, topic="t"),
        [PerformanceMetric],
    ),
    (
        "alert",
        lambda i: i.broadcast_alert("node_failure", "critical", "down", topic="t"),
        [SystemAlert],
    ),
    (
        "audit_event",
        lambda i: i.broadcast_audit_event(
            "data_change",
            user_id="u",
            resource_type="r",
            resource_id="r1",
            action="create",
            topic="t",
        ),
        [DataChange],
    ),
    (
        "lifecycle_event",
        lambda i: i.broadcast_lifecycle_event(
            "node_lifecycle_event", event="joined", cluster_size=3, topic="t"
        ),
        [NodeLifecycle],
    ),
    (
        "diagnostic",
        lambda i: i.broadcast_diagnostic("debug_trace", component="s", operation="a", topic="t"),
        [DebugTrace],
    ),
    (
        "broadcast_by_tag",
        lambda i: i.broadcast("log_entry", "t", level="info", message="m", module="s"),
        [LogEntry],
    ),
]


@pytest.mark.parametrize(
    ("call", "expected"),
    [(call, expected) for _, call, expected in ELSEWHERE],
    ids=[name for name, _, _ in ELSEWHERE],
)
async def test_topic_given_moves_each_broadcast_to_it(
    running: Bridge, inbox: Inbox, call: Callable[[Any], Any], expected: list[type[Message]]
) -> None:
    """Every broadcast but the batch takes topic= (docs/integration.md) and publishes there."""
    assert call(running.integration).status is PublishStatus.PUBLISHED
    await async_wait_until(lambda: len(inbox.envelopes) >= len(expected), what="delivery")
    await _settle(running)
    assert inbox.pairs() == [("t", model) for model in expected]


async def test_cluster_health_computes_status_and_quorum(running: Bridge, inbox: Inbox) -> None:
    """One failed node of three is degraded with quorum; two of three is unhealthy, quorum lost.

    Failed nodes are down: counted out of healthy_nodes, listed as neither degraded nor unhealthy.
    """
    running.integration.broadcast_cluster_health(["n1", "n2", "n3"], ["n3"], "status_update")
    running.integration.broadcast_cluster_health(["n1", "n2", "n3"], ["n2", "n3"], "node_down")
    await async_wait_until(lambda: len(inbox.envelopes) == 3, what="three messages")
    first, second = (e.payload for e in inbox.envelopes if isinstance(e.payload, ClusterHealth))
    assert isinstance(first, ClusterHealth)
    assert isinstance(second, ClusterHealth)
    assert (first.status, first.quorum_status, first.healthy_nodes, first.total_nodes) == (
        "degraded",
        "available",
        2,
        3,
    )
    assert (
        second.status,
        second.quorum_status,
        second.healthy_nodes,
        second.total_nodes,
        second.unhealthy_nodes,
        second.degraded_nodes,
    ) == ("unhealthy", "lost", 1, 3, [], [])
    membership = inbox.envelopes[2].payload
    assert isinstance(membership, ClusterMembership)
    assert (membership.event, membership.affected_nodes) == ("node_removed", ["n2", "n3"])


async def test_metrics_skip_non_finite_entries_as_they_skip_non_numeric_ones(
    running: Bridge, inbox: Inbox
) -> None:
    """broadcast_metrics leaves out a NaN or infinite entry (a duration_ms too: no throughput)
    as it leaves out a non-numeric one, and publishes the rest."""
    result = running.integration.broadcast_metrics(
        "db",
        {
            "ok_ms": 3.0,
            "ratio_percent": float("nan"),
            "load": float("-inf"),
            "state": "warm",
            "duration_ms": float("inf"),
            "operations_count": 5,
        },
    )
    assert result.status is PublishStatus.PUBLISHED
    await async_wait_until(lambda: len(inbox.envelopes) == 2, what="two metrics")
    await _settle(running)
    published = [
        (metric.metric_name, metric.value)
        for metric in (envelope.payload for envelope in inbox.envelopes)
        if isinstance(metric, PerformanceMetric)
    ]
    assert published == [("ok_ms", 3.0), ("operations_count", 5.0)]


async def test_a_metric_named_without_a_unit_suffix_is_published_with_unit_1(
    running: Bridge, inbox: Inbox
) -> None:
    """A metric whose name has none of the unit suffixes (events_per_second, queue_depth) is
    published as a plain number, unit "1", beside the suffixed ones: no MessageError."""
    result = running.integration.broadcast_metrics(
        "orders", {"events_per_second": 1250, "queue_depth": 3, "latency_ms": 2.5}
    )
    assert result.status is PublishStatus.PUBLISHED
    await async_wait_until(lambda: len(inbox.envelopes) == 3, what="three metrics")
    units = {
        envelope.payload.metric_name: envelope.payload.unit
        for envelope in inbox.envelopes
        if isinstance(envelope.payload, PerformanceMetric)
    }
    assert units == {"events_per_second": "1", "queue_depth": "1", "latency_ms": "ms"}


async def test_metrics_with_only_non_finite_values_raise_and_publish_nothing(
    running: Bridge, inbox: Inbox
) -> None:
    """A map whose every number is a NaN or an infinity has nothing to publish: MessageError."""
    with pytest.raises(MessageError, match="metrics: no numeric value"):
        running.integration.broadcast_metrics("db", {"a": float("nan"), "b": float("inf")})
    await _settle(running)
    assert inbox.envelopes == []


async def test_alert_is_about_the_node_in_its_context(running: Bridge, inbox: Inbox) -> None:
    """broadcast_alert's message is the title; context['node'] names the node it is about."""
    running.integration.broadcast_alert(
        "node_failure", "critical", "Node down", {"node": "n3", "reason": "timeout"}
    )
    await async_wait_until(lambda: inbox.envelopes, what="alert")
    alert = inbox.envelopes[0].payload
    assert isinstance(alert, SystemAlert)
    assert (alert.severity, alert.title, alert.node, alert.source) == (
        "critical",
        "Node down",
        "n3",
        "node_failure",
    )
    assert alert.requires_ack is True
    assert alert.metadata == {"node": "n3", "reason": "timeout"}
    assert inbox.envelopes[0].node == "node1@host"


# Any, not Integration: these calls pass wrong types on purpose. Each names a pattern its error
# matches.
BAD_CALLS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("lifecycle_event", lambda i: i.broadcast_system_lifecycle("exploded", "x", "1"), "event"),
    ("lifecycle_version", lambda i: i.broadcast_system_lifecycle("started", "x", 8), "version"),
    ("config_changes", lambda i: i.broadcast_system_config("store", ["a"]), "changes"),
    ("health_status", lambda i: i.broadcast_health_update("store", "sick"), "status"),
    ("store_status", lambda i: i.broadcast_store_health("s1", "p", "sick"), "status"),
    ("store_topic", lambda i: i.broadcast_store_health("bad id", "p", "healthy"), "topic"),
    ("cluster_event", lambda i: i.broadcast_cluster_health(["n1"], [], "meh"), "event_type"),
    ("metrics_empty", lambda i: i.broadcast_metrics("store", {}), "metrics"),
    ("alert_severity", lambda i: i.broadcast_alert("node_failure", "huge", "x"), "severity"),
    (
        "alert_category",
        lambda i: i.broadcast_alert("node_failure", "error", "x", category="weather"),
        "category",
    ),
    ("alert_topic", lambda i: i.broadcast_alert("node failure", "error", "x"), "topic"),
    (
        "alert_context_too_deep",
        lambda i: i.broadcast_alert("node_failure", "error", "x", context=nested_map(70)),
        "payload.metadata.a",
    ),
    ("audit_tag", lambda i: i.broadcast_audit_event("system_alert"), "tag"),
    ("audit_field", lambda i: i.broadcast_audit_event("data_change", user_id="u"), "resource"),
    ("lifecycle_tag", lambda i: i.broadcast_lifecycle_event("log_entry"), "tag"),
    ("diagnostic_tag", lambda i: i.broadcast_diagnostic("auth_event"), "tag"),
    ("unknown_tag", lambda i: i.broadcast("no_such_tag"), "tag"),
    (
        "given_rate_infinite",
        lambda i: i.broadcast(
            "throughput_metric", operation="a", count=1, duration_ms=5, rate_per_sec=float("inf")
        ),
        "rate_per_sec",
    ),
    (
        "extra_field",
        lambda i: i.broadcast("log_entry", level="info", message="m", module="m", x=1),
        "x",
    ),
    # A misspelt option is refused, not ignored: the error names it and the option meant.
    (
        "alert_option_misspelt",
        lambda i: i.broadcast_alert("disk_full", "error", "x", requires_akc=False, sorce="me"),
        r"requires_akc: is not an option of broadcast_alert \(did you mean 'requires_ack'\?\); "
        r"sorce: .*'source'",
    ),
    (
        "metrics_option_misspelt",
        lambda i: i.broadcast_metrics("store", {"a_count": 1}, tagz={"k": "v"}),
        r"tagz: .*\(did you mean 'tags'\?\)",
    ),
    (
        "config_option_misspelt",
        lambda i: i.broadcast_system_config("store", {"a": 1}, changedby="ops"),
        r"changedby: .*\(did you mean 'changed_by'\?\)",
    ),
    (
        "lifecycle_option_unknown",
        lambda i: i.broadcast_system_lifecycle("started", "x", "1", colour="red"),
        r"colour: is not an option of broadcast_system_lifecycle \(its options: event,"
        r" system_name, version, topic\)",
    ),
    # A positional parameter named by keyword is an option too.
    (
        "alert_context_misspelt",
        lambda i: i.broadcast_alert("disk_full", "error", "x", contxt={"node": "db-1"}),
        r"contxt: is not an option of broadcast_alert \(did you mean 'context'\?\)",
    ),
    (
        "health_details_misspelt",
        lambda i: i.broadcast_health_update("store", "healthy", detail={"a": 1}),
        r"detail: .*\(did you mean 'details'\?\)",
    ),
    (
        "health_option_misspelt",
        lambda i: i.broadcast_health_update("store", "healthy", topik="t"),
        "topik",
    ),
    (
        "store_health_option_misspelt",
        lambda i: i.broadcast_store_health("s1", "p", "healthy", topik="t"),
        "topik",
    ),
    (
        "cluster_option_misspelt",
        lambda i: i.broadcast_cluster_health(["n1"], [], "status_update", topik="t"),
        "topik",
    ),
]


EACH_BAD_CALL: Final = pytest.mark.parametrize(
    ("call", "field"),
    [(call, field) for _, call, field in BAD_CALLS],
    ids=[name for name, _, _ in BAD_CALLS],
)


@EACH_BAD_CALL
async def test_bad_arguments_raise_value_error_naming_the_field(
    running: Bridge, inbox: Inbox, call: Callable[[Integration], Any], field: str
) -> None:
    """A bad argument raises ValueError whose message names the field, and nothing is published."""
    with pytest.raises(ValueError, match=field):
        call(running.integration)
    await _settle(running)
    assert inbox.envelopes == []


async def test_an_alert_nested_deeper_than_a_reader_decodes_is_refused_not_lost(
    running: Bridge, inbox: Inbox
) -> None:
    """An alert whose context nests past the bus's 64 levels raises MessageError naming where
    and the limit, and nothing is published or delivered (every reader would refuse it)."""
    with pytest.raises(MessageError, match=r"^payload\.metadata(\.a){62}: .*deeper than 64"):
        api.broadcast_alert("node_failure", "critical", "down", context=nested_map(70))
    await _settle(running)
    assert inbox.envelopes == []
    published = {"pubsub": SystemAlert.INSTANCE, "tag": "system_alert"}
    assert running.registry.get_sample_value("exesdb_bus_published_total", published) == 0


def _error_of(call: Callable[[Any], Any], target: Any) -> str:
    """The message of the MessageError (a ValueError) ``call(target)`` raises."""
    with pytest.raises(MessageError) as raised:
        call(target)
    return str(raised.value)


@EACH_BAD_CALL
async def test_bad_arguments_raise_the_same_error_while_disabled(
    running: Bridge, inbox: Inbox, call: Callable[[Integration], Any], field: str
) -> None:
    """Switched off, a bad argument still raises the error it raises when on; nothing is
    published."""
    expected = _error_of(call, running.integration)
    running.integration.disable()
    await _settle(running)
    inbox.envelopes.clear()  # the announcement of the switch
    assert _error_of(call, running.integration) == expected
    assert re.search(field, expected)
    await _settle(running)
    assert inbox.envelopes == []


@EACH_BAD_CALL
def test_bad_arguments_raise_the_same_error_without_a_bridge(
    call: Callable[[Any], Any], field: str
) -> None:
    """With no bridge installed a module function raises for a bad argument the error it raises
    with one, so a mistake shows where it is made, not later in production."""
    from tests.collectors.fakes import make_bus

    assert api.current() is None
    expected = _error_of(call, Integration(make_bus(socket.gethostname())))
    assert _error_of(call, api) == expected
    assert re.search(field, expected)


def test_a_message_with_several_faults_names_each_of_them() -> None:
    """A message missing two fields and giving a third of the wrong type raises one MessageError
    naming all three, as ingest's 400 does: one round of mending, not three; a missing field's
    message is not followed by the whole message as what it got."""
    message = _error_of(
        lambda target: target.broadcast("performance_metric", metric_name="m", unit=3), api
    )
    assert message == (
        "PerformanceMetric.value: Field required; "
        "PerformanceMetric.unit: Input should be a valid string (got 3); "
        "PerformanceMetric.component: Field required"
    )


def test_a_refused_value_is_quoted_on_one_line_its_hidden_characters_shown_and_cut_short() -> None:
    """A label value refused for a character drawn as nothing (a Hangul filler, which ``repr``
    leaves as it is) is quoted with that character escaped, and a long one cut short, as
    ``publish`` quotes it: the error says what was wrong and is not as long as what was sent."""
    given = "db\u3164" + "x" * 500
    message = _error_of(
        lambda target: target.broadcast(
            "performance_metric", metric_name="m", value=1, unit="ms", component=given
        ),
        api,
    )
    assert message.startswith("PerformanceMetric.component: a label value must not contain")
    quoted = message[message.index(" (got ") + len(" (got ") : -1]
    assert quoted.startswith("'db\\u3164xxx")
    assert quoted.endswith("…")
    assert len(quoted) == 80


@pytest.mark.parametrize("given", ["no", "false", 1, 0])
def test_a_boolean_given_as_text_or_a_number_is_refused_naming_the_field(given: object) -> None:
    """A boolean argument given as text or a number (``requires_ack="no"``, ``1``) raises a
    MessageError naming the field and saying it takes true or false, as ingest refuses it:
    "false" is not read as False, nor 1 as True."""
    message = _error_of(
        lambda target: target.broadcast_alert("disk_full", "error", "x", requires_ack=given), api
    )
    assert message == (
        f"SystemAlert.requires_ack: Input should be a boolean, true or false (got {given!r})"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda target: target.broadcast_alert("disk_full", "warn", "x"),
            "SystemAlert.severity: must be 'info', 'warning', 'error' or 'critical'; did you"
            " mean 'warning'? (got 'warn')",
        ),
        (
            lambda target: target.broadcast_alert("disk_full", "huge", "x"),
            "SystemAlert.severity: must be 'info', 'warning', 'error' or 'critical' (got 'huge')",
        ),
        (
            lambda target: target.broadcast("log_entry", level="info", message="m", modul="m"),
            "LogEntry.module: Field required; LogEntry.modul: not a field of log_entry; did you"
            " mean 'module'? (got 'm')",
        ),
        (
            lambda target: target.broadcast("performance_metrc"),
            "tag: 'performance_metrc' is not a known message type; did you mean"
            " 'performance_metric'?",
        ),
        (
            lambda target: target.broadcast("PerformanceMetric"),
            "tag: 'PerformanceMetric' is not a known message type; did you mean"
            " 'performance_metric'?",
        ),
        (
            lambda target: target.broadcast("nosuch"),
            "tag: 'nosuch' is not a known message type",
        ),
        (
            lambda target: target.broadcast_audit_event("data_changed"),
            "tag: 'data_changed' is not one of access_log, admin_action, compliance_event,"
            " data_change; did you mean 'data_change'?",
        ),
        (
            lambda target: target.broadcast_cluster_health(["n1"], [], "node_dwn"),
            "event_type: 'node_dwn' is not one of node_down, node_up, partition_detected,"
            " partition_healed, status_update; did you mean 'node_down'?",
        ),
    ],
    ids=[
        "word-misspelt",
        "word-unlike-any",
        "field-misspelt",
        "tag-misspelt",
        "tag-as-class-name",
        "tag-unlike-any",
        "kind-tag-misspelt",
        "event-type-misspelt",
    ],
)
def test_a_wrong_word_or_field_is_named_with_what_is_allowed_and_the_one_meant(
    call: Callable[[Any], Any], message: str
) -> None:
    """A word a field does not take names the words it takes, a field the message type does
    not have says so by its tag, and a tag or event type no call takes says so, each with the
    one meant when it is spelt nearly as one, as publish and ingest say them."""
    assert _error_of(call, api) == message


@pytest.mark.parametrize(
    "call", [call for _, call, _ in BROADCASTS], ids=[name for name, _, _ in BROADCASTS]
)
def test_without_a_bridge_every_broadcast_returns_disabled(call: Callable[[Any], Any]) -> None:
    """With no bridge installed a good call of each module function returns 'disabled' with the
    reason."""
    assert api.current() is None
    result = call(api)
    assert result.status is PublishStatus.DISABLED
    assert result.reason == "no bridge is installed"


@pytest.mark.parametrize(
    "call", [call for _, call, _ in BROADCASTS], ids=[name for name, _, _ in BROADCASTS]
)
async def test_disabled_publishes_nothing_and_says_so(
    running: Bridge, call: Callable[[Integration], Any]
) -> None:
    """While disabled every broadcast returns 'disabled' and nothing reaches the bus."""
    running.integration.disable()
    inbox = Inbox()
    running.bus.subscribe("after-disable", inbox)
    result = call(running.integration)
    assert result.status is PublishStatus.DISABLED
    assert not result
    await _settle(running)
    assert inbox.envelopes == []


async def test_enable_and_disable_announce_themselves_with_system_config(
    running: Bridge, inbox: Inbox
) -> None:
    """Switching publishes SystemConfig on 'config'; a switch to the same state publishes none."""
    running.integration.disable()
    running.integration.disable()
    assert not running.integration.enabled()
    running.integration.enable()
    running.integration.enable()
    assert running.integration.enabled()
    await async_wait_until(lambda: len(inbox.envelopes) == 2, what="two announcements")
    await _settle(running)
    announcements = [envelope.payload for envelope in inbox.envelopes]
    assert [envelope.topic for envelope in inbox.envelopes] == ["config", "config"]
    assert all(isinstance(message, SystemConfig) for message in announcements)
    assert [message.changes for message in announcements] == [  # type: ignore[attr-defined]
        {"enabled": False},
        {"enabled": True},
    ]
    assert all(
        message.component == "pubsub_integration"  # type: ignore[attr-defined]
        for message in announcements
    )


async def test_intervals_come_from_the_settings(running: Bridge) -> None:
    """The interval getters return the configured milliseconds."""
    assert running.integration.health_broadcast_interval() == 1500
    assert running.integration.metrics_broadcast_interval() == 2500


async def test_module_functions_act_on_the_installed_integration(
    running: Bridge, inbox: Inbox
) -> None:
    """bridge.integration's functions use the running bridge's integration."""
    assert api.current() is running.integration
    assert api.enabled()
    assert api.health_broadcast_interval() == 1500
    assert api.metrics_broadcast_interval() == 2500
    result = api.broadcast_alert("store_failure", "error", "Store down")
    assert result.status is PublishStatus.PUBLISHED
    api.disable()
    assert not api.enabled()
    assert api.broadcast_health_update("store", "healthy").status is PublishStatus.DISABLED
    api.enable()
    await async_wait_until(lambda: len(inbox.envelopes) == 3, what="alert and two switches")


def test_module_functions_show_the_signature_of_their_method_without_self() -> None:
    """help() and inspect.signature show each module function as it is called,
    ``broadcast_alert(alert_type, severity, ...)``, not with its method's ``(self, /, ...)``."""
    functions = {
        name: function
        for name, function in vars(api).items()
        if name.startswith("broadcast") and hasattr(function, "__wrapped__")
    }
    assert {"broadcast", "broadcast_alert", "broadcast_health_update"} <= set(functions)
    for name, function in functions.items():
        method = inspect.signature(getattr(Integration, name))
        shown = inspect.signature(function)
        assert list(shown.parameters.values()) == list(method.parameters.values())[1:], name
        assert shown.return_annotation == method.return_annotation, name
    shown_alert = pydoc.plain(pydoc.render_doc(api.broadcast_alert))
    assert "broadcast_alert(alert_type: 'str', severity: 'str', message: 'str'," in shown_alert


def test_without_a_bridge_the_first_broadcast_warns_once_how_to_install_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Broadcasts with no bridge installed log ONE warning, naming the call and how to install a
    bridge; installing one and losing it again makes the next call warn again."""
    from tests.collectors.fakes import make_bus

    api.install(Integration(make_bus()))  # whatever ran before, a spell without a bridge starts
    api.install(None)
    with caplog.at_level("WARNING", logger="bridge.integration"):
        api.broadcast_alert("node_failure", "critical", "x")
        api.broadcast_metrics("store", {"latency_ms": 3})
        api.broadcast_batch([])
    [record] = caplog.records
    message = record.getMessage()
    assert record.levelname == "WARNING"
    assert message.startswith("broadcast_alert() published nothing: no bridge is installed")
    assert "bridge.app.Bridge(settings).start()" in message
    # A pip install's user has no examples/ or docs/: the repository they are read in is named.
    repository = "of the source repository, https://github.com/exesdb/exesdb-bridge"
    for cited in ("examples/integration_api.py", "docs/integration.md"):
        assert f"{cited} {repository}" in message
    api.install(Integration(make_bus()))
    api.install(None)
    with caplog.at_level("WARNING", logger="bridge.integration"):
        api.broadcast_health_update("store", "healthy")
        api.broadcast_health_update("store", "healthy")
    assert [r.getMessage().split("(")[0] for r in caplog.records] == [
        "broadcast_alert",
        "broadcast_health_update",
    ]


def test_module_functions_without_a_bridge_publish_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no bridge installed, broadcasts return 'disabled', the switch stays off whatever
    enable() says, and the getters give the settings' defaults, not the environment's
    (docs/integration.md, "Without a bridge")."""
    monkeypatch.setenv("EXESDB_HEALTH_BROADCAST_INTERVAL", "1234")
    monkeypatch.setenv("EXESDB_METRICS_BROADCAST_INTERVAL", "5678")
    assert api.current() is None
    result = api.broadcast_alert("node_failure", "critical", "x")
    assert result.status is PublishStatus.DISABLED
    api.enable()
    assert not api.enabled()
    defaults = Settings.model_construct()  # only the defaults: no environment is read
    assert api.health_broadcast_interval() == defaults.health_broadcast_interval
    assert api.metrics_broadcast_interval() == defaults.metrics_broadcast_interval


# -- broadcast_batch --


def _alert(title: str) -> SystemAlert:
    return SystemAlert(
        severity="info", category="system", title=title, description=title, source="t", node="n"
    )


async def test_broadcast_batch_publishes_every_message(running: Bridge, inbox: Inbox) -> None:
    """A batch of messages and (topic, message) pairs is published in order."""
    results = running.integration.broadcast_batch(
        [_alert("one"), ("custom:topic", _alert("two")), _alert("three")]
    )
    assert [result.status for result in results] == [PublishStatus.PUBLISHED] * 3
    await async_wait_until(lambda: len(inbox.envelopes) == 3, what="three")
    assert [envelope.topic for envelope in inbox.envelopes] == [
        "system_alert",
        "custom:topic",
        "system_alert",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        ("bad topic", _alert("x")),
        ("topic", "not a message"),
        "not an event",
        42,
        ("a", "b", "c"),
        None,
        _alert("deep").model_copy(update={"metadata": nested_map(70)}),
    ],
)
async def test_broadcast_batch_is_all_or_nothing(running: Bridge, inbox: Inbox, bad: Any) -> None:
    """One bad event raises ValueError naming its position, and none of the batch is published."""
    with pytest.raises(ValueError, match=r"events\[1\]"):
        running.integration.broadcast_batch([_alert("good"), bad, _alert("also good")])
    await _settle(running)
    assert inbox.envelopes == []


def test_broadcast_batch_without_a_bridge_checks_each_event_and_answers_each() -> None:
    """With no bridge installed a batch gets one 'disabled' per message, and a bad event raises
    naming its position as with a bridge."""
    assert api.current() is None
    results = api.broadcast_batch([_alert("one"), ("custom:topic", _alert("two"))])
    assert [result.status for result in results] == [PublishStatus.DISABLED] * 2
    with pytest.raises(ValueError, match=r"events\[1\]"):
        api.broadcast_batch([_alert("good"), ("bad topic", _alert("bad"))])


# -- track --


def _snapshot(recorder: OperationRecorder) -> dict[str, tuple[int, int]]:
    return {snap.operation: (snap.succeeded, snap.failed) for snap in recorder.drain()}


async def test_track_as_context_manager_records_success_and_failure(running: Bridge) -> None:
    """track() times a block; an exception is recorded as a failure and propagates."""
    integration = running.integration
    with integration.track("append"):
        pass
    with pytest.raises(RuntimeError), integration.track("append"):
        raise RuntimeError("boom")
    async with integration.track("read"):
        await asyncio.sleep(0)
    with pytest.raises(KeyError):
        async with integration.track("read"):
            raise KeyError("x")
    assert _snapshot(integration.recorder) == {"append": (1, 1), "read": (1, 1)}


async def test_track_as_decorator_records_sync_and_async_functions(running: Bridge) -> None:
    """track() decorates plain and async functions, keeping their results and exceptions."""
    integration = running.integration

    @integration.track("sync_op")
    def double(value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value * 2

    @integration.track("async_op")
    async def triple(value: int) -> int:
        await asyncio.sleep(0)
        if value < 0:
            raise ValueError("negative")
        return value * 3

    assert double(2) == 4
    assert await triple(2) == 6
    with pytest.raises(ValueError, match="negative"):
        double(-1)
    with pytest.raises(ValueError, match="negative"):
        await triple(-1)
    assert double.__name__ == "double"
    assert asyncio.iscoroutinefunction(triple)
    assert _snapshot(integration.recorder) == {"sync_op": (1, 1), "async_op": (1, 1)}


async def test_track_records_the_time_spent_inside_the_block() -> None:
    """The recorded latency is the injected timer's advance between entering and leaving."""
    readings = iter([10.0, 10.25, 20.0, 23.0])
    bus = Bridge(make_settings(), components=[]).bus
    integration = Integration(bus, recorder=OperationRecorder(), timer=lambda: next(readings))
    with integration.track("block"):
        pass

    @integration.track("function")
    async def work() -> None:
        pass

    await work()
    latencies = {snap.operation: snap.latency.maximum for snap in integration.recorder.drain()}
    assert latencies == {"block": 0.25, "function": 3.0}


async def test_module_track_uses_the_installed_recorder(running: Bridge) -> None:
    """bridge.integration.track records into the running bridge's recorder."""
    with api.track("module_op"):
        pass
    assert _snapshot(running.integration.recorder) == {"module_op": (1, 0)}


def test_record_each_records_under_every_name_within_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """record_each() times each named operation; names past the cap are dropped, warned once."""
    recorder = OperationRecorder(max_operations=2)
    recorder.record_each(("bus.delivery", "bus.x", "bus.y"), 0.5)
    recorder.record_each(("bus.delivery", "bus.x", "bus.y"), 0.25)
    recorder.record("bus.z", 0.1)
    snapshots = {snap.operation: snap for snap in recorder.drain()}
    assert set(snapshots) == {"bus.delivery", "bus.x"}
    for snap in snapshots.values():
        assert (snap.succeeded, snap.failed) == (2, 0)
        assert (snap.latency.minimum, snap.latency.maximum) == (0.25, 0.5)
    warnings = [r for r in caplog.records if r.name == "bridge.operations"]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert "further new names are not recorded" in warnings[0].getMessage()


def test_histogram_add_many_equals_repeated_add() -> None:
    """LatencyHistogram.add_many(s, n) leaves the same figures as n calls of add(s)."""
    one_by_one, at_once = LatencyHistogram(), LatencyHistogram()
    for seconds, count in ((0.003, 4), (-1.0, 2), (1e-7, 1), (9e9, 3), (0.5, 0)):
        for _ in range(count):
            one_by_one.add(seconds)
        at_once.add_many(seconds, count)
    assert at_once.counts == one_by_one.counts
    assert (at_once.count, at_once.minimum, at_once.maximum) == (
        one_by_one.count,
        one_by_one.minimum,
        one_by_one.maximum,
    )
    assert at_once.total == pytest.approx(one_by_one.total)
