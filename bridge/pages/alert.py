"""An alert's page (``GET /alerts/{alert_id}``): what it is, its history, what receivers got.

Every ``generatorURL`` the bridge sends points here.

Receivers are those the alert sink names (``AlertSource.recipients``: the keys its deliveries
carry), shown by their labels, origin only and without user info
(``bridge.receiver_keys.receiver_label``: a webhook URL's path often holds a token, its user
name may be one), and delivery errors with every URL in them redacted (``redact_urls``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from bridge.pages.html import Fragment, Html, join, template
from bridge.pages.sources import LeaseState, Shown
from bridge.pages.widgets import (
    ack_button,
    age_since,
    badge,
    countdown,
    empty,
    lease_notice,
    severity_badge,
    table,
    text_or_dash,
    timestamp,
)
from bridge.receiver_keys import receiver_label
from bridge.redaction import redact_urls
from bridge.sinks.alerts.records import (
    AlertDetail,
    AlertRecord,
    AlertState,
    Delivery,
    HistoryEntry,
    HistoryEvent,
    Recipients,
)
from bridge.urls import allowed_link

__all__ = ["GONE", "acknowledgeable", "alert_live", "not_found_live"]

GONE: Final = (
    "The bridge no longer keeps this alert: it was resolved more than a week ago and pruned,"
    " or the bridge's outbox (EXESDB_STATE_DIR) was reset."
)
"""What an alert's open page says once its alert is gone (pages.js, on a refresh's 404)."""
_EVENTS: Final = {
    "fired": "Fired",
    "severity_changed": "Severity changed",
    "escalated": "Escalated",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "taken_over": "Taken over",
}
_RECORDED: Final = Fragment("${detail}; recorded here at ${when}")
_FACT: Final = Fragment("<dt>${name}</dt><dd>${value}</dd>")
_FACTS: Final = Fragment('<dl class="facts">${facts}</dl>')
_RECEIVER: Final = Fragment(
    '<div class="receiver"><h3><span class="origin">${origin}</span>${note}</h3>${body}</div>'
)
_NOTE: Final = Fragment('<span class="hint">${text}</span>')
_REMOVED: Final = "no longer a receiver (EXESDB_WEBHOOK_URLS, EXESDB_WEBHOOK_CONFIG_FILE)"
_ACTIONS: Final = Fragment('<div class="actions">${button}</div>')
# Where the Acknowledge button would be, for an alert that cannot be acknowledged (the page's
# acknowledge bar is then hidden, until the alert fires again: pages.js).
_CANNOT_ACK: Final = Fragment('<p class="cannot-ack" id="cannot-ack">${text}</p>')
# A link kept whole in an annotation (EXESDB_ALERT_LINK_ORIGINS): a runbook, opened in a new tab
# that learns nothing of this page.
_LINK: Final = Fragment('<a href="${href}" target="_blank" rel="noopener noreferrer">${href}</a>')


def alert_live(
    detail: AlertDetail,
    recipients: Recipients,
    shown: Shown,
    *,
    now: float | None,
    lease: LeaseState,
) -> Html:
    """The part of an alert's page that refreshes; ``recipients`` where the alert sink sends,
    the ages and waits at ``now`` (the page as first sent); None for ``now``: the moments
    themselves, the same while only time passes (the live part: pages.js counts them).
    ``lease`` not held: a banner says the alert may be out of date here."""
    record = detail.alert
    admin = shown.settings.admin_token is not None
    button = _ACTIONS(button=_ack_or_why(record)) if admin else Html("")
    return template("alert.html")(
        severity=severity_badge(record.severity),
        title=record.title,
        state=badge(record.state),
        level=record.level_name,
        node=record.node,
        started=age_since(record.starts_at, now),
        lease=lease_notice(lease),
        alert_id=record.alert_id,
        actions=button,
        description=record.description or "No description.",
        facts=_facts(record),
        history=_history(detail),
        deliveries=_deliveries(detail, recipients, now),
        labels=_pairs(record.labels),
        # As receivers get them: summary (the title, as Alertmanager names it) among them.
        annotations=_annotations(
            record.sent_annotations, frozenset(shown.settings.alert_link_origins)
        ),
    )


def acknowledgeable(record: AlertRecord) -> bool:
    """Whether the alert's page offers to acknowledge it: only a firing alert can be."""
    return record.state is AlertState.FIRING


