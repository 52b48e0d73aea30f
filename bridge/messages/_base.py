"""What every message model shares: the base class, timestamps, ids and enum aliases.

Also the payload schema the envelope decoder reads JSON with (``Message.wire_schema``), what
a string that becomes a label value may hold (``Label``), and the fields a payload leaves out
while they are None (``OmittedWhenNone``).
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    GetPydanticSchema,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.config import ExtraValues
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from bridge.hidden import (
    CONTROL_CHARACTERS,
    NODE_PATTERN,
    NODE_REFUSED,
    NODE_REFUSED_BMP,
    NODE_SCHEMA_PATTERN,
    joiners_placed,
    on_one_line,
)
from bridge.messages.timestamps import format_timestamp, rfc3339_pattern, to_utc_ms
from bridge.redaction import clipped

__all__ = [
    "ALERT_ID_PATTERN",
    "ALERT_ID_SCHEMA_PATTERN",
    "BOOLEANS_APART",
    "LABEL_PATTERN",
    "LABEL_SCHEMA_PATTERN",
    "MAX_NAME",
    "NAME_PATTERN",
    "NAME_REFUSES",
    "NODE_BLANK_SAID",
    "NODE_JOINERS_SAID",
    "NODE_PATTERN",
    "NO_CONTROL_CHARACTERS",
    "AlertId",
    "JsonMap",
    "Label",
    "Message",
    "Name",
    "NonNegInt",
    "OmittedWhenNone",
    "Text",
    "Timestamp",
    "boolean_schema",
    "format_timestamp",
    "node_joiners_placed",
    "number_schema",
    "pattern_refused",
    "random_hex",
    "to_utc_ms",
    "utc_now",
    "visible_name",
]


def utc_now() -> datetime:
    """Now in UTC, truncated to the millisecond (the wire precision)."""
    global _last_now
    # Whole milliseconds from the integer clock: exact after fromtimestamp's rounding to the
    # microsecond, and cheaper than datetime.now().replace(). The default timestamp of every
    # payload that leaves it out: the messages of one millisecond share one (immutable) datetime.
    milliseconds = time.time_ns() // 1_000_000
    last = _last_now
    if last[0] == milliseconds:
        return last[1]
    now = datetime.fromtimestamp(milliseconds / 1000, UTC)
    _last_now = (milliseconds, now)  # swapped whole: another thread at worst misses
    return now


_last_now: tuple[int, datetime] = (0, datetime.fromtimestamp(0, UTC))


# RFC 3339's date-time (section 5.6), a fraction of any length and the offset optional (none is
# taken as UTC): pydantic's datetime alone also reads a bare date, a time without seconds and a
# Unix time (a number, or text: "0" is 1970).
_RFC3339_PATTERN: Final = f"^{rfc3339_pattern(offset_required=False)}$"
_RFC3339_TEXT: Final = core_schema.chain_schema(
    [core_schema.str_schema(pattern=_RFC3339_PATTERN, strict=True), core_schema.datetime_schema()]
)
_NOT_RFC3339: Final = "Input should be an RFC 3339 date-time with seconds (2026-11-28T00:00:00Z)"


def _rfc3339_schema(_source: Any, _handler: Any) -> CoreSchema:
    # JSON: the text alone; Python: a datetime too (the integration API's), never a number.
    # One error worded for the field (a union's would name each of its members).
    return core_schema.custom_error_schema(
        core_schema.json_or_python_schema(
            json_schema=_RFC3339_TEXT,
            python_schema=core_schema.union_schema(
                [core_schema.datetime_schema(strict=True), _RFC3339_TEXT], mode="left_to_right"
            ),
        ),
        custom_error_type="not_rfc3339",
        custom_error_message=_NOT_RFC3339,
    )


Timestamp = Annotated[
    datetime,
    GetPydanticSchema(_rfc3339_schema),
    WithJsonSchema({"type": "string", "format": "date-time"}),
    AfterValidator(to_utc_ms),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A UTC timestamp at millisecond precision, serialized as RFC 3339 with ``Z``."""

MAX_TEXT: Final = 4096
"""The most characters a ``Text`` (an id, a name, a title) holds."""

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
"""A non-empty string of bounded length."""

