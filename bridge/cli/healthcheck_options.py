"""The ``healthcheck`` command's options, apart from its probe: the command line adds them cheaply.

Every command's parser takes them (``bridge.cli.parser``), and the exec probe's light one
(``bridge.__main__``); the probe itself (``bridge.cli.healthcheck``, with ssl and threading) is
imported when ``healthcheck`` runs, so no other command pays for it.
"""

from __future__ import annotations

import argparse
from typing import Final

__all__ = ["DEFAULT_TIMEOUT", "add_arguments", "seconds"]

DEFAULT_TIMEOUT: Final = 2.0
# The longest --timeout taken: a day, far past any probe's period, and within what a thread's
# join and a socket's timeout can wait (an infinity, or 1e10 s, raised OverflowError there).
_MOST_TIMEOUT: Final = 86400.0


def seconds(text: str) -> float:
    """An argparse type for ``--timeout``: a positive number of seconds, at most a day (a usage
    error, exit 2, otherwise, saying so)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= _MOST_TIMEOUT:  # also refuses nan and infinity
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of seconds (at most {_MOST_TIMEOUT:g}, a day)"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options, for bridge.cli's parser and the light one of ``bridge.__main__``."""
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=(
            "how long the whole probe may take (connect, TLS handshake, request and answer):"
            f" more than 0, at most {_MOST_TIMEOUT:g}, a day (default: {DEFAULT_TIMEOUT:g})"
        ),
    )
    parser.add_argument(
        "--ready",
        action="store_true",
        help="ask /readyz instead of /healthz: exit 0 when the bridge is ready to serve",
    )
