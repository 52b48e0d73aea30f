"""Envelope decoding: bytes in, an ``Envelope`` or a ``Rejection`` out.

Decoding never raises: it returns an ``Envelope`` or a ``Rejection`` naming the reason and, where
there is one, the offending field. A valid envelope is decoded by msgspec into Structs generated
from the message models (``bridge.bus.structs``), or, in a form only the models' lax rules take
(a number as a string, a timestamp not written as RFC 3339), by one pydantic-core call; the
reference decoder (``json.loads`` and field-by-field checks) words the rejections. A batch is
decoded at once; a body of it those paths do not take is decoded again alone, not the batch.
A refused batch is decoded on past its first fault, for the refusal to name the others; the
refusal a sender is answered words each problem of a line, not only its first
(``with_every_problem``).
How deep an envelope may nest, and where one goes past it, is ``bridge.bus.depth``'s.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import CoreSchema, ErrorDetails, SchemaValidator, core_schema

from bridge.bus import structs
from bridge.bus.depth import MAX_DEPTH, TOO_DEEP_DETAIL, openings, too_deep, too_deep_text
from bridge.bus.envelope import (
    ENVELOPE_VERSION,
    ID_MAX_LENGTH,
    ID_MIN_LENGTH,
    ID_PATTERN,
    NAME_SHOWN,
    NODE_MAX_LENGTH,
    TOPIC_MAX_LENGTH,
    TOPIC_PATTERN,
    TS_MAX_LENGTH,
    Envelope,
    Rejection,
    RejectReason,
    TagRejection,
    name_shown,
)
from bridge.messages import (
    ALERT_ID_PATTERN,
    INSTANCES,
    MESSAGE_TYPES,
    NAME_PATTERN,
    NAME_REFUSES,
    NO_CONTROL_CHARACTERS,
    NODE_PATTERN,
    NODE_REFUSES,
    TAGS,
    Message,
    model_for,
)
from bridge.messages._base import MAX_WHOLE

__all__ = [
    "build_decoders",
    "decode_envelope",
    "decode_envelope_reference",
    "decode_envelopes",
    "decode_failures",
    "with_every_problem",
]

_KNOWN_INSTANCES: Final = frozenset(INSTANCES)
_ENVELOPE_KEYS: Final = frozenset({"v", "id", "instance", "topic", "tag", "node", "ts", "payload"})
_NOT_IN_NODE: Final = re.compile(f"[{structs.NOT_IN_NODE}]")


def decode_envelope(body: bytes | str) -> Envelope | Rejection:
    """Parse and validate an envelope whose signature was already checked.

    A valid envelope is validated straight from the bytes (msgspec, else pydantic-core);
    anything those do not accept is decoded again by :func:`decode_envelope_reference`, so
    rejections (reason, detail, field) are exactly its.
    """
    envelope = _decode_fast(body)
    return envelope if envelope is not None else decode_envelope_reference(body)


def decode_envelopes(
    bodies: Sequence[bytes | str], whole: bytes | None = None
) -> tuple[list[Envelope], tuple[int, Rejection] | None]:
    """Decode ``bodies`` in order as :func:`decode_envelope` does, up to the first refused.

    Returns the envelopes before it and, when one is refused, its index and Rejection.

    ``whole``: the bytes the bodies were cut from (an NDJSON request's body), holding nothing
    but them and ASCII whitespace (newlines, blank lines); the checks made over the whole batch
    read it instead of the bodies joined again (a copy of the batch).
    """
    if whole is None:
        try:
            # Refused (TypeError) where a body is text: one pass in C, not a test of each body.
            whole = b"".join(bodies)  # type: ignore[arg-type]
        except TypeError:
            whole = None
    decoded = _decode_structs(bodies, whole)
    envelopes, held, missed = decoded
    # The whitespace between the bodies holds no quote: the batch's are counted at once.
    if whole is not None and not missed and _named_once(whole, sum(held)):
        return envelopes, None  # type: ignore[return-value]
    return _decode_each(bodies, decoded)


def _named_once(data: bytes | str, held: int) -> bool:
    """True when ``data`` (a body, or bodies and the whitespace between) names no more keys
    than its envelopes hold: no key was given twice. ``held`` counts the keys and the string
    values they hold (at any depth), as ``_decode_structs`` does: each is written between two
    quotes, and every other quote in JSON is escaped (``\\"``), keys included (so a key given
    twice, ``"id"`` and ``"i\\u0064"``, is counted twice)."""
    if isinstance(data, bytes):
        quotes = data.count(b'"')
        if b"\\" in data:  # single bytes first: memchr
            quotes -= _escaped(data, b'"')
    else:
        quotes = data.count('"')
        if "\\" in data:
            quotes -= _escaped(data.encode(errors="surrogatepass"), b'"')
    return quotes == 2 * held


def _escaped(data: bytes, what: bytes) -> int:
    """How many of the ``what`` in ``data`` follow an odd run of backslashes: escaped, in a
    string (a quote closing one follows an even run, or none)."""
    # A run of n backslashes is counted by the searches for 1..n of them: +1 -1 +1 ... sums to
    # 1 for an odd run, 0 for an even one.
    escaped, sign, backslashes = 0, 1, 1
    while True:
        found = data.count(b"\\" * backslashes + what)
        if not found:
            return escaped
        escaped += sign * found
        sign, backslashes = -sign, backslashes + 1


def _decode_each(
    bodies: Sequence[bytes | str], decoded: _Decoded
) -> tuple[list[Envelope], tuple[int, Rejection] | None]:
    """``decode_envelopes`` one body at a time, for a batch the checks made at once did not
    settle: each body the msgspec path took is kept when its own keys are named once, and
    only the others are decoded again (``_redecoded``). Fills ``decoded``'s envelopes in."""
    envelopes = decoded[0]
    for index, alone in _redecoded(bodies, decoded):
        if isinstance(alone, Rejection):
            return envelopes[:index], (index, alone)  # type: ignore[return-value]
        envelopes[index] = alone
    return envelopes, None  # type: ignore[return-value]


def _redecoded(
    bodies: Sequence[bytes | str], decoded: _Decoded
) -> Iterator[tuple[int, Envelope | Rejection]]:
    """Each body the msgspec path did not settle (not taken, or a key of its own given twice),
    with its index, decoded again alone: on the pydantic-core path, else by the reference."""
    taken, held, _ = decoded
    for index, body in enumerate(bodies):
        envelope = taken[index]
        if envelope is None or not _named_once(body, held[index]):
            yield index, _decode_alone(body, envelope)


def _decode_alone(body: bytes | str, taken: Envelope | None) -> Envelope | Rejection:
    """A body of a batch the msgspec path did not settle (``taken``: what it made of it, if
    anything), decoded again alone: on the pydantic-core path, else by the reference."""
    unchecked = _decode_unchecked(body) if taken is None else None
    if unchecked is not None and _keys_at_most(body) == unchecked[1]:
        return unchecked[0]
    # Refused, a key given twice, or a JSON corner the fast paths read differently.
    return decode_envelope_reference(body)


# How many bodies decode_failures decodes at once: few enough that a body of tiny lines, all bad,
# is not decoded far past where its caller stops; enough for the batch decoder's pace.
_FAILURES_CHUNK: Final = 256


def decode_failures(bodies: Sequence[bytes]) -> Iterator[tuple[int, Rejection]]:
    """Each body :func:`decode_envelope` would refuse, with its index, in order: the lines at
    fault of a batch refused already, past its first.

    Decoded a few hundred bodies at a time, each group as a batch is: a caller that stops
    after enough has not decoded the rest.
    """
    for start in range(0, len(bodies), _FAILURES_CHUNK):
        chunk = bodies[start : start + _FAILURES_CHUNK]
        joined = b"".join(chunk)
        decoded = _decode_structs(chunk, joined)
        _, held, missed = decoded
        if not missed and _named_once(joined, sum(held)):
            continue
        for index, alone in _redecoded(chunk, decoded):
            if isinstance(alone, Rejection):
                yield start + index, alone


def decode_envelope_reference(body: bytes | str, *, every: bool = False) -> Envelope | Rejection:
    """The reference decoder: ``json.loads`` then field-by-field checks (and every rejection).

    ``every``: a refused envelope's Rejection words each of its problems, not only its first
    (see :func:`decode_envelope_object`).

    A key given twice in any object of the envelope is refused, naming it: the two parsers
    would each keep the last, but a sender that repeats ``id`` means something else by it. So
    is a number no float holds, naming where it is: ``NaN``, ``Infinity`` and ``-Infinity``
    (which ``json.loads`` takes, but RFC 8259 does not) and a number past a float's range
    (``1e400``), which would become an infinity; and a whole number too long to convert. And
    so is a lone surrogate (an unpaired ``\\ud800`` escape) in any string or key: valid JSON,
    but no text, which nothing could send on (``to_bytes``) or show. Bytes are read as UTF-8 (a
    leading byte order mark skipped), never as the UTF-16 or UTF-32 ``json.loads`` would detect:
    RFC 8259 has JSON between systems in UTF-8, and a body that is not is refused as it is.
    """
    pairs = _Pairs()
    try:
        data = json.loads(
            body.decode("utf-8-sig") if isinstance(body, bytes) else body,
            object_pairs_hook=pairs,
            parse_constant=pairs.constant,
            parse_float=pairs.number,
            parse_int=pairs.integer,
        )
    except RecursionError:  # nesting deeper than the parser goes, so far past MAX_DEPTH
        return Rejection(RejectReason.MALFORMED, TOO_DEEP_DETAIL, too_deep_text(body))
    except ValueError as exc:
        detail = f"not JSON: {exc}"
        if isinstance(exc, json.JSONDecodeError) and exc.msg == "Extra data":
            # Said so for an NDJSON line too: its sender split lines at something else (a CR).
            detail += (
                " (one envelope per JSON body, one per line of application/x-ndjson: send several"
                " as application/x-ndjson, each line ending in a line feed)"
            )
        return Rejection(RejectReason.MALFORMED, detail)
    if openings(body) > MAX_DEPTH:
        where = too_deep(data)
        if where is not None:
            return Rejection(RejectReason.MALFORMED, TOO_DEEP_DETAIL, where)
    if pairs.repeated or pairs.unbounded or (_may_escape(body) and _holds_surrogate(data)):
        return _first_refused(data)
    return decode_envelope_object(data, every=every)


def _may_escape(body: bytes | str) -> bool:
    """False when ``body`` cannot hold a lone surrogate: no escape, and (text) no raw one."""
    return b"\\" in body if isinstance(body, bytes) else "\\" in body or not body.isascii()


def _holds_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(map(_holds_surrogate, value)) or any(map(_holds_surrogate, value.values()))
    if isinstance(value, list):
        return any(map(_holds_surrogate, value))
    return False


class _Repeated(dict[str, Any]):
    """A JSON object that named ``key`` twice (json.loads keeps the last value)."""

    key = ""


@dataclass(frozen=True, slots=True)
class _Unbounded:
    """A number no float holds (``NaN``, ``1e400``) or too long to convert, as written."""

    text: str


class _Pairs:
    """The hooks of the reference decoder's ``json.loads``: each object as a dict, marked when
    a key repeats; each number no float holds, or too long to convert, as an ``_Unbounded``."""

    def __init__(self) -> None:
        self.repeated = False
        self.unbounded = False

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) == len(pairs):
            return result
        self.repeated = True
        marked = _Repeated(result)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                marked.key = key
                break
            seen.add(key)
        return marked

    def constant(self, text: str) -> _Unbounded:
        """``NaN``, ``Infinity`` or ``-Infinity``."""
        self.unbounded = True
        return _Unbounded(text)

    def number(self, text: str) -> float | _Unbounded:
        """A number with a fraction or an exponent."""
        value = float(text)
        if math.isfinite(value):
            return value
        self.unbounded = True
        return _Unbounded(text)

    def integer(self, text: str) -> int | _Unbounded:
        """A whole number (past sys.get_int_max_str_digits() digits, int() refuses it)."""
        try:
            return int(text)
        except ValueError:
            self.unbounded = True
            return _Unbounded(text)


