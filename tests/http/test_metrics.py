"""The ``/metrics`` endpoint: text or OpenMetrics as negotiated, gzip when acceptable, HEAD without
a body, the Prometheus sink's caps as configured."""

from __future__ import annotations

import asyncio
import gzip
import logging

import pytest

from bridge.sinks.prometheus import prometheus_sink
from tests.http.helpers import ServerFactory
from tests.support import answered_unread, async_wait_until, unread_bound


async def test_metrics_speaks_text_openmetrics_and_gzip(serve: ServerFactory) -> None:
    """/metrics answers Prometheus text 0.0.4, OpenMetrics on request, gzip when accepted."""
    server = await serve()
    async with server.session.get(server.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "exesdb_bus_rejected_total" in await response.text()
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with server.session.get(server.url + "/metrics", headers=headers) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await response.text()).endswith("# EOF\n")
    async with server.session.get(
        server.url + "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert b"exesdb_build_info" in gzip.decompress(await response.read())


async def test_metrics_gives_the_prometheus_sinks_caps_as_configured(serve: ServerFactory) -> None:
    """/metrics gives EXESDB_MAX_SERIES as exesdb_prometheus_series_limit and
    EXESDB_MAX_SERIES_BYTES as exesdb_prometheus_series_bytes_limit, to draw and alert on what
    is held against."""
    server = await serve(
        [prometheus_sink], EXESDB_MAX_SERIES="5000", EXESDB_MAX_SERIES_BYTES="3145728"
    )
    async with server.session.get(server.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert "\nexesdb_prometheus_series_limit 5000.0\n" in text
    assert "\nexesdb_prometheus_series_bytes_limit 3145728.0\n" in text


async def test_metrics_pipelined_by_a_client_reading_nothing_are_rendered_as_the_socket_takes_them(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A client pipelining requests for /metrics and reading no answer has them rendered only
    as the sockets take them, not every one kept in the bridge's memory (an exposition under
    64 KiB: aiohttp waits for the socket only past that); its leaving logs no traceback."""
    server = await serve()
    assert server.bridge.address is not None
    rendered: list[str] = []
    render = server.bridge.render_metrics

    def counted(accept: str) -> tuple[bytes, str]:
        rendered.append(accept)
        return render(accept)

    monkeypatch.setattr(server.bridge, "render_metrics", counted)
    size = len(render("")[0])
    bound = unread_bound(size)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    with caplog.at_level(logging.DEBUG, logger="bridge.listener.guard"):
        answered = await answered_unread(
            server.bridge.address, request, 2 * bound + 10, lambda: len(rendered)
        )
        assert 0 < answered <= bound, (answered, bound)
        await async_wait_until(
            lambda: any(
                r.levelno >= logging.ERROR or "went away" in r.getMessage() for r in caplog.records
            ),
            what="the handler told the client left",
        )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_head_metrics_sends_no_body_even_when_gzip_is_accepted(serve: ServerFactory) -> None:
    """HEAD /metrics with ``Accept-Encoding: gzip`` answers headers only: on a keep-alive
    connection the next answer starts right after them, with no stray bytes between."""
    server = await serve()
    assert server.bridge.address is not None
    reader, writer = await asyncio.open_connection(*server.bridge.address)
    try:
        writer.write(
            b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        answers = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, rest = answers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: " in head.lower()
    assert rest.startswith(b"HTTP/1.1 200"), rest[:40]


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("br, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000, identity", False),
        ("identity", False),
        ("", False),
    ],
)
async def test_metrics_gzips_only_when_gzip_is_acceptable(
    serve: ServerFactory, accept_encoding: str, gzipped: bool
) -> None:
    """gzip when Accept-Encoding names it with a weight above 0; ``gzip;q=0`` refuses it."""
    server = await serve()
    headers = {"Accept-Encoding": accept_encoding}
    async with server.session.get(
        server.url + "/metrics", headers=headers, auto_decompress=False
    ) as response:
        body = await response.read()
    assert response.status == 200
    assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
    assert b"exesdb_build_info" in (gzip.decompress(body) if gzipped else body)


async def test_metrics_gzips_at_the_fastest_level_with_a_content_length(
    serve: ServerFactory,
) -> None:
    """A gzipped /metrics is compressed at zlib's fastest level (the gzip header's XFL is 4),
    whole, and sent with its Content-Length rather than chunked."""
    server = await serve()
    async with server.session.get(
        server.url + "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as response:
        body = await response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in response.headers
    assert body[:2] == b"\x1f\x8b"
    assert body[8] == 4  # XFL: "compressor used fastest algorithm" (RFC 1952, 2.3.1)
    assert b"exesdb_build_info" in gzip.decompress(body)


async def test_metrics_answers_text_to_a_scraper_weighting_text_above_openmetrics(
    serve: ServerFactory,
) -> None:
    """Prometheus' ``scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]`` lists both,
    text weighted higher: it gets text 0.0.4, not OpenMetrics."""
    server = await serve()
    headers = {
        "Accept": "text/plain;version=0.0.4;q=0.6,"
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4"
    }
    async with server.session.get(server.url + "/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "# EOF" not in await response.text()


async def test_metrics_answers_text_for_an_accept_it_cannot_read(serve: ServerFactory) -> None:
    """An OpenMetrics version prometheus_client cannot compare gets text 0.0.4, not a 500."""
    server = await serve()
    headers = {"Accept": "application/openmetrics-text; version=one"}
    async with server.session.get(server.url + "/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "# EOF" not in await response.text()
