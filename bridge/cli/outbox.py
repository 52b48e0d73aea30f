"""The ``outbox`` command: the local outbox's deliveries listed, dead letters resent or dropped."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from bridge.alert_table import not_shown
from bridge.cli.shared import (
    ALERT_STATES,
    DELIVERY_STATES,
    DEMO_STATE_DIR,
    EXIT_FAILED,
    EXIT_OK,
    Commands,
    at_least_zero,
    client_settings_or_exit,
    one_of,
    print_table,
)

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

    from bridge.receiver_keys import ReceiverKeys
    from bridge.sinks.alerts.outbox import Outbox
    from bridge.sinks.alerts.queue import DeliveryQueue
    from bridge.sinks.alerts.records import Unretryable

__all__ = ["add_outbox_command"]

# How many deliveries `outbox list` shows unless --limit says (0: all of them).
_DEFAULT_LIMIT: Final = 100
# An alert's state given to --state, said to be alerts list's; and alerts list's "all", which
# outbox list has no need of.
_ALERT_STATE: Final = {
    state: f"an alert's state, not a delivery's: exesdb-bridge alerts list --state {state}"
    " lists those alerts"
    for state in ALERT_STATES
} | {"all": "without --state it lists every state"}
# Each column named by its key in `--json` (upper case), so the table and a script agree.
_DELIVERY_COLUMNS: Final = (
    "ID",
    "STATE",
    "ALERTS",
    "ATTEMPTS",
    "URL",
    "CREATED_AT",
    "LAST_ERROR",
)


def add_outbox_command(commands: Commands) -> None:
    """Add ``outbox list``, ``outbox retry`` and ``outbox drop`` to the subcommands of
    ``exesdb-bridge``."""
    outbox = commands.add_parser(
        "outbox",
        help="the local alert outbox (EXESDB_STATE_DIR)",
        description=(
            "List the webhook deliveries of the alert outbox in EXESDB_STATE_DIR (default"
            " ./.exesdb-bridge), send dead-lettered ones again, or drop them."
        ),
    )
    outbox_commands = outbox.add_subparsers(
        dest="outbox_command", required=True, metavar="{list,retry,drop}"
    )
    outbox_list = outbox_commands.add_parser(
        "list",
        help="list deliveries, newest first",
        description=(
            "List the webhook deliveries of the alert outbox in EXESDB_STATE_DIR (default"
            " ./.exesdb-bridge), newest first; a running bridge may keep using it meanwhile."
        ),
    )
    outbox_list.add_argument(
        "--state",
        type=one_of(
            DELIVERY_STATES,
            one="one state",
            unset="without --state it lists every state",
            others=_ALERT_STATE,
        ),
        choices=DELIVERY_STATES,
        help="only deliveries in this state (default: every state)",
    )
    outbox_list.add_argument(
        "--limit",
        type=at_least_zero,
        metavar="N",
        default=_DEFAULT_LIMIT,
        help=f"at most this many, the newest; 0: all (default: {_DEFAULT_LIMIT})",
    )
    outbox_list.add_argument("--json", action="store_true", help="print JSON lines")
    outbox_retry = outbox_commands.add_parser(
        "retry",
        help="send dead-lettered deliveries again",
        description=(
            "Put dead-lettered deliveries of the alert outbox in EXESDB_STATE_DIR (default"
            " ./.exesdb-bridge) back to pending: those named by id, or every one with --all. A"
            " running bridge picks them up within five seconds."
        ),
        # argparse leaves a positional's group out of the usage line: one or the other.
        usage="%(prog)s [-h] (ID ... | --all) [--force]",
    )
    _dead_letters_named(outbox_retry)
    outbox_retry.add_argument(
        "--force",
        action="store_true",
        help=(
            "send also the dead letters retry leaves, each named with why, as they would tell"
            " the receiver an older state or leave an alert firing there: those that fire"
            " alerts whose resolve it was sent since; resolve alerts it was sent firing again"
            " since; are superseded by a later delivery it took; tell of alerts whose later"
            " notification was left out as `stale`; fire alerts resolved since of which nothing"
            " is to follow; and one named without the dead-lettered resolve of an alert it fires"
        ),
    )
    _add_drop(outbox_commands)
    outbox.set_defaults(handler=_outbox, command_names=tuple(outbox_commands.choices))


def _dead_letters_named(command: argparse.ArgumentParser) -> Any:
    """Add the dead letters ``command`` acts on: ids, or ``--all``, one or the other (ids
    beside --all would be ignored: a usage error instead); the group, for one more way."""
    which = command.add_mutually_exclusive_group()
    which.add_argument(
        "ids",
        nargs="*",
        default=[],
        type=_delivery_id,
        metavar="ID",
        help="a dead-lettered delivery's id, as `outbox list` shows it",
    )
    which.add_argument("--all", action="store_true", help="every dead-lettered delivery")
    return which


def _add_drop(outbox_commands: Commands) -> None:
    """Add ``outbox drop``: dead letters deleted, by id, all, or those of one receiver."""
    outbox_drop = outbox_commands.add_parser(
        "drop",
        help="delete dead-lettered deliveries",
        description=(
            "Delete dead-lettered deliveries from the alert outbox in EXESDB_STATE_DIR (default"
            " ./.exesdb-bridge), as EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS would: those named by id,"
            " every one with --all, or those of one receiver with --receiver (one no longer"
            " configured, such as a mistyped URL). Never a pending or delivered one. Their"
            " alerts are not sent to that receiver again until they change. A running bridge"
            " counts them gone within a second."
        ),
        usage="%(prog)s [-h] (ID ... | --all | --receiver ORIGIN)",
    )
    which = _dead_letters_named(outbox_drop)
    which.add_argument(
        "--receiver",
        type=_receiver_named,
        metavar="ORIGIN",
        help=(
            "the dead letters of this receiver: its URL as configured, its key as `outbox"
            " list` shows it (one with #digest, or url_file:PATH), or an origin"
            " (https://hooks.example:8443: every receiver there)"
        ),
    )


def _delivery_id(text: str) -> str:
    """An argparse type: an ``ID`` that is not empty or blank (an unset shell variable,
    ``"$ID"``): no delivery has it, and the outbox would be opened only to say so."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} names no delivery: give its id, as `exesdb-bridge outbox list` shows it"
        )
    return text


