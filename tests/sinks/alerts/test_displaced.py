"""An outbox file, or its state directory's lock, deleted or replaced under the open outbox."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bridge.sinks.alerts.database import OutboxDisplaced
from bridge.sinks.alerts.displaced import DisplacedOutbox
from bridge.sinks.alerts.escalation import Escalator
from bridge.sinks.alerts.housekeeping import Housekeeping
from bridge.sinks.alerts.index import AlertIndex
from bridge.sinks.alerts.metrics import AlertMetrics
from bridge.sinks.alerts.outbox import FILE_NAME, LOCK_NAME, Outbox
from bridge.sinks.alerts.pending import PendingConditions
from bridge.sinks.alerts.records import Escalated
from bridge.sinks.alerts.states import AlertStates
from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import T0, db, event
from tests.sinks.alerts.test_index import State, Store

__all__ = ["db"]  # the fixture, imported for the tests below


@pytest.fixture
def state_outbox(tmp_path: Path) -> Iterator[Outbox]:
    """An outbox opened in a state directory, as a bridge opens it (locked)."""
    outbox = Outbox.in_dir(tmp_path / "state")
    try:
        yield outbox
    finally:
        outbox.close()


def _replace(path: Path) -> None:
    """Another file in ``path``'s place, the first kept aside (so its inode is not reused)."""
    path.rename(path.with_name(path.name + ".aside"))
    path.write_bytes(b"")


def _moved_back(path: Path) -> None:
    """The state directory moved away and back again, unchanged."""
    folder = path.parent
    folder.rename(folder.with_name("away"))
    folder.with_name("away").rename(folder)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda state: None, None),
        (lambda state: shutil.rmtree(state), f"{FILE_NAME} was deleted (EXESDB_STATE_DIR"),
        (lambda state: (state / LOCK_NAME).unlink(), f"{LOCK_NAME} was deleted"),
        (lambda state: _replace(state / FILE_NAME), f"{FILE_NAME} was replaced by another"),
        (lambda state: _replace(state / LOCK_NAME), f"{LOCK_NAME} was replaced by another"),
        (lambda state: _moved_back(state / FILE_NAME), None),
    ],
    ids=["untouched", "folder-removed", "lock-deleted", "file-replaced", "lock-replaced", "back"],
)
def test_an_outbox_says_when_its_file_or_lock_is_no_longer_at_its_path(
    state_outbox: Outbox, change: Callable[[Path], object], said: str | None
) -> None:
    """``Outbox.displaced`` names the file deleted or replaced (another inode at its path), and
    is None while the outbox file and lock are the files at their paths."""
    change(state_outbox.path.parent)
    found = state_outbox.displaced()
    if said is None:
        assert found is None
    else:
        assert said in str(found)


def test_an_outbox_reads_its_lock_files_identity_once(
    state_outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock's descriptor names one file for good: ``displaced``, asked before every
    housekeeping pass, stats the two paths and reads nothing of the descriptor again."""
    read: list[int] = []
    fstat = os.fstat

    def counted(descriptor: int) -> os.stat_result:
        read.append(descriptor)
        return fstat(descriptor)

    monkeypatch.setattr(os, "fstat", counted)
    for _ in range(3):
        assert state_outbox.displaced() is None
    (state_outbox.path.parent / LOCK_NAME).unlink()
    assert f"{LOCK_NAME} was deleted" in str(state_outbox.displaced())
    assert read == []


def test_an_outbox_opened_without_the_lock_checks_its_file_alone(tmp_path: Path) -> None:
    """An outbox opened unlocked (``exesdb-bridge outbox``) minds only its own file."""
    locked = Outbox.in_dir(tmp_path)
    locked.close()  # leaves the lock file there, unheld
    outbox = Outbox(tmp_path / FILE_NAME)
    try:
        (tmp_path / LOCK_NAME).unlink()
        assert outbox.displaced() is None
        os.unlink(outbox.path)
        assert "was deleted" in str(outbox.displaced())
    finally:
        outbox.close()


async def test_a_displaced_outbox_is_logged_once_and_told_once_per_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Checked again and again, a file gone is logged once at ERROR, with what to do, and
    ``changed`` called once; back, once at INFO."""
    answers = iter([None, "gone", "gone", "gone", None, None])

    async def displaced() -> str | None:
        return next(answers)

    changes: list[str | None] = []
    watch = DisplacedOutbox(displaced, lambda: changes.append(watch.problem))
    with caplog.at_level(logging.INFO, "bridge.sinks.alerts.displaced"):
        problems = [await watch.check() for _ in range(6)]
    assert problems[0] is None
    assert problems[4:] == [None, None]
    assert problems[1] == problems[2] == problems[3] == changes[0]
    assert str(problems[1]).startswith("gone: ")
    assert "restart the bridge" in str(problems[1])
    assert changes == [problems[1], None]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", f"alerts: {problems[1]}"),
        ("INFO", "alerts: the alert outbox is the file at its path again"),
    ]


