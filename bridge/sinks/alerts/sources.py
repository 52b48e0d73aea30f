"""What becomes an alert: bus messages in, ``AlertEvent`` values out (docs/alerts.md).

Four message types are alerts already (SystemAlert, MetricAlert, SecurityAlert,
AccessViolation). The bridge derives its own from health and lifecycle messages: a node or
component turning degraded (warning) or unhealthy (critical), and a node going down (critical
``node_failure``); their ``alert_id`` is stable for the condition, so that the message saying it
cleared resolves the same alert. A derived id longer than the 4 096 characters every message
carrying an ``alert_id`` allows (AlertAck, AlertEscalation, NotificationStatus), as node and
component names of up to 4 096 characters each can make it, keeps its start and ends with a
digest of the whole (``derived_id``): as stable, and acknowledgeable. A ``down`` the cluster
monitor marks ``grouped`` (one of many in one interval) raises no alert of its own: the
monitor's SystemAlert for the group stands for it.

An AccessViolation has no ``node`` field: its alert is about the node that published it (the
envelope's), or the node its ``metadata`` names under ``node``, for a sender reporting for
another node, as the ``--demo`` cluster does for its simulated ones: only a name every message's
``node`` could be (a ``NodeLabel``: 1 to ``MAX_TEXT`` characters, ``is_node_name``: not blank
at either end, no control character nor one drawn as nothing), since the alert shows it as its node
(``alerts list``, history, webhook labels); anything else falls back to the envelope's node.

Event alerts (SystemAlert, SecurityAlert, AccessViolation, and MetricAlerts on metrics no health
message reports) have no message that clears them: they carry ``auto_resolve`` and resolve once
not seen for ``EXESDB_ALERT_RESOLVE_TIMEOUT_MS``. A MetricAlert on a host resource
(``cpu_usage_percent``, ``memory_usage_percent``, ``disk_usage_percent``, as the health collector
sends them) resolves only on evidence about that resource: a NodeHealth for its node whose
``checks`` report that resource healthy. A NodeHealth merely saying the whole node is healthy
(without that check) leaves it firing; the collector sends the MetricAlert again with every
sample that still breaches, so a resolve that came too early is undone at the next sample, and
one no MetricAlert keeps up any more resolves after the stale wait (``transitions.expiry``).

A health status becomes an alert as ``held`` says: the alert stage passes the hold of
``EXESDB_ALERT_FOR_MS`` (``pending``), so a degraded or unhealthy reading alerts only once it
has lasted; without ``held`` a status counts as read.

A SystemAlert's ``source`` (the component that raised it) becomes the alert's ``source`` label
and its ``metadata`` annotations (``details``): bounded, as it comes from a message — at most
``MAX_DETAILS`` entries, sorted by key, each named ``metadata_<key>`` with the key reduced to
label-name characters (``[A-Za-z0-9_]``, at most ``MAX_DETAIL_NAME``), each value a string (JSON
for any other value) of at most ``MAX_DETAIL_VALUE`` characters, all of them at most
``MAX_DETAILS_CHARS`` together (an alert's annotations stay the size of a title); a key that
may name a secret (``bridge.redaction.names_secret``, which fails closed: ``routing_key``,
``dbpass``, a key in another script or with a Cyrillic look-alike letter, not ``token_count``)
has its value shown as ``<redacted>``, and every value is shown as
``bridge.redaction.redact_urls`` shows text (a URL as its origin, URL credentials, ``Bearer``
tokens, ``password=…`` pairs redacted), but for a link the operator allowed: a value that is one
URL and nothing else (once trimmed), without user info, on an origin of
``EXESDB_ALERT_LINK_ORIGINS`` (``links``) keeps its path and fragment, so that a runbook link
opens; its query is shown as ``?…`` (a query is where a token rides, under names no rule can
know), and its path and fragment are still shown as ``redact_urls`` shows text. Entries left out
(past a cap, or a key that reduces to one already taken) are counted in a ``metadata``
annotation, never dropped without a word.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple

from bridge.bus import Envelope
from bridge.cluster import MAX_NODES
from bridge.messages import (
    MAX_TEXT,
    SECURITY_SEVERITY,
    SEVERITIES,
    AccessViolation,
    AlertAck,
    AlertSeverity,
    ComponentHealth,
    Message,
    MetricAlert,
    NodeHealth,
    NodeLifecycle,
    SecurityAlert,
    SystemAlert,
)
from bridge.messages.alerts import ACK_BY_DEFAULT
from bridge.messages.health import (
    HOST_RESOURCES,
    healthy_resources,
    resource_metric,
    resource_of_metric,
)
from bridge.redaction import REDACTED, names_secret, redact_urls
from bridge.sinks.alerts.pending import PendingConditions
from bridge.sinks.alerts.records import Acknowledgement
from bridge.urls import allowed_link

__all__ = [
    "DETAIL_PREFIX",
    "MAX_DETAILS",
    "MAX_DETAILS_CHARS",
    "MAX_DETAIL_NAME",
    "MAX_DETAIL_VALUE",
    "SOURCE_TYPES",
    "AlertEvent",
    "HeldStatus",
    "NodeAlertIds",
    "alert_event",
    "alert_events",
    "batch_changes",
    "derived_id",
    "details_of",
    "meets",
    "node_alert_ids",
]

Status = Literal["firing", "resolved"]
HeldStatus = Callable[[str, str, datetime], str | None]
"""The status a health reading counts as (the alert id, the status read, when it was read): the
status held long enough, or None while it has not lasted long enough to alert."""

# The message types alert_event()/alert_events() make events of (the bus routes only these, with
# AlertAck, to the alert sink; tests/sinks/alerts/test_sources.py checks no other type gives one).
SOURCE_TYPES: Final[tuple[type[Message], ...]] = (
    SystemAlert,
    MetricAlert,
    SecurityAlert,
    AccessViolation,
    NodeHealth,
    ComponentHealth,
    NodeLifecycle,
)
_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(SEVERITIES)}
_HEALTH_SEVERITY: Final[dict[str, AlertSeverity]] = {"degraded": "warning", "unhealthy": "critical"}
# NodeLifecycle events that end a node_failure (``left`` also when the monitor forgot the node).
_NODE_BACK: Final = frozenset({"reconnected", "joined", "left"})
# The alert_id limit of the messages that carry one (their Text).
MAX_ALERT_ID: Final = MAX_TEXT
_DIGEST_LENGTH: Final = 16
# The nodes whose alert ids are kept made (the least recently read forgotten past it): as
# many as the cluster monitor tracks, so that a cluster at its cap does not make them afresh
# for every reading (a few hundred bytes a node).
_CACHED_NODES: Final = MAX_NODES
# A SystemAlert's metadata as annotations (details_of): bounded, as it comes from a message.
MAX_DETAILS: Final = 16
MAX_DETAIL_NAME: Final = 64
MAX_DETAIL_VALUE: Final = 1024
MAX_DETAILS_CHARS: Final = 4096
DETAIL_PREFIX: Final = "metadata_"
# The annotation counting entries left out: no key gives it (each has DETAIL_PREFIX and more).
_LEFT_OUT: Final = "metadata"
_NOT_NAME: Final = re.compile(r"[^A-Za-z0-9_]")
_NO_LINKS: Final[frozenset[str]] = frozenset()
# Read once: a pydantic model's class attribute goes through its metaclass's hook.
_ACK_TAG: Final = AlertAck.TAG
_NODE_HEALTH_TAG: Final = NodeHealth.TAG
Active = Callable[[str], bool]
"""Whether an alert (by id) may be active: a resolved event of any other would change nothing."""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert condition starting (``firing``) or clearing (``resolved``).

    A resolved event only names the alert; its other fields are the firing alert's, kept by the
    state store.
    """

    alert_id: str
    alertname: str
    status: Status
    severity: AlertSeverity
    category: str
    node: str
    title: str
    description: str
    requires_ack: bool
    at: datetime
    auto_resolve: bool = False
    source: str | None = None
    details: tuple[tuple[str, str], ...] = ()

    @property
    def firing(self) -> bool:
        """True when the condition starts or goes on."""
        return self.status == "firing"


