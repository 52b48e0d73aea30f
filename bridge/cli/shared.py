"""What every command shares: exit statuses, the settings or exit 2, a count type, tables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from bridge.choices import meant_said, word_meant
from bridge.errors import ConfigError
from bridge.hidden import on_one_line

if TYPE_CHECKING:
    from bridge.client_environment import ClientValues
    from bridge.settings import Settings

__all__ = [
    "ALERT_STATES",
    "DELIVERY_STATES",
    "DEMO_STATE_DIR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Commands",
    "client_settings_or_exit",
    "meant_choice",
    "one_of",
    "positive",
    "print_table",
    "refused_choice",
    "say_bad_configuration",
    "settings_or_exit",
    "warn",
]

Values = TypeVar("Values", bound="ClientValues")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C

# Where `run --demo` keeps its state when EXESDB_STATE_DIR is unset: not the default folder a
# real bridge run from the same place uses.
DEMO_STATE_DIR: Final = "./.exesdb-bridge-demo"

# What `alerts list --state` and `outbox list --state` take: each refuses the other's, saying
# which command takes it (`alerts list --state dead` lists no dead letters).
ALERT_STATES: Final = ("firing", "acknowledged", "resolved", "all")
DELIVERY_STATES: Final = ("pending", "delivered", "dead", "stale")


class Commands(Protocol):
    """What ``add_subparsers`` returns, as far as adding a command goes."""

    def add_parser(self, name: str, *args: Any, **kwargs: Any) -> argparse.ArgumentParser: ...


def settings_or_exit(
    *,
    logged: bool = False,
    beside: Callable[[], tuple[Sequence[str], Sequence[str]]] | None = None,
) -> Settings:
    """The whole configuration (``run``, ``check-config``), or exit 2 listing every problem
    (then those ``beside`` finds, which do not need the settings: the outbox's and SQLite's,
    with its warnings after the settings' own),
    followed by a warning about each set ``EXESDB_*`` variable that is no setting, each
    misspelt ``OTEL_*`` one and each setting holding an env file's comment or wholly in quotes
    (``run`` and ``check-config`` give them with their other warnings otherwise): a misspelt
    name is often why a required setting is missing, a comment or quotes why a value is
    refused. ``logged`` (``run``, whose stderr is its log): with ``EXESDB_LOG_FORMAT=json`` in
    the environment the problems and warnings are JSON log records, one each, as every other
    line of that log."""
    from bridge.client_environment import env_file_slips
    from bridge.config import load_settings
    from bridge.settings import known_variables

    try:
        return load_settings()
    except ConfigError as refused:
        exc = refused
        if beside is not None:
            problems, warnings = beside()
            exc = ConfigError([*exc.problems, *problems], warnings=[*exc.warnings, *warnings])
        # A comment or quotes an env file kept in a value are often why that value is refused.
        notes = _unknown_variables() + env_file_slips(os.environ, known_variables())
        if logged:
            _log_refusal(exc, notes)
        say_bad_configuration(exc)
        for note in notes:
            warn(note)
        raise SystemExit(EXIT_USAGE) from None


def client_settings_or_exit(kind: type[Values]) -> Values:
    """What a client command reads (``kind``, one of ``bridge.client_environment``'), or exit 2
    listing each refused value (a bad value in a variable the command does not read does not
    stop it). First a warning on stderr about each set ``EXESDB_*`` variable that is no setting (a
    typo of the one the command needs, often) and each misspelt ``OTEL_*`` one, as ``run`` and
    ``check-config`` give them, and each of its own variables holding an env file's comment or
    wholly in quotes; the names of every setting are read only when some such variable beside
    the command's own is set. Plainly good values are read without pydantic; pydantic judges
    any other (``bridge.client_settings``) and words its refusal."""
    from bridge.client_environment import env_file_slips, read_plainly

    _warn_unknown_variables(frozenset(kind.VARIABLES.values()))
    # A key or token with an env file's comment or quotes in it is refused by the bridge as a
    # wrong one.
    for note in env_file_slips(os.environ, kind.VARIABLES.values()):
        warn(note)
    found = read_plainly(kind, os.environ)
    if found is not None:
        return found
    from bridge.client_settings import read_client_settings

    try:
        return read_client_settings(kind)
    except ConfigError as exc:
        say_bad_configuration(exc)
        raise SystemExit(EXIT_USAGE) from None


def say_bad_configuration(exc: ConfigError) -> None:
    """A bad configuration on stderr: a line, then each problem indented, then each warning."""
    print("exesdb-bridge: bad configuration:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    for note in exc.warnings:
        warn(note)


def warn(note: str) -> None:
    """``note`` as every command's warning: a line of its own on stderr, after the prefix all
    share (``exesdb-bridge: warning: ``), as a refused configuration's line has its own."""
    print(f"exesdb-bridge: warning: {note}", file=sys.stderr)


def _log_refusal(exc: ConfigError, notes: list[str]) -> None:
    """Each problem an error record and each warning a warning record, then exit 2, when the
    raw environment asks for JSON logs (the settings that would say so failed to load);
    otherwise return, for the plain text."""
    import logging

    from bridge.logs import configure_refusal_logging

    if not configure_refusal_logging(os.environ):
        return
    logger = logging.getLogger("bridge")
    for problem in exc.problems:
        logger.error("bad configuration: %s", problem)
    for note in (*exc.warnings, *notes):
        logger.warning("%s", note)
    raise SystemExit(EXIT_USAGE) from None


def _unknown_variables(own: Set[str] = frozenset()) -> list[str]:
    """The warnings of each set variable that is no setting; ``own``: settings not to judge."""
    from bridge.unknown_variables import set_beside

    others = set_beside(os.environ, own)
    if not others:
        return []
    from bridge.settings import unknown_variables

    return list(unknown_variables(others))


def _warn_unknown_variables(own: Set[str] = frozenset()) -> None:
    for note in _unknown_variables(own):
        warn(note)


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


def one_of(
    choices: Sequence[str],
    *,
    one: str = "one of them",
    unset: str | None = None,
    others: Mapping[str, str] | None = None,
) -> Callable[[str], str]:
    """An argparse type for an option taking one of ``choices`` (given as its ``choices`` too,
    which ``--help`` shows): the choice in any letter case, as the settings take theirs
    (``--state Firing`` is ``firing``); any other word is refused naming the choice it most
    resembles (``meant_choice``), as argparse words a refused choice. A comma list is refused
    saying the option takes ``one`` (``one state or all``), not a list, then the choices and
    what the option left out gives (``unset``), rather than naming the one word it resembles.
    A word of ``others`` (another command's choice) is refused in the words it maps to."""
    by_folded = {choice.casefold(): choice for choice in choices}
    elsewhere = {word.casefold(): said for word, said in (others or {}).items()}

    def choice(given: str) -> str:
        found = by_folded.get(given.casefold())
        if found is not None:
            return found
        if (said := elsewhere.get(given.casefold())) is not None:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {given!r}: {said} ({_choose_from(choices)})"
            )
        if "," in given:
            listed = f"invalid choice: {given!r}: {one}, not a list ({_choose_from(choices)})"
            raise argparse.ArgumentTypeError(listed + (f"; {unset}" if unset else ""))
        raise argparse.ArgumentTypeError(refused_choice(given, choices))

    return choice


def refused_choice(
    given: str, choices: Sequence[str], aliases: Mapping[str, str] | None = None
) -> str:
    """argparse's refusal of ``given`` as none of ``choices``, with the choice meant when one is
    alike enough (``meant_choice``): ``invalid choice: 'acknowleged'; did you mean
    'acknowledged'? (choose from 'firing', …)``; the choices alone for a word like none of them
    (``invalid choice: 'fired' (choose from 'firing', …)``: under difflib's cutoff).
    ``aliases`` are other words for some of them, as ``meant_choice`` takes them."""
    meant = meant_choice(given, choices, aliases)
    hint = f"; {meant_said(meant)}" if meant else ""
    return f"invalid choice: {given!r}{hint} ({_choose_from(choices)})"


def _choose_from(choices: Sequence[str]) -> str:
    return f"choose from {', '.join(map(repr, choices))}"


# How alike a word must be to another word for a choice to be taken for it: closer than to a
# choice, since ``aliases`` hold words of their own (``status`` is 0.73 alike ``start``).
_ALIAS_LIKENESS: Final = 0.8


def meant_choice(
    given: str, choices: Sequence[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """The one of ``choices`` that ``given`` most resembles, letter case aside, when one does
    enough (``runn``: ``run``; ``RUN``: ``run``); one ending in ``_`` and ``given`` first
    (``health``: ``ex_esdb_health``). ``aliases`` are other words for some of them
    (``acknowledge``: ``ack``), when ``given`` is spelt as none of them: as one, or nearly
    (``acknowlege``), but not as loosely as a choice (``status`` is not ``start``), nor as
    nearly as two for different choices (``stat``); those for no choice are passed over."""
    folded = given.casefold()
    ending = [choice for choice in choices if choice.casefold().endswith("_" + folded)]
    if len(ending) == 1:
        return ending[0]
    if (meant := word_meant(given, choices)) is not None:
        return meant
    others = {alias.casefold(): word for alias, word in (aliases or {}).items() if word in choices}
    if folded.strip() in others:
        return others[folded.strip()]
    # A word nearly two commands' other words (``stat``: ``start``, ``status``) names neither.
    near = {
        word
        for alias, word in others.items()
        if word_meant(given, [alias], likeness=_ALIAS_LIKENESS)
    }
    return near.pop() if len(near) == 1 else None


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], none: str) -> None:
    """A header and rows in aligned columns (the last one as it is); with no rows, ``none``
    on stderr and nothing on stdout."""
    if not rows:
        print(f"exesdb-bridge: {none}", file=sys.stderr)
        return
    # What a sender wrote (a title, a node, an error) may hold a line break or a right-to-left
    # override: each row stays one line, in the order written.
    rows = [[on_one_line(str(cell)) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [f"{cell:<{width}}" for cell, width in zip(row[:-1], widths, strict=False)]
        print("  ".join([*cells, str(row[-1])]))
