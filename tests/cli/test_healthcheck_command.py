"""The ``exesdb-bridge healthcheck`` command: its exit status and its one line why, the address and
timeout it is given."""

from __future__ import annotations

import socket

import pytest

from bridge.cli.healthcheck import probe
from tests.cli.healthcheck_helpers import healthcheck
from tests.client_servers import Asked, answering
from tests.support import ThreadedBridge, free_port, run_in_process


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
