"""The outbox's queries as they were before schema versions 10, 11 and 12 made them index-based.

(And one index-based already, as it was before it counted more: ``SUPERSEDED_TAKEN_BEFORE``.)
Kept as the baselines ``bench.dead_letters`` times the queries of today against, and as the
references the tests hold those to (tests/sinks/alerts/): on any outbox both must give the same.
Each read every delivery of the day, or each delivery to a receiver since a dead letter.
"""

from __future__ import annotations

from typing import Final

# The superseded count before the ``taken`` table (version 10), as a release left it (its states
# bound, as it bound them: the index of dead letters alone does not serve it).
SUPERSEDED_BEFORE: Final = """
WITH told AS MATERIALIZED (
    SELECT later.url AS url, sent.value AS alert_id, MAX(later.rowid) AS last
    FROM deliveries AS later, json_each(later.alert_ids) AS sent
    WHERE later.state = :delivered
    AND later.url IN (SELECT url FROM deliveries WHERE state = :dead)
    AND later.rowid > (
        SELECT MIN(first.rowid) FROM deliveries AS first
        WHERE first.url = later.url AND first.state = :dead
    )
    GROUP BY later.url, sent.value
)
SELECT COUNT(*) FROM deliveries AS letter
WHERE letter.state = :dead AND json_array_length(letter.alert_ids) > 0
AND NOT EXISTS (
    SELECT 1 FROM json_each(letter.alert_ids) AS sent WHERE NOT EXISTS (
        SELECT 1 FROM told WHERE told.url = letter.url AND told.alert_id = sent.value
        AND told.last > letter.rowid
    )
)
"""
# The superseded count of version 10 to 13 before it counted dead letters another replica told
# the receiver newer of, or firing alerts resolved since with nothing to follow (6 Dec 2026):
# each alert of each dead letter looked up in ``taken`` alone, the dead letters found by the
# index of them alone. Index-based already: the baseline of what counting those costs.
SUPERSEDED_TAKEN_BEFORE: Final = """
SELECT COUNT(*) FROM deliveries AS letter INDEXED BY dead_letters
WHERE letter.state = 'dead' AND json_array_length(letter.alert_ids) > 0
AND NOT EXISTS (
    SELECT 1 FROM json_each(letter.alert_ids) AS sent WHERE NOT EXISTS (
        SELECT 1 FROM taken WHERE taken.url = letter.url AND taken.alert_id = sent.value
        AND taken.delivery > letter.rowid
    )
)
"""
# The prune's deletes of deliveries before version 11 (the rest of the prune is as it was): the
# first read each delivery and its alert ids, both read the table whole.
FORGET_DELIVERED_BEFORE: Final = """
DELETE FROM deliveries WHERE state = :delivered AND finished_at < :before
AND rowid NOT IN (
    WITH dead AS MATERIALIZED (
        SELECT letter.url AS url, sent.value AS alert_id, MIN(letter.rowid) AS first
        FROM deliveries AS letter, json_each(letter.alert_ids) AS sent
        WHERE letter.state = :dead GROUP BY letter.url, sent.value
    )
    SELECT MAX(later.rowid)
    FROM deliveries AS later, json_each(later.alert_ids) AS sent
    JOIN dead ON dead.url = later.url AND dead.alert_id = sent.value
    WHERE later.state = :delivered AND later.rowid > dead.first
    GROUP BY later.url, sent.value
)
"""
STALE_BEFORE: Final = "DELETE FROM deliveries WHERE state = :stale AND finished_at < :before"
# The depth's queries before version 11: the deliveries counted by a scan of them all.
DEPTH_BEFORE: Final = (
    "SELECT COUNT(*) FROM queued",
    "SELECT state, COUNT(*) FROM deliveries WHERE state != :delivered GROUP BY state",
)
# An alert's deliveries as its page read them before version 12: every delivery and its alert ids.
OF_ALERT_BEFORE: Final = (
    "SELECT * FROM deliveries WHERE instr(alert_ids, :needle) > 0 AND EXISTS"
    " (SELECT 1 FROM json_each(deliveries.alert_ids) WHERE value = :alert_id)"
    " ORDER BY created_at DESC, id LIMIT 50"
)
# What ``DeadLetters.renotify`` found still untold of a dead letter before it read ``carried``:
# each delivery to the receiver made since (and, refused, before), ``instr`` on its alert ids,
# then ``json_each``; ``:needles`` holds each of ``:alert_ids`` as json.dumps wrote it.
STILL_UNTOLD_BEFORE: Final = """
SELECT sent.value FROM json_each(:alert_ids) AS sent
JOIN json_each(:needles) AS needle ON needle.key = sent.key
JOIN alerts ON alerts.alert_id = sent.value
WHERE alerts.state != :resolved
AND NOT EXISTS (SELECT 1 FROM queued WHERE queued.url = :url AND queued.alert_id = sent.value)
AND NOT EXISTS (
    SELECT 1 FROM deliveries AS later WHERE later.url = :url AND later.rowid > :rowid
    AND instr(later.alert_ids, needle.value) > 0
    AND EXISTS (SELECT 1 FROM json_each(later.alert_ids) WHERE value = sent.value)
)
AND NOT (:refused AND EXISTS (
    SELECT 1 FROM deliveries AS before WHERE before.state = :dead
    AND refused(before.last_status, before.last_error) AND before.rowid = (
        SELECT earlier.rowid FROM deliveries AS earlier
        WHERE earlier.url = :url AND earlier.rowid < :rowid
        AND instr(earlier.alert_ids, needle.value) > 0
        AND EXISTS (SELECT 1 FROM json_each(earlier.alert_ids) WHERE value = sent.value)
        ORDER BY earlier.rowid DESC LIMIT 1
    )
))
ORDER BY sent.key
"""
