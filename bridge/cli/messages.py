"""The message commands: ``publish`` signs and sends one, ``tail`` prints them as they arrive."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from bridge.choices import field_refused
from bridge.cli.client import STREAM_SILENCE, Target
from bridge.cli.remote import (
    BRIDGE_ANSWER,
    admin_token_or_exit,
    bridge_json,
    client_options,
    say_refused,
    target_or_exit,
)
from bridge.cli.shared import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    client_settings_or_exit,
    one_of,
    positive,
)
from bridge.hidden import on_one_line
from bridge.json_objects import DuplicateKey, once_each
from bridge.messages import INSTANCES
from bridge.redaction import clipped, safe_url

if TYPE_CHECKING:
    import http.client

    from bridge.messages import Message

__all__ = ["add_message_commands"]

# How much of the message stream one read takes, at most.
_READ: Final = 65536
# The fields of an envelope that ``tail`` prints.
_ENVELOPE_FIELDS: Final = frozenset({"ts", "instance", "topic", "tag", "node", "payload"})
# The longest line of the stream tail reads: one message, which a bridge takes of up to
# EXESDB_MAX_BODY_BYTES at its most (256 MiB), with as much again for how it writes it back (a
# number sent as 1e5 comes back as 100000.0). A line without end was held whole as it came.
_MOST_LINE: Final = 512 << 20


def add_message_commands(commands: Commands) -> None:
    """Add ``publish`` and ``tail`` to the subcommands of ``exesdb-bridge``."""
    publish = commands.add_parser(
        "publish",
        help="sign and send one message to a bridge",
        description=(
            "Sign one message with SECRET_KEY_BASE, the bridge's key, and post it to the"
            " bridge's ingest, which a bridge runs with EXESDB_INGEST=true. The schema command"
            " lists a type's fields."
        ),
    )
    publish.add_argument("tag", metavar="TAG", help="the message type, e.g. system_alert")
    publish.add_argument("--topic", type=_topic, help="the topic (default: the tag)")
    publish.add_argument(
        "--field",
        "-f",
        action="append",
        metavar="NAME=VALUE",
        help="a payload field (JSON or text; a string field takes the text as typed)",
    )
    publish.add_argument("--stdin", action="store_true", help="read the payload as JSON from stdin")
    client_options(publish)
    publish.set_defaults(handler=_publish)

    tail = commands.add_parser(
        "tail",
        help="print verified messages as they arrive",
        description=(
            "Print verified messages as they arrive, one line each, from the bridge's message"
            " stream, with EXESDB_ADMIN_TOKEN, the admin token the bridge runs with."
        ),
    )
    tail.add_argument(
        "--instance",
        type=one_of(
            INSTANCES,
            one="one instance",
            unset="without --instance it prints every instance's messages",
        ),
        choices=INSTANCES,
        metavar="INSTANCE",  # nine long names: listed in the help, not in the usage line
        help=f"only this bus instance: {', '.join(INSTANCES)}",
    )
    tail.add_argument(
        "--topic", type=_stream_topic, help="only this topic (a trailing * matches a prefix)"
    )
    tail.add_argument(
        "--count",
        type=positive,
        default=0,
        metavar="N",
        help="stop after this many messages (at least 1)",
    )
    client_options(tail)
    tail.set_defaults(handler=_tail)


def _topic(text: str) -> str:
    """An argparse type: a topic an envelope may carry (a bridge refuses any other)."""
    from bridge.bus import check_topic

    try:
        check_topic(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _stream_topic(text: str) -> str:
    """An argparse type: a topic, or a prefix of one ending in ``*``, as ``/v1/stream`` takes it."""
    from bridge.bus import check_topic

    if text != "*":
        try:
            check_topic(text.removesuffix("*"))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"{exc}; one * may end it, for every topic starting so (node*)"
            ) from None
    return text


# -- publish --


def _field_problem(model: type[Message], problem: Mapping[str, Any]) -> str | None:
    """A missing or unknown field, or a word a field does not take, said with what to do
    (pydantic says only what is wrong), as the integration API and ingest say it."""
    if problem["type"] == "missing" and len(problem["loc"]) == 1:
        return f"required: give it with -f {problem['loc'][0]}=VALUE"
    return field_refused(problem, model.__pydantic_fields__, model.TAG)


def _publish(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bridge.bus import SIGNATURE_HEADER, Envelope, Keyring, new_message_id
    from bridge.client_environment import MIN_SECRET_LENGTH, PublishValues
    from bridge.messages import input_given, model_tagged, pattern_refused, utc_now

    settings = client_settings_or_exit(PublishValues)
    model = model_tagged(args.tag)  # its module's models alone
    if model is None:
        # A class name (SystemAlert), or a mistyped tag told the closest: every model is built.
        from bridge.schema import model_named, unknown_tag_message

        model = model_named(args.tag)
        if model is None:
            print(f"exesdb-bridge: {unknown_tag_message(args.tag)}", file=sys.stderr)
            return EXIT_USAGE
    try:
        fields: dict[str, Any] = _stdin_fields() if args.stdin else {}
        texts: dict[str, str] = {}
        not_json: dict[str, str] = {}  # why a value written as an object or array is no JSON
        for item in args.field or ():
            key, sep, value = item.partition("=")
            if not sep or not key:  # no name: it would be told as a field named "payload"
                raise ValueError(f"--field {item!r} must be name=value")
            try:
                fields[key] = _json(value)
                texts[key] = value
            except DuplicateKey as exc:
                raise ValueError(f"--field {key!r}: {_twice(exc)}") from None
            except ValueError as exc:
                fields[key] = value
                if value.lstrip().startswith(("{", "[")):
                    not_json[key] = str(exc)
        try:
            payload = model.model_validate(fields, context={"node": settings.node})
        except ValidationError as exc:
            # A string field takes the text as written: -f version=1.0, -f user_id=42.
            as_text = {
                str(problem["loc"][0]): texts[str(problem["loc"][0])]
                for problem in exc.errors()
                if problem["type"] == "string_type"
                and len(problem["loc"]) == 1
                and str(problem["loc"][0]) in texts
            }
            if not as_text:
                raise
            payload = model.model_validate(fields | as_text, context={"node": settings.node})
    except ValidationError as exc:
        named = False
        # Unknown fields first: a misspelt one is often why a required one is missing.
        problems = sorted(exc.errors(), key=lambda problem: problem["type"] != "extra_forbidden")
        for problem in problems:
            where = ".".join(str(part) for part in problem["loc"]) or "payload"
            told = _field_problem(model, problem)
            named = named or (told is not None and problem["type"] != "literal_error")
            said = told or pattern_refused(problem) or problem["msg"]
            given = input_given(problem)
            if len(problem["loc"]) == 1 and (why := not_json.get(str(problem["loc"][0]))):
                given += f"; it is not JSON: {why}"
            print(
                f"exesdb-bridge: {args.tag}.{where}: {said}{given}",
                file=sys.stderr,
            )
        if named:
            print(
                f"exesdb-bridge: `exesdb-bridge schema {model.TAG}` lists its fields",
                file=sys.stderr,
            )
        return EXIT_USAGE
    except ValueError as exc:
        print(f"exesdb-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Set but empty counts as unset, as it does for the bridge; checked after the message, so
    # a message can be got right before there is a key.
    key = settings.secret_key_base.get_secret_value() if settings.secret_key_base else ""
    if not key:
        print(
            "exesdb-bridge: publish needs SECRET_KEY_BASE to sign with: set it to the key the"
            " bridge runs with (its SECRET_KEY_BASE)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if len(key) < MIN_SECRET_LENGTH:
        # Ingest needs a key this long (docs/configuration.md): a shorter one is no bridge's.
        print(
            f"exesdb-bridge: SECRET_KEY_BASE: has {len(key)} characters; a bridge with"
            f" EXESDB_INGEST=true runs with at least {MIN_SECRET_LENGTH}, so it is not the"
            " bridge's key: set it to the key the bridge runs with (its SECRET_KEY_BASE)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    now = utc_now()
    envelope = Envelope(
        new_message_id(),
        model.INSTANCE,
        args.topic or model.TAG,
        model.TAG,
        settings.node,
        now,
        payload,
        now.timestamp(),
    )
    body = envelope.to_bytes()
    keyring = Keyring.from_secrets(key)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: keyring.sign_header(body, int(time.time())),
    }
    bridge = target_or_exit(args, settings)
    status, text = bridge.request("POST", "/v1/messages", headers=headers, body=body)
    if status == 0:
        print(f"exesdb-bridge: {text}", file=sys.stderr)
        return EXIT_FAILED
    if status != 202:
        say_refused(bridge, "/v1/messages", status, text)
        return EXIT_FAILED
    if bridge_json(text, "accepted") is None:
        # Another server's page: named, not printed as if it were the bridge's answer.
        refused = bridge.not_a_bridge("/v1/messages", BRIDGE_ANSWER, status)
        print(f"exesdb-bridge: {refused}", file=sys.stderr)
        return EXIT_FAILED
    print(text)
    return EXIT_OK


def _finite(text: str) -> float:
    """A JSON number as a float, refused when past a float's range (``1e400``)."""
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{clipped(text, 40)} is past a number's range")
    return number


