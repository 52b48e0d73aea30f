"""The reference decoder: an envelope's problems found and worded, as a refusal says them.

``decode_envelope_reference`` reads a body with ``json.loads`` and checks it field by field;
the fast paths (``bridge.bus.decoding``) hand it what they do not take, so a rejection's reason,
detail and field are always its. A key given twice, a number no float holds and a lone
surrogate are refused naming where they are. The refusal a sender is answered words more than
a count needs: each problem of a message, not only its first (``with_every_problem``), and the
tag meant beside one no instance carries (``with_tag_meant``); both are asked only for the
refusals said, not for every line counted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, partial
from typing import Annotated, Any, Final, get_origin

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

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
from bridge.choices import did_you_mean, field_refused
from bridge.hidden import is_node_name
from bridge.messages import (
    INSTANCES,
    MESSAGE_TYPES,
    NODE_BLANK_SAID,
    NODE_JOINERS_SAID,
    NODE_REFUSES,
    TAGS,
    Message,
    model_for,
    pattern_refused,
)
from bridge.messages._base import BOOLEANS_APART
from bridge.messages.timestamps import rfc3339_pattern

__all__ = [
    "ENVELOPE_KEYS",
    "decode_envelope_object",
    "decode_envelope_reference",
    "parse_ts",
    "with_every_problem",
    "with_tag_meant",
]

ENVELOPE_KEYS: Final = frozenset({"v", "id", "instance", "topic", "tag", "node", "ts", "payload"})
_KNOWN_INSTANCES: Final = frozenset(INSTANCES)


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
            stack.extend(
                reversed([(v, f"{where}.{n}" if where else str(n)) for n, v in enumerate(item)])
            )
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
    missing, extra = ENVELOPE_KEYS - data.keys(), data.keys() - ENVELOPE_KEYS
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
        and _SURROGATE.search(node) is None
        and is_node_name(node)
    )
    if "node" in data and not node_taken:
        problems.append(_WRONG_NODE)
    ts = parse_ts(data["ts"]) if "ts" in data else None
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
        payload, unasked = _without_unknown_past_worded(model, payload)
        # Without ``every`` only the first problem is worded, and the others are not counted.
        cut, cut_off = _cut_after_worded(model, payload, _PROBLEMS_WORDED if every else 1, every)
        try:
            message = model.model_validate(cut, context=context)
            if cut is not payload:
                # Never so (a list is cut only after wrong items, each the model's as the
                # window's): were it, the whole payload would decide.
                cut_off = 0
                message = model.model_validate(payload, context=context)
        except ValidationError as exc:
            errors = exc.errors()
            worded = partial(_payload_problem, model, every)
            # A refusal said lists the type's fields once, at its first field the type lacks.
            lists = every
            for error in errors[:_PROBLEMS_WORDED]:
                listed = lists and error["type"] == "extra_forbidden"
                lists &= not listed
                problems.append(partial(worded, error, listed=listed))
            unworded += max(exc.error_count() + cut_off - _PROBLEMS_WORDED, 0) + unasked
    if problems or message is None or ts is None:  # the last two: a key missing, so a problem
        return _refused(problems, unworded, every)
    return Envelope(message_id, instance, topic, tag, node, ts, message, ts.timestamp())


def _without_unknown_past_worded(
    model: type[Message], payload: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """``payload`` without its unknown fields past the first ``_PROBLEMS_WORDED``, and how many
    were left out. pydantic words each unknown one after the problems of the fields it knows, in
    the payload's order, and builds every error it words at once: 71 000 of them (1 MiB) took
    0.4 s in one call holding the GIL, twice for a refusal said (``with_every_problem``)."""
    fields = model.__pydantic_fields__
    if len(payload) <= len(fields) + _PROBLEMS_WORDED:
        return payload, 0
    unknown = [name for name in payload if name not in fields]
    if len(unknown) <= _PROBLEMS_WORDED:
        return payload, 0
    left_out = set(unknown[_PROBLEMS_WORDED:])
    kept = {name: value for name, value in payload.items() if name not in left_out}
    return kept, len(left_out)


def _cut_after_worded(
    model: type[Message], payload: dict[str, Any], worded: int, counted: bool
) -> tuple[dict[str, Any], int]:
    """``payload`` with each long list or object of a field whose items pydantic checks one by
    one cut after the small window holding its ``worded``-th problem (whole when it has fewer),
    and how many problems the parts cut off hold (with ``counted``; else 0).

    pydantic words a field's problems in its items' order, each field's after the one before, so
    the first ``worded`` of the payload cut are the payload's. It builds every error it finds at
    once (``errors()``, about 6 µs each): the 520 000 wrong items of 1 MiB took 3 s in one call
    holding the GIL, twice for a refusal said (``with_every_problem``). Here the items are checked
    a window at a time, their errors counted (``error_count``), not built, so the count a refusal
    says stays exact; only those of the payload cut are built."""
    cut = payload
    cut_off = 0
    for name, value in payload.items():
        if not isinstance(value, list | dict) or len(value) <= _WINDOW:
            continue
        adapter = _items_adapter(model, name, type(value))
        if adapter is None:
            continue
        items = value if isinstance(value, list) else list(value.items())
        problems_in = partial(_problems_in, adapter, items, isinstance(value, dict))
        kept, in_kept, found = _items_problems(problems_in, len(items), worded, counted)
        if kept < len(items):
            cut = dict(cut) if cut is payload else cut
            cut[name] = value[:kept] if isinstance(value, list) else dict(items[:kept])
            cut_off += found - in_kept
    return cut, cut_off


def _items_problems(
    problems_in: Callable[[int, int], int], total: int, worded: int, counted: bool
) -> tuple[int, int, int]:
    """How many of ``total`` items hold their first ``worded`` problems (all when fewer), the
    problems those hold, and (with ``counted``; else as many) the problems of all, from
    ``problems_in(start, stop)``: the problems of a window of them, checked in one call holding
    the GIL (at most ``_WINDOW_MOST`` items, a few ms), its errors counted, never built."""
    found, start, size = 0, 0, _WINDOW
    while start < total and found < worded:
        stop = min(start + size, total)
        count = problems_in(start, stop)
        if count and size > _WINDOW:
            size = _WINDOW  # checked again in small windows: the cut falls after one
            continue
        found += count
        start = stop
        size = _WINDOW if count else min(2 * size, _WINDOW_MOST)
    kept = start if found >= worded else total
    in_kept = found
    while counted and start < total:
        stop = min(start + _WINDOW_MOST, total)
        found += problems_in(start, stop)
        start = stop
    return kept, in_kept, found


def _problems_in(
    adapter: TypeAdapter[Any], items: list[Any], pairs: bool, start: int, stop: int
) -> int:
    """The problems of ``items[start:stop]`` (``pairs``: an object's), checked as their field's
    (``error_count``: no error built)."""
    window = items[start:stop]
    try:
        adapter.validate_python(dict(window) if pairs else window)
    except ValidationError as exc:
        return exc.error_count()
    return 0


@cache
def _items_adapter(model: type[Message], name: str, kind: type) -> TypeAdapter[Any] | None:
    """A validator of a window of field ``name``'s ``kind`` (list or dict) of items, checking each
    as the model does, or None when its items are not checked one by one: a field of another
    type (a union), with a bound of its own (``max_length``) or a validator of its own. The
    models' own before-validators only fill the ``FILLED`` fields, never a list's items: one
    that did would make the window's count and the model's differ."""
    field = model.__pydantic_fields__.get(name)
    annotation = field.annotation if field is not None and not field.metadata else None
    if annotation is None or get_origin(annotation) is not kind:
        return None
    validators = model.__pydantic_decorators__.field_validators.values()
    if any(name in v.info.fields or "*" in v.info.fields for v in validators):
        return None
    config = {key: value for key, value in model.model_config.items() if key != "defer_build"}
    # Its numbers refusing a bool and its bools taking nothing else, as the model's do.
    refusing = Annotated[annotation, BOOLEANS_APART]  # type: ignore[valid-type]
    return TypeAdapter(refusing, config=ConfigDict(**config))  # type: ignore[typeddict-item]


# The problems of one message a refusal words, the first among them: enough for a payload with
# every field wrong or missing; past them, each one more is a sentence the sender must read.
_PROBLEMS_WORDED: Final = 10
# The items of a list or object checked at once: first and past each problem (the cut falls
# after such a window), and at most (4 096 wrong node names take about 1 ms, an object's 4 096
# wrong pairs 2 ms, the GIL held).
_WINDOW: Final = 64
_WINDOW_MOST: Final = 4096
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
    f"node must be a string of 1-{NODE_MAX_LENGTH} characters, not {NODE_BLANK_SAID}, none of"
    f" them a control character, {NODE_REFUSES}, {NODE_JOINERS_SAID} or a lone surrogate",
    "node",
)
_WRONG_TS: Final = partial(
    Rejection,
    RejectReason.MALFORMED,
    "ts must be an RFC 3339 date-time with seconds and its UTC offset (2026-11-28T00:00:00Z)",
    "ts",
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
    sent = instance if isinstance(instance, str) and len(instance) <= NAME_SHOWN else ""
    return TagRejection(RejectReason.UNKNOWN_INSTANCE, detail, "instance", sent)


def _unknown_tag_rejection(instance: str, tag: object) -> TagRejection:
    sent = tag if isinstance(tag, str) and len(tag) <= NAME_SHOWN else None
    detail = _unknown_tag(instance, tag)
    return TagRejection(RejectReason.UNKNOWN_TAG, detail, "tag", instance, sent)


def _payload_problem(
    model: type[Message], said: bool, error: ErrorDetails, *, listed: bool = False
) -> Rejection:
    """One of pydantic's errors for ``model``'s payload, worded as a rejection words it: a word
    the field does not take, a field the model does not have and a string its pattern refuses
    as ``publish`` and the integration API word them, with the one meant when ``said`` (a
    refusal a sender is answered: only counted, it is not worth a difflib run); ``listed``, a
    field the model does not have is said with the fields it has (``(its fields: …)``)."""
    where = ".".join(name_shown(part) for part in ("payload", *error["loc"]))
    why = (
        field_refused(error, model.__pydantic_fields__, model.TAG, hint=said)
        or pattern_refused(error)
        or error["msg"]
    )
    if listed:
        why += f" (its fields: {', '.join(model.__pydantic_fields__)})"
    return Rejection(RejectReason.INVALID_PAYLOAD, f"{where}: {why}", where)


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
    ``schema`` name it, an ``unknown_instance`` one with the instance meant
    (``ex_esdb_healt``), and so each of the message's other problems (``also``); any other as
    it is. Asked only for the refusals a sender is answered (a batch lists 20): each costs a
    difflib run, where decoding may word 1 000 bad lines."""
    if rejection.also:
        # An unknown instance or tag is never first among several (the envelope's other fields
        # are checked before them, its payload not at all): it is one of the others.
        also = tuple(map(_tag_meant, rejection.also))
        return dataclasses.replace(rejection, also=also)
    return _tag_meant(rejection)


def _instance_meant(rejection: Rejection) -> Rejection:
    """``rejection``, when an ``unknown_instance`` one of an instance like one of the bus's,
    with the instance meant after its detail, as the message stream's ``?instance=`` says it."""
    if not isinstance(rejection, TagRejection) or not rejection.instance:
        return rejection
    meant = did_you_mean(rejection.instance, INSTANCES)
    return (
        dataclasses.replace(rejection, detail=f"{rejection.detail}; {meant}")
        if meant
        else rejection
    )


def _tag_meant(rejection: Rejection) -> Rejection:
    if rejection.reason is RejectReason.UNKNOWN_INSTANCE:
        return _instance_meant(rejection)
    if not isinstance(rejection, TagRejection) or rejection.tag is None:
        return rejection
    if rejection.tag in TAGS:  # another instance's: named with it already
        return rejection
    own = [tag for instance, tag in MESSAGE_TYPES if instance == rejection.instance]
    meant = did_you_mean(rejection.tag, own)
    if meant is None:
        return rejection
    return Rejection(rejection.reason, f"{rejection.detail}; {meant}", rejection.field)


# RFC 3339's date-time with its offset, a fraction of any length (TS_MAX_LENGTH bounds it): the
# form parse_timestamp reads, but for the fraction it cuts at nine digits, which the envelope does
# not.
_RFC3339_TS: Final = re.compile(rfc3339_pattern())


def parse_ts(value: Any) -> datetime | None:
    """``value`` read as an envelope's ``ts``: its instant in UTC, or None (not text, longer than
    ``TS_MAX_LENGTH``, not an RFC 3339 date-time with its offset, or not an instant of years
    1-9999 in UTC)."""
    if not isinstance(value, str) or len(value) > TS_MAX_LENGTH:
        return None
    # RFC 3339 alone, as the refusal says: fromisoformat also reads ISO 8601's other forms (a
    # time without seconds, 20261128T000000Z, a week date, +0100), which a payload's timestamp
    # refuses too.
    if _RFC3339_TS.fullmatch(value) is None:
        return None
    try:
        # fromisoformat does not read a lower-case "z", which RFC 3339 allows.
        # OverflowError: an instant that falls outside years 1-9999 once converted to UTC.
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError):  # a day or an hour that does not exist
        return None
