"""The service's commands: ``run`` serves until a signal stops it, ``check-config`` shows how."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Final

from bridge.cli.shared import (
    DEMO_STATE_DIR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    say_bad_configuration,
    settings_or_exit,
    warn,
)
from bridge.errors import BridgeError, ConfigError
from bridge.source_repository import cite_source
from bridge.urls import own_url

if TYPE_CHECKING:
    import asyncio
    import logging

    from bridge.app import Bridge
    from bridge.settings import Settings
    from bridge.state_dir import DeniedPath
    from bridge.stop_watch import StopWatch

__all__ = ["add_service_commands", "run"]


# The cycle collector's generation thresholds once running (docs/performance.md measures them).
_GC_THRESHOLDS: Final = (50_000, 20, 20)
# When a stop still running says what it waits on (bridge.stop_watch), in times the setting
# EXESDB_SHUTDOWN_TIMEOUT_MS: half of it past it. A stop under load takes all of it (the alert
# sink drains up to it) and overruns it by a few tenths of a second: no sound stop is reported.
_REPORT_AFTER_SHARE: Final = 1.5
# After the last line the exit waits for the threads Python joins (the alert outbox's, ending the
# transaction under way: 0-25 ms under load) until the stop's deadline, and this long at least;
# then it ends without them (a disk that hangs), as the Redis spool leaves a write to it.
_EXIT_WAIT_SECONDS: Final = 0.5
# How often, past that, the exit looks whether Python is joining the threads left yet (a program
# that called run() may go on for a while before it exits).
_EXIT_LOOK_SECONDS: Final = 0.1


def _logger() -> logging.Logger:
    """The bridge's logger; logging imported when ``run`` first logs, not as the parser of every
    command is built."""
    import logging

    return logging.getLogger("bridge")


def add_service_commands(commands: Commands) -> None:
    """Add ``run`` and ``check-config`` to the subcommands of ``exesdb-bridge``."""
    serve = commands.add_parser(
        "run",
        help="run the bridge service",
        description=(
            "Run the bridge until SIGTERM or Ctrl-C. Every setting is an environment variable:"
            " EXESDB_HTTP_ADDR is where it listens (default 0.0.0.0:9570), EXESDB_STATE_DIR"
            " where it keeps its alert outbox (default ./.exesdb-bridge); the check-config"
            f" command prints them all, and {cite_source('docs/configuration.md')}, describes each."
        ),
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help=(
            "add a simulated three-node ExESDB cluster's traffic, keeping the state in"
            f" {DEMO_STATE_DIR} unless EXESDB_STATE_DIR is set"
        ),
    )
    serve.set_defaults(handler=_run)

    check = commands.add_parser(
        "check-config",
        help="print the resolved configuration",
        description=(
            "Print every setting, read from its environment variable, with secrets redacted;"
            f" exit 2 listing every problem. {cite_source('docs/configuration.md')}, describes each"
            " variable."
        ),
    )
    check.add_argument(
        "--demo",
        action="store_true",
        help=(
            "check as `run --demo` would start: its state in"
            f" {DEMO_STATE_DIR} unless EXESDB_STATE_DIR is set"
        ),
    )
    check.set_defaults(handler=_check_config)


# -- run --


async def _serve(settings: Settings, demo: bool, watch: StopWatch) -> int:
    """Start the bridge and serve until SIGTERM or SIGINT, ``watch`` started as the stop begins
    (left unstarted when the bridge did not start); the exit status."""
    import asyncio

    from bridge import __version__
    from bridge.app import Bridge, default_components
    from bridge.bodies import keep_heap_for_bodies

    components = default_components()
    if demo:
        from collectors.demo import demo_component

        components.append(demo_component)
    bridge = Bridge(settings, components=components, keep_replay=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    hang_ups: set[asyncio.Task[None]] = set()  # the SIGHUPs still being answered, kept alive
    loop.add_signal_handler(signal.SIGHUP, _hang_up, bridge, hang_ups)
    try:
        await bridge.start()
    except OSError as exc:  # the address is a BridgeError of its own; this is anything else
        _logger().error("cannot start: %s", exc)
        await bridge.aclose()
        return EXIT_FAILED
    except ConfigError as exc:  # e.g. EXESDB_STATE_DIR cannot hold the alert outbox
        _logger().error("%s", exc)
        await bridge.aclose()
        return EXIT_USAGE
    except BridgeError as exc:
        _logger().error("%s", exc)
        await bridge.aclose()
        return EXIT_FAILED
    _settle_heap()
    keep_heap_for_bodies(settings.max_body_bytes)  # the bodies' memory kept between requests
    _logger().info("exesdb-bridge %s running as node %s", __version__, settings.node)
    if bridge.address is not None:
        tls = bridge.web_config is not None and bridge.web_config.ssl_context is not None
        base = own_url(*bridge.address, tls=tls)
        # No path after the URL: the log shows a URL's path as /… (it may hold a token).
        _logger().info("open %s (the status page; /metrics for Prometheus)", base)
    await stop.wait()
    _logger().info("stopping")
    watch.doing = lambda: bridge.stopping
    watch.start()
    status = EXIT_OK
    try:
        await bridge.aclose()
    except Exception:  # the rest of the stop skipped: the exit still ends within its bound
        _logger().exception("the stop failed at %s", bridge.stopping)
        status = EXIT_FAILED
    watch.doing = lambda: (
        "the event loop's close (the tasks left cancelled and awaited, then the default"
        " executor's threads joined)"
    )
    return status


def _allowed(settings: Settings) -> str:
    return f"EXESDB_SHUTDOWN_TIMEOUT_MS allows {settings.shutdown_timeout_ms / 1000:g}s"


def _hang_up(bridge: Bridge, answering: set[asyncio.Task[None]]) -> None:
    """SIGHUP (``systemctl reload``, a closed terminal) reads the web config again and keeps
    running: left to Python's default it ended the bridge at once, undrained, with an exit
    systemd counts as clean (no restart)."""
    import asyncio

    task = asyncio.get_running_loop().create_task(_read_again(bridge))
    answering.add(task)
    task.add_done_callback(answering.discard)


async def _read_again(bridge: Bridge) -> None:
    """The web config read again for a SIGHUP (a changed file once it has settled), and said."""
    if not bridge.settings.web_config_file:
        web_config = "no web config to read again"
    elif bridge.web_config is None:
        web_config = "still starting: the web config is being read"
    elif await bridge.web_config.reload():
        web_config = "web config read again"
    elif bridge.web_config.refused:
        web_config = "web config: nothing new taken (the file is refused, as logged above)"
    else:
        web_config = "web config: nothing new taken (unchanged)"
    _logger().info(
        "SIGHUP: %s; environment variables and the receivers file are read at start (restart to "
        "change them)",
        web_config,
    )


def _settle_heap() -> None:
    """Once started: what start-up built lives as long as the process, so the cycle collector
    leaves it alone (``gc.freeze``), and collects after ``_GC_THRESHOLDS[0]`` new container
    objects rather than 700, which at ingest rates meant a collection every few messages. The
    collector, off while starting (``run``), is on again from here."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    gc.enable()


