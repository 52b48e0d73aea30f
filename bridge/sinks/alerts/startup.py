"""What the alert sink checks and tells as it starts: its outbox, receivers and leftover rows.

Before the bus starts the outbox is opened in ``EXESDB_STATE_DIR`` and the receivers are read,
keyed as the outbox keys them: either failing is a ConfigError naming the input. Then each
configured receiver claims its queue and the rows kept under its older keys, what waits for a
receiver no longer configured is dead-lettered, and the log says what the sink started with.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bridge.errors import ConfigError
from bridge.receiver_keys import ReceiverKeys
from bridge.settings import Settings
from bridge.sinks.alerts.alertmanager import AlertmanagerPoster
from bridge.sinks.alerts.dead_letters import DeadLetters
from bridge.sinks.alerts.outbox import Outbox, unopenable_problem
from bridge.sinks.alerts.queue import BuildPayloads, DeliveryQueue
from bridge.sinks.alerts.records import OutboxDepth
from bridge.sinks.alerts.thread import DbThread

if TYPE_CHECKING:  # the receivers file's models: imported by Settings when it has receivers
    from bridge.receivers import AlertmanagerConfig, Receiver

__all__ = [
    "claim_receiver_rows",
    "dead_letter_orphans",
    "log_started",
    "open_outbox",
    "read_receivers",
]

_logger = logging.getLogger(__name__)


async def open_outbox(db: DbThread, state_dir: str) -> Outbox:
    """The outbox in ``state_dir``, opened on ``db``; ConfigError when it cannot be."""
    try:
        return await db.call(Outbox.in_dir, state_dir)
    except (OSError, sqlite3.Error) as exc:
        raise _outbox_failure("open", state_dir, exc) from exc


def read_receivers(
    settings: Settings, outbox: Outbox
) -> tuple[tuple[Receiver, ...], AlertmanagerConfig | None]:
    """The receivers file as load_settings read it (``Settings.receivers_file``), keyed as
    ``outbox`` keys its receivers, and its ``alertmanager`` section; ConfigError naming
    ``EXESDB_WEBHOOK_CONFIG_FILE`` when it is bad."""
    try:
        return settings.webhook_receivers(ReceiverKeys(outbox.receiver_secret))
    except ConfigError as exc:
        raise ConfigError(
            [f"EXESDB_WEBHOOK_CONFIG_FILE: {problem}" for problem in exc.problems]
        ) from exc


async def claim_receiver_rows(
    db: DbThread, queue: DeliveryQueue, receivers: Sequence[Receiver], state_dir: str
) -> None:
    """Give each configured receiver its queue, and the rows kept under its older keys."""
    # Receivers without a secret are warned of with the settings (start_warnings).
    try:
        await db.call(queue.queue_for, [receiver.key for receiver in receivers])
        # A configured receiver's rows stay its own, even when its url_file is another's.
        stored = await db.call(queue.receiver_keys) - {r.key for r in receivers}
        for receiver in receivers:
            for old in (*receiver.legacy_keys, *ReceiverKeys.spellings(receiver.key, stored)):
                await db.call(queue.move_receiver_rows, old, receiver.key)
    except (OSError, sqlite3.Error) as exc:
        # Opened, but not written to (a full disk): said as the opening's failure is.
        raise _outbox_failure("write", state_dir, exc) from exc


async def dead_letter_orphans(
    db: DbThread, dead_letters: DeadLetters, now: float, build: BuildPayloads
) -> None:
    """Dead-letter what waits for a receiver no longer configured, and say so."""
    orphaned = await db.call(dead_letters.add_orphans, now, build)
    if orphaned:
        _logger.warning(
            "alerts: dead-lettered %d delivery(ies) for receivers no longer in"
            " EXESDB_WEBHOOK_URLS nor EXESDB_WEBHOOK_CONFIG_FILE; once the receiver is"
            " configured again, `exesdb-bridge outbox retry --all` sends them; if it is not"
            " to be, `exesdb-bridge outbox drop --receiver ORIGIN` deletes them",
            orphaned,
        )


def log_started(
    receivers: Sequence[Receiver],
    *,
    workers: int,
    alertmanager: AlertmanagerPoster | None,
    outbox: Outbox,
    depth: OutboxDepth,
    resend_hint: str,
) -> None:
    """Say what the sink started with: ``workers`` delivery workers, the Alertmanager it posts
    to, the outbox's path and ``depth``, how to resend its dead letters, and each receiver."""
    _logger.info(
        "alerts: %d webhook receiver(s)%s; outbox %s: %d pending, %d dead-lettered%s",
        workers,
        ", Alertmanager " + alertmanager.shown_url if alertmanager else "",
        outbox.path.absolute(),  # what `outbox list` run from another folder needs
        depth.queued + depth.pending,
        depth.dead,
        resend_hint,
    )
    for receiver in receivers:  # the keys outbox list and the pages show, told apart
        _logger.info("alerts: webhook receiver %s is %s", receiver.label, receiver.source)


def _outbox_failure(doing: str, state_dir: str, exc: BaseException) -> ConfigError:
    """The start-up error for an outbox that could not be opened or written (``doing``)."""
    return ConfigError([unopenable_problem(doing, state_dir, exc)])
