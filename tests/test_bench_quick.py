"""Benchmarks that no other test runs, in their quickest mode: they still run on this tree
(mypy sees their types, not a query on a table or a schema built in the wrong order); and what
the ingest benchmark divides by and hands the bus, which its figures rest on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import dead_letters, pushgateway, render
from bench._util import BridgeProcess, http_get, settle, verified_batch
from bench.decode import decoders, disagreeing
from bench.ingest import BATCH, NODES, post_batches, warm_up
from bench.workload import SECRET, SHAPES, WRITTEN, Source
from bridge.bus import Keyring, ReplayGuard, Verifier
from tests.support import ROOT, require_binary


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


def _printed(*command: str, env: dict[str, str] | None = None) -> str:
    """What ``python -m <command>`` prints, run as a reader runs it (in ``env``, by default
    this process's)."""
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _tables(printed: str) -> dict[str, list[dict[str, str]]]:
    """Each table in ``printed``, by its title's first words (up to a parenthesis), as rows of
    cells by column."""
    tables: dict[str, list[dict[str, str]]] = {}
    header: list[str] = []
    for line in printed.splitlines():
        if line.startswith("### "):
            rows = tables.setdefault(line[4:].partition(" (")[0], [])
            header = []
        elif line.startswith("|") and not line.startswith("|-"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if header:
                rows.append(dict(zip(header, cells, strict=True)))
            else:
                header = cells
    return tables


def _figure(cell: str) -> float:
    """A table's figure as a number (``60,562`` is 60562)."""
    return float(cell.replace(",", ""))


@pytest.mark.parametrize("option", ["--repeats", "--batches"])
@pytest.mark.parametrize("count", ["0", "-1"])
def test_ingest_refuses_a_count_below_one(option: str, count: str) -> None:
    """``--repeats 0`` or ``--batches -1`` is refused before a bridge starts: 0 ran the default
    sizes as though nothing were given, and -1 repeats ended in a median of nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest", option, count],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"argument {option}: {count} is not a count of 1 or more" in done.stderr


@pytest.mark.slow
def test_ingest_runs_beside_pushgateway_on_a_few_batches() -> None:
    """`python -m bench.ingest --repeats 1 --batches 4` prints both tables: every step of the
    in-process one and every process of the Pushgateway one a figure above zero, and the ratio
    of Pushgateway's CPU per sample to the bridge's for complete payloads."""
    require_binary(pushgateway.BINARY)
    printed = _printed("bench.ingest", "--repeats", "1", "--batches", "4")
    assert "(1 x 4 batches of 1,000 each, interleaved" in printed
    assert "(in-process, no HTTP, 1 repeats, median)" in printed
    tables = _tables(printed)
    steps = tables["Where ingest CPU goes"]
    assert len(steps) == 4
    assert all(_figure(step["complete: CPU ms / 1000 msgs"]) > 0 for step in steps)
    processes = tables["Signed NDJSON ingest beside Pushgateway"]
    assert [row["process"].partition(":")[0] for row in processes][-1] == "Pushgateway"
    assert all(_figure(row["msgs/s (wall)"]) > 0 for row in processes)
    assert all(_figure(row["CPU ms / 1000 msgs"]) > 0 for row in processes)
    ratio = processes[0]["Pushgateway's CPU per sample / its"]
    assert processes[0]["process"] == "bridge, complete payloads"
    assert _figure(ratio) > 0


@pytest.mark.slow
def test_redis_bus_runs_two_replicas_on_a_few_thousand_messages(tmp_path: Path) -> None:
    """`python -m bench.redis_bus --messages 2000 --repeats 1 --seconds 0.3 --claim-idle-ms
    500` prints its capacity and latency tables, each replica's figures above zero, and leaves
    nothing in the temporary folder (the replica its failover SIGKILLs included)."""
    require_binary("redis-server")
    tables = _tables(
        _printed(
            "bench.redis_bus",
            *("--messages", "2000", "--repeats", "1", "--seconds", "0.3", "--claim-idle-ms", "500"),
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
    )
    assert list(tmp_path.iterdir()) == []
    replicas = [
        row
        for row in tables["Redis bus, two replica processes: capacity"]
        if row["replica"] in ("this tree: lease holder", "this tree: other replica")
    ]
    assert len(replicas) == 2
    for column in ("msgs/s (wall)", "msgs per CPU-s", "CPU us/msg"):
        assert all(_figure(row[column]) > 0 for row in replicas), column
    paced = tables[
        "Publish to delivery at half the target rate and at half the slower role's capacity"
    ]
    assert len(paced) >= 2
    assert all(_figure(row["msgs/s"]) > 0 and _figure(row["p99 ms"]) > 0 for row in paced)
