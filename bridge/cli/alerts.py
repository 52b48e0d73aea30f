"""The ``alerts`` command: list or acknowledge a running bridge's alerts through its admin API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from bridge.alert_table import (
    ALERT_COLUMNS,
    DEFAULT_LIMIT,
    NO_OPEN_ALERTS,
    OPEN_STATES,
    alert_row,
    asked_per_state,
    lease_moved,
    lease_note,
    merged,
    newest,
)
from bridge.cli.remote import (
    admin_token_or_exit,
    bridge_json,
    client_options,
    say_refused,
    target_or_exit,
)
from bridge.cli.shared import (
    ALERT_STATES,
    DELIVERY_STATES,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    at_least_zero,
    client_settings_or_exit,
    one_of,
    print_table,
)
from bridge.redaction import safe_url

if TYPE_CHECKING:
    from bridge.cli.client import Target

__all__ = ["add_alerts_command"]

# A delivery's state given to --state: said to be outbox list's.
_DELIVERY_STATE: Final = {
    state: f"a webhook delivery's state, not an alert's: exesdb-bridge outbox list --state {state}"
    " lists those deliveries"
    for state in DELIVERY_STATES
}
# When the answers for the states disagree on the lease, no one answer names whom to ask.
_LEASE_MOVED: Final = (
    "the work-queue lease moved to or from the replica at {url} while it listed its alerts:"
    " they may be missing or out of date; list them again"
)


def _none_listed(state: str | None) -> str:
    """What ``alerts list`` says when it lists none: in the state asked for, so that no firing
    alert is hidden behind a bare "no alerts" answering ``--state resolved``."""
    if state is None:
        return NO_OPEN_ALERTS
    return "no alerts" if state == "all" else f"no {state} alerts (--state all lists every state)"


def add_alerts_command(commands: Commands) -> None:
    """Add ``alerts list`` and ``alerts ack`` to the subcommands of ``exesdb-bridge``."""
    alerts = commands.add_parser(
        "alerts",
        help="list or acknowledge a running bridge's alerts",
        description=(
            "List or acknowledge a running bridge's alerts through its admin API, with"
            " EXESDB_ADMIN_TOKEN, the admin token the bridge runs with."
        ),
    )
    alerts_commands = alerts.add_subparsers(
        dest="alerts_command", required=True, metavar="{list,ack}"
    )
    alerts_list = alerts_commands.add_parser(
        "list",
        help="list alerts",
        description=(
            "List a running bridge's alerts, the most recently changed first, through its admin"
            " API, with EXESDB_ADMIN_TOKEN, the admin token the bridge runs with."
        ),
    )
    alerts_list.add_argument(
        "--state",
        type=one_of(
            ALERT_STATES,
            one="one state or 'all'",
            unset="without --state it lists firing and acknowledged",
            others=_DELIVERY_STATE,
        ),
        choices=ALERT_STATES,
        help="only alerts in this state, or all (default: firing and acknowledged)",
    )
    alerts_list.add_argument(
        "--limit",
        type=at_least_zero,
        metavar="N",
        default=DEFAULT_LIMIT,
        help=f"at most this many, the most recently changed; 0: all (default: {DEFAULT_LIMIT})",
    )
    alerts_ack = alerts_commands.add_parser(
        "ack",
        help="acknowledge an alert",
        description=(
            "Acknowledge one of a running bridge's alerts through its admin API, with"
            " EXESDB_ADMIN_TOKEN, the admin token the bridge runs with."
        ),
    )
    alerts_ack.add_argument(
        "alert_id",
        type=_alert_id,
        metavar="ALERT_ID",
        help="the alert's id, as alerts list shows it",
    )
    alerts_ack.add_argument(
        "--by", type=_who, required=True, metavar="NAME", help="who acknowledges"
    )
    alerts_ack.add_argument("--note", type=_some("note", "--note"), help="a note")
    alerts_ack.add_argument(
        "--resolution",
        type=_some("resolution", "--resolution"),
        help="how it was resolved (also resolves it)",
    )
    alerts_ack.add_argument(
        "--since",
        type=_since,
        metavar="TIME",
        help=(
            "only the alert's episode firing since TIME (its SINCE, as alerts list shows it): if"
            " it resolved and fired again since, nothing is acknowledged"
        ),
    )
    for sub in (alerts_list, alerts_ack):
        client_options(sub)
        sub.add_argument("--json", action="store_true", help="print JSON")
    alerts.set_defaults(handler=_alerts, command_names=tuple(alerts_commands.choices))


def _alert_id(text: str) -> str:
    """An argparse type: ``ALERT_ID``, not empty (an unset shell variable, ``"$ID"``): no alert
    has that id, and sent it would ask for a path the bridge does not serve, a bare 404."""
    if not text:
        raise argparse.ArgumentTypeError(
            "'' names no alert: give the alert's id, as exesdb-bridge alerts list shows it"
        )
    return text


def _who(text: str) -> str:
    """An argparse type: ``--by``, a name that is not empty or blank (the bridge would refuse it
    as ``ack_by``: said here, before anything is sent, as a usage error)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names no one: give who acknowledges, --by NAME")
    return text


