"""A bridge process exits right after its "stopped in" line, however large its heap (a real
bridge process, SIGTERM)."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Final

import pytest

from bridge.bus import Envelope, new_message_id
from bridge.messages import NodeHealth, utc_now
from tests.support import BridgeProcess, signed_post

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# 100 000 node names' series (a 250 MB process): a heap whose teardown object by object took
# 0.89-1.07 s on a 2-core host at load average 5 (20 000 took 0.17-0.25 s there, 0.9-2.2 s at
# load average 13-18), against 75-126 ms for the exit without it (docs/performance.md, "The exit
# after the stop").
NODES: Final = 100_000
BATCH: Final = 1000
# Three times the slowest exit without the teardown seen, below half the fastest teardown.
EXIT_AFTER_LINE_SECONDS: Final = 0.4


def health_batch(first: int) -> bytes:
    """An ingest body of ``BATCH`` health readings, each from a node of its own."""
    lines = []
    for number in range(first, first + BATCH):
        payload = NodeHealth(status="healthy", node=f"app{number}@host")
        envelope = Envelope(
            new_message_id(),
            payload.INSTANCE,
            "health",
            payload.TAG,
            "app@host",
            utc_now(),
            payload,
        )
        lines.append(envelope.to_bytes())
    return b"\n".join(lines)


def test_the_process_exits_right_after_the_stopped_in_line_with_a_large_heap(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """SIGTERM to a bridge holding 100 000 nodes' series: the process has exited within 0.4 s
    of its "stopped in" line, its last (the interpreter's teardown of the heap skipped), exit 0."""
    bridge = BridgeProcess(
        state_dir=tmp_path / "state", EXESDB_INGEST="true", EXESDB_MAX_SERIES="1000000"
    ).start(tmp_path)
    bridge_processes.append(bridge)
    for first in range(0, NODES, BATCH):
        status, _ = signed_post(bridge.url, health_batch(first), timeout=60)
        assert status == 202
    status = bridge.stop(timeout=30)
    exited = time.time()  # the log's clock: wall time, to the millisecond
    assert status == 0
    [stamp] = re.findall(r"^(\S+) INFO bridge: stopped in \d", bridge.log(), re.M)
    said = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    assert bridge.log().rstrip().endswith("EXESDB_SHUTDOWN_TIMEOUT_MS allows 8s)")
    assert exited - said <= EXIT_AFTER_LINE_SECONDS