def _receiver_named(text: str) -> str:
    """An argparse type: a ``--receiver`` that is not empty or blank (an unset shell variable):
    empty, it was taken for no --receiver at all, and the command asked for one."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} names no receiver: give its URL as configured, its key as `exesdb-bridge"
            " outbox list` shows it, or an origin (https://hooks.example:8443)"
        )
    return text


def _state_dir_said(state_dir: str) -> str:
    """``state_dir`` as an error about the outbox names it: as set, or, EXESDB_STATE_DIR unset,
    as the default it is (not as if someone had set it so)."""
    import os

    from bridge.probe_settings import variable_value

    if variable_value(os.environ, "EXESDB_STATE_DIR") is None:
        return f"unset, so the default {state_dir!r}"
    return f"now {state_dir!r}"


def _no_outbox_hint(state_dir: str) -> str:
    """What to do when there is no outbox in ``state_dir``: set EXESDB_STATE_DIR to the bridge's
    state directory, said with what ``state_dir`` is when it is no folder (the outbox file
    itself, given for its folder: named with the setting meant)."""
    from pathlib import Path

    from bridge.sinks.alerts.outbox import FILE_NAME

    said = _state_dir_said(state_dir)
    given = Path(state_dir)
    if given.name == FILE_NAME and given.is_file():
        return (
            f"EXESDB_STATE_DIR names the outbox file itself ({said}): set it to the folder"
            f" holding it, EXESDB_STATE_DIR={given.parent}"
        )
    if given.is_file():
        said += ", a file, not a folder"
    elif not given.exists():
        said += ", which does not exist"
    return f"set EXESDB_STATE_DIR to the bridge's state directory ({said})"


def _not_an_outbox_hint(state_dir: str, exc: BaseException) -> str:
    """What to do when the outbox file could not be opened (``exc``) for no reason the system's
    words explain: the wrong EXESDB_STATE_DIR most often, or a file there that is no outbox (not
    SQLite's, another program's), which the bridge refuses too."""
    import sqlite3

    hint = f"set EXESDB_STATE_DIR to the bridge's state directory ({_state_dir_said(state_dir)})"
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        hint += ", or, if it is that, move the file out of the way (the bridge refuses it too)"
    return hint


def _demo_hint() -> str:
    """Where `run --demo`'s outbox is, when EXESDB_STATE_DIR is unset and the demo made one: it
    keeps its state in a folder of its own, so a person who ran it finds nothing in the default."""
    import os
    from pathlib import Path

    from bridge.probe_settings import variable_value
    from bridge.sinks.alerts.outbox import FILE_NAME

    if variable_value(os.environ, "EXESDB_STATE_DIR") is not None:
        return ""
    if not (Path(DEMO_STATE_DIR) / FILE_NAME).exists():
        return ""
    demo = DEMO_STATE_DIR
    return f"; `run --demo` keeps its own in {demo}: set EXESDB_STATE_DIR={demo}"


def _outbox(args: argparse.Namespace) -> int:
    import os
    import sqlite3
    from pathlib import Path

    from bridge.client_environment import OutboxValues
    from bridge.receiver_keys import receiver_label
    from bridge.sinks.alerts.outbox import FILE_NAME, Outbox, refuse_unusable, unopenable_hint
    from bridge.sinks.alerts.records import DeliveryState
    from bridge.sinks.alerts.tables import CutShort

    # Usage errors as argparse words them (the command's usage, exit 2), before the settings.
    if args.outbox_command == "retry" and not args.all and not args.ids:
        args.usage_parser.error("give delivery ids (ID ...) or --all")
    if args.outbox_command == "drop" and not (args.all or args.ids or args.receiver):
        args.usage_parser.error("give delivery ids (ID ...), --all or --receiver ORIGIN")
    settings = client_settings_or_exit(OutboxValues)
    path = Path(settings.state_dir) / FILE_NAME
    try:
        # Raises for a folder on the way this user may not search, for a file it may not read
        # and write, and for a folder or a FIFO there, where SQLite would say only "unable to
        # open database file" or "disk I/O error".
        refuse_unusable(path)
        outbox = Outbox(path) if path.exists() else None
    except (OSError, sqlite3.Error) as exc:
        # A file that is no SQLite database, or one this user may not open: said in the system's
        # words with what to do, not as a traceback.
        if isinstance(exc, sqlite3.NotSupportedError):  # this Python's SQLite, too old
            print(f"exesdb-bridge: cannot open the alert outbox: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(exc, PermissionError):
            # The bridge makes its state its user's alone (0700, 0600).
            hint = (
                f"this user (uid {os.geteuid()}) may not read and write it: run the command as"
                " the user the bridge runs as (the file's owner), or as root"
            )
        elif isinstance(exc, CutShort):
            hint = ""  # its words say what to do, as the bridge's start gives them
        else:
            hint = unopenable_hint(settings.state_dir, exc) or _not_an_outbox_hint(
                settings.state_dir, exc
            )
        print(
            f"exesdb-bridge: cannot open the alert outbox at {path.absolute()}: {exc}"
            + (f"; {hint}" if hint else ""),
            file=sys.stderr,
        )
        return EXIT_FAILED
    if outbox is None:
        # Absolute: the default state directory is relative to the folder the command runs in.
        print(
            f"exesdb-bridge: no alert outbox at {path.absolute()}:"
            f" {_no_outbox_hint(settings.state_dir)}{_demo_hint()}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        if args.outbox_command == "list":
            listed = outbox.queue.deliveries(args.state, args.limit or None)  # 0: all
            summaries = [delivery.summary() for delivery in listed]
            dead_ids = [d.id for d in listed if d.state is DeliveryState.DEAD]
            superseded = outbox.dead_letters.superseded(dead_ids)
            for summary in summaries:
                # A field of its own, not a state: --state dead lists them all the same.
                summary["superseded"] = (
                    summary["id"] in superseded if summary["state"] == "dead" else None
                )
                # Webhook URLs often carry tokens in their path or query; receiver keys never.
                summary["url"] = receiver_label(summary["url"])
            if args.json:
                for summary in summaries:
                    print(json.dumps(summary))
            else:
                rows = [_delivery_row(summary) for summary in summaries]
                # The file named: a bridge run with another EXESDB_STATE_DIR has its own.
                kept = f"{args.state} deliveries" if args.state else "deliveries"
                print_table(
                    _DELIVERY_COLUMNS, rows, f"no {kept} in the alert outbox at {path.absolute()}"
                )
            if note := _left_out(outbox.queue, args.state, args.limit, len(listed)):
                print(f"exesdb-bridge: {note}", file=sys.stderr)
            if args.state in (None, DeliveryState.PENDING.value) and (
                note := _ungrouped(outbox.queue)
            ):
                print(f"exesdb-bridge: {note}", file=sys.stderr)
            return EXIT_OK
        if args.outbox_command == "drop":
            return _drop(outbox, args, path.absolute())
        ids = None if args.all else args.ids
        if ids is not None and (wrong := _not_retryable(outbox.queue, ids, path.absolute())):
            # All or nothing: an id that names no dead letter is a mistake (a typo, the wrong
            # line of `outbox list`), and the others are left until the command is given right.
            for problem in wrong:
                print(f"exesdb-bridge: {problem}", file=sys.stderr)
            if dead := len(set(ids)) - len(wrong):
                print(
                    f"exesdb-bridge: nothing retried, not even the {dead} dead-lettered"
                    f" deliver{'y' if dead == 1 else 'ies'} named: retry without the ids above",
                    file=sys.stderr,
                )
            return EXIT_FAILED
        left = outbox.dead_letters.unretryable(ids, force=args.force)
        for delivery in left:
            print(f"exesdb-bridge: {_left_why(delivery)}", file=sys.stderr)
        retried = outbox.dead_letters.retry(time.time(), ids, leave=[d.delivery_id for d in left])
        count = len(retried)
        print(f"{count} dead-lettered deliver{'y' if count == 1 else 'ies'} back to pending")
        for was, now in retried.items():
            if now != was:  # its alerts changed since: `outbox list` shows it by its new id
                print(f"{was} is now {now}: its alerts told as they stand now")
        # A superseded one is as good as delivered: left out of --all as a delivered one is,
        # a failure only when named, as naming a delivered one is; so is one each of whose
        # alerts another replica told the receiver of, or resolved with nothing to follow.
        failed = [d for d in left if ids is not None or not d.superseded]
        return EXIT_FAILED if failed else EXIT_OK
    except sqlite3.OperationalError as exc:
        # Its change rolled back whole: said in a line, not a traceback.
        print(f"exesdb-bridge: {_unchanged(path.absolute(), exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        outbox.close()


def _unchanged(path: Path, exc: sqlite3.OperationalError) -> str:
    """What to say when reading or changing the outbox at ``path`` failed (``exc``): nothing was
    changed, and, for a lock held past SQLite's wait (``database is locked``), who may hold it."""
    import sqlite3

    said = f"the alert outbox at {path} could not be read or changed ({exc}): nothing was changed"
    if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (
            f"{said}; another process held it locked past the 10 s this waits (a bridge stuck"
            " writing to it, another outbox command, or a program with a transaction open on"
            " it, such as an sqlite3 shell): try again once it lets go"
        )
    return said


