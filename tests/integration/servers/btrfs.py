"""A real full btrfs for tests: a 16 MB image of a test's own, loop-mounted, filled up and freed.

Tests use the ``small_btrfs`` fixture as ``EXESDB_STATE_DIR``'s file system; mounting needs root,
mkfs.btrfs (``make servers`` installs btrfs-progs) and loop devices, so elsewhere the test cannot
run (``unavailable``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers.tmpfs import SmallDisk, mounted
from tests.support import require_binary, unavailable

__all__ = ["small_btrfs"]


@pytest.fixture
def small_btrfs(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 16 MB btrfs of the test's own, data and metadata mixed as on a small disk (mounting
    needs root: elsewhere the test cannot run)."""
    if os.geteuid() != 0:
        unavailable("mounting a btrfs image needs root")
    mkfs = require_binary("mkfs.btrfs")
    image = tmp_path / "btrfs.img"
    with image.open("wb") as made:
        made.truncate(16 << 20)  # sparse: blocks are taken as the file system writes them
    subprocess.run([mkfs, "-q", "--mixed", str(image)], capture_output=True, check=True)
    how = ["-t", "btrfs", "-o", "loop", str(image)]
    with mounted(tmp_path / "state", how, "a btrfs image (a loop device)") as disk:
        yield disk
