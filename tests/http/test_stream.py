"""The server-sent event stream (``/v1/stream``): published messages delivered, bad filters
refused, a client that reads slowly or leaves holding nothing."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket

import aiohttp
import pytest
from aiohttp import web

from bridge.app import Bridge
from bridge.http import build_app
from tests.http.helpers import ServerFactory, body_of, envelope
from tests.support import ADMIN_TOKEN, async_wait_until, make_settings


async def test_stream_delivers_published_messages_as_server_sent_events(
    serve: ServerFactory,
) -> None:
    """GET /v1/stream sends each verified message as an SSE event naming its tag."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(
        server.url + "/v1/stream", params={"topic": "cluster:*"}, headers=auth
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert (await response.content.readline()).startswith(b": connected")
        other = body_of(envelope(topic="elsewhere"))
        wanted = envelope()
        assert (await server.post(other))[0] == 202
        assert (await server.post(body_of(wanted)))[0] == 202
        event = await asyncio.wait_for(_next_line(response), 10)
        data = await asyncio.wait_for(_next_line(response), 10)
    assert event == b"event: node_health_updated\n"
    assert data.startswith(b"data: ")
    assert json.loads(data[6:])["id"] == wanted["id"]


async def test_a_head_of_the_stream_is_refused_not_streamed(serve: ServerFactory) -> None:
    """HEAD /v1/stream answers 405 naming GET: an endless stream has no head to give, and
    streamed on a HEAD its events would pass for the next answer on the connection."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.head(server.url + "/v1/stream", headers=auth) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
    assert not any(s.name == "stream" for s in server.bridge.bus.subscriptions)


async def test_a_stream_client_that_does_not_read_holds_megabytes_not_its_thousand_messages(
    serve: ServerFactory,
) -> None:
    """A stream client that reads nothing holds at most about 8 MiB of events in the bridge
    however large the messages: of 60 messages of a megabyte each, those past it are dropped
    for that client and counted, not kept (1 000 of them would be a gigabyte)."""
    server = await serve()
    assert server.bridge.address is not None
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel keeps little
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, server.bridge.address)
    reader, writer = await asyncio.open_connection(sock=client)
    writer.write(
        f"GET /v1/stream HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        "\r\n".encode()
    )
    assert b"200" in await reader.readline()
    await async_wait_until(
        lambda: any(s.name == "stream" for s in server.bridge.bus.subscriptions),
        what="the stream subscribed",
    )
    metadata = {f"k{n}": "x" * 65_000 for n in range(15)}  # a megabyte a message
    big = envelope(
        instance="ex_esdb_logging",
        tag="log_entry",
        payload={"level": "info", "message": "m", "module": "app", "metadata": metadata},
    )
    try:
        for _ in range(60):
            assert (await server.post(body_of({**big, "id": secrets.token_hex(8)})))[0] == 202
        dropped = server.bridge.registry.get_sample_value(
            "exesdb_bus_dropped_total", {"subscriber": "stream"}
        )
    finally:
        writer.close()
    # At most 8 MiB queued, and what the socket buffers and the write under way hold.
    assert (dropped or 0.0) >= 30, dropped


async def _next_line(response: aiohttp.ClientResponse) -> bytes:
    """The next SSE line that is neither blank nor a comment."""
    while True:
        line = await response.content.readline()
        if line.strip() and not line.startswith(b":"):
            return line


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"instance": "ex_esdb_nothing"}, "instance"),
        ({"topic": "a b"}, "topic"),
        ({"instances": "ex_esdb_alerts"}, "instances"),  # misspelt: not every message instead
    ],
)
async def test_stream_refuses_bad_filters(
    serve: ServerFactory, query: dict[str, str], field: str
) -> None:
    """An unknown instance, a bad topic pattern or an unknown parameter answers 400 naming it."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(
        server.url + "/v1/stream", params=query, headers=auth
    ) as response:
        assert response.status == 400
        assert (await response.json())["field"] == field


_STREAM_INSTANCES = (
    "allowed: ex_esdb_system, ex_esdb_health, ex_esdb_metrics, ex_esdb_lifecycle, ex_esdb_alerts,"
    " ex_esdb_audit, ex_esdb_diagnostics, ex_esdb_security, ex_esdb_logging"
)


@pytest.mark.parametrize(
    ("instance", "detail"),
    [
        ("ex_esdb_healt", f"unknown bus instance 'ex_esdb_healt'; {_STREAM_INSTANCES};"
         " did you mean 'ex_esdb_health'?"),
        ("EX_ESDB_ALERTS", f"unknown bus instance 'EX_ESDB_ALERTS'; {_STREAM_INSTANCES};"
         " did you mean 'ex_esdb_alerts'?"),
        ("nosuch", f"unknown bus instance 'nosuch'; {_STREAM_INSTANCES}"),
        ("", f"unknown bus instance ''; {_STREAM_INSTANCES}"),
    ],
    ids=["misspelt", "upper-case", "like-none", "empty"],
)  # fmt: skip
async def test_stream_names_the_instances_it_takes_when_one_is_unknown(
    serve: ServerFactory, instance: str, detail: str
) -> None:
    """An unknown ?instance= (an empty one too, as an empty ?topic= is refused: not every
    instance) is answered with the nine it takes, as ingest's unknown_instance is, so that curl's
    user need not look them up, and the one meant when it is spelt nearly as one, as a misspelt
    setting's word is."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(
        server.url + "/v1/stream", params={"instance": instance}, headers=auth
    ) as response:
        assert response.status == 400
        assert (await response.json())["detail"] == detail


async def test_shutdown_is_not_held_by_a_connected_stream_client(serve: ServerFactory) -> None:
    """Closing the bridge with an SSE client attached ends the stream at once."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(server.url + "/v1/stream", headers=auth) as response:
        assert (await response.content.readline()).startswith(b": connected")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(server.bridge.aclose(), 15)
        # Well under aiohttp's 2 s shutdown timeout: streams end at once, not when it runs out.
        assert loop.time() - started < 1.5
    assert all(subscription.name != "stream" for subscription in server.bridge.bus.subscriptions)


async def test_a_stream_client_gone_before_the_head_is_written_leaves_no_subscription() -> None:
    """A client that disconnects while the stream's response head is being prepared (a response
    hook, such as the web config's headers, may wait) leaves no subscription behind."""
    bridge = Bridge(
        make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_ADMIN_TOKEN=ADMIN_TOKEN),
        components=[],
    )
    await bridge.start(serve_http=False)
    held: list[web.BaseRequest] = []
    release = asyncio.Event()

    async def hold(request: web.BaseRequest, response: web.StreamResponse) -> None:
        if request.path == "/v1/stream":
            held.append(request)
            await release.wait()

    app = build_app(bridge)
    app.on_response_prepare.append(hold)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]

    def streams() -> int:
        return sum(1 for s in bridge.bus.subscriptions if s.name == "stream")

    try:
        async with aiohttp.ClientSession() as session:
            client = asyncio.create_task(
                session.get(
                    f"http://127.0.0.1:{port}/v1/stream",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
            )
            await async_wait_until(lambda: held, what="the stream's head held")
            assert streams() == 1
            client.cancel()  # the client gives up and its connection closes
            await asyncio.gather(client, return_exceptions=True)
        await async_wait_until(
            lambda: held[0].transport is None or held[0].transport.is_closing(),
            what="the server seeing the client gone",
        )
        release.set()
        await async_wait_until(lambda: streams() == 0, what="the subscription gone")
    finally:
        release.set()
        await runner.cleanup()
        await bridge.aclose()
