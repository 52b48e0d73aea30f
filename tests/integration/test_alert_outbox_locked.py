"""A bridge process whose alert outbox file another connection keeps locked as it stops (an
``exesdb-bridge outbox`` command writing beside it, or the outbox thread's own transaction on a
disk that hangs): the outbox thread waits SQLite's 10 s busy timeout, and the stop does not."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from bridge.bus import Envelope, new_message_id
from bridge.messages import SystemAlert, utc_now
from tests.integration.test_redis_stop_under_load import RunQueueWait
from tests.support import BridgeProcess, http_get, signed_post, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHUTDOWN_MS: Final = 1000
# A step of work in hand when a deadline passes ends first (tests/integration/
# test_redis_stop_under_load.py), besides the time the host kept the loop from the CPU.
LOOP_SLACK_SECONDS: Final = 0.5


@dataclass
class LockedStop:
    """What a bridge stopped with its outbox locked said and took."""

    log: str
    status: int
    stopped_in: float
    exited: float  # SIGTERM to the process's end, in seconds
    starved: float  # the time its event loop waited for the CPU meanwhile
    answers: list[object] = field(default_factory=list)  # the alert's ingest, as answered


def alert_body() -> bytes:
    """An ingest body of one alert."""
    alert = SystemAlert(
        alert_id="locked-1",
        severity="critical",
        category="system",
        title="outbox locked",
        description="taken while another connection holds the outbox",
        source="test",
        node="n1",
    )
    envelope = Envelope(
        new_message_id(), alert.INSTANCE, "disk_full", alert.TAG, "app@host", utc_now(), alert
    )
    return envelope.to_bytes()


@contextmanager
def locked(outbox: Path) -> Iterator[sqlite3.Connection]:
    """``outbox`` held by a write transaction of a connection of our own, until the end."""
    holder = sqlite3.connect(outbox, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def published_alerts(bridge: BridgeProcess) -> float:
    """SystemAlerts the bridge published on its bus so far, as ``/metrics`` says."""
    _, body = http_get(bridge.url + "/metrics")
    found = re.search(rb'^exesdb_bus_published_total\{[^}]*tag="system_alert"\} (\S+)$', body, re.M)
    return float(found.group(1)) if found else 0.0


def stop_with_the_outbox_locked(tmp_path: Path, processes: list[BridgeProcess]) -> LockedStop:
    """A bridge taking an alert while the outbox is locked (its outbox thread waiting for the
    lock), then SIGTERM; the lock let go only once the process has ended."""
    state = tmp_path / "state"
    bridge = BridgeProcess(
        state_dir=state, EXESDB_INGEST="true", EXESDB_SHUTDOWN_TIMEOUT_MS=str(SHUTDOWN_MS)
    ).start(tmp_path)
    processes.append(bridge)
    assert bridge.process is not None
    answers: list[object] = []

    def post() -> None:
        try:
            answers.append(signed_post(bridge.url, alert_body(), timeout=30))
        except OSError as exc:  # the stop closed the connection unanswered
            answers.append(exc)

    with locked(state / "alerts.sqlite3"):
        sender = threading.Thread(target=post, daemon=True)
        sender.start()
        wait_until(lambda: published_alerts(bridge) >= 1, 10, "the alert on the bus")
        starved = RunQueueWait(bridge.process.pid)
        signalled = time.monotonic()
        status = bridge.stop(timeout=30)
        exited = time.monotonic() - signalled
        waited = starved.seconds()
    sender.join(30)
    log = bridge.log()
    [took] = re.findall(r"stopped in (\d+\.\d)s \(EXESDB_SHUTDOWN_TIMEOUT_MS allows", log)
    return LockedStop(log, status, float(took), exited, waited, answers)


def test_a_stop_keeps_its_deadline_while_the_outbox_thread_waits_for_the_file(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """The outbox thread still waiting for the file's lock when the alert sink's deadline
    passes: the bridge says it stopped within EXESDB_SHUTDOWN_TIMEOUT_MS, not once the outbox
    thread's wait has ended (the event loop's close joined a thread waiting for it)."""
    stop = stop_with_the_outbox_locked(tmp_path, bridge_processes)
    assert stop.status == 0
    assert stop.stopped_in <= SHUTDOWN_MS / 1000 + LOOP_SLACK_SECONDS + stop.starved, stop.log