def _first_refused(data: Any) -> Rejection:
    """The rejection of the first key given twice, ``_Unbounded`` number or lone surrogate in
    ``data``, naming where it is (``node``, ``payload.checks.disk``)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str) and _SURROGATE.search(item):
            return Rejection(RejectReason.MALFORMED, _LONE_SURROGATE, where or None)
        if isinstance(item, dict) and any(_SURROGATE.search(key) for key in item):
            detail = f"a key of {where or 'the envelope'} holds a lone surrogate"
            return Rejection(RejectReason.MALFORMED, detail + _NO_TEXT, where or None)
        if isinstance(item, _Repeated):
            key = name_shown(item.key)
            field = f"{where}.{key}" if where else key
            return Rejection(RejectReason.MALFORMED, f"the key {key!r} is given twice", field)
        if isinstance(item, _Unbounded):
            text = item.text if len(item.text) <= _SHOWN else item.text[:_SHOWN] + "..."
            if item.text in _CONSTANTS:
                why = "is not a JSON number (RFC 8259 has no NaN or Infinity)"
            elif item.text.lstrip("-").isdigit():
                why = f"has more than {sys.get_int_max_str_digits()} digits"
            else:
                why = "is out of the range of a float (about ±1.8e308)"
            return Rejection(RejectReason.MALFORMED, f"the number {text} {why}", where or None)
        if isinstance(item, dict):
            children = [
                (v, f"{where}.{name_shown(k)}" if where else name_shown(k)) for k, v in item.items()
            ]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(v, f"{where}.{n}") for n, v in enumerate(item)]))
    raise AssertionError("a repeated key, an unbounded number or a lone surrogate was found")


_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
_NO_TEXT: Final = " (an unpaired \\ud800-\\udfff escape: valid JSON, but no text)"
_LONE_SURROGATE: Final = "the string holds a lone surrogate" + _NO_TEXT


_CONSTANTS: Final = frozenset({"NaN", "Infinity", "-Infinity"})
_SHOWN: Final = 40  # the characters of a number a rejection quotes


def _quoted(value: object) -> str:
    """``value`` quoted as a rejection quotes it (``repr``), cut as ``name_shown`` cuts it."""
    return repr(name_shown(value)) if isinstance(value, str) else name_shown(repr(value))


def decode_envelope_object(data: Any, *, every: bool = False) -> Envelope | Rejection:
    """Validate an already-parsed envelope object.

    Refused, the Rejection is its first problem (in the order of the checks below); with
    ``every``, it words the others beside it (``Rejection.also``, up to ``_PROBLEMS_WORDED`` in
    all): each envelope field missing, unknown or wrong, and, once the instance and tag name a
    model, each problem of the payload. Without, the payload of an envelope refused already is
    not validated, and no problem but the first is worded.
    """
    if not isinstance(data, dict):
        return Rejection(RejectReason.MALFORMED, "an envelope must be a JSON object")
    # Each problem found, worded only if it is to be said; without ``every``, no check is made
    # past the group that finds the first (most refusals are counted, not said).
    problems: list[Callable[[], Rejection]] = []
    unworded = 0  # problems counted, not worded
    missing, extra = _ENVELOPE_KEYS - data.keys(), data.keys() - _ENVELOPE_KEYS
    if (missing or extra) and not every:
        return _missing_key(min(missing)) if missing else _unknown_key(min(extra))
    if missing or extra:
        problems += [partial(_missing_key, name) for name in sorted(missing)]
        unknown = sorted(extra)
        problems += [partial(_unknown_key, name) for name in unknown[:_PROBLEMS_WORDED]]
        unworded = max(len(unknown) - _PROBLEMS_WORDED, 0)
    if "v" in data and (data["v"] != ENVELOPE_VERSION or isinstance(data["v"], bool)):
        problems.append(_WRONG_VERSION)
    # Any: each one is checked below before it is used as what it must be.
    message_id: Any = data.get("id")
    topic: Any = data.get("topic")
    node: Any = data.get("node")
    if "id" in data and (not isinstance(message_id, str) or not ID_PATTERN.fullmatch(message_id)):
        problems.append(_WRONG_ID)
    if "topic" in data and (not isinstance(topic, str) or not TOPIC_PATTERN.fullmatch(topic)):
        problems.append(_WRONG_TOPIC)
    node_taken = (
        isinstance(node, str)
        and 0 < len(node) <= NODE_MAX_LENGTH
        and _NOT_IN_NODE.search(node) is None
    )
    if "node" in data and not node_taken:
        problems.append(_WRONG_NODE)
    ts = _parse_ts(data["ts"]) if "ts" in data else None
    if "ts" in data and ts is None:
        problems.append(_WRONG_TS)
    if problems and not every:
        return problems[0]()
    instance: Any = data.get("instance")
    tag: Any = data.get("tag")
    model = None
    if "instance" in data and (not isinstance(instance, str) or instance not in _KNOWN_INSTANCES):
        problems.append(partial(_unknown_instance, instance))
    elif "instance" in data and "tag" in data:
        model = model_for(instance, tag) if isinstance(tag, str) else None
        if model is None:
            problems.append(partial(_unknown_tag_rejection, instance, tag))
    if problems and not every:
        return problems[0]()
    payload = data.get("payload")
    message = None
    if model is None or "payload" not in data:
        pass  # nothing to validate the payload with, or no payload: a problem found already
    elif not isinstance(payload, dict):
        problems.append(_NOT_AN_OBJECT)
    else:
        # A node the envelope refuses is not taken into the payload, where it would be refused
        # again: a stand-in fills the payload's node instead, for its other problems.
        context = {"node": node if node_taken else _STAND_IN_NODE}
        try:
            message = model.model_validate(payload, context=context)
        except ValidationError as exc:
            errors = exc.errors()
            problems += [partial(_payload_problem, error) for error in errors[:_PROBLEMS_WORDED]]
            unworded += max(len(errors) - _PROBLEMS_WORDED, 0)
    if problems or message is None or ts is None:  # the last two: a key missing, so a problem
        return _refused(problems, unworded, every)
    return Envelope(message_id, instance, topic, tag, node, ts, message, ts.timestamp())


# The problems of one message a refusal words, the first among them: enough for a payload with
# every field wrong or missing; past them, each one more is a sentence the sender must read.
_PROBLEMS_WORDED: Final = 10
# Any node name the envelope takes (NODE_PATTERN).
_STAND_IN_NODE: Final = "node"
_WRONG_VERSION: Final = partial(
    Rejection, RejectReason.MALFORMED, f"envelope version must be {ENVELOPE_VERSION}", "v"
)
_WRONG_ID: Final = partial(
    Rejection,
    RejectReason.MALFORMED,
    f"id must be {ID_MIN_LENGTH}-{ID_MAX_LENGTH} characters of [A-Za-z0-9_-]",
    "id",
)
_WRONG_TOPIC: Final = partial(
    Rejection,
    RejectReason.MALFORMED,
    f"topic must be 1-{TOPIC_MAX_LENGTH} characters of [A-Za-z0-9_.:-]",
    "topic",
)
_WRONG_NODE: Final = partial(
    Rejection,
    RejectReason.MALFORMED,
    f"node must be a string of 1-{NODE_MAX_LENGTH} characters, none of them a control character,"
    f" {NODE_REFUSES} or a lone surrogate",
    "node",
)
_WRONG_TS: Final = partial(
    Rejection, RejectReason.MALFORMED, "ts must be an RFC 3339 timestamp", "ts"
)
_NOT_AN_OBJECT: Final = partial(
    Rejection, RejectReason.INVALID_PAYLOAD, "payload must be a JSON object", "payload"
)


def _refused(problems: list[Callable[[], Rejection]], unworded: int, every: bool) -> Rejection:
    """The Rejection of a message with ``problems`` (in order) and ``unworded`` more: the first,
    with ``every`` the others beside it."""
    first = problems[0]()
    if not every or len(problems) == 1:
        return first
    also = tuple(problem() for problem in problems[1:_PROBLEMS_WORDED])
    return dataclasses.replace(first, also=also, also_found=len(problems) - 1 + unworded)


def _missing_key(name: str) -> Rejection:
    return Rejection(RejectReason.MALFORMED, f"envelope field {name!r} is missing", name)


def _unknown_key(name: str) -> Rejection:
    shown = name_shown(name)
    return Rejection(RejectReason.MALFORMED, f"unknown envelope field {shown!r}", shown)


def _unknown_instance(instance: object) -> Rejection:
    allowed = ", ".join(INSTANCES)
    detail = f"unknown bus instance {_quoted(instance)}; allowed: {allowed}"
    return Rejection(RejectReason.UNKNOWN_INSTANCE, detail, "instance")


def _unknown_tag_rejection(instance: str, tag: object) -> TagRejection:
    sent = tag if isinstance(tag, str) and len(tag) <= NAME_SHOWN else None
    detail = _unknown_tag(instance, tag)
    return TagRejection(RejectReason.UNKNOWN_TAG, detail, "tag", instance, sent)


def _payload_problem(error: ErrorDetails) -> Rejection:
    """One of pydantic's errors for a payload, worded as a rejection words it."""
    where = ".".join(name_shown(part) for part in ("payload", *error["loc"]))
    why = error["msg"]
    if error["type"] == "string_pattern_mismatch":
        # Said in words: pydantic's message quotes the pattern, the very characters refused.
        why = _PATTERN_REFUSALS.get((error.get("ctx") or {}).get("pattern", ""), why)
    return Rejection(RejectReason.INVALID_PAYLOAD, f"{where}: {why}", where)


