"""http_config.oauth2 against a real token endpoint and real receivers: the client-credentials
grant, the token kept, fetched again when it expires, is refused or the secret rotates, and a
failing token endpoint retried from the outbox without losing the alert."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import trustme

from bridge.app import Bridge
from bridge.httpclient import TokenSources
from bridge.httpclient.client import basic_auth
from bridge.receivers import read_receivers_file, resolve_receivers
from bridge.sinks.alerts import AlertSink, DeliveryState
from bridge.sinks.alerts.delivery import AttemptResult, Outcome, WebhookSender
from bridge.sinks.alerts.records import Delivery
from tests.integration.receivers_file_support import ForwardProxy, served_by
from tests.integration.servers.oauth2 import TokenServer, token_server
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.integration.test_redirects import redirector
from tests.sinks.alerts.helpers import alert_bridge, system_alert
from tests.sinks.alerts.test_alertmanager import Receiver
from tests.support import ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["token_server", "webhook_receiver"]  # the fixtures, imported for the tests below

# A space and characters that basic auth and forms escape (RFC 6749 section 2.3.1).
CLIENT_ID = "exesdb bridge"
CLIENT_SECRET = "client-s3cr3t:&+/%"
FAST: dict[str, Any] = {
    "EXESDB_WEBHOOK_BACKOFF_MS": "50",
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "200",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
}


def receivers_file(
    folder: Path, url: str, token_url: str, secret: str = f"client_secret: '{CLIENT_SECRET}'"
) -> Path:
    """A receivers file whose one receiver, at ``url``, authorizes with ``oauth2`` at
    ``token_url`` (``secret``: the line giving the client secret), as in Alertmanager."""
    path = folder / "receivers.yml"
    path.write_text(
        f"""
webhook_configs:
  - url: {url}
    http_config:
      oauth2:
        client_id: {CLIENT_ID}
        {secret}
        token_url: {token_url}
        scopes: [alerts.write, alerts.read]
        endpoint_params: {{audience: hooks, resource: r1}}
"""
    )
    return path


def sender_for(
    config: Path,
    clock: ManualClock | None = None,
    timeout: float = 5.0,
    tokens: TokenSources | None = None,
) -> WebhookSender:
    """The sender of the one receiver of the receivers file ``config``, its tokens timed by
    ``clock`` when given (and shared through ``tokens``), its attempts limited to ``timeout``
    seconds."""
    [receiver], _ = resolve_receivers(
        [],
        read_receivers_file(config),
        secret=None,
        timeout=timeout,
        max_alerts=0,
        min_severity="warning",
    )
    if clock:
        return WebhookSender(receiver, monotonic=clock, tokens=tokens)
    return WebhookSender(receiver, tokens=tokens)


def delivery(number: int) -> Delivery:
    """A pending delivery of one alert, as the outbox hands a worker."""
    return Delivery(
        id=f"{number:016d}",
        url="key",
        body=b'{"alerts": []}',
        alert_ids=(f"a{number}",),
        created_at=0.0,
        attempts=0,
        next_attempt_at=0.0,
        state=DeliveryState.PENDING,
        last_status=None,
        last_error=None,
        finished_at=None,
    )


def delivered(sink: AlertSink, alert_id: str) -> bool:
    """Whether ``sink``'s outbox holds the delivery of ``alert_id`` as delivered."""
    return any(
        d.alert_ids == (alert_id,) and d.state is DeliveryState.DELIVERED
        for d in sink.outbox.queue.deliveries()
    )


def bearers(receiver: WebhookReceiver) -> list[str | None]:
    """The Authorization header of each request the receiver got."""
    return [request.headers.get("Authorization") for request in receiver.requests]


