"""What every benchmark shares: its command line's parser, medians, tables, /proc readings, timed
commands, another revision's tree, a bridge subprocess, the steps HTTP ingest takes with a batch
and the Debian packages a benchmark installs.

A benchmark measured beside other revisions (``--baseline REV``, repeatable) runs each tree's code
in a ``Child``: ``revision_trees`` extracts them, ``Tree.script`` starts one of this tree's bench
scripts on a tree's ``bridge`` (its own side answering with ``serve``), and ``baseline_table``
prints the medians with each figure's ratio against every baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import http.client
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TypeVar, cast

import redis

from bench.workload import SECRET
from bridge.bus import Envelope, HeaderCheck, Rejection, Verifier
from bridge.cli.service import _GC_THRESHOLDS

_LIBC: Final = ctypes.CDLL(None, use_errno=True)
_CLIENTS: Final = 2
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")
# Settled: under 1% of a core for 0.2 s (an idle bridge uses about 0.1%).
_QUIET: Final = 0.2
_IDLE: Final = 0.01
ROOT: Final = Path(__file__).resolve().parent.parent
_T = TypeVar("_T")


def argument_parser(doc: str, **options: Any) -> argparse.ArgumentParser:
    """A benchmark's argument parser, ``doc`` (its docstring, or part of it) its ``--help``
    text without the docstring's reStructuredText quotes."""
    return argparse.ArgumentParser(description=doc.replace("``", ""), **options)


def add_baseline_argument(
    parser: argparse.ArgumentParser, what: str, when_none: str | None = None
) -> None:
    """``--baseline REV``, given again for more: a git revision whose ``what`` (``decoder``,
    ``alert stage``) runs beside this tree's; ``when_none``: the revision taken when none is
    given (the caller takes it), for the help."""
    also = f"; {when_none} when none" if when_none else ""
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="REV",
        help=f"a git revision whose {what} runs beside this tree's (may be given again{also})",
    )


def missing_revision(revision: str, root: Path = ROOT) -> str | None:
    """Why ``git archive revision`` cannot run in ``root`` (no .git, or no such commit), or None:
    a single-branch clone of another branch, a detached depth-1 checkout or a tarball has no
    ``main``."""
    if not (root / ".git").exists():
        return f"{root} is not a git checkout"
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"{revision}^{{commit}}"],
            cwd=root,
            capture_output=True,
            check=False,
        )
    except OSError as exc:  # no git on the PATH
        return f"git cannot run ({exc.strerror})"
    return None if found.returncode == 0 else f"no commit {revision!r} in this clone"


def command_environment() -> dict[str, str]:
    """This process's environment for timing the bridge's commands: none of the bridge's settings
    (``EXESDB_*``, ``OTEL_*``, ``SECRET_KEY_BASE``), and byte code cached as in an installed
    package or the image (``PYTHONDONTWRITEBYTECODE`` dropped: set, every call would compile the
    bridge's modules)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EXESDB_", "OTEL_"))
        and key not in ("SECRET_KEY_BASE", "PYTHONDONTWRITEBYTECODE")
    }


def timed_call(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """Seconds of CPU (user + system, ``getrusage(RUSAGE_CHILDREN)``) and of wall time
    ``command`` took; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, timeout=60)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def extract(revision: str, into: Path) -> Path:
    """Another revision's source tree, from ``git archive revision``, in ``into``/tree (its
    path returned), to run beside this one with the same interpreter and libraries. A revision
    the clone lacks ends the command with one line saying so (its caller is always a command:
    ``python -m bench.compare nosuch`` printed git's error and a traceback)."""
    why = missing_revision(revision)
    if why is not None:
        raise SystemExit(f"python -m bench: {why}: give one it has (git log --oneline lists them)")
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def revision_trees(revisions: Sequence[str], scratch: Path) -> list[Tree]:
    """Each of ``revisions`` extracted under ``scratch`` (``extract``), in the order given, then
    this tree: the trees a ``--baseline REV ...`` benchmark runs."""
    trees = []
    for number, revision in enumerate(revisions):
        into = scratch / f"baseline-{number}"
        into.mkdir()
        trees.append(Tree(revision, extract(revision, into)))
    return [*trees, Tree("this tree", ROOT)]