_PATTERN_REFUSALS: Final = {
    NO_CONTROL_CHARACTERS: "a label value must not contain control characters",
    ALERT_ID_PATTERN: "an alert id must not be . or .. (a link's path drops them: /alerts/.. is"
    " /, so no alert page or generatorURL would reach it) or contain control characters",
    NODE_PATTERN: "a node name must not contain a control character or " + NODE_REFUSES,
    NAME_PATTERN: "a name must not be blank (spaces, other whitespace or invisible characters"
    f" only) or contain a control character, {NAME_REFUSES}",
}


# -- the fast paths --
# First msgspec (bridge.bus.structs): Structs generated from the models take strict JSON (the
# form senders write) and the models are built from them. What that does not take, pydantic-core
# tries: one call validates the bytes against a union, discriminated on ``tag``, of envelope
# dataclasses with strict envelope fields (the reference's patterns; Rust's ``$`` is end of text,
# stricter than Python's), ``instance`` bound to the tag's instance and the model's wire schema
# for the payload (Message.wire_schema: the model's lax rules, defaults filled after validation).
# Neither may accept anything the reference refuses, and both build the reference's Envelope:
# tests/bus/test_envelope_fast.py holds them to that.


def _decode_fast(body: bytes | str) -> Envelope | None:
    """The fast paths alone: the Envelope, or None where the reference must decide."""
    taken, held, _ = _decode_structs([body], body if isinstance(body, bytes) else None)
    if taken[0] is not None:
        return taken[0] if _named_once(body, held[0]) else None
    decoded = _decode_unchecked(body)
    if decoded is None or _keys_at_most(body) != decoded[1]:
        return None
    return decoded[0]


