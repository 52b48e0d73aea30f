"""Benchmarks that no other test runs, in their quickest mode: they still run on this tree
(mypy sees their types, not a query on a table or a schema built in the wrong order); and what
the ingest benchmark divides by and hands the bus, which its figures rest on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import dead_letters, pushgateway, render
from bench._util import BridgeProcess, http_get, settle, verified_batch
from bench.decode import decoders, disagreeing
from bench.ingest import BATCH, NODES, post_batches, warm_up
from bench.workload import SECRET, SHAPES, WRITTEN, Source
from bridge.bus import Keyring, ReplayGuard, Verifier


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


def _series(exposition: bytes) -> set[bytes]:
    return {line.rsplit(b" ", 1)[0] for line in exposition.splitlines() if line[:1] != b"#"}


def test_pushgateway_is_pushed_the_series_a_batch_of_complete_messages_sets() -> None:
    """The ingest bench's Pushgateway body, which the bridge's CPU per sample is divided by,
    holds the series a bridge fed complete messages alone shows, not those the other shapes
    add (the json.dumps shape's escaped µ is a unit, so a series, of its own)."""
    with BridgeProcess(EXESDB_INGEST="true") as bridge:
        pushed = warm_up(bridge, {shape: Source(shape, NODES) for shape in WRITTEN})
        every_shape = http_get(bridge.url + "/metrics")[1].decode()
    with BridgeProcess(EXESDB_INGEST="true") as alone:
        post_batches(alone.port, [Source("complete", NODES).batch(BATCH)])
        settle(alone.stat)  # the batch on /metrics, as warm_up reads it
        complete = pushgateway.exposition(http_get(alone.url + "/metrics")[1].decode(), '@bench"')
    assert _series(pushed) == _series(complete)
    assert _series(pushed) < _series(pushgateway.exposition(every_shape, '@bench"'))


def test_the_in_process_benches_weigh_each_envelope_by_its_line_as_ingest_does() -> None:
    """bench's verified_batch gives each envelope's size as sent, as HTTP ingest hands the bus:
    without them the bus encodes every envelope again to weigh it, and the in-process figures
    ("Where ingest CPU goes", bench.bus) would count work that ingest never does."""
    body, header = Source("complete", NODES).batch(20)
    verifier = Verifier(
        Keyring.from_secrets(SECRET), ReplayGuard(300), window_seconds=300, max_bytes=1 << 20
    )
    envelopes, sizes = verified_batch(verifier, body, header)
    assert len(envelopes) == 20
    assert list(sizes) == [len(line) for line in body.splitlines()]