NO_CONTROL_CHARACTERS: Final = rf"^[^{CONTROL_CHARACTERS}]*$"
"""No C0 control character (NUL included), DEL or C1 control character (checked natively, in
pydantic-core): what the admin API's ``?alert_id=`` must match, as any alert id does."""

LABEL_PATTERN: Final = rf"^[^{NODE_REFUSED}]*$"
"""What a string that becomes a Prometheus label value must match (checked natively, in
pydantic-core): none of the characters a node name may not hold (``NODE_PATTERN``), a control
character or one drawn as nothing, with which two label values, two series, would look the
same on ``/metrics`` and the dashboards; blanks are taken (a node name's own rule)."""

LABEL_SCHEMA_PATTERN: Final = rf"^[^{NODE_REFUSED_BMP}]*$"
"""``LABEL_PATTERN`` as the JSON Schema publishes it: its characters past U+FFFF left out, as
``NODE_SCHEMA_PATTERN``'s are."""

Label = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT,
        pattern=LABEL_PATTERN,
        json_schema_extra={"pattern": LABEL_SCHEMA_PATTERN},
    ),
]
"""A ``Text`` that becomes a label value (the names ``/metrics`` shows): matching
``LABEL_PATTERN``."""


def _alert_id_pattern(refused: str) -> str:
    return rf"^(?:[^{refused}]*[^.{refused}][^{refused}]*|\.{{3,}})$"


ALERT_ID_PATTERN: Final = _alert_id_pattern(NODE_REFUSED)
"""What an alert id a sender gives must match: ``LABEL_PATTERN`` (it is the webhooks' and
Alertmanager's ``alert_id`` label), and neither ``.`` nor ``..``, which a browser takes out of
a link's path as it would a directory's, escaped (``%2e``) or not, and curl unescaped
(``/alerts/..`` is ``/``): no page link or generatorURL reaches it."""

ALERT_ID_SCHEMA_PATTERN: Final = _alert_id_pattern(NODE_REFUSED_BMP)
"""``ALERT_ID_PATTERN`` as the JSON Schema publishes it: its characters past U+FFFF left out."""

AlertId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT,
        pattern=ALERT_ID_PATTERN,
        json_schema_extra={"pattern": ALERT_ID_SCHEMA_PATTERN},
    ),
]
"""A ``Label`` that names an alert: matching ``ALERT_ID_PATTERN``."""

NODE_REFUSES: Final = (
    "a format character (Unicode's Cf: a zero-width character such as U+200B or U+FEFF, a"
    " bidirectional control such as U+202E, the soft hyphen U+00AD, a tag U+E0020-U+E007F),"
    " another character drawn as nothing (Unicode's default ignorable ones: U+3164, U+FE0F), a"
    " line or paragraph separator (U+2028, U+2029), a private-use character or a noncharacter"
)
"""What ``NODE_PATTERN`` refuses beyond control characters and blank names, in words
(refusals, the docs)."""

NODE_JOINERS_SAID: Final = (
    "a joiner (U+200C, U+200D) where it joins nothing (one is taken between two characters that"
    " show, right after a virama such as Devanagari's U+094D, and U+200C also between two letters"
    " that join, as in Persian or Urdu: RFC 5892 Appendix A)"
)
"""Where ``NODE_PATTERN`` and ``joiners_placed`` take a joiner, in words (refusals, the docs)."""


def node_joiners_placed(name: str) -> str:
    """``name``, which ``NODE_PATTERN`` took, when each joiner in it stands where
    ``joiners_placed`` takes one; refused else as the pattern refuses (its error, which
    ``pattern_refused`` words). ``NodeLabel``'s after-validator: no pattern every engine reads
    can say where. A name in ASCII returns at once."""
    if name.isascii() or joiners_placed(name):
        return name
    raise PydanticCustomError(
        "string_pattern_mismatch",
        "String should match pattern '{pattern}'",
        {"pattern": NODE_PATTERN},
    )


