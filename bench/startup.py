"""What starting a command costs, for this tree and a baseline: client commands and ``run``.

``python -m bench.startup [REV] [--repeats N]`` (REV defaults to ``main``) extracts REV with
``git archive``, as bench.compare does, and runs from each tree (same interpreter and libraries),
alternating which goes first: ``--help``, ``check-config`` (also with a Redis ``EXESDB_BUS``),
``schema system_alert`` and ``publish --help``, each call's CPU (user + system,
``getrusage(RUSAGE_CHILDREN)``) and wall time; then ``python -m bridge run`` from start until
``/healthz`` answers 200 and then until ``/readyz`` does (polled every 5 ms): its CPU at each
and the wall time; then, while that bridge runs, the client commands against it: ``publish`` of
one ``system_alert`` (accepted: 202), ``tail --count 1`` (its wall time holds the wait for the
bridge's next health broadcast, every 100 ms here), ``alerts list``, ``outbox list`` (the
bridge's outbox file) and ``healthcheck`` (the exec probe), each with only its own variable set,
as a user has it (another ``EXESDB_*`` variable set has a client command read the names of every
setting, to name a misspelt one). Then ``run`` again on the Redis bus of a throw-away
``redis-server`` (left out, with a note, when none is installed), until ``/readyz`` answers 200:
connected, its lease and consumer group taken. A bare interpreter start is measured beside
them. Byte code is cached, as in an installed package or the image
(``PYTHONDONTWRITEBYTECODE`` is dropped).
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NamedTuple

from bench._util import (
    ROOT,
    argument_parser,
    command_environment,
    cpu_seconds,
    extract,
    free_port,
    median,
    redis_server,
    table,
    timed_call,
)
from bench.workload import SECRET

_COMMANDS: Final = (
    ("--help",),
    ("check-config",),
    ("schema", "system_alert"),
    ("publish", "--help"),
)
# check-config again with EXESDB_BUS naming the Redis server (not asked: it checks the URL).
_CHECK_REDIS: Final = "check-config, Redis EXESDB_BUS"
_POLL: Final = 0.005
_BARE: Final = "python -c pass"
_ADMIN_TOKEN: Final = "bench-startup-admin-token-0123456789"


class _Client(NamedTuple):
    """A client command timed against the running bridge: its name in the tables, its
    arguments (``--url`` added when it asks the bridge) and the one variable it reads."""

    name: str
    argv: tuple[str, ...]
    variable: str
    asks: bool = True


_CLIENTS: Final = (
    _Client(
        "publish system_alert",
        (
            *("publish", "system_alert", "-f", "severity=info", "-f", "category=system"),
            *("-f", "title=bench", "-f", "description=start-up", "-f", "source=bench"),
        ),
        "SECRET_KEY_BASE",
    ),
    _Client("tail --count 1", ("tail", "--count", "1"), "EXESDB_ADMIN_TOKEN"),
    _Client("alerts list", ("alerts", "list"), "EXESDB_ADMIN_TOKEN"),
    _Client("outbox list", ("outbox", "list"), "EXESDB_STATE_DIR", asks=False),
    _Client("healthcheck", ("healthcheck",), "EXESDB_HTTP_ADDR", asks=False),
)
# The starts timed: on the in-process bus until /healthz, then /readyz, answers 200; on Redis
# until /readyz does.
_HEALTHY, _READY, _READY_ON_REDIS = "healthy", "ready", "ready on Redis"


def _answers_200(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextlib.contextmanager
def _serving(
    cwd: Path, env: dict[str, str], port: int, paths: tuple[str, ...]
) -> Iterator[list[tuple[float, float]]]:
    """A bridge from ``python -m bridge run``, stopped on leaving; yields, for each of
    ``paths`` in turn, the seconds from its start to that path answering 200: its CPU (the
    bridge's CPU-time clock) and the wall time."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        reached = []
        for path in paths:
            while not _answers_200(port, path):
                if process.poll() is not None:
                    raise RuntimeError(f"bridge in {cwd} exited {process.returncode} before ready")
                if time.perf_counter() - started > 60:
                    raise RuntimeError(f"bridge in {cwd}: {path} not 200 after 60 s")
                time.sleep(_POLL)  # polled: the wall time to the answer is what is measured
            reached.append((cpu_seconds(process.pid), time.perf_counter() - started))
        yield reached
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _client_argv(client: _Client, port: int) -> list[str]:
    url = ["--url", f"http://127.0.0.1:{port}"] if client.asks else []
    return [sys.executable, "-m", "bridge", *client.argv, *url]


@contextlib.contextmanager
def _redis(scratch: Path) -> Iterator[str | None]:
    """A throw-away ``redis-server``'s URL, stopped on leaving; None, with a note printed, when
    none is installed (the Redis rows are then left out)."""
    if shutil.which("redis-server") is None:
        print("Note: no redis-server installed: start-up on the Redis bus is not measured.\n")
        yield None
        return
    folder = scratch / "redis"
    folder.mkdir()
    server, url = redis_server(folder)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(revision: str | None = "main", repeats: int = 11) -> str:
    """The tables: median CPU and wall ms per command, and ms until ``run`` is healthy and
    ready (on Redis too); with no ``revision``, this tree's alone (its commands beside a bare
    ``python -c pass``)."""
    with (
        tempfile.TemporaryDirectory(prefix="exesdb-startup-") as scratch,
        _redis(Path(scratch)) as redis_url,
    ):
        if revision is not None:
            extract(revision, Path(scratch))
        state = str(Path(scratch) / "state")
        env = command_environment() | {"SECRET_KEY_BASE": SECRET, "EXESDB_STATE_DIR": state}
        trees = {"this tree": ROOT}
        if revision is not None:
            trees = {revision: Path(scratch) / "tree", **trees}
        commands = {" ".join(command): (command, env) for command in _COMMANDS}
        if redis_url is not None:
            commands[_CHECK_REDIS] = (("check-config",), env | {"EXESDB_BUS": redis_url})
        calls: dict[tuple[str, str], list[tuple[float, float]]] = {}
        kinds = (_HEALTHY, _READY) if redis_url is None else (_HEALTHY, _READY, _READY_ON_REDIS)
        starts: dict[str, dict[str, list[tuple[float, float]]]] = {
            kind: {name: [] for name in trees} for kind in kinds
        }
        bare = [sys.executable, "-c", "pass"]
        for tree in trees.values():  # warm the file cache and byte code
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", "bridge"], cwd=tree, check=True
            )
            for command, command_env in commands.values():
                timed_call([sys.executable, "-m", "bridge", *command], tree, command_env)
        for repeat in range(repeats):
            order = list(trees.items())
            for name, tree in order if repeat % 2 == 0 else reversed(order):
                for shown, (command, command_env) in commands.items():
                    argv = [sys.executable, "-m", "bridge", *command]
                    calls.setdefault((shown, name), []).append(timed_call(argv, tree, command_env))
                port = free_port()
                serving = env | {
                    "EXESDB_HTTP_ADDR": f"127.0.0.1:{port}",
                    "EXESDB_INGEST": "true",
                    "EXESDB_ADMIN_TOKEN": _ADMIN_TOKEN,
                    "EXESDB_HEALTH_BROADCAST_INTERVAL": "100",  # what tail --count 1 waits for
                }
                with _serving(tree, serving, port, ("/healthz", "/readyz")) as (healthy, ready):
                    starts[_HEALTHY][name].append(healthy)
                    starts[_READY][name].append(ready)
                    own = {
                        "SECRET_KEY_BASE": SECRET,
                        "EXESDB_STATE_DIR": state,
                        "EXESDB_ADMIN_TOKEN": _ADMIN_TOKEN,
                        "EXESDB_HTTP_ADDR": serving["EXESDB_HTTP_ADDR"],
                    }
                    for client in _CLIENTS:
                        client_env = command_environment() | {client.variable: own[client.variable]}
                        calls.setdefault((client.name, name), []).append(
                            timed_call(_client_argv(client, port), tree, client_env)
                        )
                if redis_url is not None:
                    port = free_port()
                    on_redis = serving | {
                        "EXESDB_HTTP_ADDR": f"127.0.0.1:{port}",
                        "EXESDB_BUS": redis_url,
                        "EXESDB_NODE": "bench-startup",
                        "EXESDB_STATE_DIR": str(Path(scratch) / "state-redis"),
                    }
                    with _serving(tree, on_redis, port, ("/readyz",)) as (ready,):
                        starts[_READY_ON_REDIS][name].append(ready)
            calls.setdefault((_BARE, ""), []).append(timed_call(bare, ROOT, env))
    return _tables(calls, [*commands, *(c.name for c in _CLIENTS)], starts, revision, repeats)


