"""New alerts the open-alert cap refused, told in the log at once, then at most once a minute.

Each refusal is counted in ``exesdb_alerts_refused_total`` as it happens; the log says so at the
first, then, while refusals go on, once a minute with how many came since, so that a sender
flooding the cap one alert a request does not write a line a request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from bridge.sinks.alerts.transitions import event_alert_cap

__all__ = ["LOG_EVERY", "RefusalLog"]

_logger = logging.getLogger(__name__)

LOG_EVERY: Final = 60.0


class RefusalLog:
    """Says in the log that the open-alert cap (``max_open``) refused new alerts, at most every
    ``LOG_EVERY`` seconds (``clock``: monotonic seconds)."""

    __slots__ = ("_clock", "_logged", "_max_open", "_since")

    def __init__(self, max_open: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_open = max_open
        self._clock = clock
        self._logged: float | None = None  # when last logged
        self._since = 0  # refusals not logged since

    def refused(self, count: int) -> None:
        """Tell of ``count`` new alerts refused, unless a line did in the last minute."""
        now = self._clock()
        if self._logged is not None and now - self._logged < LOG_EVERY:
            self._since += count
            return
        self._logged = now
        more, self._since = self._since, 0
        _logger.warning(
            "alerts: refused %d new alert(s): %d alerts are open (firing or acknowledged),"
            " %d for an event alert%s",
            count,
            self._max_open,
            event_alert_cap(self._max_open),
            f"; {more} more refused since the last line" if more else "",
        )
