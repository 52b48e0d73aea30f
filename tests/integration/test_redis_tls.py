"""The bus over TLS (``rediss://``) on a real redis-server: its CA file and certificates
taken, rotated and refused, and a wrong scheme or CA told as such.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from bridge.regular_files import MAX_FILE_BYTES
from tests.integration.redis_replicas import (
    Replica,
    has_seen,
    replicas,
)
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import (
    TEST_SECRET,
    BridgeProcess,
    async_wait_until,
    pem_files,
    wait_until,
)

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]


def tls_server_and_ca_file(tmp_path: Path) -> tuple[RedisServer, Path, str]:
    """A started redis-server over TLS, a CA file trusting its certificate, and the rediss://
    URL naming that file."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    ca = tmp_path / "redis-ca.pem"
    ca.write_bytes((tmp_path / "redis-tls" / "cert.pem").read_bytes())
    return server, ca, f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={ca}"


async def test_the_bus_runs_over_tls_with_rediss(tmp_path: Path, replicas: list[Replica]) -> None:
    """With a rediss:// URL the replicas talk TLS to a TLS-only redis-server, and fan-out and
    the work queue work as over plain TCP."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    try:
        a = await Replica(server.url, "node-a").start()
        b = await Replica(server.url, "node-b").start()
        replicas += [a, b]
        for replica in (a, b):
            await async_wait_until(replica.ready, 10)
        published = a.publish_alert(1)
        for replica in (a, b):
            await async_wait_until(partial(has_seen, replica, [published]), 10, "fan-out")
        await async_wait_until(
            lambda: a.taken_alerts() + b.taken_alerts() == [published], 10, "work queue"
        )
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_ca_file_gone_is_told_by_a_connection_that_needs_it_and_its_return_taken(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A rediss:// URL's CA file removed after a replica connected with it (a rotation half
    done) fails the next replica's connections before Redis is tried: its readiness names the
    query option and the file, not Redis unreachable, and the file put back is taken at the
    next try, without a restart."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()
    said = (
        "is not connected: a TLS file EXESDB_BUS names does not load: query option"
        f" 'ssl_ca_certs': cannot read {ca}: No such file or directory"
    )
    try:
        first = await Replica(url, "node-a").start()
        replicas.append(first)
        await async_wait_until(first.ready, 10, "the first replica connected")
        ca.unlink()
        second = await Replica(url, "node-b").start()
        replicas.append(second)

        await async_wait_until(lambda: second.reason().endswith(said), 10, f"told: {said}")
        ca.write_bytes(certificate)
        await async_wait_until(second.ready, 10, "the second replica connected")
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_rotated_ca_file_is_taken_by_the_running_bus_without_a_restart(
    tmp_path: Path, replicas: list[Replica], caplog: pytest.LogCaptureFixture
) -> None:
    """The server's certificate rotated to a new CA (its connections dropped) and the rediss://
    URL's CA file replaced by the new CA while a replica runs: the replica connects again with
    the new file, says once that the TLS files changed, and delivers what was published while
    it could not connect and after, through fan-out and the work queue."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="bridge.bus.redis"):
            replica = await Replica(url, "node-a").start()
            replicas.append(replica)
            await async_wait_until(replica.ready, 10, "connected with the first CA")
            published = [replica.publish_alert(1)]
            await async_wait_until(partial(has_seen, replica, published), 10, "delivered")
            certificate = server.rotate_certificate()
            await async_wait_until(lambda: not replica.ready(), 10, "the new CA not trusted")
            published.append(replica.publish_alert(2))
            staged = tmp_path / "redis-ca.pem.new"
            staged.write_bytes(certificate)
            staged.replace(ca)  # as rotation tools do: the new file whole, at once
            await async_wait_until(replica.ready, 10, "connected with the new CA file")
            published.append(replica.publish_alert(3))
            await async_wait_until(partial(has_seen, replica, published), 10, "fan-out")
            await async_wait_until(
                lambda: sorted(replica.taken_alerts()) == published, 10, "work queue"
            )
        changed = [r.getMessage() for r in caplog.records if "TLS files" in r.getMessage()]
        assert len(changed) == 1, changed
        assert f"ssl_ca_certs {ca}" in changed[0]
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


