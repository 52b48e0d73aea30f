"""Alert webhooks against a real HTTP receiver on a loopback port (in-process bridge)."""

from __future__ import annotations

import asyncio
import http.server
import logging
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.messages import NodeLifecycle, NotificationStatus
from bridge.redaction import safe_url
from bridge.sinks.alerts.sources import MAX_DETAIL_VALUE
from bridge.urls import own_url
from tests.integration.servers.webhook import HANG, Answer, WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import T0, alert_bridge, system_alert
from tests.support import ROOT, ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below

SECRET = "webhook-secret-for-tests"
FAST: dict[str, Any] = {
    "EXESDB_WEBHOOK_BACKOFF_MS": "50",
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "200",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
    "EXESDB_WEBHOOK_SECRET": SECRET,
}
# Room for a Retry-After of a second: a receiver's Retry-After waits at most the largest backoff.
ROOM_FOR_RETRY_AFTER: dict[str, Any] = {**FAST, "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "1500"}


def readme_verify() -> Any:
    """The signature recipe of docs/alerts.md, executed as documented."""
    text = (ROOT / "docs" / "alerts.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None, "docs/alerts.md has no Python recipe"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/alerts.md", "exec"), namespace)
    return namespace["verify"]


def counted(bridge: Any, result: str) -> float:
    """exesdb_webhook_deliveries_total for one result."""
    value = bridge.registry.get_sample_value("exesdb_webhook_deliveries_total", {"result": result})
    return value or 0.0


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


async def test_a_refusing_answer_is_told_in_the_log_on_one_line_and_nowhere_else(
    tmp_path: Path, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver's refusal (a wrong path: "404 page not found" and a line break; a 503 page)
    is warned of with the answer's start on one line, a URL in it redacted, as an Alertmanager
    post's is; the outbox and NotificationStatus keep the status alone (a page may hold
    anything)."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(
        Answer(503, text="upstream down:\n  see https://ops:hunter2@status.example/x"),
        Answer(404, text="404 page not found\n"),
    )
    caplog.set_level(logging.WARNING, "bridge.sinks.alerts")
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: sink.outbox.queue.depth().dead == 1, what="a dead letter")
        [dead] = sink.outbox.queue.deliveries("dead")
        shown = sink.receivers[0].label
        # Published once the dead letter is committed: heard a moment after it is seen.
        statuses = await async_wait_until(
            lambda: len(watcher.of(NotificationStatus)) == 2 and watcher.of(NotificationStatus),
            what="both attempts' NotificationStatus",
        )
        told = [s.error_reason for s in statuses]
    said = [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]
    assert said == [
        f"webhook receiver {shown} failing: HTTP 503: upstream down: see"
        " https://ops:<redacted>@status.example/…; retrying, the alerts wait in the outbox",
        f"webhook delivery {dead.id} to {shown} dead-lettered after 2"
        f" attempt(s): HTTP 404: 404 page not found; the receiver refused it, which is final:"
        " mend what it refused (the URL's path, its credentials), then"
        f" `exesdb-bridge outbox retry {dead.id}` sends it again",
    ]
    assert "hunter2" not in caplog.text
    assert dead.last_error == "HTTP 404"
    assert told == ["HTTP 503; will retry", "HTTP 404; dead-lettered"]


async def test_a_401_refusal_names_the_signing_key_beside_the_credentials(
    tmp_path: Path, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver's 401 (what one checking X-ExESDB-Signature with another key answers, the
    usual refusal of a receiver just set up) is dead-lettered with what to mend: its credentials
    or the key it verifies with, not the URL's path."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(401, text="bad signature"))
    caplog.set_level(logging.WARNING, "bridge.sinks.alerts")
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: sink.outbox.queue.depth().dead == 1, what="a dead letter")
        [dead] = sink.outbox.queue.deliveries("dead")
    said = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert said == [
        f"webhook delivery {dead.id} to {sink.receivers[0].label} dead-lettered after 1"
        " attempt(s): HTTP 401: bad signature; the receiver refused it, which is final: mend what"
        " it refused (its credentials, or the key it checks X-ExESDB-Signature with: the"
        " receiver's secret in the receivers file, else EXESDB_WEBHOOK_SECRET, must be the one it"
        f" verifies with), then `exesdb-bridge outbox retry {dead.id}` sends it again"
    ]


