"""Durable writes on a filesystem that cannot sync a directory, and on one whose disk fails."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from bridge.bus import ReplayGuard, ReplayVerdict, replay_file
from bridge.bus.redis.spool import Spool
from tests.bus.redis.test_spool import frame, numbers
from tests.support import ManualClock

NOW = 1_800_000_000.0


def directories_answer(monkeypatch: pytest.MonkeyPatch, code: int) -> list[int]:
    """os.fsync of a directory fails with ``code`` from now on (as some network and FUSE
    filesystems answer); files still sync. The list counts the directory syncs tried."""
    real = os.fsync
    tried: list[int] = []

    def fsync(descriptor: int) -> None:
        if stat.S_ISDIR(os.fstat(descriptor).st_mode):
            tried.append(descriptor)
            raise OSError(code, os.strerror(code))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    return tried


@pytest.mark.parametrize("code", [errno.EINVAL, errno.EBADF, errno.EOPNOTSUPP])
def test_the_replay_file_is_kept_where_directories_cannot_be_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """On a filesystem that does not sync directories, the replay memory is written all the
    same (the stop would otherwise forget it every time) and read back at start."""
    tried = directories_answer(monkeypatch, code)
    guard = ReplayGuard(300.0, 1_000, ManualClock(NOW))
    guard.check("id-now-0001", NOW)
    replay_file.save(guard, tmp_path)
    assert tried, "the directory sync was not tried"
    again = ReplayGuard(300.0, 1_000, ManualClock(NOW))
    assert replay_file.load(again, tmp_path) == 1
    assert again.check("id-now-0001", NOW) is ReplayVerdict.REPLAYED


def test_a_directory_sync_the_disk_fails_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fails (EIO) is not mistaken for a filesystem without directory syncs."""
    directories_answer(monkeypatch, errno.EIO)
    guard = ReplayGuard(300.0, 1_000, ManualClock(NOW))
    with pytest.raises(OSError, match="Input/output error"):
        replay_file.save(guard, tmp_path)


async def test_the_spool_takes_batches_where_directories_cannot_be_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Redis bus's spool makes its segment files on such a filesystem: a batch is taken
    (an ingest 202) and comes back, instead of every batch refused."""
    tried = directories_answer(monkeypatch, errno.EINVAL)
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=4096)
    await spool.open()
    try:
        assert await spool.append([frame(1), frame(2)])
        assert tried, "the directory sync was not tried"
        assert numbers(await spool.peek(10)) == [1, 2]
    finally:
        await spool.aclose()
