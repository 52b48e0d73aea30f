"""The ingest replay memory across restarts of a real ``exesdb-bridge run`` process."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.bus import Envelope, new_message_id
from bridge.messages import ThroughputMetric, utc_now
from tests.support import BridgeProcess, post_signed

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _body() -> bytes:
    """One signed-ingest envelope with an id of its own."""
    payload = ThroughputMetric(operation="writes", count=10, duration_ms=1000, node="app-1")
    envelope = Envelope(
        id=new_message_id(),
        instance="ex_esdb_metrics",
        topic="metrics",
        tag="throughput_metric",
        node="app-1",
        ts=utc_now(),
        payload=payload,
    )
    return envelope.to_bytes()


def _started(tmp_path: Path, processes: list[BridgeProcess]) -> BridgeProcess:
    """An ingesting bridge on the state directory ``tmp_path/state`` (each of a test's in turn)."""
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_INGEST="true").start(tmp_path)
    processes.append(bridge)
    return bridge


def test_a_message_taken_before_a_graceful_restart_is_refused_as_replayed_after_it(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """A signed message taken, the bridge stopped (SIGTERM) and started again on its state
    directory: the very same body, within the replay window, is refused as replayed (it was
    taken a second time, counted twice, when the memory lived only in the process)."""
    body = _body()
    first = _started(tmp_path, bridge_processes)
    assert post_signed(first.url, body) == (202, "")
    assert first.stop() == 0
    second = _started(tmp_path, bridge_processes)
    assert post_signed(second.url, body, expect=409) == (409, "replayed")
    assert (
        "verified before the last stop (ingested, and the collectors' own) remembered"
        in second.log()
    )


def test_after_a_crash_the_ids_since_the_last_stop_are_forgotten(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """SIGKILL writes nothing: a body taken since the last stop is taken again after the crash
    (a sender's resend of what the crash may have lost), while one taken before that stop is
    still refused."""
    before, since = _body(), _body()
    first = _started(tmp_path, bridge_processes)
    assert post_signed(first.url, before) == (202, "")
    assert first.stop() == 0
    second = _started(tmp_path, bridge_processes)
    assert post_signed(second.url, since) == (202, "")
    second.kill()
    third = _started(tmp_path, bridge_processes)
    assert post_signed(third.url, since) == (202, "")
    assert post_signed(third.url, before, expect=409) == (409, "replayed")