async def test_an_html_refusal_is_told_as_the_text_of_its_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver answering with an HTML page (Python's http.server, which takes no POST: its
    501 page) is warned of with the text the page shows, not its markup cut off mid-tag."""

    class NoPost(http.server.SimpleHTTPRequestHandler):
        def do_POST(self) -> None:
            # Read first: a body left unread makes the close a reset that may lose the page.
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_error(501, f"Unsupported method ({self.command!r})")

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoPost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    caplog.set_level(logging.WARNING, "bridge.sinks.alerts")
    try:
        async with alert_bridge(tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=url, **FAST) as (
            bridge,
            sink,
            _,
        ):
            bridge.bus.publish("disk_full", system_alert("a1"))
            warned = await async_wait_until(
                lambda: [r.getMessage() for r in caplog.records if "failing" in r.getMessage()],
                what="the receiver's failure warned of",
            )
            shown = sink.receivers[0].label
    finally:
        server.shutdown()
        server.server_close()
    assert warned == [
        f"webhook receiver {shown} failing: HTTP 501: Error response Error code: 501 Message:"
        " Unsupported method ('POST'). Error code explanation: 501 - Server does not support"
        " this operation.; retrying, the alerts wait in the outbox"
    ]


async def _webhook_lines_until_dead(
    tmp_path: Path, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """The webhook lines the alert sink logged until an alert sent to ``receiver`` (which
    refuses it as scripted) was dead-lettered."""
    caplog.set_level(logging.WARNING, "bridge.sinks.alerts")
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: sink.outbox.queue.depth().dead == 1, what="a dead letter")
    return [r.getMessage() for r in caplog.records if "webhook" in r.getMessage()]


async def test_a_refusing_answer_that_echoes_the_receivers_path_does_not_log_it(
    tmp_path: Path, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver whose refusal quotes the path it was posted to (Express's 404 page, "Cannot
    POST /services/…"; Spring's "path" field) has that path shown as ``/…`` in the log line, as
    the receiver's URL is shown everywhere: a webhook's path is often its key."""
    token = "Xq7rT2vLm9WcZ4bN8sKd1Yhf"  # a webhook URL's key, as Slack's
    path = f"/services/T0AAAAAAA/B0BBBBBBB/{token}"
    receiver: WebhookReceiver = webhook_receiver(path=path)
    express = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Error</title>\n</head>\n<body>\n<pre>Cannot POST {path}</pre>\n</body>\n</html>\n"
    )
    spring = f'{{"status":404,"error":"Not Found","path":"{path}"}}'
    receiver.script(Answer(503, text=spring), Answer(404, text=express, content_type="text/html"))
    said = await _webhook_lines_until_dead(tmp_path, receiver, caplog)
    assert len(said) == 2, said
    assert '"path":"/…"' in said[0], said[0]
    assert "404: Cannot POST /…;" in said[1], said[1]
    assert token not in caplog.text


