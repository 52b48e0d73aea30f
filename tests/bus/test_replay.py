"""Replay protection: a time window plus a bounded memory of accepted ids (docs/messages.md)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.bus import ReplayGuard, ReplayVerdict, replay_file
from tests.bus.test_batches import check_pairs
from tests.support import FifoReleaser, ManualClock

WINDOW = 300.0
NOW = 1_800_000_000.0


def _guard(capacity: int = 1_000, clock: ManualClock | None = None) -> ReplayGuard:
    return ReplayGuard(WINDOW, capacity, clock or ManualClock(NOW))


def test_accepts_a_fresh_message() -> None:
    """A message stamped now with an unseen id is fresh and remembered."""
    guard = _guard()
    assert guard.check("id-00000001", NOW) is ReplayVerdict.FRESH
    assert len(guard) == 1


def test_rejects_a_replayed_id() -> None:
    """The same id accepted again inside the window is a replay."""
    guard = _guard()
    guard.check("id-00000001", NOW)
    assert guard.check("id-00000001", NOW) is ReplayVerdict.REPLAYED
    assert guard.check("id-00000001", NOW + 1) is ReplayVerdict.REPLAYED


@pytest.mark.parametrize("skew", [-WINDOW - 0.001, WINDOW + 0.001, -86_400.0, 86_400.0])
def test_rejects_a_timestamp_outside_the_window(skew: float) -> None:
    """A timestamp further than the window from now, in the past or the future, is expired."""
    guard = _guard()
    assert guard.check("id-00000001", NOW + skew) is ReplayVerdict.EXPIRED
    assert len(guard) == 0


@pytest.mark.parametrize("skew", [-WINDOW, WINDOW])
def test_accepts_a_timestamp_at_the_window_edge(skew: float) -> None:
    """A timestamp exactly one window away, either way, is still accepted."""
    assert _guard().check("id-00000001", NOW + skew) is ReplayVerdict.FRESH


def test_seen_judges_without_remembering() -> None:
    """``seen`` gives the verdict but does not remember the id (used for all-or-nothing batches)."""
    guard = _guard()
    assert guard.seen("id-00000001", NOW) is ReplayVerdict.FRESH
    assert guard.check("id-00000001", NOW) is ReplayVerdict.FRESH
    assert guard.seen("id-00000001", NOW) is ReplayVerdict.REPLAYED


def test_forgets_ids_after_the_window() -> None:
    """Once the window has passed an id is forgotten: memory shrinks, and its replay is expired."""
    clock = ManualClock(NOW)
    guard = _guard(clock=clock)
    for number in range(10):
        guard.check(f"id-{number:08d}", NOW)
    assert len(guard) == 10
    clock.now = NOW + WINDOW + 1
    assert guard.check("id-00000000", NOW) is ReplayVerdict.EXPIRED
    assert guard.check("id-later-01", clock.now) is ReplayVerdict.FRESH
    assert len(guard) == 1


def test_memory_is_bounded_by_its_capacity() -> None:
    """However many messages arrive inside the window, at most ``capacity`` ids are kept."""
    clock = ManualClock(NOW)
    guard = _guard(capacity=50, clock=clock)
    for number in range(1_000):
        clock.now = NOW + number * 0.01
        assert guard.check(f"id-{number:08d}", clock.now) is ReplayVerdict.FRESH
    assert len(guard) == 50


def test_a_full_memory_shrinks_the_window_so_a_forgotten_id_is_still_refused() -> None:
    """When ids must be forgotten early, their timestamps and older ones are refused as expired.

    The accepted window shrinks to the age of the oldest id still remembered, so a replay of an
    id dropped from the full memory can never slip through as fresh.
    """
    clock = ManualClock(NOW)
    guard = _guard(capacity=3, clock=clock)
    stamps = [NOW + step for step in range(5)]
    clock.now = stamps[-1]
    for number, stamp in enumerate(stamps):
        assert guard.check(f"id-{number:08d}", stamp) is ReplayVerdict.FRESH
    assert len(guard) == 3
    # ids 0 and 1 were forgotten early; their replays are refused.
    assert guard.check("id-00000000", stamps[0]) is ReplayVerdict.EXPIRED
    assert guard.check("id-00000001", stamps[1]) is ReplayVerdict.EXPIRED
    assert guard.floor == stamps[1]
    # So is any new message not newer than the floor, while newer ones pass.
    assert guard.check("id-new-0001", stamps[1]) is ReplayVerdict.EXPIRED
    assert guard.check("id-new-0002", stamps[1] + 0.001) is ReplayVerdict.FRESH
    # Remembered ids are still refused.
    assert guard.check("id-00000004", stamps[4]) is not ReplayVerdict.FRESH


def test_the_floor_is_the_newest_forgotten_timestamp_even_out_of_order() -> None:
    """Ids accepted out of timestamp order never let a forgotten id back in."""
    clock = ManualClock(NOW + 10)
    guard = _guard(capacity=2, clock=clock)
    guard.check("id-late-0001", NOW + 9)  # accepted first, stamped late
    guard.check("id-early-001", NOW + 1)
    guard.check("id-mid-00001", NOW + 5)  # evicts id-late
    assert guard.check("id-late-0001", NOW + 9) is ReplayVerdict.EXPIRED
    assert guard.floor == NOW + 9


def test_an_evicted_message_dated_ahead_never_lifts_the_floor_above_now() -> None:
    """A message dated ahead of now (within the window) that a full memory evicts keeps the floor
    at or below now: current messages stay fresh, and no forgotten id comes back as fresh."""
    clock = ManualClock(NOW)
    guard = _guard(capacity=3, clock=clock)
    assert guard.check("id-ahead-01", NOW + 200) is ReplayVerdict.FRESH
    for number in range(1, 6):
        clock.now = NOW + number
        assert guard.check(f"id-{number:08d}", clock.now) is ReplayVerdict.FRESH
    assert guard.floor <= clock.now
    assert guard.check("id-current", clock.now) is ReplayVerdict.FRESH
    assert check_pairs(guard, [("id-batch-01", clock.now), ("id-batch-02", clock.now)]) is None
    # Every id forgotten so far is refused, the one dated ahead still as a replay.
    for number in range(1, 6):
        assert guard.seen(f"id-{number:08d}", NOW + number) is not ReplayVerdict.FRESH
    assert guard.seen("id-ahead-01", NOW + 200) is ReplayVerdict.REPLAYED
    assert len(guard) == 3


def test_ids_dated_ahead_go_once_they_fill_the_memory_and_the_earliest_first() -> None:
    """Only when ids dated ahead fill the whole memory is one of them forgotten: the earliest,
    and its replay is refused."""
    clock = ManualClock(NOW)
    guard = _guard(capacity=2, clock=clock)
    assert check_pairs(guard, [("id-far-0001", NOW + 90), ("id-near-001", NOW + 30)]) is None
    assert guard.check("id-mid-0001", NOW + 60) is ReplayVerdict.FRESH
    assert guard.floor == NOW + 30
    assert guard.check("id-near-001", NOW + 30) is ReplayVerdict.EXPIRED
    assert guard.check("id-far-0001", NOW + 90) is ReplayVerdict.REPLAYED
    assert guard.check("id-mid-0001", NOW + 60) is ReplayVerdict.REPLAYED


def test_forget_frees_the_place_of_each_id_it_forgets() -> None:
    """Forgotten ids no longer count against the capacity: the ids remembered with them stay
    remembered, the floor stays where it was, and a forgotten one is fresh again."""
    clock = ManualClock(NOW + 10)
    guard = _guard(capacity=3, clock=clock)
    assert guard.check("id-kept-001", NOW + 1) is ReplayVerdict.FRESH
    assert check_pairs(guard, [("id-undone-1", NOW + 2), ("id-undone-2", NOW + 20)]) is None
    guard.forget(["id-undone-1", "id-undone-2", "id-unknown"])
    assert len(guard) == 1
    assert guard.check("id-other-01", NOW + 3) is ReplayVerdict.FRESH
    assert guard.check("id-other-02", NOW + 4) is ReplayVerdict.FRESH
    assert guard.floor == float("-inf")  # nothing evicted: three ids, three places
    assert guard.check("id-kept-001", NOW + 1) is ReplayVerdict.REPLAYED
    assert guard.check("id-undone-1", NOW + 2) is ReplayVerdict.FRESH  # evicts id-kept-001
    assert guard.check("id-kept-001", NOW + 1) is ReplayVerdict.EXPIRED
    assert guard.check("id-other-01", NOW + 3) is ReplayVerdict.REPLAYED
    # Past the window every id goes, each once, without error.
    clock.now = NOW + 10 + WINDOW + 1
    assert guard.check("id-late-001", clock.now) is ReplayVerdict.FRESH
    assert len(guard) == 1


@pytest.mark.parametrize("capacity", [0, -1])
def test_refuses_a_capacity_below_one(capacity: int) -> None:
    """A guard must be able to remember at least one id."""
    with pytest.raises(ValueError, match="capacity"):
        ReplayGuard(WINDOW, capacity)


def test_a_forgotten_id_is_fresh_again_and_memory_stays_consistent() -> None:
    """forget() lets a refused batch's ids in again; eviction and expiry still protect them."""
    clock = ManualClock(1_000.0)
    guard = ReplayGuard(60, 3, clock)
    assert guard.check("a", 1_000.0) is ReplayVerdict.FRESH
    assert guard.check("b", 1_001.0) is ReplayVerdict.FRESH
    guard.forget(["a", "never-seen"])
    assert guard.check("a", 1_000.0) is ReplayVerdict.FRESH
    assert guard.check("b", 1_001.0) is ReplayVerdict.REPLAYED
    for number, name in enumerate(("c", "d", "e"), start=2):
        assert guard.check(name, 1_000.0 + number) is ReplayVerdict.FRESH
    # "a" was evicted along the way; its timestamp is under the floor, so it stays refused.
    assert guard.check("a", 1_000.0) is not ReplayVerdict.FRESH
    clock.now = 1_100.0  # past the window: the rest is forgotten without error
    assert guard.check("z", 1_100.0) is ReplayVerdict.FRESH
    assert len(guard) == 1


