"""`exesdb-bridge healthcheck`: the configured address, real servers on loopback, one line why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from bridge.cli.healthcheck import LIVENESS, READINESS, Endpoint, pinned_context, probe, probe_url
from bridge.headers import HEALTHZ_BODY, REALM
from bridge.http import healthz
from tests.client_servers import Asked, answering
from tests.support import (
    BridgeProcess,
    FifoReleaser,
    ThreadedBridge,
    free_port,
    http_get,
    make_settings,
    require_binary,
    run_bridge,
    run_command,
    run_in_process,
    wait_until,
    withhold,
)
from tests.webconfig.files import WebFiles, basic, bcrypt_hash

# One pytest-xdist worker runs the module: the TLS bridge (a module fixture) starts once.
pytestmark = pytest.mark.xdist_group("secured-bridge")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp server on 127.0.0.1 whose /healthz and /readyz run a given handler; records
    requests."""

    def __init__(self) -> None:
        self.seen: list[web.Request] = []
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Server:
        async def record(request: web.Request) -> web.StreamResponse:
            self.seen.append(request)
            return await handler(request)

        app = web.Application()
        app.router.add_get("/healthz", record)
        app.router.add_get("/readyz", record)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    def url(self, scheme: str = "http", path: str = "/healthz") -> str:
        """Where its /healthz (or ``path``) is."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def aclose(self) -> None:
        """Release hung handlers and stop serving."""
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A started-on-demand loopback server, cleaned up afterwards."""
    made = Server()
    yield made
    await made.aclose()


def answer(status: int, **headers: str) -> Handler:
    """A handler answering ``status`` with ``headers``."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=status, text="{}", headers=headers)

    return handle


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``exesdb-bridge healthcheck`` in this process (``run_in_process``: the entry point a
    process runs, a clean bridge environment plus ``env``), at a fraction of a process's cost."""
    return run_in_process("healthcheck", *args, env=env)