def meets(severity: str, minimum: str) -> bool:
    """True when ``severity`` is at or above ``minimum`` (info < warning < error < critical)."""
    return _RANK.get(severity, -1) >= _RANK[minimum]


def _as_read(alert_id: str, status: str, at: datetime) -> str | None:
    return status


def alert_event(
    envelope: Envelope,
    held: HeldStatus = _as_read,
    active: Active | None = None,
    links: frozenset[str] = _NO_LINKS,
) -> AlertEvent | None:
    """The alert event a verified message stands for, or None when it is not about an alert
    (or, for a health status, not yet: see ``held``).

    With ``active``, a resolved event is only made for an alert it says may be active (every
    healthy health message is one: most would change nothing), but for a node's return, which
    is rare: the store remembers one of an unknown alert (``AlertStore.plan``); a heartbeat is
    no return. ``links`` are
    the origins whose links a SystemAlert's metadata shows whole (``details_of``).
    """
    payload = envelope.payload
    at = payload.timestamp
    # The health readings first: every node sends them all the time, alerts are rare.
    if isinstance(payload, NodeHealth):
        return _health(
            node_alert_ids(payload.node).node_health, "node_health", payload, held, active
        )
    if isinstance(payload, ComponentHealth):
        return _health(
            derived_id("component_health", payload.node, payload.component),
            "component_health",
            payload,
            held,
            active,
        )
    if isinstance(payload, SystemAlert):
        return AlertEvent(
            alert_id=payload.alert_id,
            alertname=envelope.topic,
            status="firing",
            severity=payload.severity,
            category=payload.category,
            node=payload.node,
            title=payload.title,
            description=payload.description,
            requires_ack=payload.requires_ack,
            at=at,
            auto_resolve=True,
            source=payload.source,
            details=details_of(payload.metadata, links),
        )
    if isinstance(payload, MetricAlert):
        relation = "above" if payload.threshold_type == "max" else "below"
        return _firing(
            derived_id("metric_threshold", payload.node, payload.metric_name),
            "metric_threshold",
            payload.severity,
            "performance",
            payload.node,
            f"{payload.metric_name} is {relation} its threshold on {payload.node}",
            f"{payload.metric_name} = {payload.current_value:g} "
            f"({payload.threshold_type} threshold {payload.threshold_value:g})",
            at,
            auto_resolve=resource_of_metric(payload.metric_name) is None,
        )
    if isinstance(payload, SecurityAlert):
        # Each security alert is an event of its own: the message id makes it unique and keeps a
        # redelivered message (at-least-once transports) from raising it twice.
        return _firing(
            derived_id(payload.alert_type, envelope.id),
            payload.alert_type,
            SECURITY_SEVERITY[payload.severity],
            "security",
            payload.node,
            f"{payload.alert_type.replace('_', ' ')} on {payload.node}",
            payload.description,
            at,
            auto_resolve=True,
        )
    if isinstance(payload, AccessViolation):
        who = payload.user_id or "anonymous"
        return _firing(
            derived_id(payload.violation_type, envelope.id),
            payload.violation_type,
            SECURITY_SEVERITY[payload.severity],
            "security",
            payload.node_about(envelope.node),
            f"{payload.violation_type.replace('_', ' ')}: {payload.action} {payload.resource}",
            f"{who} from {payload.source_ip}: {payload.action} on {payload.resource} refused",
            at,
            auto_resolve=True,
        )
    if isinstance(payload, NodeLifecycle):
        alert_id = derived_id("node_failure", payload.node)
        if payload.event == "down":
            if "grouped" in payload.metadata:
                return None
            return _firing(
                alert_id,
                "node_failure",
                "critical",
                "system",
                payload.node,
                f"node {payload.node} is down",
                f"node {payload.node} went silent; cluster size now {payload.cluster_size}",
                at,
            )
        if payload.event in _NODE_BACK:
            # Made whether or not the alert may be active (lifecycle changes are rare): the
            # store remembers one of an unknown alert, so that a down sent before it, delivered
            # after it, fires nothing. Not a heartbeat (a `joined` each health interval while
            # the node's collectors say nothing), as a health reading: remembered, each would be
            # a write of the dates on Redis; the return the down's node makes is announced.
            heartbeat = payload.metadata.get("heartbeat") is True
            if heartbeat and active is not None and not active(alert_id):
                return None
            return _resolved(alert_id, "node_failure", payload.node, at)
    return None


