"""The test servers start on a port of their own even when another process takes it first, and
one missing fails its tests under CI; the Redis proxy holds only the connections still open."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.integration.redis_proxy import Proxy
from tests.integration.servers.podman import Podman
from tests.integration.servers.prometheus import PrometheusServer
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import BridgeProcess, async_wait_until, http_get, listens, require_binary

__all__ = ["redis_server"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.integration


def test_a_redis_whose_free_port_another_redis_took_starts_again_on_another(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """Another worker's redis-server on the port free_port gave answers PING too: the server
    is ready only when its own process listens, so it moves to another port and serves there."""
    first = redis_server()
    second = RedisServer()
    second.port = first.port  # as if the other took it between free_port() and the bind
    try:
        second.start(tmp_path / "second")
        assert second.process is not None
        assert second.port != first.port
        assert listens(second.process.pid, second.port)
        assert first.running
        assert "address already in use" in second.log().lower()
    finally:
        second.stop()


def test_a_redis_restarted_on_its_port_fails_clearly_when_another_took_it(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """A restart keeps the port a test may have handed on: when it is taken meanwhile the start
    fails naming the cause, instead of moving or taking the other server for its own."""
    server = redis_server()
    server.stop()
    with (
        socket.create_server(("127.0.0.1", server.port)),
        pytest.raises(pytest.fail.Exception, match=r"(?i)address already in use"),
    ):
        server.start()


async def test_the_redis_proxy_forgets_the_connections_that_ended(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Clients that connect through the Redis proxy and leave are no longer held by it (it
    kept every one it ever served); closed, it has none."""
    proxy = await Proxy(redis_server().port).start()
    try:
        for _ in range(3):
            client = Redis.from_url(proxy.url)
            assert await client.ping()
            await client.aclose()
        await async_wait_until(lambda: proxy.connections == 0, 10, "the connections forgotten")
        client = Redis.from_url(proxy.url)
        assert await client.ping()
        assert proxy.connections == 1
    finally:
        await proxy.aclose()
    assert proxy.connections == 0
    await client.aclose()


def test_a_prometheus_whose_free_port_was_taken_starts_again_on_another(tmp_path: Path) -> None:
    """Prometheus exits when its port is taken before it binds; it is started again on
    another port instead of failing the test."""
    server = PrometheusServer(require_binary("prometheus"), tmp_path, ["127.0.0.1:9"])
    try:
        with socket.create_server(("127.0.0.1", 0)) as taken:
            server.port = taken.getsockname()[1]
            server.start()
            assert server.port != taken.getsockname()[1]
        assert server.process is not None
        assert listens(server.process.pid, server.port)
    finally:
        server.stop()


def test_a_bridge_whose_free_port_was_taken_starts_again_on_another(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """A bridge that cannot listen on the port free_port gave exits saying so; it is started
    again on another port, where its own process serves /healthz."""
    bridge = BridgeProcess()
    bridge_processes.append(bridge)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        bridge.port = port
        bridge.env["EXESDB_HTTP_ADDR"] = f"127.0.0.1:{port}"
        bridge.start(tmp_path)
    assert bridge.port != port
    assert bridge.process is not None
    assert listens(bridge.process.pid, bridge.port)
    assert http_get(bridge.url + "/healthz")[0] == 200


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_without_podman_the_container_tests_fail_under_ci_and_are_skipped_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    """With no podman on PATH, the container tests' podman fails them under CI=true (as .ci/run
    sets it), so CI cannot pass without running them, and skips them elsewhere."""
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory
    monkeypatch.setenv("CI", ci)
    # Both caught, so that the wrong one fails here instead of ending the test as it would.
    with pytest.raises(
        (pytest.fail.Exception, pytest.skip.Exception), match="podman is not installed"
    ) as ended:
        Podman()
    assert ended.type is outcome
