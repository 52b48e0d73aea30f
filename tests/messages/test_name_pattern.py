"""The name pattern read alike by each engine that checks it (the models, pydantic-core's Rust
regex, msgspec's Python re): blank names and names of characters drawn as nothing refused, others
taken."""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Annotated

import msgspec
import pytest
from pydantic import ValidationError
from pydantic_core import SchemaValidator, core_schema

import bridge.messages as messages
from bridge.bus.struct_patterns import NAME
from bridge.messages import NAME_PATTERN, AlertAck
from tests.support import blank_in_the_pattern, drawn_as_nothing

# The name pattern read by each engine that checks it: pydantic-core's Rust regex (the models),
# Python's re through msgspec (the envelope decoder's fast path, bridge.bus.struct_patterns).
_RUST_NAMES = SchemaValidator(
    core_schema.list_schema(core_schema.str_schema(pattern=NAME_PATTERN, regex_engine="rust-regex"))
)
_MSGSPEC_NAME = Annotated[str, msgspec.Meta(pattern=NAME)]


def _taken_by_each_engine(name: str) -> tuple[bool, bool, bool]:
    """Whether AlertAck's ack_by, the Rust regex alone and msgspec take ``name``."""
    try:
        AlertAck.model_validate({"alert_id": "a1", "ack_by": name})
    except ValidationError:
        model = False
    else:
        model = True
    try:
        _RUST_NAMES.validate_python([name])
    except ValidationError:
        rust = False
    else:
        rust = True
    try:
        msgspec.convert(name, _MSGSPEC_NAME)
    except msgspec.ValidationError:
        fast = False
    else:
        fast = True
    return model, rust, fast


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("", False),
        (" ", False),
        ("   ", False),
        ("\t", False),  # a control character anyway
        ("\xa0", False),
        ("\u3000", False),
        (" \u2003\u205f\u1680\u202f ", False),
        (" " * 200, False),
        ("\u200b", False),
        ("\ufeff\u2060\u3164\u00ad \u200c", False),
        ("\u2800", False),
        ("a\u2800b", True),
        ("a", True),
        ("a\u200bb", True),
        ("\U0001f468\u200d\U0001f469", True),
        (" a ", True),
        ("\u3000名前\u3000", True),
        (" " * 199 + "a", True),
        ("a" * 200, True),
    ],
    ids=ascii,
)
def test_a_blank_name_is_refused_by_every_engine_alike(name: str, taken: bool) -> None:
    """A name of spaces or other Unicode whitespace only (U+00A0, U+3000), or of characters drawn
    as nothing (U+200B, U+FEFF), shows as no one: the model, pydantic-core's Rust regex and
    msgspec's Python re refuse it alike; a name with one other character among blanks is taken,
    up to 200 characters, invisible ones within it too (U+200D joining an emoji)."""
    assert _taken_by_each_engine(name) == (taken, taken, taken)


def test_a_one_character_name_is_refused_by_both_engines_as_unicode_says() -> None:
    """Over every code point (lone surrogates aside), the Rust regex and Python's re refuse the
    same one-character names: exactly the whitespace, the BMP's default ignorable characters and
    the braille blank U+2800 (shown as no one), the controls, the line and paragraph separators
    and the bidirectional controls, by Unicode's own data (Default_Ignorable_Code_Point as
    DerivedCoreProperties.txt lists it, which unicodedata does not carry)."""
    characters = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    try:
        _RUST_NAMES.validate_python(characters)
    except ValidationError as exc:
        refused_by_rust = {characters[int(error["loc"][0])] for error in exc.errors()}
    else:
        refused_by_rust = set()
    python = re.compile(NAME)  # msgspec checks a pattern with re.search
    refused_by_python = {character for character in characters if not python.search(character)}
    refused_by_unicode = {
        character
        for character in characters
        if blank_in_the_pattern(character)
        or unicodedata.category(character) in ("Cc", "Zl", "Zp")
        or unicodedata.bidirectional(character)
        in ("LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI")
        or character in "\u061c\u200e\u200f"
    }
    assert refused_by_rust == refused_by_python == refused_by_unicode


def test_a_one_character_name_the_pattern_takes_is_refused_when_unicode_draws_it_as_nothing() -> (
    None
):
    """Over every code point the name pattern takes, visible_name (ack_by's check after it)
    refuses exactly those drawn as nothing past the pattern's reach: the default ignorable
    characters beyond the BMP (U+E0001, U+1D173, U+1BCA0) and the combining marks (U+0301 with
    no letter to sit on), by Unicode's own data; AlertAck refuses them as blank."""
    python = re.compile(NAME)
    taken = [
        chr(c)
        for c in range(sys.maxunicode + 1)
        if not 0xD800 <= c <= 0xDFFF and python.search(chr(c))
    ]
    refused = set()
    for character in taken:
        try:
            messages.visible_name(character)
        except ValueError:
            refused.add(character)
    assert refused == {character for character in taken if drawn_as_nothing(character)}
    with pytest.raises(ValidationError, match="must not be blank"):
        AlertAck.model_validate({"alert_id": "a1", "ack_by": "\U000e0041\u0301"})