def _ack_or_why(record: AlertRecord) -> Html:
    """The alert's Acknowledge button, or why it has none (resolved, or acknowledged)."""
    if acknowledgeable(record):
        return ack_button(record)
    if record.state is AlertState.RESOLVED:
        return _CANNOT_ACK(text="Resolved: there is nothing to acknowledge.")
    return _CANNOT_ACK(
        text=f"Acknowledged by {record.ack_by}: there is nothing more to acknowledge."
    )


def not_found_live(alert_id: str, *, kept: bool, root: str, lease: LeaseState) -> Html:
    """What stands on the page of an alert the bridge does not know (``lease`` not held: a
    banner says the replica that holds it may know it)."""
    return template("not_found.html")(
        lease=lease_notice(lease),
        alert_id=alert_id,
        reason=(
            "It may never have fired here, or it was resolved more than a week ago and pruned."
            if kept
            else "This bridge runs no alert sink, so it keeps no alerts."
        ),
        root=root,
    )


def _facts(record: AlertRecord) -> Html:
    acknowledged = (
        f"by {record.ack_by}" + (f": {record.ack_note}" if record.ack_note else "")
        if record.ack_by
        else None
    )
    facts: list[tuple[str, object]] = [
        ("State", badge(record.state)),
        ("Escalation level", record.level_name),
        ("Severity", severity_badge(record.severity)),
        ("Category", record.category),
        ("Node", record.node),
        ("Source", text_or_dash(record.source)),
        ("Requires acknowledgement", "yes" if record.requires_ack else "no"),
        ("Started", timestamp(record.starts_at)),
        ("Ended", timestamp(record.ends_at)),
        ("Acknowledged", text_or_dash(acknowledged)),
        ("Acknowledged at", timestamp(record.ack_at)),
        ("Resolution", text_or_dash(record.resolution)),
        ("Last changed", timestamp(record.updated_at)),
    ]
    return _FACTS(facts=join(_FACT(name=name, value=value) for name, value in facts))


def _history(detail: AlertDetail) -> Html:
    if not detail.history:
        return empty("No history recorded (the alert predates this bridge's history).")
    started = _episode_start(detail.history)
    rows = [
        _fired_row(entry, detail.alert.starts_at)
        if index == started
        else (timestamp(entry.at), badge(_EVENTS[entry.event], entry.event), entry.detail)
        for index, entry in enumerate(detail.history)
    ]
    return table(("When", "What", "Detail"), rows, css="grid history")


def _episode_start(history: Sequence[HistoryEntry]) -> int | None:
    """The index of the entry that fired the alert's current episode: its last firing, unless
    another replica took the alert over since (its own firing, if any, is not in this history)."""
    for index in range(len(history) - 1, -1, -1):
        event = history[index].event
        if event is HistoryEvent.TAKEN_OVER:
            return None
        if event is HistoryEvent.FIRED:
            return index
    return None


def _fired_row(entry: HistoryEntry, starts_at: float) -> Sequence[object]:
    """The current episode's firing, at the alert's start as the Summary says it (its message's
    time), not at the moment the bridge recorded it, later by the message's way over the bus;
    that moment is added when it is a second or more later (a sender's clock behind)."""
    detail = entry.detail
    if entry.at - starts_at >= 1.0:
        detail = _RECORDED(detail=detail, when=timestamp(entry.at))
    return (timestamp(starts_at), badge(_EVENTS[entry.event], entry.event), detail)


