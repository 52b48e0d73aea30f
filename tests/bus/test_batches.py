"""Batch verification (NDJSON ingest): one replay judgement per batch, all or nothing."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.bus import (
    DecodedBatch,
    Envelope,
    Keyring,
    Rejection,
    RejectReason,
    ReplayGuard,
    ReplayVerdict,
    Verifier,
    decode_lines,
    decode_ndjson,
)
from bridge.bus.batches import GROUP, PIECE, PROBLEMS_COUNTED
from tests.bus.helpers import BusFactory
from tests.support import async_wait_until

WINDOW = 300.0
NOW = 1_800_000_000.0
TS = "2027-01-15T08:00:00.000Z"  # NOW as RFC 3339


class Clock:
    """A settable clock in seconds that counts its readings."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return self.now


def _guard(capacity: int = 1_000, clock: Clock | None = None) -> ReplayGuard:
    return ReplayGuard(WINDOW, capacity, clock or Clock())


def check_pairs(
    guard: ReplayGuard, messages: list[tuple[str, float]]
) -> tuple[int, ReplayVerdict] | None:
    """``guard.check_batch`` for a batch written as (id, timestamp) pairs."""
    return guard.check_batch([m for m, _ in messages], [t for _, t in messages])


def test_check_batch_remembers_every_id_of_a_fresh_batch() -> None:
    """A batch of fresh messages is accepted and every id remembered."""
    guard = _guard()
    assert check_pairs(guard, [("id-00000001", NOW), ("id-00000002", NOW - 1)]) is None
    assert len(guard) == 2
    assert guard.seen("id-00000002", NOW) is ReplayVerdict.REPLAYED


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ([("id-00000001", NOW), ("id-old", NOW - WINDOW - 1)], (1, ReplayVerdict.EXPIRED)),
        ([("id-future", NOW + WINDOW + 1), ("id-00000002", NOW)], (0, ReplayVerdict.EXPIRED)),
        ([("id-00000001", NOW), ("id-00000001", NOW)], (1, ReplayVerdict.REPLAYED)),
        ([("id-00000003", NOW), ("id-known", NOW)], (1, ReplayVerdict.REPLAYED)),
    ],
    ids=["past", "future", "repeated-within", "already-accepted"],
)
def test_check_batch_names_the_first_stale_message_and_remembers_nothing(
    batch: list[tuple[str, float]], expected: tuple[int, ReplayVerdict]
) -> None:
    """A refused batch reports its first bad message, and no id of it is remembered."""
    guard = _guard()
    guard.check("id-known", NOW)
    assert check_pairs(guard, batch) == expected
    assert len(guard) == 1


def test_check_batch_reads_the_clock_once() -> None:
    """A batch is judged at one instant: one clock reading however long the batch."""
    clock = Clock()
    guard = _guard(clock=clock)
    assert check_pairs(guard, [(f"id-{n:08d}", NOW) for n in range(100)]) is None
    assert clock.readings == 1


def test_check_batch_keeps_the_capacity_bound_and_raises_the_floor() -> None:
    """A batch larger than the memory evicts the oldest ids and the floor follows them."""
    guard = _guard(capacity=3)
    assert check_pairs(guard, [(f"id-{n:08d}", NOW - 10 + n) for n in range(5)]) is None
    assert len(guard) == 3
    assert guard.floor == NOW - 10 + 1
    assert guard.seen("id-00000000", NOW - 10) is ReplayVerdict.EXPIRED


SECRET = "batch-test-secret-key-base-at-least-32-chars"


def _line(message_id: str, **changes: Any) -> bytes:
    data: dict[str, Any] = {
        "v": 1,
        "id": message_id,
        "instance": "ex_esdb_health",
        "topic": "cluster:health",
        "tag": "node_health_updated",
        "node": "node1@host",
        "ts": TS,
        "payload": {"status": "healthy", "timestamp": TS},
    }
    data.update(changes)
    return json.dumps(data).encode()


def _verifier() -> tuple[Verifier, ReplayGuard, list[RejectReason]]:
    counted: list[RejectReason] = []
    guard = _guard()
    verifier = Verifier(
        Keyring.from_secrets(SECRET),
        guard,
        window_seconds=WINDOW,
        max_bytes=1 << 20,
        count_rejection=counted.append,
    )
    return verifier, guard, counted


def test_a_good_batch_is_accepted_and_its_ids_remembered() -> None:
    """Every envelope of a good batch comes back, in order, and its ids are remembered."""
    verifier, guard, counted = _verifier()
    result = verifier.verify_batch([_line(f"msg-{n:08d}") for n in range(3)])
    assert isinstance(result, list)
    assert [e.id for e in result] == ["msg-00000000", "msg-00000001", "msg-00000002"]
    assert all(isinstance(e, Envelope) for e in result)
    assert len(guard) == 3
    assert counted == []