def healthcheck_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``healthcheck`` in a ``python -m bridge`` process of its own: where the process is the
    point (an exec probe's timeout holds for the whole process), or the caller is no main thread
    (``run_in_process`` times a command with SIGALRM)."""
    return run_bridge("healthcheck", *args, env=env)


# -- the URL --


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


# -- one probe against real servers --


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


# -- the command --


def test_command_exits_0_against_a_bridge_on_a_wildcard_address() -> None:
    """EXESDB_HTTP_ADDR=0.0.0.0:PORT: it asks loopback directly (no proxy), exits 0, one line."""
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    with ThreadedBridge() as bridge:
        completed = healthcheck(
            EXESDB_HTTP_ADDR=f"0.0.0.0:{bridge.port}", http_proxy=dead_proxy, HTTP_PROXY=dead_proxy
        )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"healthy: http://127.0.0.1:{bridge.port}/healthz answered 200\n"


def test_command_exits_1_with_one_line_when_nothing_answers() -> None:
    """Nothing on the configured port: exit 1, one line on stderr naming the URL."""
    port = free_port()
    completed = healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{port}")
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr == (
        f"unhealthy: cannot connect to http://127.0.0.1:{port}/healthz: Connection refused\n"
    )


def test_an_unhealthy_command_names_a_variable_that_is_no_setting_as_the_others_do() -> None:
    """An unhealthy probe with a misspelt variable set (EXESDB_PORT, meant for EXESDB_HTTP_ADDR)
    says so on a line after its verdict, in the words of the other commands; still exit 1."""
    port = free_port()
    completed = healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{port}", EXESDB_PORT=str(free_port()))
    assert completed.returncode == 1
    assert completed.stderr == (
        f"unhealthy: cannot connect to http://127.0.0.1:{port}/healthz: Connection refused\n"
        "exesdb-bridge: warning: EXESDB_PORT is set but is not a setting of the bridge (ignored);"
        " did you mean EXESDB_HTTP_ADDR?\n"
    )


def test_an_unhealthy_command_says_where_its_timeout_is_given_and_nothing_of_otel() -> None:
    """EXESDB_HEALTHCHECK_TIMEOUT (no setting) is answered with the --timeout option, not a
    setting of like spelling; a misspelt OTEL_* variable, which the probe never reads, is not
    named."""
    port = free_port()
    completed = healthcheck(
        EXESDB_HTTP_ADDR=f"127.0.0.1:{port}",
        EXESDB_HEALTHCHECK_TIMEOUT="5",
        OTEL_EXPORTER_OTLP_ENDPIONT="http://c:4317",
    )
    assert completed.returncode == 1
    assert completed.stderr == (
        f"unhealthy: cannot connect to http://127.0.0.1:{port}/healthz: Connection refused\n"
        "exesdb-bridge: warning: EXESDB_HEALTHCHECK_TIMEOUT is set but is not a setting of the"
        " bridge (ignored); the health check's timeout is its option: exesdb-bridge healthcheck"
        " --timeout S\n"
    )


def test_a_healthy_command_says_nothing_of_other_variables() -> None:
    """A healthy probe prints its one line only, whatever else is set."""
    with ThreadedBridge() as bridge:
        completed = healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{bridge.port}", EXESDB_PORT="1")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"healthy: http://127.0.0.1:{bridge.port}/healthz answered 200\n"
    assert completed.stderr == ""


def test_command_exits_1_not_2_on_a_bad_configuration() -> None:
    """A bad setting is unhealthy (exit 1: Docker reserves 2), one line naming the variable."""
    completed = healthcheck(EXESDB_HTTP_ADDR="nowhere")
    assert completed.returncode == 1
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith("unhealthy: bad configuration: EXESDB_HTTP_ADDR: ")


@pytest.mark.parametrize(
    ("addr", "fault"),
    [
        (" 127.0.0.1:9570", "must be host:port without spaces or other blanks"),
        ("bridge\x01:9570", "must be host:port, the host an IP address ([::1] for IPv6) or a"),
        ("::9570", "must be host:port, the host an IP address ([::1] for IPv6) or a"),
        ("localhost", "must be host:port, and the port is missing, e.g. localhost:9570"),
        # Digits int() takes, or str.isdigit() alone, that are no ASCII digits.
        ("127.0.0.1:\uff19\uff15\uff17\uff10", "must be host:port with a port from 0 to 65535"),
        ("127.0.0.1:\u0669\u0665\u0667\u0660", "must be host:port with a port from 0 to 65535"),
        ("0.0.0.0:\u00b2", "must be host:port with a port from 0 to 65535"),
    ],
)
def test_command_says_an_address_it_cannot_ask_is_a_bad_configuration(
    addr: str, fault: str
) -> None:
    """EXESDB_HTTP_ADDR with a stray blank before its host (an env file's 'X= value'), a control
    character, no host at all, no port or one not in ASCII digits is a bad configuration line
    naming the variable, exit 1, not a traceback from http.client."""
    completed = healthcheck(EXESDB_HTTP_ADDR=addr)
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"unhealthy: bad configuration: EXESDB_HTTP_ADDR: {fault}")
    assert completed.stderr.count("\n") == 1


def test_command_on_port_0_says_it_cannot_know_the_port() -> None:
    """EXESDB_HTTP_ADDR with port 0 (a port the bridge picks): exit 1, one line saying why,
    instead of a connection refused at port 0."""
    completed = healthcheck(EXESDB_HTTP_ADDR="0.0.0.0:0")
    assert completed.returncode == 1
    assert completed.stderr == (
        "unhealthy: cannot probe: EXESDB_HTTP_ADDR: port 0 is a free port the bridge picks as it"
        " starts (its start-up line names it), so no command can find it there; give the probe a"
        " fixed port\n"
    )


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "nan", "inf", "1e10", "86400.5"])
def test_command_refuses_a_timeout_that_is_not_positive(timeout: str) -> None:
    """--timeout must be a positive number of seconds, at most a day (an infinity, or more
    seconds than a thread's join can wait, no traceback): a usage error exits 2, saying so."""
    completed = healthcheck("--timeout", timeout)
    assert completed.returncode == 2
    assert (
        f"--timeout: {timeout!r} is not a positive number of seconds (at most 86400, a day)"
        in completed.stderr
    )
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("args", "shown", "address"),
    [
        (["--url", "http://127.0.0.1:9571/"], "--url …", "127.0.0.1:9571"),
        (["--url=https://ops:hunter2@bridge.example:9570"], "--url=…", "bridge.example:9570"),
        (["http://127.0.0.1:9571"], "http://127.0.0.1:9571", "127.0.0.1:9571"),
        (["https://ops:hunter2@[::1]:9571/"], "https://ops:<redacted>@[::1]:9571", "[::1]:9571"),
        (["localhost:9571"], "localhost:9571", "localhost:9571"),
        (["--url"], "--url", "HOST:PORT"),
    ],
)
def test_a_url_given_to_the_command_is_answered_with_the_address_it_asks(
    args: list[str], shown: str, address: str
) -> None:
    """A URL or address given to healthcheck (``--url``, as publish, tail and alerts take it, or
    alone) is a usage error that says the probe asks EXESDB_HTTP_ADDR, with the line meant, its
    password never shown."""
    completed = healthcheck(*args)
    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1] == (
        f"exesdb-bridge healthcheck: error: unrecognized arguments: {shown} (healthcheck asks the"
        f" address the bridge listens on, EXESDB_HTTP_ADDR: EXESDB_HTTP_ADDR={address}"
        " exesdb-bridge healthcheck)"
    )
    assert "hunter2" not in completed.stderr


def test_a_reason_phrase_s_control_characters_are_shown_as_escapes() -> None:
    """A status line whose reason holds an escape sequence (another server's, on the bridge's
    port) is told on the probe's one line with each control character as its escape: it went
    to the terminal, or the container's health log, as it came."""

    def answer(conn: socket.socket, asked: Asked) -> None:
        conn.sendall(b"HTTP/1.1 503 Gone\x1b[2J\x07\r\nContent-Length: 0\r\n\r\n")

    with answering(answer) as server:
        verdict = probe(server.url + "/healthz")
    assert verdict.line == f"unhealthy: {server.url}/healthz answered 503 Gone\\u001b[2J\\u0007"


def test_help_states_the_timeouts_range() -> None:
    """`healthcheck --help` gives --timeout's range, the one a usage error names."""
    completed = run_in_process("healthcheck", "--help", env={"COLUMNS": "200"})
    assert completed.returncode == 0
    assert (
        "--timeout SECONDS  how long the whole probe may take (connect, TLS handshake, request"
        " and answer): more than 0, at most 86400, a day (default: 2)\n"
    ) in completed.stdout


# -- pinning the server's own certificate --


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


# -- the command against a bridge with TLS, client certificates and basic auth --

PASSWORD = "probe-password"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    """A bridge process serving HTTPS, requiring a client certificate and basic auth, and the
    files a probe needs: (bridge, environment for a working healthcheck, files)."""
    folder = tmp_path_factory.mktemp("secured")
    files = WebFiles(folder)
    files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
        )
        + f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n"
    )
    client = files.client_cert(name="probe")
    client.cert_chain_pems[0].write_to_path(str(folder / "probe.pem"))
    client.private_key_pem.write_to_path(str(folder / "probe.key"))
    (folder / "password").write_text(PASSWORD + "\n")
    bridge = BridgeProcess(
        state_dir=folder / "state",
        context=files.client_context(client),
        headers={"Authorization": basic("probe", PASSWORD)},
        EXESDB_WEB_CONFIG_FILE=str(folder / "web.yml"),
    )
    env = {
        "EXESDB_HTTP_ADDR": f"0.0.0.0:{bridge.port}",
        "EXESDB_WEB_CONFIG_FILE": str(folder / "web.yml"),
        "EXESDB_HEALTHCHECK_USERNAME": "probe",
        "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(folder / "password"),
        "EXESDB_HEALTHCHECK_CERT_FILE": str(folder / "probe.pem"),
        "EXESDB_HEALTHCHECK_KEY_FILE": str(folder / "probe.key"),
    }
    bridge.start(folder)
    try:
        yield bridge, env, folder
    finally:
        bridge.stop()