def _one_at_a_time(
    guard: ReplayGuard, batch: list[tuple[str, float]]
) -> tuple[int, ReplayVerdict] | None:
    """The first message of ``batch`` that is not fresh, judging each in turn (a repeat within
    the batch is a replay)."""
    ids: set[str] = set()
    for index, (message_id, timestamp) in enumerate(batch):
        verdict = guard.seen(message_id, timestamp)
        if verdict is ReplayVerdict.FRESH and message_id in ids:
            verdict = ReplayVerdict.REPLAYED
        if verdict is not ReplayVerdict.FRESH:
            return index, verdict
        ids.add(message_id)
    return None


_ids = st.sampled_from([f"id-{n:08d}" for n in range(12)])
_times = st.sampled_from([-WINDOW - 1, -WINDOW, -WINDOW + 1e-3, -5.0, 0.0, 5.0, WINDOW, WINDOW + 1])


@settings(max_examples=300, deadline=None)
@given(
    known=st.lists(st.tuples(_ids, _times), max_size=6),
    batch=st.lists(st.tuples(_ids, _times), max_size=8),
    capacity=st.integers(1, 8),
)
def test_a_batch_is_judged_as_its_messages_one_at_a_time(
    known: list[tuple[str, float]], batch: list[tuple[str, float]], capacity: int
) -> None:
    """check_batch finds the first stale message and remembers ids as one at a time would."""
    guard, twin = _guard(capacity), _guard(capacity)
    for message_id, skew in known:
        guard.check(message_id, NOW + skew)
        twin.check(message_id, NOW + skew)
    messages = [(message_id, NOW + skew) for message_id, skew in batch]
    expected = _one_at_a_time(twin, messages)
    ids, stamps = [m for m, _ in messages], [t for _, t in messages]
    assert guard.judge_batch(ids, stamps) == expected
    assert guard.check_batch(ids, stamps) == expected
    remembered = twin.remembered()
    if expected is None:
        remembered = _remembered_one_at_a_time(remembered, messages, capacity)
    assert guard.remembered() == remembered