def _run(args: argparse.Namespace) -> int:
    return run(demo=args.demo)


def run(demo: bool = False, *, as_command: bool = False) -> int:
    """``exesdb-bridge run`` (with ``demo``: ``--demo``): start the bridge and serve until
    SIGTERM or Ctrl-C; the exit status.

    ``as_command``: the process exits with the status returned, as ``exesdb-bridge run``'s
    does; once the bridge has served and stopped, it then exits without the interpreter's
    teardown. A program calling ``run`` (or ``bridge.cli.main(["run"])``) leaves it unset and
    exits as it chooses: its status, its exit hooks. Either way, a thread the bridge left still
    running at the exit past the stop's deadline (an alert outbox write on a disk that hangs)
    is not waited for: the process ends then, with the status ``run`` returned."""
    # Start-up imports and builds what lives as long as the process: the collector's passes
    # over it (about 170 while importing) found a few thousand objects and cost 4-7% of the
    # start's CPU. The one collection in _settle_heap, once started, takes what they took.
    gc.disable()
    exit_hook = _ExitWithoutTeardown()
    if as_command:  # the status run returns is the process's: the hook may end it so
        # Registered before start-up's imports register theirs (logging's), it runs after them all.
        atexit.register(exit_hook)
    try:
        return _start_and_serve(demo, exit_hook)
    finally:
        gc.enable()


