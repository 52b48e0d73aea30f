"""What the alert stage's caps left out, told in the log at once, then at most once a minute.

New alerts the open-alert cap refused are counted in ``exesdb_alerts_refused_total``, resolves
of unknown alerts forgotten before their time at the ``RESOLVES_REMEMBERED`` cap in
``exesdb_alerts_resolves_forgotten_total``, as they happen; the log says so at the first, then,
while they go on, once a minute for each with how many came since, so that a sender flooding a
cap one message a request does not write a line a request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bridge.log_throttle import LogThrottle
from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED
from bridge.sinks.alerts.transitions import event_alert_cap

__all__ = ["RefusalLog"]

_logger = logging.getLogger(__name__)


class RefusalLog:
    """Says in the log that the open-alert cap (``max_open``) refused new alerts, or that
    resolves of unknown alerts were forgotten at their cap, at most once a minute for each
    (``clock``: monotonic seconds)."""

    __slots__ = ("_max_open", "_throttle")

    def __init__(self, max_open: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_open = max_open
        self._throttle = LogThrottle(clock=clock)

    def refused(self, count: int) -> None:
        """Tell of ``count`` new alerts refused, unless a line did in the last minute."""
        more = self._throttle.due("refused", count)
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

    def forgotten(self, count: int) -> None:
        """Tell of ``count`` resolves of unknown alerts forgotten before their time, unless a
        line did in the last minute."""
        more = self._throttle.due("forgotten", count)
        if more is None:
            return
        _logger.warning(
            "alerts: forgot %d resolve(s) of alerts unknown here before their time (%d are"
            " remembered at most: a flood of returns of distinct nodes?): a firing event sent"
            " before one of them and delivered after it (a node's down after its return) now"
            " opens its alert though it was resolved%s",
            count,
            RESOLVES_REMEMBERED,
            f"; {more} more forgotten since the last line" if more else "",
        )
