"""Redirects under follow_redirects (true by default): 307 and 308 followed with the body,
others refused.

Real aiohttp servers on 127.0.0.1 answer the redirects; a webhook sender configured from a
receivers file (as Alertmanager's webhook_config, pasted with its default follow_redirects: true)
posts to them, and so does the Alertmanager poster.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr

from bridge.httpclient import ClientSettings, HTTPClientConfig
from bridge.receivers import Receiver, read_receivers_file, resolve_receivers
from bridge.sinks.alerts.alertmanager import PostResult
from bridge.sinks.alerts.delivery import Outcome, WebhookSender
from tests.integration.receivers_file_support import delivery_to
from tests.sinks.alerts.test_alertmanager import firing_event as event
from tests.sinks.alerts.test_alertmanager import poster_to
from tests.support import async_wait_until

SECRET = "signing-key-of-the-test"
BODY = b'{"alerts": ["one"]}'


@dataclass
class Hop:
    """One request a server got."""

    path: str
    method: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Redirector:
    """A server answering each path as ``answers`` says: (status, Location) or 200."""

    answers: dict[str, tuple[int, Callable[[], str]]] = field(default_factory=dict)
    hops: list[Hop] = field(default_factory=list)
    url: str = ""
    delay: float = 0.0  # seconds before each answer

    async def handle(self, request: web.Request) -> web.Response:
        self.hops.append(
            Hop(request.path, request.method, dict(request.headers), await request.read())
        )
        await asyncio.sleep(self.delay)  # a slow receiver, as the test asks
        if request.path in self.answers:
            status, location = self.answers[request.path]
            return web.Response(status=status, headers={"Location": location()})
        return web.Response(text="ok")


@asynccontextmanager
async def redirector(host: str = "127.0.0.1") -> AsyncIterator[Redirector]:
    """A started ``Redirector`` on 127.0.0.1, its ``url`` naming it by ``host``."""
    server = Redirector()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://{host}:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


def receiver(
    tmp_path: Path, url: str, follow: str | None = "true", timeout: float = 5.0, more: str = ""
) -> Receiver:
    """The receiver of a receivers file giving ``url``, a bearer token, a signing key,
    ``follow_redirects: <follow>`` (no such line for None) and ``more`` lines of its
    ``http_config``."""
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n"
        f"  - url: {url}\n"
        f"    secret: {SECRET}\n"
        "    http_config:\n"
        + ("" if follow is None else f"      follow_redirects: {follow}\n")
        + "      authorization: {credentials: the-token}\n"
        + more
    )
    [hook], _ = resolve_receivers(
        [],
        read_receivers_file(path),
        secret=None,
        timeout=timeout,
        max_alerts=0,
        min_severity="warning",
    )
    return hook


async def attempt(hook: Receiver):
    """One delivery attempt of BODY to ``hook``."""
    sender = WebhookSender(hook)
    try:
        return await sender.send(delivery_to(hook.key, BODY))
    finally:
        await sender.aclose()


def signed(hop: Hop) -> bool:
    """True when the hop's X-ExESDB-Signature is the HMAC of its body under SECRET."""
    fields = dict(part.split("=", 1) for part in hop.headers["X-ExESDB-Signature"].split(","))
    mac = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + hop.body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), fields["v1"])


@pytest.mark.parametrize("status", [307, 308])
async def test_a_307_or_308_delivers_the_alert_at_the_new_path_with_body_and_signature(
    tmp_path: Path, status: int
) -> None:
    """A 307 or 308 to another path is followed: the POST arrives there with its body, its
    signature and (same origin) its Authorization, and the attempt counts as delivered."""
    async with redirector() as server:
        server.answers["/hook"] = (status, lambda: "/moved")
        result = await attempt(receiver(tmp_path, server.url + "/hook"))
    assert result.outcome is Outcome.DELIVERED, result
    first, moved = server.hops
    assert (moved.path, moved.method, moved.body) == ("/moved", "POST", BODY)
    assert signed(moved)
    assert moved.headers["Authorization"] == "Bearer the-token"
    assert moved.headers["X-ExESDB-Signature"] == first.headers["X-ExESDB-Signature"]


async def test_a_307_to_another_origin_drops_authorization(tmp_path: Path) -> None:
    """A 307 to another host gets the body and signature but not the Authorization header,
    which is the first origin's credential."""
    async with redirector() as first, redirector("localhost") as other:
        first.answers["/hook"] = (307, lambda: other.url + "/elsewhere")
        result = await attempt(receiver(tmp_path, first.url + "/hook"))
    assert result.outcome is Outcome.DELIVERED, result
    assert first.hops[0].headers["Authorization"] == "Bearer the-token"
    [hop] = other.hops
    assert (hop.method, hop.body) == ("POST", BODY)
    assert "Authorization" not in hop.headers
    assert signed(hop)


