"""Where the client commands find a bridge (bridge.cli.client), and how they show where they
looked."""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.client import Target, bridge_url, target, url_argument, user_argument
from bridge.client_settings import BridgeLocation
from bridge.errors import ConfigError
from bridge.headers import ADMIN_TOKEN_HEADER
from tests.support import ADMIN_TOKEN, ThreadedBridge, unavailable
from tests.webconfig.files import WebFiles


def test_url_flag_then_exesdb_url_then_the_http_addr() -> None:
    """--url wins, then EXESDB_URL, then the address EXESDB_HTTP_ADDR names."""
    settings = BridgeLocation(EXESDB_HTTP_ADDR="0.0.0.0:8123")
    assert bridge_url(settings) == "http://127.0.0.1:8123"
    with_url = BridgeLocation(EXESDB_HTTP_ADDR="0.0.0.0:8123", EXESDB_URL="http://b.example:1/")
    assert bridge_url(with_url) == "http://b.example:1"
    assert bridge_url(with_url, "https://c.example:2/") == "https://c.example:2"


def test_port_0_in_the_http_addr_is_no_place_to_look() -> None:
    """EXESDB_HTTP_ADDR with port 0 names no port a client can ask: a ConfigError saying to give
    --url or EXESDB_URL, which still work."""
    settings = BridgeLocation(EXESDB_HTTP_ADDR="127.0.0.1:0")
    with pytest.raises(ConfigError) as raised:
        bridge_url(settings)
    assert raised.value.problems == (
        "EXESDB_HTTP_ADDR: port 0 is a free port the bridge picks as it starts (its start-up line"
        " names it), so no command can find it there; give it with --url or EXESDB_URL",
    )
    assert bridge_url(settings, "http://127.0.0.1:41234") == "http://127.0.0.1:41234"
    with_url = BridgeLocation(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_URL="http://127.0.0.1:41234")
    assert bridge_url(with_url) == "http://127.0.0.1:41234"


def test_the_http_addr_is_asked_over_https_when_the_web_config_serves_tls(tmp_path: Path) -> None:
    """With TLS on in EXESDB_WEB_CONFIG_FILE the address is an https URL."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config())
    settings = BridgeLocation(EXESDB_HTTP_ADDR="127.0.0.1:9443", EXESDB_WEB_CONFIG_FILE=str(path))
    assert bridge_url(settings) == "https://127.0.0.1:9443"
    plain = files.write("basic_auth_users: {}\n", name="plain.yml")
    settings = BridgeLocation(EXESDB_HTTP_ADDR="127.0.0.1:9443", EXESDB_WEB_CONFIG_FILE=str(plain))
    assert bridge_url(settings) == "http://127.0.0.1:9443"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("notaurl", "not a URL; allowed: an http:// or https:// URL with a host"),
        ("ftp://u:pw@h/tok", "'ftp://u:<redacted>@h/…' is not"),
        ("http://", "not a URL; allowed"),
        ("u:pw@bridge:9570", "e.g. http://u:<redacted>@bridge:9570"),
        ("redis:/u:pw@bridge", "not a URL; allowed"),
    ],
)
def test_a_url_option_that_is_no_http_url_is_a_usage_error(text: str, shown: str) -> None:
    """--url takes http:// or https:// URLs with a host; the error never shows a password."""
    with pytest.raises(argparse.ArgumentTypeError, match="http:// or https://") as caught:
        url_argument(text)
    assert shown in str(caught.value)
    assert "pw" not in str(caught.value)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("environment", "example"),
    [
        ({"EXESDB_HTTP_ADDR": "127.0.0.1:8080"}, "e.g. http://127.0.0.1:8080"),
        ({"EXESDB_HTTP_ADDR": "[::]:8081"}, "e.g. http://[::1]:8081"),
        # The web config file is read only when the address is asked: not for an example.
        (
            {"EXESDB_HTTP_ADDR": "127.0.0.1:8082", "EXESDB_WEB_CONFIG_FILE": "/nonexistent.yml"},
            "e.g. http://127.0.0.1:8082",
        ),
        # EXESDB_URL may hold a password: the example is the listen address's.
        ({"EXESDB_URL": "http://u:pw@b.example:8443"}, "e.g. http://127.0.0.1:9570"),
        ({"EXESDB_HTTP_ADDR": "127.0.0.1:0"}, "e.g. http://127.0.0.1:9570"),
        ({"EXESDB_HTTP_ADDR": "nonsense"}, "e.g. http://127.0.0.1:9570"),
        ({}, "e.g. http://127.0.0.1:9570"),
    ],
)
def test_a_bad_url_option_s_example_is_the_address_the_shell_names(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], example: str
) -> None:
    """In a shell set up as the README's, with EXESDB_HTTP_ADDR on another port, the example a
    refused --url gives is the URL the commands would ask there, not the default port's."""
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        url_argument("notaurl")
    assert str(caught.value).endswith(example)
    assert "pw" not in str(caught.value)


def test_user_takes_a_password_or_leaves_it_to_ask() -> None:
    """USER:PASSWORD splits at the first colon; USER alone leaves the password to ask for."""
    assert user_argument("alice:pa:ss") == ("alice", "pa:ss")
    assert user_argument("alice") == ("alice", None)
    with pytest.raises(argparse.ArgumentTypeError):
        user_argument(":pw")


def test_the_admin_token_moves_aside_for_basic_auth() -> None:
    """Bearer in Authorization, unless basic auth holds it: then X-ExESDB-Admin-Token."""
    settings = BridgeLocation()
    assert Target("http://h:1").admin_headers("t") == {"Authorization": "Bearer t"}
    with_user = target(settings, url="http://h:1", user=("alice", "pw"))
    assert with_user.admin_headers("t") == {ADMIN_TOKEN_HEADER: "t"}


