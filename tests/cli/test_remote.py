"""The admin token the commands that ask a running bridge send (``bridge.cli.remote``), and the
bridge's refusal of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Bridges, cli
from tests.support import ADMIN_TOKEN


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
