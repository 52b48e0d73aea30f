"""``python -m bridge``, the ``exesdb-bridge`` command: ``healthcheck`` and ``run`` on a light path.

An exec probe runs ``exesdb-bridge healthcheck`` every few seconds: that command is parsed and
run here with the standard library and ``bridge.cli.healthcheck`` (with its options) alone
(``bridge.cli`` imports its parser when first asked for it); so is ``run`` (or ``run --demo``),
with ``bridge.cli.service`` alone. Every other command, and a ``healthcheck`` whose options this
light parser does not take, goes to ``bridge.cli``'s parser, which imports each command's own
modules when it runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Final, NoReturn

__all__ = ["main"]

_EXIT_INTERRUPTED: Final = 130  # as bridge.cli's commands report Ctrl-C
# How a container or a unit starts the service: no parser of the other commands needed.
_PLAIN_RUNS: Final = (["run"], ["run", "--demo"])
_STOPPED_WHILE_STARTING: Final = "stopped while starting (SIGTERM): nothing was running yet"


class _NotLight(Exception):
    """The arguments are not a plain ``healthcheck``: bridge.cli parses them (and answers)."""


class _LightParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _NotLight(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (the process's arguments) names; return its exit status, which
    the process exits with (``run`` ends the process with it once stopped, without the
    interpreter's teardown)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:
        # Until run's event loop takes SIGTERM over (before it listens), a stop is clean at once.
        signal.signal(signal.SIGTERM, _stop_while_starting)
    try:
        # Importing the parser and its commands takes a good part of a second on a busy host:
        # Ctrl-C pressed meanwhile stops the command as quietly as once it runs.
        if args[:1] == ["healthcheck"]:
            checked = _light_healthcheck(args[1:])
            if checked is not None:
                return checked
        if args in _PLAIN_RUNS:
            from bridge.cli.service import run

            return run(demo=args == ["run", "--demo"], as_command=True)
        from bridge.cli import main as full

        return full(args)
    except KeyboardInterrupt:
        return _EXIT_INTERRUPTED


def _light_healthcheck(args: list[str]) -> int | None:
    """``healthcheck`` with ``args`` parsed and run on the light path: its exit status, or None
    when the options are not ones this parser takes (bridge.cli says what is wrong, as for every
    command)."""
    from bridge.cli import healthcheck, healthcheck_options

    parser = _LightParser(prog="exesdb-bridge healthcheck", add_help=False)
    healthcheck_options.add_arguments(parser)
    try:
        options = parser.parse_args(args)
    except _NotLight:
        return None
    return healthcheck.main(options.timeout, ready=options.ready)


def _stop_while_starting(signum: int, frame: object) -> NoReturn:
    """SIGTERM while ``run`` imports and reads its settings: nothing to drain, so exit 0 saying
    so. Python's default ended the process silently, killed by the signal (status 143), and a
    ``podman stop`` or a rollout just after a start looked like a crash."""
    logging = sys.modules.get("logging")
    if logging is not None and logging.getLogger().handlers:  # configured: the log's format
        logging.getLogger("bridge").info("%s", _STOPPED_WHILE_STARTING)
    else:
        print(f"exesdb-bridge: {_STOPPED_WHILE_STARTING}", file=sys.stderr, flush=True)
    raise SystemExit(0)


if __name__ == "__main__":
    raise SystemExit(main())
