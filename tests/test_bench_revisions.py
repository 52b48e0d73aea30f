"""The in-process benchmarks beside another revision (`--baseline REV`, docs/performance.md):
each tree's code in its own process on the same input, a ratio per figure."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.workload import Source
from tests.support import ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["bench.decode", "--quick"],
        ["bench.alert_stage", "--alerts", "200", "--repeats", "1"],
        ["bench.odd_envelopes", "--names", "2000", "--fields", "100", "--repeats", "1"],
        ["bench.alert_dates", "--cap", "--changes", "50", "--runs", "1"],
    ],
)
def test_a_baseline_revision_gets_a_ratio_row(command: list[str]) -> None:
    """`--baseline HEAD` prints the baseline's median and, on this tree's row, its ratio."""
    done = subprocess.run(
        [sys.executable, "-m", *command, "--baseline", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| x HEAD |" in done.stdout, done.stdout
    assert re.search(r"\|\s+HEAD \|\s+[\d,.]+ \|\s+\|", done.stdout), done.stdout
    assert re.search(r"\| this tree \|\s+[\d,.]+ \|\s+\d+\.\d\d \|", done.stdout), done.stdout


def test_distinct_timestamps_are_each_their_own() -> None:
    """Envelopes asked with distinct_ts carry no two timestamps alike (the decoder's cache of
    parsed timestamps would hide their parsing), in the order they are sent."""
    stamps = [
        re.search(rb'"ts":"([^"]+)"', body)[1]  # type: ignore[index]
        for body in Source().envelopes(3_000, distinct_ts=True)
    ]
    assert len(set(stamps)) == len(stamps)
    assert stamps == sorted(stamps)
