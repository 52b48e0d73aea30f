"""The pieces every page is made of: the layout, the acknowledge bar, badges, times and tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from bridge.headers import ADMIN_TOKEN_HEADER
from bridge.messages import MAX_NAME, SEVERITIES, format_timestamp, utc_from_seconds
from bridge.pages.html import Fragment, Html, escape, exact, join, template
from bridge.pages.sources import LeaseState, Shown
from bridge.sinks.alerts.records import AlertRecord

__all__ = [
    "REFRESH_SECONDS",
    "ack_button",
    "age",
    "age_since",
    "badge",
    "countdown",
    "empty",
    "heard_only",
    "layout",
    "lease_notice",
    "meter",
    "severity_badge",
    "table",
    "text_or_dash",
    "timestamp",
    "utc",
]

REFRESH_SECONDS: Final = 5
# The first and last whole seconds a datetime holds (years 1 and 9999), as Unix times.
_FIRST_SECOND: Final = int(datetime.min.replace(tzinfo=UTC).timestamp())
_LAST_SECOND: Final = int(datetime.max.replace(tzinfo=UTC, microsecond=0).timestamp())
# The colour classes a badge may take (pages.css): any other value is shown in grey.
_TONES: Final[dict[str, str]] = {
    **{str(severity): f"sev-{severity}" for severity in SEVERITIES},
    "firing": "tone-bad",
    "acknowledged": "tone-warn",
    "resolved": "tone-good",
    "healthy": "tone-good",
    "degraded": "tone-warn",
    "unhealthy": "tone-bad",
    "down": "tone-bad",
    "left": "tone-warn",
    "ready": "tone-good",
    "not ready": "tone-bad",
    "delivered": "tone-good",
    "pending": "tone-warn",
    "dead": "tone-bad",
    "waiting": "tone-info",
    # what an alert's history records
    "fired": "tone-bad",
    "severity_changed": "tone-warn",
    "escalated": "tone-bad",
    "taken_over": "tone-info",
}
_REVISION: Final = Fragment(' <span class="muted">${revision}</span>')

_BADGE: Final = Fragment('<span class="badge ${tone}">${text}</span>')
_TIME: Final = Fragment('<time datetime="${iso}" title="${title}">${shown}</time>')
# A time pages.js shows as an age ("3m 12s") or what is left of a wait ("in 5s", "due"),
# counted on the reader's side. The page as first sent reads so without the script too (the
# age at the time it was rendered); the live part the script fetches holds the moment itself,
# so it stays the same while only time passes, and so does its ETag (routes.py).
_SINCE: Final = Fragment(
    '<time datetime="${iso}" data-since="${at}" title="since ${shown}">${text}</time>'
)
_UNTIL: Final = Fragment(
    '<time datetime="${iso}" data-until="${at}" title="at ${shown}">${text}</time>'
)
_METER: Final = Fragment(
    '<span class="usage"><meter min="0" max="100" low="${low}" high="${high}" optimum="0"'
    ' value="${value}">${text}</meter><span class="num">${text}</span></span>'
)
_ACK_BUTTON: Final = Fragment(
    '<button type="button" class="ack" data-ack="${alert_id}" data-starts-at="${starts_at}"'
    ' data-title="${title}" aria-label="Acknowledge ${title}">Acknowledge</button>'
)
_TABLE: Final = Fragment(
    '<table class="${css}"><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>'
)
_CELL: Final = Fragment("<td>${value}</td>")
# A cell naming its column, for a table whose rows a phone stacks (pages.css shows the name).
_NAMED_CELL: Final = Fragment('<td data-label="${name}">${value}</td>')
_HEAD: Final = Fragment('<th scope="col">${name}</th>')
_ROW: Final = Fragment("<tr>${cells}</tr>")
_HEARD_ONLY: Final = Fragment('<span class="sr">${text}</span>')
_EMPTY: Final = Fragment('<p class="empty">${text}</p>')
_ACK_BAR: Final = Fragment(
    '<form class="ackbar" id="ack-form" autocomplete="off"${hidden}>'
    '<span class="ackbar-title">Acknowledge as</span>'
    '<label class="sr" for="ack-by">Your name</label>'
    f'<input id="ack-by" name="ack_by" placeholder="your name" maxlength="{MAX_NAME}" required>'
    '<label class="sr" for="ack-token">Admin token</label>'
    '<input id="ack-token" name="token" type="password" placeholder="admin token" required>'
    '<button type="button" id="ack-forget" class="quiet">Forget</button>'
    '<span class="hint">Kept in this tab only; sent as <code>${header}</code>.</span>'
    '<output id="ack-message" role="status" aria-live="polite"></output>'
    # What the button does, read before it is pressed (bridge/sinks/alerts/transitions.py).
    '<span class="hint ack-does">Acknowledging records your name and stops the alert\'s'
    " escalation (no webhook is sent); it stays listed until it resolves.</span>"
    "</form>"
)
# On Redis only the work-queue lease holder's alerts follow the cluster's (as GET /v1/alerts
# says with work_queue_holder): behind a load balancer, another replica must not look all clear.
_NOT_THE_HOLDER: Final = Fragment(
    '<section class="panel notice lease" id="lease" role="status"><b>This replica does not hold'
    " the alert work-queue lease:</b> its alert list may be incomplete or out of date; see the"
    " replica that holds it${holder} (<code>exesdb_redis_work_queue_leader 1</code> on its"
    " <code>/metrics</code>).</section>"
)
# Worded as `exesdb-bridge alerts list` says it (bridge/alert_table.py, lease_note).
_HOLDER_UNKNOWN: Final = Fragment(
    '<section class="panel notice lease" id="lease" role="status"><b>This replica cannot use'
    " Redis, so which replica holds the alert work-queue lease cannot be known here:</b> its"
    " alert list may be incomplete or out of date (<code>/readyz</code> says why: Redis"
    " unreachable, or refusing the bridge). Batches ingested here meanwhile wait in its spool on"
    " disk and are handled once Redis is back; notifications already in its outbox are still"
    " sent.</section>"
)
# The holder cut off from Redis, as `exesdb-bridge alerts list` says it (bridge/alert_table.py):
# it still holds the lease, so no other replica reads the work queue until the lease runs out.
_HOLDER_CUT_OFF: Final = Fragment(
    '<section class="panel notice lease" id="lease" role="status"><b>This replica holds the'
    " alert work-queue lease but cannot use Redis:</b> alerts sent since wait in Redis, unread,"
    " and its alert list may be out of date (<code>/readyz</code> says why: Redis unreachable,"
    " or refusing the bridge). Once its lease runs out (<code>EXESDB_REDIS_CLAIM_IDLE_MS</code>"
    " after its last renewal) a replica that can use Redis takes the work queue over, unless"
    " Redis answers this one first. Batches ingested here meanwhile wait in its spool on disk;"
    " notifications already in its outbox are still sent.</section>"
)
# Worded as docs/redis.md tells the lease kept after Redis lost its data.
_LEASE_KEPT: Final = Fragment(
    '<section class="panel notice lease" id="lease" role="status"><b>This replica keeps the'
    " alert work-queue lease, and does not serve the work queue:</b> Redis lost its data while"
    " this replica held the lease, and taking the work queue up fails (tried again each second;"
    " the log says why). It keeps the lease rather than leave it to a replica standing by, as"
    " its open alerts are kept only in its outbox: taken by another, their resolves would never"
    " be sent. Meanwhile no replica serves the work queue (its entries wait in Redis) and its"
    " alert list may be out of date; still failing three <code>EXESDB_REDIS_CLAIM_IDLE_MS</code>"
    " after the loss, it gives the lease back (<code>exesdb_redis_work_queue_lease_kept"
    " 1</code> on its <code>/metrics</code> meanwhile).</section>"
)
_HOLDER: Final = Fragment(
    ': <b class="holder" title="its consumer name: EXESDB_NODE, then a tag of its run">'
    "${consumer}</b>"
)
_ACK_OFF: Final = Fragment(
    '<p class="ackbar off" id="ack-off">Acknowledging from this page is off: set'
    " <code>EXESDB_ADMIN_TOKEN</code> on the bridge to enable it.</p>"
)


def badge(text: str, tone: str | None = None) -> Html:
    """``text`` in a coloured pill; the colour follows ``tone`` (else ``text``) if known."""
    return _BADGE(tone=_TONES.get(tone or text, "tone-none"), text=text)


def severity_badge(severity: str) -> Html:
    """An alert severity in its colour."""
    return badge(severity)


def age(seconds: float) -> str:
    """A duration as people read it: ``45s``, ``3m 12s``, ``2h 05m``, ``3d 4h``."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def utc(seconds: float) -> str:
    """A Unix time as ``2026-11-28 00:00:00 UTC``."""
    # isoformat writes every year in four digits, as format_timestamp does; strftime's %Y
    # writes the year 999 as "999" (glibc).
    return utc_from_seconds(seconds).isoformat(sep=" ", timespec="seconds")[:19] + " UTC"