def test_a_ca_file_that_cannot_be_read_is_a_configuration_error(tmp_path: Path) -> None:
    """--cacert naming a missing file is refused, naming the option."""
    with pytest.raises(ConfigError, match="--cacert"):
        target(BridgeLocation(), cacert=str(tmp_path / "missing.pem"))


def test_credentials_in_the_url_are_sent_as_basic_auth_beside_the_admin_token() -> None:
    """A ``user:password@`` in --url or EXESDB_URL is taken as --user would be (percent-encoding
    undone, --user winning): the URL kept without it and the admin token in its own header, so
    an admin command reaches the bridge instead of failing with a traceback."""
    with ThreadedBridge(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN) as bridge:
        url = bridge.url.replace("//", "//alice:p%40ss@")
        found = target(BridgeLocation(EXESDB_URL=url))
        assert (found.url, found.basic_auth) == (bridge.url, ("alice", "p@ss"))
        status, text = found.request(
            "GET", "/v1/integration", headers=found.admin_headers(ADMIN_TOKEN)
        )
        assert status == 200, text
    assert target(BridgeLocation(), url=url, user=("bob", "pw")).basic_auth == ("bob", "pw")


def ipv6_loopback() -> None:
    """Skip (fail under CI) where no socket can be bound to ::1: IPv6 turned off on the host."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        unavailable(f"no IPv6 loopback on this host: {exc}")


@pytest.mark.parametrize("listen", ["::1", "127.0.0.1"])
@pytest.mark.parametrize("variable", ["EXESDB_URL", "EXESDB_HTTP_ADDR"])
def test_localhost_reaches_a_bridge_on_either_loopback_address_alone(
    variable: str, listen: str
) -> None:
    """``localhost`` in EXESDB_URL (or EXESDB_HTTP_ADDR) reaches a bridge listening on ::1
    alone, or on 127.0.0.1 alone, as curl reaches it: the client tries both loopback addresses,
    whether or not /etc/hosts lists ::1 as localhost."""
    ipv6_loopback()
    with ThreadedBridge(
        EXESDB_HTTP_ADDR=f"[{listen}]:0" if ":" in listen else f"{listen}:0"
    ) as bridge:
        assert bridge.host == listen
        where = f"localhost:{bridge.port}"
        given: dict[str, Any] = {variable: f"http://{where}" if variable == "EXESDB_URL" else where}
        found = target(BridgeLocation(**given))
        assert found.url == f"http://{where}"
        status, text = found.request("GET", "/healthz")
        assert status == 200, text


class _Redirecting(BaseHTTPRequestHandler):
    """Every GET answered 307 to the same path at the server's ``to`` URL."""

    to = ""

    def do_GET(self) -> None:
        self.send_response(307)
        self.send_header("Location", self.to + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the answers."""


def test_a_redirect_is_followed_to_the_bridge() -> None:
    """A proxy's redirect (307 to the bridge) is followed, as aiohttp follows it: the answer is
    the bridge's, not the redirect."""
    with ThreadedBridge() as bridge:
        _Redirecting.to = bridge.url
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            found = target(BridgeLocation(EXESDB_URL=f"http://127.0.0.1:{server.server_port}"))
            status, text = found.request("GET", "/healthz")
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
    assert (status, json.loads(text)) == (200, {"status": "ok"})


def _head(conn: socket.socket) -> None:
    """Read a request's head (a GET has nothing after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk


def _closed_at_once(conn: socket.socket) -> None:
    _head(conn)


def _reset(conn: socket.socket) -> None:
    _head(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _not_http(conn: socket.socket) -> None:
    _head(conn)
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def _cut_short(conn: socket.socket) -> None:
    _head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")


def _latin_1(conn: socket.socket) -> None:
    _head(conn)
    body = '{"error": "unauthorized", "detail": "caf\xe9"}'.encode("latin-1")
    conn.sendall(
        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json; charset=latin-1\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


@contextmanager
def _answering(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on a loopback port answering each connection with ``answer`` (then closing
    it); yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with conn:
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes accept(), which close() alone does not
        listener.close()
        thread.join(10)


WHERE = "(--url, EXESDB_URL or EXESDB_HTTP_ADDR says where it is)"


@pytest.mark.parametrize(
    ("answer", "told"),
    [
        (_closed_at_once, "Server disconnected"),
        (_reset, f"[Errno {errno.ECONNRESET}] {os.strerror(errno.ECONNRESET)}"),
        (_not_http, '400, message="Bad status line'),
        (_cut_short, "Response payload is not completed: <ContentLengthError"),
    ],
    ids=["closed at once", "reset", "not HTTP", "cut short"],
)
def test_a_server_failing_to_answer_is_told_as_aiohttp_told_it(
    answer: Callable[[socket.socket], None], told: str
) -> None:
    """A connection closed or reset before the answer is told in aiohttp's words, as it always
    was; an answer that is not HTTP, or is cut short, is asked again of aiohttp, whose words
    say what was wrong with it."""
    with _answering(answer) as url:
        status, text = target(BridgeLocation(EXESDB_URL=url)).request("GET", "/v1/alerts")
    assert status == 0
    assert text.startswith(f"cannot reach the bridge at {url}: {told}"), text
    assert text.endswith(f" {WHERE}")


def test_an_answer_is_read_in_the_charset_it_names() -> None:
    """An answer's text is decoded by the charset its Content-Type names, as aiohttp's was."""
    with _answering(_latin_1) as url:
        status, text = target(BridgeLocation(EXESDB_URL=url)).request("GET", "/v1/alerts")
    assert (status, json.loads(text)["detail"]) == (401, "caf\xe9")
