"""The client commands of the docs' shell blocks, run as written against a bridge not on 9570.

A shell set up as the README's (``EXESDB_HTTP_ADDR`` exported with another port, the key and
the admin token the bridge runs with) runs each ``exesdb-bridge`` line of every page under
docs/ that talks to a bridge or reads the settings: no ``--url``, no port of the page's own.
``VAR=...`` stands for the shell's own value (``VAR="$VAR"``). A line that follows the bridge
until stopped (``tail``) starts first, in the background, as in another shell, and must have
printed a message by the end; every other line must exit 0. Only what cannot run here is left
out (``SKIPPED``, each with its reason).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from tests.doc_text import DOCS, fenced
from tests.support import (
    ADMIN_TOKEN,
    TEST_SECRET,
    BridgeProcess,
    bridge_env,
    http_get,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The commands a page's line may run here: those that talk to a bridge or read the settings.
CLIENT = re.compile(
    r"^(?:[A-Z_]+=\S+ )*exesdb-bridge "
    r"(?:publish|tail|alerts|outbox|schema|check-config|healthcheck)\b"
)
SKIPPED = {
    "exesdb-bridge outbox drop --receiver https://hooks.example": (
        "a receiver with dead letters, which an empty outbox has none of (exit 1, naming"
        " none): tests/cli/test_outbox_drop.py and tests/integration/test_alert_crash.py drop"
        " a receiver's"
    ),
    'exesdb-bridge alerts ack ALERT_ID --by alice --note "rebooting"': (
        "ALERT_ID stands for an alert the bridge holds: tests/cli/test_alerts.py acknowledges one"
    ),
    (
        "EXESDB_ADMIN_TOKEN=... exesdb-bridge alerts list --url https://bridge.example:9570 "
        "--cacert ca.crt --user ops"
    ): (
        "a bridge elsewhere with a CA and basic auth of its own: tests/integration/"
        "test_client_tls.py runs --cacert and --user against one"
    ),
    (
        "EXESDB_HEALTHCHECK_USERNAME=probe "
        "EXESDB_HEALTHCHECK_PASSWORD_FILE=/run/secrets/probe-password "
        "EXESDB_HEALTHCHECK_CERT_FILE=/run/secrets/probe.crt "
        "EXESDB_HEALTHCHECK_KEY_FILE=/run/secrets/probe.key exesdb-bridge healthcheck"
    ): (
        "the probe's files for a bridge serving TLS with basic auth: tests/cli/"
        "test_healthcheck_secured.py and tests/integration/test_container.py probe one with them"
    ),
}


def _commands(text: str) -> list[str]:
    """The client command lines of ``text``'s shell blocks: continuations joined, blanks made
    one, comments dropped."""
    found = []
    for block in fenced(text, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            command = " ".join(re.sub(r"\s+#.*$", "", line).split())
            if CLIENT.match(command):
                found.append(command)
    return found


def _as_typed(line: str) -> str:
    """``line`` as a user types it in a shell that holds the values: ``VAR=...`` is theirs."""
    return re.sub(r"\b([A-Z_]+)=\.\.\.(?=\s)", r'\1="$\1"', line)


def _printed(output: Path) -> bool:
    return output.read_text().strip() != ""


def _stream_open(bridge: BridgeProcess) -> bool:
    # A stream client's subscription is listed by its queue's depth while it is open.
    return b'exesdb_bus_queue_depth{subscriber="stream"}' in http_get(bridge.url + "/metrics")[1]


def _pages() -> list[Path]:
    return [path for path in sorted(DOCS.glob("*.md")) if path.name != "performance.md"]


def test_the_docs_client_commands_work_on_another_port_as_written(tmp_path: Path) -> None:
    """Each client command line of docs/ reaches a bridge on a port that is not 9570 through
    the README's ``EXESDB_HTTP_ADDR`` alone, and succeeds; tail prints what was published."""
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_INGEST="true")
    bridge.start(tmp_path)
    assert not bridge.env["EXESDB_HTTP_ADDR"].endswith(":9570")
    shell = bridge_env(
        EXESDB_HTTP_ADDR=bridge.env["EXESDB_HTTP_ADDR"],
        SECRET_KEY_BASE=TEST_SECRET,
        EXESDB_ADMIN_TOKEN=ADMIN_TOKEN,
        EXESDB_STATE_DIR=str(tmp_path / "state"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    lines = [line for path in _pages() for line in _commands(path.read_text())]
    skipped = [line for line in lines if line in SKIPPED]
    following = [line for line in lines if line not in SKIPPED and " tail" in line]
    once = [line for line in lines if line not in SKIPPED and line not in following]
    assert following
    assert any(" publish " in line for line in once)
    tails = []
    try:
        for number, line in enumerate(following):
            output = tmp_path / f"tail-{number}.out"
            with output.open("w") as sink:  # the child keeps its own descriptor
                process = subprocess.Popen(
                    ["bash", "-c", _as_typed(line)],
                    # The stacks on SIGABRT: where a tail that outlives Ctrl-C is stuck.
                    env={**shell, "PYTHONFAULTHANDLER": "1"},
                    cwd=tmp_path,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,  # bash and the command get Ctrl-C together
                    # A suite started in the background (`make test &`) may pass SIGINT on
                    # ignored, and tail would rightly keep ignoring it: a terminal's Ctrl-C is not.
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                )
            tails.append((line, process, output))
        # Published before tail has subscribed, a message would pass it by.
        wait_until(partial(_stream_open, bridge), 30, "tail subscribing to the stream")
        for line in once:
            done = subprocess.run(
                ["bash", "-c", _as_typed(line)],
                env=shell,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"{line!r} failed:\n{done.stdout}{done.stderr}"
        for line, process, output in tails:
            wait_until(partial(_printed, output), 30, f"{line!r} printing a message")
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: how tail is stopped, exit 0
            try:
                code = process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGABRT)
                process.wait(30)
                pytest.fail(f"{line!r} outlived Ctrl-C by 30 s; its stacks:\n{output.read_text()}")
            assert code == 0, f"{line!r}:\n{output.read_text()}"
    finally:
        for _, process, _ in tails:
            if process.poll() is None:
                process.kill()
                process.wait()
        bridge.stop()
    assert sorted(skipped) == sorted(SKIPPED), "a skipped line is no longer in docs/"


def test_the_line_reader_finds_client_commands_only() -> None:
    """The reader above can be trusted: continuations join, other programs and run are left."""
    text = (
        "```sh\nSECRET_KEY_BASE=... exesdb-bridge publish x \\\n  -f a=1  # why\n"
        "exesdb-bridge run\ndocker exec b exesdb-bridge healthcheck\n```\n"
    )
    assert _commands(text) == ["SECRET_KEY_BASE=... exesdb-bridge publish x -f a=1"]
    assert (
        _as_typed(_commands(text)[0])
        == 'SECRET_KEY_BASE="$SECRET_KEY_BASE" exesdb-bridge publish x -f a=1'
    )