def _left_out(queue: DeliveryQueue, state: str | None, limit: int, listed: int) -> str | None:
    """What ``outbox list --limit limit`` says on stderr of the deliveries it left out, in the
    words of ``alerts list``; None when it listed every one."""
    if not limit or listed < limit:
        return None
    # Counted after the list: the running bridge may have added some since.
    left = queue.count(state) - listed
    if left <= 0:
        return None
    return not_shown(f"{left} of {left + listed} deliveries", listed, "newest")


def _ungrouped(queue: DeliveryQueue) -> str | None:
    """What ``outbox list`` says on stderr of the notifications waiting to be made a delivery
    (the bridge stopped or killed within their grouping window): no row of the list, though
    the bridge's start counts them pending; None when there are none."""
    waiting = queue.depth().queued
    if not waiting:
        return None
    return (
        f"{waiting} alert notification(s) not yet in a delivery, not listed: waiting out the"
        " grouping window (EXESDB_WEBHOOK_GROUP_WAIT_MS), they are sent by the bridge that"
        " runs on this EXESDB_STATE_DIR"
    )


def _not_retryable(
    queue: DeliveryQueue, ids: Sequence[str], where: Path, *, dropping: bool = False
) -> list[str]:
    """Why each named delivery that is not dead-lettered cannot be retried (or, ``dropping``,
    dropped: said with why only dead letters are); an unknown one names the outbox file looked
    in (``where``): the right id in another EXESDB_STATE_DIR's is a common slip."""
    from bridge.sinks.alerts.records import DeliveryState

    states = {d.id: d.state for d in queue.deliveries(ids=ids, limit=None)}  # every one named
    problems = []
    dead: list[str] | None = None  # the dead letters' ids, read for the first unknown one
    for delivery_id in dict.fromkeys(ids):
        state = states.get(delivery_id)
        if state is None:
            if dead is None:
                dead = [d.id for d in queue.deliveries(DeliveryState.DEAD.value, limit=None)]
            problems.append(
                f"no delivery {delivery_id!r} in the alert outbox at {where} (see `outbox list`)"
                + _whole_ids(delivery_id, dead)
            )
        elif state is not DeliveryState.DEAD:
            why = f": {_KEPT_BECAUSE.get(state.value, '')}" if dropping else ""
            problems.append(f"delivery {delivery_id!r} is {state}, not dead-lettered{why}")
    return problems