NodeLabel = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT,
        pattern=NODE_PATTERN,
        json_schema_extra={"pattern": NODE_SCHEMA_PATTERN},
    ),
    AfterValidator(node_joiners_placed),
]
"""A ``Label`` naming a node (``node``, the nodes ClusterHealth lists): matching
``NODE_PATTERN`` (its JSON Schema ``NODE_SCHEMA_PATTERN``), its joiners placed
(``node_joiners_placed``)."""

# A line or paragraph separator breaks a name's line; a bidirectional control reorders the text
# shown after it (a right-to-left override turns "ops: fixed" around on a page or in a terminal).
# U+2028, U+2029 and Unicode's Bidi_Control characters, as a regular expression's class written
# in escapes (Python's re, pydantic-core's and JSON Schema's read them alike), so that no message
# quoting the pattern holds the characters themselves.
_NOT_IN_NAME: Final = r"\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"

# Unicode's White_Space characters but the ones refused anyway (controls, U+2028, U+2029),
# written out: ``\s`` is not the same set in every engine that reads the pattern (JSON Schema's,
# ECMAScript's, also takes U+FEFF), and a name of these alone shows as no one.
_WHITESPACE: Final = r"\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
# Unicode's Default_Ignorable_Code_Point characters of the BMP but the bidirectional controls
# (refused anyway): drawn as nothing (U+200B zero width space, U+2060, U+FEFF, the Hangul fillers
# U+115F, U+1160, U+3164 and U+FFA0, U+00AD), so a name of these alone shows as no one too;
# beside other characters they stay (U+200D joins emoji, U+200C shapes Persian). The BMP's only:
# every engine reads a ``\uXXXX`` escape alike, not one past it (``visible_name`` checks those).
_INVISIBLE: Final = (
    r"\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200d\u2060-\u2065"
    r"\u206a-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
# U+2800, the braille pattern blank: drawn as an empty cell, neither whitespace nor ignorable.
_BRAILLE_BLANK: Final = r"\u2800"
_BLANK: Final = _WHITESPACE + _INVISIBLE + _BRAILLE_BLANK
_REFUSED_IN_NAME: Final = CONTROL_CHARACTERS + _NOT_IN_NAME

# Blanks, then one character that is neither blank nor refused, then any not refused: a class
# and its complement meet at the first other character, so no engine backtracks over the blanks.
NAME_PATTERN: Final = rf"^[{_BLANK}]*[^{_REFUSED_IN_NAME}{_BLANK}][^{_REFUSED_IN_NAME}]*$"
"""What a name shown to people as who did something (who acknowledged an alert) must match: not
blank (whitespace or invisible characters only), and no control character, line or paragraph
separator or bidirectional control (checked natively)."""

# Default_Ignorable_Code_Point past the BMP (tags and variation selectors U+E0000-U+E0FFF,
# musical formatting U+1D173-U+1D17A, shorthand format controls U+1BCA0-U+1BCA3): drawn as
# nothing, but not in NAME_PATTERN, whose \uXXXX escapes reach no further; Python's re reads
# these.
_INVISIBLE_ASTRAL: Final = r"\U000e0000-\U000e0fff\U0001d173-\U0001d17a\U0001bca0-\U0001bca3"
_UNDRAWN: Final = re.compile(f"[{_BLANK}{_INVISIBLE_ASTRAL}]*")
_SHOWS_NOTHING: Final = (
    "a name must not be blank (invisible characters, such as U+E0001 or U+1D173, or combining"
    " marks, such as U+0301, only)"
)


def visible_name(name: str) -> str:
    """``name``, which ``NAME_PATTERN`` took, unless it still shows as no one: ValueError when
    it holds only blanks, default ignorable characters past the BMP and combining marks
    (general category M: a lone U+0301 has no letter to sit on).

    ``Name``'s after-validator, in Python: no pattern every engine reads holds what is past the
    BMP, nor Unicode's categories. A name in ASCII returns at once (the pattern saw a printable
    character in it)."""
    if name.isascii():
        return name
    # Mostly the first character after any blanks shows (a letter), and that settles it.
    blanks = _UNDRAWN.match(name)
    start = blanks.end() if blanks else 0
    if start < len(name) and unicodedata.category(name[start])[0] != "M":
        return name
    if all(unicodedata.category(character)[0] == "M" for character in _UNDRAWN.sub("", name)):
        raise ValueError(_SHOWS_NOTHING)
    return name


NAME_REFUSES: Final = (
    "a line or paragraph separator (U+2028, U+2029) or a bidirectional control (U+061C, U+200E,"
    " U+200F, U+202A-U+202E, U+2066-U+2069)"
)
"""What ``NAME_PATTERN`` refuses beyond control characters and blank names, in words
(refusals, the docs)."""

NODE_BLANK_SAID: Final = (
    "blank at its start or end (whitespace, the braille blank U+2800 counting as whitespace; so"
    " not blank only)"
)
"""A node name ``NODE_PATTERN`` refuses for its blanks, in words (refusals): `" node1"` would
be another node than ``node1``, looking the same."""

# Each pattern of a message field, in words: pydantic's own message quotes the pattern, the very
# characters refused, which no one reads.
_PATTERNS_SAID: Final = {
    LABEL_PATTERN: f"a label value must not contain a control character or {NODE_REFUSES}",
    ALERT_ID_PATTERN: "an alert id must not be . or .. (a link's path drops them: /alerts/.. is"
    " /, so no alert page or generatorURL would reach it) or contain a control character or"
    f" {NODE_REFUSES}",
    NODE_PATTERN: f"a node name must not be {NODE_BLANK_SAID}, or contain a control character,"
    f" {NODE_REFUSES} or {NODE_JOINERS_SAID}",
    NAME_PATTERN: "a name must not be blank (spaces, other whitespace or invisible characters"
    f" only) or contain a control character, {NAME_REFUSES}",
}


def pattern_refused(error: Mapping[str, Any]) -> str | None:
    """One of pydantic's errors for a message field, when it is a string breaking the field's
    pattern: what the pattern refuses, in words; None for any other. The one wording of
    ingest's refusals (``bridge.bus.problems``), ``publish`` (``bridge.cli``) and the
    integration API (``bridge.integration``)."""
    if error["type"] != "string_pattern_mismatch":
        return None
    return _PATTERNS_SAID.get((error.get("ctx") or {}).get("pattern", ""))


def input_given(error: Mapping[str, Any]) -> str:
    """What one of pydantic's errors for a message field got, as ``" (got …)"`` after its
    words: on one line, the characters drawn as nothing escaped (``repr`` leaves Hangul fillers
    and tags as they are) and cut short, so that a refusal is never as long as what was sent;
    nothing for a field missing, whose input is the whole message. The one way ``publish`` and
    the integration API quote it."""
    if error["type"] == "missing":
        return ""
    return f" (got {clipped(on_one_line(repr(error.get('input'))))})"


MAX_NAME: Final = 200
"""The most characters a ``Name`` holds, on the bus and at the admin API alike: as many as the
status page's name field takes."""

Name = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN),
    AfterValidator(visible_name),
]
"""Who did something (who acknowledged an alert), as the alert page, its history and the logs
show it: 1 to ``MAX_NAME`` characters, matching ``NAME_PATTERN``, a ``visible_name``."""