def _tables(
    calls: dict[tuple[str, str], list[tuple[float, float]]],
    commands: list[str],
    starts: dict[str, dict[str, list[tuple[float, float]]]],
    revision: str | None,
    repeats: int,
) -> str:
    """The tables: each tree's ``commands`` (CPU beside ``revision``'s, or with none beside
    ``python -c pass``), then each tree's start until healthy, ready, and ready on Redis
    (beside ``revision``'s, if any).

    ``calls`` by (command, tree), ``python -c pass`` under no tree; ``starts`` by what was
    waited for, then by tree, the revision's first."""
    if revision is None:
        compared, runs, started = "this tree", "runs each", "starts"
    else:
        compared = f"{revision} vs this tree"
        runs, started = "runs each, interleaved", "starts each, interleaved"
    rows: list[list[object]] = []
    for command in [*commands, _BARE]:
        base = calls.get((command, revision) if revision is not None else (_BARE, ""), [])
        base_cpu = median([cpu for cpu, _ in base]) if base else float("nan")
        for name in starts[_HEALTHY] if command != _BARE else ("",):
            cpu, wall = _medians(calls[(command, name)])
            shown = f"{command} ({name})" if revision is not None and name else command
            rows.append([shown, cpu * 1e3, wall * 1e3, cpu / base_cpu])
    first = table(
        f"CPU and wall time per command, {compared} ({repeats} {runs}; median)",
        ["command", "CPU ms", "wall ms", f"CPU x {revision or _BARE}"],
        rows,
    )
    waited = {
        _HEALTHY: "until /healthz answers 200",
        _READY: "until /readyz answers 200",
        _READY_ON_REDIS: "on the Redis bus until /readyz answers 200",
    }
    ready: list[list[object]] = []
    for kind, by_tree in starts.items():
        for name, values in by_tree.items():
            cpu, wall = _medians(values)
            if revision is None:
                ready.append([waited[kind], name, cpu * 1e3, wall * 1e3])
            else:
                base_cpu, base_wall = _medians(by_tree[revision])
                ready.append(
                    [waited[kind], name, cpu * 1e3, cpu / base_cpu, wall * 1e3, wall / base_wall]
                )
    ratio = [] if revision is None else [f"x {revision}"]
    second = table(
        f"`python -m bridge run` until it answers ({repeats} {started}; median)",
        ["run", "tree", "CPU ms", *ratio, "wall ms", *ratio],
        ready,
    )
    return first + "\n" + second


def _medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median CPU and the median wall time of (CPU, wall) pairs."""
    return median([cpu for cpu, _ in pairs]), median([wall for _, wall in pairs])


def main() -> None:
    """Parse the arguments and print the tables."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("revision", nargs="?", default="main", help="git revision (main)")
    parser.add_argument("--repeats", type=int, default=11, help="interleaved runs (11)")
    arguments = parser.parse_args()
    print(run(arguments.revision, arguments.repeats))


if __name__ == "__main__":
    main()
