"""The Redis bus spool's disk refusing a write: the spool's fault, named, told and counted."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

from bridge.bus import Frame
from bridge.bus.redis.spool import Spool, SpoolDiskError
from bridge.bus.redis.spool_disk import SpoolDiskFaults

# What both children below begin with: a spool holding one frame in a process whose files may
# then grow only 150 bytes past its segment (``limited``), and frames of 100 bytes.
_LIMITED: Final = """
import asyncio, json, resource, sys
from pathlib import Path
from bridge.bus import Frame
from bridge.bus.redis.spool import Spool, SpoolDiskError

def frame(number):
    body = f'{{"n":{number}}}'.encode().ljust(100, b" ")
    return Frame("ex_esdb_alerts", body, f"{number:064x}")

async def limited(directory):
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    assert await spool.append([frame(0)])
    segment = next(directory.glob("*.spool"))
    size = segment.stat().st_size
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 150, hard))
    return spool, segment, size, hard
"""

# A process whose files may not grow past a few bytes more than the spool's segment holds
# (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the kernel answers EFBIG): a real refusal of a
# write, part of it taken first, for any user. Two appends are refused, then the limit is lifted
# and one is taken; what it found is printed as JSON.
_CHILD: Final = (
    _LIMITED
    + """
import logging

said = []

class Said(logging.Handler):
    def emit(self, record):
        said.append([record.levelname, record.getMessage()])

logging.getLogger("bridge").addHandler(Said())
logging.getLogger("bridge").setLevel(logging.INFO)

async def main(directory):
    spool, segment, size, hard = await limited(directory)
    refused = []
    for number in (1, 2):
        try:
            await spool.append([frame(number), frame(number + 10)])
        except SpoolDiskError as exc:
            refused.append([exc.errno, exc.filename, str(exc)])
    found = {
        "segment": str(segment),
        "size": size,
        "size after": segment.stat().st_size,
        "refused": refused,
        "fault": spool.fault,
        "unwritable": spool.unwritable,
        "errors": spool.disk_errors,
        "pending": spool.pending_frames,
    }
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    found["taken"] = await spool.append([frame(3)])
    found["fault after"] = spool.fault
    found["unwritable after"] = spool.unwritable
    batch = await spool.peek(10)
    found["read"] = [frame.body.decode().split()[0] for frame in batch.frames]
    await spool.aclose()
    found["said"] = said
    print(json.dumps(found))

asyncio.run(main(Path(sys.argv[1])))
"""
)


def _run_child(program: str, spool: Path) -> dict[str, Any]:
    """What ``program`` (run in a child process, its file size limit its own) found at
    ``spool``, as the JSON it printed."""
    done = subprocess.run(
        [sys.executable, "-c", program, str(spool)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_a_write_the_disk_refuses_is_the_spools_fault_named_cut_back_and_told_once(
    tmp_path: Path,
) -> None:
    """Appends the disk refuses (a file size limit: EFBIG, part of the first written) fail with
    ``SpoolDiskError`` naming the segment, cut back to what the spool held; ``fault`` and
    ``unwritable`` say it is the spool's disk, each refusal is counted and the fault logged at
    error once; the next append taken ends it (logged at info), and the records read are those
    taken alone."""
    found = _run_child(_CHILD, tmp_path / "spool")
    segment = found["segment"]
    words = f"[Errno {errno.EFBIG}] {os.strerror(errno.EFBIG)}: {segment!r}"
    assert found["refused"] == [[errno.EFBIG, segment, words]] * 2
    assert found["size after"] == found["size"]
    assert found["fault"] == (
        f"the Redis bus spool's disk refused a write 0 s ago ({words}): ingest answers 503 until"
        " it takes one"
    )
    assert found["unwritable"] == (
        f"the Redis bus spool's disk refused the batch ({words}); send it again"
    )
    assert (found["errors"], found["pending"]) == (2, 1)
    assert found["taken"] is True
    assert found["fault after"] is None
    assert found["unwritable after"] is None
    assert found["read"] == ['{"n":0}', '{"n":3}']
    assert found["said"] == [
        [
            "ERROR",
            f"spool: the Redis bus spool's disk refused a write ({words}): the batch is not"
            " stored (ingest answers 503 not_committed) and the bus reports not ready until a"
            " write is taken",
        ],
        ["INFO", "spool: the Redis bus spool's disk takes writes again"],
    ]


# A write cut short by the same file size limit, whose cut back the disk refuses too (no real
# mechanism here refuses an ftruncate that shrinks, so os.ftruncate raises EIO): the torn tail
# stays. The next append, taken once the limit is lifted, is read, sent and gone.
_TORN_CHILD: Final = (
    _LIMITED
    + """