@pytest.mark.parametrize(
    ("lines", "reason", "field"),
    [
        # A replay before a malformed line: the replay (line 2) is reported.
        (
            [_line("msg-00000001"), _line("msg-00000001"), b"{nope"],
            RejectReason.REPLAYED,
            "line 2: id",
        ),
        # A malformed line before a replay: the malformed line (2) is reported.
        (
            [_line("msg-00000001"), _line("msg-00000002", v=2), _line("msg-00000001")],
            RejectReason.MALFORMED,
            "line 2: v",
        ),
        # An id accepted before, then a bad payload: the replay (line 1) comes first.
        (
            [_line("msg-known"), _line("msg-00000003", payload={"status": "fine"})],
            RejectReason.REPLAYED,
            "line 1: id",
        ),
        # A stale timestamp after good lines.
        (
            [_line("msg-00000004"), _line("msg-00000005", ts="2027-01-15T07:00:00.000Z")],
            RejectReason.EXPIRED,
            "line 2: ts",
        ),
    ],
    ids=["replay-then-malformed", "malformed-then-replay", "known-then-invalid", "expired"],
)
def test_a_bad_batch_reports_the_first_line_at_fault_and_remembers_nothing(
    lines: list[bytes], reason: RejectReason, field: str
) -> None:
    """The first bad line in order is reported (field prefixed by its line); no id is kept."""
    verifier, guard, counted = _verifier()
    guard.check("msg-known", NOW)
    result = verifier.verify_batch(lines)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (reason, field)
    assert counted == [reason]
    assert len(guard) == 1


def test_a_refused_batch_can_be_corrected_and_sent_again() -> None:
    """After a refusal the good lines of the batch are still fresh."""
    verifier, _, _ = _verifier()
    good = [_line("msg-00000001"), _line("msg-00000002")]
    assert isinstance(verifier.verify_batch([*good, b"{nope"]), Rejection)
    result = verifier.verify_batch(good)
    assert isinstance(result, list)
    assert len(result) == 2


def test_a_judged_batch_is_refused_at_admission_when_a_copy_was_admitted_meanwhile() -> None:
    """judge_batch, then another batch holding one of its ids is admitted, then admit: the
    copy is refused as replayed (the first batch's ids are looked up again)."""
    verifier, guard, counted = _verifier()
    judged = verifier.judge_batch([_line("msg-00000001"), _line("msg-00000002")])
    assert isinstance(judged, list)
    assert isinstance(verifier.verify_batch([_line("msg-00000002")]), list)
    result = verifier.admit(judged)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (RejectReason.REPLAYED, "line 2: id")
    assert len(guard) == 1
    assert counted == [RejectReason.REPLAYED]


def test_a_judged_batch_is_admitted_whole() -> None:
    """judge_batch then admit of the same batch remembers every id of it."""
    verifier, guard, _ = _verifier()
    judged = verifier.judge_batch([_line(f"msg-{n:08d}") for n in range(3)])
    assert isinstance(judged, list)
    assert verifier.admit(judged) is judged
    assert len(guard) == 3
    assert isinstance(verifier.verify_batch([_line("msg-00000001")]), Rejection)


def test_a_batch_refused_between_judging_and_admitting_leaves_no_id_remembered() -> None:
    """verify_batch returns what ``refuse`` answered for the judged batch and remembers none of
    its ids, so the same batch is taken when sent again (ingest's 503)."""
    verifier, guard, counted = _verifier()
    lines = [_line(f"msg-{n:08d}") for n in range(3)]
    asked: list[list[str]] = []

    def congested(judged: list[Envelope]) -> str:
        asked.append([envelope.id for envelope in judged])
        return "busy"

    assert verifier.verify_batch(lines, refuse=congested) == "busy"
    assert asked == [["msg-00000000", "msg-00000001", "msg-00000002"]]
    assert (len(guard), counted) == (0, [])
    result = verifier.verify_batch(lines, refuse=lambda judged: None)
    assert isinstance(result, list)
    assert len(guard) == 3