MAX_WHOLE: Final = 2**63 - 1
"""The largest whole number a message field takes: what a signed 64-bit integer holds, as
OpenTelemetry's, SQLite's and the senders' integers do. One past it (up to 4,300 digits, which
JSON parsing takes) no sink could carry: no float holds one of 309 digits."""

NonNegInt = Annotated[int, Field(ge=0, le=MAX_WHOLE)]
JsonMap = dict[str, Any]

_T = TypeVar("_T")


def _is_none(value: object) -> bool:
    return value is None


OmittedWhenNone = Annotated[_T | None, Field(exclude_if=_is_none)]
"""A field added to a message after its first release: ``OmittedWhenNone[int] = None``.

None leaves the field out of the payload rather than writing ``null``, so that a replica of a
version before the field (its models forbid fields they do not know) still takes every message
that does not use it. The fields of the first release write their None as ``null``, as they
always have (tests/messages/test_wire.py pins which)."""


def random_hex(prefix: str = "") -> str:
    """``prefix`` plus 16 random lowercase hex characters (the original's id scheme)."""
    return prefix + secrets.token_hex(8)


# The form format_timestamp writes (RFC 3339, UTC as Z, at most milliseconds): pydantic-core's
# own parse of it is already what to_utc_ms would return, so the wire schema needs no Python.
_CANONICAL_TIMESTAMP: Final = core_schema.chain_schema(
    [
        core_schema.str_schema(
            pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?Z$",
            strict=True,
        ),
        core_schema.datetime_schema(),
    ]
)