def _not_json(constant: str) -> Any:
    """Refuses ``NaN``, ``Infinity`` and ``-Infinity``, which Python's parser alone takes."""
    raise ValueError(f"{constant} is not JSON")


def _json(text: str) -> Any:
    """``text`` as JSON read as the bridge's ingest reads it: not ``NaN`` or ``Infinity``
    (Python's parser takes them, and a free-form object would carry them on as null), nor a
    key given twice (``DuplicateKey``: Python's parser keeps the last without a word)."""
    return json.loads(
        text, object_pairs_hook=once_each, parse_float=_finite, parse_constant=_not_json
    )


def _twice(exc: DuplicateKey) -> str:
    """The key given twice, clipped: a JSON value may hold a key of any length."""
    return f"the key {clipped(repr(exc.key))} is given twice"


def _stdin_fields() -> dict[str, Any]:
    """The payload's fields from ``--stdin``: one JSON object."""
    if sys.stdin.isatty():  # a person typing it: not a silent wait for a pipe that never comes
        print(
            "exesdb-bridge: reading the payload from the terminal: type one JSON object, then"
            " Ctrl-D at the start of a line",
            file=sys.stderr,
        )
    text = sys.stdin.read()
    if not text.strip():  # a pipe that gave nothing: no JSON error's "line 1 column 1" to puzzle
        raise ValueError("--stdin: nothing was read; it must hold one JSON object")
    try:
        fields = _json(text)
    except DuplicateKey as exc:
        raise ValueError(f"--stdin: {_twice(exc)}") from None
    except ValueError as exc:
        raise ValueError(f"--stdin: not JSON ({exc}); it must hold one JSON object") from exc
    if not isinstance(fields, dict):
        raise ValueError("--stdin must hold one JSON object: the payload's fields")
    return fields


