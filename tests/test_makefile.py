"""The Makefile a newcomer types `make` in: the quick start's targets named before anything runs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.support import ROOT, unavailable


def test_make_alone_lists_the_targets_and_makes_nothing(tmp_path: Path) -> None:
    """``make`` with no target names ``make run``, ``make test`` and the other targets, each one
    of the Makefile's, and would make nothing, where it used to make the virtualenv alone (the
    first rule) and say no more."""
    if shutil.which("make") is None:
        unavailable("make is not installed")
    # A dry run in an empty folder: what a bare `make` would do there, none of it done.
    completed = subprocess.run(
        ["make", "--dry-run", "--file", str(ROOT / "Makefile")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    named = re.findall(r"'make ([a-z-]+) ", completed.stdout)
    assert {"run", "test"} <= set(named), completed.stdout
    rules = (ROOT / "Makefile").read_text()
    assert [target for target in named if f"\n{target}:" not in rules] == []
    assert "-m venv" not in completed.stdout
    assert not list(tmp_path.iterdir())
