"""Where the client commands find a bridge (bridge.cli.client), and how they show where they
looked."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import exchange
from bridge.cli.client import (
    MOST_ANSWER,
    Source,
    Target,
    locate,
    target,
    url_argument,
    user_argument,
)
from bridge.client_environment import BridgeAddress, read_plainly
from bridge.client_settings import BridgeLocation
from bridge.errors import ConfigError
from bridge.headers import ADMIN_TOKEN_HEADER
from tests.cli.helpers import cli, command_at_a_terminal, terminal_output
from tests.client_servers import (
    Answer,
    aiohttp_answering,
    answering,
    black_holed,
    by_path,
    closed_at_once,
    cut_short,
    flood,
    gone_silent,
    healthy,
    latin_1,
    moved_to,
    not_http,
    not_in_its_charset,
    redirect,
    reset,
    trickling,
    trickling_head,
)
from tests.support import (
    ADMIN_TOKEN,
    TEST_SECRET,
    ThreadedBridge,
    refusing_port,
    run_command,
    run_without_terminal,
    unavailable,
)
from tests.webconfig.files import WebFiles


def test_url_flag_then_exesdb_url_then_the_http_addr() -> None:
    """--url wins, then EXESDB_URL, then the address EXESDB_HTTP_ADDR names."""
    settings = BridgeLocation(EXESDB_HTTP_ADDR="0.0.0.0:8123")
    assert locate(settings).url == "http://127.0.0.1:8123"
    with_url = BridgeLocation(EXESDB_HTTP_ADDR="0.0.0.0:8123", EXESDB_URL="http://b.example:1/")
    assert locate(with_url).url == "http://b.example:1"
    assert locate(with_url, "https://c.example:2/").url == "https://c.example:2"


@pytest.mark.parametrize(
    ("environment", "given", "source"),
    [
        ({}, None, Source.DEFAULT),
        # Set to the default's address (or loopback on its port): set, all the same.
        ({"EXESDB_HTTP_ADDR": "0.0.0.0:9570"}, None, Source.HTTP_ADDR),
        ({"EXESDB_HTTP_ADDR": "127.0.0.1:9570"}, None, Source.HTTP_ADDR),
        ({"EXESDB_HTTP_ADDR": "127.0.0.1:9571"}, None, Source.HTTP_ADDR),
        ({"EXESDB_URL": "http://127.0.0.1:9570"}, None, Source.URL_VARIABLE),
        ({"EXESDB_URL": "http://127.0.0.1:9570"}, "http://127.0.0.1:9570", Source.URL_OPTION),
        ({}, "http://127.0.0.1:9570", Source.URL_OPTION),
    ],
)
def test_the_address_is_told_by_where_it_came_from_not_by_its_value(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, Any], given: str | None, source: Source
) -> None:
    """The bridge's URL is said to come from --url, EXESDB_URL, EXESDB_HTTP_ADDR, or that
    variable's default when it is not set, as the model and the plain reading of the
    environment both find it: EXESDB_HTTP_ADDR set to the default's address is set, not the
    default a shell without it falls back on."""
    assert locate(BridgeLocation(**environment), given).source is source
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    plain = read_plainly(BridgeAddress, os.environ)
    assert plain is not None
    assert target(plain, url=given).source is source


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("--url", "from --url"),
        ("EXESDB_URL", "from EXESDB_URL; --url names another"),
        ("EXESDB_HTTP_ADDR", "from EXESDB_HTTP_ADDR; --url or EXESDB_URL names another"),
    ],
)
def test_a_bridge_not_reached_is_told_with_where_its_address_came_from(
    source: str, said: str
) -> None:
    """`alerts list` finding nothing at the bridge's URL names where that URL came from (--url,
    EXESDB_URL, or EXESDB_HTTP_ADDR set, its wildcard host asked on loopback) and where else
    one is given, exit 1."""
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}"
        given: dict[str, Any] = {
            "--url": {},
            "EXESDB_URL": {"EXESDB_URL": url},
            "EXESDB_HTTP_ADDR": {"EXESDB_HTTP_ADDR": f"0.0.0.0:{port}"},
        }[source]
        options = ["--url", url] if source == "--url" else []
        completed = cli("alerts", "list", *options, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, **given)
    assert (completed.returncode, completed.stderr) == (
        1,
        f"exesdb-bridge: cannot reach the bridge at {url}: Connection refused ({said})\n",
    )


def test_a_bridge_not_reached_at_the_default_address_says_the_variable_is_not_set() -> None:
    """Without EXESDB_HTTP_ADDR the commands ask its default address: finding nothing there
    says so, and how the bridge started with the variable set is found (the refusing port here
    stands in for the default address, which no test may take)."""
    at_default = target(BridgeLocation())
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}"
        status, text = dataclasses.replace(at_default, url=url).request("GET", "/v1/alerts")
    assert (status, text) == (
        0,
        f"cannot reach the bridge at {url}: Connection refused (EXESDB_HTTP_ADDR's default,"
        " EXESDB_HTTP_ADDR not set here: a bridge started with it set listens where it says; set"
        " the same here, or give --url or EXESDB_URL)",
    )


def test_port_0_in_the_http_addr_is_no_place_to_look() -> None:
    """EXESDB_HTTP_ADDR with port 0 names no port a client can ask: a ConfigError saying to give
    --url or EXESDB_URL, which still work."""
    settings = BridgeLocation(EXESDB_HTTP_ADDR="127.0.0.1:0")
    with pytest.raises(ConfigError) as raised:
        locate(settings)
    assert raised.value.problems == (
        "EXESDB_HTTP_ADDR: port 0 is a free port the bridge picks as it starts (its start-up line"
        " names it), so no command can find it there; give it with --url or EXESDB_URL",
    )
    assert locate(settings, "http://127.0.0.1:41234").url == "http://127.0.0.1:41234"
    with_url = BridgeLocation(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_URL="http://127.0.0.1:41234")
    assert locate(with_url).url == "http://127.0.0.1:41234"


def test_the_http_addr_is_asked_over_https_when_the_web_config_serves_tls(tmp_path: Path) -> None:
    """With TLS on in EXESDB_WEB_CONFIG_FILE the address is an https URL."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config())
    settings = BridgeLocation(EXESDB_HTTP_ADDR="127.0.0.1:9443", EXESDB_WEB_CONFIG_FILE=str(path))
    assert locate(settings).url == "https://127.0.0.1:9443"
    plain = files.write("basic_auth_users: {}\n", name="plain.yml")
    settings = BridgeLocation(EXESDB_HTTP_ADDR="127.0.0.1:9443", EXESDB_WEB_CONFIG_FILE=str(plain))
    assert locate(settings).url == "http://127.0.0.1:9443"


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