def _remembered_one_at_a_time(
    before: tuple[list[tuple[str, float]], float], batch: list[tuple[str, float]], capacity: int
) -> tuple[list[tuple[str, float]], float]:
    """The oracle: what a guard remembering ``before`` (``remembered()``) remembers once it has
    remembered each of ``batch`` in turn, as an accepted batch must, without judging it again
    (a full memory could raise the floor past a later one: check() would refuse it). By the
    rule ReplayGuard states, with its clock standing at NOW: ids in acceptance order, those
    dated ahead of now after them by timestamp; past the capacity the first goes, and the
    floor rises to its timestamp while that is inside the window."""
    held, floor = before
    dated = [entry for entry in held if entry[1] <= NOW]
    ahead = [entry for entry in held if entry[1] > NOW]
    for message_id, timestamp in batch:
        if timestamp <= NOW:
            dated.append((message_id, timestamp))
        else:
            ahead.append((message_id, timestamp))
            ahead.sort(key=lambda entry: (entry[1], entry[0]))
        if len(dated) + len(ahead) > capacity:
            _, forgotten = dated.pop(0) if dated else ahead.pop(0)
            if forgotten + WINDOW >= NOW:
                floor = max(floor, forgotten)
    return dated + ahead, floor


_steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 1.0, 50.0, WINDOW]),  # the clock moves on by
        st.lists(st.tuples(_ids, st.sampled_from([-WINDOW, -10.0, 0.0, 10.0, WINDOW])), max_size=3),
        st.booleans(),  # then the batch is forgotten again
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(steps=_steps, capacity=st.integers(1, 4))
def test_no_id_is_taken_twice_and_the_floor_passes_now_only_when_ids_ahead_fill_the_memory(
    steps: list[tuple[float, list[tuple[str, float]], bool]], capacity: int
) -> None:
    """Whatever the order and the dates, an id taken (and not forgotten) is never fresh again,
    and the floor passes now only once ``capacity`` ids taken were dated ahead of now."""
    clock = ManualClock(NOW)
    guard = _guard(capacity, clock)
    taken: dict[str, float] = {}
    ever: list[float] = []
    for moved, batch, undone in steps:
        clock.now += moved
        messages = [(message_id, clock.now + skew) for message_id, skew in batch]
        if check_pairs(guard, messages) is None and messages:
            taken.update(messages)
            ever.extend(timestamp for _, timestamp in messages)
            if undone:
                guard.forget(message_id for message_id, _ in messages)
                for message_id, _ in messages:
                    del taken[message_id]
        assert len(guard) <= capacity
        for message_id, timestamp in taken.items():
            assert guard.seen(message_id, timestamp) is not ReplayVerdict.FRESH
        ahead = sum(timestamp > clock.now for timestamp in ever)
        assert guard.floor <= clock.now or ahead >= capacity


