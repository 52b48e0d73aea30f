"""The alert outbox on a btrfs that is really full: a small loop-mounted image, filled up."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
from pathlib import Path

import pytest

from bridge.sinks.alerts import Outbox
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.integration.servers.btrfs import small_btrfs
from tests.integration.servers.tmpfs import SmallDisk
from tests.integration.test_alert_crash import QUIET, ingest_alerts, listed_alerts
from tests.sinks.alerts.helpers import system_alert
from tests.sinks.alerts.test_sink_hardening import ndjson
from tests.support import BridgeProcess, run_bridge, signed_post, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["small_btrfs"]  # the fixture, imported for the tests below


def write_back(directory: Path) -> None:
    """Write each file's dirty pages in ``directory`` to disk, as the kernel does within 30 s
    (dirty_expire_centisecs): a page written back is mapped read-only until written again."""
    for path in directory.iterdir():
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def test_a_bridge_on_a_full_btrfs_refuses_alerts_and_stays_up(
    small_btrfs: SmallDisk, tmp_path: Path
) -> None:
    """A bridge whose outbox is on a btrfs that fills up stays up (in WAL, its write to the
    log's mapped shared-memory file was answered SIGBUS): the alert arriving then is taken and
    kept while the outbox refuses it, and stored once there is space, none lost; an ``outbox``
    command opens the file beside it."""
    state = small_btrfs.path / "state"
    bridge = BridgeProcess(state_dir=state, EXESDB_INGEST="true", **QUIET).start(tmp_path)
    try:
        ingest_alerts(bridge.url, ["before"])
        # The log copied into the file, as SQLite does by itself every 1 000 pages: the next
        # write begins the log again, in the shared-memory file first.
        plain = sqlite3.connect(state / FILE_NAME)
        try:
            plain.execute("PRAGMA wal_checkpoint")
        finally:
            plain.close()
        small_btrfs.fill()
        write_back(state)
        try:
            # Answered once ingest's 10 s wait for the commit is over: more than that to hear it.
            status, said = signed_post(bridge.url, ndjson(system_alert("while-full")), timeout=30.0)
        except (OSError, http.client.HTTPException) as exc:  # the connection dropped
            status, said = 0, repr(exc).encode()
        assert bridge.process is not None
        assert bridge.process.poll() is None, (
            f"the bridge ended ({bridge.process.returncode}; -7 is SIGBUS): {said!r}"
        )
        # Taken and kept in memory, ingest's wait for the commit over (as on any full disk).
        assert (status, json.loads(said)) == (202, {"accepted": 1, "committed": False}), said
        small_btrfs.free()
        wait_until(
            lambda: (
                {alert["alert_id"] for alert in listed_alerts(bridge.url)}
                == {"before", "while-full"}
            ),
            timeout=30.0,
            what="the kept alert stored",
        )
        listed = run_bridge("outbox", "list", env={"EXESDB_STATE_DIR": str(state)})
        assert listed.returncode == 0, listed.stderr
        assert bridge.stop() == 0, bridge.log()
    finally:
        bridge.kill()  # ended already, unless the test failed before


def test_an_outbox_left_in_wal_is_opened_in_the_rollback_journal_on_btrfs(
    small_btrfs: SmallDisk,
) -> None:
    """An outbox file in WAL (an earlier version's) on btrfs is moved to the rollback journal
    when opened alone, kept between transactions: no shared-memory file is left beside it."""
    path = small_btrfs.path / FILE_NAME
    earlier = sqlite3.connect(path)
    try:
        assert earlier.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    finally:
        earlier.close()
    outbox = Outbox(path)
    try:
        assert not Path(f"{path}-shm").exists()
        assert Path(f"{path}-journal").exists()
    finally:
        outbox.close()
    # The file's header says WAL (2) or the rollback journal (1) at bytes 18 and 19.
    assert path.read_bytes()[18:20] == b"\x01\x01"