def test_a_batch_refused_between_judging_and_admitting_is_let_go() -> None:
    """Once ``refuse`` turns a judged batch away, the verifier keeps none of it: ingest refuses
    the largest batches so (413 for one no subscriber's queue holds), and their envelopes were
    held until the next batch came."""
    verifier, _, _ = _verifier()
    checks = {"disk": "d" * 2_000}
    payload = {"status": "healthy", "timestamp": TS, "checks": checks}
    lines = [_line(f"msg-{n:08d}", payload=payload) for n in range(500)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert verifier.verify_batch(lines, refuse=lambda judged: "too large") == "too large"
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 100_000, f"{kept} bytes kept of a refused batch of 1 MB"


async def test_publish_verified_delivers_in_order_and_counts_per_instance_and_tag(
    make_bus: BusFactory,
) -> None:
    """Ingested envelopes reach subscribers in order; published_total counts each (pubsub, tag)."""
    kit = make_bus()
    got: list[str] = []
    kit.bus.subscribe("recorder", lambda envelope: got.append(envelope.id))
    await kit.bus.start()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    alert = {
        "severity": "warning",
        "category": "system",
        "title": "t",
        "description": "d",
        "source": "s",
        "timestamp": now,
    }
    lines = [
        _line("msg-00000001", ts=now),
        _line("msg-00000002", ts=now, instance="ex_esdb_alerts", tag="system_alert", payload=alert),
        _line("msg-00000003", ts=now),
    ]
    envelopes = kit.verifier.verify_batch(lines)
    assert isinstance(envelopes, list)
    assert kit.bus.publish_verified(envelopes) == 3
    await async_wait_until(lambda: len(got) == 3, what="three deliveries")
    assert got == ["msg-00000001", "msg-00000002", "msg-00000003"]
    published = "exesdb_bus_published_total"
    assert kit.sample(published, pubsub="ex_esdb_health", tag="node_health_updated") == 2
    assert kit.sample(published, pubsub="ex_esdb_alerts", tag="system_alert") == 1


def _at_once(body: bytes) -> DecodedBatch | None:
    """``body``'s lines cut and decoded in one go, as ingest did before it decoded in steps."""
    split = body.split(b"\n")
    lines = [line for line in split if line and not line.isspace()]
    numbers = [n for n, line in enumerate(split, 1) if line and not line.isspace()]
    return decode_lines(lines, numbers, body) if lines else None


def _numbered(batch: DecodedBatch) -> list[int]:
    """The line number of each envelope of ``batch``."""
    numbers = batch.numbers
    return [numbers[n] if numbers else n + 1 for n in range(len(batch.envelopes))]


_ONE = _line("msg-00000000")
_MANY = (PIECE // len(_ONE)) * 3 + 5  # lines across four pieces
_SHORT = b"{}"


@pytest.mark.parametrize(
    "body",
    [
        b"\n".join(_line(f"msg-{n:08d}") for n in range(_MANY)),
        b"\n".join(_line(f"msg-{n:08d}") for n in range(_MANY)) + b"\n\n",
        b"\n".join(_line(f"msg-{n:08d}") for n in range(GROUP * 5 // 2)),
        # Blank lines, and a line in CRLF, on each side of where the pieces are cut.
        b"\n\n".join(_line(f"msg-{n:08d}") + (b"\r" if n % 97 == 0 else b"") for n in range(_MANY)),
        b"\n \n" + b"\n".join(_line(f"msg-{n:08d}") for n in range(_MANY)),
        b"\n" * (PIECE + 3) + _ONE,
        # Lines at fault after many good ones, in a later group, and beyond what is counted.
        b"\n".join([*(_line(f"msg-{n:08d}") for n in range(_MANY)), b"{nope", _ONE, b"[]"]),
        b"\n".join([_line("msg-00000001"), *[_SHORT] * (GROUP + 7), b"\n", _SHORT]),
        b"\n".join([_ONE, *[_SHORT] * (PROBLEMS_COUNTED + 5)]),
        b"\n".join([_ONE, b"\n" * (PIECE + 1), _SHORT, *[_SHORT + b" " * 90] * 3 * GROUP]),
        b"\n".join([_SHORT] * (PIECE // 2)),
        # A body of a group's bytes cut where its GROUP-th newline ends the body, or just before.
        b"".join(_line(f"msg-{n:08d}") + b"\n" for n in range(GROUP)),
        b"\n".join(_line(f"msg-{n:08d}") for n in range(GROUP + 1)),
        _ONE,
        b" \n\n",
        b"",
    ],
    ids=[
        "good",
        "good-then-blank",
        "good-groups",
        "blank-between",
        "blank-first",
        "blank-piece",
        "faults-late",
        "faults-across-groups",
        "faults-past-counted",
        "faults-after-blank-piece",
        "short-lines",
        "group-and-newline",
        "group-and-a-line",
        "one",
        "blank",
        "empty",
    ],
)
async def test_a_body_decoded_in_steps_is_decoded_as_its_lines_at_once(body: bytes) -> None:
    """An NDJSON body cut and decoded a piece at a time (blank lines and faults on either side of
    the cuts) gives the envelopes, sizes, line numbers and refusal of its lines at once."""
    stepped, whole = await decode_ndjson(body), _at_once(body)
    if whole is None or stepped is None:
        assert stepped is whole is None
        return
    assert stepped.envelopes == whole.envelopes
    assert _numbered(stepped) == _numbered(whole)
    assert stepped.fault == whole.fault
    if whole.fault is None:
        assert (stepped.sizes, stepped.lines) == (whole.sizes, whole.lines)


async def test_decoding_a_body_of_many_lines_lets_the_loop_run_between_steps() -> None:
    """A body of two million blank lines and an envelope is decoded with the loop run between
    its steps: a task waiting for its turn runs before the decoding ends."""
    turns = 0

    async def count() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)  # not a wait: one turn of the loop each

    counter = asyncio.create_task(count())
    await asyncio.sleep(0)  # the counter started: one turn
    try:
        before = turns
        decoded = await decode_ndjson(b"\n" * (32 * PIECE) + _ONE)
        assert turns > before
    finally:
        counter.cancel()
    assert decoded is not None
    assert decoded.fault is None
    assert _numbered(decoded) == [32 * PIECE + 1]