def alert_events(
    envelope: Envelope,
    held: HeldStatus = _as_read,
    active: Active | None = None,
    links: frozenset[str] = _NO_LINKS,
) -> list[AlertEvent]:
    """Every alert event a verified message stands for (a NodeHealth may also resolve the
    threshold alerts of the resources its ``checks`` report healthy); ``active`` and ``links``
    as for ``alert_event``."""
    event = alert_event(envelope, held, active, links)
    events = [] if event is None else [event]
    payload = envelope.payload
    if isinstance(payload, NodeHealth):
        healthy = healthy_resources(payload.checks)
        for resource, alert_id in node_alert_ids(payload.node).thresholds:
            if resource in healthy and (active is None or active(alert_id)):
                events.append(
                    _resolved(alert_id, "metric_threshold", payload.node, payload.timestamp)
                )
    return events


def batch_changes(
    envelopes: Sequence[Envelope],
    *,
    pending: PendingConditions,
    may_be_active: AbstractSet[str],
    links: frozenset[str],
    min_severity: str,
) -> list[AlertEvent | Acknowledgement]:
    """What a batch of verified messages changes, in order: its acknowledgements, and the alert
    events of the rest (a firing one only at or above ``min_severity``), each reading's status
    as ``pending`` holds it.

    ``may_be_active`` holds the ids of the alerts that may be firing or acknowledged
    (``AlertStore.maybe_active_ids``, tested four times a NodeHealth): a health reading's
    resolve of any other would change nothing, so it is not even made; nor is it for an alert
    fired earlier in the batch (a resolve must follow it). A node's return is made all the
    same (``alert_event``).
    """
    changes: list[AlertEvent | Acknowledgement] = []
    fired: set[str] = set()  # firing earlier in this batch: a resolve must follow it
    # Some condition waits in the hold (any node's, any component's); only a reading that
    # goes through alert_events below changes that. With none, no node's own can.
    waiting = bool(pending)

    def active(alert_id: str) -> bool:
        # Every healthy health message is a resolved event; for an alert that is not
        # active it would change nothing, so it is not even made (and costs no transaction).
        return alert_id in fired or alert_id in may_be_active

    for envelope in envelopes:
        tag = envelope.tag
        # Most of what comes here: a healthy NodeHealth, which resolves its node's alerts
        # and ends the wait of its node's node_health condition in pending (the one
        # condition it ends: another node's or a component's wait is none of its business).
        # With none of its alerts active and that condition not waiting it makes no event
        # and changes nothing, and is passed over without working that out (its values read
        # from ``fields``: its model is not built for it).
        if (
            tag == _NODE_HEALTH_TAG
            and (values := envelope.fields).status == "healthy"
            and (not waiting or node_alert_ids(values.node).node_health not in pending)
            and (
                not (may_be_active or fired)
                or (
                    (ids := node_alert_ids(values.node).every).isdisjoint(may_be_active)
                    and ids.isdisjoint(fired)
                )
            )
        ):
            continue
        payload = envelope.payload
        # The tag first: an isinstance miss on a pydantic model costs several times more.
        if tag == _ACK_TAG and isinstance(payload, AlertAck):
            changes.append(
                Acknowledgement(
                    payload.alert_id,
                    payload.ack_by,
                    payload.ack_note,
                    payload.resolution,
                    payload.alert_starts_at,
                )
            )
            continue
        for event in alert_events(envelope, pending.held, active, links):
            if not event.firing:
                changes.append(event)
            elif meets(event.severity, min_severity):
                fired.add(event.alert_id)
                changes.append(event)
        waiting = bool(pending)
    return changes


