"""Whose TLS files the Redis transport looks after for a rotation: its own client's only."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from bridge.bus.redis import RedisTransport
from tests.support import free_port, pem_files

RELOADED = "exesdb_redis_tls_files_last_reload_successful"


async def test_a_client_given_by_the_caller_is_not_watched_for_rotated_tls_files(
    tmp_path: Path,
) -> None:
    """With a rediss:// URL naming a CA file, the transport's own client has the TLS files
    gauges; a client the caller gives is the caller's, and has none (nothing looks at its
    files or replaces its pool)."""
    url = f"rediss://127.0.0.1:{free_port()}/0?ssl_ca_certs={pem_files(tmp_path)['ca.pem']}"
    own, given = CollectorRegistry(), CollectorRegistry()
    transports = [
        RedisTransport(url, node="node-a", registry=own),
        RedisTransport(url, node="node-b", registry=given, client=Redis.from_url(url)),
    ]
    try:
        assert own.get_sample_value(RELOADED) == 1
        assert given.get_sample_value(RELOADED) is None
    finally:
        for transport in transports:
            await transport.aclose()
