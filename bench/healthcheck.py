"""CPU of one ``exesdb-bridge healthcheck`` (an exec probe's cost) for this tree and a baseline.

``python -m bench.healthcheck [REV] [--repeats N]`` (REV defaults to ``main``) extracts REV with
``git archive``, as bench.compare does, and runs ``python -m bridge healthcheck`` from each tree
(same interpreter and libraries) against one loopback server answering ``/healthz`` with 200,
alternating which tree goes first; each call's CPU (user + system) is read from
``getrusage(RUSAGE_CHILDREN)``; then both again with a web config asking for basic auth (the
probe reads the file and sends the credentials). A bare interpreter start is measured beside
them: no probe can cost less. Byte code is cached, as in an installed package or the image
(``PYTHONDONTWRITEBYTECODE`` is dropped: set, every call would compile the bridge's modules).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final

import bcrypt

from bench._util import (
    ROOT,
    argument_parser,
    command_environment,
    extract,
    median,
    table,
    timed_call,
)
from bridge.headers import HEALTHZ_BODY

_INTERPRETER: Final = "python -c pass"


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # The bridge's own body: the probe takes no other server's 200 for healthy.
        body = json.dumps(HEALTHZ_BODY).encode() if self.path == "/healthz" else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the table is the output."""


@contextmanager
def _healthz() -> Iterator[int]:
    """A server on a free loopback port answering ``/healthz`` with 200; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _web_config(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` plus a web config asking for basic auth and the probe's credentials."""
    hashed = bcrypt.hashpw(b"probe-password", bcrypt.gensalt(rounds=10)).decode()
    (folder / "web.yml").write_text(f"basic_auth_users:\n  probe: '{hashed}'\n")
    (folder / "password").write_text("probe-password\n")
    return {
        **env,
        "EXESDB_WEB_CONFIG_FILE": str(folder / "web.yml"),
        "EXESDB_HEALTHCHECK_USERNAME": "probe",
        "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(folder / "password"),
    }


def run(revision: str | None = "main", repeats: int = 15) -> str:
    """The table: median CPU ms per healthy probe for ``revision`` and this tree, without and with
    a web config, and for a bare interpreter start; with no ``revision``, this tree beside the bare
    interpreter alone."""
    with tempfile.TemporaryDirectory(prefix="exesdb-healthcheck-") as scratch, _healthz() as port:
        if revision is not None:
            extract(revision, Path(scratch))
        env = command_environment() | {"EXESDB_HTTP_ADDR": f"0.0.0.0:{port}"}
        web = _web_config(Path(scratch), env)
        probe = [sys.executable, "-m", "bridge", "healthcheck"]
        baseline = Path(scratch) / "tree"
        runs = {
            "this tree": (probe, ROOT, env),
            "this tree, web config with basic auth": (probe, ROOT, web),
            _INTERPRETER: ([sys.executable, "-c", "pass"], ROOT, env),
        }
        if revision is not None:
            runs = {
                revision: (probe, baseline, env),
                "this tree": runs["this tree"],
                f"{revision}, web config with basic auth": (probe, baseline, web),
                **runs,
            }
        results: dict[str, list[float]] = {name: [] for name in runs}
        for command, cwd, environment in runs.values():
            timed_call(command, cwd, environment)  # warm the file cache and byte code
        for repeat in range(repeats):
            order = list(runs.items())
            for name, (command, cwd, environment) in order if repeat % 2 == 0 else reversed(order):
                results[name].append(timed_call(command, cwd, environment)[0] * 1e3)
    against = _INTERPRETER if revision is None else revision
    base = median(results[against])
    compared = (
        f"this tree beside a bare `{_INTERPRETER}`"
        if revision is None
        else f"{revision} vs this tree"
    )
    return table(
        f"CPU of one healthy `exesdb-bridge healthcheck`, {compared} "
        f"({repeats} runs each, interleaved; median)",
        ["command", "CPU ms / call", f"x {against}"],
        [[name, median(values), median(values) / base] for name, values in results.items()],
    )


def main() -> None:
    """Parse the arguments and print the table."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("revision", nargs="?", default="main", help="git revision (main)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved runs (15)")
    arguments = parser.parse_args()
    print(run(arguments.revision, arguments.repeats))


if __name__ == "__main__":
    main()
