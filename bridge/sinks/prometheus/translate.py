"""What each of the 36 message types becomes in Prometheus (docs/metrics.md).

``Translator.handle_batch(envelopes, failed)`` updates the series of verified messages, in the
families ``families.FAMILIES`` lists (docs/metrics.md's catalog). A message's ``node`` label is
the payload's node, else the envelope's (the publishing node).
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Final, get_args

from bridge.bus import Envelope
from bridge.messages import (
    MESSAGE_TYPES,
    SECURITY_SEVERITY,
    AccessLog,
    AccessViolation,
    AdminAction,
    AlertAck,
    AlertEscalation,
    AuthEvent,
    ClusterHealth,
    ClusterMembership,
    ComplianceEvent,
    ComponentHealth,
    DataChange,
    DebugTrace,
    ErrorAnalysis,
    FeatureToggle,
    HealthCheck,
    LogEntry,
    LogFilter,
    LogRotation,
    LogSummary,
    MetricAlert,
    NodeLifecycle,
    NotificationStatus,
    PerformanceAnalysis,
    ProcessLifecycle,
    SecurityAlert,
    SessionEvent,
    SupervisionEvent,
    SystemAlert,
    SystemConfig,
    SystemLifecycle,
    SystemState,
)
from bridge.messages.health import (
    HealthStatus,
    NodeStatus,
    healthy_resources,
    resource_metric,
    resource_of_metric,
)
from bridge.messages.system import SystemEvent
from bridge.sinks.prometheus.families import FAMILIES
from bridge.sinks.prometheus.kept import KeptStates
from bridge.sinks.prometheus.store import Family, Series, SeriesStore

__all__ = ["ERROR_TOPIC_SUFFIX", "QUANTILES", "Translator"]

# A tag's (instance, tag): the labels its messages are counted under.
_MESSAGE_LABELS: Final = {tag: (instance, tag) for instance, tag in MESSAGE_TYPES}

# The state sets' states: the messages' own vocabularies, so the two cannot drift apart.
NODE_STATES: Final[tuple[str, ...]] = get_args(NodeStatus)
# Each node status's state set values, in NODE_STATES' order.
_NODE_STATE_VALUES: Final = {
    status: tuple(1.0 if state == status else 0.0 for state in NODE_STATES)
    for status in NODE_STATES
}
COMPONENT_STATES: Final[tuple[str, ...]] = get_args(HealthStatus)
SYSTEM_STATES: Final[tuple[str, ...]] = get_args(SystemEvent)

QUANTILES: Final = {"p50": "0.5", "p95": "0.95", "p99": "0.99", "min": "0", "max": "1"}
"""LatencyMetric percentiles as summary ``quantile`` labels (``avg`` has its own gauge)."""

ERROR_TOPIC_SUFFIX: Final = ":error"
"""A ThroughputMetric on a topic ending so counts failed operations (``result="error"``)."""

# Readings: how a node, component or operation is now, sent again and again. One sent late
# (``Bus.late_after``: a frame a replica held through a Redis outage) says how it was: it sets no
# gauge, as the next one sent in time will (ThroughputMetric's and HealthCheck's counters still
# count what happened). Events (a toggle, a lifecycle event) set theirs, late or not: the last
# one known stands until the next.
_READINGS: Final = frozenset(
    {
        "node_health_updated",
        "cluster_health_updated",
        "component_health_updated",
        "health_check_completed",
        "performance_metric",
        "throughput_metric",
        "latency_metric",
        "resource_usage",
    }
)

_RESOURCE_GAUGES: Final = {
    "cpu": "exesdb_node_cpu_usage_percent",
    "memory": "exesdb_node_memory_usage_percent",
    "disk": "exesdb_node_disk_usage_percent",
    "network": "exesdb_node_network_usage_percent",
}
# The SystemAlerts counted, and the host resources' alerts last raised, each remembered at most
# (least recently sent forgotten first: such a one counts as raised once more when sent again).
_MAX_REMEMBERED: Final = 10_000

# The sink's own counts (what it translated, the states it kept no longer): a series of them
# never expires with the TTL.
_SELF_FAMILIES: Final = frozenset(
    {
        "exesdb_prometheus_messages",
        "exesdb_prometheus_late_readings",
        "exesdb_prometheus_kept_series_released",
    }
)


def _hold(
    held: dict[tuple[str, ...], tuple[Series, ...]],
    key: tuple[str, ...],
    *written: tuple[Family, tuple[str, ...]],
) -> None:
    # After a message's writes: hold their series for the next message with ``key``, once the
    # cap admitted each.
    series = [family.series(labels) for family, labels in written]
    if None not in series:
        held[key] = tuple(filter(None, series))


def _node(envelope: Envelope) -> str:
    node = getattr(envelope.payload, "node", None)
    return node if isinstance(node, str) and node else envelope.node


class Translator:
    """Turns verified envelopes into series in a ``SeriesStore``.

    The handlers of the most frequent messages read the payload's fields from the envelope's
    ``fields``, the message's type known from its tag: for a decoded message no model is built
    for them, and the Struct's attribute reads are specialised (pydantic's attribute hook,
    ``BaseModel.__getattr__``, keeps CPython from doing so on a model).
    """

    def __init__(
        self,
        store: SeriesStore,
        *,
        max_remembered: int = _MAX_REMEMBERED,
        late_after: timedelta | None = None,
    ) -> None:
        """``max_remembered``: how many SystemAlerts counted, and how many host resources'
        alerts raised, it remembers (each) to tell an alert sent again from a new one;
        ``late_after``: a reading sent later than this (0 or more) after it was made sets no
        gauge (``Bus.late_after``; None: every reading does)."""
        self._late_after = late_after
        self.store = store
        self._max_remembered = max_remembered
        self._f: dict[str, Family] = {
            name: store.family(name, kind, help_text, labels, expires=name not in _SELF_FAMILIES)
            for name, (kind, help_text, labels) in FAMILIES.items()
        }
        # alert_id -> severity of the SystemAlerts counted in exesdb_alerts_total: one sent
        # again at that severity repeats the alert, not raised again (``_system_alert``). Also
        # labels exesdb_alert_acknowledgements. Least recently sent first; bounded.
        self._alerts: OrderedDict[str, str] = OrderedDict()
        # (node, metric) -> (severity, when last sent) of the host resources' MetricAlerts: the
        # health collector sends one with every sample while the resource breaches, and only
        # the first is an alert raised (``_raises``). Least recently sent first; bounded.
        self._raised: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        # node -> when the latest down or left said of it was made (its timestamp, Unix
        # seconds): its NodeLifecycle made before is old news (``_node_lifecycle``). Least
        # recently said first; bounded.
        self._gone_at: OrderedDict[str, float] = OrderedDict()
        for instance, tag in MESSAGE_TYPES:
            self._f["exesdb_prometheus_messages"].inc((instance, tag), 0.0)
        self._f["exesdb_prometheus_late_readings"].inc((), 0.0)
        self._handlers: dict[str, Callable[[Envelope], None]] = {
            "system_config_changed": self._system_config,
            "system_lifecycle_event": self._system_lifecycle,
            "feature_toggle_changed": self._feature_toggle,
            "node_health_updated": self._node_health,
            "cluster_health_updated": self._cluster_health,
            "component_health_updated": self._component_health,
            "health_check_completed": self._health_check,
            "performance_metric": self._performance,
            "throughput_metric": self._throughput,
            "latency_metric": self._latency,
            "resource_usage": self._resource,
            "metric_alert": self._metric_alert,
            "node_lifecycle_event": self._node_lifecycle,
            "process_lifecycle_event": self._process_lifecycle,
            "supervision_event": self._supervision,
            "cluster_membership_changed": self._membership,
            "system_alert": self._system_alert,
            "alert_acknowledged": self._alert_ack,
            "alert_escalated": self._alert_escalation,
            "notification_status": self._notification,
            "data_change": self._data_change,
            "admin_action": self._admin_action,
            "access_log": self._access_log,
            "compliance_event": self._compliance,
            "debug_trace": self._debug_trace,
            "performance_analysis": self._performance_analysis,
            "system_state": self._system_state,
            "error_analysis": self._error_analysis,
            "auth_event": self._auth_event,
            "access_violation": self._access_violation,
            "security_alert": self._security_alert,
            "session_event": self._session_event,
            "log_entry": self._log_entry,
            "log_summary": self._log_summary,
            "log_filter_updated": self._log_filter,
            "log_rotation": self._log_rotation,
        }
        missing = {tag for _, tag in MESSAGE_TYPES} - set(self._handlers)
        assert not missing, f"no translation for {missing}"
        # The families of the most frequent messages, looked up once.
        self._usage = {kind: self._f[name] for kind, name in _RESOURCE_GAUGES.items()}
        self._resource_used = self._f["exesdb_node_resource_used"]
        self._resource_available = self._f["exesdb_node_resource_available"]
        # The series the most frequent messages set, by their labels, held once they exist: a
        # message then costs no lookups. Let go whenever the store drops series; bounded by them.
        self._resources: dict[tuple[str, ...], tuple[Series, ...]] = {}
        self._throughputs: dict[tuple[str, ...], tuple[Series, ...]] = {}
        self._latencies: dict[tuple[str, ...], tuple[Series, ...]] = {}
        # A node's health state set (NODE_STATES' order); its gauges, which a reading may
        # leave out, are looked up in their families.
        self._node_states: dict[tuple[str, ...], tuple[Series, ...]] = {}
        for held in (self._resources, self._throughputs, self._latencies, self._node_states):
            store.on_drop(held.clear)
        self._node_memory = self._f["exesdb_node_memory_usage_percent"]
        self._node_disk = self._f["exesdb_node_disk_usage_percent"]
        self._node_load = self._f["exesdb_node_load_average"]
        self._start_times = self._f["exesdb_node_start_time_seconds"]
        # The series set by rare messages (feature toggles, system lifecycles, start times),
        # kept from expiring while their node is heard (its newest-written, up to a limit).
        released = self._f["exesdb_prometheus_kept_series_released"]
        self._kept = KeptStates(store, released)
        # At 0 from the start for the families that can pass the limit (a node has one start
        # time), so a rate of it reads 0, not no data.
        for family in ("exesdb_feature_enabled", "exesdb_system_lifecycle_state"):
            released.inc((family,), 0.0)
        self._kept_nodes = self._kept.nodes
        self._now = 0.0  # the batch's writing() time
        self.current: Envelope | None = None  # the message being translated

    def handle_batch(
        self, envelopes: Iterable[Envelope], failed: Callable[[Envelope], None]
    ) -> None:
        """Update the series of each message; ``failed`` is called (inside ``except``) for one
        that raises, and the rest of the batch goes on.

        The message counter is added once per instance and tag of the batch, every message
        counted, the failed ones too.
        """
        handlers = self._handlers
        envelopes = envelopes if isinstance(envelopes, Sequence) else list(envelopes)
        late_after, late = self._late_after, 0
        # One lock and one clock reading for the batch (the handlers write with put/add).
        with self.store.writing() as self._now:
            try:
                for envelope in envelopes:
                    self.current = envelope
                    try:
                        if (
                            late_after is not None
                            # Compared first: most messages are made when sent (or filled in
                            # when decoded, later), and neither their tag is looked up nor a
                            # timedelta made for them.
                            and (made := envelope.fields.timestamp) < (sent := envelope.ts)
                            and envelope.tag in _READINGS
                            and sent - made > late_after
                            # Sent: one left out is when the bridge decoded it, whose clock
                            # may be behind the sender's by the whole window.
                            and "timestamp" in envelope.payload.model_fields_set
                        ):
                            late += 1
                            self._late_reading(envelope)
                        else:
                            handlers[envelope.tag](envelope)
                    except Exception:
                        failed(envelope)
            finally:
                self.current = None
                if late:
                    self._f["exesdb_prometheus_late_readings"].add((), float(late))
                messages = self._f["exesdb_prometheus_messages"]
                # Counted by tag (which names its instance) with collections.Counter, whose
                # loop runs in C: one add per tag of the batch, not one per message.
                for tag, count in Counter([envelope.tag for envelope in envelopes]).items():
                    messages.add(_MESSAGE_LABELS[tag], float(count))

    def _late_reading(self, envelope: Envelope) -> None:
        """What a reading sent late still counts (``_READINGS``): operations done, checks made."""
        if envelope.tag == "throughput_metric":
            values = envelope.fields  # a ThroughputMetric's fields
            result = "error" if envelope.topic.endswith(ERROR_TOPIC_SUFFIX) else "success"
            self._f["exesdb_operations"].add(
                (values.node, values.operation, result), float(values.count)
            )
        elif envelope.tag == "health_check_completed":
            check = envelope.fields  # a HealthCheck's fields
            self._f["exesdb_health_checks"].add((check.node, check.check_name, check.result))

    # -- ex_esdb_system --

    def _system_config(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, SystemConfig)
        self._f["exesdb_config_changes"].add((_node(envelope), message.component))

    def _system_lifecycle(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, SystemLifecycle)
        labels = (_node(envelope), message.system_name)
        self._f["exesdb_system_lifecycle_events"].add((*labels, message.event))
        states = self._f["exesdb_system_lifecycle_state"]
        if states.put_state(labels, SYSTEM_STATES, message.event):
            self._kept.keep(labels[0], states, *((*labels, state) for state in SYSTEM_STATES))

    def _feature_toggle(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, FeatureToggle)
        labels = (_node(envelope), message.feature)
        enabled = self._f["exesdb_feature_enabled"]
        if enabled.put(labels, 1.0 if message.enabled else 0.0):
            self._kept.keep(labels[0], enabled, labels)

    # -- ex_esdb_health --

    def _node_health(self, envelope: Envelope) -> None:
        values = envelope.fields  # a NodeHealth's fields
        name = values.node
        node = (name,)
        status = values.status
        held = self._node_states.get(node)
        if held is not None:
            now = self._now
            # By index: zip(..., strict=True) parses its keyword at every call, which cost
            # more than the loop (held is made from NODE_STATES, as the values are). A state
            # unchanged (nearly every write) is only touched, inline: Series.put's call cost
            # more than its work.
            written = _NODE_STATE_VALUES[status]
            for index, series in enumerate(held):
                series.touched = now
                value = written[index]
                if series.value != value:
                    series.put(value, now)
        else:
            states = self._f["exesdb_node_health_status"]
            states.put_state(node, NODE_STATES, status)
            _hold(self._node_states, node, *((states, (*node, state)) for state in NODE_STATES))
        if name == envelope.node:  # about itself: a sign of life
            # KeptStates.heard, inline: the call cost more than the check (nearly every time
            # not yet due).
            kept = self._kept_nodes.get(name)
            if kept is not None and self._now >= kept.due:
                kept.refresh(self._now)
        value = values.memory_usage
        if value is not None:
            self._node_memory.put(node, value)
        value = values.disk_usage
        if value is not None:
            self._node_disk.put(node, value)
        value = values.load_avg
        if value is not None:
            self._node_load.put(node, value)
        if self._raised:
            # A resource's own healthy check resolves its alert (the alert sink's rule): the
            # next MetricAlert is a new crossing, raised again.
            for resource in healthy_resources(values.checks):
                self._raised.pop((values.node, resource_metric(resource)), None)

    def _cluster_health(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, ClusterHealth)
        nodes = self._f["exesdb_cluster_nodes"]
        # The counts, not the lists: a monitor names only the first of many (ClusterHealth).
        degraded = message.degraded
        unhealthy = message.unhealthy
        down = max(0, message.total_nodes - message.healthy_nodes - degraded - unhealthy)
        nodes.put(("healthy",), float(message.healthy_nodes))
        nodes.put(("degraded",), float(degraded))
        nodes.put(("unhealthy",), float(unhealthy))
        nodes.put(("down",), float(down))
        nodes.put(("total",), float(message.total_nodes))
        self._f["exesdb_cluster_quorum_available"].put(
            (), 1.0 if message.quorum_status == "available" else 0.0
        )
        self._f["exesdb_cluster_health_status"].put_state((), COMPONENT_STATES, message.status)

    def _component_health(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, ComponentHealth)
        self._f["exesdb_component_health_status"].put_state(
            (message.node, message.component), COMPONENT_STATES, message.status
        )

    def _health_check(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, HealthCheck)
        labels = (message.node, message.check_name)
        self._f["exesdb_health_checks"].add((*labels, message.result))
        self._f["exesdb_health_check_success"].put(labels, 1.0 if message.result == "pass" else 0.0)
        self._f["exesdb_health_check_duration_seconds"].put(labels, message.duration_ms / 1000)

    # -- ex_esdb_metrics --

    def _performance(self, envelope: Envelope) -> None:
        values = envelope.fields  # a PerformanceMetric's fields
        self._f["exesdb_performance_value"].put(
            (values.node, values.component, values.metric_name, values.unit),
            values.value,
        )

    def _throughput(self, envelope: Envelope) -> None:
        values = envelope.fields  # a ThroughputMetric's fields
        labels = (values.node, values.operation)
        operations = self._f["exesdb_operations"]
        if envelope.topic.endswith(ERROR_TOPIC_SUFFIX):
            operations.add((*labels, "error"), float(values.count))
            return
        held = self._throughputs.get(labels)
        if held is not None:
            now = self._now
            held[0].add(float(values.count), now)
            held[1].put(values.rate_per_sec, now)
            return
        rate = self._f["exesdb_operation_rate_per_second"]
        operations.add((*labels, "success"), float(values.count))
        rate.put(labels, values.rate_per_sec)
        _hold(self._throughputs, labels, (operations, (*labels, "success")), (rate, labels))

    def _latency(self, envelope: Envelope) -> None:
        values = envelope.fields  # a LatencyMetric's fields
        labels = (values.node, values.operation)
        seconds = values.latency_ms / 1000
        percentile = values.percentile
        if percentile != "avg":
            self._f["exesdb_operation_latency_seconds"].put(
                (*labels, QUANTILES[percentile]), seconds
            )
            return
        held = self._latencies.get(labels)
        if held is not None:
            now = self._now
            held[0].put(seconds, now)
            held[1].put(float(values.sample_count), now)
            return
        average = self._f["exesdb_operation_latency_avg_seconds"]
        samples = self._f["exesdb_operation_latency_samples"]
        average.put(labels, seconds)
        samples.put(labels, float(values.sample_count))
        _hold(self._latencies, labels, (average, labels), (samples, labels))

    def _resource(self, envelope: Envelope) -> None:
        values = envelope.fields  # a ResourceUsage's fields
        resource = (values.node, values.resource_type)
        held = self._resources.get(resource)
        if held is not None:
            now = self._now
            held[0].put(values.usage_percent, now)
            held[1].put(values.current_used, now)
            held[2].put(values.total_available, now)
            return
        usage = self._usage[resource[1]]
        usage.put(resource[:1], values.usage_percent)
        self._resource_used.put(resource, values.current_used)
        self._resource_available.put(resource, values.total_available)
        _hold(
            self._resources,
            resource,
            (usage, resource[:1]),
            (self._resource_used, resource),
            (self._resource_available, resource),
        )

    def _metric_alert(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, MetricAlert)
        self._f["exesdb_metric_alerts"].add((message.node, message.metric_name, message.severity))
        if resource_of_metric(message.metric_name) is None or self._raises(message):
            self._f["exesdb_alerts"].add((message.severity, "performance"))

    def _raises(self, message: MetricAlert) -> bool:
        """Whether a host resource's MetricAlert raises its alert: not when it repeats the one
        before for its node and metric at the same severity, sent within the series TTL (the
        wait after which the alert sink resolves an alert no MetricAlert keeps up) with no
        healthy check of the resource in between."""
        key = (message.node, message.metric_name)
        now = self._now
        before = self._raised.pop(key, None)
        self._raised[key] = (message.severity, now)
        if len(self._raised) > self._max_remembered:
            self._raised.popitem(last=False)
        return (
            before is None
            or before[0] != message.severity
            or before[1] < now - self.store.ttl_seconds
        )

    # -- ex_esdb_lifecycle --

    def _node_lifecycle(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, NodeLifecycle)
        # Made before the node was found down or left: no word of it now, but a start still
        # dates its start (a node's clock behind Redis's dates a restart so).
        old_news = self._before_gone(message)
        node = (message.node,)
        if not old_news:
            self._f["exesdb_node_lifecycle_events"].add((message.node, message.event))
            self._f["exesdb_node_cluster_size"].put(node, float(message.cluster_size))
        if message.node != envelope.node or message.event in ("leaving", "left"):
            return  # another's word about the node (down, reconnected), or its farewell
        if not old_news:
            self._kept.heard(message.node, self._now)  # a sign of life
        if message.event != "joined" or message.metadata.get("heartbeat") is True:
            return
        # Its start: a restart shows as a new start time, as a scraped target's
        # process_start_time_seconds, whether or not it was silent long enough to be down.
        # Its timestamp when earlier: one held through a Redis outage is signed again late.
        made = message.timestamp.timestamp()
        if self._start_times.put(node, min(envelope.unix_ts, made)):
            self._kept.keep(message.node, self._start_times, node)

    def _before_gone(self, message: NodeLifecycle) -> bool:
        """Whether ``message``, not itself a down or left, was made before the latest down or
        left said of its node: a heartbeat a replica held through a Redis outage and wrote after
        the node was found down. Written, it would be the node's latest word (the status page's
        nodes table would show it back, its kept series refreshed) though it says nothing of
        now. Timestamps compared: a bridge dates both by Redis's clock."""
        made = message.timestamp.timestamp()
        if message.event not in ("down", "left"):
            return made < self._gone_at.get(message.node, -math.inf)
        before = self._gone_at.pop(message.node, -math.inf)
        self._gone_at[message.node] = max(before, made)
        if len(self._gone_at) > self._max_remembered:
            self._gone_at.popitem(last=False)
        return False

    def _process_lifecycle(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, ProcessLifecycle)
        self._f["exesdb_process_lifecycle_events"].add(
            (message.node, message.module, message.event)
        )

    def _supervision(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, SupervisionEvent)
        self._f["exesdb_supervision_events"].add((message.node, message.supervisor, message.event))

    def _membership(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, ClusterMembership)
        self._f["exesdb_cluster_membership_events"].add((message.event,))
        self._f["exesdb_cluster_quorum_available"].put(
            (), 1.0 if message.quorum_status == "available" else 0.0
        )

    # -- ex_esdb_alerts --

    def _system_alert(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, SystemAlert)
        before = self._alerts.pop(message.alert_id, None)
        self._alerts[message.alert_id] = message.severity
        if len(self._alerts) > self._max_remembered:
            self._alerts.popitem(last=False)
        # The alert sink's rule: the same alert_id at the same severity is the open alert seen
        # again; at another severity it is notified again.
        if before != message.severity:
            self._f["exesdb_alerts"].add((message.severity, message.category))

    def _alert_ack(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, AlertAck)
        if message.resolution:
            # Resolved: the next SystemAlert with its alert_id opens the alert again.
            severity = self._alerts.pop(message.alert_id, None)
        else:
            severity = self._alerts.get(message.alert_id)
        self._f["exesdb_alert_acknowledgements"].add((severity or "unknown",))

    def _alert_escalation(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, AlertEscalation)
        self._f["exesdb_alert_escalations"].add((message.to_level,))

    def _notification(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, NotificationStatus)
        self._f["exesdb_alert_notifications"].add((message.delivery_method, message.status))

    # -- ex_esdb_audit --

    def _data_change(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, DataChange)
        self._f["exesdb_audit_data_changes"].add(
            (message.node, message.resource_type, message.action)
        )

    def _admin_action(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, AdminAction)
        self._f["exesdb_audit_admin_actions"].add((message.node, message.action_type))

    def _access_log(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, AccessLog)
        self._f["exesdb_audit_access"].add(
            (message.node, message.resource_type, "success" if message.success else "failure")
        )

    def _compliance(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, ComplianceEvent)
        self._f["exesdb_audit_compliance_events"].add((message.node, message.event_type))

    # -- ex_esdb_diagnostics --

    def _debug_trace(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, DebugTrace)
        self._f["exesdb_debug_traces"].add((message.node, message.component))

    def _performance_analysis(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, PerformanceAnalysis)
        self._f["exesdb_performance_analyses"].add(
            (message.node, message.component, message.analysis_type, message.severity)
        )

    def _system_state(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, SystemState)
        node = (message.node,)
        self._f["exesdb_system_state_snapshots"].add((message.node, message.snapshot_type))
        self._f["exesdb_system_processes"].put(node, float(message.process_count))
        self._f["exesdb_system_memory_bytes"].put(node, float(message.memory_usage))

    def _error_analysis(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, ErrorAnalysis)
        labels = (message.node, message.error_type)
        self._f["exesdb_error_analyses"].add(labels)
        self._f["exesdb_error_frequency"].put(labels, float(message.frequency))

    # -- ex_esdb_security --

    def _auth_event(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, AuthEvent)
        self._f["exesdb_auth_events"].add((message.node, message.event_type, message.auth_method))

    def _access_violation(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, AccessViolation)
        self._f["exesdb_access_violations"].add(
            (message.node_about(envelope.node), message.violation_type, message.severity)
        )
        self._f["exesdb_alerts"].add((SECURITY_SEVERITY[message.severity], "security"))

    def _security_alert(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, SecurityAlert)
        self._f["exesdb_security_alerts"].add((message.node, message.alert_type, message.severity))
        self._f["exesdb_alerts"].add((SECURITY_SEVERITY[message.severity], "security"))

    def _session_event(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, SessionEvent)
        self._f["exesdb_session_events"].add((message.node, message.event_type))

    # -- ex_esdb_logging --

    def _log_entry(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, LogEntry)
        self._f["exesdb_log_entries"].add((message.node, message.level))

    def _log_summary(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, LogSummary)
        entries = self._f["exesdb_log_period_entries"]
        for level, count in message.log_counts.items():
            entries.put((message.time_period, str(level)), float(count))
        self._f["exesdb_log_period_error_rate_per_minute"].put(
            (message.time_period,), message.error_rate
        )

    def _log_filter(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, LogFilter)
        self._f["exesdb_log_filter_updates"].add((message.filter_type, message.action))

    def _log_rotation(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, LogRotation)
        labels = (message.node, message.log_type)
        self._f["exesdb_log_rotations"].add(labels)
        self._f["exesdb_log_rotated_bytes"].add(labels, float(message.file_size))
