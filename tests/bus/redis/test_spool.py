"""The Redis bus spool: frames on disk in order, until written; torn tails, damage, room, resume."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridge.bus import Frame
from bridge.bus.redis.spool import Spool, SpoolBatch, waiting
from tests.support import async_wait_until

SEGMENT = 4096


def frame(number: int, size: int = 100) -> Frame:
    """A frame whose body names its number (padded to about ``size`` bytes)."""
    body = f'{{"n":{number}}}'.encode().ljust(size, b" ")
    return Frame("ex_esdb_alerts" if number % 2 else "ex_esdb_metrics", body, f"{number:064x}")


def numbers(batch: SpoolBatch | None) -> list[int]:
    if batch is None:
        return []
    return [int(f.body.split(b":")[1].split(b"}")[0]) for f in batch.frames]


@pytest.fixture
async def open_spool(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """``await open_spool(max_bytes=…)`` opens a spool in ``tmp_path/spool``; all are closed."""
    opened: list[Spool] = []

    async def make(max_bytes: int = 1 << 20, segment_bytes: int = SEGMENT) -> Spool:
        spool = Spool(tmp_path / "spool", max_bytes=max_bytes, segment_bytes=segment_bytes)
        await spool.open()
        opened.append(spool)
        return spool

    yield make
    for spool in opened:
        await spool.aclose()


async def drain(spool: Spool, count: int = 1000) -> list[int]:
    """Read and advance until the spool is empty; the numbers in order."""
    seen: list[int] = []
    while (batch := await spool.peek(count)) is not None:
        seen += numbers(batch)
        await spool.advance(batch)
    return seen


async def test_frames_come_back_in_the_order_they_were_appended(open_spool) -> None:
    """Appended batches are read back in order, with their instance and signature."""
    spool = await open_spool()
    assert await spool.append([frame(n) for n in range(5)])
    assert await spool.append([frame(n) for n in range(5, 8)])
    batch = await spool.peek(3)
    assert numbers(batch) == [0, 1, 2]
    assert batch is not None
    assert [(f.instance, f.signature) for f in batch.frames] == [
        (frame(n).instance, frame(n).signature) for n in range(3)
    ]
    assert await spool.peek(3) == batch  # peeking does not move the head
    await spool.advance(batch)
    assert await drain(spool) == [3, 4, 5, 6, 7]
    assert spool.pending_bytes == 0


async def test_waiting_counts_the_frames_not_yet_sent_without_opening_the_spool(
    open_spool, tmp_path: Path
) -> None:
    """``waiting`` counts the records left after the head, over every segment, without taking
    the lock (the spool may be open meanwhile); a missing or empty folder holds none."""
    assert waiting(tmp_path / "spool") == 0
    spool = await open_spool()
    assert waiting(tmp_path / "spool") == 0
    assert await spool.append([frame(n, size=300) for n in range(30)])  # several segments
    batch = await spool.peek(5)
    assert batch is not None
    await spool.advance(batch)
    assert waiting(tmp_path / "spool") == 25
    assert await drain(spool) == list(range(5, 30))
    assert waiting(tmp_path / "spool") == 0


async def test_what_was_appended_survives_a_reopen_and_what_was_sent_does_not_return(
    open_spool,
) -> None:
    """Reopened (a restart), the spool holds exactly the frames not yet advanced past."""
    spool = await open_spool()
    await spool.append([frame(n) for n in range(60)])  # several segments
    batch = await spool.peek(25)
    await spool.advance(batch)
    await spool.aclose()
    again = await open_spool()
    assert await drain(again, 7) == list(range(25, 60))


async def test_a_file_named_as_a_segment_with_no_ascii_number_is_passed_over(
    open_spool, tmp_path: Path
) -> None:
    """A file in the spool's folder named as a segment but for its number, a superscript two
    (str.isdigit() takes it, int() does not), is no segment: the spool opens, holding nothing."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    (folder / "\u00b2-x.spool").write_bytes(b"")
    spool = await open_spool()
    assert await drain(spool) == []


async def test_sent_segments_are_deleted_and_the_files_hold_only_what_waits(
    open_spool, tmp_path: Path
) -> None:
    """Segments roll over at their size; once sent they are deleted, the last one too."""
    spool = await open_spool()
    await spool.append([frame(n) for n in range(100)])
    await spool.append([frame(n) for n in range(100, 200)])
    assert len(list((tmp_path / "spool").glob("*.spool"))) >= 2
    assert await drain(spool, 33) == list(range(200))
    assert list((tmp_path / "spool").glob("*.spool")) == []
    await spool.append([frame(7)])
    assert await drain(spool) == [7]


