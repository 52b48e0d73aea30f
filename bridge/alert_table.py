"""What ``exesdb-bridge alerts`` prints: the states it lists unless asked, and an alert's row.

By default ``alerts list`` asks ``GET /v1/alerts`` for the alerts that want attention, firing and
acknowledged ones, one state at a time (the admin API keeps one state per request): resolved
alerts are kept, and would bury them. ``--state all`` asks once for every state. It prints the
``--limit`` most recently changed (``DEFAULT_LIMIT``; 0: all) and says on stderr how many it left
out (``newest``), in the words ``outbox list`` says it too (``not_shown``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

__all__ = [
    "ALERT_COLUMNS",
    "API_MOST",
    "DEFAULT_LIMIT",
    "NO_OPEN_ALERTS",
    "OPEN_STATES",
    "TITLE_WIDTH",
    "alert_row",
    "asked_per_state",
    "lease_moved",
    "lease_note",
    "merged",
    "newest",
    "not_shown",
]

OPEN_STATES: Final = ("firing", "acknowledged")
NO_OPEN_ALERTS: Final = "no firing or acknowledged alerts (--state all lists resolved ones too)"
ALERT_COLUMNS: Final = (
    "ALERT_ID",
    "STATE",
    "LEVEL",
    "SEVERITY",
    "ALERTNAME",
    "NODE",
    "SINCE",
    "TITLE",
)
# A title may have 4 096 characters; the table shows its start, --json the whole of it.
TITLE_WIDTH: Final = 60
# Rows printed unless --limit says otherwise: a screenful, not the thousands a bridge may keep.
DEFAULT_LIMIT: Final = 50
# GET /v1/alerts's ?limit=: its default, and its most (MAX_LIST in bridge/sinks/alerts/admin.py,
# not imported: a client command does not load the service's modules).
_API_DEFAULT: Final = 1000
API_MOST: Final = 10_000
_ALL_LISTED: Final = "--limit 0 lists all"
# GET /v1/alerts's work_queue_lease, said as the status page's banner (bridge/pages/widgets.py)
# says it: another replica holds the lease (named when known), none can be known from this one,
# or this one keeps it without serving the work queue.
_NOT_THE_HOLDER: Final = (
    "the replica at {url} does not hold the work-queue lease: its alerts may be missing or out"
    " of date; ask the replica that holds it{holder} (exesdb_redis_work_queue_leader 1 on its"
    " /metrics)"
)
_HOLDER_UNKNOWN: Final = (
    "the replica at {url} cannot use Redis, so which replica holds the work-queue lease cannot"
    " be known there: its alerts may be missing or out of date (its /readyz says why: Redis"
    " unreachable, or refusing the bridge); batches ingested there meanwhile wait in its spool"
    " on disk and are handled once Redis is back, and notifications already in its outbox are"
    " still sent"
)
_HOLDER_CUT_OFF: Final = (
    "the replica at {url} holds the alert work-queue lease but cannot use Redis (its /readyz"
    " says why: Redis unreachable, or refusing the bridge): alerts sent since wait in Redis,"
    " unread, and its alerts may be out of date. Once its lease runs out"
    " (EXESDB_REDIS_CLAIM_IDLE_MS after its last renewal) a replica that can use Redis takes the"
    " work queue over, unless Redis answers this one first; batches ingested here meanwhile wait"
    " in its spool on disk, and notifications already in its outbox are still sent"
)
_LEASE_KEPT: Final = (
    "the replica at {url} keeps the alert work-queue lease, and does not serve the work queue:"
    " Redis lost its data while that replica held the lease, and taking the work queue up fails"
    " (tried again each second; its log says why). It keeps the lease rather than leave it to a"
    " replica standing by, as its open alerts are kept only in its outbox: taken by another,"
    " their resolves would never be sent. Meanwhile no replica serves the work queue (its"
    " entries wait in Redis) and its alerts may be out of date; still failing three"
    " EXESDB_REDIS_CLAIM_IDLE_MS after the loss, it gives the lease back"
    " (exesdb_redis_work_queue_lease_kept 1 on its /metrics meanwhile)"
)


def alert_row(alert: dict[str, Any]) -> tuple[str, ...]:
    """An alert of ``GET /v1/alerts`` as a row under ``ALERT_COLUMNS``."""
    title = str(alert["annotations"]["title"])
    return (
        alert["alert_id"],
        alert["state"],
        alert["level"],
        alert["severity"],
        alert["labels"]["alertname"],
        alert["labels"]["node"],
        alert["starts_at"],
        title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 1] + "…",
    )


def asked_per_state(limit: int) -> int:
    """The ``?limit=`` each request of ``alerts list --limit limit`` (0: all) asks with: the
    API's default of 1 000 (what the command asked before it had --limit), more only when more
    are to be printed, at most the API's 10 000."""
    return API_MOST if limit == 0 else min(max(limit, _API_DEFAULT), API_MOST)


