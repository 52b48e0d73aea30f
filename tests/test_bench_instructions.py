"""`python -m bench.instructions` without minutes under valgrind: its command line, the counts it
reads from callgrind's dumps, its table, its worker on this tree, and its answer when valgrind is
missing (docs/performance.md, "Ingest's work per message, by instruction count")."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

from bench import instructions
from bench._util import Tree


def test_the_command_line_defaults_to_the_docs_baseline() -> None:
    """No --baseline counts beside 6c3c5492, the tree the docs' figures are against; given,
    each revision is counted; the sizes are taken as given."""
    args = instructions.parse([])
    assert (args.baseline, args.repeats, args.batches, args.warm_up) == (["6c3c5492"], 3, 10, 3)
    args = instructions.parse(["--baseline", "main", "--baseline", "HEAD~1", "--batches", "4"])
    assert (args.baseline, args.batches) == (["main", "HEAD~1"], 4)


@pytest.mark.parametrize("option", ["--repeats", "--batches", "--warm-up"])
def test_a_count_below_one_is_refused(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--batches 0`` (or the other counts) is a usage error before valgrind is looked for."""
    with pytest.raises(SystemExit) as exited:
        instructions.parse([option, "0"])
    assert exited.value.code == 2
    assert f"argument {option}: 0 is not a count of 1 or more" in capsys.readouterr().err


def test_each_dump_is_read_in_order_and_a_missing_one_refused(tmp_path: Path) -> None:
    """Each of callgrind's dumps gives its event loop's thread's summary line (another thread's
    part left out), .2 after .1 and .10 after both; fewer dumps than the worker's shapes is an
    error, not a table of the wrong figures."""
    out = tmp_path / "callgrind.out"
    for name, count in [("10-01", 3), ("1-01", 446_300_000), ("1-02", 5), ("2-01", 425_700_000)]:
        Path(f"{out}.{name}").write_text(f"# callgrind format\nevents: Ir\nsummary: {count}\n")
    assert instructions.counted(out, 3) == [446_300_000, 425_700_000, 3]
    with pytest.raises(RuntimeError, match="callgrind wrote 3 dumps, not 4"):
        instructions.counted(out, 4)


def test_the_table_gives_each_trees_runs_and_this_trees_change() -> None:
    """The table has each tree's median and runs in millions, to the 0.1M a change of a few
    percent needs, and a message's share; this tree's row the baseline's over it and its
    change in percent; below it, how far apart one tree's runs are."""
    trees = [Tree("6c3c5492", Path("/nonexistent")), Tree("this tree", Path("/nonexistent"))]
    figures = {
        "complete": {"6c3c5492": [433.9, 435.1, 434.0], "this tree": [446.3, 445.6, 446.0]},
        "minimal": {"6c3c5492": [409.5, 409.1, 409.3], "this tree": [425.7, 423.0, 424.0]},
    }
    text = instructions.render(figures, trees, repeats=3, batches=10)
    assert "(callgrind; 3 runs per tree and shape, interleaved, each 10 batches of 1,000)" in text
    assert "| M instructions / 10 batches (median) | each run | a message | x 6c3c5492 |" in (
        re.sub(r" +", " ", text)
    )
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not line.startswith("|-")
    ]
    assert rows[1:] == [
        ["complete", "6c3c5492", "434.0", "433.9, 435.1, 434.0", "43,400", ""],
        ["complete", "this tree", "446.0", "446.3, 445.6, 446.0", "44,600", "0.973 (+2.8%)"],
        ["minimal", "6c3c5492", "409.3", "409.5, 409.1, 409.3", "40,930", ""],
        ["minimal", "this tree", "424.0", "425.7, 423.0, 424.0", "42,400", "0.965 (+3.6%)"],
    ]
    assert text.endswith("\nThe runs of one tree 0.64% apart at most.\n")


def test_the_worker_counts_on_this_tree_without_valgrind() -> None:
    """The worker's path, run natively (its two calls then mark nothing): a bridge with every
    default component takes a warm-up batch and a counted one."""
    worker = ["--worker", "minimal", "--warm-up", "1", "--batches", "1"]
    assert instructions.main(worker) == 0


def test_a_worker_whose_batch_is_refused_closes_its_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch refused mid-run (a revision's ingest steps failing) ends the worker with that
    error, its bridge closed all the same: no thread of it left running."""

    def refused(*_: object) -> None:
        raise RuntimeError("batch refused: for the test")

    monkeypatch.setattr("bench._util.verified_batch", refused)
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="for the test"):
        instructions.main(["--worker", "minimal", "--warm-up", "1", "--batches", "1"])
    assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []


def test_a_worker_stuck_under_valgrind_is_killed_in_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A worker that outlasts its time (``WORKER_SECONDS_PER_BATCH`` for each batch of each
    shape) is killed and the run ends naming the tree, rather than waiting on it for ever."""
    stuck = tmp_path / "valgrind"  # stands for a valgrind whose worker never finishes
    stuck.write_text("#!/bin/sh\nexec sleep 20\n")
    stuck.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(instructions, "WORKER_SECONDS_PER_BATCH", 0.25)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"the worker of this tree did not finish within 1 s"):
        instructions.run(baseline=(), repeats=1, batches=1, warm_up=1)
    assert time.monotonic() - started < 15


def test_without_valgrind_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no valgrind on the PATH (nor apt-get to install it) the command exits 2 naming the
    package to install, before any tree is extracted."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert instructions.main([]) == 2
    assert "apt-get install valgrind" in capsys.readouterr().err
