"""Ingest batches decoded in steps, the event loop serving others between them.

A body of many lines decoded in one go held the loop: a signed 1 MiB of 349 525 ``{}`` lines
for some 280 ms of CPU, ``/metrics`` and every other request waiting. ``decode_ndjson`` cuts
``PIECE`` bytes of it into lines at a time (the first ``GROUP`` lines of a body of up to
``GROUP_BYTES`` at once, not copied out of it) and decodes up to ``GROUP`` lines at a time, and
lets the loop run once it has held it ``HOLD`` seconds: a batch of the usual size is decoded
without a pause. From the first line at fault on (the batch is refused whole) no envelope is
kept: the lines after it are decoded only to find those at fault too, which the refusal lists (up
to ``PROBLEMS_LISTED``, each with every problem it has) and counts (up to ``PROBLEMS_COUNTED``,
where decoding stops). A line of ``APART`` bytes or more, one envelope decoded in one go, is
decoded alone in the worker thread the caller gives (``bridge.bodies.apart``), in its place among
the others. No id is remembered here: ``Verifier.verify_batch`` judges the decoded
batch for replay and admits it, at one instant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final

from bridge.bus.decoding import decode_envelopes, decode_failures
from bridge.bus.envelope import Envelope, LineRejection, Rejection
from bridge.bus.problems import with_every_problem, with_tag_meant

__all__ = [
    "APART",
    "GROUP",
    "GROUP_BYTES",
    "HOLD",
    "PIECE",
    "PROBLEMS_COUNTED",
    "PROBLEMS_LISTED",
    "DecodedBatch",
    "Turns",
    "decode_lines",
    "decode_ndjson",
    "line_number",
    "located",
]

# The bytes of a body cut into lines at once: at most 32 768 lines of one byte, some 3 ms.
PIECE: Final = 64 * 1024
# The lines decoded at once, cut from up to GROUP_BYTES (a batch of the usual 1 000 envelopes,
# some 340 KB, is one group): some 5 to 10 ms of msgspec for 1 024 envelopes.
GROUP: Final = 1024
GROUP_BYTES: Final = 512 * 1024
# How long decoding (or making a batch's frames, ``Bus.publish_verified_durably``) holds the
# event loop before it lets others be served.
HOLD: Final = 0.005
# A batch refused for its lines names up to PROBLEMS_LISTED of them and counts them up to
# PROBLEMS_COUNTED, where decoding stops: each one costs a run of the reference decoder
# (docs/http-api.md#ingest).
PROBLEMS_LISTED: Final = 20
PROBLEMS_COUNTED: Final = 1_000
# A line (or an application/json body) of this many bytes or more is decoded in the worker thread:
# the hand-over costs the loop some 50 us, what decoding 1 KiB of envelope takes; below, one held
# the loop 9 ms at most (refused for a list of 2 000 wrong items), most under 2 ms.
APART: Final = 4 * 1024

# Calls ``call(line)`` in a worker thread: ``bridge.bodies.apart``.
_Apart = Callable[[Callable[[bytes], None], bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A batch's lines decoded up to the first one at fault: what ``Verifier.verify_batch``
    judges.

    ``envelopes``: those of the lines before the first at fault (all of them when none is);
    ``sizes``: each of those lines' bytes as sent; ``numbers``: each line's number in the body
    when blank lines were left out before one, else None (1, 2, 3...); ``lines``: how many lines
    were cut (when the lines at fault are counted to ``PROBLEMS_COUNTED``, those after the last
    counted are not); ``fault``: the first line at fault with those after it, worded.
    """

    envelopes: list[Envelope]
    sizes: list[int]
    numbers: Sequence[int] | None
    lines: int
    fault: LineRejection | None


def decode_lines(
    lines: Sequence[bytes], numbers: Sequence[int] | None = None, whole: bytes | None = None
) -> DecodedBatch:
    """``lines`` decoded at once (``numbers``: each one's number in the body, by default 1, 2,
    3...; ``whole``: the bytes they were cut from, nothing but ASCII whitespace besides them,
    which ``decode_envelopes`` reads rather than join them)."""
    decoding = _Decoding()
    for _ in decoding.steps(lines, range(1, len(lines) + 1) if numbers is None else numbers, whole):
        pass
    return decoding.decoded(numbers, len(lines))


