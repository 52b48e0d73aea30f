"""The HTTP edge of a real ``exesdb-bridge run`` process under a descriptor limit of 1 024, plain
and with TLS."""

from __future__ import annotations

import contextlib
import http.client
import re
import resource
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from bridge.bus import SIGNATURE_HEADER, Envelope, new_message_id
from bridge.messages import HealthCheck, Message, NodeHealth, SystemAlert, utc_now
from tests.support import BridgeProcess, http_get, post_signed, wait_until
from tests.webconfig.files import WebFiles

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DESCRIPTORS = 1_024
IDLE_CONNECTIONS = 1_100
KEEP_ALIVES = 300


@pytest.fixture
def client_sockets() -> Iterator[list[socket.socket]]:
    """Room for this test's own connections (its soft descriptor limit raised), closed after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_CONNECTIONS + 512
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.fail(f"the hard descriptor limit {hard} leaves no room for {wanted} sockets")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_idle_connections_past_the_descriptor_limit_leave_the_probes_answering(
    tmp_path: Path, bridge_processes: list[BridgeProcess], client_sockets: list[socket.socket]
) -> None:
    """With 1 024 descriptors, 1 100 idle unauthenticated connections do not keep /healthz or
    /metrics from answering within 20 s: the longest idle ones make room."""
    bridge = BridgeProcess(descriptors=DESCRIPTORS, EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    for _ in range(IDLE_CONNECTIONS):
        client_sockets.append(socket.create_connection(("127.0.0.1", bridge.port), timeout=10))
    began = time.monotonic()
    status, body = http_get(bridge.url + "/healthz", timeout=20)
    assert (status, body) == (200, b'{"status": "ok"}')
    status, exposition = http_get(bridge.url + "/metrics", timeout=20)
    assert status == 200
    assert time.monotonic() - began < 20
    evicted = re.search(
        rb'exesdb_http_connections_closed_total\{reason="evicted"\} (\S+)', exposition
    )
    assert evicted is not None
    assert float(evicted.group(1)) >= IDLE_CONNECTIONS + 1 - _cap(exposition)
    assert "lowered to" in bridge.log()


def test_half_heads_past_the_descriptor_limit_leave_room_for_the_bursts_of_accepts(
    tmp_path: Path, bridge_processes: list[BridgeProcess], client_sockets: list[socket.socket]
) -> None:
    """With 1 024 descriptors, 1 100 connections each sending half a request head as fast as
    they connect: asyncio accepts them in bursts, each holding descriptors before the cap lets
    the evicted ones go, and the cap leaves room for that: the listener is never out of
    descriptors (it would stop accepting for a second) and /healthz answers."""
    bridge = BridgeProcess(descriptors=DESCRIPTORS, EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    for _ in range(IDLE_CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        client_sockets.append(sock)
    status, body = http_get(bridge.url + "/healthz", timeout=20)
    assert (status, body) == (200, b'{"status": "ok"}')
    assert "out of file descriptors" not in bridge.log()


def test_many_clients_connecting_at_once_never_run_the_listener_out_of_descriptors(
    tmp_path: Path, bridge_processes: list[BridgeProcess], client_sockets: list[socket.socket]
) -> None:
    """With 1 024 descriptors, eight clients at once opening 1 600 connections, twice over: the
    listener accepts only while the connections' descriptors stay within the cap, the reserve
    and one burst (asyncio's own accept loop took several bursts before the evicted ones let
    theirs go, and ran out), so the process never reaches its limit, nothing is logged for it,
    and /healthz answers throughout."""
    bridge = BridgeProcess(descriptors=DESCRIPTORS, EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    assert bridge.process is not None
    process = psutil.Process(bridge.process.pid)
    most = 0
    probes: list[int] = []

    def client(count: int) -> None:
        for _ in range(count):
            client_sockets.append(socket.create_connection(("127.0.0.1", bridge.port), timeout=10))

    for _ in range(2):
        with ThreadPoolExecutor(9) as pool:
            flood = [pool.submit(client, 200) for _ in range(8)]
            while not all(done.done() for done in flood):
                most = max(most, process.num_fds())
                if len(probes) < 5:
                    probes.append(http_get(bridge.url + "/healthz", timeout=20)[0])
                time.sleep(0.01)  # how often the descriptor count is read, not a wait
            for done in flood:
                done.result()
        while client_sockets:
            client_sockets.pop().close()
    assert probes
    assert set(probes) == {200}
    assert http_get(bridge.url + "/healthz", timeout=20)[0] == 200
    assert "out of file descriptors" not in bridge.log()
    assert most < DESCRIPTORS


def _cap(exposition: bytes) -> int:
    found = re.search(rb"^exesdb_http_max_connections (\S+)$", exposition, re.M)
    assert found is not None
    return int(float(found.group(1)))


def test_half_open_tls_handshakes_past_the_descriptor_limit_leave_the_probes_answering(
    tmp_path: Path, bridge_processes: list[BridgeProcess], client_sockets: list[socket.socket]
) -> None:
    """With TLS and 1 024 descriptors, 1 100 connections that never send their ClientHello (held
    for a minute of header timeout) count under the cap from their accept: the longest idle make
    room and /healthz answers over TLS within 20 s."""
    files = WebFiles(tmp_path / "web")
    config = files.write(files.tls_config())
    bridge = BridgeProcess(
        context=files.client_context(),
        descriptors=DESCRIPTORS,
        EXESDB_WEB_CONFIG_FILE=str(config),
        EXESDB_HTTP_HEADER_TIMEOUT_MS="60000",
    ).start(tmp_path)
    bridge_processes.append(bridge)
    for _ in range(IDLE_CONNECTIONS):
        client_sockets.append(socket.create_connection(("127.0.0.1", bridge.port), timeout=10))
    began = time.monotonic()
    status, body = http_get(bridge.url + "/healthz", context=bridge.context, timeout=20)
    assert (status, body) == (200, b'{"status": "ok"}')
    assert time.monotonic() - began < 20
    status, exposition = http_get(bridge.url + "/metrics", context=bridge.context, timeout=20)
    assert status == 200
    evicted = re.search(
        rb'exesdb_http_connections_closed_total\{reason="evicted"\} (\S+)', exposition
    )
    assert evicted is not None
    assert float(evicted.group(1)) >= IDLE_CONNECTIONS + 1 - _cap(exposition)


def test_heads_of_bodies_past_the_descriptor_limit_are_let_go_without_an_error_logged(
    tmp_path: Path, bridge_processes: list[BridgeProcess], client_sockets: list[socket.socket]
) -> None:
    """With 1 024 descriptors, four clients at once opening 1 100 connections, each sending a
    whole ingest head and one byte of its body: those closed to make room before their request
    was handled are let go quietly (no traceback in the log for what anyone can send), and
    /healthz answers."""
    bridge = BridgeProcess(descriptors=DESCRIPTORS, EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    head = (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        # A signature, checked once the body is in: with none the head alone is refused (401).
        b"X-ExESDB-Signature: t=1,v1=" + b"0" * 64 + b"\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )

    def client(count: int) -> None:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=10)
            client_sockets.append(sock)
            with contextlib.suppress(OSError):  # closed already to make room
                sock.sendall(head)

    for _ in range(3):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(client, [IDLE_CONNECTIONS // 4] * 4))
        while client_sockets:
            client_sockets.pop().close()
    status, body = http_get(bridge.url + "/healthz", timeout=20)
    assert (status, body) == (200, b'{"status": "ok"}')
    assert "Error handling request" not in bridge.log()


def test_idle_keep_alive_scrapers_do_not_each_hold_an_exposition(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """300 keep-alive connections that each fetched a /metrics of a full series cap (10 000, a
    tenth kept for the bridge's own) and went idle hold far less than an exposition each (they
    held 300 of them, one per connection)."""
    bridge = BridgeProcess(EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    for start in range(0, 4_000, 1_000):
        checks = [
            HealthCheck(check_name=f"check-{n:05d}", node="n1", result="pass", duration_ms=1)
            for n in range(start, start + 1_000)
        ]
        post_signed(bridge.url, b"\n".join(_envelope(check) for check in checks))
    size = 0

    def exposition_full() -> bool:
        nonlocal size
        status, body = http_get(bridge.url + "/metrics", timeout=20)
        size = len(body)
        return status == 200 and b"\nexesdb_prometheus_series_refused_total{" in body

    wait_until(exposition_full, 30, "the series cap reached (the flood's refusals counted)")
    grown = _rss_grown_by_idle_keep_alives(bridge, "GET", "/metrics", 200)
    assert grown < KEEP_ALIVES * size / 4, (
        f"RSS grew {grown / 2**20:.0f} MiB; exposition {size} bytes"
    )


def test_idle_keep_alive_connections_hold_neither_the_page_nor_the_body_they_last_had(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """300 keep-alive connections idle after fetching a status page of hundreds of nodes and
    alerts, and 300 after posting a 900 KB body refused as unsigned, hold far less than a page
    or a body each (they held one each: ~45 MB and ~270 MB)."""
    bridge = BridgeProcess(EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    lines = []
    for n in range(400):
        node = f"node-{n:04d}@host-{n}.example"
        health = NodeHealth(node=node, status="unhealthy" if n % 2 else "degraded")
        alert = SystemAlert(
            alert_id=f"alert-{n}",
            severity="warning",
            category="system",
            title=f"something odd on node {n}",
            description="what happened, at some length " * 3,
            source="tests",
            node=node,
        )
        lines += [_envelope(health, node), _envelope(alert, node)]
    post_signed(bridge.url, b"\n".join(lines))
    page = 0

    def page_full() -> bool:
        nonlocal page
        status, body = http_get(bridge.url + "/", timeout=20)
        page = len(body)
        return status == 200 and page > 100_000

    wait_until(page_full, 30, "a status page over 100 KB")
    body = b"[" + b" " * 900_000 + b"]"
    unsigned = {"Content-Type": "application/json", SIGNATURE_HEADER: "t=1,v1=" + "ab" * 32}
    grown = _rss_grown_by_idle_keep_alives(bridge, "GET", "/", 200)
    assert grown < KEEP_ALIVES * page / 8, f"/: RSS grew {grown / 2**20:.0f} MiB ({page} B)"
    grown = _rss_grown_by_idle_keep_alives(
        bridge, "POST", "/v1/messages", 401, body=body, headers=unsigned
    )
    assert grown < KEEP_ALIVES * len(body) / 8, (
        f"/v1/messages: RSS grew {grown / 2**20:.0f} MiB ({len(body)} B)"
    )


def _rss_grown_by_idle_keep_alives(
    bridge: BridgeProcess,
    method: str,
    path: str,
    status: int,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    """How much the bridge's RSS grows while KEEP_ALIVES connections sit idle, each after one
    ``method path`` answered ``status`` and read to its end. Fails unless every one was kept
    alive and was still open when the RSS was read: one the bridge closed holds nothing."""
    assert bridge.process is not None
    process = psutil.Process(bridge.process.pid)
    before = process.memory_info().rss
    clients: list[http.client.HTTPConnection] = []
    try:
        for _ in range(KEEP_ALIVES):
            client = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=20)
            clients.append(client)
            client.request(method, path, body=body, headers=headers or {})
            response = client.getresponse()
            assert response.status == status
            response.read()  # all of it; the connection stays open, idle
            assert not response.will_close, f"{method} {path}: the answer closed its connection"
        grown = process.memory_info().rss - before
        # Nothing to read on an idle connection: an end (or a reset) there is the bridge's close.
        poller = select.poll()
        for client in clients:
            assert client.sock is not None
            poller.register(client.sock, select.POLLIN)
        closed = poller.poll(0)
        assert not closed, f"{method} {path}: {len(closed)} idle connections closed by the bridge"
    finally:
        for client in clients:
            client.close()
    return grown


@pytest.mark.parametrize(("path", "status"), [("/healthz", b"200 OK"), ("/alerts", b"302 Found")])
def test_a_request_head_past_head_kept_is_answered_then_its_connection_closes(
    tmp_path: Path,
    bridge_processes: list[BridgeProcess],
    client_sockets: list[socket.socket],
    path: str,
    status: bytes,
) -> None:
    """300 connections each sending a GET with 800 KB of header fields (100 of 8 KB, within
    the parser's limits) are answered, then closed: they held their heads while idle (~475 MB),
    also when the answer is raised (/alerts redirects). The bridge grows far less than a head
    each."""
    bridge = BridgeProcess().start(tmp_path)
    bridge_processes.append(bridge)
    pad = b"a" * 8_000
    head = b"GET %s HTTP/1.1\r\nHost: x\r\n" % path.encode()
    head += b"".join(b"X-Pad-%d: %s\r\n" % (n, pad) for n in range(100)) + b"\r\n"
    assert bridge.process is not None
    process = psutil.Process(bridge.process.pid)
    before = process.memory_info().rss
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", bridge.port), timeout=20)
        client_sockets.append(sock)
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65_536):  # until the bridge closes the connection
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 " + status + b"\r\n")
        assert b"\r\nConnection: close\r\n" in answer
    grown = process.memory_info().rss - before
    assert grown < 300 * len(head) / 8, f"RSS grew {grown / 2**20:.0f} MiB"


def _envelope(payload: Message, node: str = "n1") -> bytes:
    return Envelope(
        new_message_id(), payload.INSTANCE, "checks", payload.TAG, node, utc_now(), payload
    ).to_bytes()


NEVER_READ = 50


def _ask_metrics_and_never_read(bridge: BridgeProcess, sockets: list[socket.socket]) -> None:
    """Open NEVER_READ connections that each ask for /metrics and read none of it, their
    receive buffers as small as the kernel allows (the window shuts at once)."""
    for _ in range(NEVER_READ):
        sock = socket.socket()
        sockets.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(("127.0.0.1", bridge.port))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")


def _send_queued(port: int) -> int:
    """Bytes the kernel holds unsent or unacknowledged on the IPv4 TCP sockets of local
    ``port``, those the bridge has closed (orphaned) included: /proc/net/tcp's tx_queue."""
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            held += int(fields[4].split(":")[0], 16)
    return held


def _closed(bridge: BridgeProcess, reason: str) -> float | None:
    """exesdb_http_connections_closed_total{reason} as /metrics gives it (None: no such label)."""
    exposition = http_get(bridge.url + "/metrics", timeout=20)[1]
    found = re.search(
        rb'exesdb_http_connections_closed_total\{reason="%s"\} (\S+)' % reason.encode(), exposition
    )
    return float(found.group(1)) if found else None


def test_answers_never_read_are_let_go_at_the_write_timeout(
    tmp_path: Path, bridge_processes: list[BridgeProcess], client_sockets: list[socket.socket]
) -> None:
    """Clients that ask for /metrics and never read it hold the answers in the kernel's send
    buffers (the bridge holds nothing) until EXESDB_HTTP_WRITE_TIMEOUT_MS: then the kernel resets
    their connections, counted as write_timeout, and the send queues are empty; /healthz answers
    meanwhile. (Held until the idle timeout, then as orphans for minutes more.)"""
    bridge = BridgeProcess(EXESDB_HTTP_WRITE_TIMEOUT_MS="3000").start(tmp_path)
    bridge_processes.append(bridge)
    _ask_metrics_and_never_read(bridge, client_sockets)
    wait_until(
        lambda: _send_queued(bridge.port) > NEVER_READ * 10_000, 10, "the answers held unread"
    )
    assert http_get(bridge.url + "/healthz", timeout=5)[0] == 200
    wait_until(
        lambda: _send_queued(bridge.port) == 0 and _closed(bridge, "write_timeout") == NEVER_READ,
        30,
        "the answers let go at the write timeout",
    )
    with pytest.raises(ConnectionResetError):
        _read_to_the_end(client_sockets[0])


def _read_to_the_end(sock: socket.socket) -> None:
    """Read ``sock`` until it ends (or raises: a reset once what arrived before it is read)."""
    while sock.recv(65_536):
        pass


def test_answers_never_read_on_connections_closed_idle_are_let_go_at_the_write_timeout(
    tmp_path: Path, bridge_processes: list[BridgeProcess], client_sockets: list[socket.socket]
) -> None:
    """An answer never read on a connection the bridge closed at the idle timeout, left in the
    kernel as an orphan socket, is let go at the write timeout too (it was held for minutes)."""
    bridge = BridgeProcess(
        EXESDB_HTTP_IDLE_TIMEOUT_MS="500", EXESDB_HTTP_WRITE_TIMEOUT_MS="4000"
    ).start(tmp_path)
    bridge_processes.append(bridge)
    _ask_metrics_and_never_read(bridge, client_sockets)

    def closed_idle_with_answers_held() -> bool:
        exposition = http_get(bridge.url + "/metrics", timeout=20)[1]
        return b"\nexesdb_http_connections 1.0\n" in exposition and _send_queued(bridge.port) > 0

    wait_until(closed_idle_with_answers_held, 10, "the connections closed idle, answers unread")
    wait_until(lambda: _send_queued(bridge.port) == 0, 30, "the orphans' answers let go")
