"""Ingest checks the signatures of large bodies and decodes them off the event loop, so the bridge
keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import gzip
import io
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from bridge.bus import SIGNATURE_HEADER, Keyring
from bridge.bus.decoding import decode_envelopes
from tests.http.helpers import NDJSON, ServerFactory, body_of, envelope, signed
from tests.support import async_wait_until


async def test_a_compressed_body_is_expanded_and_its_signature_checked_off_the_event_loop(
    serve: ServerFactory,
) -> None:
    """A small gzip body that expands to a large one, unsigned by any key, is answered 401 while
    the event loop goes on serving: it never stalls for most of the time the answer takes."""
    limit = 64 * 1024 * 1024
    server = await serve(EXESDB_MAX_BODY_BYTES=str(limit))
    packed = gzip.compress(b" " * limit)  # some 64 KB, which expand to the limit
    stalls: list[float] = []
    answered = asyncio.Event()

    async def tick() -> None:
        while not answered.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)  # a timer fired only once the loop is free: not a wait
            stalls.append(time.perf_counter() - before)

    ticker = asyncio.create_task(tick())
    start = time.perf_counter()
    status, answer = await server.post(
        packed, signature=signed(b"another body"), headers={"Content-Encoding": "gzip"}
    )
    took = time.perf_counter() - start
    answered.set()
    await ticker
    assert (status, answer["error"]) == (401, "invalid_signature")
    # On the loop, expanding 64 MiB and its HMAC were one stall of nearly all of it; off it,
    # a stall is the host's (a loaded one's descheduling), never most of the time.
    assert max(stalls) < took / 2, (max(stalls), took)


@pytest.mark.parametrize(("size", "apart"), [(1024 * 1024, True), (512 * 1024, False)])
async def test_a_body_of_a_mebibyte_or_more_has_its_signature_checked_off_the_loop(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, size: int, apart: bool
) -> None:
    """A body sent as it is of 1 MiB or more has its HMAC computed in the worker thread, not on
    the event loop (up to a quarter-second for the largest limit); a smaller one on the loop,
    where the hand-over would cost more than the HMAC."""
    server = await serve(EXESDB_MAX_BODY_BYTES=str(4 * 1024 * 1024))
    body = body_of(envelope()) + b" " * (size - len(body_of(envelope())))
    threads: list[threading.Thread] = []
    check = Keyring.check_header

    def noted(keyring: Keyring, *args: Any) -> Any:
        threads.append(threading.current_thread())
        return check(keyring, *args)

    monkeypatch.setattr(Keyring, "check_header", noted)
    headers = {"Content-Type": NDJSON, SIGNATURE_HEADER: signed(body)}
    # A file-like body: aiohttp's client warns of a large one given as bytes.
    async with server.session.post(
        server.url + "/v1/messages", data=io.BytesIO(body), headers=headers
    ) as response:
        assert response.status == 202
    assert [thread is threading.main_thread() for thread in threads] == [not apart]


@pytest.mark.parametrize(("size", "apart"), [(4 * 1024, True), (4 * 1024 - 1, False)])
async def test_a_large_json_envelope_is_decoded_off_the_loop(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, size: int, apart: bool
) -> None:
    """An ``application/json`` body of 4 KiB or more, one envelope decoded in one go (up to
    3.5 s of the loop for 1 MiB refused), is decoded in the worker thread; a smaller one on the
    loop, where the hand-over would cost about as much as the decoding."""
    server = await serve()
    item = envelope(payload={"status": "healthy", "checks": {"note": ""}})
    item["payload"]["checks"]["note"] = "x" * (size - len(body_of(item)))
    body = body_of(item)
    assert len(body) == size
    threads: list[threading.Thread] = []
    decode = decode_envelopes

    def noted(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return decode(*args, **kwargs)

    monkeypatch.setattr("bridge.bus.batches.decode_envelopes", noted)
    assert await server.post(body) == (202, {"accepted": 1})
    assert [thread is threading.main_thread() for thread in threads] == [not apart]


def _noting_threads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """Each later call of ``decode_envelopes``: whether on the main thread, and its lines."""
    calls: list[tuple[bool, int]] = []
    decode = decode_envelopes

    def noted(lines: Sequence[bytes], *args: Any, **kwargs: Any) -> Any:
        calls.append((threading.current_thread() is threading.main_thread(), len(lines)))
        return decode(lines, *args, **kwargs)

    monkeypatch.setattr("bridge.bus.batches.decode_envelopes", noted)
    return calls


@pytest.mark.parametrize(("size", "apart"), [(4 * 1024, True), (4 * 1024 - 1, False)])
async def test_a_large_ndjson_line_is_decoded_off_the_loop(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, size: int, apart: bool
) -> None:
    """An NDJSON line of 4 KiB or more, one envelope decoded in one go, is decoded alone in the
    worker thread, in its place among the lines around it, which are decoded on the loop; with
    none so large, the batch is decoded on the loop in one group."""
    server = await serve()
    item = envelope(payload={"status": "healthy", "checks": {"note": ""}})
    item["payload"]["checks"]["note"] = "x" * (size - len(body_of(item)))
    assert len(body_of(item)) == size
    calls = _noting_threads(monkeypatch)
    body = body_of(envelope(), envelope(), item, envelope())
    assert await server.post(body, content_type=NDJSON) == (202, {"accepted": 4})
    assert calls == ([(True, 2), (False, 1), (True, 1)] if apart else [(True, 4)])


async def test_a_large_ndjson_line_at_fault_is_named_by_its_number(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused line decoded in the worker thread is named by its number in the body (blank
    lines counted), before the lines at fault after it."""
    server = await serve()
    large = envelope(tag="nosuch", payload={"status": "healthy", "checks": {"note": "x" * 8192}})
    lines = [body_of(envelope()), b"", body_of(large), body_of(envelope(tag="nosuch"))]
    calls = _noting_threads(monkeypatch)
    status, answer = await server.post(b"\n".join(lines), content_type=NDJSON)
    assert (status, answer["field"]) == (400, "line 3: tag")
    assert answer["detail"].startswith("line 3: 'nosuch' is not a message type of")
    assert [problem["field"] for problem in answer["problems"]] == ["line 3: tag", "line 4: tag"]
    assert calls == [(True, 1), (False, 1)]