def _start_and_serve(demo: bool, exit_hook: _ExitWithoutTeardown) -> int:
    """Read the settings, then serve until stopped; ``exit_hook`` armed once the bridge has
    served and stopped (a start refused leaves Python to exit as usual)."""
    import asyncio

    from bridge.logs import configure_logging
    from bridge.probe_settings import variable_value
    from bridge.stop_watch import StopWatch

    # Refused settings are listed with what the start would stop on next, at the outbox, as
    # check-config lists them: all mended in one round. Looked for only then (the outbox says it
    # at start otherwise), so that a good start imports nothing of it before the bridge does.
    settings = settings_or_exit(
        logged=True, beside=lambda: _state_problems(_state_dir_taken(demo=demo), demo=demo)
    )
    configure_logging(settings)  # the bridge logs its start warnings as it starts (Bridge.start)
    if demo and variable_value(os.environ, "EXESDB_STATE_DIR") is None:
        settings = _demo_settings(settings)
        _logger().info(
            "demo: state kept in %s, apart from a bridge run here without --demo"
            " (set EXESDB_STATE_DIR for another)",
            DEMO_STATE_DIR,
        )
    if problem := _mixed_state(settings.state_dir, demo=demo):
        _logger().error("%s", problem)
        return EXIT_USAGE
    if demo:
        _mark_demo(settings.state_dir)
    if demo:
        for note in _demo_warnings(settings):
            _logger().warning("%s", note)
    # Made here, not as the stop begins: a stop that raises out of the event loop still ends it
    # and arms the exit below, whose bound a thread the bridge left (the outbox's) needs.
    watch = StopWatch(
        settings.shutdown_timeout_ms / 1000 * _REPORT_AFTER_SHARE,
        lambda: "the stop's start",
        allowed=_allowed(settings),
    )
    try:
        status = asyncio.run(_serve(settings, demo, watch))
    except Exception:  # a fault of the bridge's own: its traceback through the redacting log
        _logger().exception("exesdb-bridge stopped on an unexpected error")
        status = EXIT_FAILED
    if watch.started:  # the bridge served, then stopped (or its stop failed, as logged)
        # The last line: the stop is over (a supervisor's log ends here), the event loop closed
        # too, and what it took beside what it may take.
        _logger().info(
            "stopped in %.1fs (%s)%s",
            time.monotonic() - watch.began,
            _allowed(settings),
            "" if status == EXIT_OK else f", exit {status}: the stop failed, as logged above",
        )
        # From here the exit's own time limit says what holds it, not the stop's watch: a
        # program that called run() may go on for a while before it exits.
        watch.end()
        watch.doing = lambda: "the exit (Python joining the threads left, then its exit hooks)"
        deadline = watch.began + settings.shutdown_timeout_ms / 1000
        exit_hook.arm(status, watch, max(deadline - time.monotonic(), _EXIT_WAIT_SECONDS))
    return status


