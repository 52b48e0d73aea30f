"""What this build is: version, source revision and Python version, for ``exesdb_build_info``.

The revision is, in order: ``EXESDB_REVISION`` (the image build sets it from its
``--build-arg REVISION``), the commit pip recorded when installing from git (PEP 610's
``direct_url.json``, e.g. ``pip install git+https://…@<commit>``), for an editable install (a
clone's ``make run``) the commit checked out in its folder, else ``unknown``: as a Go exporter
built in a checkout carries its commit. Nothing is run at start-up to find it (no ``git``): the
checkout's ``HEAD`` and refs are read as files, and uncommitted changes are not marked.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

from bridge import __version__

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["BuildInfo", "build_info", "git_head", "register_build_metrics"]

_UNKNOWN: Final = "unknown"
_COMMIT: Final = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 object names
_MAX_SYMBOLIC_REFS: Final = 5


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """The labels of ``exesdb_build_info``."""

    version: str
    revision: str
    python_version: str


def build_info(revision: str | None = None) -> BuildInfo:
    """This build's version, revision (``EXESDB_REVISION`` as given, see above), Python version."""
    revision = (revision or "").strip() or _recorded_commit() or _UNKNOWN
    return BuildInfo(__version__, revision, platform.python_version())


def _recorded_commit() -> str | None:
    # The first metadata with a record: a build's leftover *.egg-info in the working folder may
    # come before the installed one on sys.path.
    text = next(
        (
            found
            for dist in distributions(name="exesdb-bridge")
            if (found := dist.read_text("direct_url.json"))
        ),
        None,
    )
    if not text:
        return None
    try:
        recorded = json.loads(text)
        commit = recorded.get("vcs_info", {}).get("commit_id")
        editable = recorded.get("dir_info", {}).get("editable") is True
        url = recorded.get("url", "")
    except (ValueError, AttributeError):
        return None
    if isinstance(commit, str) and commit:
        return commit
    if editable and isinstance(url, str) and url.startswith("file://"):
        # The code running is the folder's: its checked-out commit is the revision.
        return git_head(Path(unquote(urlsplit(url).path)))
    return None


def git_head(folder: Path) -> str | None:
    """The commit checked out in the git work tree at ``folder`` (a clone or a linked worktree),
    read from its ``HEAD``, loose refs and ``packed-refs``; None when there is none to read."""
    dot_git = folder / ".git"
    try:
        if dot_git.is_file():  # a linked worktree or a submodule: "gitdir: <path>"
            pointer = dot_git.read_text(encoding="utf-8").strip()
            if not pointer.startswith("gitdir:"):
                return None
            git_dir = folder / pointer.removeprefix("gitdir:").strip()
        else:
            git_dir = dot_git
        common = git_dir
        if (git_dir / "commondir").is_file():  # a worktree's branches live in the main one
            common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
        head: str | None = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        for _ in range(_MAX_SYMBOLIC_REFS):
            if head is None or not head.startswith("ref:"):
                break
            head = _ref(git_dir, common, head.removeprefix("ref:").strip())
    except (OSError, UnicodeDecodeError):
        return None
    return head if head is not None and _COMMIT.fullmatch(head) else None


def _ref(git_dir: Path, common: Path, name: str) -> str | None:
    """What the ref ``name`` (``refs/heads/main``) holds: a loose ref (the worktree's own, then
    the shared one), else its line in ``packed-refs``; None when it does not exist yet."""
    if not name.startswith("refs/") or ".." in name:
        return None
    for base in (git_dir, common):
        if (base / name).is_file():
            return (base / name).read_text(encoding="utf-8").strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            commit, _, ref = line.partition(" ")
            if ref == name:
                return commit
    return None


def register_build_metrics(registry: CollectorRegistry, info: BuildInfo, started_at: float) -> None:
    """``exesdb_build_info`` (prometheus/common's shape) and ``exesdb_start_time_seconds``."""
    from prometheus_client import Gauge  # here: check-config reads build_info without metrics

    Gauge(
        "exesdb_build_info",
        "A metric with a constant '1' value labeled by version, revision and python_version "
        "from which exesdb-bridge was built.",
        ["version", "revision", "python_version"],
        registry=registry,
    ).labels(info.version, info.revision, info.python_version).set(1)
    Gauge(
        "exesdb_start_time_seconds",
        "When the bridge started, in Unix seconds.",
        registry=registry,
    ).set(started_at)