def _some(what: str, option: str) -> Callable[[str], str]:
    """An argparse type: ``option``'s text, not empty (an unset shell variable, ``"$NOTE"``):
    the bridge refuses an empty one, as a usage error here, before anything is sent."""

    def some(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"'' is no {what}: give one, or leave {option} out")
        return text

    return some


def _since(text: str) -> str:
    """An argparse type: ``--since``, a time as ``alerts list`` shows it, or in any RFC 3339
    form the bridge reads (``2026-12-05t11:40:00z``, an offset); one that is none is a usage
    error naming the option, before anything is sent (the bridge would refuse it naming its own
    field, ``starts_at``); one missing only its UTC offset, or its offset's minutes (ISO 8601's
    ``+02``), is told what to add."""
    from bridge.messages.timestamps import parse_timestamp

    if parse_timestamp(text) is not None:
        return text
    if parse_timestamp(text + "Z") is not None:
        # A local time, whose zone only the user knows: taken as UTC it could name another episode.
        fault = (
            f"{text!r} has no UTC offset: add Z if it is UTC ({text}Z), else its time zone's"
            f" offset (such as {text}+01:00)"
        )
    elif parse_timestamp(text + ":00") is not None:  # ISO 8601's +02, which RFC 3339 has not
        fault = f"{text!r} has an offset without its minutes: write it as RFC 3339 does ({text}:00)"
    elif text[-5:-4] in ("+", "-") and parse_timestamp(f"{text[:-2]}:{text[-2:]}") is not None:
        # ISO 8601's basic +0100 (strftime's %z), which RFC 3339 has not either.
        fault = (
            f"{text!r} has an offset without its colon: write it as RFC 3339 does"
            f" ({text[:-2]}:{text[-2:]})"
        )
    elif text.endswith(" UTC") and parse_timestamp(text.removesuffix(" UTC") + "Z") is not None:
        # As the status page shows a time, to the second: no episode's start is named so.
        shown = text.removesuffix(" UTC").replace(" ", "T")
        fault = (
            f"{text!r} is a time as the status page shows it, to the second: give the alert's"
            f" SINCE as alerts list shows it, to the millisecond (such as {shown}.123Z)"
        )
    else:
        fault = (
            f"{text!r} is no time: give the alert's SINCE as alerts list shows it (RFC 3339,"
            " such as 2026-12-05T11:40:00.123Z)"
        )
    raise argparse.ArgumentTypeError(fault)