@dataclass(frozen=True, slots=True)
class Tree:
    """Which bridge a child process runs: this tree, or another revision's extracted copy."""

    name: str
    path: Path

    def env(self) -> dict[str, str]:
        """This environment (none of the bridge's settings) with the tree first on the path."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EXESDB_", "OTEL_"))}
        env["PYTHONPATH"] = str(self.path)
        return env

    def script_env(self) -> dict[str, str]:
        """The environment this tree's bench scripts run in: ``env`` with this tree's ``bridge``
        package, and this tree's ``bench`` package (an extracted tree's own benchmarks may lack
        what the script imports), from a folder beside the tree linking to it."""
        env = self.env()
        if self.path != ROOT:
            overlay = self.path.parent / "this-bench"
            if not overlay.exists():
                overlay.mkdir()
                (overlay / "bench").symlink_to(ROOT / "bench", target_is_directory=True)
            env["PYTHONPATH"] = f"{overlay}{os.pathsep}{self.path}"
        return env

    def script(self, path: Path, *args: str) -> Child:
        """This tree's bench script ``path`` run on this tree's ``bridge`` (``script_env``)."""
        return Child([sys.executable, str(path), *args], env=self.script_env(), cwd=self.path)


class Child:
    """A subprocess answering one JSON line per command line (its side: ``serve``)."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT):
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(cwd),
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def ask(self, command: str, timeout: float = 600.0) -> dict[str, Any]:
        """Send ``command``; its answer, within ``timeout`` seconds."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = _read_line(self.process.stdout, timeout)
        if not line:
            raise RuntimeError(f"{self.process.args!r} exited with {self.process.poll()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def cpu(self) -> float:
        """The child's CPU seconds so far."""
        return proc_stat(self.pid).cpu_seconds

    def pause(self) -> None:
        """Stop the child (SIGSTOP)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a stopped child go on (SIGCONT)."""
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Ask the child to quit; kill it if it does not within 20 s."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.resume()
                self.ask("quit", timeout=20)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_line(stream: IO[str], timeout: float) -> str:
    # The children answer promptly; the deadline only guards against a hung one.
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"no answer within {timeout}s")
    return stream.readline()


def serve(answer: Callable[[list[str]], dict[str, Any]]) -> None:
    """A ``Child``'s side: each line on stdin, split into words, answered with ``answer``'s
    JSON on one line, until ``quit`` (answered ``{}``)."""
    for line in sys.stdin:
        words = line.split()
        if words == ["quit"]:
            print("{}", flush=True)
            return
        print(json.dumps(answer(words)), flush=True)


@contextlib.contextmanager
def tree_workers(trees: Sequence[Tree], script: Path, *args: str) -> Iterator[dict[str, Child]]:
    """One ``script`` worker per tree (``Tree.script``), by the tree's name, each closed on
    leaving (those started already, should one fail to start)."""
    with contextlib.ExitStack() as stack:
        yield {tree.name: stack.enter_context(tree.script(script, *args)) for tree in trees}


def interleaved(trees: Sequence[Tree], repeats: int) -> Iterator[Tree]:
    """The trees ``repeats`` times over, every other repeat in reverse order (both see the
    machine's load drift alike)."""
    for repeat in range(repeats):
        yield from trees if repeat % 2 == 0 else reversed(trees)


