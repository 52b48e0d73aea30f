"""The status page (``GET /``): the bridge's readiness, the cluster's nodes, the active alerts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Final

from bridge.messages import SEVERITIES
from bridge.pages.html import Fragment, Html, escape, join, template
from bridge.pages.sources import (
    AlertSource,
    DownSource,
    LeaseState,
    NodeSource,
    Shown,
    lease_state,
)
from bridge.pages.widgets import (
    ack_button,
    age,
    age_since,
    badge,
    countdown,
    empty,
    heard_only,
    lease_notice,
    meter,
    severity_badge,
    table,
    text_or_dash,
    timestamp,
    utc,
)
from bridge.receiver_keys import receiver_label
from bridge.redaction import redact_urls
from bridge.settings import Settings
from bridge.sinks.alerts.admin import AlertQuery
from bridge.sinks.alerts.payload import alert_path
from bridge.sinks.alerts.records import AlertRecord, AlertState, Delivery
from bridge.sinks.prometheus.nodes import NodeSummary

__all__ = ["MAX_SHOWN", "StatusView", "status_live", "status_view"]

# Alerts shown per open state at most (the newest); /v1/alerts lists them all. Nodes shown at
# most (the worst first): the page refreshes every few seconds for up to 10 000 nodes.
MAX_SHOWN: Final = 200
# Characters of an alert's title, id and node, and of a node's name, a row shows at most (an
# alert's page shows them whole): each may have 4 096, and 400 rows of them made a page of 20 MB
# that took 0.8 s to render.
_ROW_TEXT: Final = 120
_OPEN: Final = (AlertState.FIRING, AlertState.ACKNOWLEDGED)
# The problems first: nodes announced gone (bridge/cluster/), then by health.
_NODE_RANK: Final = {
    status: rank
    for rank, status in enumerate(("down", "left", "unhealthy", "degraded", "unknown", "healthy"))
}
_ALERT_LINK: Final = Fragment(
    '<a class="title" href="${href}">${title}</a><span class="id">${alert_id}</span>'
)
_NODE_NAME: Final = Fragment('<span class="node-name">${node}</span>')
# A name cut in its row, whole in its tooltip: up to 255 characters, every name an ExESDB node
# can have (an Erlang atom), so 200 names of 4 096 characters cost ~200 kB more, not 3 MB.
_NODE_NAME_CUT: Final = Fragment('<span class="node-name" title="${whole}">${node}</span>')
_TITLE_TEXT: Final = 255
# This bridge's own CPU before its first reading, which covers a whole health interval.
_MEASURING: Final = Fragment('<span class="muted measuring" title="${title}">measuring…</span>')
# A node heard from no more: its figures are the last it sent, until its series expire.
_SILENT: Final = Fragment(' <span class="muted silent" title="${title}">silent ${age}</span>')
# Readiness stays green while switched off: the bridge serves, it just publishes nothing.
_SWITCHED_OFF: Final = Fragment(
    '<section class="panel notice" id="integration" role="status"><b>The pubsub integration is'
    " switched off</b> (<code>POST /v1/integration</code>): the scheduled collectors and"
    " <code>broadcast_*</code> publish nothing, so this bridge's own figures are the last it"
    " collected; messages ingested from elsewhere still arrive. Post"
    ' <code>{"enabled": true}</code> to switch it back on.</section>'
)
# The Nodes card's colour: the worst of its nodes' (a node whose status is unknown is a doubt).
# Worst by tone, not by the table's row order, where a node left comes before an unhealthy one.
_NODE_TONE: Final = {
    "down": "bad",
    "unhealthy": "bad",
    "left": "warn",
    "degraded": "warn",
    "unknown": "warn",
    "healthy": "good",
}
# Receivers whose oldest delivery failed: the pager may be hearing nothing of the alerts below.
_FAILING: Final = Fragment(
    '<section class="panel notice" id="receivers" role="status"><b>${what}</b> the alerts wait'
    " in the outbox and are retried in order (each alert's page shows its deliveries):"
    '<ul class="failing">${receivers}</ul></section>'
)
_FAILING_RECEIVER: Final = Fragment(
    '<li><span class="origin">${label}</span> failing: ${result} (${attempts}); ${waiting},'
    " the oldest for ${oldest}; next attempt ${next}</li>"
)
# Alertmanager refusing or unreachable: routed alerts (its pager) may be hearing nothing.
_ALERTMANAGER_FAILING: Final = Fragment(
    '<section class="panel notice" id="alertmanager" role="status"><b>Alertmanager is not'
    " taking the alerts:</b> posts to ${url} fail: ${why}; retried until it takes them"
    " (check <code>EXESDB_ALERTMANAGER_URL</code> and that Alertmanager runs there).</section>"
)
# Deliveries no receiver took and none will retry by itself: their alerts reached nobody there.
# When a resend cannot help (its receiver dropped from the settings, as after a first try of a
# made-up URL), how to get rid of those, and when the notice goes away by itself: else it reads
# as there to stay.
_DEAD_LETTERS: Final = Fragment(
    '<section class="panel notice" id="dead-letters" role="status"><b>${what}:</b> ${told}.'
    " <code>exesdb-bridge outbox list --state dead</code> says why;"
    " <code>exesdb-bridge outbox retry --all</code> sends again what can be (run with the"
    " bridge's <code>EXESDB_STATE_DIR</code>): not one for a receiver the bridge does not run"
    " with now, until it does again; <code>exesdb-bridge outbox drop --receiver ORIGIN</code>"
    " deletes those of a receiver not to be used again (<code>--all</code>: every one). Each"
    " is forgotten"
    " <code>EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS</code> after it died (7 days by default).</section>"
)
# A first start: "all clear" must not read as "and the pager would hear of it".
_NOBODY_NOTIFIED: Final = Fragment(
    "No webhook receiver or Alertmanager is configured (<code>EXESDB_WEBHOOK_URLS</code>,"
    " <code>EXESDB_WEBHOOK_CONFIG_FILE</code>, <code>EXESDB_ALERTMANAGER_URL</code>), so nobody"
    " is notified: alerts are kept and shown here only."
)
# A node announced down or left: how long ago, its figures the last it sent.
_GONE: Final = Fragment(' <span class="muted gone" title="${title}">for ${age}</span>')


@dataclass(frozen=True, slots=True)
class _Node:
    """A node as its row shows it: the times as moments, what depends on the time as flags."""

    node: str
    status: str | None
    cpu: float | None
    memory: float | None
    disk: float | None
    silent_since: int | None  # when last heard (Unix seconds), if past two intervals since
    gone_at: int | None  # when announced down or left
    held_down: bool  # the cluster monitor holds it down
    expired: bool  # held down, its series expired: no figures
    measuring: bool  # the bridge's own, before its first CPU reading could come


@dataclass(frozen=True, slots=True)
class _Failing:
    """A receiver whose oldest waiting delivery failed, as the notice shows it."""

    label: str  # origin only, without user info
    result: str  # the last attempt's, any URL in it redacted
    attempts: int
    waiting: int  # deliveries waiting for it, that one included
    held: int  # alerts waiting in the grouping window that one holds
    oldest_at: float  # when that one was made (Unix time)
    next_at: float  # its next attempt


@dataclass(frozen=True, slots=True)
class StatusView:
    """What the status page's live part shows, and nothing else: equal views render the same
    markup (``status_live``), so a view like the last one needs no render."""

    checks: Mapping[str, Mapping[str, Any]]
    alerts: tuple[AlertRecord, ...] | None  # None: no alert sink
    truncated: bool
    # Open alerts by severity, those not listed too (when truncated): the Active alerts card's.
    counts: Mapping[str, int]
    # Some left out of the list fired since the sink last counted: there may be more.
    at_least: bool
    lease: LeaseState  # whether the alerts are the cluster's (not on Redis without the lease)
    nodes: tuple[_Node, ...] | None  # None: no Prometheus sink
    admin: bool
    publishing: bool  # the pubsub integration is enabled
    failing: tuple[_Failing, ...] = ()  # receivers whose oldest waiting delivery failed
    notified: bool = True  # a webhook receiver or an Alertmanager is configured
    alertmanager_failing: tuple[str, str] | None = None  # its URL and why posts fail
    dead_letters: int = 0  # dead-lettered deliveries that need someone


async def status_view(
    shown: Shown,
    *,
    alerts_from: AlertSource | None,
    nodes_from: NodeSource | None,
    down_from: DownSource | None,
    now: float,
) -> StatusView:
    """The status page's view now, with the alerts of ``alerts_from``, the nodes of
    ``nodes_from`` and those ``down_from`` holds down (None: the bridge runs no such component)."""
    alerts: list[AlertRecord] = []
    truncated = False
    counts: Mapping[str, int] = {}
    at_least = False
    failing: tuple[_Failing, ...] = ()
    notified = True
    alertmanager_failing: tuple[str, str] | None = None
    dead_letters = 0
    if alerts_from is not None:
        for state in _OPEN:
            # The newest fired: an alert changed since it fired (escalated) is no newer. One
            # more than shown tells whether any is left out.
            query = AlertQuery(state=state, limit=MAX_SHOWN + 1)
            found = await alerts_from.list_alerts(query, by_start=True)
            truncated = truncated or len(found) > MAX_SHOWN
            alerts.extend(found[:MAX_SHOWN])
        alerts.sort(key=lambda record: record.starts_at, reverse=True)
        if truncated:
            counted = alerts_from.active_counts()
            counts, at_least = _counts(alerts, counted.by_severity), counted.fired_since
        else:
            counts = _counts(alerts, {})
        recipients = alerts_from.recipients()
        notified = bool(recipients.webhooks) or recipients.alertmanager is not None
        dead_letters = recipients.dead_letters
        labels = dict(recipients.webhooks)
        if recipients.alertmanager is not None and recipients.alertmanager_failing is not None:
            alertmanager_failing = (recipients.alertmanager, recipients.alertmanager_failing)
        failing = tuple(
            _failing(delivery, waiting, held, labels)
            for delivery, waiting, held in await alerts_from.failing_receivers()
        )
    nodes: tuple[_Node, ...] | None = None
    if nodes_from is not None:
        summaries = list(nodes_from.nodes())
        held_down = _held_down(down_from)
        expired = _remembered(summaries, held_down)
        summaries.extend(expired)
        gone = {node.node for node in expired}
        nodes = tuple(_node(node, shown, held_down, gone, now) for node in summaries)
    return StatusView(
        checks=shown.readiness(),
        alerts=tuple(alerts) if alerts_from is not None else None,
        truncated=truncated,
        counts=counts,
        at_least=at_least,
        lease=lease_state(alerts_from),
        nodes=nodes,
        admin=shown.settings.admin_token is not None,
        publishing=shown.integration.enabled(),
        failing=failing,
        notified=notified,
        alertmanager_failing=alertmanager_failing,
        dead_letters=dead_letters,
    )


def _counts(listed: Sequence[AlertRecord], counted: Mapping[str, int]) -> dict[str, int]:
    """The open alerts by severity: those ``counted`` (as of the sink's last count, once a
    second: no count of the outbox at each refresh, of up to 45 000 open alerts), never fewer
    than those ``listed`` (fired since that count; more may have: ``ActiveCounts.fired_since``)."""
    shown = Counter(record.severity for record in listed)
    severities = {*shown, *counted}
    return {severity: max(shown[severity], counted.get(severity, 0)) for severity in severities}


def _failing(delivery: Delivery, waiting: int, held: int, labels: Mapping[str, str]) -> _Failing:
    if delivery.last_error:
        result = redact_urls(delivery.last_error)
    else:
        result = f"HTTP {delivery.last_status}" if delivery.last_status is not None else "failed"
    return _Failing(
        label=labels.get(delivery.url) or receiver_label(delivery.url, userinfo=False),
        result=result,
        attempts=delivery.attempts,
        waiting=waiting,
        held=held,
        oldest_at=delivery.created_at,
        next_at=delivery.next_attempt_at,
    )


def _node(
    node: NodeSummary, shown: Shown, held_down: Mapping[str, float], expired: Set[str], now: float
) -> _Node:
    settings = shown.settings
    # Readings come every health and every metrics interval: two of the longer one missed.
    late = 2 * max(settings.health_broadcast_interval, settings.metrics_broadcast_interval) / 1000
    # Past two intervals a reading is late, not coming (e.g. the host probe fails): a dash.
    first = 2 * settings.health_broadcast_interval / 1000
    return _Node(
        node=node.node,
        status=node.status,
        cpu=node.cpu,
        memory=node.memory,
        disk=node.disk,
        # Whole seconds, and only those shown: the moments stay the same from one view to the
        # next (a node reporting moves its last reading, which shows only once it is silent).
        silent_since=round(now - node.silent_for) if node.silent_for >= late else None,
        gone_at=None if node.gone_for is None else round(now - node.gone_for),
        held_down=node.node in held_down,
        expired=node.node in expired,
        measuring=(node.cpu is None and node.node == shown.node and now - shown.started_at < first),
    )


def status_live(view: StatusView, shown: Shown, *, root: str, now: float | None) -> Html:
    """The part of the status page that refreshes, showing ``view`` with the ages at ``now``
    (the page as first sent, read without the script too); None for ``now``: the moments
    themselves, so the same for equal views (the live part the script fetches: it counts the
    ages, so only time passing changes nothing)."""
    checks = view.checks
    ready = all(check["ready"] or not check["required"] for check in checks.values())
    alerts = view.alerts or ()
    nodes = view.nodes or ()
    not_ready = [name for name, check in checks.items() if check["required"] and not check["ready"]]
    return template("status.html")(
        ready_tone="good" if ready else "bad",
        ready_text="Ready" if ready else "Not ready",
        ready_detail=(
            f"{len(checks)} parts, all required ones ready"
            if ready
            else "waiting for " + ", ".join(not_ready)
        ),
        node_tone=_node_tone(nodes),
        node_count=str(len(nodes)),
        node_detail=_breakdown(Counter(node.status or "unknown" for node in nodes))
        or "none heard yet",
        alert_tone=_alert_tone(alerts, view.lease),
        alert_count=f"{sum(view.counts.values())}{'+' if view.at_least else ''}",
        alert_detail=_alert_detail(view.counts, view.lease, at_least=view.at_least),
        uptime=age_since(shown.started_at, now),
        started=timestamp(shown.started_at),
        lease=lease_notice(view.lease),
        alerts=_alerts(
            alerts,
            view.alerts is not None,
            view.truncated,
            admin=view.admin,
            root=root,
            now=now,
            lease=view.lease,
            notified=view.notified,
        ),
        nodes=_nodes(nodes, shown, present=view.nodes is not None, now=now),
        components=_components(checks),
        integration=Html("") if view.publishing else _SWITCHED_OFF(),
        receivers=join(
            [
                _receivers(view.failing, now),
                _ALERTMANAGER_FAILING(
                    url=view.alertmanager_failing[0], why=view.alertmanager_failing[1]
                )
                if view.alertmanager_failing is not None
                else Html(""),
                _dead_letters(view.dead_letters),
            ]
        ),
    )


def _receivers(failing: Sequence[_Failing], now: float | None) -> Html:
    if not failing:
        return Html("")
    items = [
        _FAILING_RECEIVER(
            label=receiver.label,
            result=receiver.result,
            attempts=_count(receiver.attempts, "attempt"),
            waiting=(
                _count(receiver.waiting, "delivery", "deliveries") + " wait"
                if receiver.waiting != 1
                else "1 delivery waits"
            )
            + (
                f" (and {_count(receiver.held, 'alert')} held in its grouping window)"
                if receiver.held
                else ""
            ),
            oldest=age_since(receiver.oldest_at, now),
            next=countdown(receiver.next_at, now),
        )
        for receiver in failing
    ]
    what = (
        "A webhook receiver is failing:"
        if len(failing) == 1
        else f"{len(failing)} webhook receivers are failing:"
    )
    return _FAILING(what=what, receivers=join(items))


def _dead_letters(count: int) -> Html:
    if not count:
        return Html("")
    if count == 1:
        return _DEAD_LETTERS(
            what="A webhook delivery is dead-lettered",
            told="its receiver did not take it and it is not tried again, so its alerts may not"
            " have reached that receiver",
        )
    return _DEAD_LETTERS(
        what=f"{count} webhook deliveries are dead-lettered",
        told="their receivers did not take them and they are not tried again, so their alerts"
        " may not have reached those receivers",
    )


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


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


def _node_tone(nodes: Sequence[_Node]) -> str:
    if not nodes:
        return "none"
    tones = {_NODE_TONE.get(node.status or "unknown", "warn") for node in nodes}
    return "bad" if "bad" in tones else "warn" if "warn" in tones else "good"


def _alert_tone(alerts: Sequence[AlertRecord], lease: LeaseState) -> str:
    if any(record.state is AlertState.FIRING for record in alerts):
        return "bad"
    # Without the lease no list is known to be clear: the holder's may differ; nor with it,
    # cut off from Redis: what was sent since waits there unread.
    return "warn" if alerts or not lease.held or not lease.reachable else "good"


def _alert_detail(by_severity: Mapping[str, int], lease: LeaseState, *, at_least: bool) -> str:
    counts = _breakdown(by_severity, SEVERITIES[::-1])
    if at_least:  # the sink counts again within a second
        counts = f"at least {counts}: more fired since the last count"
    if lease.kept:
        return f"{counts or 'none here'}; may be out of date (the work queue not taken up)"
    if not lease.reachable and lease.held:
        return f"{counts or 'none here'}; may be out of date (cannot use Redis)"
    if not lease.reachable:
        return f"{counts or 'none here'}; may be incomplete (cannot use Redis)"
    if not lease.held:
        return f"{counts or 'none here'}; may be incomplete (not the lease holder)"
    return counts or "all clear"


def _alerts(
    alerts: Sequence[AlertRecord],
    kept: bool,
    truncated: bool,
    *,
    admin: bool,
    root: str,
    now: float | None,
    lease: LeaseState,
    notified: bool,
) -> Html:
    if not kept:
        return empty("This bridge runs no alert sink, so it keeps no alerts.")
    listing = _listing(alerts, truncated, admin=admin, root=root, now=now, lease=lease)
    if notified:
        return listing
    return join((empty(_NOBODY_NOTIFIED()), listing))


def _listing(
    alerts: Sequence[AlertRecord],
    truncated: bool,
    *,
    admin: bool,
    root: str,
    now: float | None,
    lease: LeaseState,
) -> Html:
    if not alerts and not lease.reachable and lease.held:
        return empty(
            "No active alerts on this replica as of when it could last use Redis: it holds the"
            " alert work-queue lease, and alerts sent since wait in Redis, unread."
        )
    if not alerts and not lease.reachable:
        return empty(
            "No active alerts on this replica, which cannot use Redis: which replica holds the"
            " alert work-queue lease, and so the cluster's alerts, cannot be known here."
        )
    if not alerts and lease.kept:
        return empty(
            "No active alerts on this replica, which keeps the alert work-queue lease but has not"
            " taken the work queue up: its alerts may be out of date."
        )
    if not alerts and not lease.held:
        return empty(
            "No active alerts on this replica, which does not hold the alert work-queue lease:"
            " the replica that holds it may have some."
        )
    if not alerts:
        return empty("No active alerts.")
    head: tuple[str, ...] = ("Severity", "Alert", "Node", "Age", "State", "Level")
    rows: list[tuple[object, ...]] = [
        (
            severity_badge(record.severity),
            _alert_link(record, root),
            _node_name(record.node),
            age_since(record.starts_at, now),
            badge(record.state),
            _level(record),
        )
        for record in alerts
    ]
    if admin:
        # Without an admin token no row has a button, and no column is named for one: a
        # screen reader would read "Acknowledge" over every row's empty cell.
        head = (*head, heard_only("Acknowledge"))
        rows = [
            (
                *row,
                (
                    ack_button(record, _cut(record.title))
                    if record.state is AlertState.FIRING
                    else Html("")
                ),
            )
            for row, record in zip(rows, alerts, strict=True)
        ]
    listing = table(head, rows, css="grid alerts")
    if truncated:
        note = empty(
            f"Showing the newest {MAX_SHOWN} firing and {MAX_SHOWN} acknowledged alerts;"
            " GET /v1/alerts lists them all."
        )
        return join((listing, note))
    return listing


def _alert_link(record: AlertRecord, root: str) -> Html:
    href = root + alert_path(record.alert_id).lstrip("/")
    return _ALERT_LINK(href=href, title=_cut(record.title), alert_id=_cut(record.alert_id))


def _cut(text: str) -> str:
    """``text`` as a row shows it: its first ``_ROW_TEXT`` characters, ending ``…`` if cut."""
    return text if len(text) <= _ROW_TEXT else text[: _ROW_TEXT - 1] + "…"


def _level(record: AlertRecord) -> Html:
    if record.level > 1:
        return badge(record.level_name, "degraded" if record.level == 2 else "unhealthy")
    return escape(record.level_name)


def _nodes(nodes: Sequence[_Node], shown: Shown, *, present: bool, now: float | None) -> Html:
    if not present:
        return empty("This bridge runs no Prometheus sink, so it knows no node figures.")
    if not nodes:
        return empty(
            "No node has reported yet: nodes appear with their first NodeHealth, ResourceUsage"
            " or NodeLifecycle message."
        )
    settings = shown.settings
    ordered = sorted(nodes, key=lambda node: (_rank(node), node.node))
    rest = ordered[MAX_SHOWN:]
    ordered = ordered[:MAX_SHOWN]
    rows = [
        (
            _node_name(node.node),
            _health(node, shown, now),
            _cpu(node, shown),
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


def _node_name(name: str) -> Html:
    """A node's name as its row (in the nodes table or an alert's) shows it: cut to
    ``_ROW_TEXT`` characters, then whole in the tooltip (cut there past ``_TITLE_TEXT``:
    /metrics and the alert's page have it whole)."""
    if len(name) <= _ROW_TEXT:
        return _NODE_NAME(node=name)
    whole = name if len(name) <= _TITLE_TEXT else name[: _TITLE_TEXT - 1] + "…"
    return _NODE_NAME_CUT(node=_cut(name), whole=whole)


def _rank(node: _Node) -> int:
    return _NODE_RANK.get(node.status or "unknown", _NODE_RANK["unknown"])


def _health(node: _Node, shown: Shown, now: float | None) -> Html:
    """The node's status badge, and how long it has been silent or gone, the tooltip saying
    what its figures are (``expired``: held down, its series expired, shown without)."""
    status = badge(node.status) if node.status else badge("unknown")
    settings = shown.settings
    if node.gone_at is not None:
        figures = _expired(settings) if node.expired else _kept(settings)
        title = f"NodeLifecycle {node.status} at {utc(node.gone_at)}: {figures}"
        if node.held_down:  # shown after its series expired too
            title += f" {_forgotten(settings)}"
        return join((status, _GONE(age=age_since(node.gone_at, now), title=title)))
    if node.silent_since is None:
        return status
    silent = _SILENT(
        age=age_since(node.silent_since, now),
        title=f"Nothing from this node since {utc(node.silent_since)}: {_kept(settings)}",
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


def _cpu(node: _Node, shown: Shown) -> Html:
    settings = shown.settings
    if node.measuring:
        interval = age(settings.health_broadcast_interval / 1000)
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
    return table(
        ("Part", "Readiness", heard_only("Required or optional"), "Reason"),
        rows,
        css="grid components",
    )