def _iso(seconds: float) -> str:
    return utc_from_seconds(seconds).isoformat(timespec="seconds").replace("+00:00", "Z")


def timestamp(seconds: float | None) -> Html:
    """A Unix time as a ``<time>`` in UTC (an em dash for None)."""
    if seconds is None:
        return Html("&mdash;")
    return _TIME(iso=_iso(seconds), title=utc(seconds), shown=utc(seconds))


def _whole(seconds: float) -> int:
    """``seconds`` in whole seconds, as the data-since and data-until pages.js counts from; a time
    no datetime holds (a hand-edited outbox's: past the year 9999, infinite, NaN) as the one
    ``utc`` shows, so its age and countdown agree with its time on hover."""
    if _FIRST_SECOND <= seconds < _LAST_SECOND + 1:  # False for NaN
        return int(seconds)
    return int(utc_from_seconds(seconds).replace(microsecond=0).timestamp())


def age_since(seconds: float, now: float | None) -> Html:
    """How long ago ``seconds`` was at ``now`` (``3m 12s``, kept current by pages.js), the time
    itself on hover; None for ``now``: the time itself (the script counts the age)."""
    at = _whole(seconds)
    text = utc(seconds) if now is None else age(now - at)
    return _SINCE(iso=_iso(seconds), at=str(at), shown=utc(seconds), text=text)


