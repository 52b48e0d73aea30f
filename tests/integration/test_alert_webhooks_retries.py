"""Alert webhooks retried, timed out and dead-lettered by a real HTTP receiver."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.messages import NotificationStatus
from bridge.redaction import safe_url
from tests.integration.servers.webhook import HANG, Answer, WebhookReceiver, webhook_receiver
from tests.integration.webhooks_support import FAST, counted
from tests.sinks.alerts.helpers import alert_bridge, system_alert
from tests.support import ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below

# Room for a Retry-After of a second: a receiver's Retry-After waits at most the largest backoff.
ROOM_FOR_RETRY_AFTER: dict[str, Any] = {**FAST, "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "1500"}


async def test_retries_keep_one_delivery_id_until_accepted(
    tmp_path: Path, webhook_receiver
) -> None:
    """500, 503 and 429 with Retry-After are retried with one delivery id until a 200."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(500, 503, Answer(429, retry_after="1"))
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **ROOM_FOR_RETRY_AFTER
    ) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="an accepted delivery")
        requests = receiver.requests
        assert [r.answer.status for r in requests] == [500, 503, 429, 200]
        assert len({r.delivery_id for r in requests}) == 1
        assert requests[0].delivery_id
        assert requests[3].at - requests[2].at >= 0.95  # Retry-After: 1 beat the 100 ms backoff
        statuses = await async_wait_until(
            lambda: len(watcher.of(NotificationStatus)) == 4 and watcher.of(NotificationStatus),
            what="four NotificationStatus messages",
        )
        assert [(s.status, s.attempts) for s in statuses] == [
            ("failed", 1),
            ("failed", 2),
            ("failed", 3),
            ("delivered", 4),
        ]
        assert statuses[0].error_reason == "HTTP 500; will retry"
        assert statuses[0].recipient == safe_url(receiver.url)  # a path may hold a token
        assert (counted(bridge, "retry"), counted(bridge, "delivered")) == (3.0, 1.0)
        assert bridge.registry.get_sample_value("exesdb_webhook_delivery_seconds_count") == 4.0
        assert sink.outbox.queue.depth().pending == 0


async def test_408_and_425_are_retried_as_429_is_honouring_retry_after(
    tmp_path: Path, webhook_receiver
) -> None:
    """408 Request Timeout (with Retry-After: 1) and 425 Too Early ask for the request again:
    both are retried under one delivery id, the first after the second it asked for, until a
    200; neither is a final answer that dead-letters the alert."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(408, retry_after="1"), 425)
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **ROOM_FOR_RETRY_AFTER
    ) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="an accepted delivery")
        requests = receiver.requests
        assert [r.answer.status for r in requests] == [408, 425, 200]
        assert len({r.delivery_id for r in requests}) == 1
        assert requests[1].at - requests[0].at >= 0.95  # Retry-After: 1 beat the 100 ms backoff
        statuses = await async_wait_until(
            lambda: len(watcher.of(NotificationStatus)) == 3 and watcher.of(NotificationStatus),
            what="three NotificationStatus messages",
        )
        assert [s.error_reason for s in statuses] == [
            "HTTP 408; will retry",
            "HTTP 425; will retry",
            None,
        ]
        assert (counted(bridge, "retry"), counted(bridge, "rejected")) == (2.0, 0.0)
        assert sink.outbox.queue.depth().dead == 0


@pytest.mark.parametrize(
    "retry_after", ["86400000", "Fri, 31 Dec 9999 23:59:59 GMT"], ids=["seconds", "http_date"]
)
async def test_a_retry_after_past_the_largest_backoff_waits_the_largest_backoff(
    tmp_path: Path, webhook_receiver, retry_after: str
) -> None:
    """A 503 asking, by Retry-After, for a thousand days or until the year 9999 is tried again
    after EXESDB_WEBHOOK_MAX_BACKOFF_MS (200 ms here), not parked past the deadline and
    dead-lettered unsent."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(503, retry_after=retry_after))
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="an accepted delivery")
        first, second = receiver.requests
        assert (first.answer.status, second.answer.status) == (503, 200)
        assert second.at - first.at < 5.0  # the 200 ms cap and a loaded machine's slack
        assert (counted(bridge, "retry"), counted(bridge, "expired")) == (1.0, 0.0)
        assert sink.outbox.queue.depth().dead == 0