def test_command_is_healthy_over_https_with_client_certificate_and_basic_auth(secured) -> None:
    """With the TLS, client certificate and basic auth of the web config, https answers: exit 0."""
    bridge, env, _ = secured
    completed = healthcheck(**env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"healthy: https://127.0.0.1:{bridge.port}/healthz answered 200\n"
    assert PASSWORD not in completed.stdout + completed.stderr


@pytest.mark.parametrize("ready", [False, True], ids=["healthcheck", "healthcheck --ready"])
def test_a_probe_that_may_not_read_the_key_or_client_ca_is_healthy_without_a_refusal(
    secured, tmp_path: Path, ready: bool
) -> None:
    """A probe run as another user than the bridge's, who may not read its key and client CA
    (0600, the bridge's user's), leaves them unread as a client command does: healthy (ready)
    with no refusal in its line, the file the bridge serves being good."""
    bridge, env, folder = secured
    for name in ("server.key", "client-ca.pem"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    web = (folder / "web.yml").read_text()
    web = web.replace("cert_file: server.pem", f"cert_file: {folder / 'server.pem'}")
    web = web.replace("key_file: server.key", f"key_file: {tmp_path / 'server.key'}")
    web = web.replace("client_ca_file: client-ca.pem", f"client_ca_file: {tmp_path}/client-ca.pem")
    (tmp_path / "web.yml").write_text(web)
    prefix = withhold(tmp_path / "server.key")
    withhold(tmp_path / "client-ca.pem")
    args = ["--ready"] if ready else []
    completed = run_command(
        [*prefix, sys.executable, "-m", "bridge", "healthcheck", *args],
        {**env, "EXESDB_WEB_CONFIG_FILE": str(tmp_path / "web.yml")},
    )
    assert completed.returncode == 0, completed.stderr
    good, path = ("ready", "readyz") if ready else ("healthy", "healthz")
    assert completed.stdout == f"{good}: https://127.0.0.1:{bridge.port}/{path} answered 200\n"


async def test_the_bridge_s_401_says_why_in_publish_s_words(server: Server) -> None:
    """A 401 in the bridge's realm says in the line why, as publish says it: credentials sent
    are not among its basic_auth_users, or none were sent and which settings send them; a 401
    of another server (no such realm) is said as its status alone (above)."""

    async def bridge_refusing(request: web.Request) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})

    await server.start(bridge_refusing)
    sent = await asyncio.to_thread(probe, server.url(), credentials=("ops", "wrong"))
    assert sent.line == (
        f"unhealthy: {server.url()} answered 401 Unauthorized: the user and password given"
        " (EXESDB_HEALTHCHECK_USERNAME, EXESDB_HEALTHCHECK_PASSWORD_FILE) are not one of the"
        " bridge's basic_auth_users"
    )
    unsent = await asyncio.to_thread(probe, server.url(), endpoint=READINESS)
    assert unsent.line == (
        f"not ready: {server.url()} answered 401 Unauthorized: the bridge asks for one of its"
        " basic_auth_users: set EXESDB_HEALTHCHECK_USERNAME and EXESDB_HEALTHCHECK_PASSWORD_FILE"
    )
    assert "wrong" not in sent.line


def test_command_without_basic_auth_settings_says_which_to_set(secured) -> None:
    """Basic auth asked for but no user or password file: exit 1 naming both settings."""
    env = dict(secured[1])
    del env["EXESDB_HEALTHCHECK_USERNAME"]
    completed = healthcheck(**env)
    assert completed.returncode == 1
    assert completed.stderr == (
        "unhealthy: cannot probe: the web config asks for basic auth: set "
        "EXESDB_HEALTHCHECK_USERNAME and EXESDB_HEALTHCHECK_PASSWORD_FILE\n"
    )


