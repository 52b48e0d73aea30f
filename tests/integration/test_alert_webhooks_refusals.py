"""What the log and the status page say of a real webhook receiver refusing alerts."""

from __future__ import annotations

import asyncio
import http.server
import logging
import re
import threading
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from bridge.messages import NotificationStatus
from bridge.urls import own_url
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.integration.webhooks_support import FAST
from tests.sinks.alerts.helpers import alert_bridge, system_alert
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below


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