async def test_the_receiver_gets_the_token_issued_for_the_client_credentials_grant(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """The token endpoint is asked with grant_type=client_credentials, the scopes joined by
    spaces and the endpoint_params, the client authenticated by HTTP basic auth with its id and
    secret form-urlencoded; the receiver gets `Authorization: Bearer <that token>`."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    receiver: WebhookReceiver = webhook_receiver()
    sender = sender_for(receivers_file(tmp_path, receiver.url, server.url))
    try:
        result = await sender.send(delivery(1))
    finally:
        await sender.aclose()
    assert result.ok, result.error
    assert bearers(receiver) == ["Bearer access-tok3n-1"]
    [asked] = server.requests
    assert asked.form == {
        "grant_type": "client_credentials",
        "scope": "alerts.write alerts.read",
        "audience": "hooks",
        "resource": "r1",
    }
    assert (asked.client, asked.way) == ((CLIENT_ID, CLIENT_SECRET), "basic")
    assert asked.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert asked.headers["User-Agent"].startswith("exesdb-bridge/")


async def test_the_token_is_kept_until_shortly_before_it_expires_then_fetched_again(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """A token with expires_in 60 serves every delivery for 50 s (10 s early, as
    golang.org/x/oauth2), then the next delivery fetches another, on the injected clock."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET, expires_in=60)
    receiver: WebhookReceiver = webhook_receiver()
    clock = ManualClock()
    sender = sender_for(receivers_file(tmp_path, receiver.url, server.url), clock)
    try:
        assert (await sender.send(delivery(1))).ok
        assert (await sender.send(delivery(2))).ok
        clock.advance(49)
        assert (await sender.send(delivery(3))).ok
        assert len(server.requests) == 1
        clock.advance(2)
        assert (await sender.send(delivery(4))).ok
    finally:
        await sender.aclose()
    assert bearers(receiver) == ["Bearer access-tok3n-1"] * 3 + ["Bearer access-tok3n-2"]
    assert len(server.requests) == 2


async def test_the_token_endpoint_is_trusted_through_the_oauth2_blocks_own_tls_config(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """oauth2.tls_config is the token endpoint's, the http_config's tls_config the receiver's:
    an HTTPS token endpoint behind one private CA and an HTTPS receiver behind another are each
    trusted through their own."""
    idp_ca, hook_ca = trustme.CA(), trustme.CA()
    idp_ca.cert_pem.write_to_path(str(tmp_path / "idp-ca.pem"))
    hook_ca.cert_pem.write_to_path(str(tmp_path / "hook-ca.pem"))
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET, ssl_context=served_by(idp_ca))
    receiver: WebhookReceiver = webhook_receiver(ssl_context=served_by(hook_ca))
    config = tmp_path / "receivers.yml"
    config.write_text(
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      tls_config: {{ca_file: hook-ca.pem}}
      oauth2:
        client_id: {CLIENT_ID}
        client_secret: '{CLIENT_SECRET}'
        token_url: {server.url}
        tls_config: {{ca_file: idp-ca.pem}}
"""
    )
    sender = sender_for(config)
    try:
        result = await sender.send(delivery(1))
    finally:
        await sender.aclose()
    assert result.ok, result.error
    assert bearers(receiver) == ["Bearer access-tok3n-1"]


async def test_an_untrusted_token_endpoint_is_told_to_get_its_ca_in_the_oauth2_block(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """A token endpoint behind a private CA that the oauth2 block does not name fails the
    attempt with the hint to give that CA in the oauth2 block's tls_config, where the token
    request looks for it, not the http_config's, which is the receiver's."""
    server: TokenServer = token_server(
        CLIENT_ID, CLIENT_SECRET, ssl_context=served_by(trustme.CA())
    )
    receiver: WebhookReceiver = webhook_receiver()
    sender = sender_for(receivers_file(tmp_path, receiver.url, server.url))
    try:
        result = await sender.send(delivery(1))
    finally:
        await sender.aclose()
    assert result.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    assert result.error.endswith(
        " (no CA trusted here signed its certificate: the token endpoint's own CA goes in the"
        " tls_config ca_file of the oauth2 block, not in its http_config's, in the receivers file"
        " EXESDB_WEBHOOK_CONFIG_FILE)"
    ), result.error


async def test_only_the_token_request_goes_through_the_oauth2_blocks_proxy_url(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """oauth2.proxy_url is the token endpoint's: the token request goes through that proxy,
    its credentials as Proxy-Authorization, and the delivery goes straight to the receiver."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    receiver: WebhookReceiver = webhook_receiver()
    proxy = await ForwardProxy().start()
    config = receivers_file(
        tmp_path,
        receiver.url,
        server.url,
        secret=f"client_secret: '{CLIENT_SECRET}'\n"
        f"        proxy_url: http://proxy-user:proxy-pass@127.0.0.1:{proxy.port}",
    )
    sender = sender_for(config)
    try:
        result = await sender.send(delivery(1))
    finally:
        await sender.aclose()
        await proxy.aclose()
    assert result.ok, result.error
    assert proxy.seen == [(server.url, basic_auth("proxy-user", "proxy-pass"))]
    assert [asked.client for asked in server.requests] == [(CLIENT_ID, CLIENT_SECRET)]
    assert bearers(receiver) == ["Bearer access-tok3n-1"]


async def test_a_short_lived_token_is_fetched_again_once_it_lapses_on_the_real_clock(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """With expires_in 2 a bridge's token lapses after 1 s (half its lifetime, being short):
    alerts delivered one after another carry it until then, and the first one after carries a
    new token, fetched with no 401 asking for it."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET, expires_in=2)
    receiver: WebhookReceiver = webhook_receiver()
    config = receivers_file(tmp_path, receiver.url, server.url)
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(config), **FAST}
    published: list[str] = []
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, sink, _):

        def renewed() -> bool:
            if not published or delivered(sink, published[-1]):  # one alert at a time
                published.append(f"tick-{len(published)}")
                bridge.bus.publish("disk_full", system_alert(published[-1]))
            return "Bearer access-tok3n-2" in bearers(receiver)

        await async_wait_until(renewed, within=20, what="a delivery with a second token")
    seen = bearers(receiver)
    assert seen == ["Bearer access-tok3n-1"] * (len(seen) - 1) + ["Bearer access-tok3n-2"]
    assert [r.answer.status for r in receiver.requests] == [200] * len(seen)
    assert len(server.requests) == 2


async def test_a_401_drops_a_token_without_expiry_and_the_retry_fetches_another(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """A token without expires_in serves until a receiver answers 401: that attempt is retried
    (not dead-lettered, as a 401 is without oauth2), and the retry carries a new token."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET, expires_in=None)
    receiver: WebhookReceiver = webhook_receiver(authorization="Bearer access-tok3n-1")
    config = receivers_file(tmp_path, receiver.url, server.url)
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(config), **FAST}
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("first"))
        await async_wait_until(lambda: receiver.accepted(), what="the first delivery")
        receiver.authorization = "Bearer access-tok3n-2"  # the receiver revokes the first token
        bridge.bus.publish("disk_full", system_alert("second"))
        await async_wait_until(
            lambda: delivered(sink, "second"), what="the second, retried and delivered"
        )
        deliveries = {d.alert_ids: d for d in sink.outbox.queue.deliveries()}
    assert bearers(receiver) == [
        "Bearer access-tok3n-1",
        "Bearer access-tok3n-1",
        "Bearer access-tok3n-2",
    ]
    assert [r.answer.status for r in receiver.requests] == [200, 401, 200]
    second = deliveries[("second",)]
    assert (second.state, second.attempts) == (DeliveryState.DELIVERED, 2)
    assert len(server.requests) == 2


async def test_a_rotated_client_secret_file_fetches_a_new_token_with_the_new_secret(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """client_secret_file is read at each delivery: once it holds a new secret, the token got
    with the old one is dropped and the next is fetched with the new one, without a restart."""
    (tmp_path / "client-secret").write_text("first-s3cr3t\n")
    server: TokenServer = token_server(CLIENT_ID, "first-s3cr3t")
    receiver: WebhookReceiver = webhook_receiver()
    config = receivers_file(
        tmp_path, receiver.url, server.url, secret="client_secret_file: client-secret"
    )
    sender = sender_for(config)
    try:
        assert (await sender.send(delivery(1))).ok
        (tmp_path / "client-secret.new").write_text("second-s3cr3t-rotated\n")
        (tmp_path / "client-secret.new").rename(tmp_path / "client-secret")
        server.client_secret = "second-s3cr3t-rotated"
        result = await sender.send(delivery(2))
    finally:
        await sender.aclose()
    assert result.ok, result.error
    assert [asked.client for asked in server.requests] == [
        (CLIENT_ID, "first-s3cr3t"),
        (CLIENT_ID, "second-s3cr3t-rotated"),
    ]
    assert bearers(receiver) == ["Bearer access-tok3n-1", "Bearer access-tok3n-2"]


async def test_an_endpoint_taking_the_client_credentials_in_the_form_is_asked_so_from_then_on(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """An endpoint refusing basic auth is asked again with client_id and client_secret in the
    form, and the next token is asked for that way at once (golang.org/x/oauth2's probe)."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET, expires_in=60, form_auth=True)
    receiver: WebhookReceiver = webhook_receiver()
    clock = ManualClock()
    sender = sender_for(receivers_file(tmp_path, receiver.url, server.url), clock)
    try:
        assert (await sender.send(delivery(1))).ok
        clock.advance(60)
        assert (await sender.send(delivery(2))).ok
    finally:
        await sender.aclose()
    assert [asked.way for asked in server.requests] == ["basic", "form", "form"]
    assert server.requests[1].client == (CLIENT_ID, CLIENT_SECRET)
    assert bearers(receiver) == ["Bearer access-tok3n-1", "Bearer access-tok3n-2"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            Answer(500, text='{"error": "server_error", "error_description": "try\\nlater"}'),
            "answered HTTP 500: server_error try later",
        ),
        (Answer(200, text="<html>a login page</html>"), "answered HTTP 200 with a body that is no"),
        (Answer(200, text='{"token_type": "Bearer"}'), "answered HTTP 200 without an access_token"),
        (
            Answer(200, text='{"access_token": "access-tok3n-x", "token_type": "mac"}'),
            "answered a token of type 'mac', not Bearer",
        ),
        (
            Answer(200, text='{"access_token": "access-tok3n-x", "expires_in": "soon"}'),
            "answered an expires_in that is not a number",
        ),
        (  # a whole number no float holds (int() reads it; float() overflows)
            Answer(200, text='{"access_token": "access-tok3n-x", "expires_in": 1%s}' % ("0" * 400)),
            "answered an expires_in that is not a number",
        ),
        (
            Answer(200, text='{"access_token": "access-tok3n\\r\\nX-Evil: 1"}'),
            "answered an access_token holding a character no HTTP header may carry",
        ),
        (None, "ClientConnectorError: cannot connect to 127.0.0.1:"),
    ],
)
async def test_a_failing_token_endpoint_fails_the_attempt_saying_why_without_a_secret(
    tmp_path: Path, token_server, webhook_receiver, answer: Answer | None, reason: str
) -> None:
    """A token endpoint that answers no usable token (not 2xx, not JSON, no access_token, a
    token_type other than Bearer, a bad expires_in, a token no header can carry) or cannot be
    reached fails the attempt, to be retried, naming the token URL and why, never the client
    secret nor a token; the receiver is not asked."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    receiver: WebhookReceiver = webhook_receiver()
    sender = sender_for(receivers_file(tmp_path, receiver.url, server.url))
    shown = server.url.removesuffix("/token") + "/…"
    if answer is None:
        server.stop()
    server.failing = answer
    try:
        result: AttemptResult = await sender.send(delivery(1))
    finally:
        await sender.aclose()
    assert (result.outcome, result.status) == (Outcome.RETRY, None)
    assert result.error is not None
    assert result.error.startswith(f"oauth2 token_url {shown}: {reason}"), result.error
    assert "s3cr3t" not in result.error
    assert "tok3n" not in result.error
    assert receiver.requests == []


@pytest.mark.parametrize(
    "echoed",
    [
        "x" * 175 + CLIENT_SECRET,  # the shortening cuts it after "client-s3c"
        quote_plus(CLIENT_SECRET),
        base64.b64encode(f"{quote_plus(CLIENT_ID)}:{quote_plus(CLIENT_SECRET)}".encode()).decode(),
    ],
    ids=["cut", "form-urlencoded", "basic-pair"],
)
async def test_a_token_endpoint_quoting_the_secret_it_was_sent_is_not_echoed(
    tmp_path: Path, token_server, webhook_receiver, echoed: str
) -> None:
    """An endpoint whose error_description quotes the secret as it was sent (as is, cut by the
    shortening, form-urlencoded, or in the Basic pair) has none of it shown in the reason."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    receiver: WebhookReceiver = webhook_receiver()
    sender = sender_for(receivers_file(tmp_path, receiver.url, server.url))
    server.failing = Answer(
        401, text=json.dumps({"error": "invalid_client", "error_description": echoed})
    )
    try:
        result: AttemptResult = await sender.send(delivery(1))
    finally:
        await sender.aclose()
    assert result.error is not None
    assert "<redacted>" in result.error
    assert "client-s3" not in result.error
    assert "s3cr3t" not in result.error
    assert echoed[-12:] not in result.error


async def test_a_401_from_a_redirect_s_other_origin_sent_no_token_is_final(
    tmp_path: Path, token_server
) -> None:
    """A 307 to another origin, which is sent no token, answering 401 is final as without
    oauth2: no new token would change its answer, so it is not retried for a day."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET, expires_in=60)
    async with redirector() as first, redirector("localhost") as other:
        first.answers["/hook"] = (307, lambda: other.url + "/elsewhere")
        other.answers["/elsewhere"] = (401, lambda: "")
        sender = sender_for(receivers_file(tmp_path, first.url + "/hook", server.url))
        try:
            result: AttemptResult = await sender.send(delivery(1))
        finally:
            await sender.aclose()
    assert first.hops[0].headers["Authorization"] == "Bearer access-tok3n-1"
    assert "Authorization" not in other.hops[0].headers
    assert (result.outcome, result.status, result.error) == (Outcome.REJECTED, 401, "HTTP 401")


async def test_a_token_endpoint_that_hangs_fails_the_attempt_within_the_receivers_timeout(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """A token endpoint that never answers fails the attempt once the receiver's timeout has
    passed, saying so, and the receiver is not asked."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    server.failing = Answer(hang=True)
    receiver: WebhookReceiver = webhook_receiver()
    sender = sender_for(receivers_file(tmp_path, receiver.url, server.url), timeout=0.5)
    try:
        result = await sender.send(delivery(1))
    finally:
        await sender.aclose()
    shown = server.url.removesuffix("/token") + "/…"
    assert result.error == f"oauth2 token_url {shown}: timed out after 0.5s"
    assert result.outcome is Outcome.RETRY
    assert receiver.requests == []


async def test_an_alert_waits_in_the_outbox_while_the_token_endpoint_fails_then_is_delivered(
    tmp_path: Path, token_server, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """While the token endpoint answers 503 the delivery stays pending, its last error saying
    why, retried as any failed attempt; once the endpoint recovers it is delivered. Neither the
    client secret nor a token is logged."""
    caplog.set_level(logging.INFO)
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    server.failing = Answer(503, text='{"error": "temporarily_unavailable"}')
    receiver: WebhookReceiver = webhook_receiver()
    config = receivers_file(tmp_path, receiver.url, server.url)
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(config), **FAST}
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("waits"))

        def retried() -> Delivery | None:
            listed = sink.outbox.queue.deliveries()
            return listed[0] if listed and listed[0].attempts >= 2 else None

        pending = await async_wait_until(retried, what="the delivery, failed twice")
        assert pending.state is DeliveryState.PENDING
        assert pending.last_error == (
            f"oauth2 token_url {server.url.removesuffix('/token')}/…: answered HTTP 503:"
            " temporarily_unavailable"
        )
        assert receiver.requests == []
        server.failing = None
        await async_wait_until(
            lambda: delivered(sink, "waits"), what="the delivery, once the endpoint recovered"
        )
    assert receiver.accepted_alert_ids() == {"waits"}
    assert bearers(receiver) == ["Bearer access-tok3n-1"]
    assert "oauth2 token_url" in caplog.text  # the failure is logged...
    assert "s3cr3t" not in caplog.text  # ...without the secret
    assert "tok3n" not in caplog.text


async def test_the_alertmanager_poster_posts_with_an_oauth2_token(
    tmp_path: Path, token_server
) -> None:
    """The alertmanager section's http_config takes oauth2 as a receiver's does: each post to
    Alertmanager carries the token issued for the client credentials."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    alertmanager = await Receiver().start()
    config = tmp_path / "receivers.yml"
    config.write_text(
        f"alertmanager:\n  url: {alertmanager.url}\n  http_config:\n    oauth2:\n"
        f"      client_id: {CLIENT_ID}\n      client_secret: '{CLIENT_SECRET}'\n"
        f"      token_url: {server.url}\n"
    )
    try:
        async with alert_bridge(
            tmp_path / "state", serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(config)
        ) as (bridge, _, _):
            bridge.bus.publish("disk_full", system_alert("am-oauth2"))
            await async_wait_until(lambda: alertmanager.posts, what="a post")
    finally:
        await alertmanager.stop()
    assert set(alertmanager.authorizations) == {"Bearer access-tok3n-1"}
    assert [asked.client for asked in server.requests] == [(CLIENT_ID, CLIENT_SECRET)]


def sharing_receivers_file(folder: Path, urls: list[str], token_url: str, extra: str = "") -> Path:
    """A receivers file whose receivers at ``urls`` all take ``global.http_config``, one
    ``oauth2`` block at ``token_url`` (``extra``: more top-level YAML, indented as given)."""
    path = folder / "receivers.yml"
    listed = "".join(f"  - url: {url}\n" for url in urls)
    path.write_text(
        f"""
global:
  http_config:
    oauth2:
      client_id: {CLIENT_ID}
      client_secret: '{CLIENT_SECRET}'
      token_url: {token_url}
      scopes: [alerts.write]
webhook_configs:
{listed}{extra}"""
    )
    return path


async def tell_each(bridge: Bridge, receivers: list[WebhookReceiver], alert_id: str) -> None:
    """Publish the alert ``alert_id`` and wait until each of ``receivers`` has taken it."""
    bridge.bus.publish("disk_full", system_alert(alert_id))
    await async_wait_until(
        lambda: all(alert_id in r.accepted_alert_ids() for r in receivers),
        what=f"the alert {alert_id} at each receiver",
    )


async def test_receivers_with_the_same_oauth2_block_make_one_token_request(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """Three receivers taking one oauth2 block from global.http_config, told of one alert at
    once, make one token request between them and each carry that token."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    receivers: list[WebhookReceiver] = [webhook_receiver() for _ in range(3)]
    config = sharing_receivers_file(tmp_path, [r.url for r in receivers], server.url)
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(config), **FAST}
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, _, _):
        await tell_each(bridge, receivers, "shared")
    assert [bearers(r) for r in receivers] == [["Bearer access-tok3n-1"]] * 3
    assert [asked.client for asked in server.requests] == [(CLIENT_ID, CLIENT_SECRET)]


async def test_receivers_whose_oauth2_client_id_differs_each_get_their_own_token(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """Two receivers whose oauth2 blocks differ only in client_id make a token request each,
    at the same token endpoint, and each carries its own client's token."""
    server: TokenServer = token_server(
        CLIENT_ID, CLIENT_SECRET, other_clients={"other-client": CLIENT_SECRET}
    )
    first, second = webhook_receiver(), webhook_receiver()
    config = tmp_path / "receivers.yml"
    config.write_text(
        "webhook_configs:\n"
        + "".join(
            f"""  - url: {receiver.url}
    http_config:
      oauth2:
        client_id: {client_id}
        client_secret: '{CLIENT_SECRET}'
        token_url: {server.url}
"""
            for receiver, client_id in ((first, CLIENT_ID), (second, "other-client"))
        )
    )
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(config), **FAST}
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, _, _):
        await tell_each(bridge, [first, second], "own")
    by_client = {
        asked.client[0]: f"Bearer {token}"
        for asked, token in zip(server.requests, server.issued, strict=True)
        if asked.client
    }
    assert sorted(by_client) == [CLIENT_ID, "other-client"]
    assert bearers(first) == [by_client[CLIENT_ID]]
    assert bearers(second) == [by_client["other-client"]]


async def test_a_401_to_one_receiver_renews_the_token_of_every_receiver_sharing_it(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """Receivers sharing a token without expiry, all answering 401 once it is revoked: the
    next alert reaches each with one new token, fetched once for all of them."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET, expires_in=None)
    receivers: list[WebhookReceiver] = [
        webhook_receiver(authorization="Bearer access-tok3n-1") for _ in range(3)
    ]
    config = sharing_receivers_file(tmp_path, [r.url for r in receivers], server.url)
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(config), **FAST}
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, _, _):
        await tell_each(bridge, receivers, "first")
        for receiver in receivers:
            receiver.authorization = "Bearer access-tok3n-2"  # the first token is revoked
        await tell_each(bridge, receivers, "second")
    assert len(server.requests) == 2
    for receiver in receivers:
        assert bearers(receiver)[-1] == "Bearer access-tok3n-2"
        assert [r.answer.status for r in receiver.requests if r.answer.status != 200] in (
            [],
            [401],
        )


async def test_the_alertmanager_poster_shares_the_token_of_receivers_with_the_same_oauth2(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """An alertmanager section whose oauth2 block equals the receivers' posts with their token:
    one token request serves the receiver and Alertmanager."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    receiver: WebhookReceiver = webhook_receiver()
    alertmanager = await Receiver().start()
    config = sharing_receivers_file(
        tmp_path,
        [receiver.url],
        server.url,
        extra=f"""alertmanager:
  url: {alertmanager.url}
  http_config:
    oauth2:
      client_id: {CLIENT_ID}
      client_secret: '{CLIENT_SECRET}'
      token_url: {server.url}
      scopes: [alerts.write]
""",
    )
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(config), **FAST}
    try:
        async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, _, _):
            bridge.bus.publish("disk_full", system_alert("am-shared"))
            await async_wait_until(
                lambda: alertmanager.posts and receiver.accepted_alert_ids() == {"am-shared"},
                what="a post and a delivery",
            )
    finally:
        await alertmanager.stop()
    assert set(alertmanager.authorizations) == {"Bearer access-tok3n-1"}
    assert bearers(receiver) == ["Bearer access-tok3n-1"]
    assert len(server.requests) == 1


async def test_requests_waiting_on_a_failing_token_fetch_take_its_failure_without_asking_again(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """Two senders sharing a token source, both asking for a token while the endpoint answers
    503, fail with the one fetch's reason: the endpoint is asked for one token, not one per
    sender."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    server.failing = Answer(503, text='{"error": "temporarily_unavailable"}')
    receiver: WebhookReceiver = webhook_receiver()
    config = receivers_file(tmp_path, receiver.url, server.url)
    tokens = TokenSources()
    senders = [sender_for(config, tokens=tokens) for _ in range(2)]
    try:
        results = await asyncio.gather(*(s.send(delivery(n)) for n, s in enumerate(senders)))
    finally:
        for sender in senders:
            await sender.aclose()
    shown = server.url.removesuffix("/token") + "/…"
    reason = f"oauth2 token_url {shown}: answered HTTP 503: temporarily_unavailable"
    assert [(r.outcome, r.error) for r in results] == [(Outcome.RETRY, reason)] * 2
    # One fetch: asked by basic auth, then with the credentials in the form (the probe).
    assert [asked.way for asked in server.requests] == ["basic", "form"]
    assert receiver.requests == []


async def test_a_request_waiting_on_another_s_token_fetch_fails_within_its_own_timeout(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """A sender with a 0.5 s timeout whose token is being fetched by another sender (timeout
    5 s) from an endpoint that hangs fails after its own 0.5 s, saying so, without asking the
    endpoint itself."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    server.failing = Answer(hang=True)
    receiver: WebhookReceiver = webhook_receiver()
    config = receivers_file(tmp_path, receiver.url, server.url)
    tokens = TokenSources()
    slow = sender_for(config, tokens=tokens)
    quick = sender_for(config, timeout=0.5, tokens=tokens)
    fetching = asyncio.ensure_future(slow.send(delivery(1)))
    try:
        await async_wait_until(lambda: server.requests, what="the slow sender's token request")
        result = await quick.send(delivery(2))
    finally:
        server.stop()  # ends the hang, and so the slow sender's fetch
        await fetching
        await slow.aclose()
        await quick.aclose()
    shown = server.url.removesuffix("/token") + "/…"
    assert result.error == f"oauth2 token_url {shown}: timed out after 0.5s"
    assert result.seconds < 2.5
    assert len(server.requests) == 1
    assert receiver.requests == []


async def test_a_request_waiting_on_a_token_fetch_that_timed_out_fetches_itself_with_its_time(
    tmp_path: Path, token_server, webhook_receiver
) -> None:
    """A sender (timeout 30 s) waiting on the token fetch of another (timeout 1 s) from an
    endpoint answering in 1.5 s does not take that fetch's timeout: once it times out, the
    waiter fetches a token itself and delivers."""
    server: TokenServer = token_server(CLIENT_ID, CLIENT_SECRET)
    server.delay = 1.5
    receiver: WebhookReceiver = webhook_receiver()
    config = receivers_file(tmp_path, receiver.url, server.url)
    tokens = TokenSources()
    quick = sender_for(config, timeout=1.0, tokens=tokens)
    patient = sender_for(config, timeout=30.0, tokens=tokens)
    fetching = asyncio.ensure_future(quick.send(delivery(1)))
    try:
        await async_wait_until(lambda: server.requests, what="the quick sender's token request")
        result = await patient.send(delivery(2))
        timed_out = await fetching
    finally:
        await quick.aclose()
        await patient.aclose()
    shown = server.url.removesuffix("/token") + "/…"
    assert timed_out.error == f"oauth2 token_url {shown}: timed out after 1s"
    assert (result.outcome, result.error) == (Outcome.DELIVERED, None)
    assert len(server.requests) == 2
    assert bearers(receiver) == [f"Bearer {server.issued[-1]}"]
