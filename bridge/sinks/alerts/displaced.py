"""Whether the open outbox is still the file at its path, told once in the log as that changes.

A state directory removed under a running bridge (``rm -rf``, a volume mounted over it) leaves
the outbox writing to a file that is gone: every alert taken after would be lost at the next
start, without a word. The sink asks before each housekeeping pass (about a second apart), on the
outbox's thread (two stats, microseconds, not on the event loop: a disk that hangs would hold it
there); readiness reads the last answer. So does the outbox after each commit of a batch's alert
changes (``AlertStore``: once a transaction, not once an alert), which it answers
``database.OutboxDisplaced`` rather than report stored: a batch taken in the second before the
next pass is not answered 202 (nor acknowledged on Redis) for a file lost at the next start.
The check and its telling are ``bridge.displaced``'s, shared with the Redis bus spool.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from bridge.displaced import DisplacedWatch

__all__ = ["DisplacedOutbox"]

_logger = logging.getLogger(__name__)

# A new process opens (or makes) the file at the path; the alerts this one took since the file
# went are in the file it still holds, which no one else can open.
_WHAT_TO_DO: Final = (
    "the alerts it would store there would be lost at the next start, so it takes none and"
    " reports not ready; restart the bridge (it opens a new outbox there; the"
    " alerts taken since the file went are lost), or move the file back if it was moved"
)


class DisplacedOutbox(DisplacedWatch):
    """Asks ``displaced`` (``Outbox.displaced``, run on the outbox's thread) whether the outbox
    file is gone, keeping the answer in ``problem`` and calling ``changed`` as it changes; the
    log says it at ERROR once, with what to do, and at INFO should the file come back (moved
    back where it was)."""

    __slots__ = ()

    def __init__(
        self, displaced: Callable[[], Awaitable[str | None]], changed: Callable[[], None]
    ) -> None:
        super().__init__(
            displaced,
            changed,
            what_to_do=_WHAT_TO_DO,
            label="alerts",
            back="the alert outbox is the file at its path again",
            logger=_logger,
        )