_Decoded = tuple[list[Envelope | None], list[int], bool]
"""What ``_decode_structs`` makes of a batch: each body's Envelope (None: not taken), how many
keys and string values each holds, and whether it left any body out."""


def _decode_structs(bodies: Sequence[bytes | str], joined: bytes | None) -> _Decoded:
    """The msgspec path for ``bodies`` (``joined``: all of them, when all are bytes): their
    Envelopes (None for each body it does not take, left to the other paths), how many keys
    and string values each holds (for ``_named_once``) and whether it left any body out. Keys
    given twice are not looked for (the last is kept)."""
    clean = joined is not None and structs.is_clean(joined)
    # A batch that is not clean mostly is but for a few bodies (a newline in one message,
    # escaped): it is decoded as clean, and those bodies are checked again below. A body
    # alone that is not clean (or of text: joined None) is checked.
    recheck = joined is not None and not clean and len(bodies) > 1
    decode = (structs.CLEAN if clean or recheck else structs.CHECKED)[0].decode
    builders = structs.BUILDERS
    instants = _INSTANTS
    envelopes: list[Envelope | None] = []
    append = envelopes.append
    held: list[int] = []
    count = held.append
    around = _ENVELOPE_KEY_COUNT + _ENVELOPE_STRING_COUNT  # the envelope's, payload aside
    missed = False
    last, instant = None, _NO_INSTANT
    for body in bodies:
        try:
            wire = decode(body)
        except structs.DECODE_ERRORS:
            append(None)
            count(0)
            missed = True
            continue
        text = wire.ts
        # The envelopes of a batch mostly share their ts: compared with the one before, a
        # fresh text need not be hashed to be looked up.
        if text != last:
            found = instants.get(text) or _instant(text)
            if found is None:
                append(None)
                count(0)
                missed = True
                continue
            last, instant = text, found
        # Appends the Envelope (the builder makes it) and counts what its JSON holds.
        counted = builders[wire.__class__](wire, instant, append, Envelope)
        if counted is None:
            append(None)
            count(0)
            missed = True
        else:
            count(around + counted)
    if recheck:
        # The label patterns, checked for the bodies in which a string may hold a control
        # character (the clean decoder left them out).
        check = structs.CHECKED[0].decode
        for index in structs.unclean(bodies, joined):  # type: ignore[arg-type]
            if envelopes[index] is None:
                continue
            try:
                check(bodies[index])
            except structs.DECODE_ERRORS:
                envelopes[index] = None
                missed = True
    # The alphabets of every id and topic, checked at once (the decoder checked their lengths).
    taken = [envelope for envelope in envelopes if envelope is not None] if missed else envelopes
    ids = "".join([envelope.id for envelope in taken])  # type: ignore[union-attr]
    topics = "".join([envelope.topic for envelope in taken])  # type: ignore[union-attr]
    if not structs.in_alphabets(ids, topics):
        envelopes = [
            envelope
            if envelope is not None and structs.in_alphabets(envelope.id, envelope.topic)
            else None
            for envelope in envelopes
        ]
        missed = True
    return envelopes, held, missed