def derived_id(*parts: str) -> str:
    """The alert id of the condition named by ``parts`` (joined by ``:``); one longer than
    ``MAX_ALERT_ID`` is cut to fit, ending in ``…#`` and a digest of the whole, so two
    conditions sharing a long start keep ids of their own."""
    alert_id = ":".join(parts)
    if len(alert_id) <= MAX_ALERT_ID:
        return alert_id
    digest = hashlib.sha256(alert_id.encode()).hexdigest()[:_DIGEST_LENGTH]
    return f"{alert_id[: MAX_ALERT_ID - _DIGEST_LENGTH - 2]}…#{digest}"


def details_of(
    metadata: Mapping[str, Any], links: frozenset[str] = _NO_LINKS
) -> tuple[tuple[str, str], ...]:
    """A message's ``metadata`` as annotations, bounded as the module docstring says:
    ``(name, value)`` pairs sorted by name; a value that is a link on one of the origins
    ``links`` (as ``bridge.urls.link_origin`` writes them) is shown whole."""
    details: dict[str, str] = {}
    left_out = used = 0
    for key in sorted(metadata):
        name = DETAIL_PREFIX + (_NOT_NAME.sub("_", key) or "_")[:MAX_DETAIL_NAME]
        if len(details) == MAX_DETAILS or name in details:
            left_out += 1  # judged before its value is made: a message may hold 10 000s
            continue
        value = REDACTED if names_secret(key) else _shown(metadata[key], links)
        if used + len(value) > MAX_DETAILS_CHARS:
            left_out += 1
            continue
        details[name] = value
        used += len(value)
    if left_out:
        details[_LEFT_OUT] = f"{left_out} more metadata entries not shown"
    return tuple(sorted(details.items()))


