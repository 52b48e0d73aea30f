"""`make bench` in a clone without the baseline revision: the health check and start-up go on
without their baseline columns rather than fail (docs/performance.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import healthcheck, startup
from bench.__main__ import baseline_revision, main
from bench._util import missing_revision
from tests.support import ROOT


def _git(folder: Path, *argv: str) -> None:
    subprocess.run(["git", *argv], cwd=folder, check=True, capture_output=True)


def test_a_clone_without_main_has_no_baseline(tmp_path: Path) -> None:
    """A clone of another branch alone has no `main`; a tree without .git has no revisions."""
    clone = tmp_path / "clone"
    clone.mkdir()
    _git(clone, "init", "-q", "-b", "feature")
    (clone / "file").write_text("x\n")
    _git(clone, "add", "file")
    _git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    assert missing_revision("feature", clone) is None
    assert missing_revision("HEAD", clone) is None
    assert missing_revision("main", clone) == "no commit 'main' in this clone"
    tarball = tmp_path / "tarball"
    tarball.mkdir()
    assert missing_revision("main", tarball) == f"{tarball} is not a git checkout"


def test_the_bench_entry_drops_a_missing_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    """A revision this clone lacks is replaced by none, with a note; one it has is kept."""
    assert baseline_revision("HEAD", []) == "HEAD"
    assert capsys.readouterr().out == ""
    assert baseline_revision("no-such-revision", ["healthcheck"]) is None
    assert "no commit 'no-such-revision' in this clone" in capsys.readouterr().out
    assert baseline_revision("no-such-revision", ["bus"]) == "no-such-revision"
    assert capsys.readouterr().out == ""  # neither suite that needs it runs: git is not asked


def test_a_missing_git_is_a_missing_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without git on the PATH, the health check and start-up go without a baseline."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "git cannot run" in (missing_revision("HEAD") or "")


def test_health_check_and_start_up_run_without_a_baseline() -> None:
    """With no revision they measure this tree beside a bare `python -c pass`, no git needed."""
    text = healthcheck.run(None, 1)
    assert "x python -c pass" in text
    assert "this tree, web config with basic auth" in text
    text = startup.run(None, 1)
    assert "CPU x python -c pass" in text
    assert "until /healthz answers 200" in text


def test_only_refuses_a_suite_it_does_not_have(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench --only ingst` (a typo) is a usage error naming the suites, rather than
    a run of nothing that exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--only", "ingst"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --only: invalid choice: 'ingst'" in err
    assert "'ingest'" in err


@pytest.mark.parametrize("module", ["bench.compare", "bench.healthcheck", "bench.startup"])
def test_a_revision_the_clone_lacks_is_one_line_not_a_traceback(module: str) -> None:
    """`python -m bench.compare REV` (and the others taking a revision) with a revision this
    clone lacks, as `main` in a clone of another branch, exits 1 naming it, before any bridge
    starts, rather than with git's error and a traceback."""
    completed = subprocess.run(
        [sys.executable, "-m", module, "no-such-revision"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert "no commit 'no-such-revision' in this clone" in completed.stderr
    assert "Traceback" not in completed.stderr