@pytest.mark.parametrize(
    "retry_after",
    [
        "²",
        "Fri, 15 Jan 2027 99999999999999999999:00:00 GMT",
        "Fri, 15 Jan 2027 08:00:30 +99999999999999",
    ],
    ids=["superscript", "hour_overflows", "offset_overflows"],
)
async def test_a_retry_after_of_other_digits_is_ignored_and_the_attempt_counted(
    tmp_path: Path, webhook_receiver, retry_after: str
) -> None:
    """A 503 whose Retry-After is digits but not ASCII ones (a superscript two), or a date
    whose hour or zone offset no machine integer holds, is an HTTP 503 retried on the backoff,
    not an error of the HTTP client nor a fault of the webhook worker."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(503, retry_after=retry_after))
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: receiver.accepted(), what="the retry accepted")
        statuses = await async_wait_until(
            lambda: len(watcher.of(NotificationStatus)) == 2 and watcher.of(NotificationStatus),
            what="two NotificationStatus messages",
        )
        errors = bridge.registry.get_sample_value(
            "exesdb_sink_errors_total", {"subscriber": "alerts"}
        )
    assert [(s.status, s.error_reason) for s in statuses] == [
        ("failed", "HTTP 503; will retry"),
        ("delivered", None),
    ]
    assert (errors or 0.0) == 0.0


async def test_dead_letters_of_a_receiver_refusing_everything_are_deleted_after_a_week(
    tmp_path: Path, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver answering 401 to everything leaves dead letters; housekeeping deletes those
    older than EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS (7 days) and says how many, younger ones stay."""
    receiver: WebhookReceiver = webhook_receiver(authorization="Bearer nobody-has-it")
    clock = ManualClock(time.time())
    async with alert_bridge(
        tmp_path, clock=clock, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("w1"))
        await async_wait_until(lambda: sink.outbox.queue.depth().dead == 1, what="a dead letter")
        [first] = sink.outbox.queue.deliveries()
        clock.advance(6 * 86_400)
        bridge.bus.publish("disk_full", system_alert("w2"))
        # w1's resolve (its resolve timeout passed too) may go in the same delivery as w2.
        await async_wait_until(
            lambda: any("w2" in d.alert_ids for d in sink.outbox.queue.deliveries("dead")),
            what="w2 dead-lettered too",
        )
        clock.advance(86_400 + 60)  # the first died over 7 days ago, the others a day ago
        caplog.set_level(logging.WARNING, "bridge.sinks.alerts.housekeeping")
        before = {d.id for d in sink.outbox.queue.deliveries()}
        await sink.housekeeping.housekeep()
        # The housekeeping loop's own pass may have begun at the new time a moment before
        # (this one then skips the hourly pruning): the deletion and its line come from either.
        await async_wait_until(
            lambda: (
                first.id not in {d.id for d in sink.outbox.queue.deliveries()}
                and "deleted 1 dead-lettered delivery(ies)" in caplog.text
            ),
            what="the week-old dead letter deleted, and said so",
        )
        after = {d.id for d in sink.outbox.queue.deliveries()}
        assert before - {first.id} <= after  # what died a day ago stays
        assert {a.alert_id for a in sink.outbox.alerts.find()} == {"w1", "w2"}


async def test_client_error_is_final_and_dead_lettered(tmp_path: Path, webhook_receiver) -> None:
    """A 400 is not retried: the delivery is dead-lettered and NotificationStatus says bounced."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(400)
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: sink.outbox.queue.depth().dead == 1, what="a dead letter")
        # A later alert gets through; the dead one was never tried again in between.
        bridge.bus.publish("disk_full", system_alert("a2"))
        await async_wait_until(lambda: receiver.accepted(), what="the second alert")
        assert [r.answer.status for r in receiver.requests] == [400, 200]
        assert receiver.requests[1].alert_ids() == ["a2"]
        # Published before the second alert's attempt, handed to the watcher by its own task.
        bounced = await async_wait_until(
            lambda: [s for s in watcher.of(NotificationStatus) if s.status == "bounced"],
            what="the bounce's NotificationStatus",
        )
        assert [(s.alert_id, s.error_reason) for s in bounced] == [
            ("a1", "HTTP 400; dead-lettered")
        ]
        assert counted(bridge, "rejected") == 1.0


async def test_hung_receiver_times_out_and_is_retried(tmp_path: Path, webhook_receiver) -> None:
    """A receiver that never answers is given up on after the timeout, then retried."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(HANG)
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_TIMEOUT_MS="300",
        **FAST,
    ) as (bridge, _sink, watcher):
        started = time.monotonic()
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: receiver.accepted(), what="the retry accepted")
        assert time.monotonic() - started >= 0.3
        [first, second] = receiver.requests
        assert first.delivery_id == second.delivery_id
        failed = await async_wait_until(
            lambda: [s for s in watcher.of(NotificationStatus) if s.status == "failed"],
            what="the failed attempt reported",
        )
        assert failed[0].error_reason == "timed out after 0.3s; will retry"


