"""The fixtures the page tests share: an HTTP client (``client``), and the Alertmanager and webhook
receiver servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration.servers.alertmanager import alertmanager_server
from tests.integration.servers.webhook import webhook_receiver

__all__ = ["alertmanager_server", "webhook_receiver"]  # the fixtures, imported for the tests here


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client, closed afterwards."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