_PUBLISH = ["publish", "performance_metric", "-f", "metric_name=q", "-f", "value=1", "-f",
            "unit=m", "-f", "component=c"]  # fmt: skip


@pytest.mark.parametrize("command", [["alerts", "list"], ["tail"], _PUBLISH])
@pytest.mark.parametrize(
    ("given", "path", "base"),
    [
        ("http://127.0.0.1:9/v1/messages", "/v1/messages", "http://127.0.0.1:9"),
        ("http://u:pw@127.0.0.1:9/v1/alerts/", "/v1/alerts", "http://u:<redacted>@127.0.0.1:9"),
        ("http://127.0.0.1:9/v1", "/v1", "http://127.0.0.1:9"),
        ("http://127.0.0.1:9/alerts/a1", "/alerts/a1", "http://127.0.0.1:9"),
        # A proxy's prefix before it stays in the base, shown hidden as any path is.
        ("http://127.0.0.1:9/tok3n/metrics", "/metrics", "http://127.0.0.1:9/…"),
    ],
)
@pytest.mark.parametrize("where", ["--url", "EXESDB_URL"])
def test_a_url_ending_in_a_bridge_path_is_refused_naming_the_base_url(
    command: list[str], given: str, path: str, base: str, where: str
) -> None:
    """--url or EXESDB_URL ending in one of the bridge's own paths (a request's URL pasted) is a
    usage error before anything is sent, naming where it was given and the base URL to give
    instead, never a password nor a path that may hold a token."""
    if where == "--url":
        completed = cli(
            *command, "--url", given, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, SECRET_KEY_BASE=TEST_SECRET
        )
    else:
        completed = cli(
            *command, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, SECRET_KEY_BASE=TEST_SECRET, EXESDB_URL=given
        )
    assert completed.returncode == 2, completed.stderr
    assert where in completed.stderr
    assert (
        f"ends in the bridge's path {path}, which the commands add themselves: give the bridge's"
        f" base URL (scheme://host:port, and any prefix a proxy serves it under), e.g. {base}\n"
    ) in completed.stderr
    assert "pw" not in completed.stderr
    assert "tok3n" not in completed.stderr


