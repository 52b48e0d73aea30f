"""Requests shaped to confuse or exhaust the HTTP edge, sent over raw sockets to a real
``exesdb-bridge run`` process taking signed messages."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.support import BridgeProcess

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