import errno, os

def refuse(descriptor, size):
    raise OSError(errno.EIO, "Input/output error")

async def main(directory):
    spool, segment, size, hard = await limited(directory)
    truncate, os.ftruncate = os.ftruncate, refuse
    try:
        await spool.append([frame(1), frame(11)])
    except SpoolDiskError as exc:
        refused = exc.errno
    os.ftruncate = truncate
    torn = segment.stat().st_size - size
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    assert await spool.append([frame(3)])
    batch = await spool.peek(10)
    read = [frame.body.decode().split()[0] for frame in batch.frames]
    await spool.advance(batch)
    found = {
        "refused": refused,
        "torn": torn,
        "read": read,
        "pending after": [spool.pending_bytes, spool.pending_frames],
        "files after": sorted(path.name for path in directory.glob("*.spool")),
    }
    await spool.aclose()
    print(json.dumps(found))

asyncio.run(main(Path(sys.argv[1])))
"""
)


def test_an_append_after_a_torn_tail_the_disk_would_not_cut_back_is_read_and_sent(
    tmp_path: Path,
) -> None:
    """A write the disk cuts short (EFBIG, part of it written) whose cut back fails leaves a
    torn tail; the next append answered stored is written over it, not after it: read whole,
    sent, and its segment deleted with nothing left to send."""
    found = _run_child(_TORN_CHILD, tmp_path / "spool")
    assert (found["refused"], found["torn"]) == (errno.EFBIG, 150)
    assert found["read"] == ['{"n":0}', '{"n":3}']
    assert found["pending after"] == [0, 0]
    assert found["files after"] == []


async def test_a_write_the_disk_takes_none_of_fails_rather_than_trying_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that returns 0 (the disk took none of it) fails its batch with EIO, named, at
    once; it is not tried again forever on the spool's thread."""
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    monkeypatch.setattr(os, "pwrite", lambda descriptor, data, offset: 0)
    try:
        with pytest.raises(SpoolDiskError) as refused:
            await asyncio.wait_for(spool.append([_frame(1)]), 5)
        assert refused.value.errno == errno.EIO
        assert spool.pending_frames == 0
    finally:
        monkeypatch.undo()
        await spool.aclose(1)


def _frame(number: int) -> Frame:
    """A frame whose body names its number."""
    return Frame("ex_esdb_alerts", f'{{"n":{number}}}'.encode().ljust(100, b" "), f"{number:064x}")


def test_a_refused_write_is_quoted_to_ingest_no_longer_than_readiness_tells_it(
    tmp_path: Path,
) -> None:
    """``unwritable`` (ingest's 503 words) quotes a refused write while ``fault`` tells it,
    and neither does 30 s after it, though no write was taken since: a batch refused later for
    another cause is not answered with an old disk error."""
    now = [100.0]
    faults = SpoolDiskFaults(lambda: None, tmp_path, clock=lambda: now[0])
    faults.write_failed(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x")))
    told: list[tuple[str | None, str | None]] = []
    for seconds in (29.0, 1.0):
        now[0] += seconds
        told.append((faults.unwritable, faults.fault))
    assert None not in told[0]
    assert told[1] == (None, None)


async def test_a_read_refused_after_the_close_schedules_no_wake(tmp_path: Path) -> None:
    """Once closed, a read the disk refuses (one under way as the spool closed) is counted
    and told but wakes no one: no timer is left behind."""
    woken: list[int] = []
    faults = SpoolDiskFaults(lambda: woken.append(1), tmp_path)
    faults.close()
    faults.send_failed(OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "x")))
    assert faults.errors == 1
    assert not faults.resting
    await asyncio.sleep(0.7)  # past the first retry's 0.5 s: a wake would have come
    assert woken == []