_Shape = tuple[bool, tuple[str, ...], tuple[str, ...]]
"""A message type's shape: whether it has a node to fill, its DERIVED fields, and the fields
whose values may hold JSON objects (their keys are counted too)."""


@dataclass(frozen=True, slots=True)
class _Validated:
    """What the pydantic-core path validates an envelope into (``ts`` still text)."""

    id: str
    instance: str
    topic: str
    tag: str
    node: str
    ts: str
    payload: Message


_ID: Final = core_schema.str_schema(pattern=f"^{ID_PATTERN.pattern}$", strict=True)
_TOPIC: Final = core_schema.str_schema(pattern=f"^{TOPIC_PATTERN.pattern}$", strict=True)
_NODE: Final = core_schema.str_schema(
    pattern=NODE_PATTERN, min_length=1, max_length=NODE_MAX_LENGTH, strict=True
)
# Checked and kept as text by the validator; _decode_unchecked parses it as the reference does.
_TS_TEXT: Final = core_schema.str_schema(max_length=TS_MAX_LENGTH, strict=True)
_VERSION: Final = core_schema.int_schema(ge=ENVELOPE_VERSION, le=ENVELOPE_VERSION, strict=True)
_SET: Final = ["id", "instance", "topic", "tag", "node", "ts", "payload"]


