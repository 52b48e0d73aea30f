"""Envelope decoding: bytes in, an ``Envelope`` or a ``Rejection`` out.

Decoding never raises: it returns an ``Envelope`` or a ``Rejection`` naming the reason and, where
there is one, the offending field. A valid envelope is decoded by msgspec into Structs generated
from the message models (``bridge.bus.structs``), or, in a form only the models' lax rules take
(a number as a string, a timestamp without its UTC offset), by one pydantic-core call; what
those do not take is decoded again by the reference decoder (``json.loads`` and field-by-field
checks), which words the rejections: ``bridge.bus.problems``, with the wording of the refusal a
sender is answered. A batch is decoded at once; a body of it those paths do not take is decoded
again alone, not the batch. A refused batch is decoded on past its first fault
(``decode_failures``), for the refusal to name the others.
How deep an envelope may nest, and where one goes past it, is ``bridge.bus.depth``'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from itertools import repeat
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import CoreSchema, SchemaValidator, core_schema

from bridge.bus import batch_scans, instants, payload_walks, structs
from bridge.bus.envelope import (
    ENVELOPE_VERSION,
    ID_PATTERN,
    NODE_MAX_LENGTH,
    TOPIC_PATTERN,
    TS_MAX_LENGTH,
    Envelope,
    Rejection,
)
from bridge.bus.problems import ENVELOPE_KEYS, decode_envelope_reference, parse_ts
from bridge.messages import MESSAGE_TYPES, NODE_PATTERN, Message
from bridge.messages._base import MAX_WHOLE, node_joiners_placed

__all__ = [
    "build_decoders",
    "decode_envelope",
    "decode_envelopes",
    "decode_failures",
]


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
    """How many of the ``what`` (``"`` or ``":``) in ``data`` follow an odd run of
    backslashes: escaped, in a string (a quote closing one follows an even run, or none)."""
    return sum(1 for _ in batch_scans.backslash_matches(_ESCAPED[what], data))


# A run of backslashes not preceded by another, of odd length, then the quote (and colon): one
# scan, each match tried from a backslash. A count of the two bytes ``\\"`` is three times slower
# on the bytes a batch holds (a quote every few bytes), and a count per run length was
# quadratic in a long run's.
_ESCAPED: Final = {what: re.compile(rb"\\(?<!\\\\)(?:\\\\)*" + what) for what in (b'"', b'":')}


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
    anything), decoded again alone: on the pydantic-core path (both fast paths, past a byte
    order mark), else by the reference."""
    envelope = None
    if taken is None:
        envelope = _decode_fast(body) if _marked(body) else _decode_counted(body)
    # Refused, a key given twice, or a JSON corner the fast paths read differently.
    return envelope if envelope is not None else decode_envelope_reference(body)


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


# -- the fast paths --
# First msgspec (bridge.bus.structs): Structs generated from the models take strict JSON (the
# form senders write) and the models are built from them. What that does not take, pydantic-core
# tries: one call validates the bytes against a union, discriminated on ``tag``, of envelope
# dataclasses with strict envelope fields (the reference's patterns; Rust's ``$`` is end of text,
# stricter than Python's), ``instance`` bound to the tag's instance and the model's wire schema
# for the payload (Message.wire_schema: the model's lax rules, defaults filled after validation).
# Neither may accept anything the reference refuses, and both build the reference's Envelope:
# tests/bus/test_envelope_fast*.py hold them to that.


def _decode_fast(body: bytes | str) -> Envelope | None:
    """The fast paths alone: the Envelope, or None where the reference must decide."""
    if _marked(body):
        body = body[len(_BOM) :]
    taken, held, _ = _decode_structs([body], body if isinstance(body, bytes) else None)
    if taken[0] is not None:
        return taken[0] if _named_once(body, held[0]) else None
    return _decode_counted(body)


# A UTF-8 byte order mark: the reference skips one before the JSON (as RFC 8259 lets a parser),
# neither fast parser does; the fast paths decode what follows it.
_BOM: Final = b"\xef\xbb\xbf"


def _marked(body: bytes | str) -> bool:
    """Whether ``body`` is bytes opening with a UTF-8 byte order mark (text never is: the
    reference refuses a U+FEFF before the JSON)."""
    return isinstance(body, bytes) and body.startswith(_BOM)


def _decode_counted(body: bytes | str) -> Envelope | None:
    """The pydantic-core path, its keys counted: the Envelope when the body names no key twice
    and none it does not know, else None (the reference decides)."""
    decoded = _decode_unchecked(body)
    if decoded is None:
        return None
    data = body.encode(errors="surrogatepass") if isinstance(body, str) else body
    return decoded[0] if _names_held(data, decoded[1]) else None


