"""`python -m bench.soak_faults`, run for a few seconds as docs/performance.md runs it for 30
minutes: its table printed, every alert it got accepted delivered through the failing receiver,
no dead letters."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import pytest

from bench.soak_faults import FlakyReceiver
from tests.support import ROOT

COLUMNS = ["when", "t (s)", "RSS MiB", "fds", "outbox", "dead", "alerts accepted", "delivered"]


@pytest.mark.slow
def test_a_short_soak_with_faults_delivers_every_accepted_alert() -> None:
    """Two seconds at 100 msg/s (ten alerts a second, resolved a second after): the table has
    its four rows, the receiver failed some deliveries, and once drained every accepted alert
    was delivered (its firing, or its resolve alone), the outbox empty and no letter dead at
    any point."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak_faults",
            *("--seconds", "2", "--rate", "100", "--resolve-seconds", "1"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # The benchmark's own drain waits up to 120 s for the outbox to empty.
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    cells = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith("|") and not line.startswith("|-")
    ]
    assert cells[0] == COLUMNS, out
    rows = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in cells[1:]}
    assert list(rows) == ["start", "half way", "end of load", "drained"], out
    assert all(float(row["dead"]) == 0 for row in rows.values()), out
    drained = rows["drained"]
    assert float(drained["outbox"]) == 0, out
    assert int(drained["alerts accepted"].replace(",", "")) > 0, out
    assert drained["delivered"] == drained["alerts accepted"], out
    # The receiver's failures are seeded: its first delivery is always one of them.
    failed = re.search(r"receiver failed (\d+) of \d+ deliveries", out)
    assert failed is not None, out
    assert int(failed[1]) > 0, out


def test_an_alert_told_as_its_resolve_alone_counts_as_delivered() -> None:
    """The receiver counts an alert it was told of only by its resolve (it fired and resolved
    while the receiver's window was held) as delivered, and one it never heard of as not."""

    def post(*alerts: tuple[str, str]) -> None:
        body = {"alerts": [{"status": s, "labels": {"alert_id": a}} for a, s in alerts]}
        request = urllib.request.Request(
            receiver.url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    with FlakyReceiver(fail=0.0) as receiver:
        post(("p-1", "firing"), ("p-2", "firing"))
        post(("p-1", "resolved"), ("p-3", "resolved"), ("other-4", "resolved"))
        # p-1 fired and resolved, p-2 fires, p-3 was told its resolve alone.
        assert receiver.delivered("p-") == (3, 2, 1)
