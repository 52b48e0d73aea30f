"""The test helpers of ``tests/support.py`` that start server processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import free_port, start_listening, wait_until


def test_a_server_not_ready_in_time_is_stopped_before_the_test_fails() -> None:
    """``start_listening`` fails the test when the server never gets ready, and leaves no
    process of it running: the caller, failed, never gets it to stop."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(port: int) -> subprocess.Popen[bytes]:
        # A server that never listens: it sleeps past the test, unless stopped.
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return started[-1]

    with pytest.raises(pytest.fail.Exception, match="timed out"):
        start_listening(
            spawn,
            lambda: False,
            lambda: "",
            port=free_port(),
            movable=False,
            timeout=0.5,
            what=lambda: "a server that never listens",
        )
    try:
        wait_until(lambda: started[0].poll() is not None, 10, "the server stopped")
    finally:
        started[0].kill()
        started[0].wait()