async def decode_ndjson(body: bytes, apart: _Apart | None = None) -> DecodedBatch | None:
    """The lines of an NDJSON ``body`` (blank ones left out) decoded in steps, the event loop
    let run between them once they have held it ``HOLD`` seconds; None when it has no line.
    With ``apart``, a line of ``APART`` bytes or more is decoded in its call instead."""
    decoding = _Decoding()
    turns = Turns()
    numbers: list[int] | None = None  # made once a blank line is left out before a line
    cut = taken = 0  # the lines cut, blank ones too; those kept
    pending: list[bytes] = []  # lines kept, not yet decoded
    lengths: list[int] = []  # their bytes: measured once, for the test of APART and the sizes
    held = decoded = 0  # the bytes they were cut from; the lines kept before them
    start, size = 0, len(body)
    while start < size:
        await turns.take()
        began = start
        if not start and size <= GROUP_BYTES:
            # A group's bytes at most (the usual batch): its first GROUP lines cut from the
            # body itself, no piece of it copied (some 350 KB a batch); the rest, if any, in
            # pieces.
            split = body.split(b"\n", GROUP)
            start = size - len(split.pop()) if len(split) > GROUP else size + 1
        else:
            end = body.find(b"\n", start + PIECE)
            if end < 0:
                end = size
            split = body[start:end].split(b"\n")
            start = end + 1
        if start > size and not split[-1]:
            # What follows the body's last newline is no line: left out, it does not send the
            # lines kept to be numbered one by one (a second isspace() each).
            split.pop()
        # isspace() tests what strip() would remove without copying each line.
        lines = [line for line in split if line and not line.isspace()]
        kept: Sequence[int] = (
            range(cut + 1, cut + len(split) + 1)
            if len(lines) == len(split)
            else [n for n, line in enumerate(split, cut + 1) if line and not line.isspace()]
        )
        # Numbered once a line is not where its place among those kept puts it: blank lines
        # were left out before it.
        if numbers is None and kept and kept[-1] != taken + len(kept):
            numbers = list(range(1, taken + 1))
        if numbers is not None:
            numbers.extend(kept)
        cut += len(split)
        taken += len(lines)
        pending += lines
        lengths += map(len, lines)
        held += start - began
        if len(pending) < GROUP and held < GROUP_BYTES and start < size:
            continue
        # All of the body's lines in one group: the body is what they were cut from.
        whole = body if not decoded and start >= size and len(pending) <= GROUP else None
        for first in range(0, len(pending), GROUP):
            group = pending[first : first + GROUP] if whole is None else pending
            sizes = lengths[first : first + GROUP] if whole is None else lengths
            at = decoded + first
            within = (
                numbers[at : at + len(group)]
                if numbers is not None
                else range(at + 1, at + len(group) + 1)
            )
            # max() over the lengths, measured once: those of the envelopes kept are their sizes.
            if apart is not None and max(sizes) >= APART:
                await _decode_apart(decoding, turns, group, within, apart)
            else:
                for _ in decoding.steps(group, within, whole, sizes):
                    await turns.take()
            if decoding.done:
                return decoding.decoded(numbers, taken)
            await turns.take()
        decoded += len(pending)
        pending, lengths, held = [], [], 0
    return decoding.decoded(numbers, taken) if taken else None


async def _decode_apart(
    decoding: _Decoding,
    turns: Turns,
    lines: Sequence[bytes],
    numbers: Sequence[int],
    apart: _Apart,
) -> None:
    """``lines`` decoded in order, each of ``APART`` bytes or more alone in ``apart``'s call
    (a line holds one envelope, decoded in one go: 1 MiB of one held the loop 100-330 ms), the
    runs of others between them in steps on the loop."""
    start = 0
    for index, line in enumerate(lines):
        if len(line) < APART:
            continue
        if start < index:
            for _ in decoding.steps(lines[start:index], numbers[start:index], None):
                await turns.take()
            if decoding.done:
                return
        # The loop's coroutine waits meanwhile: the thread alone uses decoding.
        await apart(partial(_drain, decoding, numbers[index : index + 1]), line)
        if decoding.done:
            return
        start = index + 1
    if start < len(lines):
        for _ in decoding.steps(lines[start:], numbers[start:], None):
            await turns.take()


