"""The alert stage's self-metrics: what each delivery attempt counts as."""

from __future__ import annotations

import pytest

from bridge.sinks.alerts.delivery import AttemptResult, Outcome
from bridge.sinks.alerts.metrics import DeliveryResult
from bridge.sinks.alerts.records import DeliveryState


@pytest.mark.parametrize(
    ("outcome", "state", "expected"),
    [
        (Outcome.DELIVERED, DeliveryState.DELIVERED, DeliveryResult.DELIVERED),
        (Outcome.REJECTED, DeliveryState.DEAD, DeliveryResult.REJECTED),
        (Outcome.RETRY, DeliveryState.PENDING, DeliveryResult.RETRY),
        (Outcome.RETRY, DeliveryState.DEAD, DeliveryResult.EXPIRED),
        (Outcome.RETRY, DeliveryState.STALE, DeliveryResult.STALE),
        (Outcome.REJECTED, DeliveryState.STALE, DeliveryResult.STALE),
        (Outcome.DELIVERED, DeliveryState.STALE, DeliveryResult.DELIVERED),
    ],
)
def test_each_attempt_counts_under_one_result(
    outcome: Outcome, state: DeliveryState, expected: DeliveryResult
) -> None:
    """Delivered, rejected (final answer), retry, expired (failing past the deadline), or stale
    (failed, its delivery left out as stale while in flight: the receiver's answer aside)."""
    result = AttemptResult(outcome, None, None, None, 0.01)
    assert DeliveryResult.of(result, state) is expected


def test_the_results_are_the_documented_label_values() -> None:
    """exesdb_webhook_deliveries_total{result} takes exactly the five documented values."""
    assert [r.value for r in DeliveryResult] == [
        "delivered",
        "retry",
        "rejected",
        "expired",
        "stale",
    ]