def _variant(instance: str, tag: str, model: type[Message]) -> CoreSchema:
    fields = [
        core_schema.dataclass_field("v", _VERSION, init_only=True),  # checked, not kept
        core_schema.dataclass_field("id", _ID),
        core_schema.dataclass_field("instance", core_schema.literal_schema([instance])),
        core_schema.dataclass_field("topic", _TOPIC),
        core_schema.dataclass_field("tag", core_schema.literal_schema([tag])),
        core_schema.dataclass_field("node", _NODE),
        core_schema.dataclass_field("ts", _TS_TEXT),
        core_schema.dataclass_field("payload", model.wire_schema()),
    ]
    arguments = core_schema.dataclass_args_schema(
        f"Envelope[{tag}]", fields, extra_behavior="forbid"
    )
    return core_schema.dataclass_schema(_Validated, arguments, _SET, slots=True, frozen=True)


@contextmanager
def _incomplete_models() -> Iterator[None]:
    # pydantic-core validates a model schema whose class is complete with the class's own
    # validator (its "prebuilt" one), which would ignore the wire schemas: while compiling,
    # the models are marked incomplete.
    models = list(MESSAGE_TYPES.values())
    for model in models:
        type.__setattr__(model, "__pydantic_complete__", False)
    try:
        yield
    finally:
        for model in models:
            type.__setattr__(model, "__pydantic_complete__", True)