async def test_a_refusing_answer_that_echoes_the_path_json_escaped_does_not_log_it(
    tmp_path: Path, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver whose JSON refusal quotes the path with each ``/`` escaped, as PHP's
    json_encode and Symfony's JsonResponse write it by default, has that path shown as ``/…``
    in the log line too, its key not logged."""
    token = "Xq7rT2vLm9WcZ4bN8sKd1Yhf"
    path = f"/services/T0AAAAAAA/B0BBBBBBB/{token}"
    receiver: WebhookReceiver = webhook_receiver(path=path)
    quoted = receiver.url.replace("/", "\\/")
    symfony = f'{{"message":"No route found for \\"POST {quoted}\\""}}'
    receiver.script(Answer(404, text=symfony))
    said = await _webhook_lines_until_dead(tmp_path, receiver, caplog)
    assert len(said) == 1, said
    assert "/…" in said[0], said[0]
    assert token not in caplog.text


async def test_a_refusing_answer_that_echoes_the_bridges_credentials_does_not_log_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver whose refusal quotes what the bridge sent it to prove itself (the signature's
    MAC, the bearer token, in a sentence that names neither as a header) has each shown as
    ``<redacted>`` in the log line: the bridge never logs a token or a signature."""
    token = "tok-Xq7rT2vLm9WcZ4bN8sKd"  # the receiver's bearer token, in the receivers file

    async def refuse(request: web.Request) -> web.Response:
        mac = request.headers["X-ExESDB-Signature"].rsplit("v1=", 1)[1]
        credentials = request.headers["Authorization"].removeprefix("Bearer ")
        text = f"no key makes {mac} of this body, and {credentials} is no token of ours"
        return web.Response(status=403, text=text)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receivers = tmp_path / "receivers.yml"
    receivers.write_text(
        "webhook_configs:\n"
        f"  - url: http://127.0.0.1:{runner.addresses[0][1]}/hook\n"
        f"    http_config: {{authorization: {{credentials: {token}}}}}\n"
    )
    caplog.set_level(logging.WARNING, "bridge.sinks.alerts")
    try:
        async with alert_bridge(
            tmp_path, serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(receivers), **FAST
        ) as (bridge, sink, _):
            bridge.bus.publish("disk_full", system_alert("a1"))
            await async_wait_until(
                lambda: sink.outbox.queue.depth().dead == 1, what="a dead letter"
            )
    finally:
        await runner.cleanup()
    [said] = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert "HTTP 403: no key makes <redacted> of this body, and <redacted> is no token" in said
    assert token not in caplog.text
    assert not re.search("[0-9a-f]{64}", caplog.text), caplog.text


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


async def test_signature_verifies_with_the_readme_recipe(tmp_path: Path, webhook_receiver) -> None:
    """X-ExESDB-Signature verifies with the recipe of docs/alerts.md; headers are complete."""
    verify = readme_verify()
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        [request] = await async_wait_until(lambda: receiver.accepted(), what="a delivery")
    header = request.headers["X-ExESDB-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, request.body)
    assert not verify(SECRET, header, request.body + b" ")
    assert not verify("another-secret", header, request.body)
    assert request.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"exesdb-bridge/\S+", request.headers["User-Agent"])
    assert request.json()["version"] == "4"


@pytest.mark.parametrize("header", ["t=²,v1=00", "t=,v1=00", "v1=00", "t=12a,v1=00", ""])
def test_the_readme_recipe_refuses_a_malformed_header_without_raising(header: str) -> None:
    """The receiver's check of docs/alerts.md answers False to a header whose t is missing or
    no ASCII number (a superscript two), rather than raising into the receiver."""
    assert readme_verify()(SECRET, header, b"{}") is False


async def test_deliveries_go_unsigned_without_a_secret(tmp_path: Path, webhook_receiver) -> None:
    """With EXESDB_WEBHOOK_SECRET unset there is no signature header."""
    receiver: WebhookReceiver = webhook_receiver()
    env: dict[str, Any] = {**FAST, "EXESDB_WEBHOOK_URLS": receiver.url}
    del env["EXESDB_WEBHOOK_SECRET"]
    async with alert_bridge(tmp_path, serve_http=False, **env) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        [request] = await async_wait_until(lambda: receiver.accepted(), what="a delivery")
    assert "X-ExESDB-Signature" not in request.headers
    assert request.delivery_id


async def test_a_url_listing_urls_in_its_query_is_one_receiver(
    tmp_path: Path, webhook_receiver
) -> None:
    """A webhook URL whose query lists URLs (?to=https://b|https://c, as a relay takes them) is
    one receiver, posted to at its path with that query whole."""
    receiver: WebhookReceiver = webhook_receiver()
    url = f"{receiver.url}?to=https://b.example/x|https://c.example/y"
    async with alert_bridge(tmp_path, serve_http=False, **FAST, EXESDB_WEBHOOK_URLS=url) as (
        bridge,
        _sink,
        _watcher,
    ):
        bridge.bus.publish("disk_full", system_alert("a1"))
        [request] = await async_wait_until(lambda: receiver.accepted(), what="a delivery")
    assert request.path == "/hook"
    assert request.query == {"to": "https://b.example/x|https://c.example/y"}


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


async def test_alerts_in_one_window_are_grouped_and_split(tmp_path: Path, webhook_receiver) -> None:
    """Seven alerts in one window arrive as payloads of 3, 3 and 1 with truncatedAlerts."""
    receiver: WebhookReceiver = webhook_receiver()
    env: dict[str, Any] = {
        **FAST,
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "300",
        "EXESDB_WEBHOOK_MAX_ALERTS": "3",
    }
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **env
    ) as (bridge, _sink, _watcher):
        for number in range(7):
            bridge.bus.publish("disk_full", system_alert(f"a{number}", node=f"n{number}"))
        await async_wait_until(lambda: len(receiver.accepted()) == 3, what="three payloads")
    bodies = [r.json() for r in receiver.requests]
    assert [len(b["alerts"]) for b in bodies] == [3, 3, 1]
    assert [b["truncatedAlerts"] for b in bodies] == [4, 4, 6]
    assert receiver.accepted_alert_ids() == {f"a{n}" for n in range(7)}


