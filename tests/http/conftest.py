"""The fixture the tests of ``tests/http`` share: in-process bridges on a free loopback port
(``serve``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.component import ComponentFactory
from tests.http.helpers import Server, ServerFactory
from tests.support import ADMIN_TOKEN, make_settings


@pytest.fixture
async def serve() -> AsyncIterator[ServerFactory]:
    """Start in-process bridges on 127.0.0.1:0 with the given settings (and wall clock); all
    closed afterwards."""
    started: list[tuple[Bridge, aiohttp.ClientSession]] = []

    async def start(
        components: list[ComponentFactory] | None = None,
        clock: Callable[[], float] = time.time,
        **env: str,
    ) -> Server:
        defaults = {
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            "EXESDB_INGEST": "true",
            "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        settings = make_settings(**{**defaults, **env})
        bridge = Bridge(settings, components=components or [], clock=clock)
        await bridge.start()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        started.append((bridge, session))
        server = Server(bridge, session)
        bridge.bus.subscribe("test-inbox", server.delivered.append)
        return server

    yield start
    for bridge, session in started:
        await session.close()
        await bridge.aclose()