async def test_a_307_to_another_origin_drops_the_http_headers_given_as_secrets_or_files(
    tmp_path: Path,
) -> None:
    """The http_headers given as secrets or files (a header mixing them with values too) go to
    the first origin only, as Authorization does; plain values and the signature go to every
    hop."""
    token_file = tmp_path / "token"
    token_file.write_text("file-token")
    headers = (
        "      http_headers:\n"
        "        X-Plain: {values: [plain]}\n"
        "        X-Secret: {secrets: [inline-token]}\n"
        f"        X-File: {{files: [{token_file}]}}\n"
        "        X-Mixed: {values: [open], secrets: [mixed-token]}\n"
    )
    async with redirector() as first, redirector("localhost") as other:
        first.answers["/hook"] = (307, lambda: first.url + "/same")
        first.answers["/same"] = (307, lambda: other.url + "/elsewhere")
        result = await attempt(receiver(tmp_path, first.url + "/hook", more=headers))
    assert result.outcome is Outcome.DELIVERED, result
    for hop in first.hops:  # the first origin, before and after a redirect
        assert hop.headers["X-Plain"] == "plain"
        assert hop.headers["X-Secret"] == "inline-token"
        assert hop.headers["X-File"] == "file-token"
        assert hop.headers["X-Mixed"] == "open, mixed-token"
    [hop] = other.hops
    assert hop.headers["X-Plain"] == "plain"
    assert not {"Authorization", "X-Secret", "X-File", "X-Mixed"} & hop.headers.keys()
    assert "token" not in repr(hop.headers)
    assert signed(hop)


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_a_redirect_that_would_drop_the_alerts_fails_the_attempt(
    tmp_path: Path, status: int
) -> None:
    """A 301, 302 or 303 is not followed (it would turn the POST into a GET without the
    alerts): the attempt fails, to be retried, saying why, and nothing reaches the target."""
    async with redirector() as server:
        server.answers["/hook"] = (status, lambda: "/moved")
        result = await attempt(receiver(tmp_path, server.url + "/hook"))
    assert (result.outcome, result.status, result.error_type) == (
        Outcome.RETRY,
        status,
        str(status),
    )
    assert "would turn the POST into a GET without the alerts" in (result.error or "")
    assert [hop.path for hop in server.hops] == ["/hook"]


async def test_a_loop_of_redirects_stops_after_10(tmp_path: Path) -> None:
    """A receiver redirecting to itself forever is asked 10 times, as Go's client asks, and
    the attempt fails saying it stopped after 10 redirects."""
    async with redirector() as server:
        server.answers["/loop"] = (307, lambda: "/loop")
        result = await attempt(receiver(tmp_path, server.url + "/loop"))
    assert (result.outcome, result.error_type) == (Outcome.RETRY, "RedirectNotFollowed")
    assert "stopped after 10 redirects" in (result.error or "")
    assert len(server.hops) == 10


async def test_the_receivers_timeout_covers_the_whole_chain_of_redirects(tmp_path: Path) -> None:
    """Each hop answering after 0.3 s, a receiver with a 1 s timeout gives up on the chain
    after about 1 s, as Go's client timeout covers its redirects, rather than 1 s per hop."""
    async with redirector() as server:
        server.answers["/loop"] = (307, lambda: "/loop")
        server.delay = 0.3
        result = await attempt(receiver(tmp_path, server.url + "/loop", timeout=1.0))
    assert (result.outcome, result.error) == (Outcome.RETRY, "timed out after 1s"), result
    assert len(server.hops) < 10  # about 4: however slow the host, not all 10


async def test_with_follow_redirects_false_a_307_is_a_final_failure(tmp_path: Path) -> None:
    """follow_redirects: false: a 307 is not followed and is final."""
    async with redirector() as server:
        server.answers["/hook"] = (307, lambda: "/moved")
        result = await attempt(receiver(tmp_path, server.url + "/hook", "false"))
    assert (result.outcome, result.status, result.error) == (Outcome.REJECTED, 307, "HTTP 307")
    assert [hop.path for hop in server.hops] == ["/hook"]


async def test_without_follow_redirects_a_308_is_followed_as_alertmanager_follows_it(
    tmp_path: Path,
) -> None:
    """follow_redirects absent is true, prometheus/common's default: a receiver pasted from
    Alertmanager without the key, and so a receiver of EXESDB_WEBHOOK_URLS, follows a 308."""
    async with redirector() as server:
        server.answers["/hook"] = (308, lambda: "/moved")
        result = await attempt(receiver(tmp_path, server.url + "/hook", None))
        [from_urls], _ = resolve_receivers(
            [server.url + "/hook"],
            None,
            secret=SecretStr(SECRET),
            timeout=5.0,
            max_alerts=0,
            min_severity="warning",
        )
        from_environment = await attempt(from_urls)
    assert result.outcome is Outcome.DELIVERED, result
    assert from_environment.outcome is Outcome.DELIVERED, from_environment
    assert [hop.path for hop in server.hops] == ["/hook", "/moved"] * 2
    assert server.hops[1].body == BODY


async def test_the_alertmanager_poster_follows_a_307_and_refuses_a_302(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The poster's http_config follows redirects the same way: a 307 takes its alerts to the
    new path; a 302 fails the post, logged saying why."""
    client = ClientSettings(HTTPClientConfig.model_validate({"follow_redirects": True}))
    results: list[PostResult] = []
    async with redirector() as server:
        server.answers["/api/v2/alerts"] = (307, lambda: "/moved/api/v2/alerts")
        async with poster_to(server.url, tmp_path / "a", client=client) as (poster, outbox, clock):
            outbox.alerts.apply([event("a1")], clock.now)
            poster.start()
            await async_wait_until(lambda: len(server.hops) == 2, what="the post, redirected")
        first, moved = server.hops
        assert moved.path == "/moved/api/v2/alerts"
        assert moved.body == first.body
        assert b'"alert_id": "a1"' in moved.body

        server.answers["/api/v2/alerts"] = (302, lambda: "/moved/api/v2/alerts")
        async with poster_to(server.url, tmp_path / "b", client=client, count=results.append) as (
            poster,
            outbox,
            clock,
        ):
            outbox.alerts.apply([event("a2")], clock.now)
            poster.start()
            await async_wait_until(lambda: results, what="the post, failed")
    assert results[0] is PostResult.FAILED
    assert [hop.path for hop in server.hops[2:]] == ["/api/v2/alerts"]
    assert any("would turn the POST into a GET" in r.getMessage() for r in caplog.records)
