"""The Makefile a newcomer types `make` in: the quick start's targets named before anything runs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support import ROOT, require_binary


def test_make_alone_lists_the_targets_and_makes_nothing(tmp_path: Path) -> None:
    """``make`` with no target names ``make run``, ``make test`` and the other targets, each one
    of the Makefile's, and would make nothing, where it used to make the virtualenv alone (the
    first rule) and say no more."""
    require_binary("make")
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


def test_make_clean_removes_every_state_folder_the_readme_and_the_defaults_make(
    tmp_path: Path,
) -> None:
    """``make clean`` removes the state folders ``make run`` makes (``.exesdb-bridge``, the
    demo's ``.exesdb-bridge-demo``) and each ``EXESDB_STATE_DIR`` the README's commands give (a
    second bridge's ``.exesdb-bridge-2``), and leaves any other folder alone."""
    require_binary("make")
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"EXESDB_STATE_DIR=(\.[\w.-]+)", readme))
    assert ".exesdb-bridge-2" in named, "the README's second bridge has a folder of its own"
    made = named | {".exesdb-bridge", ".exesdb-bridge-demo"}
    for folder in (*made, "keep-me"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "alerts.sqlite3").write_bytes(b"")
    subprocess.run(
        ["make", "--file", str(ROOT / "Makefile"), "clean"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep-me"]