def test_a_url_with_a_prefix_of_its_own_is_taken() -> None:
    """A path that is none of the bridge's is a prefix a proxy serves it under: taken as given."""
    assert url_argument("http://proxy.example/exesdb/") == "http://proxy.example/exesdb/"
    settings = BridgeLocation(EXESDB_URL="http://proxy.example/exesdb")
    assert locate(settings).url == "http://proxy.example/exesdb"


def test_user_takes_a_password_or_leaves_it_to_ask() -> None:
    """USER:PASSWORD splits at the first colon; USER alone leaves the password to ask for."""
    assert user_argument("alice:pa:ss") == ("alice", "pa:ss")
    assert user_argument("alice") == ("alice", None)
    with pytest.raises(argparse.ArgumentTypeError):
        user_argument(":pw")


@pytest.mark.parametrize(
    "command",
    [
        ["alerts", "list"],
        ["tail"],
        ["publish", "performance_metric", "-f", "metric_name=q", "-f", "value=1", "-f", "unit=m",
         "-f", "component=c"],
    ],
)  # fmt: skip
@pytest.mark.parametrize("closed", [False, True], ids=["empty stdin", "closed stdin"])
def test_user_without_a_password_and_nothing_to_ask_it_on_is_a_usage_error(
    command: list[str], closed: bool
) -> None:
    """--user USER with no terminal and an empty or closed stdin (a script, a cron job) exits 2
    saying to give USER:PASSWORD on a line of its own after getpass's prompt, not with its
    traceback, before anything is sent."""
    bridge = [sys.executable, "-m", "bridge", *command]
    completed = run_without_terminal(
        [*bridge, "--user", "ops", "--url", "http://127.0.0.1:9"],
        {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "SECRET_KEY_BASE": TEST_SECRET},
        closed_stdin=closed,
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "GetPassWarning" not in completed.stderr
    assert completed.stderr.endswith(
        "\nexesdb-bridge: --user ops: no password given, and none could be asked for (no terminal,"
        " and stdin ended): give it as --user ops:PASSWORD\n"
    )


def test_ctrl_c_at_the_password_prompt_ends_its_line_and_exits_130() -> None:
    """Ctrl-C at the terminal's --user password prompt ends the prompt's line (it echoes
    nothing, so the shell's next prompt followed on that line) and exits 130, no traceback."""
    with command_at_a_terminal(
        "alerts", "list", "--user", "ops",
        EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, EXESDB_URL="http://127.0.0.1:9",
    ) as (process, master):  # fmt: skip
        asked = terminal_output(master, b"password for ops: ")
        assert asked.endswith(b"password for ops: "), asked
        os.write(master, b"\x03")  # Ctrl-C, as the terminal sends it
        rest = terminal_output(master, b"\0")  # to the end
        assert process.wait(30) == 130
    assert rest == b"\r\n", rest


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


def test_an_address_dropping_the_connection_does_not_hold_up_the_next() -> None:
    """``localhost`` whose ``::1`` drops connection attempts unanswered (a black-holed route)
    reaches the bridge on ``127.0.0.1`` well within the deadline, as aiohttp did: the next
    address is tried 250 ms after the one before, not once the first has used the whole 10 s."""
    ipv6_loopback()
    with answering(healthy) as bridge:
        port = int(bridge.url.rpartition(":")[2])
        with black_holed("::1", port):
            started = time.monotonic()
            status, text = target(BridgeLocation(EXESDB_URL=f"http://localhost:{port}")).request(
                "GET", "/healthz"
            )
            took = time.monotonic() - started
    assert status == 200, text
    assert len(bridge.asked) == 1
    assert took < 5, f"{took:.1f} s: the next address waited for much of the 10 s deadline"


# What runs in a namespace whose resolver never answers: the loopback brought up (a new network
# namespace has it down, and a query sent there would fail at once), a socket on port 53 that
# reads nothing, and one request to a name, its deadline argv[1] seconds.
_UNANSWERED_LOOKUP = """
import fcntl, json, socket, struct, sys, time
from bridge.cli.exchange import Request, Unreachable, send

with socket.socket() as link:
    fcntl.ioctl(link, 0x8914, struct.pack("16sH", b"lo", 1))  # SIOCSIFFLAGS: IFF_UP
resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
resolver.bind(("127.0.0.1", 53))
started = time.monotonic()
try:
    asked = Request("http://bridge.example:9570/healthz", "GET", {})
    send(asked, None, float(sys.argv[1]), most=256)
    told = "answered"
except Unreachable as exc:
    told = exc.reason
except TimeoutError:
    told = "timed out"
print(json.dumps({"seconds": time.monotonic() - started, "told": told}))
"""


def in_a_namespace_with_a_silent_resolver(tmp_path: Path, code: str, *argv: str) -> str:
    """What ``python -c code argv`` prints run in a user, network and mount namespace of its own
    whose /etc/resolv.conf (bind-mounted there, the host's own untouched) names a DNS server on
    127.0.0.1, which ``code`` is to serve: one attempt, 8 s before the resolver gives up. Its
    /etc/nsswitch.conf asks /etc/hosts then DNS, as Debian's does: not a host's systemd-resolved,
    whose socket a network namespace does not hide."""
    if shutil.which("unshare") is None:
        unavailable("unshare (util-linux) is not installed")
    namespace = ["unshare", "--map-root-user", "--net", "--mount"]
    probe = subprocess.run([*namespace, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        unavailable(f"no user namespace for the resolver's test: {probe.stderr.strip()}")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:8 attempts:1\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files dns\n")
    mounted = (
        'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/nsswitch.conf'
        ' && shift 2 && exec "$@"'
    )
    files = [str(resolv), str(nsswitch)]
    completed = run_command(
        [*namespace, "sh", "-c", mounted, "sh", *files, sys.executable, "-c", code, *argv]
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_a_name_the_resolver_does_not_look_up_in_time_ends_at_the_deadline(
    tmp_path: Path,
) -> None:
    """The name's lookup counts against the request's deadline: a resolver that never answers
    (which getaddrinfo waits 8 s for here) ends a request given 1 s after about 1 s, told as a
    name not looked up in time rather than a bridge not answering."""
    found = json.loads(in_a_namespace_with_a_silent_resolver(tmp_path, _UNANSWERED_LOOKUP, "1"))
    assert found["told"] == "the system's resolver gave no address for bridge.example within 1 s"
    assert 1 <= found["seconds"] < 4


def test_a_redirect_is_followed_to_the_bridge() -> None:
    """A proxy's redirect (307 to the bridge) is followed, as aiohttp followed it: the answer is
    the bridge's, not the redirect."""
    with ThreadedBridge() as bridge, answering(moved_to(bridge.url)) as proxy:
        status, text = target(BridgeLocation(EXESDB_URL=proxy.url)).request("GET", "/healthz")
    assert (status, json.loads(text)) == (200, {"status": "ok"})


# What a failure at EXESDB_URL's URL adds: where the URL came from, and where else one is given.
WHERE = "(from EXESDB_URL; --url names another)"


@pytest.mark.parametrize(
    ("answer", "told"),
    [
        (closed_at_once, "Server disconnected"),
        (reset, f"[Errno {errno.ECONNRESET}] {os.strerror(errno.ECONNRESET)}"),
        (not_http, "the program there answered with something that is not HTTP"),
    ],
    ids=["closed at once", "reset", "not HTTP"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_server_failing_to_answer_is_told_and_asked_once(
    answer: Answer, told: str, method: str
) -> None:
    """A connection closed or reset before the answer is told in aiohttp's words, as it always
    was, and an answer that is not HTTP in the commands' own; the request is sent once."""
    with answering(answer) as server:
        found = target(BridgeLocation(EXESDB_URL=server.url))
        status, text = found.request(method, "/v1/alerts", body=b"{}" if method == "POST" else None)
    assert (status, text) == (0, f"cannot reach the bridge at {server.url}: {told} {WHERE}")
    assert len(server.asked) == 1


def test_an_answer_cut_short_is_told_and_a_post_never_sent_again() -> None:
    """A POST whose answer breaks off (the bridge may have taken it: publish, alerts ack) is
    sent once, and the message says it may have been taken: sent again it could be taken twice,
    or refused as a replay."""
    with answering(cut_short) as server:
        found = target(BridgeLocation(EXESDB_URL=server.url))
        status, text = found.request("POST", "/v1/messages", body=b'{"id": 1}')
    assert status == 0
    assert text == (
        f"the answer from {server.url} was cut short after 1 of its 100 bytes: the request may"
        " have been taken, so check before sending it again"
    )
    assert [(asked.method, asked.body) for asked in server.asked] == [("POST", b'{"id": 1}')]


def test_a_get_answer_cut_short_is_told_as_broken_off() -> None:
    """A GET whose answer breaks off is told as cut short, asked once."""
    with answering(cut_short) as server:
        status, text = target(BridgeLocation(EXESDB_URL=server.url)).request("GET", "/v1/alerts")
    assert (status, len(server.asked)) == (0, 1)
    assert text == (
        f"the answer from {server.url} was cut short after 1 of its 100 bytes (the bridge"
        " stopped, or the connection was lost)"
    )


def test_an_answer_sent_a_byte_at_a_time_ends_at_the_request_s_deadline() -> None:
    """A body that keeps coming a byte at a time ends the request at its one deadline, as
    aiohttp's total timeout did: each read came within the socket's timeout, and the commands
    read it for as long as the server sent."""
    with answering(trickling) as server:
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            exchange.send(
                exchange.Request(server.url + "/v1/alerts", "GET", {}), None, 1.0, most=1 << 20
            )
        took = time.monotonic() - began
    assert took < 3, f"took {took:.1f} s"


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
def test_a_head_sent_a_byte_at_a_time_ends_at_the_request_s_deadline(streamed: bool) -> None:
    """A head that keeps coming a byte at a time ends the request at its one deadline, a
    stream's too (tail's): each read came within the socket's timeout, and alerts list, publish
    and tail waited for as long as the server sent (40 s and more against a 10 s deadline)."""

    def ask(url: str) -> None:
        asked = exchange.Request(url + "/v1/stream", "GET", {})
        if not streamed:
            exchange.send(asked, None, 1.0, most=1 << 20)
            return
        with exchange.stream(asked, None, 1.0, idle=60.0):
            pass

    with answering(trickling_head) as server:
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            ask(server.url)
        took = time.monotonic() - began
    assert took < 3, f"took {took:.1f} s"


def test_a_stream_sending_nothing_for_its_silence_ends_there() -> None:
    """A stream's 200 whose server then sends nothing (a connection lost unannounced, a bridge
    stuck) ends the first read waiting longer than the stream's silence, TimeoutError, though
    the stream has no deadline: such a read waited for ever."""
    with answering(gone_silent) as server:
        asked = exchange.Request(server.url + "/v1/stream", "GET", {})
        with exchange.stream(asked, None, 5.0, idle=0.5) as (answer, refusal):
            assert refusal is None
            assert answer.read1(65536) == b": connected\n\n"
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                answer.read1(65536)
            took = time.monotonic() - began
    assert 0.4 < took < 3, f"took {took:.1f} s"


def test_an_answer_is_read_in_the_charset_it_names() -> None:
    """An answer's text is decoded by the charset its Content-Type names, as aiohttp's was."""
    with answering(latin_1) as server:
        status, text = target(BridgeLocation(EXESDB_URL=server.url)).request("GET", "/v1/alerts")
    assert (status, json.loads(text)["detail"]) == (401, "caf\xe9")


def test_an_answer_not_in_the_charset_it_names_is_read_with_the_bad_bytes_replaced() -> None:
    """A page whose bytes are not in the charset it names (a proxy's 502) is still told, its
    undecodable bytes shown as replacement characters, not ended in a traceback."""
    with answering(not_in_its_charset) as server:
        status, text = target(BridgeLocation(EXESDB_URL=server.url)).request("GET", "/v1/alerts")
    assert (status, text) == (502, "<h1>Bad gateway \ufffd\ufffd</h1>")


@pytest.mark.parametrize("user", [None, ("alice", "pw")], ids=["token alone", "basic auth"])
def test_credentials_are_not_sent_to_another_origin_a_redirect_leads_to(
    user: tuple[str, str] | None,
) -> None:
    """A redirect within the bridge's origin keeps basic auth and the admin token (in
    Authorization, or X-ExESDB-Admin-Token beside basic auth); one to another origin (here
    another port) carries neither there."""
    with answering(healthy) as elsewhere:
        hops = {
            "/v1/alerts": redirect(307, "/v1/moved"),  # relative: the same origin
            "/v1/moved": redirect(302, elsewhere.url + "/healthz"),
        }
        with answering(by_path(hops)) as bridge:
            found = target(BridgeLocation(EXESDB_URL=bridge.url), user=user)
            headers = found.admin_headers(ADMIN_TOKEN)
            status, text = found.request("GET", "/v1/alerts", headers=headers)
    assert (status, json.loads(text)) == (200, {"status": "ok"})
    credentials = {"authorization", ADMIN_TOKEN_HEADER.lower()}
    sent = [sorted(credentials & asked.headers.keys()) for asked in bridge.asked]
    assert sent == [sorted(credentials if user else {"authorization"})] * 2
    assert [asked.path for asked in elsewhere.asked] == ["/healthz"]
    assert credentials & elsewhere.asked[0].headers.keys() == set()


@pytest.mark.parametrize(
    ("status", "method", "then"),
    [(303, "POST", "GET"), (302, "POST", "GET"), (301, "POST", "GET"), (307, "POST", "POST")],
)
def test_a_redirect_asks_again_as_aiohttp_asked(status: int, method: str, then: str) -> None:
    """303 (and 301 or 302 to a POST) is asked again with GET and no body; 307 (and 308) with
    the same method and body."""
    hops = {"/v1/messages": redirect(status, "/v1/done"), "/v1/done": healthy}
    with answering(by_path(hops)) as server:
        found = target(BridgeLocation(EXESDB_URL=server.url))
        headers = {"Content-Type": "application/json"}
        answered, _ = found.request(method, "/v1/messages", headers=headers, body=b"{}")
    assert answered == 200
    first, second = server.asked
    assert (first.method, first.body) == (method, b"{}")
    kept = then == method
    assert (second.method, second.body) == (then, b"{}" if kept else b"")
    assert ("content-type" in second.headers) == kept


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://127.0.0.1:99999/v1/alerts", "Port out of range 0-65535"),
        ("http://127.0.0.1:port/v1/alerts", "Port could not be cast to integer value as 'port'"),
        ("http://[::1/v1/alerts", "Invalid IPv6 URL"),
    ],
)
def test_a_redirect_to_what_is_no_url_is_told_not_a_traceback(location: str, why: str) -> None:
    """A Location that is no URL (a port out of range or not a number, an IPv6 address not
    closed) is told as such, asked once: it ended the command in a traceback."""
    with answering(redirect(302, location)) as server:
        status, text = target(BridgeLocation(EXESDB_URL=server.url)).request("GET", "/v1/alerts")
    assert (status, len(server.asked)) == (0, 1)
    assert text == (
        f"cannot reach the bridge at {server.url}: redirected to a Location that is no URL ({why})"
        f" {WHERE}"
    )


def test_a_redirect_loop_ends_after_ten_requests() -> None:
    """A server redirecting without end is asked ten times, as aiohttp asked it, and told."""
    with answering(redirect(307, "/v1/alerts")) as server:
        status, text = target(BridgeLocation(EXESDB_URL=server.url)).request("GET", "/v1/alerts")
    assert (status, len(server.asked)) == (0, 10)
    assert text == (
        f"cannot reach the bridge at {server.url} (redirected to {server.url}/…):"
        f" redirected more than 9 times {WHERE}"
    )


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "with its length"])
def test_an_answer_past_the_most_of_one_answer_is_told_and_left_unread(declared: bool) -> None:
    """An answer of more than the most one answer may hold (64 MiB) is told in one line naming
    that most, and read no further (one whose Content-Length says so not at all): read whole
    until the deadline, an endless one took 4.4 GB in 10 s."""
    sent: list[int] = []
    with aiohttp_answering(flood(sent, MOST_ANSWER + (64 << 20), declared=declared)) as url:
        began = time.monotonic()
        status, text = Target(url).request("GET", "/v1/alerts")
        took = time.monotonic() - began
    assert (status, text) == (
        0,
        f"the answer from {url} held more than 64 MiB, the most a command reads of one answer:"
        " the rest was left unread: is a bridge there? (from --url)",
    )
    [count] = sent
    # What the sockets' buffers took beside what was read.
    assert count < (0 if declared else MOST_ANSWER) + (16 << 20), f"{count >> 20} MiB sent"
    assert took < 5, f"took {took:.1f} s"


def test_answers_past_the_most_a_command_reads_in_all_are_told() -> None:
    """Each answer to one command draws on the most its answers may hold together: the one that
    would take them past it is told in one line naming that most, the rest of it left unread."""
    sent: list[int] = []
    with aiohttp_answering(flood(sent, 400 << 10)) as url:
        bridge = Target(url, most_answer=512 << 10, most_in_all=1 << 20)
        first, second = (bridge.request("GET", "/v1/alerts") for _ in range(2))
        third = bridge.request("GET", "/v1/alerts")
    assert [status for status, _text in (first, second)] == [200, 200]
    assert third == (
        0,
        f"the answers from {url} held more than 1 MiB in all, the most a command reads: the rest"
        " was left unread: is a bridge there? (from --url)",
    )
