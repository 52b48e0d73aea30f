"""The Redis bus spool's spent segments the disk will not delete: told while frames wait,
deleted on a later try, and never sharing a number with a segment made after them."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.bus import Frame
from bridge.bus.redis.spool import Spool
from tests.support import async_wait_until


def frame(number: int) -> Frame:
    """A frame whose body names its number."""
    return Frame("ex_esdb_alerts", f'{{"n":{number}}}'.encode().ljust(100, b" "), f"{number:064x}")


def refusing(
    monkeypatch: pytest.MonkeyPatch, name: str, code: int, which: Callable[[str], bool]
) -> None:
    """Make ``os.<name>`` refuse (``code``) the paths ``which`` picks: no real mechanism here
    refuses the root user a deletion or a rename in a folder it may write."""
    real = getattr(os, name)

    def refuse(path: str | Path, *args: object, **kwargs: object) -> object:
        if which(os.fspath(path)):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, refuse)


def segments(directory: Path) -> list[str]:
    """The spool's segment files, by name."""
    return sorted(path.name for path in directory.glob("*.spool"))


async def test_a_spent_segment_the_disk_will_not_delete_is_deleted_on_a_later_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment sent whose deletion the disk refuses is counted, not told as frames waiting
    (none wait: the bus is not held not ready for it), deleted once the disk takes it (the
    fault's wait over, no further send needed), and its id said by the next advance so that
    its progress in Redis is dropped only then."""
    directory = tmp_path / "spool"
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    try:
        assert await spool.append([frame(1), frame(2)])
        (spent,) = segments(directory)
        batch = await spool.peek(10)
        assert batch is not None
        refusing(monkeypatch, "unlink", errno.EACCES, lambda path: path.endswith(".spool"))
        assert await spool.advance(batch) == []
        assert (spool.pending_bytes, spool.disk_errors, spool.fault) == (0, 1, None)
        assert segments(directory) == [spent]
        monkeypatch.undo()
        await async_wait_until(lambda: segments(directory) == [], 10, "the spent one deleted")
        assert spool.fault is None
        assert await spool.append([frame(3)])
        batch = await spool.peek(10)
        assert batch is not None
        assert await spool.advance(batch) == [spent.split("-")[1][:-6], batch.segment]
    finally:
        monkeypatch.undo()
        await spool.aclose(2)


async def test_a_segment_made_after_one_left_undeleted_takes_a_number_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a spent segment left undeleted and the head's file not written either (a
    read-only disk), the next segment is numbered after it: a restart reads them in order,
    the spent one first (Redis's progress through it is asked, not dropped)."""
    directory = tmp_path / "spool"
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    try:
        assert await spool.append([frame(1), frame(2)])
        batch = await spool.peek(10)
        assert batch is not None
        refusing(monkeypatch, "unlink", errno.EROFS, lambda path: path.endswith(".spool"))
        refusing(monkeypatch, "replace", errno.EROFS, lambda path: path.endswith(".tmp"))
        assert await spool.advance(batch) == []
        assert await spool.append([frame(3)])
        first, second = segments(directory)
        assert int(second.split("-")[0]) > int(first.split("-")[0])
    finally:
        monkeypatch.undo()
        await spool.aclose(2)
    reopened = Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20)
    try:
        assert await reopened.open() == 3
        batch = await reopened.peek(10)
        assert batch is not None
        assert batch.segment == first.split("-")[1][:-6]
        assert not reopened.checked(batch)
    finally:
        await reopened.aclose(2)