def _alerts(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from bridge.client_environment import AdminClientValues

    settings = client_settings_or_exit(AdminClientValues)
    token = admin_token_or_exit(settings, "alerts")

    bridge = target_or_exit(args, settings)
    headers = bridge.admin_headers(token)
    calls: list[tuple[str, dict[str, str] | None, bytes | None]]
    asked = asked_per_state(args.limit) if args.alerts_command == "list" else 0
    if args.alerts_command == "list":
        path, key = "/v1/alerts", "alerts"
        states = OPEN_STATES if args.state is None else (args.state,)
        calls = [
            ("GET", {"limit": str(asked)} | ({} if state == "all" else {"state": state}), None)
            for state in states
        ]
    else:
        body = {"ack_by": args.by, "ack_note": args.note, "resolution": args.resolution}
        if args.since is not None:  # left out otherwise: a bridge of before it refuses the field
            body["starts_at"] = args.since
        path, key = f"/v1/alerts/{quote(args.alert_id, safe='')}/ack", "alert"
        headers["Content-Type"] = "application/json"
        calls = [("POST", None, json.dumps(body).encode())]
    answers = []
    for method, params, data in calls:
        status, text = bridge.request(method, path, headers=headers, params=params, body=data)
        if status != 200:
            say_refused(bridge, path, status, text)
            if args.alerts_command == "ack" and status == 404:
                _say_unknown(bridge, headers, args.alert_id, text)
            return EXIT_USAGE if _option_refused(status, text) else EXIT_FAILED
        if (one := bridge_json(text, key)) is None or not _shaped(one, key):
            said = bridge.not_a_bridge(path, "its alerts as JSON")
            print(f"exesdb-bridge: {said}", file=sys.stderr)
            return EXIT_FAILED
        answers.append(one)
    answer = merged(answers) if args.alerts_command == "list" else answers[0]
    left_out = None
    if args.alerts_command == "list":
        full = any(len(one["alerts"]) >= asked for one in answers)
        answer["alerts"], left_out = newest(answer["alerts"], args.limit, asked=asked, full=full)
    if args.json:
        print(json.dumps(answer, indent=2))
    elif args.alerts_command == "list":
        rows = [alert_row(alert) for alert in answer["alerts"]]
        print_table(ALERT_COLUMNS, rows, _none_listed(args.state))
    else:
        print_table(ALERT_COLUMNS, [alert_row(answer["alert"])], "")
    if left_out is not None:
        print(f"exesdb-bridge: {left_out}", file=sys.stderr)
    if args.alerts_command == "list" and (note := _lease_note(bridge, answers, answer)):
        print(f"exesdb-bridge: {note}", file=sys.stderr)
    if args.alerts_command == "ack" and (note := _ack_unchanged(args, answer["alert"])):
        print(f"exesdb-bridge: {note}", file=sys.stderr)
    return EXIT_OK


# What the command reads of each alert the bridge lists (``GET /v1/alerts``), and of the one it
# answers an ack with (docs/http-api.md#alerts), with the labels and annotations it shows.
_LISTED: Final = frozenset(
    {"alert_id", "state", "level", "severity", "labels", "annotations", "starts_at", "updated_at"}
)
_ACKED: Final = _LISTED | {"ack_by", "ack_note", "ack_at", "resolution"}


def _shaped(answer: dict[str, Any], key: str) -> bool:
    """Whether ``answer`` holds its alerts (``key``: ``alerts``, a list, or ``alert``, one) in
    the bridge's shape, each with the fields the command reads: another server's JSON holding
    the key ended the command in a traceback."""
    alerts = answer[key] if key == "alerts" else [answer[key]]
    fields = _LISTED if key == "alerts" else _ACKED
    return isinstance(alerts, list) and all(
        isinstance(alert, dict)
        and alert.keys() >= fields
        and isinstance(alert["alert_id"], str)
        and isinstance(alert["labels"], dict)
        and alert["labels"].keys() >= {"alertname", "node"}
        and isinstance(alert["annotations"], dict)
        and "title" in alert["annotations"]
        for alert in alerts
    )


# What the command line gives an ack (ALERT_ID, --by, --note, --resolution, --since): one the
# bridge refuses as invalid (an id holding a control character, a --by over 200 characters or
# holding a tab, a note too long) is the command line's fault, a usage error, as the checks made
# here before sending are.
_OPTION_FIELDS: Final = frozenset({"alert_id", "ack_by", "ack_note", "resolution", "starts_at"})


def _option_refused(status: int, text: str) -> bool:
    """Whether the bridge refused (400 ``invalid``) the value of one of the command's options."""
    refused = bridge_json(text, "error")
    return (
        status == 400
        and refused is not None
        and refused["error"] == "invalid"
        and isinstance(field := refused.get("field"), str)
        and field in _OPTION_FIELDS
    )


def _say_unknown(bridge: Target, headers: dict[str, str], alert_id: str, refusal: str) -> None:
    """After an ack's 404: for an alert the bridge does not know (``unknown_alert``), the ids it
    knows spelt alike (``DISK1``, ``disk-1`` for ``disk1``), else the command listing them; and
    on a Redis replica without the work-queue lease, which knows only the alerts it held
    (unknown here even while firing at the holder), what ``alerts list`` says of it."""
    listed = _asked_again(bridge, headers)
    refused = bridge_json(refusal, "error")
    if refused is not None and refused["error"] == "unknown_alert" and listed is not None:
        known = [
            alert["alert_id"]
            for alert in listed["alerts"]
            if isinstance(alert, dict) and isinstance(alert.get("alert_id"), str)
        ]
        print(f"exesdb-bridge: {_ids_alike(alert_id, known)}", file=sys.stderr)
    if note := _not_the_holder(bridge, listed):
        print(f"exesdb-bridge: {note}", file=sys.stderr)


# The most alerts an unknown id is compared with, the most recently changed (the API's default
# page): past it, alerts list --state all lists them.
_COMPARED: Final = 1000
# How many ids spelt equally alike an unknown one are named: more would be a list, not a guess.
_MOST_ALIKE: Final = 3
# difflib's cutoff, as the commands' other guesses take it (bridge.choices): farther would point
# the wrong way.
_LIKENESS: Final = 0.6


def _ids_alike(alert_id: str, known: list[str]) -> str:
    """What to say of ``alert_id``, which the bridge does not know, given the ids it does
    (``known``, most recently changed first): those spelt most alike (letter case aside;
    several only when equally alike, ``disk`` for ``disk1`` and ``disk2``, in that order), else
    where to find its alerts."""
    import difflib  # here: only an unknown id needs it

    if not known:
        return "the bridge knows no alert of any state"
    by_folded: dict[str, str] = {}
    for known_id in known:  # most recently changed first, as alerts list lists them
        by_folded.setdefault(known_id.casefold(), known_id)
    given = alert_id.casefold()
    scored = []
    # None alike a text over 2.4 times as long as the longest (difflib's ratio, at least 0.6, is
    # twice the characters in common over both lengths; 3 leaves room): a pasted page is not
    # compared.
    if len(given) <= 3 * max(map(len, by_folded)):
        matcher = difflib.SequenceMatcher(b=given)
        for folded in by_folded:
            matcher.set_seq1(folded)
            if matcher.real_quick_ratio() >= _LIKENESS and matcher.quick_ratio() >= _LIKENESS:
                scored.append((matcher.ratio(), folded))
    best = max((ratio for ratio, _ in scored), default=0.0)
    listing = "exesdb-bridge alerts list --state all lists every alert it knows"
    if best < _LIKENESS:
        return f"no alert it knows has an id alike: {listing}"
    named = [repr(by_folded[folded]) for ratio, folded in scored if ratio == best][:_MOST_ALIKE]
    said = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} or {named[-1]}"
    return f"did you mean {said}? ({listing})"


