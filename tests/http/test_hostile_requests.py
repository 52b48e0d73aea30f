"""Requests shaped to confuse or exhaust the HTTP edge, sent over raw sockets to a real
``exesdb-bridge run`` process taking signed messages."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest

from bridge.listener import BODIES_HELD, HEADS_HELD
from tests.http.helpers import body_of, envelope
from tests.support import (
    ADMIN_TOKEN,
    BridgeProcess,
    critical_alert_body,
    http_get,
    post_signed,
    signed_post,
    wait_until,
)

# What follows a request on the same write: answered by Go's server, whatever came before.
_PIPELINED = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"


def _ingesting(tmp_path: Path, processes: list[BridgeProcess]) -> BridgeProcess:
    """A bridge process with ingest on, the admin token and SECRET_KEY_BASE set."""
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_INGEST="true").start(tmp_path)
    processes.append(bridge)
    return bridge


def _until_closed(port: int, data: bytes, seconds: float) -> tuple[bytes, bool]:
    """What the bridge answers ``data`` sent at once, and whether it closed the connection
    within ``seconds``."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return received, False
            if not chunk:
                return received, True
            received += chunk
        return received, False


@pytest.mark.parametrize(
    "switching",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
    ],
    ids=["h2c", "websocket", "CONNECT"],
)
def test_a_request_asking_to_switch_protocols_is_answered_and_its_connection_closed(
    tmp_path: Path, bridge_processes: list[BridgeProcess], switching: bytes
) -> None:
    """A request asking to switch protocols (an Upgrade, CONNECT), which the bridge never does,
    is answered with Connection: close and its connection closes at once: aiohttp's parser
    drops a request sent with it, which was never answered, its connection held open."""
    bridge = _ingesting(tmp_path, bridge_processes)
    received, closed = _until_closed(bridge.port, switching + _PIPELINED, 10)
    head = received.partition(b"\r\n\r\n")[0]
    assert head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 404 ")), received[:200]
    assert b"\r\nConnection: close" in head
    assert closed, received[-200:]
    # The client sends what went unanswered again, on a new connection.
    again, _ = _until_closed(
        bridge.port, _PIPELINED.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"), 10
    )
    assert again.startswith(b"HTTP/1.1 200 ")


def _rss(pid: int) -> int:
    """The resident memory of process ``pid``, in bytes."""
    return psutil.Process(pid).memory_info().rss


@contextlib.contextmanager
def _flooded(bridge: BridgeProcess, sent: bytes, connections: int) -> Iterator[int]:
    """``sent`` sent on ``connections`` connections to ``bridge`` as fast as it reads it, for at
    most a minute, then two seconds for what arrived last to be read: yields how much its
    resident memory grew at most meanwhile, in bytes, the connections still open."""
    assert bridge.process is not None
    before = _rss(bridge.process.pid)
    senders = [socket.create_connection(("127.0.0.1", bridge.port)) for _ in range(connections)]
    try:
        yield max(0, _flood(senders, memoryview(sent), bridge.process.pid) - before)
    finally:
        for sender in senders:
            sender.close()


def _closed(exposition: str, *reasons: str) -> int:
    """The connections the bridge closed for any of ``reasons``, as its /metrics counts them."""
    counts = re.findall(r'closed_total\{reason="(\w+)"\} (\d+)', exposition)
    return sum(int(count) for reason, count in counts if reason in reasons)


