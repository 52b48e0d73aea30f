"""What the outbox forgets, and when: old deliveries, resolved alerts, history and dead letters.

Nothing here is needed once gone: a delivered delivery is kept a day, as is a stale one (but
the last a receiver took of each alert of its dead letters after them, and the one left out as
stale after them when it is the latest of that alert to that receiver, which supersede them:
as long as they are), a resolved alert a week (and the ids of the plans stored as long), an
alert's history to its newest ``HISTORY_KEPT`` entries, and a dead letter
``EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS`` (a receiver refusing everything must not grow the file
without bound); the alert sink's housekeeping calls these once an hour.
"""

from __future__ import annotations

from typing import Final

from bridge.sinks.alerts.database import Database
from bridge.sinks.alerts.records import AlertState, DeliveryState

__all__ = ["DELIVERED_KEPT_SECONDS", "HISTORY_KEPT", "RESOLVED_KEPT_SECONDS", "Retention"]

# History entries kept per alert (the newest), so a flapping alert's history stays bounded.
HISTORY_KEPT: Final = 100
# How long a delivered delivery is kept (for its alert's page), and a resolved alert (for the
# alert list and Alertmanager) with the ids of the plans stored as long ago.
DELIVERED_KEPT_SECONDS: Final = 86_400.0
RESOLVED_KEPT_SECONDS: Final = 7 * 86_400.0


# Each receiver's alerts in dead letters, with the first dead letter to it of each: read by the
# index of dead letters alone (named: the planner would take the one by state, which holds no
# alert ids, and read each dead letter's body).
_FIRST_DEAD: Final = """dead AS MATERIALIZED (
        SELECT letter.url AS url, sent.value AS alert_id, MIN(letter.rowid) AS first
        FROM deliveries AS letter INDEXED BY dead_letters, json_each(letter.alert_ids) AS sent
        WHERE letter.state = 'dead' GROUP BY letter.url, sent.value
    )"""

# Delivered deliveries older than ``:before``, but, for each receiver and each alert of its
# dead letters, the last it took after the first of them: what supersedes a dead letter
# (``dead_letters``), kept as long as dead letters are, so that one superseded does not read
# as needing a person again (and `outbox retry --all` send it) once a day has passed.
# It reads the old delivered ones by the index of deliveries by state, the dead letters as
# ``_FIRST_DEAD`` says, and the last delivery each receiver took of each of their alerts as one
# lookup in ``taken``'s key (``tables``), kept when after the first dead letter: an alert it
# never took (NULL) is not, so no NULL reaches ``NOT IN``, where it would keep every delivery.
# Before version 11 it read every delivery and its body (docs/performance.md).
_FORGET_DELIVERED: Final = f"""
DELETE FROM deliveries WHERE state = :delivered AND finished_at < :before
AND rowid NOT IN (
    WITH {_FIRST_DEAD},
    last AS MATERIALIZED (
        SELECT dead.first, (
            SELECT MAX(taken.delivery) FROM taken
            WHERE taken.url = dead.url AND taken.alert_id = dead.alert_id
        ) AS delivery
        FROM dead
    )
    SELECT delivery FROM last WHERE delivery > first
)
"""  # noqa: S608 (a constant fragment)

# Stale deliveries older than ``:before``, but, for each receiver and each alert of its dead
# letters, the one left out as stale after the first of them when it is the latest delivery to
# that receiver carrying the alert: a notification of it left out so last (another replica told
# the receiver newer) supersedes the dead letter (``dead_letters``), kept as long as it is for
# the same reason. One followed by a later delivery of the alert (taken, pending, dead, stale
# in turn) supersedes nothing: that later one tells what the receiver hears last. The stale
# ones read by the index of deliveries by state, each later delivery of their alert by its key
# in ``carried``.
_FORGET_STALE: Final = f"""
DELETE FROM deliveries WHERE state = :stale AND finished_at < :before
AND rowid NOT IN (
    WITH {_FIRST_DEAD}
    SELECT later.rowid FROM deliveries AS later, json_each(later.alert_ids) AS sent
    JOIN dead ON dead.url = later.url AND dead.alert_id = sent.value
    WHERE later.state = :stale AND later.finished_at < :before AND later.rowid > dead.first
    AND NOT EXISTS (
        SELECT 1 FROM carried JOIN deliveries AS newer ON newer.id = carried.delivery_id
        WHERE carried.alert_id = sent.value AND newer.url = later.url
        AND newer.rowid > later.rowid
    )
)
"""  # noqa: S608 (a constant fragment)


class Retention:
    """Deletes from the outbox file what it no longer needs; see the module docstring."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def prune(
        self,
        now: float,
        *,
        delivered_for: float = DELIVERED_KEPT_SECONDS,
        resolved_for: float = RESOLVED_KEPT_SECONDS,
    ) -> int:
        """Forget delivered deliveries and resolved alerts older than the given ages (and the
        history of the alerts forgotten, and the ids of plans stored as long ago); how many
        deliveries and alerts."""
        with self._database.transaction() as db:
            db.execute(
                "DELETE FROM plans WHERE stored_at < :before", {"before": now - resolved_for}
            )
            gone = db.execute(
                _FORGET_DELIVERED,
                {"delivered": DeliveryState.DELIVERED.value, "before": now - delivered_for},
            ).rowcount
            gone += db.execute(
                _FORGET_STALE,
                {"stale": DeliveryState.STALE.value, "before": now - delivered_for},
            ).rowcount
            gone += db.execute(
                "DELETE FROM alerts WHERE state = :resolved AND updated_at < :before"
                " AND alert_id NOT IN (SELECT alert_id FROM queued)",
                {"resolved": AlertState.RESOLVED.value, "before": now - resolved_for},
            ).rowcount
            # History goes with its alert, and beyond the newest HISTORY_KEPT entries of each;
            # so does what receivers were told of it (a receiver removed never hears its resolve).
            db.execute("DELETE FROM history WHERE alert_id NOT IN (SELECT alert_id FROM alerts)")
            db.execute("DELETE FROM told WHERE alert_id NOT IN (SELECT alert_id FROM alerts)")
            db.execute(
                "DELETE FROM history WHERE rowid IN (SELECT rowid FROM (SELECT rowid,"
                " row_number() OVER (PARTITION BY alert_id ORDER BY at DESC, rowid DESC) AS n"
                " FROM history) WHERE n > :kept)",
                {"kept": HISTORY_KEPT},
            )
            return int(gone)

    def forget_dead_letters(self, now: float, older_than: float) -> int:
        """Delete dead-lettered deliveries that died more than ``older_than`` seconds ago; how
        many."""
        with self._database.transaction() as db:
            gone = db.execute(
                "DELETE FROM deliveries WHERE state = :dead AND finished_at < :before",
                {"dead": DeliveryState.DEAD.value, "before": now - older_than},
            ).rowcount
        return int(gone)