def _asked_again(bridge: Target, headers: dict[str, str]) -> dict[str, Any] | None:
    """The bridge's ``GET /v1/alerts`` answer for the alerts of every state most recently
    changed (their ids, and what it says of the work-queue lease), or None when it gives none."""
    params = {"limit": str(_COMPARED)}
    status, text = bridge.request("GET", "/v1/alerts", headers=headers, params=params, body=None)
    answer = bridge_json(text, "alerts") if status == 200 else None
    return answer if answer is not None and isinstance(answer["alerts"], list) else None


def _lease_note(
    bridge: Target, answers: list[dict[str, Any]], answer: dict[str, Any]
) -> str | None:
    """What ``alerts list`` says on stderr of the work-queue lease: that it moved while the
    ``answers`` (one per state) were given, or ``_not_the_holder`` of their ``merged``
    ``answer``."""
    if lease_moved(answers):
        return _LEASE_MOVED.format(url=safe_url(bridge.url))
    return _not_the_holder(bridge, answer)


def _not_the_holder(bridge: Target, answer: dict[str, Any] | None) -> str | None:
    """What to say on stderr when ``answer`` (``GET /v1/alerts``'s) comes from a Redis replica
    without the work-queue lease, or holding it cut off from Redis (``lease_note``); None
    otherwise."""
    return lease_note(safe_url(bridge.url), answer)


def _ack_unchanged(args: argparse.Namespace, alert: dict[str, Any]) -> str | None:
    """What to say when the bridge kept an earlier acknowledgement (it answers such an ack with
    the alert as it is), so the person does not take the ack for theirs; None otherwise."""
    ours = (alert["ack_by"], alert["ack_note"]) == (args.by, args.note)
    # An ack with a resolution resolves the alert, so a resolved answer is this ack's only when
    # it carries this ack's name, note and resolution: else it resolved before (its resolve
    # timeout, a message clearing it), and the resolution given was not recorded.
    resolved_now = bool(args.resolution) and ours and alert["resolution"] == args.resolution
    if alert["state"] == "resolved" and not resolved_now:
        return f"alert {args.alert_id} was resolved already; nothing changed"
    if alert["ack_by"] is not None and not ours:
        return (
            f"alert {args.alert_id} was acknowledged already by {alert['ack_by']}"
            f" at {alert['ack_at']}; left as it is"
        )
    return None