def test_changes_answered_for_that_went_to_a_removed_outbox_file_raise(
    state_outbox: Outbox,
) -> None:
    """The state directory removed before any check: a batch of alert events, an
    acknowledgement and a plan (Redis's ``commit``, tried a second time too) committed to the
    deleted file raise ``OutboxDisplaced`` naming it rather than return as stored; an
    escalation (answered to no one) goes on into the file held open, whose deliveries go on."""
    alerts = state_outbox.alerts
    alerts.apply([event()], T0)
    plan = alerts.plan([event("node_failure:n2")], T0)
    shutil.rmtree(state_outbox.path.parent)
    said = re.escape(f"{state_outbox.path} was deleted (EXESDB_STATE_DIR removed?)")
    with pytest.raises(OutboxDisplaced, match=said):
        alerts.apply([event("node_failure:n3")], T0)
    with pytest.raises(OutboxDisplaced, match=said):
        alerts.acknowledge("node_failure:n1", "ops", T0 + 1)
    for _ in range(2):
        with pytest.raises(OutboxDisplaced, match=said):
            alerts.commit(plan)
    assert alerts.escalate_due(T0 + 3600, 60) is not None


async def test_housekeeping_on_redis_leaves_the_catch_up_out_while_the_outbox_file_is_gone(
    state_outbox: Outbox, db: DbThread
) -> None:
    """On Redis, a change Redis took and the outbox committed to its file removed meanwhile
    raises ``OutboxDisplaced`` and leaves its note to catch up; while the file is gone a
    housekeeping pass does not store that note again (refused each time, it ended every pass
    before the gauges): it passes, and the gauges count the alert in the file held open."""

    # The lease left: a replica whose outbox file is gone gives it up.
    def held() -> bool:
        return False

    index = AlertIndex(
        State(Store(), "a"),
        alerts=state_outbox.alerts,
        queue=state_outbox.queue,
        db=db,
        clock=lambda: T0,
        limit=100,
    )
    states = AlertStates(
        state_outbox.alerts,
        db=db,
        index=index,
        max_open=100,
        resolve_after=300,
        stale_after=300,
        hold_seconds=0,
        remember_for=300,
        holding=held,
        monotonic=lambda: 0.0,
    )
    metrics = AlertMetrics(CollectorRegistry(), holds_work_queue=held)
    found: list[str | None] = []

    async def check_outbox() -> str | None:
        found.append(await db.call(state_outbox.displaced))
        return found[-1]

    async def escalate(now: float, after_seconds: float) -> list[Escalated]:
        return []

    housekeeping = Housekeeping(
        state_outbox,
        db=db,
        states=states,
        escalator=Escalator(
            escalate=escalate, after_seconds=60, publish=lambda *_: None, notify=lambda: None
        ),
        pending=PendingConditions(0, forget_after=60, max_conditions=10),
        metrics=metrics,
        labels={},
        holds_work_queue=held,
        changed=lambda: None,
        on_error=lambda: None,
        renotify_after=60,
        dead_letter_ttl=3600,
        wake=asyncio.Event(),
        clock=lambda: T0,
        sleep=lambda *_: asyncio.sleep(0),
        check_outbox=check_outbox,
    )
    shutil.rmtree(state_outbox.path.parent)
    with pytest.raises(OutboxDisplaced):
        await index.change(state_outbox.alerts.plan, [event()], T0)
    assert not index.caught_up
    await housekeeping.housekeep()
    await housekeeping.housekeep()
    assert found[-1] is not None
    assert "was deleted" in found[-1]
    assert metrics.active == {"critical": 1}