# -- tail --


def _tail(args: argparse.Namespace) -> int:
    from bridge.client_environment import AdminClientValues

    settings = client_settings_or_exit(AdminClientValues)
    token = admin_token_or_exit(settings, "tail")
    bridge = target_or_exit(args, settings)
    try:
        return _follow(args, bridge, token)
    except KeyboardInterrupt:
        return EXIT_OK


def _follow(args: argparse.Namespace, bridge: Target, token: str) -> int:
    """Print the stream's messages as they come (``bridge.cli.exchange``, redirects followed)."""
    import http.client

    from bridge.cli import exchange

    params = {key: value for key in ("instance", "topic") if (value := getattr(args, key))}
    printed = 0
    try:
        # The stream waits for messages without end, but the bridge opens it at once: a port
        # that takes the connection and never answers is said, not followed in silence.
        headers = bridge.admin_headers(token)
        with bridge.stream("/v1/stream", headers=headers, params=params) as (response, refusal):
            if refusal is not None:
                say_refused(bridge, "/v1/stream", response.status, refusal)
                return EXIT_FAILED
            if response.headers.get_content_type() != "text/event-stream":
                # Another server on that port: its page is no stream the bridge ended.
                said = bridge.not_a_bridge("/v1/stream", "an event stream")
                print(f"exesdb-bridge: {said}", file=sys.stderr)
                return EXIT_FAILED
            lines = _lines(response)
            while True:
                try:
                    raw = next(lines, None)
                except TimeoutError:  # nothing, not even a keep-alive, for STREAM_SILENCE
                    return _went_silent(bridge, printed)
                except (http.client.HTTPException, OSError):
                    return _broke_off(bridge, printed)
                except _LineTooLong:  # no more of it read
                    said = bridge.not_a_bridge(
                        "/v1/stream", f"lines of {_MOST_LINE >> 20} MiB at most"
                    )
                    print(f"exesdb-bridge: {said}", file=sys.stderr)
                    return EXIT_FAILED
                if raw is None:
                    break
                if not raw.startswith(b"data: "):
                    continue
                if (shown := _one_line(raw[6:])) is None:
                    # Another program's event stream: its events are no envelopes the bridge
                    # sends, and no traceback tells that.
                    said = bridge.not_a_bridge("/v1/stream", "the bridge's messages")
                    print(f"exesdb-bridge: {said}", file=sys.stderr)
                    return EXIT_FAILED
                print(shown, flush=True)
                printed += 1
                if args.count and printed >= args.count:
                    return EXIT_OK
    except TimeoutError:
        print(f"exesdb-bridge: {bridge.silent()}", file=sys.stderr)
        return EXIT_FAILED
    except exchange.Unreachable as exc:
        print(f"exesdb-bridge: {bridge.unreachable(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except exchange.CutShort:  # a refusal broken off
        return _broke_off(bridge, printed)
    return _closed(bridge, printed)


class _LineTooLong(Exception):
    """A line of the stream went on past ``_MOST_LINE`` bytes."""


def _lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The lines of ``response``'s body as they come (the last one may lack its line break);
    IncompleteRead when the body breaks off, ``_LineTooLong`` for a line past ``_MOST_LINE``
    bytes (no more of it read). ``readline`` would end quietly there: its look ahead takes a
    broken chunk for the end."""
    # The pieces of a line not yet ended, joined once it ends: a line of megabytes adding each
    # read to all it had so far took time growing with its square (64 MiB: 54 s).
    held: list[bytes] = []
    size = 0  # of the pieces held
    while chunk := response.read1(_READ):
        first, *lines = chunk.split(b"\n")
        held.append(first)
        size += len(first)
        if size > _MOST_LINE:
            raise _LineTooLong
        if lines:
            *ended, start = lines
            yield b"".join(held)
            yield from ended
            held, size = [start], len(start)
    rest = b"".join(held)
    if response.length:  # short of its Content-Length
        raise http.client.IncompleteRead(rest)
    if rest:
        yield rest


def _closed(bridge: Target, printed: int) -> int:
    """Say that the bridge closed the stream after ``printed`` messages. Only the bridge ends
    it (it is stopping, or a proxy ended it): tail was asked to follow until stopped, so this is
    a failure a script or a supervisor should see (exit 1)."""
    print(
        f"exesdb-bridge: the bridge at {safe_url(bridge.url)} closed the stream"
        f" after {printed} message(s) (it is stopping, or a proxy ended the stream)",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _broke_off(bridge: Target, printed: int) -> int:
    """Say that the stream broke off after ``printed`` messages: it had begun, so the bridge
    was reached, and it died, or the connection did. Exit 1."""
    print(
        f"exesdb-bridge: the stream from {safe_url(bridge.url)} broke off after {printed}"
        " message(s): the bridge stopped without ending it, or the connection was lost",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _went_silent(bridge: Target, printed: int) -> int:
    """Say that the stream sent nothing for ``STREAM_SILENCE`` seconds after ``printed``
    messages, though a bridge sends a keep-alive line every 15 s: the connection was lost
    unannounced (a network cut, a host gone), or the bridge is stuck. Exit 1."""
    print(
        f"exesdb-bridge: the stream from {safe_url(bridge.url)} sent nothing for"
        f" {STREAM_SILENCE:g} s after {printed} message(s), though a bridge sends a keep-alive"
        " every 15 s: the connection was lost, or the bridge is stuck",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _one_line(data: bytes) -> str | None:
    """The line ``tail`` prints for an event's ``data`` (an envelope as JSON); None when it is
    none (not UTF-8, not JSON, nested past the parser's depth, not an object with an envelope's
    fields)."""
    try:
        envelope = json.loads(data.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueError
        return None
    if not isinstance(envelope, dict) or not envelope.keys() >= _ENVELOPE_FIELDS:
        return None
    payload = json.dumps(envelope["payload"], separators=(",", ":"), sort_keys=True)
    # A bridge's fields hold no control character; another server's escape sequence is shown as
    # its escape, not sent to the terminal.
    fields = (
        on_one_line(str(envelope[name])) for name in ("ts", "instance", "topic", "tag", "node")
    )
    return " ".join((*fields, payload))
