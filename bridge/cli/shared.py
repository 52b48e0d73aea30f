"""What every command shares: exit statuses, the settings or exit 2, a count type, tables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.config import Settings

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Commands",
    "positive",
    "print_table",
    "settings_or_exit",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


class Commands(Protocol):
    """What ``add_subparsers`` returns, as far as adding a command goes."""

    def add_parser(self, name: str, *args: Any, **kwargs: Any) -> argparse.ArgumentParser: ...


def settings_or_exit(*, warn_unknown: bool = False) -> Settings:
    """The settings, or exit 2 listing every problem; ``warn_unknown``: first warn on stderr
    about each set ``EXESDB_*`` variable that is no setting (a typo of the one the command
    needs, often), as ``run`` and ``check-config`` do with their other warnings. A bad
    configuration is followed by those warnings in any case: a misspelt name is often why a
    required setting is missing."""
    from bridge.config import load_settings

    if warn_unknown:
        _warn_unknown_variables()
    try:
        return load_settings()
    except ConfigError as exc:
        print("exesdb-bridge: bad configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        for note in exc.warnings:
            print(f"exesdb-bridge: warning: {note}", file=sys.stderr)
        if not warn_unknown:
            _warn_unknown_variables()
        raise SystemExit(EXIT_USAGE) from None


def _warn_unknown_variables() -> None:
    from bridge.config import unknown_variables

    for note in unknown_variables(os.environ):
        print(f"exesdb-bridge: warning: {note}", file=sys.stderr)


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def at_least_zero(text: str) -> int:
    """An argparse type: a whole number of 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return value


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], none: str) -> None:
    """A header and rows in aligned columns (the last one as it is); with no rows, ``none``
    on stderr and nothing on stdout."""
    if not rows:
        print(f"exesdb-bridge: {none}", file=sys.stderr)
        return
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [f"{cell:<{width}}" for cell, width in zip(row[:-1], widths, strict=False)]
        print("  ".join([*cells, str(row[-1])]))
