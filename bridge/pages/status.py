"""The status page (``GET /``): the bridge's readiness, the cluster's nodes, the active alerts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Set
from typing import Any, Final

from bridge.config import Settings
from bridge.messages import SEVERITIES
from bridge.pages.html import Fragment, Html, escape, join, template
from bridge.pages.sources import AlertSource, DownSource, NodeSource, Shown
from bridge.pages.widgets import (
    ack_button,
    age,
    age_since,
    badge,
    empty,
    meter,
    severity_badge,
    table,
    text_or_dash,
    timestamp,
)
from bridge.sinks.alerts.admin import AlertQuery
from bridge.sinks.alerts.payload import alert_path
from bridge.sinks.alerts.records import AlertRecord, AlertState
from bridge.sinks.prometheus.nodes import NodeSummary

__all__ = ["MAX_SHOWN", "status_live"]

# Alerts shown per open state at most (the newest); /v1/alerts lists them all. Nodes shown at
# most (the worst first): the page refreshes every few seconds for up to 10 000 nodes.
MAX_SHOWN: Final = 200
_OPEN: Final = (AlertState.FIRING, AlertState.ACKNOWLEDGED)
# The problems first: nodes announced gone (bridge/cluster.py), then by health.
_NODE_RANK: Final = {
    status: rank
    for rank, status in enumerate(("down", "left", "unhealthy", "degraded", "unknown", "healthy"))
}
_ALERT_LINK: Final = Fragment(
    '<a class="title" href="${href}">${title}</a><span class="id">${alert_id}</span>'
)
_NODE_NAME: Final = Fragment('<span class="node-name">${node}</span>')
# This bridge's own CPU before its first reading, which covers a whole health interval.
_MEASURING: Final = Fragment('<span class="muted measuring" title="${title}">measuring…</span>')
# A node heard from no more: its figures are the last it sent, until its series expire.
_SILENT: Final = Fragment(' <span class="muted silent" title="${title}">silent ${age}</span>')
# A node announced down or left: how long ago, its figures the last it sent.
_GONE: Final = Fragment(' <span class="muted gone" title="${title}">for ${age}</span>')


async def status_live(
    shown: Shown,
    *,
    alerts_from: AlertSource | None,
    nodes_from: NodeSource | None,
    down_from: DownSource | None,
    root: str,
    now: float,
) -> Html:
    """The part of the status page that refreshes, with the alerts of ``alerts_from``, the nodes of
    ``nodes_from`` and those ``down_from`` holds down (None: the bridge runs no such component)."""
    checks = shown.readiness()
    ready = all(check["ready"] or not check["required"] for check in checks.values())
    alerts: list[AlertRecord] = []
    truncated = False
    if alerts_from is not None:
        for state in _OPEN:
            found = await alerts_from.list_alerts(AlertQuery(state=state, limit=MAX_SHOWN))
            truncated = truncated or len(found) >= MAX_SHOWN
            alerts.extend(found)
        alerts.sort(key=lambda record: record.starts_at, reverse=True)
    nodes = list(nodes_from.nodes()) if nodes_from is not None else []
    held_down = _held_down(down_from)
    expired = _remembered(nodes, held_down) if nodes_from is not None else []
    nodes.extend(expired)
    admin = shown.settings.admin_token is not None
    not_ready = [name for name, check in checks.items() if check["required"] and not check["ready"]]
    return template("status.html")(
        ready_tone="good" if ready else "bad",
        ready_text="Ready" if ready else "Not ready",
        ready_detail=(
            f"{len(checks)} parts, all required ones ready"
            if ready
            else "waiting for " + ", ".join(not_ready)
        ),
        node_count=str(len(nodes)),
        node_detail=_breakdown(Counter(node.status or "unknown" for node in nodes))
        or "none heard yet",
        alert_tone=_alert_tone(alerts),
        alert_count=f"{len(alerts)}{'+' if truncated else ''}",
        alert_detail=_breakdown(Counter(record.severity for record in alerts), SEVERITIES[::-1])
        or "all clear",
        uptime=age(now - shown.started_at),
        started=timestamp(shown.started_at),
        alerts=_alerts(alerts, alerts_from is not None, truncated, admin=admin, root=root, now=now),
        nodes=_nodes(
            nodes,
            shown,
            held_down,
            {node.node for node in expired},
            present=nodes_from is not None,
            now=now,
        ),
        components=_components(checks),
    )


def _held_down(source: DownSource | None) -> Mapping[str, float]:
    return source.down_nodes() if source is not None else {}


def _remembered(nodes: Sequence[NodeSummary], held_down: Mapping[str, float]) -> list[NodeSummary]:
    """The nodes the cluster monitor holds down whose series expired (EXESDB_SERIES_TTL_MS
    shorter than EXESDB_NODE_FORGET_MS): down, without figures, until the monitor forgets them."""
    listed = {node.node for node in nodes}
    return [
        NodeSummary(name, "down", None, None, None, seconds, seconds)
        for name, seconds in held_down.items()
        if name not in listed
    ]


def _breakdown(counts: Mapping[str, int], order: Sequence[str] = ()) -> str:
    keys = [key for key in order if key in counts] + sorted(set(counts) - set(order))
    return ", ".join(f"{counts[key]} {key}" for key in keys)


def _alert_tone(alerts: Sequence[AlertRecord]) -> str:
    if any(record.state is AlertState.FIRING for record in alerts):
        return "bad"
    return "warn" if alerts else "good"


def _alerts(
    alerts: Sequence[AlertRecord],
    kept: bool,
    truncated: bool,
    *,
    admin: bool,
    root: str,
    now: float,
) -> Html:
    if not kept:
        return empty("This bridge runs no alert sink, so it keeps no alerts.")
    if not alerts:
        return empty("No active alerts.")
    rows = [
        (
            severity_badge(record.severity),
            _alert_link(record, root),
            record.node,
            age_since(record.starts_at, now),
            badge(record.state),
            _level(record),
            ack_button(record.alert_id, record.title)
            if admin and record.state is AlertState.FIRING
            else Html(""),
        )
        for record in alerts
    ]
    listing = table(
        ("Severity", "Alert", "Node", "Age", "State", "Level", ""), rows, css="grid alerts"
    )
    if truncated:
        note = empty(
            f"Showing the newest {MAX_SHOWN} firing and {MAX_SHOWN} acknowledged alerts;"
            " GET /v1/alerts lists them all."
        )
        return join((listing, note))
    return listing


def _alert_link(record: AlertRecord, root: str) -> Html:
    href = root + alert_path(record.alert_id).lstrip("/")
    return _ALERT_LINK(href=href, title=record.title, alert_id=record.alert_id)


def _level(record: AlertRecord) -> Html:
    if record.level > 1:
        return badge(record.level_name, "degraded" if record.level == 2 else "unhealthy")
    return escape(record.level_name)


def _nodes(
    nodes: Sequence[NodeSummary],
    shown: Shown,
    held_down: Mapping[str, float],
    expired: Set[str],
    *,
    present: bool,
    now: float,
) -> Html:
    if not present:
        return empty("This bridge runs no Prometheus sink, so it knows no node figures.")
    if not nodes:
        return empty(
            "No node has reported yet: nodes appear with their first NodeHealth or ResourceUsage"
            " message."
        )
    settings = shown.settings
    ordered = sorted(nodes, key=lambda node: (_rank(node), node.node))
    rest = ordered[MAX_SHOWN:]
    ordered = ordered[:MAX_SHOWN]
    rows = [
        (
            _NODE_NAME(node=node.node),
            _health(node, shown, held_down, expired),
            _cpu(node, shown, now),
            meter(node.memory, settings.memory_degraded, settings.memory_unhealthy),
            meter(node.disk, settings.disk_degraded, settings.disk_unhealthy),
        )
        for node in ordered
    ]
    listing = table(("Node", "Health", "CPU", "Memory", "Disk"), rows, css="grid nodes")
    if not rest:
        return listing
    counts = _breakdown(Counter(node.status or "unknown" for node in rest))
    note = empty(
        f"Showing the {MAX_SHOWN} worst nodes; {len(rest)} more not shown ({counts}):"
        " /metrics has every node's series."
    )
    return join((listing, note))


def _rank(node: NodeSummary) -> int:
    return _NODE_RANK.get(node.status or "unknown", _NODE_RANK["unknown"])


def _health(
    node: NodeSummary, shown: Shown, held_down: Mapping[str, float], expired: Set[str]
) -> Html:
    """The node's status badge, and how long it has been silent or gone, the tooltip saying
    what its figures are (``expired``: nodes held down whose series expired, shown without)."""
    status = badge(node.status) if node.status else badge("unknown")
    settings = shown.settings
    if node.gone_for is not None:
        figures = _expired(settings) if node.node in expired else _kept(settings)
        title = f"NodeLifecycle {node.status} {age(node.gone_for)} ago: {figures}"
        if node.node in held_down:  # shown after its series expired too
            title += f" {_forgotten(settings)}"
        return join((status, _GONE(age=age(node.gone_for), title=title)))
    # Readings come every health and every metrics interval: two of the longer one missed.
    late = 2 * max(settings.health_broadcast_interval, settings.metrics_broadcast_interval) / 1000
    if node.silent_for < late:
        return status
    silent = _SILENT(
        age=age(node.silent_for),
        title=f"Nothing from this node for {age(node.silent_for)}: {_kept(settings)}",
    )
    return join((status, silent))


def _kept(settings: Settings) -> str:
    return (
        "its figures are the last it sent, shown until its series expire"
        f" (EXESDB_SERIES_TTL_MS, {age(settings.series_ttl_ms / 1000)})."
    )


def _expired(settings: Settings) -> str:
    return (
        "its series expired (EXESDB_SERIES_TTL_MS,"
        f" {age(settings.series_ttl_ms / 1000)}), so it has no figures to show."
    )


def _forgotten(settings: Settings) -> str:
    return (
        "The node itself is shown down while the cluster monitor holds it down: until it is"
        " heard again, or forgotten (EXESDB_NODE_FORGET_MS,"
        f" {age(settings.node_forget_ms / 1000)} after it went down)."
    )


def _cpu(node: NodeSummary, shown: Shown, now: float) -> Html:
    settings = shown.settings
    seconds = settings.health_broadcast_interval / 1000
    # Past two intervals a reading is late, not coming (e.g. the host probe fails): a dash.
    if node.cpu is None and node.node == shown.node and now - shown.started_at < 2 * seconds:
        interval = age(seconds)
        return _MEASURING(
            title=f"The first CPU reading covers a whole health interval ({interval},"
            " EXESDB_HEALTH_BROADCAST_INTERVAL) from the start."
        )
    return meter(node.cpu, settings.cpu_degraded, settings.cpu_unhealthy)


def _components(checks: Mapping[str, Mapping[str, Any]]) -> Html:
    rows = [
        (
            name,
            badge("ready" if check["ready"] else "not ready"),
            "required" if check["required"] else "optional",
            text_or_dash(check.get("reason")),
        )
        for name, check in checks.items()
    ]
    return table(("Part", "Readiness", "", "Reason"), rows, css="grid components")