def _flood(senders: list[socket.socket], sent: memoryview, pid: int) -> int:
    """``sent`` sent on each of ``senders`` as fast as the bridge (process ``pid``) reads it, for
    at most a minute, then two seconds for what arrived last to be read: the most resident
    memory the bridge had meanwhile, in bytes."""
    progress = [0] * len(senders)
    highest = 0
    for sender in senders:
        sender.setblocking(False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(p < len(sent) for p in progress):
        for number, sender in enumerate(senders):
            if progress[number] < len(sent):
                try:
                    progress[number] += sender.send(sent[progress[number] :][:262_144])
                except BlockingIOError:
                    pass
                except OSError:  # closed by the bridge: nothing more to send on it
                    progress[number] = len(sent)
        highest = max(highest, _rss(pid))
    for _ in range(10):
        time.sleep(0.2)  # what arrived last is read and counted meanwhile
        highest = max(highest, _rss(pid))
    return highest


def test_bodies_held_at_once_are_bounded_and_a_signed_batch_still_gets_in(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """Sixty connections each sending 8 MiB (EXESDB_MAX_BODY_BYTES) less a byte, a signature
    that cannot match, and then nothing, grow the bridge by about BODIES_HELD, not by all they
    sent (480 MB, held until the body timeout): past it the slowest body is closed (counted as
    slow_body), or the request past it answered 503 ``overloaded`` (counted as body_budget); a
    signed batch sent meanwhile is accepted."""
    limit = 8 * 1024 * 1024
    bridge = BridgeProcess(
        state_dir=tmp_path / "state", EXESDB_INGEST="true", EXESDB_MAX_BODY_BYTES=str(limit)
    ).start(tmp_path)
    bridge_processes.append(bridge)
    post_signed(bridge.url, body_of(envelope()))
    head = (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
        b"X-ExESDB-Signature: t=%d,v1=%s\r\nContent-Length: %d\r\n\r\n"
        % (int(time.time()), b"0" * 64, limit)
    )
    sent = head + b'{"a": 1}\n' * ((limit - 1) // 9) + b"x" * ((limit - 1) % 9)
    with _flooded(bridge, sent, 60) as grown:
        # Past BODY_GRACE, the bodies left held are the slowest: one makes room for this batch.
        post_signed(bridge.url, body_of(envelope()))
        exposition = http_get(bridge.url + "/metrics")[1].decode()
    # Above BODIES_HELD: what each connection's reads hold before its handler counts them, and
    # the pages the heap keeps of bodies let go (93-140 MiB measured; 480 MiB without).
    assert grown < 3 * BODIES_HELD, f"the bridge grew {grown / 2**20:.0f} MiB"
    # Which bound acts depends on the machine's speed: bodies that fill the budget within
    # BODY_GRACE are answered 503 (none has been read long enough to be called slowest); past
    # it the slowest is closed instead, and on a loaded machine every one was (slow_body 53,
    # body_budget 0). Sixty connections are far below the cap, which closes slow bodies too.
    assert _closed(exposition, "slow_body", "body_budget") > 0, exposition


def test_heads_held_at_once_are_bounded_and_a_probe_still_gets_in(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """Four hundred connections each sending 1 MiB of header fields (each line within aiohttp's
    limits) and never the blank line that ends them grow the bridge by a few times HEADS_HELD,
    not by all they sent (aiohttp holds each field twice: 520 MiB until the header timeout):
    past it the slowest head is closed (``slow_head``), or the request past it answered 503
    (``head_budget``); ``/healthz`` and a signed batch are answered meanwhile."""
    bridge = _ingesting(tmp_path, bridge_processes)
    post_signed(bridge.url, body_of(envelope()))
    fields = b"".join(b"X-Fill-%03d: %s\r\n" % (number, b"v" * 8000) for number in range(127))
    with _flooded(bridge, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields, 400) as grown:
        assert http_get(bridge.url + "/healthz")[0] == 200
        post_signed(bridge.url, body_of(envelope()))
        exposition = http_get(bridge.url + "/metrics")[1].decode()
    # Above HEADS_HELD: aiohttp holds a field twice (its bytes and its text), and the heap keeps
    # pages of heads let go (68-125 MiB measured with 1 000 connections, 76 MiB with these 400;
    # 520 MiB without).
    assert grown < 8 * HEADS_HELD, f"the bridge grew {grown / 2**20:.0f} MiB"
    assert _closed(exposition, "slow_head", "head_budget") > 0, exposition


@pytest.mark.parametrize("alert_id", ["disk_full{node=n1}", "{", "a}b"])
def test_an_alert_whose_id_holds_braces_has_its_page_and_its_acknowledgement(
    tmp_path: Path, bridge_processes: list[BridgeProcess], alert_id: str
) -> None:
    """An alert id may hold ``{`` and ``}`` (a label set written into it): the status page's link
    to it leads to its page, with and without a slash added, and ``POST
    /v1/alerts/{alert_id}/ack`` acknowledges it, where aiohttp's default path segment (no
    braces) answered each 404 as a path nothing is served at."""
    bridge = _ingesting(tmp_path, bridge_processes)
    sent = critical_alert_body(alert_id, "disk full", "the disk is full")
    assert signed_post(bridge.url, sent, content_type="application/json")[0] == 202
    link = f"./alerts/{quote(alert_id, safe='')}"
    wait_until(lambda: f'href="{link}"' in http_get(bridge.url + "/")[1].decode(), 10)
    page_url = f"{bridge.url}/{link[2:]}"
    status, page = http_get(page_url)
    assert status == 200, page[:200]
    assert b"disk full" in page
    # With a slash added: redirected (301) to the page, which urllib follows.
    status, page = http_get(page_url + "/")
    assert status == 200, page[:200]
    assert b"disk full" in page
    ack = urllib.request.Request(
        f"{bridge.url}/v1/{link[2:]}/ack",
        data=json.dumps({"ack_by": "ops"}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(ack, timeout=10) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, exc.read()
    assert status == 200, answer[:200]
    assert json.loads(answer)["alert"]["state"] == "acknowledged"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8; charset=latin1",
        "application/x-ndjson; charset=utf-8; CHARSET=utf-8",
    ],
)
def test_a_content_type_giving_charset_twice_is_refused_415(
    tmp_path: Path, bridge_processes: list[BridgeProcess], content_type: str
) -> None:
    """A Content-Type giving ``charset`` twice is ambiguous (aiohttp read the last one given,
    ``utf-8; latin1`` taken as UTF-8 where ``latin1; utf-8`` was refused, and a proxy may read
    the first): refused 415 naming both, as Go's mime parser refuses a parameter given twice."""
    bridge = _ingesting(tmp_path, bridge_processes)
    sent = body_of(envelope())
    status, answer = signed_post(bridge.url, sent, content_type=content_type)
    assert status == 415, answer[:200]
    refusal = json.loads(answer)
    assert refusal["error"] == "unsupported_media_type"
    assert "charset is given 2 times" in refusal["detail"]