def test_a_judged_batch_is_admitted_without_looking_its_ids_up_again() -> None:
    """check_batch given the generation judge_batch saw remembers the batch: no id came since."""
    guard = _guard()
    ids, stamps = ["id-00000001", "id-00000002"], [NOW, NOW]
    judged_at = guard.generation
    assert guard.judge_batch(ids, stamps) is None
    assert guard.check_batch(ids, stamps, judged_at) is None
    assert guard.check("id-00000002", NOW) is ReplayVerdict.REPLAYED


def test_a_judged_batch_is_refused_when_a_copy_was_admitted_since() -> None:
    """Ids remembered between judging and admitting are looked up again: a copy is a replay."""
    guard = _guard()
    ids, stamps = ["id-00000001", "id-00000002"], [NOW, NOW]
    judged_at = guard.generation
    assert guard.judge_batch(ids, stamps) is None
    assert guard.check("id-00000002", NOW) is ReplayVerdict.FRESH
    assert guard.check_batch(ids, stamps, judged_at) == (1, ReplayVerdict.REPLAYED)
    assert len(guard) == 1


def test_a_judged_batch_that_expired_before_admission_is_refused() -> None:
    """The window is checked again at admission, even for a batch judged just before."""
    clock = ManualClock(NOW)
    guard = _guard(clock=clock)
    judged_at = guard.generation
    assert guard.judge_batch(["id-00000001"], [NOW - WINDOW + 1]) is None
    clock.now += 2
    assert guard.check_batch(["id-00000001"], [NOW - WINDOW + 1], judged_at) == (
        0,
        ReplayVerdict.EXPIRED,
    )