def _shown(value: Any, links: frozenset[str]) -> str:
    text = value if isinstance(value, str) else json.dumps(_scrubbed(value), ensure_ascii=False)
    # A link longer than a value is shown is no link anyone opens once cut: shown as text.
    link = (
        allowed_link(text, links)
        if links and isinstance(value, str) and len(text) <= MAX_DETAIL_VALUE
        else None
    )
    text = redact_urls(text) if link is None else link
    if len(text) > MAX_DETAIL_VALUE:
        text = text[: MAX_DETAIL_VALUE - 1] + "…"
    return text


def _scrubbed(value: Any) -> Any:
    """``value`` with what any nested key naming a secret holds redacted."""
    if isinstance(value, dict):
        return {
            key: REDACTED if names_secret(key) else _scrubbed(inner) for key, inner in value.items()
        }
    if isinstance(value, list):
        return [_scrubbed(inner) for inner in value]
    return value


class NodeAlertIds(NamedTuple):
    """The ids of the alerts a node's NodeHealth readings are about (``node_alert_ids``)."""

    node_health: str
    """Its ``node_health`` alert: the one condition in ``pending`` a healthy reading of the
    node ends (its resources' ``metric_threshold`` alerts are not held)."""
    thresholds: tuple[tuple[str, str], ...]
    """Each host resource (``HOST_RESOURCES``' order) with the id of its ``metric_threshold``
    alert."""
    every: frozenset[str]
    """All of them: every alert a healthy reading may resolve. When none of them may be active
    (and ``node_health`` does not wait in ``pending``), such a reading makes no event and
    changes nothing: the sink skips it."""


@functools.lru_cache(maxsize=_CACHED_NODES)
def node_alert_ids(node: str) -> NodeAlertIds:
    """The ids of ``node``'s health alerts, made once a node: every NodeHealth reading looks
    them up."""
    own = derived_id("node_health", node)
    thresholds = tuple(
        (resource, derived_id("metric_threshold", node, resource_metric(resource)))
        for resource in HOST_RESOURCES
    )
    every = frozenset((own, *(alert_id for _, alert_id in thresholds)))
    return NodeAlertIds(own, thresholds, every)


def _firing(
    alert_id: str,
    alertname: str,
    severity: AlertSeverity,
    category: str,
    node: str,
    title: str,
    description: str,
    at: datetime,
    *,
    auto_resolve: bool = False,
) -> AlertEvent:
    return AlertEvent(
        alert_id,
        alertname,
        "firing",
        severity,
        category,
        node,
        title,
        description,
        severity in ACK_BY_DEFAULT,
        at,
        auto_resolve,
    )


def _resolved(alert_id: str, alertname: str, node: str, at: datetime) -> AlertEvent:
    return AlertEvent(alert_id, alertname, "resolved", "info", "system", node, "", "", False, at)


def _health(
    alert_id: str,
    alertname: str,
    reading: NodeHealth | ComponentHealth,
    held: HeldStatus,
    active: Active | None,
) -> AlertEvent | None:
    node, at = reading.node, reading.timestamp
    status = held(alert_id, reading.status, at)
    if status is None:  # not held long enough yet
        return None
    if status == "healthy":
        if active is not None and not active(alert_id):
            return None
        return _resolved(alert_id, alertname, node, at)
    severity = _HEALTH_SEVERITY.get(status)
    if severity is None:  # "unknown" says nothing either way
        return None
    # Worded only here: most readings are healthy, and make no event.
    subject = (
        f"component {reading.component} on {node}"
        if isinstance(reading, ComponentHealth)
        else f"node {node}"
    )
    return _firing(
        alert_id,
        alertname,
        severity,
        "system",
        node,
        f"{subject} is {status}",
        f"{subject} reported status {status}",
        at,
    )