def _drain(decoding: _Decoding, numbers: Sequence[int], line: bytes) -> None:
    """One ``line`` (``numbers``: its number) decoded in one go, in a worker thread."""
    for _ in decoding.steps([line], numbers, line):
        pass


class Turns:
    """Lets the event loop run others once a long piece of work has held it ``HOLD`` seconds."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since = time.perf_counter()

    async def take(self) -> None:
        """Hand the loop round if it has been held long enough."""
        if time.perf_counter() - self.since >= HOLD:
            await asyncio.sleep(0)  # not a wait: the loop serves what came meanwhile
            self.since = time.perf_counter()


class _Decoding:
    """A batch decoded a group of lines at a time, up to the first line at fault and on to find
    the lines at fault after it."""

    __slots__ = ("done", "envelopes", "first", "found", "later", "sizes")

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.sizes: list[int] = []
        self.first: tuple[int, Rejection] | None = None
        self.later: list[tuple[int, Rejection]] = []
        self.found = 0
        self.done = False  # PROBLEMS_COUNTED lines at fault found: no more is wanted

    def steps(
        self,
        lines: Sequence[bytes],
        numbers: Sequence[int],
        whole: bytes | None,
        sizes: Sequence[int] | None = None,
    ) -> Iterator[None]:
        """Decode the next ``lines`` (``numbers``: each one's; ``sizes``: their bytes, when
        measured already), a step between the group's decoding and each line at fault worded
        after it."""
        start = 0
        if self.first is None:
            envelopes, failure = decode_envelopes(lines, whole)
            if self.envelopes:
                self.envelopes.extend(envelopes)
            else:
                self.envelopes = envelopes
            if failure is None:
                self.sizes.extend(map(len, lines) if sizes is None else sizes)
                return
            index, rejection = failure
            self.first = (numbers[index], with_every_problem(lines[index], rejection))
            self.found = 1
            start = index + 1
            yield
        # Each one a run of the reference decoder: 6 µs for a line of one byte, 2 ms for 1 MiB;
        # those listed, a second run, which words every problem of the line.
        for offset, rejection in decode_failures(lines[start:]):
            if self.found < PROBLEMS_LISTED:
                line = lines[start + offset]
                worded = with_tag_meant(with_every_problem(line, rejection))
                self.later.append((numbers[start + offset], worded))
            self.found += 1
            if self.found == PROBLEMS_COUNTED:
                self.done = True
                return
            yield

    def decoded(self, numbers: Sequence[int] | None, lines: int) -> DecodedBatch:
        """The batch as decoded (``lines``: how many were cut), its lines at fault worded."""
        fault = None
        if self.first is not None:
            number, rejection = self.first
            first = _at_line(with_tag_meant(rejection), number, lines)
            later = tuple(_at_line(meant, at, lines) for at, meant in self.later)
            fault = LineRejection(
                first.reason,
                first.detail,
                first.field,
                later,
                self.found,
                also=first.also,
                also_found=first.also_found,
            )
        return DecodedBatch(self.envelopes, self.sizes, numbers, lines, fault)


def line_number(numbers: Sequence[int] | None, index: int) -> int:
    """The number in the body of a batch's ``index``-th line (``numbers`` as ``DecodedBatch``
    has them)."""
    return numbers[index] if numbers is not None else index + 1


def located(
    rejection: Rejection, index: int, numbers: Sequence[int] | None, lines: int
) -> Rejection:
    """``rejection`` of the ``index``-th line of a batch of ``lines``, naming its line when
    there are two or more (``numbers`` as ``DecodedBatch`` has them)."""
    return _at_line(rejection, line_number(numbers, index), lines)


def _at_line(rejection: Rejection, number: int, lines: int) -> Rejection:
    """``rejection`` naming its line (the ``number``-th of ``lines``) before its detail and
    field; the message's other problems (``also``) before their fields only: an answer says
    their details after the first's, the line named once."""
    if lines < 2:
        return rejection
    where = f"line {number}" + (f": {rejection.field}" if rejection.field else "")
    also = tuple(
        Rejection(problem.reason, problem.detail, f"line {number}: {problem.field}")
        for problem in rejection.also
    )
    return Rejection(
        rejection.reason,
        f"line {number}: {rejection.detail}",
        where,
        also=also,
        also_found=rejection.also_found,
    )