def test_admission_checks_the_times_it_is_given_not_those_judged() -> None:
    """check_batch reads the window from the timestamps passed to it, even with the ids and
    generation of a batch judged fresh: an expired time there is refused."""
    guard = _guard()
    ids = ["id-00000001", "id-00000002"]
    judged_at = guard.generation
    assert guard.judge_batch(ids, [NOW, NOW]) is None
    assert guard.check_batch(ids, [NOW, NOW - WINDOW - 1], judged_at) == (
        1,
        ReplayVerdict.EXPIRED,
    )
    assert len(guard) == 0


def test_restore_remembers_what_another_guard_held_inside_the_window() -> None:
    """What one guard remembered (an id dated ahead too) is refused as replayed by another that
    restored it; an id whose time has left the window by then is dropped, not remembered."""
    clock = ManualClock(NOW)
    first = _guard(clock=clock)
    first.check("id-old-0001", NOW - 250)
    first.check("id-now-0001", NOW)
    first.check("id-ahead-01", NOW + 100)
    held, floor = first.remembered()
    clock.now = NOW + 60
    second = _guard(clock=clock)
    assert second.restore(held, floor) == 2
    assert second.check("id-now-0001", NOW) is ReplayVerdict.REPLAYED
    assert second.check("id-ahead-01", NOW + 100) is ReplayVerdict.REPLAYED
    assert second.check("id-old-0001", NOW - 250) is ReplayVerdict.EXPIRED


def test_restore_keeps_the_floor_a_full_memory_raised() -> None:
    """Ids a full memory forgot stay refused in the guard that restores it: the floor comes
    along while it is inside the window."""
    clock = ManualClock(NOW)
    first = _guard(capacity=2, clock=clock)
    for n in range(3):
        first.check(f"id-{n:08d}", NOW - 10 + n)
    held, floor = first.remembered()
    second = _guard(capacity=2, clock=clock)
    second.restore(held, floor)
    assert second.floor == floor == NOW - 10
    assert second.check("id-00000000", NOW - 10) is ReplayVerdict.EXPIRED


def test_the_replay_file_is_written_for_its_user_only_and_read_back(tmp_path: Path) -> None:
    """save writes the guard's ids to a file only its user reads (0600), and load remembers
    them in another guard: a copy is refused as replayed."""
    first = _guard()
    first.check("id-now-0001", NOW)
    replay_file.save(first, tmp_path)
    path = tmp_path / replay_file.FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = _guard()
    assert replay_file.load(second, tmp_path) == 1
    assert second.check("id-now-0001", NOW) is ReplayVerdict.REPLAYED


