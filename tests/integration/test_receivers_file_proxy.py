"""A receivers file's proxy_url, no_proxy and proxy_connect_header against real proxies in
front of real receivers, plain HTTP and HTTPS through a CONNECT tunnel (in-process bridge)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import trustme

from bridge.httpclient.client import basic_auth
from tests.integration.receivers_file_support import ForwardProxy, delivered, served_by, write
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.support import stop_accepting

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below


async def test_a_receiver_behind_proxy_url_gets_the_alert_through_the_proxy(
    tmp_path: Path, webhook_receiver
) -> None:
    """proxy_url sends the request through the proxy, its credentials as Proxy-Authorization
    (to the proxy only) and the receiver's own authorization to the receiver."""
    receiver: WebhookReceiver = webhook_receiver(authorization="Bearer through")
    proxy = await ForwardProxy().start()
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      authorization: {{credentials: through}}
      proxy_url: http://proxy-user:proxy-pass@127.0.0.1:{proxy.port}
""",
    )
    try:
        await delivered(
            tmp_path / "state", config, receiver, "proxied-1", what="a delivery via the proxy"
        )
    finally:
        await proxy.aclose()
    assert proxy.seen == [(receiver.url, basic_auth("proxy-user", "proxy-pass"))]
    [request] = receiver.requests
    assert "Proxy-Authorization" not in request.headers
    assert request.alert_ids() == ["proxied-1"]


async def test_with_no_proxy_a_loopback_receiver_is_reached_without_the_proxy(
    tmp_path: Path, webhook_receiver
) -> None:
    """Once no_proxy is set, a receiver on loopback is asked directly, as Go's httpproxy (and so
    Alertmanager) does: the alert arrives and the proxy sees nothing."""
    receiver: WebhookReceiver = webhook_receiver()
    proxy = await ForwardProxy().start()
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      proxy_url: http://127.0.0.1:{proxy.port}
      no_proxy: other.example
""",
    )
    try:
        await delivered(tmp_path / "state", config, receiver, "direct-1", what="a direct delivery")
    finally:
        await proxy.aclose()
    assert proxy.seen == []
    assert receiver.requests[0].alert_ids() == ["direct-1"]


class ConnectProxy:
    """A CONNECT proxy on 127.0.0.1: records the target and headers of each CONNECT, then
    pipes bytes both ways (an https:// request's TLS runs end to end through it)."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, dict[str, str]]] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        # Closed by aclose: Python 3.11's Server.close() leaves accepted connections open, for
        # the garbage collector to warn about in whichever test runs next.
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> ConnectProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._tunnel(reader, writer)
        finally:
            writer.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in head[1:] if line)
        self.connects.append((target, headers))
        if method != "CONNECT":
            writer.close()
            return
        host, _, port = target.rpartition(":")
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        self._writers.add(upstream_writer)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def aclose(self) -> None:
        if self.server is not None:
            await stop_accepting(self.server)
        for writer in self._writers:
            writer.close()
        if self.server is not None:
            await self.server.wait_closed()


async def test_an_https_receiver_behind_a_proxy_gets_the_alert_with_proxy_connect_header(
    tmp_path: Path, webhook_receiver
) -> None:
    """An https:// receiver behind proxy_url is reached through a CONNECT tunnel whose request
    carries proxy_connect_header and the proxy URL's credentials; the receiver's own
    authorization goes inside the tunnel only."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    receiver: WebhookReceiver = webhook_receiver(
        ssl_context=served_by(ca), authorization="Bearer inside"
    )
    proxy = await ConnectProxy().start()
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      authorization: {{credentials: inside}}
      tls_config: {{ca_file: ca.pem}}
      proxy_url: http://proxy-user:proxy-pass@127.0.0.1:{proxy.port}
      proxy_connect_header:
        X-Proxy-Tenant: [tenant-7]
""",
    )
    try:
        await delivered(
            tmp_path / "state", config, receiver, "tunnel-1", what="a delivery via CONNECT"
        )
    finally:
        await proxy.aclose()
    [(target, headers)] = proxy.connects
    assert target == receiver.url.split("/")[2]
    assert headers["X-Proxy-Tenant"] == "tenant-7"
    assert headers["Proxy-Authorization"] == basic_auth("proxy-user", "proxy-pass")
    assert "Authorization" not in headers
    assert receiver.requests[0].headers["Authorization"] == "Bearer inside"
