"""Characters drawn as nothing, by which a name of them alone shows as no one."""

from __future__ import annotations

import unicodedata
from typing import Final

# Default_Ignorable_Code_Point in the BMP, from Unicode's DerivedCoreProperties.txt (which
# unicodedata does not carry): characters drawn as nothing, so a name of them shows as no one.
DEFAULT_IGNORABLE_BMP = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
)


# Default_Ignorable_Code_Point past the BMP, from the same file.
DEFAULT_IGNORABLE_ASTRAL = ((0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))


# The code points of those ranges, each looked up at once: the tests over every code point ask
# for each of the 1.1 million (a scan of the ranges per character took most of their time).
_IGNORABLE_BMP: Final = frozenset(
    code for low, high in DEFAULT_IGNORABLE_BMP for code in range(low, high + 1)
)


_IGNORABLE_ASTRAL: Final = frozenset(
    code for low, high in DEFAULT_IGNORABLE_ASTRAL for code in range(low, high + 1)
)


def blank_in_the_pattern(character: str) -> bool:
    """Whether ``character`` is whitespace, a default ignorable character of the BMP or the
    braille blank U+2800: a name of these alone shows as no one, as NAME_PATTERN knows it."""
    return character.isspace() or character == "\u2800" or ord(character) in _IGNORABLE_BMP


def drawn_as_nothing(character: str) -> bool:
    """Whether ``character`` shows nothing of a name made of such: ``blank_in_the_pattern``, a
    default ignorable character past the BMP, or a combining mark (with no letter to sit on)."""
    return (
        blank_in_the_pattern(character)
        or unicodedata.category(character).startswith("M")
        or ord(character) in _IGNORABLE_ASTRAL
    )
