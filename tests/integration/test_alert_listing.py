"""``GET /v1/alerts`` of many long alerts, asked of a real ``exesdb-bridge run`` process."""

from __future__ import annotations

import json
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import ADMIN_TOKEN, BridgeProcess, http_get, post_signed, unavailable

pytestmark = [pytest.mark.integration]

ALERTS = 240
PER_BATCH = 6  # each line some 100 kB: a batch under the default EXESDB_MAX_BODY_BYTES (1 MiB)


def _longest(n: int) -> dict[str, object]:
    """A SystemAlert with its texts at their most: 4 096 characters, each one JSON escapes to 12
    bytes (the id, source and node) or 6 (the title and description)."""
    tag = f"{n:06d}"
    return {
        "v": 1,
        "id": secrets.token_hex(12),
        "instance": "ex_esdb_alerts",
        "topic": "long",
        "tag": "system_alert",
        "node": "sender",
        "ts": datetime.now(UTC).isoformat(),
        "payload": {
            "alert_id": tag + "\U0001f600" * (4096 - len(tag)),
            "severity": "warning",
            "category": "system",
            "title": tag + "\x01" * (4096 - len(tag)),
            "description": "\x01" * 4096,
            "source": "\U0001f600" * 4096,
            "node": tag + "\U0001f600" * (4096 - len(tag)),
            "metadata": {f"k{key:02d}": "\x01" * 256 for key in range(16)},
        },
    }


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory so far, in bytes (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def test_listing_long_alerts_takes_the_memory_of_a_page_not_of_the_answer(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """``?limit=10000`` of alerts at their longest is sent a page at a time: the bridge's peak
    memory grows by a fraction of the answer (built whole, 40 MB of answer took 150 MB more),
    and the answer lists every alert once, most recently changed first."""
    if sys.platform != "linux":
        unavailable("the peak memory is read from /proc: Linux only")
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    assert bridge.process is not None
    for first in range(0, ALERTS, PER_BATCH):
        lines = [
            json.dumps(_longest(n), ensure_ascii=False) for n in range(first, first + PER_BATCH)
        ]
        post_signed(bridge.url, "\n".join(lines).encode(), timeout=30)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    before = _peak_rss(bridge.process.pid)
    status, body = http_get(bridge.url + "/v1/alerts?limit=10000", admin, timeout=60)
    grown = _peak_rss(bridge.process.pid) - before
    assert status == 200
    answer = json.loads(body)
    # Ingest answers once the batch is stored: every alert is listed (and the bridge's own, if
    # its host probe raised any).
    listed = [alert["alert_id"][:6] for alert in answer["alerts"]]
    assert [tag for tag in listed if tag.isdigit()] == [f"{n:06d}" for n in reversed(range(ALERTS))]
    assert answer["work_queue_lease"] == "here"
    assert len(body) > 40_000_000
    # Paged: 14-15 MB for 71 MB quiet, 20 MB once under a loaded full run; built whole: 3-4x the
    # answer. Half the answer parts the two with room for a slow reader's buffers.
    assert grown < len(body) / 2, (
        f"peak memory grew {grown / 1e6:.0f} MB for {len(body) / 1e6:.0f} MB"
    )


def _titled(n: int) -> dict[str, object]:
    """A SystemAlert whose title and node have 4 096 characters, the most they may have."""
    message = _longest(n)
    message["payload"] = {
        "alert_id": f"{n:06d}",
        "severity": "warning",
        "category": "system",
        "title": f"{n:06d}" + "t" * 4090,
        "description": "long",
        "source": "test",
        "node": f"{n:06d}" + "n" * 4090,
    }
    return message


def test_the_status_page_shows_the_start_of_long_titles_and_nodes(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """Alerts whose title and node are at their longest are listed on the status page by their
    first characters, ending ``…`` (their pages show them whole): 200 of them (the most it lists,
    saying so) make a page of some 300 kB, not of the 3 MB their texts whole made."""
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    shown = 201  # one more than the page lists of the firing ones
    for first in range(0, shown, 20):
        lines = [json.dumps(_titled(n)) for n in range(first, min(shown, first + 20))]
        post_signed(bridge.url, "\n".join(lines).encode(), timeout=30)
    status, page = http_get(bridge.url + "/", timeout=30)
    assert status == 200
    text = page.decode()
    assert "Showing the newest 200 firing" in text
    assert "000200" + "t" * 113 + "…</a>" in text
    # Counted, not ``not in``: pytest's diff of a miss over 300 kB runs for many minutes.
    assert text.count("t" * 200) == 0
    # A node's tooltip holds its first 254 characters and ``…``, no more (the row shows 119).
    assert ">000200" + "n" * 113 + "…<" in text
    assert text.count('"000200' + "n" * 248 + '…"') == 1
    assert text.count("n" * 249) == 0
    assert len(page) < 200 * 2000, f"{len(page) / 1e6:.1f} MB"
    status, alert = http_get(bridge.url + "/alerts/000200", timeout=30)
    assert status == 200
    assert "000200" + "t" * 4090 in alert.decode()