def _deliveries(detail: AlertDetail, recipients: Recipients, now: float | None) -> Html:
    labels = dict(recipients.webhooks)
    # The receivers configured, then any key the deliveries carry that is no longer one.
    by_key: dict[str, list[Delivery]] = {key: [] for key in labels}
    for delivery in detail.deliveries:
        by_key.setdefault(delivery.url, []).append(delivery)
    waiting = dict(detail.waiting)
    ahead = {delivery.url: delivery for delivery in detail.ahead}
    held = {delivery.url: delivery for delivery in detail.held}
    parts: list[Html] = []
    for key, deliveries in by_key.items():
        rows: list[Sequence[object]] = []
        if key in waiting:
            rows.append(_waiting_row(waiting[key], now, held.get(key)))
        rows.extend(_delivery_row(delivery, now, ahead.get(key)) for delivery in deliveries)
        body = (
            table(
                ("Created", "State", "Attempts", "Last result", "Finished"),
                rows,
                css="grid deliveries",
                named=True,
            )
            if rows
            else empty("Nothing sent for this alert yet.")
        )
        note = "" if key in labels else _NOTE(text=_REMOVED)
        label = labels.get(key) or receiver_label(key, userinfo=False)
        parts.append(_RECEIVER(origin=label, note=note, body=body))
    if not parts:
        # Alertmanager, when configured, is still sent the alert: said on the next line.
        sent = "nothing is sent" if recipients.alertmanager is None else "no webhook is sent"
        parts.append(
            empty(
                "No webhook receiver is configured (EXESDB_WEBHOOK_URLS, "
                f"EXESDB_WEBHOOK_CONFIG_FILE): {sent}."
            )
        )
    if recipients.alertmanager is not None:
        parts.append(
            empty(
                f"Alertmanager at {recipients.alertmanager} is sent this alert's state too"
                + (
                    " (see its own UI)."
                    if recipients.alertmanager_failing is None
                    else f", but its posts fail: {recipients.alertmanager_failing}; retried"
                    " until it takes them."
                )
            )
        )
    return join(parts)


def _waiting_row(since: float, now: float | None, holder: Delivery | None) -> Sequence[object]:
    """The row of a grouping window the alert waits in; ``holder`` the failing delivery that
    holds the window open until it is delivered or dead-lettered, if one does."""
    if holder is None:
        return (
            timestamp(since),
            badge("waiting"),
            "0",
            "in the grouping window (EXESDB_WEBHOOK_GROUP_WAIT_MS)",
            Html("&mdash;"),
        )
    attempts = f"{holder.attempts} attempt{'' if holder.attempts == 1 else 's'}"
    return (
        timestamp(since),
        badge("waiting"),
        "0",
        "held in the grouping window while an older delivery to this receiver fails"
        f" ({attempts}, last {_last_result(holder)})",
        join((Html("next attempt "), countdown(holder.next_attempt_at, now))),
    )


def _delivery_row(delivery: Delivery, now: float | None, head: Delivery | None) -> Sequence[object]:
    """A delivery's row; ``head`` the older delivery at the head of its receiver's queue, if
    another: a pending one waits behind it (sent in order), so its next attempt is the head's."""
    result: object = _last_result(delivery)
    next_at = delivery.next_attempt_at
    if delivery.finished_at is None and head is not None:
        attempts = f"{head.attempts} attempt{'' if head.attempts == 1 else 's'}, last "
        shown = _last_result(head)
        result = (
            "waiting behind an older delivery to this receiver"
            f" ({attempts + shown if head.attempts else shown})"
        )
        next_at = head.next_attempt_at
    finished: object = timestamp(delivery.finished_at)
    if delivery.finished_at is None:
        finished = join((Html("next attempt "), countdown(next_at, now)))
    return (
        timestamp(delivery.created_at),
        badge(str(delivery.state)),
        str(delivery.attempts),
        result,
        finished,
    )


def _last_result(delivery: Delivery) -> str:
    if delivery.last_error:
        return redact_urls(delivery.last_error)
    if delivery.last_status is not None:
        return f"HTTP {delivery.last_status}"
    return "not tried yet"


def _pairs(values: Mapping[str, str]) -> Html:
    return table(("Name", "Value"), sorted(values.items()), css="grid pairs")


def _annotations(values: Mapping[str, str], origins: frozenset[str]) -> Html:
    """The annotations, a link the alert stage kept whole (on an allowed origin) as a link."""
    rows = [
        (name, _LINK(href=value) if allowed_link(value, origins) == value else value)
        for name, value in sorted(values.items())
    ]
    return table(("Name", "Value"), rows, css="grid pairs")