def _whole_ids(given: str, dead: Sequence[str]) -> str:
    """For an id no delivery has, the dead letters whose ids start with it (an id cut short,
    as git's and docker's are given): named when one, counted when several; else nothing. Not
    taken for them: the command is all or nothing, and a short id may name another tomorrow."""
    folded = given.strip().casefold()
    starting = [delivery_id for delivery_id in dead if folded and delivery_id.startswith(folded)]
    if len(starting) == 1:
        return f"; did you mean {starting[0]!r}? (ids are given whole)"
    if starting:
        return f"; {len(starting)} dead letters' ids start with it: give one whole"
    return ""


# Why `outbox drop` refuses a delivery named in each state but dead: what it is still for.
_KEPT_BECAUSE: Final = {
    "pending": "it is still being sent, and `outbox drop` deletes dead letters only",
    "delivered": (
        "its receiver took it, and it is kept a day for its alerts' pages; `outbox drop`"
        " deletes dead letters only"
    ),
    "stale": (
        "it was left out as another replica told its receiver newer, and is forgotten as a"
        " delivered one is; `outbox drop` deletes dead letters only"
    ),
}


def _drop(outbox: Outbox, args: argparse.Namespace, where: Path) -> int:
    """``outbox drop``: delete the dead letters named (all or nothing: a name that is no dead
    letter is a mistake, as for ``outbox retry``), every one, or those of ``--receiver``; say
    how many, by receiver (shown safely, never its path or credentials)."""
    from bridge.sinks.alerts.records import DeliveryState

    ids: Sequence[str] | None = None
    if args.ids:
        if wrong := _not_retryable(outbox.queue, args.ids, where, dropping=True):
            for problem in wrong:
                print(f"exesdb-bridge: {problem}", file=sys.stderr)
            if dead := len(set(args.ids)) - len(wrong):
                print(
                    f"exesdb-bridge: nothing dropped, not even the {dead} dead-lettered"
                    f" deliver{'y' if dead == 1 else 'ies'} named: drop without the ids above",
                    file=sys.stderr,
                )
            return EXIT_FAILED
        ids = args.ids
    elif args.receiver is not None:
        dead_letters = outbox.queue.deliveries(DeliveryState.DEAD.value, None)
        from bridge.receiver_keys import ReceiverKeys

        # A URL given whole is named by the key the bridge gives it (the outbox's own digest).
        named = _Receiver(args.receiver, ReceiverKeys(outbox.receiver_secret))
        ids = [d.id for d in dead_letters if named.has(d.url)]
        if not ids:
            from bridge.redaction import redact_urls

            shown = sorted({_receiver_shown(d.url) for d in dead_letters})
            given = redact_urls(args.receiver)  # a URL pasted from the settings, its token too
            print(
                f"exesdb-bridge: no dead letter of receiver {given!r} in the alert outbox"
                f" at {where}: "
                + (f"those with dead letters: {', '.join(shown)}" if shown else "it holds none"),
                file=sys.stderr,
            )
            return EXIT_FAILED
    owed = outbox.dead_letters.owed(ids)  # read first: gone with the dead letters
    dropped = outbox.dead_letters.drop(ids)
    print(_dropped_said(dropped))
    for key, alert_ids in owed.items():
        if key not in dropped.values():
            continue  # taken up or retried meanwhile by the running bridge: nothing dropped
        # The re-notification promise (docs/alerts.md, "sent again while it fires") is kept
        # for dead letters only: said, so that dropping a receiver's still in use is a choice.
        print(
            f"exesdb-bridge: {_receiver_shown(key)} is configured and is not sent again the"
            f" open alerts of what was dropped ({_some_of(alert_ids)}): it hears of them at"
            " their next change (`outbox retry` would have sent them now)",
            file=sys.stderr,
        )
    return EXIT_OK


