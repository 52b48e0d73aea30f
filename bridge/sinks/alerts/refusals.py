"""New alerts the open-alert cap refused, told in the log at once, then at most once a minute.

Each refusal is counted in ``exesdb_alerts_refused_total`` as it happens; the log says so at the
first, then, while refusals go on, once a minute with how many came since, so that a sender
flooding the cap one alert a request does not write a line a request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bridge.log_throttle import LogThrottle
from bridge.sinks.alerts.transitions import event_alert_cap

__all__ = ["RefusalLog"]

_logger = logging.getLogger(__name__)


class RefusalLog:
    """Says in the log that the open-alert cap (``max_open``) refused new alerts, at most once
    a minute (``clock``: monotonic seconds)."""

    __slots__ = ("_max_open", "_throttle")

    def __init__(self, max_open: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_open = max_open
        self._throttle = LogThrottle(clock=clock)

    def refused(self, count: int) -> None:
        """Tell of ``count`` new alerts refused, unless a line did in the last minute."""
        more = self._throttle.due(count=count)
        if more is None:
            return
        _logger.warning(
            "alerts: refused %d new alert(s): %d alerts are open (firing or acknowledged),"
            " %d for an event alert%s",
            count,
            self._max_open,
            event_alert_cap(self._max_open),
            f"; {more} more refused since the last line" if more else "",
        )