# A number field takes a JSON number, or text that is one ("1.5"), read as that number is; not
# true or false, which pydantic's lax int and float read as 1 and 0 (the JSON Schema says
# number), nor other text its lax rules read (" 10 ", "1_000", "+10", "010", ".5"), which other
# receivers read otherwise or not at all. Natively: a chain whose first step lets a number
# (strict: no bool) by unchanged, and JSON number text, either unchanged where the field's own
# schema reads it as json.loads would (_READ_NATIVELY) or as the number it holds
# (_number_of_text, a Python call: "1e1" in an int field), and whose second is the field's own
# schema (its bounds, its reading of text, its errors). One error for whatever else: a union's
# would name each of its members. In an int field "10.0" and "1e1" are 10, as the numbers 10.0
# and 1e1 are (pydantic's lax int, JSON Schema's integer) and as protobuf's JSON mapping reads
# "1e5" in an int32 (a required conformance case): text and number never part ways.
_WHOLE: Final = r"-?(?:0|[1-9][0-9]*)"
_FRACTION: Final = r"\.[0-9]+"
_EXPONENT: Final = r"[eE][+-]?[0-9]+"
_JSON_NUMBER: Final = rf"^{_WHOLE}(?:{_FRACTION})?(?:{_EXPONENT})?$"
# The JSON number text a field's lax schema reads as json.loads reads it: in an int field a whole
# one (it reads no "1e1"); in a float field any but "-0", which it reads as -0.0, json.loads as
# the int 0.
_READ_NATIVELY: Final = {
    "int": rf"^{_WHOLE}$",
    "float": rf"^(?:0|-?[1-9][0-9]*|{_WHOLE}(?:{_FRACTION}(?:{_EXPONENT})?|{_EXPONENT}))$",
}
_NOT_A_NUMBER: Final = (
    'Input should be a finite number, or text holding one as JSON writes it ("1.5", "-2", "1e3")'
)


def _number_of_text(text: str) -> int | float:
    """The number a ``_JSON_NUMBER`` text holds, as ``json.loads`` reads it: whole without a
    fraction or an exponent, else a float ("1e1" is 10.0, which an int field takes, as it takes
    the number 1e1)."""
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def _number_or_text(kind: str) -> CoreSchema:
    number = core_schema.float_schema(strict=True, allow_inf_nan=True)  # 1e400: the field's
    text: list[CoreSchema] = [
        core_schema.str_schema(pattern=_READ_NATIVELY[kind], strict=True),
        core_schema.chain_schema(
            [
                core_schema.str_schema(pattern=_JSON_NUMBER, strict=True),
                core_schema.no_info_plain_validator_function(_number_of_text),
            ]
        ),
    ]
    # In the order that is cheapest for what is most often given: a strict float refusing text
    # costs several times what the others do (in Python, 0.3 us), so an int field, mostly given
    # ints, tries it last (a float there, 1.0, is the int's to judge); a float field first.
    choices: list[CoreSchema | tuple[CoreSchema, str]] = (
        [core_schema.int_schema(strict=True), *text, number] if kind == "int" else [number, *text]
    )
    return core_schema.union_schema(
        choices,
        mode="left_to_right",
        custom_error_type="not_a_number",
        custom_error_message=_NOT_A_NUMBER,
    )


_NUMBER_OR_TEXT: Final = {kind: _number_or_text(kind) for kind in ("int", "float")}

# A boolean field takes true and false alone, where pydantic's lax bool also reads 1, 0, 1.0
# and text ("yes", "off", "t", "0"): the JSON Schema says boolean, and a sender quoting its
# booleans has a bug other receivers read otherwise (the text "false" is true in JavaScript and
# Python). Worded for what it takes: pydantic's strict message ("a valid boolean") would not
# tell a sender of "yes", which its lax one takes, what is wanted.
_NOT_BOOLEAN: Final = "Input should be a boolean, true or false"


