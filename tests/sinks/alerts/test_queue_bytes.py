"""The alert sink's queue bounded in bytes under real HTTP ingest, its outbox's disk hung."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import alert_bridge, hold, system_alert
from tests.sinks.alerts.test_sink_hardening import INGEST, committed_ids, ingest, ndjson, taken
from tests.support import async_wait_until

QUEUE_BYTES = 1_048_576  # the least EXESDB_BUS_QUEUE_BYTES takes
# Three alerts of 4 x 16 000 characters of metadata: some 190 KB a batch, 16 batches 3 MB.
ALERTS_PER_BATCH = 3
BATCHES = 16


def _large_batch(batch: int) -> bytes:
    """A batch of alerts whose metadata makes each some 64 KB on the wire."""
    metadata = {f"k{n}": "x" * 16_000 for n in range(4)}
    alerts = (system_alert(f"b{batch}-{n}", metadata=metadata) for n in range(ALERTS_PER_BATCH))
    return ndjson(*alerts)


async def test_ingest_answers_503_once_the_alert_queue_holds_80_percent_of_its_bytes(
    tmp_path: Path,
) -> None:
    """With the outbox's disk hung, large alerts fill the alert sink's queue to 80 % of
    EXESDB_BUS_QUEUE_BYTES, far below its count: ingest then answers 503 `overloaded`, the
    queue holds no more than its bytes, and every batch accepted is committed once the disk
    answers."""
    env: dict[str, Any] = {
        **INGEST,
        "EXESDB_MAX_BODY_BYTES": "262144",
        "EXESDB_BUS_QUEUE_BYTES": str(QUEUE_BYTES),
    }
    db = DbThread()
    async with alert_bridge(tmp_path, db=db, **env) as (bridge, sink, _):
        release = await hold(db)
        inbox = sink.subscription.inbox
        accepted = [asyncio.create_task(ingest(bridge, _large_batch(0)))]
        await async_wait_until(lambda: taken(sink), what="the first batch taken, held")
        refused: tuple[int, dict[str, str], Any] | None = None
        for batch in range(1, BATCHES):
            queued = inbox.depth
            answer = asyncio.create_task(ingest(bridge, _large_batch(batch)))

            def answered(answer: asyncio.Task[Any] = answer, queued: int = queued) -> bool:
                # A 503 comes at once; a batch taken waits in the queue (its 202 after the disk).
                return answer.done() or inbox.depth > queued

            await async_wait_until(answered, what=f"batch {batch} answered")
            if answer.done():
                refused = answer.result()
                break
            accepted.append(answer)
        assert refused is not None, f"all {BATCHES} batches taken: {inbox.depth} alerts queued"
        status, headers, body = refused
        assert (status, body["error"], headers["Retry-After"]) == (503, "overloaded", "1"), body
        assert QUEUE_BYTES * 0.8 <= inbox.bytes <= QUEUE_BYTES
        assert inbox.depth < ALERTS_PER_BATCH * BATCHES  # far below EXESDB_ALERT_QUEUE_SIZE
        release.set()
        answers = await asyncio.gather(*accepted)
        assert {status for status, _, _ in answers} == {202}
        assert committed_ids(tmp_path) == {
            f"b{batch}-{n}" for batch in range(len(accepted)) for n in range(ALERTS_PER_BATCH)
        }
        assert inbox.bytes == 0
        assert bridge.registry.get_sample_value(
            "exesdb_bus_dropped_total", {"subscriber": "alerts"}
        ) in (None, 0.0)
