"""Ingest on the Redis bus with a spool: answered 503 with Retry-After once the spool is
full, and input no message could carry refused before its id is kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.bus import SIGNATURE_HEADER, new_message_id
from tests.integration.redis_spool_support import KEYRING, alert
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import free_port, make_settings

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the tests below


async def test_ingest_answers_503_with_retry_after_once_the_spool_is_full(
    tmp_path: Path,
) -> None:
    """With Redis down, ingest answers 202 while the spool has room, then 503 ``overloaded``
    with ``Retry-After`` (nothing of that batch taken: a resend is not refused as a replay)."""
    settings = make_settings(
        EXESDB_BUS=f"redis://127.0.0.1:{free_port()}/0",
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_STATE_DIR=str(tmp_path / "state"),
        EXESDB_MAX_BODY_BYTES="262144",
        EXESDB_REDIS_SPOOL_BYTES="1048576",
    )
    bridge = Bridge(settings, components=[])
    await bridge.start()
    try:
        assert bridge.address is not None
        url = f"http://127.0.0.1:{bridge.address[1]}/v1/messages"
        statuses: list[int] = []
        async with aiohttp.ClientSession() as session:
            for round_ in range(20):
                body = b"\n".join(alert(round_ * 200 + n).to_bytes() for n in range(200))
                headers = {
                    "Content-Type": "application/x-ndjson",
                    SIGNATURE_HEADER: KEYRING.sign_header(body, int(datetime.now(UTC).timestamp())),
                }
                async with session.post(url, data=body, headers=headers) as response:
                    statuses.append(response.status)
                    if response.status == 503:
                        assert response.headers["Retry-After"] == "1"
                        assert (await response.json())["error"] == "overloaded"
                        break
        assert statuses[0] == 202
        assert statuses[-1] == 503
        assert (tmp_path / "state" / "spool").is_dir()
    finally:
        await bridge.aclose()


def _health_line(message_id: str, payload: str) -> bytes:
    """A node_health_updated envelope with ``payload`` (JSON text) as its payload; its escaped
    surrogates (U+DC80-U+DCFF) stand for bytes, not UTF-8."""
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        f'{{"v": 1, "id": "{message_id}", "instance": "ex_esdb_health", "topic": "t", '
        f'"tag": "node_health_updated", "node": "app-1", "ts": "{ts}", "payload": {payload}}}'
    ).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"status": "healthy", "checks": {"a": ' + "[" * 300 + "]" * 300 + "}}",
         "payload.checks.a" + ".0" * 61),
        ('{"status": "healthy", "checks": {"a": "\\udc00"}}', "payload.checks.a"),
        ('{"status": "healthy", "load_avg": NaN}', "payload.load_avg"),
        # U+D800's bytes as UTF-8 would write it: no UTF-8, so the body is refused.
        ('{"status": "healthy", "checks": {"a": "o\udced\udca0\udc80k"}}', "body"),
    ],
    ids=["nested-300-deep", "lone-surrogate", "NaN", "a-surrogates-bytes"],
)  # fmt: skip
async def test_on_redis_input_no_message_could_carry_is_refused_before_its_id_is_kept(
    tmp_path: Path, redis_server: Callable[[], RedisServer], payload: str, field: str
) -> None:
    """On the Redis bus (whose spool writes each envelope's wire form), a payload nested
    hundreds deep, holding a lone surrogate (escaped, or its bytes) or NaN is answered 400
    naming where, not taken and then failed on (a 500, after which the resend was refused as
    replayed): the corrected body, with the same id, is taken."""
    server = redis_server()
    settings = make_settings(
        EXESDB_BUS=server.url,
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_STATE_DIR=str(tmp_path / "state"),
    )
    bridge = Bridge(settings, components=[])
    await bridge.start()
    try:
        assert bridge.address is not None
        url = f"http://127.0.0.1:{bridge.address[1]}/v1/messages"
        message_id = new_message_id()
        async with aiohttp.ClientSession() as session:
            for body, status in (
                (_health_line(message_id, payload), 400),
                (_health_line(message_id, '{"status": "healthy"}'), 202),
            ):
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: KEYRING.sign_header(body, int(datetime.now(UTC).timestamp())),
                }
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.json()
                    assert response.status == status, answer
                    if status == 400:
                        assert (answer["error"], answer["field"]) == ("malformed", field)
    finally:
        await bridge.aclose()