class _ExitWithoutTeardown:
    """An exit hook ending the process with ``status`` once armed (the bridge has run and
    stopped), after Python has joined the threads left (the alert outbox's, finishing the
    transaction under way) and run the other exit hooks (logging's flush): the interpreter's
    teardown is skipped.

    Those joins have no end of their own: a thread the bridge left still running when the time
    ``arm`` gives is out (the outbox's, its disk hanging in an fsync) is left, and the process
    ends from a thread of the hook's own, saying so (only once Python is joining them: a program
    that goes on after ``run`` is not cut short, nor a thread of its own, started before ``run``
    or after it, waited for less than Python waits). SQLite commits the transaction under way
    or not, as the disk leaves it; nothing in it was answered as stored yet (ingest's 202 and a
    Redis work-queue entry's acknowledgement wait for its commit), so it is sent again or, on
    Redis, handled by the next holder of the work queue.

    That teardown frees the heap object by object: 0.1-1.2 s on Redis under load, about 1 s with
    100 000 nodes' series, counted against a ``podman stop``'s or a pod's grace period
    (docs/performance.md, "The exit after the stop"), and nothing is left to write by then: the
    outbox and the spool are closed, the log is flushed. Unset (a start refused or that raised,
    the bridge never served), Python exits as usual; so it does for a program that called
    ``run``, which registers the hook only as the command (an exit with another status, or the
    program's own exit hooks registered before, would be skipped by it)."""

    def __init__(self) -> None:
        self.status: int | None = None
        self._watch: StopWatch | None = None  # the stop's: what the exit waits on, asked of it
        self._exiting = threading.Lock()  # taken by the first to end the process, never let go
        # The program's own threads, alive before the bridge started: never the bridge's.
        self._before = frozenset(threading.enumerate())

    def arm(self, status: int, watch: StopWatch, within: float) -> None:
        """End the process with ``status`` at the exit, or ``within`` seconds from now should
        Python still be joining a thread the bridge left then, ``watch`` saying where it is."""
        self.status, self._watch = status, watch
        main = threading.main_thread()
        left = [
            thread
            for thread in threading.enumerate()
            if not thread.daemon and thread is not main and thread not in self._before
        ]
        if left:  # mostly none: the outbox's thread ends with the stop
            armed = time.monotonic()
            threading.Thread(
                target=self._cut_short, args=(left, armed + within, armed), name="exit", daemon=True
            ).start()

    def _cut_short(self, left: list[threading.Thread], due: float, armed: float) -> None:
        # A daemon: the process ends before this when nothing holds it.
        time.sleep(max(0.0, due - time.monotonic()))  # the exit's time limit, from arm()
        while any(thread.is_alive() for thread in left):
            if _joining_threads_at_exit():  # cut short the exit's joins alone, once they run
                with self._exiting:
                    try:  # the process ends whatever the report and the log do
                        _logger().error(
                            "exit: threads still running %.1fs after the stop's last line (a"
                            " disk that hangs?): the process ends without them. A transaction"
                            " of the alert outbox under way commits or not as the disk leaves"
                            " it: nothing in it was answered as stored yet (its sender sends it"
                            " again; on Redis the next holder of the work queue handles it).\n%s",
                            time.monotonic() - armed,
                            self._waits_on(),
                        )
                    finally:
                        self._exit()
            time.sleep(_EXIT_LOOK_SECONDS)  # until Python joins them, or they end

    def _waits_on(self) -> str:
        """What the exit waits on, as the stop's watch says it, or why it cannot."""
        assert self._watch is not None  # set by arm()
        try:
            return self._watch.report()
        except Exception as exc:  # the exit's last words: not a reason to stay
            return f"what it waits on could not be told ({type(exc).__name__}: {exc})"

    def __call__(self) -> None:
        if self.status is None:
            return
        with self._exiting:
            self._exit()

    def _exit(self) -> None:
        assert self.status is not None
        import logging

        try:
            # Done by logging's own hook when it ran first, not when it was registered before.
            logging.shutdown()  # which raises a handler's error, logging.raiseExceptions set
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
                    stream.flush()
        finally:
            os._exit(self.status)


def _joining_threads_at_exit() -> bool:
    """Whether the main thread is in ``threading``'s shutdown: Python, exiting, joins the threads
    left (concurrent.futures' executors' among them) before it runs the exit hooks."""
    import traceback

    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    return frame is not None and any(
        called.f_code.co_name == "_shutdown" and called.f_code.co_filename == threading.__file__
        for called, _ in traceback.walk_stack(frame)
    )


# In a demo's state directory: a bridge run without --demo refuses it, and a demo refuses one
# holding a real bridge's outbox (the image sets EXESDB_STATE_DIR, so a container's demo does not
# keep to ./.exesdb-bridge-demo, and its volume may be used for real afterwards).
_DEMO_MARK: Final = "demo-state"
_DEMO_MARK_TEXT: Final = (
    "This directory holds the state of `exesdb-bridge run --demo`: its made-up alerts. A bridge\n"
    "run without --demo refuses it; empty the directory to use it for real.\n"
)


def _demo_settings(settings: Settings) -> Settings:
    """``settings`` as ``run --demo`` takes them when ``EXESDB_STATE_DIR`` is unset: the demo's
    made-up alerts (brute force on exesdb-2@demo) would otherwise stay in the outbox of the
    bridge run next from this folder, escalating to its real receivers."""
    return settings.model_copy(update={"state_dir": DEMO_STATE_DIR})


def _mixed_state(state_dir: str, *, demo: bool) -> str | None:
    """Why a run (``demo`` or not) must not use ``state_dir``: a demo's made-up alerts would
    reach a real bridge's receivers, or the demo's go into a real outbox; None when it may.
    Looks only, making and changing nothing (``check-config`` asks it too)."""
    if not demo:
        return _demos(state_dir)
    from pathlib import Path

    from bridge.sinks.alerts.outbox import FILE_NAME

    directory = Path(state_dir)
    try:
        marked = (directory / _DEMO_MARK).exists()
        outbox = (directory / FILE_NAME).exists()
    except OSError:  # a folder on the way it may not search: the outbox says so at start
        return None
    # The demo's own folder (EXESDB_STATE_DIR unset) is the demo's by its name, marked or not:
    # one a demo left before it marked its directory holds only made-up alerts.
    if not marked and outbox and state_dir != DEMO_STATE_DIR:
        return (
            f"EXESDB_STATE_DIR ({state_dir}) holds a real bridge's alert outbox: the demo's"
            " made-up alerts would go into it, on to its receivers once the demo ends; give the"
            " demo another directory in EXESDB_STATE_DIR (a new folder on a container's volume;"
            f" unset, the demo keeps to {DEMO_STATE_DIR} in the working directory)"
        )
    return None