def countdown(seconds: float, now: float | None) -> Html:
    """How long until ``seconds`` at ``now`` (``in 5s``, then ``due``: kept current by
    pages.js), the time itself on hover; None for ``now``: ``at`` the time itself."""
    at = _whole(seconds)
    if now is None:
        return _UNTIL(iso=_iso(seconds), at=str(at), shown=utc(seconds), text="at " + utc(seconds))
    text = "in " + age(at - now) if at > now else "due"
    return _UNTIL(iso=_iso(seconds), at=str(at), shown=utc(seconds), text=text)


def lease_notice(lease: LeaseState) -> Html:
    """A banner saying this replica's alerts may be incomplete (on Redis, without the work-queue
    lease), naming the replica that holds it if known, or that none can be known while this
    replica cannot use Redis, or that this replica keeps the lease without serving the work
    queue (Redis lost its data, its take-up failing), or that it holds the lease but cannot use
    Redis; nothing when it holds the lease and can (or runs the in-process bus, or no alert
    sink)."""
    if lease.held:
        return Html("") if lease.reachable else _HOLDER_CUT_OFF()
    if lease.kept:
        return _LEASE_KEPT()
    if not lease.reachable:
        return _HOLDER_UNKNOWN()
    holder = (
        _HOLDER(consumer=lease.holder) if lease.holder else Html(" (not known here at the moment)")
    )
    return _NOT_THE_HOLDER(holder=holder)


