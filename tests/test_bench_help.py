"""Every benchmark's `--help` reads as plain text: its docstring's reStructuredText quotes are
left out (the README and docs/performance.md send readers to these commands)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

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


# Each benchmark's ``--help`` run as ``python -m`` runs it (``runpy``, ``sys.argv`` set), all in
# one interpreter: a new one for each spent a second importing what every benchmark imports.
# Printed as JSON: each module's exit status, stdout and stderr.
_ALL_HELPS = """
import contextlib, io, json, runpy, sys
shown = {}
for module in sys.argv[1:]:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [module, "--help"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    shown[module] = [status, out.getvalue(), err.getvalue()]
print(json.dumps(shown))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, list[Any]]:
    """Every benchmark's ``--help``: its exit status, stdout and stderr, by module. The tests
    using it are one pytest-xdist group, so that one worker runs them all, not each worker that
    takes one of them (each worker's module fixture ends when its next test is another module's)."""
    done = subprocess.run(
        [sys.executable, "-c", _ALL_HELPS, *BENCHMARKS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown: dict[str, list[Any]] = json.loads(done.stdout)
    return shown


def test_python_m_bench_help_exits_0_in_a_process_of_its_own() -> None:
    """`python -m bench --help`, in a new interpreter as a reader runs it, exits 0 with a usage."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: "), done.stdout


@pytest.mark.xdist_group("bench-helps")
@pytest.mark.parametrize("module", BENCHMARKS)
def test_a_benchmarks_help_has_no_rst_quotes(module: str, helps: dict[str, list[Any]]) -> None:
    """`python -m <module> --help` exits 0 and shows no ``double backticks``."""
    status, stdout, stderr = helps[module]
    assert status == 0, stderr
    assert "usage:" in stdout
    assert "``" not in stdout, stdout