def _mark_demo(state_dir: str) -> None:
    """Mark ``state_dir``, a demo's, so (made if missing): a run without --demo refuses it."""
    from pathlib import Path

    directory = Path(state_dir)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Not waiting on a FIFO there for a reader: refused at once (ENXIO), it marks already.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK
        with open(os.open(directory / _DEMO_MARK, flags, 0o644), "w") as mark:
            mark.write(_DEMO_MARK_TEXT)
    except OSError:
        pass  # the outbox says why the directory cannot be used, as the bridge starts


def _demos(state_dir: str) -> str | None:
    """Why a run without --demo must not use ``state_dir``, a demo's (marked so), or None."""
    from pathlib import Path

    try:
        marked = (Path(state_dir) / _DEMO_MARK).exists()
    except OSError:  # a folder on the way it may not search: the outbox says so at start
        return None
    if not marked:
        return None
    return (
        f"EXESDB_STATE_DIR ({state_dir}) holds the state of a demo (run --demo): its made-up"
        " alerts would be delivered, escalated and re-sent to this bridge's receivers; give"
        " EXESDB_STATE_DIR another directory, or empty this one, to run for real"
    )


def _demo_warnings(settings: Settings) -> list[str]:
    """What ``run --demo`` warns of as it starts with ``settings``, before the bridge's own start
    warnings, and ``check-config --demo`` in the same words: where the demo's made-up alerts go
    beyond this bridge."""
    notes: list[str] = []
    if delivered_to := _alert_destinations(settings):
        # Documented (docs/deployment.md#demo-traffic): the compose stack shows its alerts in
        # Alertmanager. Said loudly, since a receiver may be a pager.
        notes.append(
            "demo: the simulated cluster's made-up alerts (brute force, node failures, unhealthy"
            f" nodes, ...) will be delivered to {' and '.join(delivered_to)}; unset them to keep"
            " the demo to this bridge"
        )
    if settings.uses_redis:
        notes.append(
            "demo: the simulated cluster goes onto the shared Redis bus (EXESDB_BUS), where every"
            " replica run with --demo publishes it again: run the demo on one replica only, or"
            " each of its alerts is raised once per replica"
        )
    return notes


def _alert_destinations(settings: Settings) -> list[str]:
    """The settings that send alerts out of the bridge, by variable name (never their URLs:
    a webhook URL may hold a token)."""
    destinations = []
    if urls := len(settings.webhook_urls):
        destinations.append(f"EXESDB_WEBHOOK_URLS ({urls} receiver{'s' if urls > 1 else ''})")
    if settings.webhook_config_file:
        destinations.append("the receivers of EXESDB_WEBHOOK_CONFIG_FILE")
    if settings.alertmanager_url:
        destinations.append("EXESDB_ALERTMANAGER_URL")
    return destinations


# -- check-config --


def _state_problems(state_dir: str | None, *, demo: bool) -> tuple[list[str], list[str]]:
    """What a start (``demo``: ``run --demo``) would stop on in ``state_dir`` (None: no
    directory the bridge could use, which the settings' problems name), listed by ``run`` beside
    refused settings (problems, and no warnings: ``run`` is the bridge's user), found without
    making or changing anything: a folder, or its files, this user may not make, write or read
    (``denied_outbox``), in start-up's words, else the outbox (``outbox_problems``: this
    Python's SQLite too), and a demo's state and a real bridge's mixed (``_mixed_state``)."""
    from bridge.sinks.alerts.outbox import denied_outbox, outbox_problems

    if state_dir is not None and (denied := denied_outbox(state_dir)) is not None:
        # A start stops there: what the outbox file holds is not looked at.
        return [*outbox_problems(None), _denied_words(state_dir, denied)], []
    return _found_in_state_dir(state_dir, demo=demo), []


def _state_findings(state_dir: str | None, *, demo: bool) -> tuple[list[str], list[str]]:
    """``_state_problems`` as check-config says them: what this user's permissions refuse is a
    warning, naming the user, not a problem (check-config may run as another user than the
    bridge's, e.g. before systemd makes a DynamicUser's StateDirectory), and what the outbox
    file holds is looked at all the same."""
    import pwd

    from bridge.sinks.alerts.outbox import denied_outbox

    problems = _found_in_state_dir(state_dir, demo=demo)
    if state_dir is None or (denied := denied_outbox(state_dir)) is None:
        return problems, []
    uid = os.geteuid()
    try:
        user = f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # a uid no user database names
        user = f"uid {uid}"
    return problems, [f"as {user}, run would stop: {_denied_words(state_dir, denied)}"]