def baseline_table(
    title: str,
    unit: str,
    figures: Mapping[str, Mapping[str, Sequence[float]]],
    trees: Sequence[Tree],
    *,
    lower_is_better: bool = True,
) -> str:
    """Per figure (its samples by tree name), each tree's median and, on this tree's row (the
    last tree), per baseline how many times better this tree's median is: the baseline's over
    this tree's for a cost (``lower_is_better``), this tree's over the baseline's for a rate."""
    baselines = [tree.name for tree in trees[:-1]]
    this = trees[-1].name
    rows = []
    for figure, samples in figures.items():
        for tree in trees[:-1]:
            rows.append([figure, tree.name, median(samples[tree.name]), *([""] * len(baselines))])
        ratios = [median(samples[name]) / median(samples[this]) for name in baselines]
        ratios = ratios if lower_is_better else [1 / ratio for ratio in ratios]
        rows.append([figure, this, median(samples[this]), *ratios])
    return table(
        f"{title}; x REV: how many times better this tree's median is than REV's",
        ["figure", "tree", f"{unit} (median)", *(f"x {name}" for name in baselines)],
        rows,
    )


def verified_batch(
    verifier: Verifier, body: bytes, header: str
) -> tuple[list[Envelope], Sequence[int]]:
    """The envelopes of a signed NDJSON batch through the steps HTTP ingest takes with it: the
    signature header checked, the body cut into lines and decoded (``decode_ndjson``), the batch
    verified (ids remembered); and each envelope's size as sent, which ingest hands
    ``publish_verified`` (without them the bus encodes each envelope again to weigh it, work
    ingest never does). RuntimeError if any step refuses it."""
    # Imported here, not with the module: bench.instructions runs this module on a revision's
    # bridge from before decode_ndjson (its default baseline, 6c3c5492).
    from bridge.bus import decode_ndjson

    check = verifier.keyring.check_header(header, body, time.time(), verifier.window_seconds)
    if check is not HeaderCheck.OK:
        raise RuntimeError(f"header check failed: {check}")
    batch = _to_the_end(decode_ndjson(body))
    if batch is None:
        raise RuntimeError("the body has no envelope")
    envelopes = verifier.verify_batch(batch)
    if isinstance(envelopes, Rejection):
        raise RuntimeError(f"batch refused: {envelopes}")
    return envelopes, batch.sizes


def _to_the_end(steps: Coroutine[None, None, _T]) -> _T:
    """What ``steps`` returns, run here at once: without a worker thread to hand lines to,
    ``decode_ndjson`` only hands the loop round between its steps (a bare yield), which a bench
    counting one batch's work has no other task to give."""
    while True:
        try:
            steps.send(None)
        except StopIteration as done:
            return cast("_T", done.value)


def at_least_one(text: str) -> int:
    """An argparse type: a count of 1 or more (0 would be taken for "the default", and less
    leaves the tables without a figure to take the median of)."""
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"{count} is not a count of 1 or more")
    return count


def median(values: Sequence[float]) -> float:
    """The median (the machine is shared: medians, not means or bests)."""
    return statistics.median(values)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A small fixed-width table (also valid Markdown)."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"### {title}", ""]
    for number, row in enumerate(cells):
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if number == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass(frozen=True, slots=True)
class ProcStat:
    """CPU seconds (user + system) and resident memory of a process."""

    cpu_seconds: float
    rss_bytes: int


def cpu_seconds(pid: int) -> float:
    """A process's CPU time, all its threads (live and exited), to the nanosecond.

    Its CPU-time clock (``clock_getcpuclockid``): the scheduler's runtime, which
    ``/proc/<pid>/stat`` shows rounded to 10 ms clock ticks as utime + stime. Every process
    measured (the bridge, Pushgateway, redis-server) is read this way.
    """
    clock = ctypes.c_int()
    failed = _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock))
    if failed:
        raise OSError(failed, f"no CPU-time clock for process {pid}: {os.strerror(failed)}")
    return time.clock_gettime_ns(clock.value) / 1e9


def proc_stat(pid: int) -> ProcStat:
    """The process's CPU seconds (``cpu_seconds``) and resident memory (``/proc/<pid>/statm``)."""
    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return ProcStat(cpu_seconds(pid), resident * _PAGE)