async def test_a_receiver_is_told_which_component_raised_an_alert_and_its_metadata(
    tmp_path: Path, webhook_receiver
) -> None:
    """A SystemAlert's source reaches a real receiver as the ``source`` label (and in
    commonLabels), its metadata as ``metadata_*`` annotations, a secret among them redacted."""
    receiver: WebhookReceiver = webhook_receiver()
    metadata = {"stream": "orders", "lag": 12, "password": "hunter2"}
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish(
            "backup_failed", system_alert("b1", source="backup-job", metadata=metadata)
        )
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the alert delivered")
    body = receiver.requests[0].json()
    [alert] = body["alerts"]
    assert alert["labels"]["source"] == "backup-job"
    assert body["commonLabels"]["source"] == "backup-job"
    assert alert["annotations"] == {
        "summary": "alert b1",
        "title": "alert b1",
        "description": "something broke",
        "metadata_lag": "12",
        "metadata_password": "<redacted>",
        "metadata_stream": "orders",
    }
    assert b"hunter2" not in receiver.requests[0].body


async def test_a_runbook_link_on_an_allowed_origin_reaches_a_receiver_whole(
    tmp_path: Path, webhook_receiver
) -> None:
    """With EXESDB_ALERT_LINK_ORIGINS naming the wiki, a SystemAlert's runbook link reaches a
    real receiver whole (and is stored so for Alertmanager and the alert's page), while a link
    of another origin and one with a password on the wiki are still cut to their origin."""
    receiver: WebhookReceiver = webhook_receiver()
    metadata = {
        "runbook": "https://wiki.example/runbooks/disk-full#free-space",
        "hook": "https://hooks.example/services/T0/B0/s3cr3t",
        "mirror": "https://ops:hunter2@wiki.example/runbooks/disk-full",
    }
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_ALERT_LINK_ORIGINS="https://wiki.example,https://runbooks.example:8443",
        **FAST,
    ) as (bridge, sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("d1", source="disk-watch", metadata=metadata))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the alert delivered")
        [stored] = sink.outbox.alerts.find(alert_id="d1", limit=1)
    [alert] = receiver.requests[0].json()["alerts"]
    expected = {
        "metadata_hook": "https://hooks.example/…",
        "metadata_mirror": "https://ops:<redacted>@wiki.example/…",
        "metadata_runbook": "https://wiki.example/runbooks/disk-full#free-space",
    }
    assert {k: v for k, v in alert["annotations"].items() if k.startswith("metadata_")} == expected
    assert dict(stored.details) == expected
    assert b"s3cr3t" not in receiver.requests[0].body
    assert b"hunter2" not in receiver.requests[0].body


async def test_long_metadata_values_without_spaces_are_shown_cut_without_stopping_the_bridge(
    tmp_path: Path, webhook_receiver
) -> None:
    """Metadata values of 16 KiB without a space (a blob, a run of ``a:a:``) reach a real
    receiver cut and redacted within two seconds of the event loop's time: showing them took
    seconds of it each (the URL redaction scanned ahead from every position), the whole bridge
    stopped."""
    receiver: WebhookReceiver = webhook_receiver()
    metadata = {
        "blob": "x" * 16_384,
        "colons": "a:" * 8_192,
        "dots": "a." * 8_192,
        "target": "alice:hunter2@db/" + "a:" * 8_192,
    }
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _watcher):
        # The CPU time of the event loop's thread (this one): a loaded host's waits add none.
        began = time.thread_time()
        bridge.bus.publish("dump", system_alert("big", source="dumper", metadata=metadata))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the alert delivered")
        took = time.thread_time() - began
    [alert] = receiver.requests[0].json()["alerts"]
    annotations = alert["annotations"]
    assert took < 2, f"the alert took {took:.1f} s of the event loop to reach the receiver"
    assert annotations["metadata_blob"] == "x" * (MAX_DETAIL_VALUE - 1) + "…"
    # The run the cut falls in holds a colon (it may be a user:password cut before its @): out.
    assert annotations["metadata_target"] == "alice:<redacted>@…"
    assert b"hunter2" not in receiver.requests[0].body


async def test_resolve_is_sent_with_the_same_fingerprint(tmp_path: Path, webhook_receiver) -> None:
    """A node going down and coming back sends firing, then resolved for the same fingerprint."""
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n4", event="down", cluster_size=2))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the firing alert")
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n4", event="down", cluster_size=2))
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n4", event="reconnected", cluster_size=3)
        )
        await async_wait_until(lambda: len(receiver.accepted()) == 2, what="the resolve")
    firing, resolved = (r.json() for r in receiver.requests)
    assert (firing["status"], resolved["status"]) == ("firing", "resolved")
    assert firing["alerts"][0]["labels"]["alertname"] == "node_failure"
    assert firing["alerts"][0]["labels"]["node"] == "n4"
    assert firing["alerts"][0]["fingerprint"] == resolved["alerts"][0]["fingerprint"]
    assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"


