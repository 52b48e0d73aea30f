"""Every benchmark's `--help` reads as plain text: its docstring's reStructuredText quotes are
left out (the README and docs/performance.md send readers to these commands)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT

BENCHMARKS = sorted(
    f"bench.{path.stem}" if path.stem != "__main__" else "bench"
    for path in (ROOT / "bench").glob("*.py")
    if path.stem != "_util"
    and any(parser in path.read_text() for parser in ("argument_parser(", "ArgumentParser("))
)


def test_the_benchmarks_with_a_command_line_are_found() -> None:
    """BENCHMARKS is not short by accident: `python -m bench` and the comparisons are in it."""
    assert {"bench", "bench.compare", "bench.startup"} <= set(BENCHMARKS)


@pytest.mark.parametrize("module", BENCHMARKS)
def test_a_benchmarks_help_has_no_rst_quotes(module: str) -> None:
    """`python -m <module> --help` exits 0 and shows no ``double backticks``."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert "``" not in done.stdout, done.stdout
