"""A bridge process whose alert outbox file another connection keeps locked as it stops (an
``exesdb-bridge outbox`` command writing beside it, or the outbox thread's own transaction on a
disk that hangs): the outbox thread waits SQLite's 10 s busy timeout, and the stop does not."""

from __future__ import annotations

import json
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

from tests.integration.test_redis_stop_under_load import RunQueueWait
from tests.support import BridgeProcess, critical_alert_body, http_get, signed_post, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHUTDOWN_MS: Final = 1000
# A step of work in hand when a deadline passes ends first (tests/integration/
# test_redis_stop_under_load.py), besides the time the host kept the loop from the CPU.
LOOP_SLACK_SECONDS: Final = 0.5
# The signal waiting for the step of work under way, and the exit itself (the kernel unmapping the
# process, the parent woken: 40-140 ms under load, docs/performance.md).
EXIT_SLACK_SECONDS: Final = 0.5


@dataclass
class LockedStop:
    """What a bridge stopped with its outbox locked said and took."""

    log: str
    status: int
    stopped_in: float
    exited: float  # SIGTERM to the process's end, in seconds
    starved: float  # the time its event loop waited for the CPU meanwhile
    # The alert's ingest, as answered (an OSError: the connection closed unanswered).
    answers: list[tuple[int, bytes] | OSError] = field(default_factory=list)


def alert_body() -> bytes:
    """An ingest body of one alert."""
    return critical_alert_body(
        "locked-1", "outbox locked", "taken while another connection holds the outbox"
    )


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
    answers: list[tuple[int, bytes] | OSError] = []

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


def test_the_exit_leaves_an_outbox_transaction_unfinished_after_the_deadline_unaccepted(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """The outbox thread still waiting for the file after the stop: the process ends at the
    stop's deadline (half a second after its last line at least), not when that wait does,
    saying at error which thread it leaves and where; the alert it held was not answered as
    accepted, and the outbox file is whole."""
    stop = stop_with_the_outbox_locked(tmp_path, bridge_processes)
    assert stop.status == 0
    exit_due = max(SHUTDOWN_MS / 1000, stop.stopped_in + 0.5)
    assert stop.exited <= exit_due + LOOP_SLACK_SECONDS + stop.starved + EXIT_SLACK_SECONDS, (
        stop.log
    )
    [left] = re.findall(
        r" ERROR bridge: (exit: threads still running.*?)\n(?=\S+ [A-Z]+ |$)", stop.log, re.S
    )
    assert re.search(r"\n  alerts-outbox_0: .* in _begin$", left, re.M), left
    [answer] = stop.answers
    # Not answered 202 without "committed": false: the sender knows to send it again.
    assert (
        isinstance(answer, OSError)
        or answer[0] != 202
        or json.loads(answer[1]).get("committed") is False
    )
    outbox = sqlite3.connect(tmp_path / "state" / "alerts.sqlite3")
    try:
        assert outbox.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        outbox.close()