# The most alert ids a line names: a receiver's hundreds would make it a page.
_NAMED_AT_MOST: Final = 10


def _some_of(alert_ids: Sequence[str]) -> str:
    """``alert_ids`` quoted, the first ``_NAMED_AT_MOST`` of them, then how many more."""
    named = ", ".join(map(repr, alert_ids[:_NAMED_AT_MOST]))
    more = len(alert_ids) - _NAMED_AT_MOST
    return named if more <= 0 else f"{named} and {more} more"


def _receiver_shown(key: str) -> str:
    """A receiver's key as ``outbox drop`` names it: ``outbox list``'s label, without user info
    (a user name may be a token)."""
    from bridge.receiver_keys import receiver_label

    return receiver_label(key, userinfo=False)


def _origin(text: str) -> str:
    """The origin of a URL or of a receiver's key (``https://hooks.example:8443``): no user
    info, path or digest."""
    from bridge.redaction import safe_url

    return safe_url(text.partition("#")[0], userinfo=False).removesuffix("/…")


class _Receiver:
    """The receiver ``--receiver`` names: by its key or label as shown, by its URL as
    configured (one with a path or query: that receiver alone, by the key ``keys`` give it), or
    by origin (every receiver there)."""

    def __init__(self, given: str, keys: ReceiverKeys) -> None:
        from bridge.redaction import safe_url

        self.given = given = given.strip()
        shown = safe_url(given, userinfo=False)
        # More than an origin (a path or query, which safe_url shows as "/…", as `outbox list`
        # shows a key's: that form names the origin): the URL as the settings give it, whose
        # key names one receiver where several share the origin; or a key's label (#digest)
        # that matched none, which names no other.
        whole = not shown.startswith("<") and (
            "#" in given or (shown.endswith("/…") and given != shown)
        )
        self.key = keys.key(url=given) if whole else None
        # None: named by key alone (a url_file receiver, whose URL is a secret; no URL at all).
        self.origin = None if whole or shown.startswith("<") else _origin(given)

    def has(self, key: str) -> bool:
        """Whether outbox key ``key`` is this receiver's."""
        from bridge.receiver_keys import FILE_KEY_PREFIX, receiver_label

        given = self.given
        if given in (key, receiver_label(key), _receiver_shown(key)) or key == self.key:
            return True
        if key.startswith(FILE_KEY_PREFIX) or self.origin is None:
            return False  # a url_file receiver is named by its key alone: its URL is a secret
        return _origin(key) == self.origin


