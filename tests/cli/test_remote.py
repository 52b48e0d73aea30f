"""The admin token the commands that ask a running bridge send (``bridge.cli.remote``): one
past printable ASCII refused, as ``run`` refuses it, and a missing or wrong one told; a
refusal at the default address told as maybe another bridge's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bridge.cli.client import target
from bridge.cli.remote import say_refused
from bridge.client_settings import BridgeLocation
from tests.cli.helpers import Bridges, cli
from tests.support import ADMIN_TOKEN


@pytest.mark.parametrize("token", ["t\u00f6ken-" * 3, "\u0442\u043e\u043a\u0435\u043d-" * 3])
@pytest.mark.parametrize("command", ["run", "check-config", "alerts list"])
def test_an_admin_token_past_printable_ascii_is_refused_naming_what_is_allowed(
    tmp_path: Path, command: str, token: str
) -> None:
    """EXESDB_ADMIN_TOKEN holding a character past printable ASCII (Latin-1's, Cyrillic) stops
    start-up, check-config and the alerts commands (exit 2) saying what is allowed, never the
    token: a browser's fetch sends it as Latin-1 bytes or refuses it, and http.client as
    Latin-1, so the status page's Acknowledge and the alerts commands were refused with the
    right token."""
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_ADMIN_TOKEN": token}
    completed = cli(*command.split(), cwd=tmp_path, **env)
    assert completed.returncode == 2, completed.stderr
    assert (
        "exesdb-bridge: bad configuration:\n  EXESDB_ADMIN_TOKEN: holds a character other than"
        " printable ASCII, which browsers and HTTP clients send as other bytes than the bridge"
        " compares (or cannot send), so acknowledging from the status page or the alerts"
        " command would be refused; allowed: printable ASCII, e.g. $(openssl rand -hex 16)\n"
    ) in completed.stderr
    assert token not in completed.stdout + completed.stderr


def test_an_admin_token_ending_in_a_line_break_is_sent_trimmed(
    bridges: Bridges, tmp_path: Path
) -> None:
    """A token read from a file (its line break kept) reaches the bridge trimmed: no header
    with a control character, no traceback."""
    bridge = bridges(tmp_path)
    listed = cli("alerts", "list", "--url", bridge.url, EXESDB_ADMIN_TOKEN=f"{ADMIN_TOKEN}\n")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr


@pytest.mark.parametrize("command", [["tail"], ["alerts", "list"]])
@pytest.mark.parametrize("token", [None, "", " \n"])
def test_tail_and_alerts_without_the_admin_token_exit_2(
    command: list[str], token: str | None
) -> None:
    """tail and alerts need EXESDB_ADMIN_TOKEN; set but empty (or blank) is unset, as for the
    bridge."""
    env = {} if token is None else {"EXESDB_ADMIN_TOKEN": token}
    completed = cli(*command, "--url", "http://127.0.0.1:9", **env)  # type: ignore[arg-type]
    assert completed.returncode == 2
    assert f"{command[0]} needs EXESDB_ADMIN_TOKEN" in completed.stderr


def test_tail_with_a_wrong_token_exits_1(bridges: Bridges, tmp_path: Path) -> None:
    """A bridge refusing tail's token makes it exit 1."""
    bridge = bridges(tmp_path)
    completed = cli("tail", "--url", bridge.url, EXESDB_ADMIN_TOKEN="wrong-token")
    assert completed.returncode == 1
    assert f"{bridge.url}/v1/stream answered 401: " in completed.stderr


def test_alerts_against_a_bridge_without_an_admin_token_says_the_bridge_needs_one(
    bridges: Bridges, tmp_path: Path
) -> None:
    """A bridge run without EXESDB_ADMIN_TOKEN refuses alerts list (403): the command, which has
    the token in its own shell, says in words that the bridge needs it too (exit 1)."""
    bridge = bridges(tmp_path, EXESDB_ADMIN_TOKEN="")
    completed = cli("alerts", "list", "--url", bridge.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 1
    assert completed.stderr == (
        f"exesdb-bridge: {bridge.url}/v1/alerts answered 403: admin endpoints are off: set"
        " EXESDB_ADMIN_TOKEN to enable them (admin_disabled); EXESDB_ADMIN_TOKEN set here is"
        " what the commands send: the bridge needs it too\n"
    )


# What a refusal at EXESDB_HTTP_ADDR's default address adds: the bridge there may be another.
AT_DEFAULT = (
    "; that is EXESDB_HTTP_ADDR's default address (EXESDB_HTTP_ADDR not set here), where any"
    " bridge started without the setting listens: is it the bridge meant? One started with"
    " EXESDB_HTTP_ADDR=HOST:PORT is found with the same set here (or --url)\n"
)


@pytest.mark.parametrize(
    ("method", "path", "token", "body", "refusal"),
    [
        # Another bridge's token: the one meant was started elsewhere with this shell's.
        ("GET", "/v1/alerts", "wrong-token", None, "401: the admin token sent is not the"
         " bridge's EXESDB_ADMIN_TOKEN (unauthorized)"),
        # An alert of the bridge meant, unknown to the one at the default address.
        ("POST", "/v1/alerts/a1/ack", ADMIN_TOKEN, {"ack_by": "alice"}, "404: no alert 'a1'"
         " (unknown_alert, field alert_id)"),
    ],
)  # fmt: skip
def test_a_refusal_at_the_default_address_asks_whether_it_is_the_bridge_meant(
    bridges: Bridges,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
    path: str,
    token: str,
    body: dict[str, str] | None,
    refusal: str,
) -> None:
    """A bridge found at EXESDB_HTTP_ADDR's default address (unset in a shell other than the
    one that ran `EXESDB_HTTP_ADDR=… make run`) refusing the admin token, or not knowing the
    alert, is told to be maybe another bridge than the one meant, and how to reach that one;
    the bridge here answers in the default address's stead, which no test may take."""
    bridge = bridges(tmp_path)
    at_default = dataclasses.replace(target(BridgeLocation()), url=bridge.url)
    headers = at_default.admin_headers(token) | {"Content-Type": "application/json"}
    sent = None if body is None else json.dumps(body).encode()
    status, text = at_default.request(method, path, headers=headers, body=sent)
    say_refused(at_default, path, status, text)
    assert capsys.readouterr().err == (
        f"exesdb-bridge: {bridge.url}{path} answered {refusal}{AT_DEFAULT}"
    )


def test_a_refusal_at_an_address_set_is_not_said_to_be_the_default_one(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts list` at the address EXESDB_HTTP_ADDR names, set (the README's shell), refused
    for its token, is told as the bridge answered, nothing said of the default address."""
    bridge = bridges(tmp_path)
    address = bridge.url.removeprefix("http://")
    completed = cli("alerts", "list", EXESDB_HTTP_ADDR=address, EXESDB_ADMIN_TOKEN="wrong")
    assert completed.returncode == 1
    assert completed.stderr == (
        f"exesdb-bridge: {bridge.url}/v1/alerts answered 401: the admin token sent is not the"
        " bridge's EXESDB_ADMIN_TOKEN (unauthorized)\n"
    )


@pytest.mark.parametrize("address", ["0.0.0.0:9570", "127.0.0.1:9570"])
def test_a_refusal_at_the_default_address_set_so_is_not_said_to_be_the_default_one(
    bridges: Bridges, tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str
) -> None:
    """A refusal at the default address found through EXESDB_HTTP_ADDR set to it (the
    wildcard or loopback on its port) is told as the bridge answered: the shell named where
    its bridge is, so nothing is said of a bridge started without the setting; the bridge here
    answers in the default address's stead, which no test may take."""
    bridge = bridges(tmp_path)
    set_so = dataclasses.replace(target(BridgeLocation(EXESDB_HTTP_ADDR=address)), url=bridge.url)
    status, text = set_so.request("GET", "/v1/alerts", headers=set_so.admin_headers("wrong"))
    say_refused(set_so, "/v1/alerts", status, text)
    assert capsys.readouterr().err == (
        f"exesdb-bridge: {bridge.url}/v1/alerts answered 401: the admin token sent is not the"
        " bridge's EXESDB_ADMIN_TOKEN (unauthorized)\n"
    )
