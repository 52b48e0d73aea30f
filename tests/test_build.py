"""exesdb_build_info and exesdb_start_time_seconds: what this build is, and when it started."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest

from bridge import __version__
from bridge.app import Bridge
from bridge.build import build_info, git_head
from tests.support import ROOT, make_settings


def test_the_revision_comes_from_exesdb_revision():
    """EXESDB_REVISION (set by the image build) is the revision label, trimmed."""
    info = build_info(" 0123abc \n")
    assert (info.version, info.revision, info.python_version) == (
        __version__,
        "0123abc",
        platform.python_version(),
    )


def _git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    done = subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A git repository with two commits on main."""
    folder = tmp_path / "clone"
    folder.mkdir()
    _git(folder, "init", "-q", "-b", "main")
    for text in ("one", "two"):
        (folder / "file").write_text(text)
        _git(folder, "add", "file")
        _git(folder, "commit", "-q", "-m", text)
    return folder


def test_an_editable_install_reports_the_commit_of_its_folder():
    """The test run's editable install (no EXESDB_REVISION, a blank one alike) names the commit
    its folder has checked out, as git itself tells it; "unknown" outside a checkout."""
    expected = _git(ROOT, "rev-parse", "HEAD") if (ROOT / ".git").exists() else "unknown"
    assert build_info(None).revision == expected
    assert build_info("  ").revision == expected


def test_git_head_follows_the_branch_through_loose_and_packed_refs(clone: Path):
    """HEAD's branch is read from its loose ref, and from packed-refs once git packed it."""
    assert git_head(clone) == _git(clone, "rev-parse", "HEAD")
    _git(clone, "pack-refs", "--all")
    assert not (clone / ".git" / "refs" / "heads" / "main").exists()
    assert git_head(clone) == _git(clone, "rev-parse", "HEAD")


def test_git_head_reads_a_linked_worktree_and_a_detached_head(clone: Path, tmp_path: Path):
    """A linked worktree (a .git file) on its own branch, and a detached HEAD, give the commit
    checked out there, not the main clone's."""
    first = _git(clone, "rev-parse", "HEAD~1")
    worktree = tmp_path / "worktree"
    _git(clone, "worktree", "add", "-q", "-b", "side", str(worktree), first)
    assert git_head(worktree) == first
    _git(clone, "checkout", "-q", "--detach", first)
    assert git_head(clone) == first


def test_git_head_is_none_without_a_commit_to_name(tmp_path: Path):
    """No repository, or one without a commit yet: no revision (so "unknown")."""
    assert git_head(tmp_path) is None
    _git(tmp_path, "init", "-q")
    assert git_head(tmp_path) is None


def test_build_info_is_one_gauge_family_at_1():
    """exesdb_build_info{version, revision, python_version} is 1, in one gauge family."""
    bridge = Bridge(make_settings(EXESDB_REVISION="f00d"), components=[])
    labels = {
        "version": __version__,
        "revision": "f00d",
        "python_version": platform.python_version(),
    }
    assert bridge.registry.get_sample_value("exesdb_build_info", labels) == 1
    families = [f for f in bridge.registry.collect() if f.name.startswith("exesdb_build")]
    assert [(f.name, f.type) for f in families] == [("exesdb_build_info", "gauge")]


def test_start_time_is_the_bridges_clock_at_construction():
    """exesdb_start_time_seconds is the (injected) wall clock when the bridge was built."""
    bridge = Bridge(make_settings(), components=[], clock=lambda: 1_700_000_000.5)
    assert bridge.registry.get_sample_value("exesdb_start_time_seconds") == 1_700_000_000.5