async def test_a_resolve_never_overtakes_its_firing_waiting_for_a_retry(
    tmp_path: Path, webhook_receiver
) -> None:
    """A firing notification the receiver answered 503 is retried before the resolve that came
    after it, so the receiver's last word on the alert is resolved, not firing."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(503)
    clock = ManualClock(T0)
    async with alert_bridge(
        tmp_path, serve_http=False, clock=clock, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, _watcher):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n4", event="down", cluster_size=2))
        await async_wait_until(lambda: receiver.requests, what="the firing refused")
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n4", event="reconnected", cluster_size=3)
        )
        await async_wait_until(
            lambda: sink.outbox.queue.depth().queued == 1, what="the resolve held in the window"
        )
        assert len(sink.outbox.queue.deliveries()) == 1
        clock.advance(60)  # the firing's retry is due
        sink.workers[next(iter(sink.workers))].wake()
        await async_wait_until(lambda: len(receiver.accepted()) == 2, what="both delivered")
    assert [r.json()["status"] for r in receiver.accepted()] == ["firing", "resolved"]


async def test_a_resolve_made_while_its_firing_is_in_flight_goes_after_it(
    tmp_path: Path, webhook_receiver
) -> None:
    """An alert resolved while the receiver hangs on its firing notification: the firing is
    retried after the timeout and only then the resolve goes out."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(HANG)
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_TIMEOUT_MS="1000",
        **FAST,
    ) as (bridge, sink, _watcher):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n5", event="down", cluster_size=2))
        await async_wait_until(lambda: receiver.requests, what="the firing in flight")
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n5", event="reconnected", cluster_size=3)
        )
        await async_wait_until(
            lambda: sink.outbox.alerts.find(state="resolved"), what="resolved while in flight"
        )
        await async_wait_until(lambda: len(receiver.accepted()) == 2, what="both delivered")
    assert [r.json()["status"] for r in receiver.accepted()] == ["firing", "resolved"]


async def test_escalation_notifies_again_with_the_level(tmp_path: Path, webhook_receiver) -> None:
    """An unacknowledged critical alert is re-sent with escalation_level level2, then level3."""
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_ESCALATION_AFTER_MS="300",
        **FAST,
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: len(receiver.accepted()) == 3, what="three notifications")
    levels = [r.json()["alerts"][0]["labels"].get("escalation_level") for r in receiver.requests]
    assert levels == [None, "level2", "level3"]


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


async def test_the_status_page_tells_of_dead_letters_and_how_to_send_them_again(
    tmp_path: Path, webhook_receiver
) -> None:
    """A delivery the receiver refused is dead-lettered and never retried by itself: the status
    page says so above the alerts, with the commands that list and resend it, where it showed
    nothing of it before (the failing-receiver notice ends with the last attempt)."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(404, text="404 page not found\n"))
    async with alert_bridge(tmp_path, EXESDB_WEBHOOK_URLS=receiver.url, **FAST) as (
        bridge,
        sink,
        _,
    ):
        assert bridge.address is not None
        page_url = own_url(*bridge.address) + "/?part=live"

        def page() -> str:
            with urllib.request.urlopen(page_url, timeout=5) as answer:
                return str(answer.read().decode())

        assert 'id="dead-letters"' not in await asyncio.to_thread(page)
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: sink.outbox.queue.depth().dead == 1, what="a dead letter")

        async def told() -> str | None:
            # Counted by the sink's housekeeping, once a second: not at once.
            text = await asyncio.to_thread(page)
            return text if 'id="dead-letters"' in text else None

        live = await async_wait_until(told, what="the dead-letter notice")
    notice = live.split('id="dead-letters"', 1)[1].split("</section>", 1)[0]
    text = re.sub(r"<[^>]+>", "", notice.split(">", 1)[1])
    assert text == (
        "A webhook delivery is dead-lettered: its receiver did not take it and it is not tried"
        " again, so its alerts may not have reached that receiver. exesdb-bridge outbox list"
        " --state dead says why; exesdb-bridge outbox retry --all sends again what can be (run"
        " with the bridge's EXESDB_STATE_DIR): not one for a receiver the bridge does not run with"
        " now, until it does again; exesdb-bridge outbox drop --receiver ORIGIN deletes those of"
        " a receiver not to be used again (--all: every one). Each is forgotten"
        " EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS after it died (7 days by default)."
    )
