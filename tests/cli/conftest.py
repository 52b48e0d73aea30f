"""The fixtures the tests of ``tests/cli`` share: a bridge in the test's process, a Redis
server, a loopback server for ``healthcheck`` to ask."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cli.healthcheck_helpers import Server
from tests.cli.helpers import Bridges
from tests.integration.servers.redis import redis_server
from tests.pages.helpers import page_bridge
from tests.support import ThreadedBridge

__all__ = ["redis_server"]


@pytest.fixture
def bridges() -> Iterator[Bridges]:
    """Starts a bridge in this process (``page_bridge``: the Prometheus and alert sinks, admin
    token ``ADMIN_TOKEN``, its state in the folder given's ``state``) with the settings given;
    every one is closed after the test. For a test of a client command that needs a bridge to
    talk to, not one about ``run``: it costs no process start."""

    def start(tmp_path: Path, **env: str) -> ThreadedBridge:
        return started.enter_context(page_bridge(tmp_path / "state", **env))

    with contextlib.ExitStack() as started:
        yield start


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A started-on-demand loopback server, cleaned up afterwards."""
    made = Server()
    yield made
    await made.aclose()