def _dropped_said(dropped: dict[str, str]) -> str:
    """What ``outbox drop`` prints: how many dead letters it deleted, and how many of each
    receiver."""
    count = len(dropped)
    said = f"{count} dead-lettered deliver{'y' if count == 1 else 'ies'} dropped"
    by_receiver: dict[str, int] = {}
    for key in dropped.values():
        shown = _receiver_shown(key)
        by_receiver[shown] = by_receiver.get(shown, 0) + 1
    if not by_receiver:
        return said
    return said + ": " + ", ".join(f"{n} of {shown}" for shown, n in sorted(by_receiver.items()))


def _left_why(delivery: Unretryable) -> str:
    """Why ``outbox retry`` leaves a dead letter as it is."""
    from bridge.receiver_keys import receiver_label

    if delivery.configured:
        receiver = receiver_label(delivery.receiver)
        why = []
        if delivery.superseded and not (
            delivery.resolved or delivery.refired or delivery.left_out or delivery.resolved_untold
        ):
            why.append(
                f"superseded: {receiver} took a later delivery of each of its alerts, so sent"
                " again it would tell it an older state of them after the newer one"
            )
        if delivery.resolved:
            resolved = ", ".join(
                f"{alert_id!r} resolved at {at}" for alert_id, at in delivery.resolved
            )
            why.append(
                f"it fires alerts whose resolve {receiver} was sent since ({resolved}), so sent"
                " again it would leave them firing there for good"
            )
        if delivery.refired:
            refired = ", ".join(repr(alert_id) for alert_id in delivery.refired)
            why.append(
                f"it resolves alerts {receiver} was sent firing again since ({refired}), so sent"
                " again it would show them resolved there while they fire"
            )
        if delivery.left_out:
            left_out = ", ".join(repr(alert_id) for alert_id in delivery.left_out)
            why.append(
                f"the latest notification to {receiver} of alerts it tells of ({left_out}) was"
                " left out as stale since (another replica notified a newer state of them, or,"
                " to a receiver not sent resolves, they resolved), so sent again it would tell"
                " it an older state last"
            )
        if delivery.resolved_untold:
            gone = ", ".join(repr(alert_id) for alert_id in delivery.resolved_untold)
            why.append(
                f"it fires alerts resolved since ({gone}) of which nothing is to follow it to"
                f" {receiver} (another replica resolved them, or the receiver is not sent"
                " resolves), so sent again it would leave them firing there for good"
            )
        if delivery.resolves_dead:
            waiting = ", ".join(
                f"{alert_id!r} in delivery {resolve!r}"
                for alert_id, resolve in delivery.resolves_dead
            )
            with_them = " ".join(
                dict.fromkeys([delivery.delivery_id, *(r for _, r in delivery.resolves_dead)])
            )
            why.append(
                f"the resolves of alerts it fires are dead-lettered too ({waiting}), so sent alone"
                f" it would leave them firing at {receiver}: retry it with them"
                f" (`exesdb-bridge outbox retry {with_them}`)"
            )
        return (
            f"delivery {delivery.delivery_id!r} left dead-lettered: {'; '.join(why)};"
            " --force sends it all the same"
        )
    return (
        f"delivery {delivery.delivery_id!r} left dead-lettered: its receiver"
        f" {receiver_label(delivery.receiver)} is not among those the bridge last started with"
        " (EXESDB_WEBHOOK_URLS, EXESDB_WEBHOOK_CONFIG_FILE), so no worker would send it;"
        " configure the receiver again and restart the bridge, then retry; if it is not to be"
        " configured again, `exesdb-bridge outbox drop --receiver"
        f" '{receiver_label(delivery.receiver, userinfo=False)}'` deletes it"
    )


def _delivery_row(summary: dict[str, Any]) -> tuple[str, ...]:
    values = [summary[column.lower()] for column in _DELIVERY_COLUMNS]
    # A dead letter's state says, after a comma (one word still), whether it is superseded and
    # whether its alerts were queued again; --json gives both as fields of their own.
    notes = (["superseded"] if summary["superseded"] else []) + (
        ["renotified"] if summary["renotified_at"] else []
    )
    values[_DELIVERY_COLUMNS.index("STATE")] = ",".join([summary["state"], *notes])
    return tuple("" if value is None else str(value) for value in values)