@pytest.mark.parametrize(
    "answer", [Answer(200, cut=True), Answer(202, trickle=True)], ids=["reset", "trickle"]
)
async def test_a_2xx_whose_body_breaks_off_is_delivered_once(
    tmp_path: Path, webhook_receiver, answer: Answer
) -> None:
    """A 2xx whose body is cut off by a reset, or trickles past the timeout, is delivered: the
    status counts, so a receiver that took the alert is not sent it again."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(answer)
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_TIMEOUT_MS="500",
        **FAST,
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: counted(bridge, "delivered") == 1, what="a1 delivered")
        bridge.bus.publish("disk_full", system_alert("a2"))
        await async_wait_until(lambda: counted(bridge, "delivered") == 2, what="a2 delivered")
        # Deliveries go out in order: a1 sent again would have come before a2.
        assert [r.alert_ids() for r in receiver.requests] == [["a1"], ["a2"]]
        assert counted(bridge, "retry") == 0


async def test_a_2xx_whose_body_trickles_frees_its_worker_long_before_the_timeout(
    tmp_path: Path, webhook_receiver
) -> None:
    """A 200 whose status line and headers came, then its body a byte a tenth of a second,
    is recorded delivered within about a second of reading, not held until the 30 s timeout:
    the next alert to that receiver goes out meanwhile."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(200, trickle=True))
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_TIMEOUT_MS="30000",
        **FAST,
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: receiver.requests, what="a1 sent")
        bridge.bus.publish("disk_full", system_alert("a2"))
        await async_wait_until(lambda: len(receiver.requests) == 2, 8.0, "a2 sent after a1")
        [first, second] = receiver.requests
        assert second.at - first.at < 5.0
        assert [r.alert_ids() for r in receiver.requests] == [["a1"], ["a2"]]
        await async_wait_until(lambda: counted(bridge, "delivered") == 2, what="both delivered")
        assert counted(bridge, "retry") == 0
        seconds = bridge.registry.get_sample_value(
            "exesdb_webhook_delivery_seconds_bucket", {"le": "2.5"}
        )
        assert seconds == 2.0  # the trickled attempt too took less than 2.5 s


async def test_a_hanging_webhook_does_not_delay_the_others(
    tmp_path: Path, webhook_receiver
) -> None:
    """With one receiver hanging for good, another URL still gets its alert at once, and the
    hanging one is sent nothing more while its first delivery hangs."""
    stuck: WebhookReceiver = webhook_receiver()
    stuck.default = HANG
    healthy: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=f"{stuck.url},{healthy.url}",
        EXESDB_WEBHOOK_TIMEOUT_MS="30000",
        # The stop waits this long (less a margin) for the hung attempt to end.
        EXESDB_SHUTDOWN_TIMEOUT_MS="1000",
        **FAST,
    ) as (bridge, _sink, _watcher):
        for number in range(3):
            alert_id = f"a{number}"
            bridge.bus.publish("disk_full", system_alert(alert_id))
            # At once (tens of milliseconds); behind the hung delivery it would wait out the
            # 30 s timeout. The bound leaves a loaded host seconds to spare.
            await async_wait_until(
                lambda: alert_id in healthy.accepted_alert_ids(),  # noqa: B023 - awaited here
                within=10,
                what=f"{alert_id} at the healthy receiver",
            )
            # The same delivery reaches the stuck receiver in its own time: its thread may not
            # have read a0's request yet on a loaded host (1 failure in 20 runs, at load 4.5).
            await async_wait_until(lambda: stuck.requests, 10, "a0 at the stuck receiver")
        assert len(stuck.requests) == 1  # still hanging on its first delivery
        assert not stuck.accepted()


async def test_no_alert_is_lost_when_half_the_requests_fail(
    tmp_path: Path, webhook_receiver
) -> None:
    """1 000 alerts against a receiver failing half its requests (seeded) all arrive."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.fail_randomly(0.5, seed=20261128, answer=503)
    env: dict[str, Any] = {
        **FAST,
        "EXESDB_WEBHOOK_BACKOFF_MS": "10",
        "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "100",
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "20",
        "EXESDB_WEBHOOK_MAX_ALERTS": "10",
        "EXESDB_WEBHOOK_MIN_SEVERITY": "info",
    }
    expected = {f"alert-{n:04d}" for n in range(1000)}
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **env
    ) as (bridge, sink, _watcher):
        for alert_id in sorted(expected):
            bridge.bus.publish("load_test", system_alert(alert_id, severity="warning"))
        await async_wait_until(
            lambda: receiver.accepted_alert_ids() == expected,
            within=90.0,
            what="every alert accepted",
        )
        await async_wait_until(
            lambda: sink.outbox.queue.depth().pending == 0, what="an empty outbox"
        )
        assert sink.outbox.queue.depth().dead == 0
    failures = [r for r in receiver.requests if not r.accepted]
    assert len(failures) >= 50  # the receiver really did fail about half the time
    assert counted(bridge, "retry") == len(failures)


async def test_a_receiver_answering_a_huge_body_is_read_no_further_than_its_start(
    tmp_path: Path, webhook_receiver
) -> None:
    """A 2xx whose body goes on for 256 MiB counts as delivered once its start (ANSWER_LIMIT)
    is read; the connection closes there instead of the whole body going into memory."""
    receiver: WebhookReceiver = webhook_receiver()
    flood = 256 * 2**20
    receiver.script(Answer(200, flood=flood))
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_TIMEOUT_MS="60000",
        **FAST,
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: counted(bridge, "delivered") == 1, 60, "delivered")
        await async_wait_until(lambda: receiver.flooded, what="the receiver done answering")
        assert receiver.flooded[0] < flood / 4, receiver.flooded