def _found_in_state_dir(state_dir: str | None, *, demo: bool) -> list[str]:
    """The outbox's problems (``outbox_problems``) and a demo's state and a real bridge's mixed
    (``_mixed_state``), whoever runs the start."""
    from bridge.sinks.alerts.outbox import outbox_problems

    problems = outbox_problems(state_dir)
    if state_dir is not None and (mixed := _mixed_state(state_dir, demo=demo)) is not None:
        problems.append(mixed)
    return problems


def _denied_words(state_dir: str, denied: DeniedPath) -> str:
    """The line a start stops on where ``denied_outbox`` found this user refused, as the
    outbox's opening would word the system's refusal (``unopenable_problem``)."""
    import errno

    from bridge.sinks.alerts.outbox import unopenable_problem

    refusal = PermissionError(errno.EACCES, denied.reason, denied.path)
    return unopenable_problem("open", state_dir, refusal)


def _state_dir_taken(*, demo: bool) -> str | None:
    """``EXESDB_STATE_DIR`` as the settings take it (unset, for a ``demo``: ``DEMO_STATE_DIR``),
    or None when they refuse it or it names no directory the bridge could use (their problems
    say so: the outbox in it is not looked at)."""
    from bridge.client_environment import OutboxValues, read_plainly
    from bridge.probe_settings import variable_value
    from bridge.state_dir import unusable_state_dir

    taken = read_plainly(OutboxValues, os.environ)
    if taken is None:
        return None
    state_dir = taken.state_dir
    if demo and variable_value(os.environ, "EXESDB_STATE_DIR") is None:
        state_dir = DEMO_STATE_DIR  # as _start_and_serve gives a demo
    return None if unusable_state_dir(state_dir) is not None else state_dir


def _check_config(args: argparse.Namespace) -> int:
    from bridge.probe_settings import variable_value
    from bridge.settings_checks import start_warnings

    # What `run` (`--demo`) would stop on at start, past the settings: this Python's SQLite, too
    # old, the outbox file there already (a directory, no outbox, one cut short), a demo's state
    # and a real bridge's mixed, read without making or changing anything; with the settings'
    # problems when they have some, so that all are mended in one round (EXESDB_STATE_DIR's
    # folder looked in when that variable is good).
    demo = args.demo
    settings = settings_or_exit(
        beside=lambda: _state_findings(_state_dir_taken(demo=demo), demo=demo)
    )
    if demo and variable_value(os.environ, "EXESDB_STATE_DIR") is None:
        settings = _demo_settings(settings)
    problems, state_warnings = _state_findings(settings.state_dir, demo=demo)
    # In the order `run` (`--demo`) logs them as it starts, check-config's own on the folder first.
    warnings = (
        state_warnings + (_demo_warnings(settings) if demo else []) + start_warnings(settings)
    )
    if problems:
        # Its warnings too: a misspelt EXESDB_STATE_DIR is a likely reason for the wrong folder.
        if not demo and _demos(settings.state_dir) is not None:
            warnings.append("`check-config --demo` checks the configuration `run --demo` starts")
        say_bad_configuration(ConfigError(problems, warnings=warnings))
        return EXIT_USAGE
    shown = settings.redacted()
    if (web_config := settings.web_config()) is not None:
        from bridge.webconfig import describe_web_config  # each file's modules with the file

        shown["EXESDB_WEB_CONFIG_FILE"] += f" ({describe_web_config(web_config)})"
    receivers: list[str] = []
    if (receivers_file := settings.receivers_file()) is not None:
        from bridge.receivers import describe_receivers

        # One line per receiver: URLs as safe_url shows them, secrets only as set or a file.
        signs = settings.webhook_secret is not None
        receivers = describe_receivers(receivers_file, webhook_secret=signs)
    width = max(len(name) for name in shown)
    for name, value in shown.items():
        print(f"{name:<{width}}  {value}")
        if name == "EXESDB_WEBHOOK_CONFIG_FILE":  # its receivers indented under it, not at the end
            for line in receivers:
                print(f"  {line}")
    for note in warnings:
        warn(note)
    return EXIT_OK