def test_command_with_a_wrong_password_is_unhealthy_with_401(secured) -> None:
    """A wrong password in the password file: the bridge answers 401 and the probe exits 1, its
    one line saying why as publish says it (the user and password are not among the bridge's
    basic_auth_users), naming the settings, never the password."""
    bridge, env, folder = secured
    wrong = folder / "wrong-password"
    wrong.write_text("not-it")
    completed = healthcheck(**{**env, "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(wrong)})
    assert completed.returncode == 1
    assert completed.stderr == (
        f"unhealthy: https://127.0.0.1:{bridge.port}/healthz answered 401 Unauthorized: the user"
        " and password given (EXESDB_HEALTHCHECK_USERNAME, EXESDB_HEALTHCHECK_PASSWORD_FILE) are"
        " not one of the bridge's basic_auth_users\n"
    )


def test_command_without_a_client_certificate_says_which_to_set(secured) -> None:
    """RequireAndVerifyClientCert and no probe certificate: exit 1 naming the settings."""
    env = dict(secured[1])
    del env["EXESDB_HEALTHCHECK_CERT_FILE"], env["EXESDB_HEALTHCHECK_KEY_FILE"]
    completed = healthcheck(**env)
    assert completed.returncode == 1
    assert "set EXESDB_HEALTHCHECK_CERT_FILE and EXESDB_HEALTHCHECK_KEY_FILE" in completed.stderr


def test_command_with_a_certificate_of_another_ca_is_refused_by_the_server(secured) -> None:
    """A client certificate the server's client CA did not sign fails the handshake: exit 1."""
    _, env, folder = secured
    stranger = WebFiles(folder / "stranger").client_cert(name="stranger")
    stranger.cert_chain_pems[0].write_to_path(str(folder / "stranger.pem"))
    stranger.private_key_pem.write_to_path(str(folder / "stranger.key"))
    completed = healthcheck(
        **{
            **env,
            "EXESDB_HEALTHCHECK_CERT_FILE": str(folder / "stranger.pem"),
            "EXESDB_HEALTHCHECK_KEY_FILE": str(folder / "stranger.key"),
        }
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith("unhealthy: ")
    assert "healthy: https" not in completed.stdout


@pytest.mark.parametrize(
    ("variable", "kind", "said"),
    [
        ("PASSWORD", "fifo", "cannot read {name} {path}: a FIFO (named pipe), not a regular file"),
        ("CERT", "fifo", "cannot load {name} {path}: a FIFO (named pipe), not a regular file"),
        ("KEY", "fifo", "cannot load {name} {path}: a FIFO (named pipe), not a regular file"),
        ("PASSWORD", "device", "cannot read {name} {path}: a character device, not a regular file"),
        ("KEY", "device", "cannot load {name} {path}: a character device, not a regular file"),
        (
            "PASSWORD",
            "large",
            "cannot read {name} {path}: larger than 64 KiB, the most this file may hold: is it"
            " the right file?",
        ),
        (
            "CERT",
            "large",
            "cannot load {name} {path}: larger than 1024 KiB, the most this file may hold: is it"
            " the right file?",
        ),
    ],
)
def test_a_probe_file_that_is_a_fifo_a_device_or_too_large_is_refused_within_the_timeout(
    secured, tmp_path: Path, variable: str, kind: str, said: str
) -> None:
    """The probe's password, certificate or key file that is a FIFO or a device is refused
    unopened, and one over the most such a file holds (64 KiB for a password, 1 MiB for a
    certificate or key) unread, the line naming the variable and why, within --timeout: a FIFO
    held the probe past its timeout until a writer came, and ``/dev/zero`` as the password took
    8 GB in 15 s."""
    env = dict(secured[1])
    name = f"EXESDB_HEALTHCHECK_{variable}_FILE"
    path = tmp_path / "file"
    if kind == "device":
        path = Path("/dev/null")
    elif kind == "large":
        path.write_bytes(b"#" * ((1 << 20) + 1))
    # A reader still waiting after the probe's timeout is let go, so the test fails, not hangs.
    # (10 s: the command's start, on a busy machine, counts too.)
    fifo = FifoReleaser(tmp_path / "file", after=12.0) if kind == "fifo" else None
    with fifo or contextlib.nullcontext():
        began = time.monotonic()
        completed = healthcheck("--timeout", "10", **{**env, name: str(path)})
        took = time.monotonic() - began
    assert completed.returncode == 1
    assert completed.stderr == f"unhealthy: cannot probe: {said.format(name=name, path=path)}\n"
    assert took < 10, f"took {took:.1f} s"


def test_a_web_config_whose_certificate_is_a_fifo_is_told_within_the_timeout(
    tmp_path: Path,
) -> None:
    """A web config whose server certificate file is a FIFO is refused, and the probe's line
    says so within --timeout: the probe read the certificate to pin it, and waited on the FIFO
    for a writer past its timeout (15 s and more against 2)."""
    files = WebFiles(tmp_path)
    files.write(files.tls_config())
    # A reader still waiting after the probe's timeout is let go, so the test fails, not hangs.
    # (10 s: the command's start, on a busy machine, counts too.)
    with FifoReleaser(tmp_path / "server.pem", after=12.0) as fifo:
        began = time.monotonic()
        completed = healthcheck(
            "--timeout",
            "10",
            EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
            EXESDB_WEB_CONFIG_FILE=str(tmp_path / "web.yml"),
        )
        took = time.monotonic() - began
    assert (completed.returncode, fifo.released) == (1, 0)
    assert (
        f"cannot trust the server's cert_file {fifo.path}: a FIFO (named pipe), not a regular"
        " file)" in completed.stderr
    )
    assert took < 10, f"took {took:.1f} s"


@pytest.mark.parametrize("fault", ["unreadable", "no certificate"])
def test_a_web_config_certificate_the_probe_cannot_use_is_named_with_why(
    tmp_path: Path, fault: str
) -> None:
    """A web config whose server certificate file the probe may not read, or which holds no
    certificate (the key given as cert_file), is named in the probe's line with why, in the
    system's or the bridge's words (not a Python tuple), as a bad file is; exit 1, nothing of
    the key shown."""
    files = WebFiles(tmp_path)
    prefix: list[str] = []
    cert = tmp_path / "server.pem"
    if fault == "unreadable":
        files.write(files.tls_config())
        prefix = withhold(cert)
        why, refusal = "Permission denied", f"cannot read {cert}: Permission denied"
    else:
        cert = tmp_path / "server.key"
        files.write("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n")
        why = f"no PEM certificate in {cert}"
        refusal = f"cannot load {cert} with key_file {cert}: {cert} holds no PEM certificate"
    completed = run_command(
        [*prefix, sys.executable, "-m", "bridge", "healthcheck"],
        {
            "EXESDB_HTTP_ADDR": f"127.0.0.1:{free_port()}",
            "EXESDB_WEB_CONFIG_FILE": str(tmp_path / "web.yml"),
        },
    )
    assert completed.returncode == 1, completed.stderr
    assert f"(cannot trust the server's cert_file {cert}: {why});" in completed.stderr
    assert (
        f"the web config file is bad: {tmp_path / 'web.yml'}: tls_server_config.cert_file:"
        f" {refusal}"
    ) in completed.stderr
    key = (tmp_path / "server.key").read_text().splitlines()[1]
    assert key not in completed.stdout + completed.stderr


# -- readiness: `healthcheck --ready` --


def test_ready_command_exits_0_against_a_ready_bridge_over_https(secured) -> None:
    """--ready asks /readyz with the same TLS, client certificate and basic auth as the probe of
    /healthz: a ready bridge answers 200, exit 0, one line on stdout."""
    bridge, env, _ = secured
    completed = healthcheck("--ready", **env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"ready: https://127.0.0.1:{bridge.port}/readyz answered 200\n"
    assert PASSWORD not in completed.stdout + completed.stderr


def test_ready_command_names_the_parts_not_ready_over_https(tmp_path: Path) -> None:
    """A bridge behind TLS, client certificates and basic auth whose Redis bus cannot be reached
    is alive but not ready: `healthcheck` exits 0, `healthcheck --ready` exits 1 with one line
    naming the part not ready and its reason, as the bridge's /readyz body gives them."""
    files = WebFiles(tmp_path)
    files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
        )
        + f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n"
    )
    client = files.client_cert(name="probe")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "probe.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "probe.key"))
    (tmp_path / "password").write_text(PASSWORD)
    redis_port = free_port()
    bridge = BridgeProcess(
        state_dir=tmp_path / "state",
        context=files.client_context(client),
        headers={"Authorization": basic("probe", PASSWORD)},
        EXESDB_WEB_CONFIG_FILE=str(tmp_path / "web.yml"),
        EXESDB_BUS=f"redis://127.0.0.1:{redis_port}/0",
    )
    bridge.start(tmp_path)
    try:
        env = {
            "EXESDB_HTTP_ADDR": f"0.0.0.0:{bridge.port}",
            "EXESDB_WEB_CONFIG_FILE": str(tmp_path / "web.yml"),
            "EXESDB_HEALTHCHECK_USERNAME": "probe",
            "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(tmp_path / "password"),
            "EXESDB_HEALTHCHECK_CERT_FILE": str(tmp_path / "probe.pem"),
            "EXESDB_HEALTHCHECK_KEY_FILE": str(tmp_path / "probe.key"),
        }
        alive = healthcheck(**env)
        not_ready = healthcheck("--ready", **env)
    finally:
        bridge.stop()
    assert alive.returncode == 0, alive.stderr
    assert not_ready.returncode == 1, not_ready.stdout
    assert not_ready.stdout == ""
    assert not_ready.stderr.startswith(
        f"not ready: https://127.0.0.1:{bridge.port}/readyz answered 503 Service Unavailable: "
        f"waiting for bus (Redis at redis://127.0.0.1:{redis_port}/… is unreachable: "
    )
    assert not_ready.stderr.count("\n") == 1
    assert PASSWORD not in not_ready.stderr


def readyz_answer(status: int, checks: dict[str, dict[str, object]]) -> Handler:
    """A handler answering ``status`` with a /readyz body of ``checks``, as the bridge's."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"ready": status == 200, "checks": checks}, status=status)

    return handle


async def test_a_not_ready_line_names_only_required_parts_on_one_line(server: Server) -> None:
    """A 503 line names each required part not ready with its reason, its line breaks made
    spaces; parts ready, or not required, are not named."""
    checks: dict[str, dict[str, object]] = {
        "bus": {"ready": False, "required": True, "reason": "Redis is\nunreachable"},
        "prometheus": {"ready": True, "required": True, "reason": None},
        "alerts": {"ready": False, "required": True, "reason": None},
        "otlp": {"ready": False, "required": False, "reason": "collector unreachable"},
    }
    await server.start(readyz_answer(503, checks))
    url = server.url(path="/readyz")
    verdict = await asyncio.to_thread(probe, url, endpoint=READINESS)
    assert not verdict.healthy
    assert verdict.line == (
        f"not ready: {url} answered 503 Service Unavailable: waiting for bus (Redis is "
        "unreachable), alerts"
    )


async def test_a_503_that_is_not_the_bridge_s_is_not_ready_without_parts(server: Server) -> None:
    """A 503 whose body is not a /readyz body is not ready, the line giving the status alone."""
    await server.start(answer(503))
    url = server.url(path="/readyz")
    verdict = await asyncio.to_thread(probe, url, endpoint=READINESS)
    assert verdict.line == f"not ready: {url} answered 503 Service Unavailable"


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (503, "not ready: {url} answered 503 Service Unavailable"),
        (
            200,
            "not ready: {url} answered 200, but not as the bridge's /readyz answers: another"
            " server listens there; EXESDB_HTTP_ADDR must be the address the bridge listens on",
        ),
    ],
)
async def test_a_readyz_body_nested_past_the_parser_s_depth_is_not_the_bridge_s(
    server: Server, status: int, line: str
) -> None:
    """A body within the size read but nested deeper than Python's JSON reader goes (60 000
    ``[``: RecursionError, no ValueError) is no /readyz body of the bridge's: the verdict is the
    status alone, one line, rather than the probe stopping on a traceback."""

    async def deep(request: web.Request) -> web.Response:
        return web.Response(status=status, text="[" * 60_000)

    await server.start(deep)
    url = server.url(path="/readyz")
    verdict = await asyncio.to_thread(probe, url, endpoint=READINESS)
    assert (verdict.healthy, verdict.line) == (False, line.format(url=url))
    assert not verdict.from_bridge


@pytest.mark.parametrize(("endpoint", "path"), [(LIVENESS, "/healthz"), (READINESS, "/readyz")])
async def test_another_server_s_200_at_the_address_is_not_the_bridge_healthy(
    server: Server, endpoint: Endpoint, path: str
) -> None:
    """Another server holding the address and answering 200 to anything (the bridge could not
    listen there, or EXESDB_HTTP_ADDR names another service) is unhealthy, saying so."""
    await server.start(answer(200))
    url = server.url(path=path)
    verdict = await asyncio.to_thread(probe, url, endpoint=endpoint)
    assert not verdict.healthy
    assert verdict.line == (
        f"{endpoint.bad}: {url} answered 200, but not as the bridge's {path} answers: another"
        " server listens there; EXESDB_HTTP_ADDR must be the address the bridge listens on"
    )


@pytest.mark.parametrize(("endpoint", "path"), [(LIVENESS, "/healthz"), (READINESS, "/readyz")])
@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "Not Found"), (405, "Method Not Allowed"), (501, "Not Implemented")],
)
async def test_another_server_s_404_at_the_address_says_another_server_listens_there(
    server: Server, endpoint: Endpoint, path: str, status: int, reason: str
) -> None:
    """A status the bridge never answers its probes with (another server's 404, a 405 of one
    serving that path to POST only, or python -m http.server's 501) says another server listens
    there, as its 200 does, not the status alone as though the bridge had answered it."""
    await server.start(answer(status))
    url = server.url(path=path)
    verdict = await asyncio.to_thread(probe, url, endpoint=endpoint)
    assert (verdict.healthy, verdict.status, verdict.from_bridge) == (False, status, False)
    assert verdict.line == (
        f"{endpoint.bad}: {url} answered {status} {reason}, which the bridge's {path} never"
        " answers: another server listens there; EXESDB_HTTP_ADDR must be the address the bridge"
        " listens on"
    )


@pytest.mark.parametrize(
    ("handler", "code", "line"),
    [
        pytest.param(readyz_answer(200, {}), 0, "ready: {url} answered 200, its ", id="ready"),
        pytest.param(
            answer(401, **{"WWW-Authenticate": 'Basic realm="exesdb-bridge"'}),
            1,
            "not ready: {url} answered 401, the bridge asking for credentials, its ",
            id="bridge-401",
        ),
        pytest.param(
            answer(200),
            1,
            "not ready: {url} answered 200, but not as the bridge answers, its ",
            id="other-200",
        ),
    ],
)
async def test_unverified_readiness_is_only_the_bridge_s_own_200(
    server: Server, tmp_path: Path, handler: Handler, code: int, line: str
) -> None:
    """A refused file whose certificate does not verify the one served: --ready asks again
    unverified and without credentials, and only the bridge's own /readyz 200 is ready; its 401
    in its realm says it runs, not that it is ready."""
    files = WebFiles(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    await server.start(handler, ssl_context=serving)
    path = files.write(rotate_badly(files, "mismatched-key") + "colour: vermilion\n")
    completed = await asyncio.to_thread(
        healthcheck_process,
        "--ready",
        EXESDB_HTTP_ADDR=f"127.0.0.1:{server.port}",
        EXESDB_WEB_CONFIG_FILE=str(path),
    )
    assert completed.returncode == code, completed.stdout + completed.stderr
    shown = completed.stdout if code == 0 else completed.stderr
    assert shown.startswith(line.format(url=server.url("https", "/readyz"))), shown
    assert [request.path for request in server.seen] == ["/readyz"]


OTHER_HASH = bcrypt_hash("other")


@pytest.mark.parametrize(
    ("bad", "unshown"),
    [
        pytest.param("  other: not-a-hash\n", "not-a-hash", id="bad-hash"),
        pytest.param(f"  probe: '{OTHER_HASH}'\n", OTHER_HASH, id="user-twice"),
        pytest.param("colour: vermilion\n", "vermilion", id="unknown-key"),
    ],
)
def test_a_bad_new_web_config_leaves_the_bridge_healthy_while_it_serves_the_old_one(
    tmp_path: Path, bad: str, unshown: str
) -> None:
    """A bad file written over a good one is refused by the running bridge, which keeps serving
    the old version: the probe still asks as the file's own TLS section says and exits 0, saying
    the file is refused, so a liveness probe does not restart a serving bridge into a start-up
    that fails (exit 2) on that file; the bad value is not shown."""
    files = WebFiles(tmp_path)
    good = files.tls_config() + f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n"
    path = files.write(good)
    port, _, completed = probe_a_refused_rewrite(tmp_path, files, path, good + bad)
    assert completed.returncode == 0, completed.stderr
    url = f"https://127.0.0.1:{port}/healthz"
    assert completed.stdout.startswith(
        f"healthy: {url} answered 200; the web config file is refused (the bridge serves the "
        f"version before it): {path}: "
    )
    assert unshown not in completed.stdout  # a value in basic_auth_users may be a secret


def probe_a_refused_rewrite(
    folder: Path, files: WebFiles, path: Path, rewrite: str
) -> tuple[int, dict[str, str], subprocess.CompletedProcess[str]]:
    """Start a bridge (in this process: what is tested is the probe) serving the web config
    file ``path`` of ``files``, whose basic auth knows ``probe``; write ``rewrite`` over the file
    and, once the bridge refused it, run the probe as ``probe``; the bridge is stopped after.
    Its port, the probe's environment and what the probe said."""
    (folder / "password").write_text(PASSWORD)
    with ThreadedBridge(
        EXESDB_WEB_CONFIG_FILE=str(path), EXESDB_STATE_DIR=str(folder / "state")
    ) as bridge:
        env = {
            "EXESDB_HTTP_ADDR": f"127.0.0.1:{bridge.port}",
            "EXESDB_WEB_CONFIG_FILE": str(path),
            "EXESDB_HEALTHCHECK_USERNAME": "probe",
            "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(folder / "password"),
        }
        files.write(rewrite)
        wait_for_refusal(bridge.port, files)
        return bridge.port, env, healthcheck(**env)


def wait_for_refusal(port: int, files: WebFiles) -> None:
    """Until the bridge on ``port`` has refused its changed web config file (its reload gauge at
    0, set as it logs "not reloaded") and still serves the old one.

    A request makes the bridge look at the file (at most once a second)."""
    login = {"Authorization": basic("probe", PASSWORD)}

    def refused() -> bool:
        status, exposition = http_get(
            f"https://127.0.0.1:{port}/metrics", login, context=files.client_context()
        )
        return status == 200 and b"exesdb_web_config_last_reload_successful 0.0" in exposition

    wait_until(refused, 15, "the refusal")


def rotate_badly(files: WebFiles, how: str) -> str:
    """A TLS section that passes the schema but that the bridge refuses: a new certificate in a
    new cert_file with the old key, a key_file or a cert_file that is not there."""
    files.ca.issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(files.folder / "new.pem"))
    cert_file, key_file = {
        "mismatched-key": ("new.pem", "server.key"),
        "missing-key-file": ("new.pem", "gone.key"),
        "missing-cert-file": ("gone.pem", "server.key"),
    }[how]
    return f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n"


@pytest.mark.parametrize("how", ["mismatched-key", "missing-key-file", "missing-cert-file"])
def test_a_bad_certificate_rotation_leaves_a_serving_bridge_healthy_saying_so(
    tmp_path: Path, how: str
) -> None:
    """A refused file whose certificate is not the one served (or is not there): the probe asks
    again without verifying the certificate and without credentials, exits 0 on the bridge's
    answer (401: basic auth asked) saying so; once the bridge stops, the probe exits 1."""
    files = WebFiles(tmp_path)
    users = f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n"
    path = files.write(files.tls_config() + users)
    port, env, completed = probe_a_refused_rewrite(
        tmp_path, files, path, rotate_badly(files, how) + users
    )
    assert completed.returncode == 0, completed.stderr
    url = f"https://127.0.0.1:{port}/healthz"
    assert completed.stdout.startswith(
        f"healthy: {url} answered 401, its certificate not verified and no credentials sent ("
    )
    assert (
        f"; the web config file is refused (the bridge serves the version before it): {path}: "
        in completed.stdout
    )
    assert completed.stdout.count("\n") == 1
    stopped = healthcheck(**env)
    assert stopped.returncode == 1
    assert stopped.stderr.startswith(f"unhealthy: cannot connect to {url}: Connection refused")
    assert f"; the web config file is bad: {path}: tls_server_config" in stopped.stderr


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


def test_the_bridge_answers_what_the_probe_takes_for_it() -> None:
    """The probe knows the bridge by its /healthz body (and by its realm, which a bridge asking
    for basic auth answers in the bad rotation test): the bridge's /healthz answers that body."""
    response = asyncio.run(healthz(None))  # type: ignore[arg-type]  # the request is not read
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == {"status": "ok"}  # as docs/http-api.md gives it


def test_a_bad_web_config_with_nothing_listening_is_told_as_bad_not_as_served_around(
    tmp_path: Path,
) -> None:
    """A bad file and nothing answering (a bridge stopping on that file at start-up): exit 1,
    the line calling the file bad, not saying the bridge serves the version before it."""
    path = WebFiles(tmp_path).write("basic_auth_users:\n  other: not-a-hash\n")
    port = free_port()
    completed = healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{port}", EXESDB_WEB_CONFIG_FILE=str(path))
    assert completed.returncode == 1
    assert completed.stderr.startswith(
        f"unhealthy: cannot connect to http://127.0.0.1:{port}/healthz: Connection refused; "
        f"the web config file is bad: {path}: basic_auth_users"
    )
    assert "version before it" not in completed.stderr


def test_a_web_config_whose_tls_section_is_bad_leaves_nothing_to_probe_with(
    tmp_path: Path,
) -> None:
    """When the file's TLS section itself is bad there is no certificate to trust: exit 1,
    naming the problem."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config("min_version: TLS99"))
    completed = healthcheck(EXESDB_HTTP_ADDR="127.0.0.1:9", EXESDB_WEB_CONFIG_FILE=str(path))
    assert completed.returncode == 1
    assert completed.stderr.startswith(
        f"unhealthy: bad configuration: EXESDB_WEB_CONFIG_FILE: {path}: "
    )
    assert "tls_server_config.min_version" in completed.stderr


# A probe's target made in a process of its own, counting how often it opens the web config file
# (an audit hook sees every open) and hands YAML text to PyYAML (every reading starts a Reader).
_COUNTED_TARGET = """
import sys, yaml.reader
from bridge.cli.healthcheck import target
from bridge.probe_settings import ProbeSettings
path = sys.argv[1]
opened, parsed = [], []
sys.addaudithook(lambda event, args: event == "open" and args[0] == path and opened.append(1))
def counting(self, stream, _original=yaml.reader.Reader.__init__):
    if stream:
        parsed.append(1)
    _original(self, stream)
yaml.reader.Reader.__init__ = counting
where = target(ProbeSettings.from_environ(
    {"EXESDB_HTTP_ADDR": "127.0.0.1:9", "EXESDB_WEB_CONFIG_FILE": path}
))
print(len(opened), len(parsed), bool(where.refusal))
"""


def test_a_refused_web_config_is_read_once_and_its_yaml_parsed_once(tmp_path: Path) -> None:
    """The probe of a refused file (a bad key beside a good TLS section) opens it once, and gives
    its text to PyYAML twice, as the bridge's own reading does (loaded, and composed to find
    keys given twice): the refusal and the TLS section to probe with come from that one reading."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config() + "colour: vermilion\n")
    completed = run_command([sys.executable, "-c", _COUNTED_TARGET, str(path)])
    assert completed.stdout.split() == ["1", "2", "True"], completed.stderr


# -- what a probe costs --

# What the bridge itself runs on: a probe importing any of these pays for the whole bridge.
HEAVY = ("aiohttp", "pydantic", "pydantic_settings", "opentelemetry", "prometheus_client", "redis")
# What of bridge.cli a plain probe imports: the probe and its options.
PROBE = {"bridge.cli.healthcheck", "bridge.cli.healthcheck_options"}


def modules_imported_by_healthcheck(*args: str, site: bool = True, **env: str) -> set[str]:
    """The modules ``python -X importtime -m bridge healthcheck`` imports; without ``site``
    (``-S``), those of the probe alone, as an installed bridge's: no ``.pth`` of the site
    packages runs, whatever the venv holds."""
    flags = [] if site else ["-S"]
    completed = run_command(
        [sys.executable, *flags, "-X", "importtime", "-m", "bridge", "healthcheck", *args], env
    )
    lines = [line for line in completed.stderr.splitlines() if line.startswith("import time:")]
    assert lines, completed.stderr
    return {line.rsplit("|", 1)[1].strip() for line in lines}


def imported_by_healthcheck(*args: str, **env: str) -> set[str]:
    """The top-level packages ``python -X importtime -m bridge healthcheck`` imports."""
    return {name.split(".")[0] for name in modules_imported_by_healthcheck(*args, site=True, **env)}


def test_command_imports_none_of_the_bridge_s_libraries() -> None:
    """A probe without a web config imports no aiohttp, pydantic, OpenTelemetry, prometheus_client
    or redis, nor dataclasses (with inspect, a sixth of its own imports' cost) or pathlib: it
    stays cheap enough to run every few seconds."""
    imported = imported_by_healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    assert "bridge" in imported
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))
    alone = modules_imported_by_healthcheck(site=False, EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    assert "bridge.cli.healthcheck" in alone
    assert alone.isdisjoint({"dataclasses", "inspect", "pathlib"}), sorted(alone)


def test_command_with_a_web_config_imports_its_reader_but_not_the_server(tmp_path: Path) -> None:
    """With basic auth in a web config the probe reads the file (pydantic) but imports none of
    the serving side: no aiohttp, OpenTelemetry, prometheus_client or redis."""
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n")
    (tmp_path / "password").write_text(PASSWORD)
    imported = imported_by_healthcheck(
        EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
        EXESDB_WEB_CONFIG_FILE=str(tmp_path / "web.yml"),
        EXESDB_HEALTHCHECK_USERNAME="probe",
        EXESDB_HEALTHCHECK_PASSWORD_FILE=str(tmp_path / "password"),
    )
    assert "pydantic" in imported
    assert imported.isdisjoint(set(HEAVY) - {"pydantic", "pydantic_settings"}), sorted(
        imported & set(HEAVY)
    )


def test_ready_command_stays_on_the_light_path() -> None:
    """``healthcheck --ready`` is the same light probe: no parser, none of the bridge's
    libraries; the probe and its options alone."""
    modules = modules_imported_by_healthcheck(
        "--ready", EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}"
    )
    assert {name for name in modules if name.startswith("bridge.cli.")} == PROBE
    assert {name.split(".")[0] for name in modules}.isdisjoint(HEAVY)


def test_command_with_an_option_it_does_not_take_goes_to_the_full_command_line() -> None:
    """``healthcheck --help`` is answered by bridge.cli's parser (so the check of the light path
    above can see an import it does not make); tests/test_cli_imports.py holds what that imports.
    A plain probe runs bridge.cli.healthcheck (and its options) without the parser or its
    subcommands."""
    assert "bridge.cli.parser" in modules_imported_by_healthcheck("--help")
    light = modules_imported_by_healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    assert {name for name in light if name.startswith("bridge.cli.")} == PROBE