def newest(
    alerts: Sequence[dict[str, Any]], limit: int, *, asked: int, full: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """The first ``limit`` of ``alerts`` (``merged``'s, most recently changed first; 0: all)
    and what to say on stderr of those left out, None when none are.

    ``full``: an answer held all ``asked`` alerts it could, so the bridge has more than it gave
    and the count left out is a lower bound.
    """
    shown = list(alerts if limit == 0 else alerts[:limit])
    left = len(alerts) - len(shown)
    if not left and not full:
        return shown, None
    if full:
        more = f"at least {left} more {_alerts(left)}" if left else "more alerts"
        hint = (
            f"--limit 0 lists up to {API_MOST} per request"
            if asked < API_MOST
            else f"the bridge lists at most {API_MOST} per request"
        )
    else:
        more, hint = f"{left} of {len(alerts)} {_alerts(len(alerts))}", _ALL_LISTED
    return shown, not_shown(more, len(shown), "most recently changed", hint)


def not_shown(more: str, shown: int, kept: str, hint: str = _ALL_LISTED) -> str:
    """What a list command says on stderr of the rows its ``--limit`` left out: ``more``, how
    many of what (``2 of 4 alerts``); ``shown`` rows listed, the ``kept`` ones (``newest``);
    ``hint``, how to list them all."""
    return f"{more} not shown, the {shown} {kept} listed: {hint}"


def _alerts(count: int) -> str:
    return "alert" if count == 1 else "alerts"


def merged(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``GET /v1/alerts`` answers (one per state asked) as one: every alert once, most recently
    changed first as each answer lists them, the replica holding the work-queue lease only if
    every answer says so, and the holder's name as the last answer that knew it gave it, of
    those that say the replica does not hold it when any does (``lease_moved``). An alert in
    two answers (acknowledged between the requests) is listed as last changed."""
    # updated_at is RFC 3339 in UTC, every one of one form: text order is time order.
    newest_first = sorted(
        (alert for answer in answers for alert in answer["alerts"]),
        key=lambda alert: str(alert["updated_at"]),
        reverse=True,
    )
    latest: dict[str, dict[str, Any]] = {}
    for alert in newest_first:
        latest.setdefault(alert["alert_id"], alert)
    alerts = list(latest.values())
    # The flag and the name from the same answers: when the lease moved to the replica between
    # the requests, its later answers name the replica itself, not one to ask.
    not_held = [answer for answer in answers if not answer.get("work_queue_holder", True)]
    # A bridge of a version before the name answers without it: unknown.
    names = [answer.get("work_queue_holder_name") for answer in not_held or answers]
    name = next((name for name in reversed(names) if name is not None), None)
    wheres = [answer.get("work_queue_lease") for answer in not_held or answers]
    where = next((where for where in reversed(wheres) if where is not None), None)
    # A bridge of a version before it answers without it: reachable, as it was taken then.
    reachable = all(answer.get("work_queue_reachable", True) for answer in not_held or answers)
    return {
        "alerts": alerts,
        "work_queue_holder": not not_held,
        "work_queue_holder_name": name,
        "work_queue_lease": where,
        "work_queue_reachable": reachable,
    }


def lease_note(url: str, answer: dict[str, Any] | None) -> str | None:
    """What ``alerts`` says on stderr when ``answer`` (``GET /v1/alerts``'s, or ``merged``'s)
    comes from the Redis replica at ``url`` without the work-queue lease: that another replica
    holds it (named if the bridge knows it), or that none can be known because that replica
    cannot use Redis (``work_queue_lease``: ``unknown``), or that it keeps the lease without
    serving the work queue (``kept``: Redis lost its data); when it holds the lease, that it
    cannot use Redis if so (``work_queue_reachable`` false), else None."""
    if answer is None:
        return None
    if answer.get("work_queue_holder") is not False:
        cut_off = answer.get("work_queue_reachable") is False
        return _HOLDER_CUT_OFF.format(url=url) if cut_off else None
    if answer.get("work_queue_lease") == "unknown":
        return _HOLDER_UNKNOWN.format(url=url)
    if answer.get("work_queue_lease") == "kept":
        return _LEASE_KEPT.format(url=url)
    name = answer.get("work_queue_holder_name")
    # A consumer name read from Redis: one with a control character is shown escaped.
    shown = (name if name.isprintable() else ascii(name)) if isinstance(name, str) else None
    holder = f": {shown}" if shown else ""
    return _NOT_THE_HOLDER.format(url=url, holder=holder)


def lease_moved(answers: Sequence[dict[str, Any]]) -> bool:
    """Whether the work-queue lease moved between the ``GET /v1/alerts`` requests ``merged``
    combines: some answers say the replica holds it, others that it does not."""
    return len({bool(answer.get("work_queue_holder", True)) for answer in answers}) > 1