def _wire_schema() -> CoreSchema:
    return core_schema.tagged_union_schema(
        {key[1]: _variant(*key, model) for key, model in MESSAGE_TYPES.items()},
        discriminator="tag",
    )


@cache
def _wire() -> tuple[SchemaValidator, dict[type[Message], _Shape]]:
    """The pydantic-core path's validator and each message type's ``_Shape``: built when first
    asked for, as the msgspec path's decoders are (``build_decoders``)."""
    schema = _wire_schema()  # builds the models no message has built yet, before the marks
    with _incomplete_models():
        validator = SchemaValidator(schema)
    shapes = {
        model: ("node" in model.__pydantic_fields__, model.DERIVED, structs.object_fields(model))
        for model in MESSAGE_TYPES.values()
    }
    return validator, shapes


def build_decoders() -> None:
    """Build the decoders now rather than on the first bytes decoded: a bridge that takes
    messages in as bytes (ingest, a shared bus) calls it as it starts, so that they are built
    before its heap is frozen and the first batch does not wait for them."""
    structs.BUILDERS  # noqa: B018 (read: the module builds them)
    _wire()


# The instant of each ts text seen lately (None: not a timestamp), as the builders take it
# (structs.Instant). The envelopes of a batch mostly share their millisecond; the memory is
# bounded by clearing it.
_INSTANTS: dict[str, structs.Instant | None] = {}
_INSTANTS_SIZE: Final = 1024
_NO_INSTANT: Final[structs.Instant] = (datetime.min.replace(tzinfo=UTC), 0.0, None)


def _instant(text: str) -> structs.Instant | None:
    ts = _parse_ts(text)
    instant = None if ts is None else (ts, ts.timestamp(), structs.timestamp(text))
    if len(_INSTANTS) >= _INSTANTS_SIZE:
        _INSTANTS.clear()
    _INSTANTS[text] = instant
    return instant


def _decode_unchecked(body: bytes | str) -> tuple[Envelope, int] | None:
    """The pydantic-core path but for repeated keys: the Envelope and how many keys it holds
    (which the body must name no more of), or None where the reference must decide."""
    validator, shapes = _wire()
    try:
        validated: _Validated = validator.validate_json(body)
    except ValidationError:
        return None
    instant = _INSTANTS.get(validated.ts) or _instant(validated.ts)
    if instant is None:
        return None
    payload = validated.payload
    values = payload.__dict__
    # pydantic-core reads NaN, Infinity and 1e400 in a JSON object as floats (a float field
    # refuses them, ThroughputMetric's rate aside), which the reference refuses.
    if not structs.finite(values):
        return None
    node_field, derived, objects = shapes[payload.__class__]
    # pydantic-core keeps the last of two equal keys: the keys the envelope holds (counted
    # before the defaults below are marked as set) are checked against those its body names.
    keys = _ENVELOPE_KEY_COUNT + len(payload.__pydantic_fields_set__)
    for name in objects:
        value = values[name]
        if value:
            keys += structs.keys_in(value)
    # The defaults the wire schema left None: node (as the reference's validation context
    # gives it), then the fields derived from others.
    if node_field and values["node"] is None:
        values["node"] = validated.node
        payload.__pydantic_fields_set__.add("node")
    for name in derived:
        if values[name] is None:
            payload.fill_derived(validated.node)
            # A whole number past its field's bound (a sum of counts each within it): the
            # reference refuses it, naming the field.
            if any(values[n].__class__ is int and values[n] > MAX_WHOLE for n in derived):
                return None
            break
    envelope = Envelope(
        validated.id,
        validated.instance,
        validated.topic,
        validated.tag,
        validated.node,
        instant[0],
        payload,
        instant[1],
    )
    return envelope, keys


