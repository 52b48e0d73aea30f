"""Dead letters: deliveries given up on, sent again on request, and their open alerts queued anew.

A delivery is dead-lettered after its last attempt (``delivery``), or here when its receiver is
no longer configured (``add_orphans``, at start). ``exesdb-bridge outbox drop`` deletes dead
letters (``drop``), as their TTL does. ``exesdb-bridge outbox retry`` puts dead
letters back to pending (``retry``, each alert still firing told as it stands then), less those
``unretryable`` names: a receiver the bridge did not start with, a firing its receiver has
since heard resolved, one superseded (its receiver took a later delivery of each of its
alerts), one whose alerts' latest notification since was left out as stale (another replica, on
Redis, notified a newer state), or a firing of an alert resolved since with nothing to follow
it to its receiver. A dead letter each of whose alerts is one of these last three is
superseded, needing nobody (``superseded``, ``superseded_count``: what ``outbox list``, the
start-up line and the dead-letters gauge tell apart). An alert still
open whose latest notification to a receiver was dead-lettered is queued for it again as it
stands (``renotify``), so a receiver down past the deadline hears of what still fires once it is
back; so is a resolved one whose dead-lettered notification was its resolve, so that it does not
keep showing the alert firing. A dead letter dropped is not: ``owed`` says what its receiver, if
configured, is no longer owed so.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from bridge.bus import new_message_id
from bridge.sinks.alerts.database import Database
from bridge.sinks.alerts.payload import alerts_told, restated
from bridge.sinks.alerts.queue import QUEUE_ALERT, BuildPayloads, DeliveryQueue
from bridge.sinks.alerts.records import (
    AlertRecord,
    AlertState,
    DeliveryState,
    Unretryable,
)
from bridge.sinks.alerts.rows import one_of, record_of

__all__ = ["DeadLetters"]

# The alerts of a dead letter (``alert_ids``, its ``rowid``, for ``url``), each with whether it is
# resolved now (``renotify`` takes a resolved one only when the dead letter told its resolve),
# waiting for ``url`` in no grouping window, and in no delivery to it made since: those it was
# the last to tell ``url`` of; but, when it was refused
# with a final answer (``:refused``), not those whose delivery to ``url`` before it was so refused
# too (twice in a row: sent again every interval, each would be refused anew, a dead letter more
# each time).
# The deliveries carrying each alert are read from its key in ``carried`` (``tables``), each by
# its id: reading each delivery to ``url`` made since the dead letter (and, refused, before it)
# with its alert ids took 48 ms for an alert no later one carried, with a day of 86 000
# deliveries, and a pass of 100 dead letters 0.54 to 0.58 s (docs/performance.md: 5 ms now).
_STILL_UNTOLD: Final = """
SELECT sent.value, alerts.state = :resolved FROM json_each(:alert_ids) AS sent
JOIN alerts ON alerts.alert_id = sent.value
WHERE NOT EXISTS (SELECT 1 FROM queued WHERE queued.url = :url AND queued.alert_id = sent.value)
AND NOT EXISTS (
    SELECT 1 FROM carried JOIN deliveries AS later ON later.id = carried.delivery_id
    WHERE carried.alert_id = sent.value AND later.url = :url AND later.rowid > :rowid
)
AND NOT (:refused AND EXISTS (
    SELECT 1 FROM deliveries AS before WHERE before.state = :dead
    AND refused(before.last_status, before.last_error) AND before.rowid = (
        SELECT MAX(earlier.rowid) FROM carried
        JOIN deliveries AS earlier ON earlier.id = carried.delivery_id
        WHERE carried.alert_id = sent.value AND earlier.url = :url AND earlier.rowid < :rowid
    )
))
ORDER BY sent.key
"""
# The dead letters due for ``renotify`` (``{named}``: of a configured receiver), the oldest
# first: not yet taken up, and died ``after`` ago (``:due``) or later than ``:now`` (the clock
# was set back), or else refused by no final answer and followed by a delivery its receiver
# took (it is back).
_DUE: Final = """
SELECT rowid, url, alert_ids, refused(last_status, last_error) AS refused
FROM deliveries AS letter
WHERE state = :dead AND renotified_at IS NULL AND {named}
AND (
    COALESCE(finished_at, 0) <= :due OR COALESCE(finished_at, 0) > :now
    OR (
        NOT refused(last_status, last_error) AND EXISTS (
            SELECT 1 FROM deliveries AS later WHERE later.url = letter.url
            AND later.state = :delivered AND later.rowid > letter.rowid
        )
    )
)
ORDER BY rowid LIMIT :limit
"""
# Whether a later delivery to a dead letter's (``letter``) receiver carrying its alert
# (``sent.value``) was taken (``taken``'s key, ``tables``), or the latest such was left out as
# stale (``carried``'s, looked up only for an alert not taken since; as ``_LATEST_SINCE``: one
# made after the stale one, pending or dead, tells the receiver of the alert after this one).
_TOLD_LATER: Final = """(
    EXISTS (
        SELECT 1 FROM taken WHERE taken.url = letter.url AND taken.alert_id = sent.value
        AND taken.delivery > letter.rowid
    )
    OR (
        SELECT later.state FROM carried JOIN deliveries AS later ON later.id = carried.delivery_id
        WHERE carried.alert_id = sent.value AND later.url = letter.url
        AND later.rowid > letter.rowid ORDER BY later.rowid DESC LIMIT 1
    ) IS 'stale'
)"""
# The dead letters (``{selected}`` of them, ``{named}`` among them) each of whose alerts was
# told later (``{told_later}``): superseded. A few ms for 2 000 dead letters where reading each
# delivery taken since took 0.3-0.5 s with a day of 86 000; the dead letters found by the index
# of them alone (their state spelled out, not bound: that index serves only a query naming it),
# which the count names (``{indexed}``): the planner would take the index by state, which holds
# no alert ids, and read each dead letter's row and body (twice the time).
_SUPERSEDED: Final = """
SELECT {selected} FROM deliveries AS letter {indexed}
WHERE letter.state = 'dead' AND {named} AND json_array_length(letter.alert_ids) > 0
AND NOT EXISTS (SELECT 1 FROM json_each(letter.alert_ids) AS sent WHERE NOT {told_later})
"""
# The other dead letters (``{named}`` among them) that may be superseded: those of alerts
# resolved now (``alerts``, looked up by its key first: most dead letters have none, and are
# read no further; the planner would rather read every resolved alert for each), each not told
# later (``untold``, their ids) among them resolved with nothing of it made for the receiver
# since nor waiting for it (as ``_RESOLVED_UNTOLD``), and some such. Superseded if they told
# those firing (their ``body``, read for these few alone).
_SUPERSEDED_RESOLVED: Final = """
SELECT letter.id, letter.body, (
    SELECT json_group_array(sent.value) FROM json_each(letter.alert_ids) AS sent
    WHERE NOT {told_later}
) AS untold
FROM deliveries AS letter {indexed}
WHERE letter.state = 'dead' AND {named} AND EXISTS (
    SELECT 1 FROM json_each(letter.alert_ids) AS sent
    WHERE (SELECT state FROM alerts WHERE alerts.alert_id = sent.value) = 'resolved'
)
AND NOT EXISTS (
    SELECT 1 FROM json_each(letter.alert_ids) AS sent
    WHERE NOT {told_later} AND (
        (SELECT state FROM alerts WHERE alerts.alert_id = sent.value) IS NOT 'resolved'
        OR EXISTS (
            SELECT 1 FROM queued WHERE queued.url = letter.url AND queued.alert_id = sent.value
        )
        OR EXISTS (
            SELECT 1 FROM carried JOIN deliveries AS later ON later.id = carried.delivery_id
            WHERE carried.alert_id = sent.value AND later.url = letter.url
            AND later.rowid > letter.rowid
        )
    )
)
AND EXISTS (SELECT 1 FROM json_each(letter.alert_ids) AS sent WHERE NOT {told_later})
"""
# The latest delivery to a dead letter's receiver (``:url``) made after it (``:rowid``) that
# carries one of its alerts (``:alert_id``): whether it was left out as stale (``withhold``).
_LATEST_SINCE: Final = """
SELECT later.state = 'stale' FROM carried JOIN deliveries AS later ON later.id = carried.delivery_id
WHERE carried.alert_id = :alert_id AND later.url = :url AND later.rowid > :rowid
ORDER BY later.rowid DESC LIMIT 1
"""
# A dead letter's alert (``:alert_id``) if resolved now, of which no delivery to its receiver
# (``:url``) was made after it (``:rowid``), in any state, and none waits for it in a window.
_RESOLVED_UNTOLD: Final = """
SELECT 1 FROM alerts WHERE alert_id = :alert_id AND state = :resolved
AND NOT EXISTS (SELECT 1 FROM queued WHERE url = :url AND alert_id = :alert_id)
AND NOT EXISTS (
    SELECT 1 FROM carried JOIN deliveries AS later ON later.id = carried.delivery_id
    WHERE carried.alert_id = :alert_id AND later.url = :url AND later.rowid > :rowid
)
"""
# The start-up line's hint (resend_hint), after its count of dead letters.
_LIST_DEAD: Final = " (`exesdb-bridge outbox list --state dead` lists them"
_RETRY_ALL: Final = ", `exesdb-bridge outbox retry --all` sends"
_ORPHAN_REASON: Final = (
    "the receiver is no longer in EXESDB_WEBHOOK_URLS nor in EXESDB_WEBHOOK_CONFIG_FILE"
)


def _drop_hint(receivers: set[str]) -> str:
    """The start-up line's offer to drop the dead letters of ``receivers`` (keys of receivers
    not configured), each named as ``outbox drop --receiver`` takes it: its key without user
    info (a user name may be a token; ``<redacted>`` would be a redirection to a shell), quoted
    for a shell (and so that the log's redaction reads the key to its end, not past it)."""
    if not receivers:
        return ""
    from bridge.receiver_keys import receiver_label

    commands = ", ".join(
        f"`exesdb-bridge outbox drop --receiver '{receiver_label(key, userinfo=False)}'`"
        for key in sorted(receivers)
    )
    return f"; if not to be configured again, {commands} deletes them"


@dataclass(frozen=True, slots=True)
class _ToldSince:
    """What the receiver of a dead letter took since of its alerts, in deliveries made after it:
    those it fires whose resolve it took, with when each resolved (``resolved``); those it
    resolves that it took firing again (``refired``); those whose latest notification to it
    since was left out as stale (``left_out``: never to be sent, another replica having
    notified a newer state, or, to a receiver not sent resolves, resolved); those it fires,
    resolved now, of which nothing was made for it since nor waits for it
    (``resolved_untold``: another replica resolved them, or it is not sent resolves); and
    whether each of them is one of these three, or one it took since (``superseded``: the dead
    letter needs nobody, what is left to tell of its alerts being elsewhere or nothing)."""

    resolved: tuple[tuple[str, str], ...]
    refired: tuple[str, ...]
    superseded: bool
    left_out: tuple[str, ...] = ()
    resolved_untold: tuple[str, ...] = ()


class DeadLetters:
    """The dead letters of ``queue``'s receivers; see the module docstring."""

    def __init__(self, database: Database, queue: DeliveryQueue) -> None:
        self._database = database
        self._queue = queue

    def add_orphans(self, now: float, build: BuildPayloads) -> int:
        """Dead-letter what waits for receivers no longer configured; returns how many
        deliveries.

        Queued alerts become deliveries built at once, and those and the pending deliveries
        for such receivers are dead-lettered with a reason, so they no longer count as waiting;
        they stay retryable with ``exesdb-bridge outbox retry`` once configured again.
        """
        where, params = self._not_configured()
        with self._database.transaction() as db:
            waiting: dict[str, list[AlertRecord]] = {}
            # The alerts table has no url column: ``url`` is the queue's.
            for row in db.execute(
                "SELECT alerts.*, url FROM queued JOIN alerts USING (alert_id)"  # noqa: S608
                f" WHERE {where} ORDER BY url, queued_at, alert_id",
                params,
            ):
                waiting.setdefault(row["url"], []).append(record_of(row))
            created = sum(
                self._queue.deliver(url, records, now, build, DeliveryState.DEAD, _ORPHAN_REASON)
                for url, records in waiting.items()
            )
            db.execute(f"DELETE FROM queued WHERE {where}", params)  # noqa: S608
            moved = db.execute(
                "UPDATE deliveries SET state = :dead, last_error = :reason,"  # noqa: S608
                f" finished_at = :now WHERE state = :pending AND {where}",
                {
                    **params,
                    "dead": DeliveryState.DEAD.value,
                    "reason": _ORPHAN_REASON,
                    "now": now,
                    "pending": DeliveryState.PENDING.value,
                },
            ).rowcount
            return created + int(moved)

    def _not_configured(self) -> tuple[str, dict[str, str]]:
        # Only generated placeholder names go into the SQL text; the keys are bound parameters.
        if not self._queue.urls:
            return "1 = 1", {}
        return one_of("url", self._queue.urls, negate=True)

    def renotify(self, now: float, after: float, limit: int = 100) -> dict[str, int]:
        """Queue again, for each configured receiver, the alerts of its dead letters that are
        its latest delivery of them and wait for it in no grouping window: those still open,
        and those resolved whose resolve the dead letter told; how many, by receiver.

        Each is queued as it stands (the receiver's worker builds the delivery from the alert's
        record), and each dead letter once (``renotified_at``; ``retry`` clears it): the new
        delivery is the alert's latest, and only its own death queues the alert again. A
        resolve is queued as the receiver was told of its alert (``told``), as it was when the
        resolve was made for it: the receiver may show the alert firing, so its filters
        (``Keep``) let the resolve go. A dead letter is due ``after`` seconds after it died (at
        once when that is after ``now``: the wall clock was set back since), and sooner once
        the receiver took a delivery made after it (it is back), unless its last answer was
        final (``refused``): sent again then, it would be refused again at every delivery the
        receiver takes. Nor is an alert queued again from a dead letter so refused whose
        delivery to the receiver before it was so refused too (twice in a row: it would be
        refused anew every ``after``, a dead letter more each time); its next change is sent as
        ever. At most ``limit`` dead letters are taken up in one call (the oldest due), so one
        transaction stays short after a long outage; the next call takes the rest.
        """
        if not self._queue.urls:
            return {}
        named, params = one_of("url", self._queue.urls)
        queued: dict[str, int] = {}
        with self._database.transaction() as db:
            # The due test in the query, not over every dead letter read: only those taken up.
            letters = db.execute(
                _DUE.format(named=named),
                {
                    **params,
                    "dead": DeliveryState.DEAD.value,
                    "delivered": DeliveryState.DELIVERED.value,
                    "now": now,
                    "due": now - after,
                    "limit": limit,
                },
            ).fetchall()
            for letter in letters:
                url = str(letter["url"])
                untold = db.execute(
                    _STILL_UNTOLD,
                    {
                        "url": url,
                        "rowid": letter["rowid"],
                        "alert_ids": letter["alert_ids"],
                        "resolved": AlertState.RESOLVED.value,
                        "refused": letter["refused"],
                        "dead": DeliveryState.DEAD.value,
                    },
                ).fetchall()
                resolves = self._resolves(db, letter["rowid"], [r[0] for r in untold if r[1]])
                alert_ids = [row[0] for row in untold if not row[1] or row[0] in resolves]
                rows = [{"url": url, "alert_id": alert_id, "now": now} for alert_id in alert_ids]
                db.executemany(QUEUE_ALERT, rows)
                db.executemany(
                    "INSERT OR IGNORE INTO told (url, alert_id) VALUES (:url, :alert_id)",
                    [row for row in rows if row["alert_id"] in resolves],
                )
                db.execute(
                    "UPDATE deliveries SET renotified_at = :now WHERE rowid = :rowid",
                    {"now": now, "rowid": letter["rowid"]},
                )
                if alert_ids:
                    queued[url] = queued.get(url, 0) + len(alert_ids)
        return queued

    @staticmethod
    def _resolves(db: sqlite3.Connection, rowid: int, alert_ids: Sequence[str]) -> set[str]:
        """Those of ``alert_ids`` (resolved now) whose resolve the delivery of ``rowid`` told;
        its body read only when there are some (most dead letters tell firings)."""
        if not alert_ids:
            return set()
        body = db.execute("SELECT body FROM deliveries WHERE rowid = :rowid", {"rowid": rowid})
        told = alerts_told(bytes(body.fetchone()[0]))
        return {a for a in alert_ids if told.get(a, ("",))[0] == AlertState.RESOLVED.value}

    def superseded(self, delivery_ids: Sequence[str]) -> set[str]:
        """Those of ``delivery_ids`` that are dead letters superseded (see ``_ToldSince``): the
        receiver took, or another replica told it, a later state of each of their alerts, or
        nothing is to follow them, resolved since; ``unretryable`` leaves them, and they need
        nobody (``_SUPERSEDED``, ``_SUPERSEDED_RESOLVED``)."""
        if not delivery_ids:
            return set()
        # One value, not one variable an id: `outbox list --limit 0` names every dead letter,
        # past SQLite's 32 766 variables a statement after a week of a bad URL.
        named = "letter.id IN (SELECT value FROM json_each(:ids))"
        params = {"ids": json.dumps(list(delivery_ids))}
        query = _SUPERSEDED.format(
            selected="letter.id", named=named, indexed="", told_later=_TOLD_LATER
        )
        with self._database.read() as db:
            told = {str(row[0]) for row in db.execute(query, params)}
            return told | self._resolved_untold(db, named, "", params)

    def superseded_count(self) -> int:
        """How many dead letters are ``superseded``, for the dead-letters gauge (two queries:
        see ``_SUPERSEDED``)."""
        indexed = "INDEXED BY dead_letters"
        query = _SUPERSEDED.format(
            selected="COUNT(*)", named="1 = 1", indexed=indexed, told_later=_TOLD_LATER
        )
        with self._database.read() as db:
            told = int(db.execute(query).fetchone()[0])
            return told + len(self._resolved_untold(db, "1 = 1", indexed, {}))

    @staticmethod
    def _resolved_untold(
        db: sqlite3.Connection, named: str, indexed: str, params: dict[str, str]
    ) -> set[str]:
        """The ids of the dead letters (``named``) superseded by alerts resolved since, the
        others told later, of which nothing is to follow (``_SUPERSEDED_RESOLVED``)."""
        query = _SUPERSEDED_RESOLVED.format(named=named, indexed=indexed, told_later=_TOLD_LATER)
        found = set()
        for delivery_id, body, untold in db.execute(query, params).fetchall():
            told = alerts_told(bytes(body))
            if all(told.get(a, ("",))[0] == AlertState.FIRING.value for a in json.loads(untold)):
                found.add(str(delivery_id))
        return found

    def resend_hint(self) -> str:
        """For the start-up line: how to see and resend the dead letters, offering ``retry
        --all`` only for those whose receiver the bridge started with (it leaves the rest), and
        not for those superseded (``unretryable``: their receiver took, or another replica
        told it, a later state of each of their alerts, or nothing is to follow those resolved
        since), which it leaves too; and, for those whose receiver the bridge did not start
        with, ``outbox drop --receiver`` naming each such receiver (a URL mistyped, then
        corrected: nothing would send them)."""
        configured = self._queue.configured()
        dead = stranded = superseded = 0
        gone: set[str] = set()  # the receivers of those stranded
        with self._database.read() as db:
            for row in db.execute(
                "SELECT rowid, url, alert_ids, body FROM deliveries WHERE state = :dead",
                {"dead": DeliveryState.DEAD.value},
            ).fetchall():
                dead += 1
                if configured is not None and row["url"] not in configured:
                    stranded += 1
                    gone.add(str(row["url"]))
                elif self._told_since(db, row).superseded:
                    superseded += 1
        if not dead:
            return ""
        drop = _drop_hint(gone)
        if configured is not None and stranded == dead:
            return (
                f"{_LIST_DEAD}; their receivers are not configured now, so none can be sent"
                f" again until they are{drop})"
            )
        if not stranded and not superseded:
            return f"{_LIST_DEAD}{_RETRY_ALL} them again)"
        resendable = dead - stranded - superseded
        which = " and ".join(
            (["whose receivers are configured"] if stranded else [])
            + (["not superseded"] if superseded else [])
        )
        left = (
            [f"{stranded} for receivers not configured now wait until they are"] if stranded else []
        ) + (
            [
                f"{superseded} superseded (their receivers took a later delivery of each of"
                " their alerts, or another replica told them newer, or nothing is to follow"
                " those resolved since) are not to be sent again"
            ]
            if superseded
            else []
        )
        offered = f"{_RETRY_ALL} again the {resendable} {which}" if resendable else ""
        return f"{_LIST_DEAD}{offered}; {'; '.join(left)}{drop})"

    def unretryable(
        self, delivery_ids: Sequence[str] | None = None, *, force: bool = False
    ) -> list[Unretryable]:
        """The dead letters (all, or those named) that ``retry`` must be told to leave: those
        for a receiver the bridge did not last start with (``configured``), which no worker
        would send until a restart, when they would be dead-lettered again; and, unless
        ``force``, those that tell the receiver of an alert otherwise than the last it was sent
        of it since: a firing whose resolve it was sent would leave the alert firing for good,
        a resolve of an alert it was sent firing again would show it resolved while it fires;
        and the others superseded: each of their alerts was in a later delivery the receiver
        took, so sent again (after it, deliveries going out in the order they were made) they
        would tell it an older state of them than the last it heard; and, among those named,
        a firing whose alerts' latest deliveries to the receiver since are resolves
        dead-lettered and not named beside it: sent alone, it would leave them firing there;
        and, unless ``force``, one whose alerts' latest notification to the receiver since was
        left out as stale (``withhold``: another replica, on Redis, notified a newer state of
        them, which this older one would follow), and a firing of alerts resolved since of
        which nothing was made for the receiver since nor waits for it (another replica
        resolved them, or the receiver is not sent resolves): it would leave them firing."""
        configured = self._queue.configured()
        where, params = "", dict[str, str]()
        if delivery_ids is not None:
            named, params = one_of("id", delivery_ids) if delivery_ids else ("0 = 1", {})
            where = f" AND {named}"
        query = f"SELECT rowid, id, url, alert_ids, body FROM deliveries WHERE state = :dead{where}"  # noqa: S608
        left = []
        with self._database.read() as db:
            for row in db.execute(
                query + " ORDER BY rowid", {**params, "dead": DeliveryState.DEAD.value}
            ).fetchall():
                if configured is not None and row["url"] not in configured:
                    left.append(Unretryable(row["id"], row["url"], configured=False))
                elif not force:
                    since = self._told_since(db, row)
                    if since.resolved or since.refired or since.left_out or since.resolved_untold:
                        left.append(
                            Unretryable(
                                row["id"],
                                row["url"],
                                True,
                                since.resolved,
                                since.refired,
                                # Needing nobody as one taken since: --all leaves it quietly.
                                superseded=since.superseded,
                                left_out=since.left_out,
                                resolved_untold=since.resolved_untold,
                            )
                        )
                    elif since.superseded:
                        left.append(Unretryable(row["id"], row["url"], True, superseded=True))
                    elif delivery_ids is not None and (
                        waiting := self._resolves_dead(db, row, delivery_ids)
                    ):
                        left.append(Unretryable(row["id"], row["url"], True, resolves_dead=waiting))
        return left

    @staticmethod
    def _resolves_dead(
        db: sqlite3.Connection, dead: sqlite3.Row, named: Sequence[str]
    ) -> tuple[tuple[str, str], ...]:
        """The alerts ``dead`` fires whose latest delivery to its receiver since is a resolve
        dead-lettered too, not among ``named``: each alert's id, and that delivery's id."""
        waiting = []
        for alert_id, (status, _) in alerts_told(bytes(dead["body"])).items():
            if status != "firing":
                continue
            last = db.execute(
                "SELECT later.id, later.state, later.body FROM carried"
                " JOIN deliveries AS later ON later.id = carried.delivery_id"
                " WHERE carried.alert_id = :alert_id AND later.url = :url"
                " AND later.rowid > :rowid ORDER BY later.rowid DESC LIMIT 1",
                {"alert_id": alert_id, "url": dead["url"], "rowid": dead["rowid"]},
            ).fetchone()
            if (
                last is not None
                and last["state"] == DeliveryState.DEAD.value
                and last["id"] not in named
                and alerts_told(bytes(last["body"])).get(alert_id, ("",))[0] == "resolved"
            ):
                waiting.append((alert_id, str(last["id"])))
        return tuple(waiting)

    @staticmethod
    def _told_since(db: sqlite3.Connection, dead: sqlite3.Row) -> _ToldSince:
        """What the receiver of ``dead`` took since of its alerts (see ``_ToldSince``)."""
        resolved, refired, left_out, resolved_untold, untold = [], [], [], [], 0
        told_then = alerts_told(bytes(dead["body"]))
        alert_ids = [str(alert_id) for alert_id in json.loads(dead["alert_ids"])]
        for alert_id in alert_ids:
            of_alert = {"url": dead["url"], "rowid": dead["rowid"], "alert_id": alert_id}
            last = db.execute(
                "SELECT rowid, body FROM deliveries WHERE rowid = (SELECT MAX(delivery) FROM taken"
                " WHERE url = :url AND alert_id = :alert_id AND delivery > :rowid)",
                of_alert,
            ).fetchone()
            # Left out only when the latest made since is stale: one made after it (pending,
            # dead) would go out after this dead letter, telling the receiver of the alert last.
            latest = db.execute(_LATEST_SINCE, of_alert).fetchone()
            if latest is not None and latest[0]:
                left_out.append(alert_id)
                continue
            then = told_then.get(alert_id)
            if last is None:
                if then is not None and then[0] == "firing":
                    gone = db.execute(
                        _RESOLVED_UNTOLD, {**of_alert, "resolved": AlertState.RESOLVED.value}
                    )
                    if gone.fetchone() is not None:
                        resolved_untold.append(alert_id)
                        continue
                untold += 1
                continue
            told = alerts_told(bytes(last["body"])).get(alert_id)
            if then is None or told is None or told[0] == then[0]:
                continue
            if told[0] == "resolved":
                resolved.append((alert_id, told[1]))
            elif told[0] == "firing":
                refired.append(alert_id)
        return _ToldSince(
            tuple(resolved),
            tuple(refired),
            bool(alert_ids) and not untold,
            tuple(left_out),
            tuple(resolved_untold),
        )

    def retry(
        self, now: float, delivery_ids: Sequence[str] | None = None, *, leave: Sequence[str] = ()
    ) -> dict[str, str]:
        """Put dead-lettered deliveries (all, or those named, but those of ``leave``) back to
        pending; returns the id of each put back, mapped to its id now.

        The next attempt is due at once and the deadline starts afresh (from ``retried_at``);
        its place in the receiver's order, when it was made and the count of attempts made stay
        (so the backoff goes on from that count). Each alert it tells firing that is open now
        is told as it stands now (``_restate``): one changed since (its severity, level, episode
        or text) by another replica, on Redis, with no delivery of the change here to follow,
        would otherwise reach the receiver in an older state, last. The body and the delivery
        id stay unless that changed the body: then it has a new id, as a receiver that took the
        old body under the old one would drop the new as a repeat.
        """
        query = (
            "UPDATE deliveries SET state = :pending, retried_at = :now, next_attempt_at = :now,"
            " finished_at = NULL, renotified_at = NULL WHERE state = :dead"
            " AND id NOT IN (SELECT value FROM json_each(:leave))"
        )
        params: dict[str, Any] = {
            "pending": DeliveryState.PENDING.value,
            "dead": DeliveryState.DEAD.value,
            "now": now,
            "leave": json.dumps(list(leave)),
        }
        if delivery_ids is not None:
            if not delivery_ids:
                return {}
            named, ids = one_of("id", delivery_ids)
            query += f" AND {named}"
            params.update(ids)
        with self._database.transaction() as db:
            retried = db.execute(query + " RETURNING rowid, id, body", params).fetchall()
            return {
                row["id"]: self._restate(db, int(row["rowid"]), row["id"], bytes(row["body"]))
                for row in retried
            }

    def owed(self, delivery_ids: Sequence[str] | None = None) -> dict[str, list[str]]:
        """The open alerts that the dead letters (all, or those named) not yet taken up by
        ``renotify`` tell a receiver the bridge last started with, by its key: what ``renotify``
        would queue for it again (as ``_STILL_UNTOLD`` reads it, less its test of what was
        made for it since), and ``drop`` takes from it."""
        configured = self._queue.configured()
        if not configured or delivery_ids == []:
            return {}
        # Lists bound as JSON: json_each's own ``id`` column would make ``one_of``'s ambiguous.
        named = "letter.url IN (SELECT value FROM json_each(:urls))"
        if delivery_ids is not None:
            named += " AND letter.id IN (SELECT value FROM json_each(:ids))"
        owed: dict[str, list[str]] = {}
        with self._database.read() as db:
            for url, alert_id in db.execute(
                "SELECT DISTINCT letter.url, sent.value FROM deliveries AS letter,"  # noqa: S608
                " json_each(letter.alert_ids) AS sent JOIN alerts ON alerts.alert_id = sent.value"
                " WHERE letter.state = :dead AND letter.renotified_at IS NULL"
                f" AND alerts.state != :resolved AND {named} ORDER BY letter.url, sent.value",
                {
                    "urls": json.dumps(list(configured)),
                    "ids": json.dumps(list(delivery_ids or [])),
                    "dead": DeliveryState.DEAD.value,
                    "resolved": AlertState.RESOLVED.value,
                },
            ):
                owed.setdefault(str(url), []).append(str(alert_id))
        return owed

    def drop(self, delivery_ids: Sequence[str] | None = None) -> dict[str, str]:
        """Delete dead-lettered deliveries (all, or those named), as their TTL deletes them
        (``Retention.forget_dead_letters``): the triggers on ``deliveries`` forget what they
        carried and took, and nothing else refers to them. Only dead letters: a named delivery
        pending or delivered meanwhile stays. Returns each dropped one's id, mapped to its
        receiver's key. Their alerts are not queued again for that receiver (``renotify``
        takes up dead letters, and these are gone): its next change of them is sent as ever."""
        query = "DELETE FROM deliveries WHERE state = :dead"
        params: dict[str, Any] = {"dead": DeliveryState.DEAD.value}
        if delivery_ids is not None:
            if not delivery_ids:
                return {}
            # One value, not one variable an id: ``--receiver`` names every dead letter of its
            # receiver, past SQLite's 32 766 variables a statement after a week of a bad URL.
            query += " AND id IN (SELECT value FROM json_each(:ids))"
            params["ids"] = json.dumps(list(delivery_ids))
        with self._database.transaction() as db:
            dropped = db.execute(query + " RETURNING id, url", params).fetchall()
        return {str(row["id"]): str(row["url"]) for row in dropped}

    @staticmethod
    def _restate(db: sqlite3.Connection, rowid: int, delivery_id: str, body: bytes) -> str:
        """Tell each alert the delivery of ``rowid`` (``delivery_id``, ``body``) tells firing and
        that is open now as it stands now (``payload.restated``), under a new delivery id should
        that change the body; in the caller's transaction. Returns the delivery's id now."""
        firing = [
            alert_id for alert_id, (status, _) in alerts_told(body).items() if status == "firing"
        ]
        if not firing:
            return delivery_id
        records = [
            record
            for row in db.execute(
                "SELECT * FROM alerts WHERE alert_id IN (SELECT value FROM json_each(:ids))",
                {"ids": json.dumps(firing)},
            )
            if (record := record_of(row)).open
        ]
        now = restated(body, records)
        if now is None:
            return delivery_id
        renamed = new_message_id()
        db.execute(
            "UPDATE deliveries SET body = :body, id = :id WHERE rowid = :rowid",
            {"body": now, "id": renamed, "rowid": rowid},
        )
        return renamed
