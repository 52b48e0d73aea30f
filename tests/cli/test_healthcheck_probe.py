"""One probe of ``exesdb-bridge healthcheck`` against real servers on loopback: the URL it asks, the
status it takes for healthy, its timeout, credentials, and the certificate it trusts."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from bridge.cli.healthcheck import pinned_context, probe, probe_url
from bridge.headers import HEALTHZ_BODY
from tests.cli.healthcheck_helpers import (
    PASSWORD,
    Handler,
    Server,
    answer,
    healthcheck_process,
    rotate_badly,
)
from tests.support import free_port, make_settings, require_binary
from tests.webconfig.files import WebFiles


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("0.0.0.0:9571", "http://127.0.0.1:9571/healthz"),
        (":9571", "http://127.0.0.1:9571/healthz"),
        ("[::]:9571", "http://[::1]:9571/healthz"),
        ("127.0.0.2:80", "http://127.0.0.2:80/healthz"),
        ("[::1]:9", "http://[::1]:9/healthz"),
        ("bridge.internal:9570", "http://bridge.internal:9570/healthz"),
    ],
)
def test_probe_url_asks_the_configured_address_with_wildcards_as_loopback(
    addr: str, url: str
) -> None:
    """A wildcard host (0.0.0.0, ::, empty) becomes loopback; any other host is asked as is."""
    assert probe_url(make_settings(EXESDB_HTTP_ADDR=addr)) == url


def test_probe_url_asks_over_https_when_told_the_bridge_serves_tls() -> None:
    """TLS is a parameter, for a bridge that serves it."""
    settings = make_settings(EXESDB_HTTP_ADDR="0.0.0.0:9443")
    assert probe_url(settings, tls=True) == "https://127.0.0.1:9443/healthz"


async def test_healthy_on_200(server: Server) -> None:
    """The bridge's 200 from /healthz is healthy, and the line names the URL."""
    await server.start(bridge_healthz)
    verdict = await asyncio.to_thread(probe, server.url())
    assert verdict.healthy
    assert verdict.line == f"healthy: {server.url()} answered 200"


@pytest.mark.parametrize(
    ("status", "reason"), [(503, "Service Unavailable"), (500, "Internal Server Error")]
)
async def test_unhealthy_on_any_other_status(server: Server, status: int, reason: str) -> None:
    """Any status but 200 is unhealthy, and the line gives the status and reason (one the
    bridge never answers says more: another server's 404, below)."""
    await server.start(answer(status))
    verdict = await asyncio.to_thread(probe, server.url())
    assert not verdict.healthy
    assert verdict.line == f"unhealthy: {server.url()} answered {status} {reason}"


async def test_a_redirect_is_not_followed(server: Server) -> None:
    """A 302 is unhealthy: the check asks the bridge itself, not where it points."""
    await server.start(answer(302, Location="http://127.0.0.1:1/healthz"))
    verdict = await asyncio.to_thread(probe, server.url())
    assert verdict.line == f"unhealthy: {server.url()} answered 302 Found"
    assert len(server.seen) == 1


async def test_nothing_listening_is_unhealthy_saying_so() -> None:
    """A port nobody listens on: connection refused, in one line."""
    url = f"http://127.0.0.1:{free_port()}/healthz"
    verdict = await asyncio.to_thread(probe, url)
    assert not verdict.healthy
    assert verdict.line == f"unhealthy: cannot connect to {url}: Connection refused"


async def test_a_server_that_never_answers_times_out(server: Server) -> None:
    """No answer within the timeout is unhealthy, and the line says how long it waited."""

    async def hang(request: web.Request) -> web.Response:
        await server.release.wait()
        return web.Response()

    await server.start(hang)
    verdict = await asyncio.to_thread(probe, server.url(), timeout=0.3)
    assert verdict.line == f"unhealthy: {server.url()} did not answer within 0.3s"