_Decode = Callable[[bytes | str], Any]
_Decoded = tuple[list[Envelope | None], list[int], bool]
"""What ``_decode_structs`` makes of a batch: each body's Envelope (None: not taken), how many
keys and string values each holds, and whether it left any body out."""


def _decode_structs(bodies: Sequence[bytes | str], joined: bytes | None) -> _Decoded:
    """The msgspec path for ``bodies`` (``joined``: all of them, when all are bytes): their
    Envelopes (None for each body it does not take, left to the other paths), how many keys
    and string values each holds (for ``_named_once``) and whether it left any body out. Keys
    given twice are not looked for (the last is kept)."""
    clean = joined is not None and batch_scans.is_clean(joined)
    # Each body's decoder: the clean one (no label pattern checked) for a clean batch.
    decode = (structs.CLEAN if clean else structs.CHECKED)[0].decode
    decoders: Iterable[_Decode] = repeat(decode)
    if joined is not None and not clean and len(bodies) > 1:
        # A batch that is not clean mostly is but for a few bodies (a newline in one message,
        # escaped): those are decoded by the decoder checking the label patterns, the rest
        # by the clean one. A body alone that is not clean (or of text: joined None) is checked.
        decoders = [structs.CLEAN[0].decode] * len(bodies)
        for index in batch_scans.unclean(bodies, joined):  # type: ignore[arg-type]
            decoders[index] = decode
    builders = structs.BUILDERS
    known_instants = _INSTANTS
    envelopes: list[Envelope | None] = []
    append = envelopes.append
    held: list[int] = []
    count = held.append
    around = _ENVELOPE_KEY_COUNT + _ENVELOPE_STRING_COUNT  # the envelope's, payload aside
    missed = False
    last, instant = None, _NO_INSTANT
    for body, decode_body in zip(bodies, decoders, strict=False):  # decoders: maybe endless
        try:
            wire = decode_body(body)
        except structs.DECODE_ERRORS:
            append(None)
            count(0)
            missed = True
            continue
        text = wire.ts
        # The envelopes of a batch mostly share their ts: compared with the one before, a
        # fresh text need not be hashed to be looked up.
        if text != last:
            found = known_instants.get(text) or _instant(text)
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
    # The alphabets of every id and topic, checked at once (the decoder checked their lengths).
    taken = [envelope for envelope in envelopes if envelope is not None] if missed else envelopes
    ids = "".join([envelope.id for envelope in taken])  # type: ignore[union-attr]
    topics = "".join([envelope.topic for envelope in taken])  # type: ignore[union-attr]
    if not batch_scans.in_alphabets(ids, topics):
        envelopes = [
            envelope
            if envelope is not None and batch_scans.in_alphabets(envelope.id, envelope.topic)
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
# NODE_PATTERN, then where a joiner stands (a NodeLabel's check): the reference's rule.
_NODE: Final = core_schema.no_info_after_validator_function(
    node_joiners_placed,
    core_schema.str_schema(
        pattern=NODE_PATTERN, min_length=1, max_length=NODE_MAX_LENGTH, strict=True
    ),
)
# Checked and kept as text by the validator; _decode_unchecked parses it as the reference does.
_TS_TEXT: Final = core_schema.str_schema(max_length=TS_MAX_LENGTH, strict=True)
# A number equal to the version: the reference takes 1.0 and 1e0 too (json.loads's float, equal
# to 1), which a strict int schema would leave to it. Not a bool, nor a string.
_VERSION: Final = core_schema.float_schema(
    ge=ENVELOPE_VERSION, le=ENVELOPE_VERSION, strict=True, allow_inf_nan=False
)
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
        model: (
            "node" in model.__pydantic_fields__,
            model.DERIVED,
            payload_walks.object_fields(model),
        )
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
# (instants.Instant). The envelopes of a batch mostly share their millisecond; the memory is
# bounded by clearing it.
_INSTANTS: dict[str, instants.Instant | None] = {}
_INSTANTS_SIZE: Final = 1024
_NO_INSTANT: Final[instants.Instant] = (datetime.min.replace(tzinfo=UTC), 0.0, None)


def _instant(text: str) -> instants.Instant | None:
    ts = parse_ts(text)
    instant = None if ts is None else (ts, ts.timestamp(), instants.timestamp(text))
    if len(_INSTANTS) >= _INSTANTS_SIZE:
        _INSTANTS.clear()
    _INSTANTS[text] = instant
    return instant


def _decode_unchecked(body: bytes | str) -> tuple[Envelope, int] | None:
    """The pydantic-core path but for repeated keys: the Envelope and how many keys it holds
    (which the body must name no more of), or None where the reference must decide."""
    validator, shapes = _wire()
    try:
        # Unknown fields ignored, not refused: the keys counted below fall short of the body's,
        # so the reference refuses the envelope, wording them. Refused here, pydantic-core would
        # build an error for each (71 000 of them took some 30 ms, the GIL held) only to return
        # None.
        validated: _Validated = validator.validate_json(body, extra="ignore")
    except ValidationError:
        return None
    instant = _INSTANTS.get(validated.ts) or _instant(validated.ts)
    if instant is None:
        return None
    payload = validated.payload
    values = payload.__dict__
    # pydantic-core reads NaN, Infinity and 1e400 in a JSON object as floats (a float field
    # refuses them, ThroughputMetric's rate aside), which the reference refuses.
    if not payload_walks.finite(values):
        return None
    node_field, derived, objects = shapes[payload.__class__]
    # pydantic-core keeps the last of two equal keys: the keys the envelope holds (counted
    # before the defaults below are marked as set) are checked against those its body names.
    keys = _ENVELOPE_KEY_COUNT + len(payload.__pydantic_fields_set__)
    for name in objects:
        value = values[name]
        if value:
            keys += payload_walks.keys_in(value)
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


_ENVELOPE_KEY_COUNT: Final = len(ENVELOPE_KEYS)
# id, instance, topic, tag, node and ts (v is a number).
_ENVELOPE_STRING_COUNT: Final = 6
_KEY_END: Final = b'":'
_SPACED_KEY_END: Final = re.compile(rb'"[ \t\r\n]+:')
# JSON's opening quote follows one of these (whitespace between): all read as ":" by
# _names_held, for one count of the opening quotes that may come right before a colon.
_BEFORE_STRINGS: Final = bytes.maketrans(b",[{ \t\r\n", b":" * 7)
# An escape: a backslash and the byte after it (the first of a \uXXXX's).
_ESCAPE: Final = re.compile(rb"\\.", re.DOTALL)
# From where the last match ended (a key's colon, or the body's start), in JSON without escapes
# (every quote opens or closes a string): the strings that are not keys skipped, then the next
# key, its colon captured, or the end. Possessive: no string is read twice.
_NEXT_KEY: Final = re.compile(
    rb'[^"]*+(?:"[^"]*+"(?![ \t\r\n]*+:)[^"]*+)*+(?:"[^"]*+"[ \t\r\n]*+(:)|\Z)'
)


def _names_held(body: bytes, held: int) -> bool:
    """Whether ``body`` (JSON pydantic-core took) names exactly the ``held`` keys its envelope
    holds: none given twice, none unknown (pydantic-core kept the last, or ignored it).

    Counted from each key's closing quote and its colon (``_keys_at_most``), where a string
    opening with a colon (``"::1"``, ``" :x"``) or an escaped quote, whitespace and a colon
    (``"say \\"x\\" : y"``) count as one more key; only a body that may hold as many as it
    counted over has its keys counted again, exactly (``_keys_in``), so that a body of unknown
    fields, refused, is not.
    """
    named, spaced = _keys_at_most(body)
    if named == held:
        return True
    if named < held:
        return False
    # What the count may have taken for keys: each quote followed by whitespace and a colon
    # (``spaced``), and each quote opening a string right before one, which follows ``:,[{`` or
    # whitespace: ``:":`` once those read as ``:``. Of a run of such occurrences overlapping
    # (quotes two bytes apart, so one opens and the next closes), at most every other quote
    # opens a string, and ``count`` counts every other one. Past that, a key was given twice
    # or is unknown.
    if named - held > spaced + body.translate(_BEFORE_STRINGS).count(b':":'):
        return False
    return _keys_in(body) == held


def _keys_at_most(body: bytes) -> tuple[int, int]:
    """At least as many as the keys in ``body``, and how many quotes in it are followed by
    whitespace and a colon: each key's closing quote is followed by its colon (whitespace
    between). An escaped quote before a colon (JSON quoted in a string) is not counted; a
    string opening with a colon, or an escaped quote and whitespace before one, adds to the
    count."""
    keys = body.count(_KEY_END)
    if b"\\" in body:
        keys -= _escaped(body, _KEY_END)
    spaced = 0
    if b" :" in body or b"\n:" in body or b"\t:" in body or b"\r:" in body:
        spaced = len(_SPACED_KEY_END.findall(body))
    return keys + spaced, spaced


def _keys_in(body: bytes) -> int:
    """The keys ``body`` (valid JSON) names, at any depth: its escapes left out, no quote is
    left inside a string, and each string followed by a colon is a key."""
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    return _NEXT_KEY.findall(body).count(b":")
