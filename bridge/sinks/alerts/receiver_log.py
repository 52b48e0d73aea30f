"""What the log says of a webhook receiver: its first failure, its recovery, each dead letter.

One line per receiver and change of state, never one per attempt: a receiver that is down for an
hour gives a warning when it starts failing and a line when it takes deliveries again, however
many retries lie between (each is still counted in ``exesdb_webhook_deliveries_total`` and
published as a NotificationStatus). A failed attempt whose delivery was left out as stale
meanwhile (on Redis) ends that delivery, as a dead letter does: it is told too.
"""

from __future__ import annotations

import logging

from bridge.sinks.alerts.records import DeliveryState

__all__ = ["ReceiverLog"]

_logger = logging.getLogger(__name__)


class ReceiverLog:
    """The state of one receiver as the log has told it: working, or failing since when."""

    __slots__ = ("_failures", "_shown_url")

    def __init__(self, shown_url: str) -> None:
        self._shown_url = shown_url
        self._failures = 0  # failed attempts in a row

    @property
    def failing(self) -> bool:
        """True from a failed attempt until a delivered one."""
        return self._failures > 0

    def attempted(
        self,
        delivery_id: str,
        state: DeliveryState,
        error: str | None,
        attempt: int,
        said: str | None = None,
        *,
        refused: bool = False,
        status: int | None = None,
    ) -> None:
        """Tell the log what one attempt changed, if anything; ``said``: the start of a refusing
        answer's body, shown after the error; ``refused``: the answer was final (a 4xx but 408,
        425 and 429), which sending it again unchanged would only meet again; ``status``: its
        HTTP status, which says what to mend."""
        if said:
            error = f"{error}: {said}"
        if state is DeliveryState.STALE and error is not None:
            # Left out while the attempt was in flight (on Redis): not tried again, so said
            # each time, and the receiver's first failure as such.
            self._failures += 1
            _logger.warning(
                "webhook delivery %s to %s failed: %s; not retried: it was left out as stale"
                " while in flight%s",
                delivery_id,
                self._shown_url,
                error,
                "; the receiver is failing" if self._failures == 1 else "",
            )
            return
        if state is DeliveryState.DELIVERED:  # the receiver took it
            if self._failures:
                _logger.info(
                    "webhook receiver %s recovered after %d failed attempt(s)",
                    self._shown_url,
                    self._failures,
                )
            self._failures = 0
            return
        self._failures += 1
        if state is DeliveryState.DEAD:
            _logger.warning(
                "webhook delivery %s to %s dead-lettered after %d attempt(s): %s; %s"
                "`exesdb-bridge outbox retry %s` sends it again",
                delivery_id,
                self._shown_url,
                attempt,
                error,
                # A refusal is not retried: a wrong path or token would refuse a retry too.
                "the receiver refused it, which is final: mend what it refused"
                f" ({_to_mend(status)}), then "
                if refused
                else "",
                delivery_id,
            )
        elif self._failures == 1:
            _logger.warning(
                "webhook receiver %s failing: %s; retrying, the alerts wait in the outbox",
                self._shown_url,
                error,
            )


def _to_mend(status: int | None) -> str:
    """What a final refusal with ``status`` asks to mend: for 401 and 403, the credentials or
    the signing key, which a receiver checking X-ExESDB-Signature refuses a delivery for when
    its key is not the bridge's (the usual 401 of a new receiver)."""
    if status in (401, 403):
        return (
            "its credentials, or the key it checks X-ExESDB-Signature with: the receiver's secret"
            " in the receivers file, else EXESDB_WEBHOOK_SECRET, must be the one it verifies with"
        )
    return "the URL's path, its credentials"