@contextmanager
def trickling_server(every: float = 0.1, most: float = 15.0) -> Iterator[int]:
    """A TCP server on 127.0.0.1 (its port yielded) that answers each request with a status line
    and then a header one byte every ``every`` seconds, well within any read timeout, for
    ``most`` seconds at most."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)

    def trickle(connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)  # the request, sent at once by the probe
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
            until = time.monotonic() + most
            while time.monotonic() < until and not stop.wait(every):  # the pace, not a wait
                try:
                    connection.sendall(b"a")
                except OSError:  # the probe went away
                    return

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=trickle, args=(connection,), daemon=True).start()

    server = threading.Thread(target=serve, name="trickling-server", daemon=True)
    server.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        server.join()
        listener.close()


async def test_a_server_trickling_its_answer_is_not_waited_for_past_the_timeout() -> None:
    """The timeout bounds the whole probe, not each read: a server sending a byte every 0.1 s
    is given up on as the timeout ends, the line saying it did not answer within it."""
    with trickling_server() as port:
        url = f"http://127.0.0.1:{port}/healthz"
        started = time.monotonic()
        verdict = await asyncio.to_thread(probe, url, timeout=0.5)
        took = time.monotonic() - started
    assert verdict.line == f"unhealthy: {url} did not answer within 0.5s"
    assert took < 5  # about 0.5 s; a timeout per read would wait out the trickle's 15 s


def test_command_against_a_trickling_server_exits_1_within_its_timeout() -> None:
    """`healthcheck --timeout 1` against a server trickling its answer exits 1 soon after one
    second (an exec probe's timeout holds), one line saying it did not answer within 1s."""
    with trickling_server() as port:
        started = time.monotonic()
        completed = healthcheck_process("--timeout", "1", EXESDB_HTTP_ADDR=f"127.0.0.1:{port}")
        took = time.monotonic() - started
    assert completed.returncode == 1
    assert completed.stderr == (
        f"unhealthy: http://127.0.0.1:{port}/healthz did not answer within 1s\n"
    )
    # One second and the interpreter's start; a timeout per read would wait out the trickle's
    # 15 s. The bound leaves a loaded host's slow start seconds to spare.
    assert took < 8


async def test_credentials_are_sent_as_basic_auth_and_never_shown(server: Server) -> None:
    """(user, password) goes out as an Authorization header; the line does not carry it."""

    async def guarded(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == "Basic b3BzOnMzY3JldA==":
            return web.json_response(HEALTHZ_BODY)
        return web.Response(status=401)

    await server.start(guarded)
    verdict = await asyncio.to_thread(probe, server.url(), credentials=("ops", "s3cret"))
    assert verdict.healthy
    refused = await asyncio.to_thread(probe, server.url(), credentials=("ops", "wrong"))
    assert refused.line == f"unhealthy: {server.url()} answered 401 Unauthorized"
    assert "s3cret" not in verdict.line + refused.line


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            require_binary("openssl"),
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


async def test_tls_is_checked_with_the_given_context(server: Server, tmp_path: Path) -> None:
    """Over https, the given SSL context decides trust: its CA passes, the default one fails."""
    cert, key = self_signed(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    await server.start(bridge_healthz, ssl_context=serving)
    url = server.url("https")
    trusting = ssl.create_default_context(cafile=str(cert))
    assert (await asyncio.to_thread(probe, url, ssl_context=trusting)).healthy
    refused = await asyncio.to_thread(probe, url, ssl_context=ssl.create_default_context())
    assert refused.line == f"unhealthy: TLS with {url} failed: CERTIFICATE_VERIFY_FAILED"


async def test_a_pinned_certificate_is_trusted_whatever_name_it_carries(
    server: Server, tmp_path: Path
) -> None:
    """pinned_context trusts the server's own leaf though it names another host than 127.0.0.1."""
    files = WebFiles(tmp_path)
    leaf = files.ca.issue_cert("bridge.example.test")  # no 127.0.0.1 in it
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(served)
    await server.start(bridge_healthz, ssl_context=served)
    pem = tmp_path / "leaf.pem"
    pem.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    verdict = await asyncio.to_thread(probe, server.url("https"), ssl_context=pinned_context(pem))
    assert verdict.healthy, verdict.line


async def test_a_certificate_file_labelled_in_latin_1_is_pinned_as_the_server_loads_it(
    server: Server, tmp_path: Path
) -> None:
    """A server certificate file whose label before the PEM is Latin-1 (no UTF-8), which the
    bridge's server loads, is pinned by the probe too, not a UnicodeDecodeError."""
    files = WebFiles(tmp_path)
    leaf = files.ca.issue_cert("127.0.0.1")
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(served)
    await server.start(bridge_healthz, ssl_context=served)
    pem = tmp_path / "leaf.pem"
    pem.write_bytes(
        "# Serveur de l'\u00e9quipe\n".encode("latin-1") + leaf.cert_chain_pems[0].bytes()
    )
    verdict = await asyncio.to_thread(probe, server.url("https"), ssl_context=pinned_context(pem))
    assert verdict.healthy, verdict.line


async def test_another_certificate_of_the_same_ca_is_refused(
    server: Server, tmp_path: Path
) -> None:
    """Pinning is to the one certificate: a sibling signed by the same CA fails verification."""
    files = WebFiles(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    files.ca.issue_cert("127.0.0.1").configure_cert(served)
    await server.start(bridge_healthz, ssl_context=served)
    sibling = tmp_path / "sibling.pem"
    sibling.write_bytes(files.ca.issue_cert("127.0.0.1").cert_chain_pems[0].bytes())
    url = server.url("https")
    verdict = await asyncio.to_thread(probe, url, ssl_context=pinned_context(sibling))
    assert verdict.line == f"unhealthy: TLS with {url} failed: CERTIFICATE_VERIFY_FAILED"


async def test_a_server_whose_certificate_is_not_verified_is_sent_no_password(
    server: Server, tmp_path: Path
) -> None:
    """Asked without verifying the certificate (a refused file's certificate is not the one
    served), the probe sends no basic auth: its password goes to no server it has not verified."""
    files = WebFiles(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    await server.start(bridge_healthz, ssl_context=serving)
    path = files.write(rotate_badly(files, "mismatched-key") + "colour: vermilion\n")
    (tmp_path / "password").write_text(PASSWORD)
    completed = await asyncio.to_thread(
        healthcheck_process,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{server.port}",
        EXESDB_WEB_CONFIG_FILE=str(path),
        EXESDB_HEALTHCHECK_USERNAME="probe",
        EXESDB_HEALTHCHECK_PASSWORD_FILE=str(tmp_path / "password"),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"healthy: {server.url('https')} answered 200, its ")
    assert len(server.seen) == 1
    assert "Authorization" not in server.seen[0].headers


async def bridge_healthz(request: web.Request) -> web.Response:
    """What the bridge's /healthz answers."""
    return web.json_response(HEALTHZ_BODY)


@pytest.mark.parametrize(
    ("handler", "status"),
    [
        pytest.param(answer(200), 200, id="200-other-body"),
        pytest.param(answer(401), 401, id="401-no-challenge"),
        pytest.param(answer(401, **{"WWW-Authenticate": 'Basic realm="other"'}), 401, id="realm"),
        pytest.param(
            answer(401, **{"WWW-Authenticate": 'Bearer realm="exesdb-bridge"'}), 401, id="scheme"
        ),
    ],
)
async def test_unverified_only_the_bridge_s_own_answer_is_healthy(
    server: Server, tmp_path: Path, handler: Handler, status: int
) -> None:
    """Asked without verifying the certificate, another TLS server on the port answering 200 or
    401 is not taken for the bridge: exit 1, saying it did not answer as the bridge does."""
    files = WebFiles(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    await server.start(handler, ssl_context=serving)
    path = files.write(rotate_badly(files, "mismatched-key") + "colour: vermilion\n")
    completed = await asyncio.to_thread(
        healthcheck_process,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{server.port}",
        EXESDB_WEB_CONFIG_FILE=str(path),
    )
    assert completed.returncode == 1, completed.stdout
    assert completed.stderr.startswith(
        f"unhealthy: {server.url('https')} answered {status}, but not as the bridge answers, "
        "its certificate not verified and no credentials sent ("
    )
    assert f"; the web config file is bad: {path}: " in completed.stderr


async def test_the_line_says_why_the_certificate_did_not_verify(
    server: Server, tmp_path: Path
) -> None:
    """A refused file whose certificate is the one served but expired: the unverified answer is
    the bridge's, and the line gives OpenSSL's reason, not a guess that it is another one."""
    files = WebFiles(tmp_path)
    now = datetime.now(UTC)
    leaf = files.ca.issue_cert(
        "127.0.0.1", not_before=now - timedelta(days=2), not_after=now - timedelta(days=1)
    )
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "expired.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "expired.key"))
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(tmp_path / "expired.pem", tmp_path / "expired.key")
    await server.start(bridge_healthz, ssl_context=serving)
    tls = "tls_server_config:\n  cert_file: expired.pem\n  key_file: expired.key\n"
    path = files.write(tls + "colour: vermilion\n")
    completed = await asyncio.to_thread(
        healthcheck_process,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{server.port}",
        EXESDB_WEB_CONFIG_FILE=str(path),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(
        f"healthy: {server.url('https')} answered 200, its certificate not verified and no "
        "credentials sent (the served certificate did not verify against the refused file's: "
        "certificate has expired); the web config file is refused"
    )
