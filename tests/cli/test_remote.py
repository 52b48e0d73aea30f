"""The admin token the commands that ask a running bridge send (``bridge.cli.remote``): one
past printable ASCII refused, as ``run`` refuses it, and a missing or wrong one told."""

from __future__ import annotations

from pathlib import Path

import pytest

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