async def test_a_record_torn_by_a_crash_is_cut_off_at_open(
    open_spool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Half a record at the end of a segment (a crash mid-append, never answered) is cut off;
    the whole records before it are kept."""
    spool = await open_spool(segment_bytes=1 << 20)
    await spool.append([frame(n) for n in range(3)])
    await spool.aclose()
    (segment,) = (tmp_path / "spool").glob("*.spool")
    whole = segment.stat().st_size
    with segment.open("ab") as file:
        file.write(b"\x00\x00\x01\x00half a rec")
    with caplog.at_level(logging.WARNING):
        again = await open_spool(segment_bytes=1 << 20)
    assert segment.stat().st_size == whole
    assert "cutting off" in caplog.text
    await again.append([frame(3)])
    assert await drain(again) == [0, 1, 2, 3]


@pytest.mark.parametrize("where", [200, 182], ids=["in-its-body", "in-its-length"])
@pytest.mark.parametrize("reopened", [False, True], ids=["while-open", "at-open"])
async def test_a_damaged_record_inside_a_segment_is_skipped_and_the_records_after_it_sent(
    open_spool, tmp_path: Path, caplog: pytest.LogCaptureFixture, where: int, reopened: bool
) -> None:
    """A record whose checksum fails (its body or its length changed on disk), found while
    the spool is open or when it is opened again, is skipped and logged; the whole records
    after it in its segment, and the next segments, still come (none is cut off)."""
    spool = await open_spool(segment_bytes=1000)
    await spool.append([frame(n) for n in range(6)])  # one segment, full (182 bytes each)...
    await spool.append([frame(n) for n in range(6, 15)])  # ...then the next
    segments = sorted((tmp_path / "spool").glob("*.spool"))
    assert len(segments) >= 2
    first = bytearray(segments[0].read_bytes())
    first[where] ^= 0xFF  # the second record
    segments[0].write_bytes(bytes(first))
    if reopened:
        await spool.aclose()
        spool = await open_spool(segment_bytes=1000)
        assert segments[0].stat().st_size == len(first)
    with caplog.at_level(logging.ERROR):
        seen = await drain(spool)
    assert "damaged record" in caplog.text
    assert seen == [0, *range(2, 15)]


async def test_open_counts_the_whole_records_on_both_sides_of_a_damaged_one(
    open_spool, tmp_path: Path
) -> None:
    """What ``open`` says is still to send counts every whole record of a segment, those
    before a damaged record and those after it (the start's log line)."""
    spool = await open_spool(segment_bytes=1 << 20)
    await spool.append([frame(n) for n in range(6)])  # 182 bytes each
    await spool.aclose()
    (segment,) = (tmp_path / "spool").glob("*.spool")
    data = bytearray(segment.read_bytes())
    data[200] ^= 0xFF  # the second record's body
    segment.write_bytes(bytes(data))
    again = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    try:
        assert await again.open() == 5
    finally:
        await again.aclose()


async def test_past_its_size_the_spool_takes_nothing_of_a_batch(open_spool) -> None:
    """A batch that would pass ``max_bytes`` is refused whole; room comes back as frames go."""
    spool = await open_spool(max_bytes=2000)
    assert await spool.append([frame(n) for n in range(10)])  # about 1 200 bytes
    assert not await spool.append([frame(n) for n in range(10, 20)])
    assert await drain(spool) == list(range(10))
    assert await spool.append([frame(n) for n in range(10, 20)])
    assert await drain(spool) == list(range(10, 20))


async def test_a_batch_being_written_counts_against_the_spools_size(
    open_spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that would pass ``max_bytes`` with one still being written (its fsync under way)
    is refused: the one on its way to disk takes room too."""
    spool = await open_spool(max_bytes=2000)
    entered, released = threading.Event(), threading.Event()
    fsync = os.fsync

    def slow_fsync(descriptor: int) -> None:
        entered.set()
        released.wait(10)  # until the second batch was offered
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    first = asyncio.ensure_future(spool.append([frame(n) for n in range(10)]))  # ~1 200 bytes
    try:
        await async_wait_until(entered.is_set, 10, "the first batch's fsync under way")
        # Refused at once, while the first is still on its way to disk.
        assert not await asyncio.wait_for(spool.append([frame(n) for n in range(10, 20)]), 5)
    finally:
        released.set()
    assert await first
    assert spool.pending_bytes <= 2000
    assert await drain(spool) == list(range(10))


async def test_a_batch_just_written_counts_once_against_the_spools_size(
    open_spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch offered after the spool's thread wrote one and before the event loop took that
    write's answer counts the written one once: two batches that fit together are both taken,
    the second not refused (a 503 to ingest)."""
    spool = await open_spool()
    assert await spool.append([frame(0)])
    size = spool.pending_bytes
    assert await drain(spool) == [0]
    spool.max_bytes = 2 * size
    loop = asyncio.get_running_loop()
    offered: list[asyncio.Future[bool]] = []
    call_soon_threadsafe = loop.call_soon_threadsafe

    def answer(callback: Callable[..., object], *args: object) -> asyncio.Handle:
        # The thread's answer to the first write: the second batch is offered first, in the
        # loop's next step, before the append that waited on that write goes on.
        loop.call_soon_threadsafe = call_soon_threadsafe  # type: ignore[method-assign]
        call_soon_threadsafe(
            lambda: offered.append(asyncio.ensure_future(spool.append([frame(2)])))
        )
        return call_soon_threadsafe(callback, *args)

    monkeypatch.setattr(loop, "call_soon_threadsafe", answer)
    assert await spool.append([frame(1)])
    [second] = offered
    assert await second
    assert await drain(spool) == [1, 2]


async def test_appends_made_together_all_land_in_the_order_they_were_made(open_spool) -> None:
    """Concurrent appends (one fsync for those that wait together) keep their call order."""
    spool = await open_spool()
    results = await asyncio.gather(*(spool.append([frame(n)]) for n in range(50)))
    assert all(results)
    assert await drain(spool) == list(range(50))


async def test_progress_redis_reports_moves_the_head_once_per_segment(open_spool) -> None:
    """After a restart the writer asks Redis how far it got in the head segment: the head moves
    there (records Redis holds are not sent again), and the question is asked once. A segment
    the spool made since it opened has nothing to ask: its new id is in no progress key yet."""
    spool = await open_spool(segment_bytes=1 << 20)
    await spool.append([frame(n) for n in range(10)])
    made = await spool.peek(1)
    assert made is not None
    assert spool.checked(made)
    await spool.aclose()
    spool = await open_spool(segment_bytes=1 << 20)
    first = await spool.peek(4)
    assert first is not None
    assert not spool.checked(first)
    assert not await spool.resume(first, None)  # Redis knows nothing (lost its data, or new)
    assert spool.checked(first)
    second = await spool.peek(6)
    assert second is not None
    assert await spool.resume(second, first.end)  # Redis has the first four
    assert await drain(spool) == [4, 5, 6, 7, 8, 9]


async def test_the_spool_counts_the_frames_it_holds_across_a_reopen_and_progress_redis_reports(
    open_spool,
) -> None:
    """``pending_frames`` counts the records not yet sent: those a reopen finds, those
    appended, less those advanced past and those Redis says it already holds."""
    spool = await open_spool(segment_bytes=1 << 20)
    await spool.append([frame(n) for n in range(6)])
    await spool.aclose()
    spool = await open_spool(segment_bytes=1 << 20)
    await spool.append([frame(n) for n in range(6, 10)])
    assert spool.pending_frames == 10
    first = await spool.peek(3)
    assert first is not None
    await spool.advance(first)
    assert spool.pending_frames == 7
    second = await spool.peek(7)
    assert second is not None
    held = await spool.peek(2)  # what Redis says it took of the rest
    assert held is not None
    assert await spool.resume(second, held.end)
    assert spool.pending_frames == 5
    assert await drain(spool) == [5, 6, 7, 8, 9]
    assert spool.pending_frames == 0


async def test_a_second_bridge_on_the_same_spool_is_refused(open_spool, tmp_path: Path) -> None:
    """One bridge per spool: opening it again while it is open fails, saying why; once closed
    it opens again."""
    first = await open_spool()
    second = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=SEGMENT)
    with pytest.raises(OSError, match="another bridge process"):
        await second.open()
    await second.aclose()
    await first.aclose()
    again = await open_spool()
    assert await again.append([frame(1)])


async def test_a_spool_on_a_file_system_without_locks_is_not_called_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spool whose folder cannot be locked (flock: ENOLCK) fails with that reason, not as one
    another bridge has open."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=SEGMENT)
    with pytest.raises(OSError, match=os.strerror(errno.ENOLCK)) as refused:
        await spool.open()
    await spool.aclose()
    assert "another bridge" not in str(refused.value)


async def test_the_spool_makes_the_state_dir_above_it_private(tmp_path: Path) -> None:
    """A spool opened first (the Redis bus starts before the outbox) makes EXESDB_STATE_DIR
    0700, as the outbox would, and its own folder and files 0700 and 0600."""
    spool = Spool(tmp_path / "state" / "spool", max_bytes=1 << 20, segment_bytes=SEGMENT)
    await spool.open()
    try:
        assert await spool.append([frame(1)])
    finally:
        await spool.aclose()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "state" / "spool").stat().st_mode & 0o777 == 0o700
    for path in (tmp_path / "state" / "spool").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name


async def test_a_stop_with_no_time_left_does_not_call_an_idle_disk_stuck(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop whose budget the components before it used up (0 s left) still lets the idle
    thread close the spool: no "the disk did not finish" error, which would send an operator
    looking for a disk fault (it came about one stop in two)."""
    for attempt in range(5):
        spool = Spool(tmp_path / f"spool-{attempt}", max_bytes=1 << 20, segment_bytes=SEGMENT)
        await spool.open()
        assert await spool.append([frame(1)])
        with caplog.at_level(logging.ERROR, "bridge.bus.redis.spool"):
            await spool.aclose(0.0)
    assert "did not finish" not in caplog.text