_ENVELOPE_KEY_COUNT: Final = len(_ENVELOPE_KEYS)
# id, instance, topic, tag, node and ts (v is a number).
_ENVELOPE_STRING_COUNT: Final = 6
_KEY_END: Final = b'":'
_SPACED_KEY_END: Final = re.compile(rb'"[ \t\r\n]+:')
_KEY_END_TEXT: Final = re.compile(r'"[ \t\r\n]*:')


def _keys_at_most(body: bytes | str) -> int:
    """At least as many as the keys in ``body`` (for the pydantic-core path, which counts no
    strings): each key's closing quote is followed by its colon (whitespace between). An
    escaped quote before a colon (JSON quoted in a string) is not counted; a string opening
    with a colon, or an escaped quote and whitespace before one, adds to the count (such a
    body goes to the reference)."""
    if isinstance(body, str):
        return len(_KEY_END_TEXT.findall(body))
    keys = body.count(_KEY_END)
    if b"\\" in body:
        keys -= _escaped(body, _KEY_END)
    if b" :" in body or b"\n:" in body or b"\t:" in body or b"\r:" in body:
        keys += len(_SPACED_KEY_END.findall(body))
    return keys


def _unknown_tag(instance: str, tag: object) -> str:
    """The detail of a tag ``instance`` does not carry: its tags, and the instance that carries
    ``tag`` when another one does."""
    tags = ", ".join(t for i, t in MESSAGE_TYPES if i == instance)
    detail = f"{_quoted(tag)} is not a message type of {instance}; its types: {tags}"
    elsewhere = TAGS.get(tag) if isinstance(tag, str) else None
    return f"{detail} ({tag} is one of {elsewhere.INSTANCE})" if elsewhere else detail


def with_every_problem(body: bytes | str, rejection: Rejection) -> Rejection:
    """``rejection`` (the decoders' of ``body``) with each of the message's other problems
    worded beside its first (``Rejection.also``): decoded again, for a refusal a sender is
    answered (a batch lists 20), where decoding may word 1 000 bad lines, their first alone."""
    every = decode_envelope_reference(body, every=True)
    return every if isinstance(every, Rejection) else rejection


def with_tag_meant(rejection: Rejection) -> Rejection:
    """``rejection``, when an ``unknown_tag`` one of a tag like one of its instance's
    (``node_health_update``), with the tag meant after its detail, as ``publish`` and
    ``schema`` name it, and so each of the message's other problems (``also``); any other as
    it is. Asked only for the refusals a sender is answered (a batch lists 20): each costs a
    difflib run, where decoding may word 1 000 bad lines."""
    if rejection.also:
        # An unknown tag is never first among several (the envelope's other fields are checked
        # before it, its payload not at all): it is one of the others.
        also = tuple(map(_tag_meant, rejection.also))
        return dataclasses.replace(rejection, also=also)
    return _tag_meant(rejection)


def _tag_meant(rejection: Rejection) -> Rejection:
    if not isinstance(rejection, TagRejection) or rejection.tag is None:
        return rejection
    if rejection.tag in TAGS:  # another instance's: named with it already
        return rejection
    import difflib

    own = [tag for instance, tag in MESSAGE_TYPES if instance == rejection.instance]
    close = difflib.get_close_matches(rejection.tag, own, n=1)
    if not close:
        return rejection
    detail = f"{rejection.detail}; did you mean {close[0]}?"
    return Rejection(rejection.reason, detail, rejection.field)


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > TS_MAX_LENGTH:
        return None
    if value[-1:] == "z":
        # RFC 3339 (section 5.6) allows "z" for "Z", which fromisoformat does not read (its
        # "t" it does).
        value = value[:-1] + "Z"
    try:
        ts = datetime.fromisoformat(value)
        # OverflowError: an instant that falls outside years 1-9999 once converted to UTC.
        return ts.astimezone(UTC) if ts.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
