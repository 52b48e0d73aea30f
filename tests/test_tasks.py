"""Stopping background tasks: every task ended, and a cancellation of the caller never swallowed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from bridge.tasks import cancel_and_wait


class Worker:
    """A background task that hangs until cancelled, then unwinds as its test says."""

    def __init__(self, unwind: str = "at once", failure: Exception | None = None) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.unwind = asyncio.Event()  # set: a "stubborn" unwinding ends
        self._how = unwind
        self._failure = failure
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()  # never set: work that goes on until cancelled
        except asyncio.CancelledError:
            self.cancelled.set()
            try:
                if self._how == "slowly":  # until cancelled again
                    await asyncio.Event().wait()
                elif self._how == "stubbornly":  # until told, however often it is cancelled
                    while not self.unwind.is_set():
                        with contextlib.suppress(asyncio.CancelledError):
                            await self.unwind.wait()
            finally:
                if self._failure is not None:
                    raise self._failure from None
            raise


MakeWorker = Callable[..., Worker]


@pytest.fixture
async def make_worker() -> AsyncIterator[MakeWorker]:
    """Makes workers; none is left unwinding at the end, even after a broken stop."""
    made: list[Worker] = []

    def make(unwind: str = "at once", failure: Exception | None = None) -> Worker:
        made.append(Worker(unwind, failure))
        return made[-1]

    yield make
    for worker in made:
        worker.unwind.set()


async def _started(*workers: Worker) -> None:
    for worker in workers:
        await asyncio.wait_for(worker.started.wait(), 10)


async def test_a_plain_stop_cancels_every_task_and_returns_once_all_ended(
    make_worker: MakeWorker,
) -> None:
    """Every task is cancelled and has ended when the call returns, which raises nothing."""
    workers = [make_worker(), make_worker(unwind="stubbornly")]
    await _started(*workers)
    stopping = asyncio.get_running_loop().create_task(cancel_and_wait(*(w.task for w in workers)))
    await asyncio.wait_for(workers[1].cancelled.wait(), 10)
    assert not stopping.done()  # the second task is still unwinding
    workers[1].unwind.set()
    await asyncio.wait_for(stopping, 10)
    assert all(worker.task.cancelled() for worker in workers)


async def test_tasks_already_ended_or_none_at_all_are_no_error(make_worker: MakeWorker) -> None:
    """No task, or tasks that ended before (returned, or cancelled), stop at once and quietly."""
    await cancel_and_wait()
    finished = asyncio.get_running_loop().create_task(asyncio.sleep(0))  # a task that returns
    await finished
    cancelled = make_worker()
    await _started(cancelled)
    cancelled.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled.task
    await cancel_and_wait(finished, cancelled.task)


async def test_a_deadline_around_the_stop_fires_while_a_task_unwinds(
    make_worker: MakeWorker,
) -> None:
    """A deadline that passes while a cancelled task unwinds raises TimeoutError (it is not
    swallowed as the task's own cancellation), and the task has ended by then."""
    worker = make_worker(unwind="slowly")
    await _started(worker)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await cancel_and_wait(worker.task)
    assert worker.task.done()


async def test_a_caller_cancelled_while_a_task_unwinds_ends_cancelled_after_it(
    make_worker: MakeWorker,
) -> None:
    """A caller cancelled while a task takes its time to unwind still waits for it to end
    (nothing is left running), then ends cancelled, not as if the stop had finished."""
    worker = make_worker(unwind="stubbornly")
    await _started(worker)
    stopping = asyncio.get_running_loop().create_task(cancel_and_wait(worker.task))
    await asyncio.wait_for(worker.cancelled.wait(), 10)
    stopping.cancel()
    await asyncio.sleep(0)  # the caller takes its cancellation while the task unwinds
    assert not stopping.done()
    worker.unwind.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(stopping, 10)
    assert stopping.cancelled()
    assert worker.task.done()


async def test_a_stop_run_because_its_caller_was_cancelled_returns_normally(
    make_worker: MakeWorker,
) -> None:
    """A caller cancelled before the stop (SIGTERM: it caught the cancellation and closes) is
    not told of that cancellation again."""
    worker = make_worker(unwind="stubbornly")
    await _started(worker)

    serving = asyncio.Event()

    async def shut_down() -> None:
        try:
            serving.set()
            await asyncio.Event().wait()  # never set: serves until cancelled
        except asyncio.CancelledError:
            await cancel_and_wait(worker.task)

    running = asyncio.get_running_loop().create_task(shut_down())
    await asyncio.wait_for(serving.wait(), 10)
    running.cancel()
    await asyncio.wait_for(worker.cancelled.wait(), 10)
    worker.unwind.set()
    await asyncio.wait_for(running, 10)
    assert worker.task.cancelled()


async def test_a_tasks_own_failure_is_raised_once_every_task_ended(make_worker: MakeWorker) -> None:
    """A task that ends with an error of its own (not the cancellation) has it raised to the
    caller, the first such task's, once every task has ended: a bug is not hidden."""
    first, second = ValueError("first"), ValueError("second")
    workers = [
        make_worker(failure=first),
        make_worker(unwind="stubbornly"),
        make_worker(failure=second),
    ]
    await _started(*workers)
    stopping = asyncio.get_running_loop().create_task(cancel_and_wait(*(w.task for w in workers)))
    await asyncio.wait_for(workers[1].cancelled.wait(), 10)
    assert not stopping.done()
    workers[1].unwind.set()
    with pytest.raises(ValueError, match="first"):
        await asyncio.wait_for(stopping, 10)
    assert all(worker.task.done() for worker in workers)


async def test_a_cancelled_caller_ends_cancelled_even_when_a_task_failed(
    make_worker: MakeWorker,
) -> None:
    """The caller's cancellation wins over a task's own error, which it carries as its cause."""
    failure = ValueError("failed while unwinding")
    worker = make_worker(unwind="slowly", failure=failure)
    await _started(worker)
    with pytest.raises(TimeoutError) as raised:
        async with asyncio.timeout(0.1):
            await cancel_and_wait(worker.task)
    assert raised.value.__cause__ is not None
    assert raised.value.__cause__.__cause__ is failure


async def test_a_stop_within_a_bound_returns_the_tasks_still_unwinding_at_its_end(
    make_worker: MakeWorker,
) -> None:
    """Given ``within``, the call returns once that has passed, with the tasks still unwinding
    (cancelled, left to end on their own); those that ended are not among them."""
    quick, stubborn = make_worker(), make_worker(unwind="stubbornly")
    await _started(quick, stubborn)
    left = await asyncio.wait_for(cancel_and_wait(quick.task, stubborn.task, within=0.1), 10)
    assert left == {stubborn.task}
    assert quick.task.cancelled()
    stubborn.unwind.set()
    await asyncio.wait_for(asyncio.wait({stubborn.task}), 10)
    assert stubborn.task.cancelled()


async def test_a_caller_cancelled_within_the_bound_passes_it_on_and_ends_cancelled(
    make_worker: MakeWorker,
) -> None:
    """Cancelled while it waits within a bound, the caller passes the cancellation on (a task
    unwinding until cancelled again ends) and then ends cancelled."""
    worker = make_worker(unwind="slowly")
    await _started(worker)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await cancel_and_wait(worker.task, within=10)
    assert worker.task.done()