@contextmanager
def settled_heap() -> Iterator[None]:
    """Measure in-process code with the heap settled as ``exesdb-bridge run`` settles it (what
    exists is frozen, the collector's thresholds raised), and restore the collector after.

    With the defaults, full collections of the benchmark's own heap fall on whichever
    alternative is running at the time, the same ones each repeat, and skew their medians.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def apt_installed(binary: str, package: str) -> str | None:
    """``binary``'s path, Debian's ``package`` installed with apt-get when it is missing and this
    runs as root (as ``make servers`` installs the test servers); None when it is missing and
    cannot be installed (not root, or no apt-get: not Debian)."""
    found = shutil.which(binary)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get") is not None:
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=environment, check=False)
        subprocess.run(
            [
                "apt-get",
                "install",
                "-y",
                "-qq",
                # Another apt-get may hold the lock (shared machine): wait for it, up to five
                # minutes.
                "-o",
                "DPkg::Lock::Timeout=300",
                "--no-install-recommends",
                package,
            ],
            env=environment,
            stdout=subprocess.DEVNULL,
            check=False,
        )
        found = shutil.which(binary)
    return found


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throw-away ``redis-server`` on a free loopback port (no persistence, ``workdir`` its
    folder), answering: the process and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.close()
    return server, f"redis://127.0.0.1:{port}/0"


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url``; (status, body) for any status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def send(
    port: int,
    method: str,
    path: str,
    requests: Sequence[tuple[bytes, Mapping[str, str]]],
    expected: Sequence[int],
) -> float:
    """Send each (body, headers) to ``path`` on loopback ``port`` over two keep-alive
    connections, each taking every other request; the wall time taken. RuntimeError if any
    answer's status is not ``expected``."""
    failures: list[str] = []

    def one_client(share: Sequence[tuple[bytes, Mapping[str, str]]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for body, headers in share:
                connection.request(method, path, body, dict(headers))
                response = connection.getresponse()
                answer = response.read()
                if response.status not in expected:
                    failures.append(f"{response.status} {answer[:200]!r}")
        finally:
            connection.close()

    shares = [requests[i::_CLIENTS] for i in range(_CLIENTS)]
    threads = [threading.Thread(target=one_client, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} request(s) refused, first: {failures[0]}")
    return elapsed


def settle(stat: Callable[[], ProcStat], timeout: float = 10.0) -> ProcStat:
    """A process's stat once its queues drained (under 1% of a core for 0.2 s)."""
    last = stat()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(_QUIET)
        now = stat()
        if now.cpu_seconds - last.cpu_seconds < _IDLE * _QUIET:
            return now
        last = now
    return last


class BridgeProcess:
    """``python -m bridge run`` on a free loopback port, for measuring from the outside."""

    def __init__(self, root: Path = ROOT, **env: str) -> None:
        # ``root``: the source tree to run (bench.compare runs another revision's beside this).
        self._root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("EXESDB_", "OTEL_")) and key != "SECRET_KEY_BASE"
        }
        environment.update(
            {
                "EXESDB_HTTP_ADDR": f"127.0.0.1:{self.port}",
                "SECRET_KEY_BASE": SECRET,
                "EXESDB_LOG_LEVEL": "warning",
            }
        )
        environment.update(env)
        self._env = environment
        self._dir = tempfile.TemporaryDirectory(prefix="exesdb-bench-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> BridgeProcess:
        self._env.setdefault("EXESDB_STATE_DIR", self._dir.name)
        with (Path(self._dir.name) / "bridge.log").open("wb") as log:  # the child keeps its own
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self._root),
            )
        wait_for(lambda: self._healthy(), 30.0, f"bridge on {self.url}")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the bridge exited with {self.process.returncode}:\n{self.log()}")
        try:
            return http_get(self.url + "/healthz", 1.0)[0] == 200
        except OSError:
            return False

    def log(self) -> str:
        """What the bridge printed."""
        path = Path(self._dir.name) / "bridge.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def components(self) -> str:
        """The components /readyz reports besides the bus (``none`` when there are none)."""
        _, body = http_get(self.url + "/readyz")
        checks = json.loads(body).get("checks", {}) if body else {}
        names = sorted(name for name in checks if name != "bus")
        return ", ".join(names) or "no sink components"

    def stat(self) -> ProcStat:
        """The bridge's CPU seconds and RSS now."""
        return proc_stat(self.pid)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
