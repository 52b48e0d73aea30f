"""Benchmarks that no other test runs, in their quickest mode: they still run on this tree
(mypy sees their types, not a query on a table or a schema built in the wrong order)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import dead_letters, render
from bench.decode import decoders, disagreeing
from bench.workload import SHAPES, Source


def test_every_decode_alternative_decodes_as_this_tree_does() -> None:
    """`python -m bench.decode`'s alternatives, built as it builds them, each decode a few
    lines of both payload shapes into the envelopes `decode_envelopes` makes."""
    lines = {shape: Source(shape, nodes=125).envelopes(16, distinct_ts=True) for shape in SHAPES}
    assert disagreeing(decoders(), lines) == []


def test_dead_letters_runs_on_a_small_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m bench.dead_letters` on 200 deliveries, one run of each figure and two commits
    a copy prints every figure, the prune's beside the same without `carried`'s triggers."""
    monkeypatch.chdir(tmp_path)  # its outbox files go where it runs
    argv = ["--deliveries", "200", "--runs", "1", "--prune-runs", "1", "--commits", "2"]
    monkeypatch.setattr(sys, "argv", ["bench.dead_letters", *argv])
    dead_letters.main()
    out = capsys.readouterr().out
    assert "ms without carried's triggers" in out
    assert out.splitlines()[-1].startswith("receiver keys (at start): ")


def test_render_runs_on_a_hundred_series(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m bench.render --runs 1 --sizes 100` prints its row for 100 series."""
    monkeypatch.setattr(sys, "argv", ["bench.render", "--runs", "1", "--sizes", "100"])
    render.main()
    assert capsys.readouterr().out.splitlines()[-1].split()[0] == "100"
