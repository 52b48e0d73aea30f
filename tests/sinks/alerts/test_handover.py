"""Open alerts handed from a stopping work-queue holder to the next, through a HandOver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.sinks.alerts import handover
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import AlertState
from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import T0, observe, stored
from tests.sinks.alerts.test_outbox import event
from tests.sinks.alerts.test_payload import record


class Shelf:
    """A HandOver kept in memory (the Redis transport keeps it in Redis)."""

    def __init__(self) -> None:
        self.kept: dict[str, dict[str, bytes]] = {}

    async def hand_over(self, name: str, values: dict[str, bytes]) -> None:
        self.kept[name] = dict(values)

    async def take_over(self, name: str) -> dict[str, bytes]:
        return self.kept.pop(name, {})


@pytest.fixture
def db() -> Iterator[DbThread]:
    """A database thread for the outboxes."""
    thread = DbThread()
    yield thread
    thread.close()


def test_a_record_survives_encoding() -> None:
    """What encode writes, decode reads back as the same record."""
    original = record(state=AlertState.ACKNOWLEDGED, ack_by="ops", ack_at=T0 + 1, last_seen=T0)
    assert handover.decode(handover.encode(original)) == original


async def test_open_alerts_go_to_the_next_holder(tmp_path: Path, db: DbThread) -> None:
    """Firing and acknowledged alerts are handed over and taken; resolved ones stay behind."""
    leaving = Outbox.in_dir(tmp_path / "leaving")
    coming = Outbox.in_dir(tmp_path / "coming")
    shelf = Shelf()
    try:
        leaving.apply([event("on"), event("acked"), event("gone")], T0)
        leaving.acknowledge("acked", "ops", T0 + 1)
        observe(leaving, event("gone", status="resolved"), T0 + 2)
        assert await handover.hand_over(shelf, outbox=leaving, db=db, limit=100) == 2
        assert await handover.take_over(shelf, outbox=coming, db=db) == 2
        assert stored(coming, "on") == stored(leaving, "on")
        assert stored(coming, "acked") == stored(leaving, "acked")
        assert stored(coming, "gone") is None
        assert coming.may_be_active("acked")
        assert coming.depth().queued == 0  # the receivers already heard of them
        assert await handover.take_over(shelf, outbox=coming, db=db) == 0  # taken: gone
    finally:
        leaving.close()
        coming.close()


async def test_a_malformed_record_is_skipped_and_the_rest_taken(
    tmp_path: Path, db: DbThread, caplog: pytest.LogCaptureFixture
) -> None:
    """One unreadable record is logged and skipped; a newer local record is kept."""
    outbox = Outbox.in_dir(tmp_path)
    shelf = Shelf()
    newer = record("mine", updated_at=T0 + 10)
    outbox.import_alerts([newer])
    shelf.kept[handover.NAME] = {
        "bad": b"{not json",
        "odd": b'{"alert_id": "odd"}',
        "mine": handover.encode(record("mine", updated_at=T0)),
        "theirs": handover.encode(record("theirs")),
    }
    try:
        assert await handover.take_over(shelf, outbox=outbox, db=db) == 1
        assert stored(outbox, "theirs") == record("theirs")
        assert stored(outbox, "mine") == newer
        assert sum("malformed" in r.getMessage() for r in caplog.records) == 2
    finally:
        outbox.close()