async def test_a_request_is_answered_while_a_body_of_millions_of_lines_is_decoded(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a signed NDJSON body of four million short lines is cut and decoded, the loop
    serves others: a /healthz asked once the body's signature is being checked is answered
    before the body is, which still names its line at fault by its number."""
    server = await serve(EXESDB_MAX_BODY_BYTES=str(8 * 1024 * 1024))
    blank = 4 * 1024 * 1024  # newlines: the last line is the one after them
    body = body_of(envelope()) + b"\n" * blank + b"{}"
    checking = threading.Event()  # set in the thread the check may run in
    check = Keyring.check_header

    def noted(keyring: Keyring, *args: Any) -> Any:
        checking.set()
        return check(keyring, *args)

    async def post() -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": NDJSON, SIGNATURE_HEADER: signed(body)}
        # A file-like body: aiohttp's client warns of a large one given as bytes.
        sent = io.BytesIO(body)
        async with server.session.post(
            server.url + "/v1/messages", data=sent, headers=headers
        ) as r:
            return r.status, await r.json()

    monkeypatch.setattr(Keyring, "check_header", noted)
    posted = asyncio.create_task(post())
    await async_wait_until(checking.is_set, what="the body's signature being checked")
    assert await server.get("/healthz") == (200, {"status": "ok"})
    # Decoded in one go, the body held the loop until it was answered, /healthz after it.
    assert not posted.done()
    status, answer = await posted
    assert (status, answer["field"]) == (400, f"line {blank + 1}: id")