def _own_json_schema(schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    # A chain's JSON Schema is its first step's: the number's own is the one to publish.
    return handler(schema["steps"][-1])


def number_schema(schema: Any) -> Any:
    """The number schema (int or float, its bounds) of a field's ``schema`` that refuses a bool
    (as ``Message`` makes every number's), or None when it is not one."""
    if schema.get("type") != "chain" or schema["steps"][0] not in _NUMBER_OR_TEXT.values():
        return None
    return schema["steps"][-1]


def boolean_schema(schema: Any) -> Any:
    """The bool schema of a field's ``schema`` that takes true and false alone (as ``Message``
    makes every bool's), or None when it is not one."""
    if schema.get("type") != "custom-error" or schema.get("custom_error_message") != _NOT_BOOLEAN:
        return None
    return schema["schema"]


def _booleans_apart(schema: Any) -> Any:
    """A copy of a core ``schema`` whose int and float schemas refuse a bool and whose bool
    schemas take nothing else (shared parts kept); the parts made so already are kept as they
    are, so that a schema made so twice is made so once."""
    if isinstance(schema, list):
        return [_booleans_apart(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if number_schema(schema) is not None or boolean_schema(schema) is not None:
        # Made so already: a Message's own schema inside another's (a field of its type).
        return schema
    kind = schema.get("type")
    if kind in _NUMBER_OR_TEXT:
        return core_schema.chain_schema(
            [_NUMBER_OR_TEXT[kind], schema],
            metadata={"pydantic_js_functions": [_own_json_schema]},
        )
    if kind == "bool":
        # Strict in Python too: the reference decoder validates what json.loads made.
        return core_schema.custom_error_schema(
            {**schema, "strict": True},
            custom_error_type="not_boolean",
            custom_error_message=_NOT_BOOLEAN,
        )
    # A serializer's schema says what is written, not read (its "int" is no field).
    return {
        key: value if key in ("serialization", "metadata") else _booleans_apart(value)
        for key, value in schema.items()
    }


BOOLEANS_APART: Final = GetPydanticSchema(lambda source, handler: _booleans_apart(handler(source)))
"""An ``Annotated`` marker: the type's int and float schemas refuse a bool and its bool schemas
take nothing else, as a ``Message``'s do (the reference decoder's validators of a field's
items)."""


class Message(BaseModel):
    """Base of the 36 message types.

    Subclasses set ``TAG`` (the wire name) and ``INSTANCE`` (the bus instance). A subclass with a
    ``node`` field gets it from the validation context ``{"node": ...}`` (the envelope's node)
    when the payload leaves it out or sends null; ``DERIVED`` names the fields whose default is
    computed from other fields or from that node, also when left out or null. A field added to
    a model after its first release is declared ``OmittedWhenNone[...] = None``: left out of the
    payload while None, which a replica of the version before it requires.
    """

    # No NaN or infinity in a float field, whatever the form ("NaN" as text included): JSON
    # has none, and a label or sample the sinks would make of one is meaningless.
    # Each model is built (its schema and validator made) when first used, not at import: a
    # bridge whose bus decodes no bytes makes a few of the 36 types as it starts. One that
    # decodes builds them all as it starts (its decoders read ``built_core_schema``).
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_max_length=65536, allow_inf_nan=False, defer_build=True
    )

    TAG: ClassVar[str]
    INSTANCE: ClassVar[str]
    DERIVED: ClassVar[tuple[str, ...]] = ()
    FILLED: ClassVar[tuple[str, ...]] = ()
    """``node`` (when the model has one) and ``DERIVED``: what a payload may leave out or send as
    null although the model needs a value (set for each subclass)."""

    timestamp: Timestamp = Field(default_factory=utc_now)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler, /
    ) -> CoreSchema:
        """The model's core schema, its numbers refusing a bool and its bools taking nothing
        else (``_booleans_apart``)."""
        schema: CoreSchema = _booleans_apart(handler(source))
        return schema

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        node = ("node",) if "node" in cls.__pydantic_fields__ else ()
        cls.FILLED = node + cls.DERIVED

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Validate ``obj``; a missing or null ``node`` comes from ``context["node"]``."""
        # Filled here rather than in a before-validator: that would be a Python call inside every
        # validation (the envelope decoder fills it after validating, see wire_schema).
        if (
            context
            and isinstance(obj, dict)
            # __pydantic_fields__, not model_fields: the latter is a slow property.
            and "node" in cls.__pydantic_fields__
            and obj.get("node") is None
            and context.get("node")
        ):
            obj = {**obj, "node": context["node"]}
        return super().model_validate(
            obj,
            strict=strict,
            extra=extra,
            from_attributes=from_attributes,
            context=context,
            by_alias=by_alias,
            by_name=by_name,
        )

    @classmethod
    def wire_schema(cls) -> CoreSchema:
        """The core schema the envelope decoder validates this model's JSON payloads with.

        The model's own, so that pydantic-core builds the same message, but with no Python call
        for a complete payload in the canonical form: a timestamp written as
        :func:`format_timestamp` writes it is parsed natively (any other form still goes through
        the model's UTC/millisecond validator); the ``FILLED`` fields, when left out or null,
        are None, for the decoder to fill (``node`` with the envelope's, the others with
        :meth:`fill_derived`); the model's before-validators (which only fill those) are
        left out; and a list or object stops at its first wrong item (``fail_fast``: the
        decoder only asks whether a payload passes; the reference decoder words why not).
        """
        schema: CoreSchema = _wire(cls.built_core_schema(), frozenset(cls.FILLED))
        return schema

    @classmethod
    def built_core_schema(cls) -> CoreSchema:
        """The model's core schema, the model built first if no message of it has been yet."""
        cls.model_rebuild()  # nothing to do once built
        return cls.__pydantic_core_schema__

    def fill_derived(self, node: str) -> None:
        """Give the ``DERIVED`` fields a :meth:`wire_schema` payload left None their defaults.

        ``node`` is the envelope's. For the envelope decoder only: it writes the frozen
        message in place, before anyone else holds it.
        """
        values = self.__dict__
        missing = [name for name in self.DERIVED if values[name] is None]
        values.update(self._derived(self, missing, node))
        # As if given: model_validate's before-validators add them to its input, so set too.
        self.__pydantic_fields_set__.update(missing)

    @classmethod
    def _derived(cls, fields: Any, missing: Sequence[str], node: str) -> dict[str, Any]:
        """The values of the ``missing`` DERIVED fields (each subclass with some computes them)
        from the others, read as attributes of ``fields``: the message, or the values the
        envelope decoder builds it from."""
        return {}


def _wire(schema: Any, filled: frozenset[str]) -> Any:
    """A copy of a model's core ``schema`` as ``wire_schema`` describes it (shared parts kept)."""
    if isinstance(schema, list):
        return [_wire(item, filled) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind == "function-after" and schema["function"]["function"] is to_utc_ms:
        return core_schema.union_schema([_CANONICAL_TIMESTAMP, schema], mode="left_to_right")
    if kind == "function-before" and schema["schema"]["type"] == "model-fields":
        return _wire(schema["schema"], filled)
    copy = {key: _wire(value, filled) for key, value in schema.items()}
    if kind in ("list", "dict"):
        # Past its first wrong item a list is refused all the same: the decoder only asks whether
        # a payload passes, and pydantic-core builds each error (500 000 took 0.5 s, the GIL held).
        copy["fail_fast"] = True
    if kind == "model-fields":
        fields = copy["fields"]
        for name in filled:
            inner = fields[name]["schema"]
            if inner["type"] == "default":
                inner = inner["schema"]
            own = number_schema(inner)
            if own is not None and own.get("allow_inf_nan"):
                # Only a derived value may be infinite (fill_derived's); a given one is finite.
                steps = [*inner["steps"][:-1], {**own, "allow_inf_nan": False}]
                inner = {**inner, "steps": steps}
            fields[name] = {
                **fields[name],
                "schema": core_schema.with_default_schema(
                    core_schema.nullable_schema(inner), default=None
                ),
            }
    return copy
