"""The memory of large request bodies, kept by a real ``exesdb-bridge run`` process between
requests."""

from __future__ import annotations

import http.client
import sys
from pathlib import Path

import pytest

from bridge.bus import SIGNATURE_HEADER
from tests.support import BridgeProcess, unavailable

pytestmark = [pytest.mark.integration]

BODY_BYTES = 700_000  # under the default EXESDB_MAX_BODY_BYTES (1 MiB)
REQUESTS = 20


def _minor_faults(pid: int) -> int:
    """The process's minor page faults so far (``/proc/<pid>/stat``, field 10)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])


def test_large_bodies_refused_one_after_another_take_no_fresh_pages(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """Batches of 700 KB refused at their signature, one after another on a keep-alive
    connection, take almost no new pages each once the first has been read: the heap keeps
    what a body took (it gave it back and took it again, page by page: 400 faults each)."""
    if sys.platform != "linux":
        unavailable("page faults are read from /proc, the heap kept by glibc's malloc: Linux only")
    bridge = BridgeProcess(EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    assert bridge.process is not None
    line = b'{"not": "an envelope"}\n'
    body = line * (BODY_BYTES // len(line))
    headers = {"Content-Type": "application/x-ndjson", SIGNATURE_HEADER: "t=1,v1=" + "0" * 64}
    connection = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=10)
    try:

        def refused() -> None:
            connection.request("POST", "/v1/messages", body, headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 401

        for _ in range(3):
            refused()  # the first bodies grow the heap
        before = _minor_faults(bridge.process.pid)
        for _ in range(REQUESTS):
            refused()
        faults = (_minor_faults(bridge.process.pid) - before) / REQUESTS
    finally:
        connection.close()
    assert faults < 40, f"{faults:.0f} minor page faults a request"