def tls_refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The log lines refusing TLS files that do not load."""
    return [r.getMessage() for r in caplog.records if "do not load;" in r.getMessage()]


async def connected_replica(url: str, replicas: list[Replica]) -> Replica:
    """Replica node-a on ``url``, started (stopped with ``replicas``) and connected to Redis."""
    replica = await Replica(url, "node-a").start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10, "connected")
    return replica


async def test_a_ca_file_rewritten_with_what_does_not_load_is_not_taken(
    tmp_path: Path, replicas: list[Replica], caplog: pytest.LogCaptureFixture
) -> None:
    """A rediss:// URL's CA file rewritten with what does not load (a rotation half done) is
    logged once and not taken: the replica's connections, dropped by Redis, open again with the
    CA loaded before and deliver."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()

    try:
        with caplog.at_level(logging.INFO, logger="bridge.bus.redis"):
            replica = await connected_replica(url, replicas)
            ca.write_bytes(certificate[: len(certificate) // 2])
            await async_wait_until(
                lambda: tls_refusals(caplog) or "TLS files changed" in caplog.text,
                10,
                "the change judged",
            )
            with server.client() as client:
                client.client_kill_filter(_type="normal")
            published = [replica.publish_alert(1)]
            await async_wait_until(partial(has_seen, replica, published), 10, "delivered")
        [refusal] = tls_refusals(caplog)
        assert f"query option 'ssl_ca_certs': {ca}" in refusal, refusal
        assert "TLS files changed" not in caplog.text
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


RELOADED = "exesdb_redis_tls_files_last_reload_successful"


LOADED_AT = "exesdb_redis_tls_files_last_reload_success_timestamp_seconds"


async def test_a_tls_file_grown_over_its_limit_is_refused_and_the_one_loaded_kept(
    tmp_path: Path, replicas: list[Replica], caplog: pytest.LogCaptureFixture
) -> None:
    """A rediss:// URL's CA file grown over MAX_FILE_BYTES (the CA with a log copied after it
    by mistake, which OpenSSL would load) is refused, logged once naming the query option, the
    file and the limit, and not taken (the reload gauge at 0): read and hashed whole each second
    on the event loop, 500 MB there held every request for most of each second. The replica's
    connections, dropped by Redis, open again with the CA loaded before and deliver; the file
    put back is taken."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()
    staged = tmp_path / "redis-ca.pem.new"

    try:
        with caplog.at_level(logging.INFO, logger="bridge.bus.redis"):
            replica = await connected_replica(url, replicas)
            staged.write_bytes(certificate + b"#" * MAX_FILE_BYTES + b"\n")
            staged.replace(ca)
            await async_wait_until(lambda: replica.sample(RELOADED) == 0, 10, "the file refused")
            with server.client() as client:
                client.client_kill_filter(_type="normal")
            published = [replica.publish_alert(1)]
            await async_wait_until(partial(has_seen, replica, published), 10, "delivered")
            staged.write_bytes(certificate)
            staged.replace(ca)
            await async_wait_until(lambda: replica.sample(RELOADED) == 1, 10, "put back")
        [refusal] = tls_refusals(caplog)
        said = f"query option 'ssl_ca_certs': cannot read {ca}: larger than 1024 KiB, the most"
        assert said in refusal, refusal
        assert "TLS files changed" not in caplog.text
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


@pytest.mark.parametrize("rotation", ["ca half-written", "certificate before its key"])
async def test_tls_files_caught_mid_rotation_leave_every_connection_on_the_ones_loaded(
    tmp_path: Path, replicas: list[Replica], rotation: str
) -> None:
    """A rediss:// URL's CA file caught half-written, or its client certificate replaced before
    its key (a rotation under way), is refused and told (the reload gauge at 0), and the files
    loaded before stay in force for every connection, those the pool opens from then on too: a
    burst of commands needing more connections than it holds gets through, the replica stays
    ready and delivers; the files put right are taken."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    pem_files(tmp_path)
    ca, client = tmp_path / "redis-ca.pem", tmp_path / "client.pem"
    certificate = (tmp_path / "redis-tls" / "cert.pem").read_bytes()
    ca.write_bytes(certificate)
    url = (
        f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={ca}"
        f"&ssl_certfile={client}&ssl_keyfile={tmp_path / 'client.key'}"
    )
    spoiled, whole = (
        (ca, certificate) if rotation == "ca half-written" else (client, client.read_bytes())
    )
    try:
        replica = await Replica(url, "node-a").start()
        replicas.append(replica)
        await async_wait_until(replica.ready, 10, "connected")
        assert replica.sample(RELOADED) == 1
        if rotation == "ca half-written":
            ca.write_bytes(certificate[: len(certificate) // 2])
        else:
            # The next certificate, before its key: another key's (pem_files' CA's).
            client.write_bytes((tmp_path / "ca.pem").read_bytes())
        await async_wait_until(lambda: replica.sample(RELOADED) == 0, 10, "the change refused")
        state = replica.transport.capabilities.state
        assert state is not None
        # More commands at once than the loops keep connections for: the pool opens new ones.
        await asyncio.gather(*(state.load(f"burst-{n}") for n in range(20)))
        # Ready, or again within seconds: twenty TLS handshakes on a loaded host can hold the
        # 300 ms lease's renewal past its end, which is not the files refused.
        await async_wait_until(replica.ready, 10, "ready after the burst")
        published = [replica.publish_alert(1)]
        await async_wait_until(partial(has_seen, replica, published), 10, "delivered")
        await async_wait_until(replica.ready, 10, "ready after the delivery")
        spoiled.write_bytes(whole)
        await async_wait_until(lambda: replica.sample(RELOADED) == 1, 10, "put right")
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_redis_failure_while_a_rotation_waits_is_told_as_redis_not_as_the_files(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A rediss:// URL's CA file caught half-written (the change refused) while Redis's
    certificate rotates to a CA the bus has not loaded: the connections, which load nothing
    from the files any more, fail on Redis's certificate, and readiness says so, not that a TLS
    file does not load."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()
    try:
        replica = await Replica(url, "node-a").start()
        replicas.append(replica)
        await async_wait_until(replica.ready, 10, "connected")
        ca.write_bytes(certificate[: len(certificate) // 2])
        await async_wait_until(lambda: replica.sample(RELOADED) == 0, 10, "the change refused")
        server.rotate_certificate()

        await async_wait_until(lambda: not replica.ready(), 10, "the new CA not trusted")
        await async_wait_until(
            lambda: "certificate verify failed" in replica.reason(),
            10,
            "told: certificate verify failed",
        )
        assert "TLS file" not in replica.reason(), replica.reason()
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_rediss_url_without_the_private_ca_says_to_name_it(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A rediss:// URL without ?ssl_ca_certs, for a Redis whose certificate a private CA
    signed, is told in readiness as unreachable with what to do: name that CA's file."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    try:
        replica = await Replica(f"rediss://127.0.0.1:{server.port}/0", "node-a").start()
        replicas.append(replica)

        await async_wait_until(lambda: "certificate verify failed" in replica.reason(), 10, "told")
        assert "is unreachable" in replica.reason(), replica.reason()
        assert "?ssl_ca_certs=FILE" in replica.reason(), replica.reason()
        assert "docs/redis.md#settings" in replica.reason(), replica.reason()
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_rediss_url_at_a_redis_without_tls_says_it_may_be_meant_as_redis(
    replicas: list[Replica], redis_server: Callable[[], RedisServer]
) -> None:
    """A rediss:// URL at a Redis that speaks no TLS times out (the handshake is never
    answered): readiness says so with what to do, not only "Timeout connecting to server"."""
    port = redis_server().port
    replica = await Replica(f"rediss://127.0.0.1:{port}/0", "node-a").start()
    replicas.append(replica)

    await async_wait_until(lambda: "Timeout" in replica.reason(), 15, "the timeout told")
    assert "is unreachable" in replica.reason(), replica.reason()
    assert "a Redis without TLS never answers" in replica.reason(), replica.reason()
    assert "EXESDB_BUS is redis://" in replica.reason(), replica.reason()


def test_the_log_tells_a_rediss_url_at_a_redis_without_tls_the_scheme_meant(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """A bridge process's log, every line of it redacted, keeps the scheme the hint names for a
    rediss:// URL at a Redis without TLS, not ``<not a URL>`` in its place."""
    port = redis_server().port
    process = BridgeProcess(
        state_dir=tmp_path / "state",
        EXESDB_BUS=f"rediss://:pw@127.0.0.1:{port}/0",
        SECRET_KEY_BASE=TEST_SECRET,
    ).start(tmp_path)
    try:
        line = wait_until(
            lambda: next((x for x in process.log().splitlines() if "Timeout" in x), None),
            15,
            "the timeout logged",
        )
    finally:
        process.stop()
    assert "for such a Redis, EXESDB_BUS is redis://)" in line, line
    assert "<not a URL>" not in line
    assert ":pw@" not in line


async def test_a_rediss_url_naming_another_host_than_the_certificate_is_not_told_to_name_its_ca(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A certificate for another name than the URL's host, signed by the CA the URL names,
    fails verification, but is not told to name the CA that signed it: that one is trusted."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    try:
        url = server.url.replace("127.0.0.1", "localhost")  # the certificate is for 127.0.0.1
        replica = await Replica(url, "node-a").start()
        replicas.append(replica)

        await async_wait_until(lambda: "certificate verify failed" in replica.reason(), 10, "told")
        assert "mismatch" in replica.reason(), replica.reason()
        assert "?ssl_ca_certs=FILE" not in replica.reason(), replica.reason()
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_tls_redis_that_answered_and_stops_answering_is_not_told_to_be_without_tls(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A TLS Redis paused after it answered times out, and is not told to be a Redis without
    TLS (EXESDB_BUS redis://): it answered TLS on this URL."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    assert server.process is not None
    try:
        replica = await Replica(server.url, "node-a").start()
        replicas.append(replica)
        await async_wait_until(replica.ready, 15, "ready over TLS")

        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            await async_wait_until(lambda: "Timeout" in replica.reason(), 20, "the timeout told")
            assert "without TLS" not in replica.reason(), replica.reason()
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_the_tls_files_gauges_say_whether_a_change_was_taken_and_when(
    tmp_path: Path, replicas: list[Replica], redis_server: Callable[[], RedisServer]
) -> None:
    """With a rediss:// URL naming a CA file, /metrics shows the TLS files taken (1) and when
    they were loaded from the start; the file rewritten with what does not load, 0 and the time
    kept; the new CA of a rotation taken, 1 and the time it was. A URL naming no TLS file has
    neither series."""
    plain = await Replica(redis_server().url, "node-plain", http=True).start()
    replicas.append(plain)
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()
    try:
        began = time.time()
        replica = await Replica(url, "node-a", http=True).start()
        replicas.append(replica)
        await async_wait_until(replica.ready, 10, "connected")
        first = await replica.scrape()
        assert first[RELOADED] == 1
        assert began <= first[LOADED_AT] <= time.time()
        ca.write_bytes(certificate[: len(certificate) // 2])

        async def reloaded(value: float) -> bool:
            return (await replica.scrape())[RELOADED] == value

        await async_wait_until(partial(reloaded, 0), 10, "the change refused")
        assert (await replica.scrape())[LOADED_AT] == first[LOADED_AT]
        rotated = server.rotate_certificate()
        staged = tmp_path / "redis-ca.pem.new"
        staged.write_bytes(rotated)
        staged.replace(ca)
        await async_wait_until(partial(reloaded, 1), 10, "the new CA taken")
        assert (await replica.scrape())[LOADED_AT] > first[LOADED_AT]
        await async_wait_until(replica.ready, 10, "connected with the new CA")
        assert {RELOADED, LOADED_AT}.isdisjoint(await plain.scrape())
    finally:
        for started in replicas:
            await started.aclose()
        server.stop()