@pytest.mark.parametrize(
    "text",
    [
        "",  # torn by a crash while written
        "{not json",
        '{"v": 1, "ids": [["a", "b"]], "floor": 0}',
        json.dumps({"v": 2, "ids": [["id-now-0001", NOW]], "floor": 0}),  # a later format
    ],
)
def test_a_replay_file_that_cannot_be_read_is_logged_and_its_ids_forgotten(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A file torn, not JSON, with a value of the wrong kind or of another format version is
    set aside with a warning: nothing is remembered from it and the bridge starts."""
    (tmp_path / replay_file.FILE_NAME).write_text(text)
    guard = _guard()
    with caplog.at_level(logging.WARNING, "bridge.bus.replay_file"):
        assert replay_file.load(guard, tmp_path) == 0
    assert "its ids are forgotten" in caplog.text
    assert guard.check("id-now-0001", NOW) is ReplayVerdict.FRESH


@pytest.mark.parametrize(
    ("kind", "said"),
    [("FIFO", "a FIFO (named pipe), not a regular file"), ("directory", "Is a directory")],
)
def test_a_replay_file_that_is_no_file_is_set_aside_without_waiting_on_it(
    tmp_path: Path, kind: str, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A FIFO or a directory in the replay file's place is set aside at once with a warning
    saying what it is: a FIFO's open, waiting for a writer, held start-up and SIGTERM."""
    path = tmp_path / replay_file.FILE_NAME
    guard = _guard()
    with caplog.at_level(logging.WARNING, "bridge.bus.replay_file"):
        if kind == "FIFO":
            with FifoReleaser(path) as fifo:
                assert replay_file.load(guard, tmp_path) == 0
            assert fifo.released == 0
        else:
            path.mkdir()
            assert replay_file.load(guard, tmp_path) == 0
    assert f"ingest replay memory {path} not read ({said}): its ids are forgotten" in caplog.text


def test_no_replay_file_is_nothing_remembered(tmp_path: Path) -> None:
    """No file (the first start, or one after a crash that came before any stop) is silent."""
    assert replay_file.load(_guard(), tmp_path) == 0


def test_a_replay_file_the_disk_refuses_leaves_nothing_behind(tmp_path: Path) -> None:
    """A save on a full disk (its partial file on /dev/full) raises and leaves no partial file:
    the file of the stop before stays, and is what the next start reads."""
    before = _guard()
    before.check("id-now-0001", NOW)
    replay_file.save(before, tmp_path)
    partial = (tmp_path / replay_file.FILE_NAME).with_suffix(".partial")
    partial.symlink_to("/dev/full")
    after = _guard()
    after.check("id-now-0002", NOW)
    with pytest.raises(OSError, match="No space left on device"):
        replay_file.save(after, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [replay_file.FILE_NAME]
    guard = _guard()
    assert replay_file.load(guard, tmp_path) == 1
    assert guard.check("id-now-0001", NOW) is ReplayVerdict.REPLAYED


def test_a_partial_replay_file_a_stop_left_is_removed_at_start(tmp_path: Path) -> None:
    """A partial file left by a stop killed while it wrote (torn, empty) is not read: the start
    reads the file of the stop before and removes the partial one."""
    before = _guard()
    before.check("id-now-0001", NOW)
    replay_file.save(before, tmp_path)
    partial = (tmp_path / replay_file.FILE_NAME).with_suffix(".partial")
    partial.write_text('{"v": 1, "floor": 0, "ids": [["id-now-00')
    guard = _guard()
    assert replay_file.load(guard, tmp_path) == 1
    assert guard.check("id-now-0001", NOW) is ReplayVerdict.REPLAYED
    assert not partial.exists()


def test_a_replay_file_is_on_disk_before_it_takes_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save fsyncs the new file before renaming it over the old one, and the directory after:
    a power loss never leaves the name on a file whose bytes were not written."""
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        steps.append("fsync " + Path(os.readlink(f"/proc/self/fd/{descriptor}")).name)
        real_fsync(descriptor)

    def replace(source: str | Path, target: str | Path) -> None:
        steps.append(f"replace {Path(source).name}")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    guard = _guard()
    guard.check("id-now-0001", NOW)
    replay_file.save(guard, tmp_path)
    partial = Path(replay_file.FILE_NAME).with_suffix(".partial").name
    assert steps == [f"fsync {partial}", f"replace {partial}", f"fsync {tmp_path.name}"]
