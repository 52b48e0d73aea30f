"""The Redis bus spool's files deleted or replaced under the open spool: found, refused, back."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridge.bus.redis.spool import Spool, SpoolDisplaced
from tests.bus.redis.test_spool import drain, frame, numbers


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    """A spool in ``tmp_path/state/spool`` holding two segments of records not yet sent."""
    opened = Spool(tmp_path / "state" / "spool", max_bytes=1 << 20, segment_bytes=1024)
    await opened.open()
    assert await opened.append([frame(n) for n in range(10)])
    assert await opened.append([frame(n) for n in range(10, 20)])
    assert len(list(opened.directory.glob("*.spool"))) >= 2
    try:
        yield opened
    finally:
        await opened.aclose()


def _replace(path: Path) -> None:
    """Another file in ``path``'s place, the first kept aside (so its inode is not reused)."""
    path.rename(path.with_name(path.name + ".aside"))
    path.write_bytes(b"")


def _first_segment(folder: Path) -> Path:
    return sorted(folder.glob("*.spool"))[0]


def _moved_back(folder: Path) -> None:
    """The spool's folder moved away and back again, unchanged."""
    folder.rename(folder.with_name("away"))
    folder.with_name("away").rename(folder)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda folder: None, None),
        (lambda folder: shutil.rmtree(folder.parent), "spool/lock was deleted (EXESDB_STATE_DIR"),
        (lambda folder: (folder / "lock").unlink(), "spool/lock was deleted"),
        (lambda folder: _first_segment(folder).unlink(), ".spool was deleted"),
        (lambda folder: _replace(folder / "lock"), "spool/lock was replaced by another file"),
        (lambda folder: _replace(_first_segment(folder)), ".spool was replaced by another file"),
        (_moved_back, None),
    ],
    ids=["untouched", "state-removed", "lock-deleted", "segment-deleted", "lock-replaced",
         "segment-replaced", "back"],
)  # fmt: skip
async def test_a_spool_says_when_its_lock_or_a_segment_is_no_longer_at_its_path(
    spool: Spool, change: Callable[[Path], object], said: str | None
) -> None:
    """``check_displaced`` names the file deleted or replaced (the Redis bus spool's), with
    what to do, and is None while the lock and every segment are the files at their paths."""
    change(spool.directory)
    found = await spool.check_displaced()
    assert found == spool.displaced
    if said is None:
        assert found is None
    else:
        assert f"the Redis bus spool's {spool.directory}/" in str(found)
        assert said in str(found)
        assert "restart the bridge" in str(found)


async def test_a_removed_spool_takes_nothing_and_makes_nothing_in_a_folder_made_again(
    spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    """The state directory removed and made again (a volume mounted anew) before any check: the
    next append is refused (``SpoolDisplaced``, told once at ERROR with the frames the spool
    held), as are those after it, and no file is made in the new folder; nothing is read."""
    shutil.rmtree(spool.directory.parent)
    spool.directory.mkdir(parents=True)
    with caplog.at_level(logging.INFO, "bridge.bus.redis.spool"):
        for _ in range(3):
            with pytest.raises(SpoolDisplaced, match="spool/lock was deleted"):
                await spool.append([frame(99)])
    assert list(spool.directory.iterdir()) == []
    assert await spool.peek(10) is None
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "ERROR",
            f"spool: {spool.displaced} (the spool held 20 frame(s) not yet written to Redis:"
            " those in files deleted are lost)",
        )
    ]


async def test_a_segment_deleted_before_any_check_is_not_made_again_by_a_write(
    tmp_path: Path,
) -> None:
    """The segment written to deleted (a tmp cleaner) with its lock in place: the append is
    refused rather than written to a new file at its path, whose offsets the spool would
    misread."""
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    try:
        assert await spool.append([frame(0)])
        segment = _first_segment(spool.directory)
        segment.unlink()
        with pytest.raises(SpoolDisplaced, match=f"{segment.name} was deleted"):
            await spool.append([frame(1)])
        assert not segment.exists()
    finally:
        await spool.aclose()


async def test_a_spool_moved_back_takes_and_gives_again(
    spool: Spool, caplog: pytest.LogCaptureFixture
) -> None:
    """Its folder moved away (found, refused) and back where it was: told at INFO, appends are
    taken and the records are read again, those from before the move first."""
    away = spool.directory.with_name("away")
    spool.directory.rename(away)
    assert await spool.check_displaced() is not None
    assert await spool.peek(5) is None
    away.rename(spool.directory)
    caplog.clear()
    with caplog.at_level(logging.INFO, "bridge.bus.redis.spool"):
        assert await spool.check_displaced() is None
    assert caplog.messages == ["spool: the spool's files are at their paths again"]
    assert await spool.append([frame(20)])
    assert numbers(await spool.peek(5)) == [0, 1, 2, 3, 4]


async def test_an_append_whose_folder_is_moved_away_as_it_is_written_is_refused_and_cut_back(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool's folder moved away after the check before a write, at its fsync: the
    append is refused (``SpoolDisplaced``, not answered stored) and found at once, its records
    cut back off the segment; moved back, the records before are read, then what is taken
    next, without the refused one."""
    away = spool.directory.with_name("away")
    fsync = os.fsync

    def moving_away(descriptor: int) -> None:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):  # a segment's, not its folder's
            monkeypatch.setattr(os, "fsync", fsync)
            spool.directory.rename(away)
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", moving_away)
    with pytest.raises(SpoolDisplaced, match="was deleted"):
        await spool.append([frame(99)])
    assert spool.displaced is not None
    assert spool.pending_frames == 20
    away.rename(spool.directory)
    assert await spool.check_displaced() is None
    assert await spool.append([frame(20)])
    assert await drain(spool) == list(range(21))
