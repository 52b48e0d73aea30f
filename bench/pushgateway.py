"""Prometheus Pushgateway, the peer a user would push samples to over HTTP: a process to measure.

Debian's ``prometheus-pushgateway`` (installed here when missing and running as root, as
``make servers`` installs the test servers) runs on a free loopback port with its defaults.
Bodies of text exposition are PUT to one group (``/metrics/job/bench``), replacing it as a
collector pushing its readings would, over keep-alive HTTP.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Final

from bench._util import ProcStat, apt_installed, free_port, http_get, proc_stat, send, wait_for

BINARY: Final = "prometheus-pushgateway"
PACKAGE: Final = "prometheus-pushgateway"
PATH: Final = "/metrics/job/bench"
CONTENT_TYPE: Final = "text/plain; version=0.0.4"


def installed() -> str | None:
    """The Pushgateway binary, installed with apt-get when missing and running as root; None
    when it is missing and cannot be installed."""
    return apt_installed(BINARY, PACKAGE)


def exposition(text: str, keep: str) -> bytes:
    """The families of exposition ``text`` with only the samples whose line contains ``keep``
    (their HELP and TYPE lines kept; families left empty dropped)."""
    out: list[str] = []
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            if line.startswith("# HELP"):
                header = []
            header.append(line)
        elif keep in line:
            out.extend(header)
            header = []
            out.append(line)
    return ("\n".join(out) + "\n").encode()


class Pushgateway:
    """``prometheus-pushgateway`` on a free loopback port, for measuring from the outside."""

    def __init__(self, binary: str) -> None:
        self._binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Pushgateway:
        self.process = subprocess.Popen(
            [
                self._binary,
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._ready, 30.0, f"pushgateway on {self.url}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the pushgateway exited with {self.process.returncode}")
        try:
            return http_get(self.url + "/-/ready", 1.0)[0] == 200
        except OSError:
            return False

    def push(self, bodies: Sequence[bytes]) -> float:
        """PUT each body to the bench group over keep-alive connections; the wall time taken."""
        headers = {"Content-Type": CONTENT_TYPE}
        return send(self.port, "PUT", PATH, [(body, headers) for body in bodies], (200, 202))

    def stat(self) -> ProcStat:
        """The Pushgateway's CPU seconds and RSS now."""
        assert self.process is not None
        return proc_stat(self.process.pid)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
