"""How the alert sink stops: its queue drained within the stop deadline, then every part closed.

What the bus already queued for the sink reaches the outbox before it closes, within what is left
of the bridge's stop deadline (``EXESDB_SHUTDOWN_TIMEOUT_MS``) less a margin; on Redis the sink
first stops taking work-queue entries and after the drain gives the lease up. Then the bus handler
is stopped, the delivery workers end their attempts in flight within half of what is left, and
the poster, housekeeping, senders, the outbox's thread and the outbox close. A stop cancelled
(its deadline passed) still closes everything, at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Final

from bridge.bus import BatchSubscription, WorkQueueLease
from bridge.component import Deadline
from bridge.sinks.alerts.alertmanager import AlertmanagerPoster
from bridge.sinks.alerts.delivery import DeliveryWorker, WebhookSender
from bridge.sinks.alerts.housekeeping import Housekeeping
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.thread import DbThread

__all__ = ["close_parts", "drain"]

_logger = logging.getLogger(__name__)

# Kept from what is left of EXESDB_SHUTDOWN_TIMEOUT_MS for stopping the workers once the queue
# is drained (at most a fifth of it).
_CLOSE_MARGIN_SECONDS: Final = 1.0


async def drain(
    subscription: BatchSubscription,
    *,
    ready: bool,
    shutdown: Deadline,
    lease: WorkQueueLease | None,
    on_error: Callable[[], None],
) -> None:
    """Let ``subscription`` hand what it queued to the outbox within what is left of
    ``shutdown`` (at once unless the sink was ``ready``), then give ``lease`` up; ``on_error``
    counts a failure to give it up."""
    # Drain first: what the bus already queued for us reaches the outbox before it
    # closes. The HTTP listener closed before us, so the backlog is bounded; so is the
    # wait: what the stages before us left, less a margin for what follows.
    # A start that failed (no outbox) never becomes ready: the handler would wait on it
    # until the deadline, so what is queued is left at once.
    left = shutdown.left() if ready else 0.0
    # On Redis: stop taking work-queue entries first (what is not taken yet goes to the
    # next holder), then drain (each change also kept in Redis), then give the lease up
    # at once.
    if lease is not None:
        await lease.stop_reading()
    await subscription.stop(left - min(_CLOSE_MARGIN_SECONDS, left / 5))
    if lease is not None:
        try:
            # Within half of what is left: the workers and the outbox close after.
            await lease.release(shutdown.left() / 2)
        except Exception:
            on_error()
            _logger.exception("alerts: giving the work-queue lease up failed")


async def close_parts(
    cancelled: bool,
    *,
    subscription: BatchSubscription,
    shutdown: Deadline,
    workers: Collection[DeliveryWorker],
    alertmanager: AlertmanagerPoster | None,
    housekeeping: Housekeeping | None,
    senders: Collection[WebhookSender],
    db: DbThread,
    outbox: Outbox | None,
) -> None:
    """Stop the workers and close the outbox; ``cancelled``: the stop's deadline passed
    already (the caller's cancellation goes on), so everything closes at once."""
    # Attempts in flight end within half of what is left of the deadline (less the margin
    # for the outbox): each recorded is one a receiver that took it is not sent again, and
    # the stages closing after this sink (OTLP's last export, the bus) keep the other half.
    left = shutdown.left()
    loop = asyncio.get_running_loop()
    until = loop.time() + min(left / 2, left - min(_CLOSE_MARGIN_SECONDS, left / 5))
    at_once = cancelled
    try:
        # The bus handler first, whatever it was doing: cancelled mid-drain (or before it),
        # it would still be storing a batch, and retry it, on the outbox closed below. Its
        # batch then is not acknowledged (on Redis the work queue hands it back at the next
        # start) and the stop says how many messages it left.
        await subscription.stop(0.0)
    except asyncio.CancelledError:
        at_once = True
    for worker in workers:
        worker.stop()
    try:
        for worker in workers:
            await worker.aclose(0.0 if at_once else until - loop.time())
    except asyncio.CancelledError:
        # The stop's deadline passed meanwhile: the rest closes at once (the outbox too,
        # without waiting for its thread), then the cancellation goes on.
        at_once = True
        for worker in workers:
            await worker.aclose()
    if alertmanager is not None:
        await alertmanager.aclose()
    if housekeeping is not None:
        await housekeeping.aclose()
    for sender in senders:
        await sender.aclose()
    try:
        if not at_once:
            await db.aclose()  # what is queued on it finishes first
    finally:
        # Cancelled while waiting for it: committed transactions are on disk (each call
        # is one), and a call queued after this one fails on the closed file. One under
        # way is not waited for here, nor on another thread: it closes the file as it ends
        # (``Database.close``), and the thread ends after it.
        db.close(wait=False)
        if outbox is not None:
            outbox.close()
    if at_once and not cancelled:
        raise asyncio.CancelledError