def meter(value: float | None, low: float, high: float) -> Html:
    """A percentage as a bar, amber from ``low`` and red from ``high`` (a dash for None)."""
    if value is None:
        return Html('<span class="muted">&mdash;</span>')
    shown = max(0.0, min(100.0, value))
    return _METER(low=f"{low:g}", high=f"{high:g}", value=f"{shown:.1f}", text=f"{value:.0f}%")


def ack_button(record: AlertRecord, title: str | None = None) -> Html:
    """The Acknowledge button of one alert (pages.js posts the ack, for the episode shown: its
    ``starts_at``, so that a click on a page shown before the alert fired anew changes
    nothing), named by ``title`` (the alert's title unless given: as its row shows it)."""
    return _ACK_BUTTON(
        alert_id=exact(record.alert_id),
        starts_at=format_timestamp(record.started),
        title=record.title if title is None else title,
    )


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[object]],
    css: str = "grid",
    *,
    named: bool = False,
) -> Html:
    """A table: ``head`` names the columns (every one: ``heard_only`` for a name not shown, in
    a table not ``named``), each row's values are escaped unless ``Html``; ``named``: each cell
    carries its column's name too (for a phone, where its rows stack)."""

    def cell(name: str, value: object) -> Html:
        return _NAMED_CELL(name=name, value=value) if named else _CELL(value=value)

    return _TABLE(
        css=css,
        head=join(_HEAD(name=name) for name in head),
        rows=join(
            _ROW(cells=join(cell(name, value) for name, value in zip(head, row, strict=True)))
            for row in rows
        ),
    )


def heard_only(text: str) -> Html:
    """Text a screen reader reads and the page does not show: the name of a column whose cells
    say what it is (the Acknowledge buttons), which a header left empty would not tell."""
    return _HEARD_ONLY(text=text)


def empty(text: str) -> Html:
    """A sentence standing where a table has no rows."""
    return _EMPTY(text=text)


def layout(
    shown: Shown,
    *,
    title: str,
    root: str,
    live: Html,
    etag: str,
    now: float,
    refresh: int = REFRESH_SECONDS,
    gone: str = "",
    ack_hidden: bool = False,
) -> Html:
    """A whole page: head, the bridge's bar, the acknowledge bar and ``live`` (the part
    pages.js refreshes every ``refresh`` seconds, never when 0, sending ``etag``, the live
    part's, so an unchanged one is answered 304). ``root`` is the relative way back to ``/``
    (``./`` or ``../``), so the pages work behind a proxy under any path. ``gone``: what
    pages.js says, refreshing no more, when the live part answers 404 (an alert's page).
    ``ack_hidden``: the acknowledge bar hidden (the page's alert cannot be acknowledged) until
    a refresh brings an Acknowledge button (pages.js)."""
    admin = shown.settings.admin_token is not None
    revision = shown.build.revision
    shown_revision = Html("") if revision == "unknown" else _REVISION(revision=revision[:12])
    return template("page.html")(
        title=title,
        root=root,
        refresh=str(refresh),
        node=shown.node,
        version=shown.build.version,
        revision=shown_revision,
        bus=shown.bus_kind,
        ack=(
            _ACK_BAR(header=ADMIN_TOKEN_HEADER, hidden=Html(" hidden" if ack_hidden else ""))
            if admin
            else _ACK_OFF()
        ),
        live=live,
        etag=etag,
        now=f"{now:.3f}",
        refreshed=timestamp(now),
        gone=gone,
    )


def text_or_dash(value: str | None) -> Html:
    """``value`` escaped, or an em dash when there is none."""
    return escape(value) if value else Html("&mdash;")
