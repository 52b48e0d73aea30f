"""Free text shown to a person (``hidden_shown``): what hides in it is shown as its escape, what
an emoji is made of is kept."""

from __future__ import annotations

import re

import pytest

from bridge.hidden import NODE_REFUSED, hidden_shown, on_one_line

# Characters a node name refuses that hide in free text too, one of each kind: the Hangul
# fillers, the soft hyphen, the combining grapheme joiner, a Khmer inherent vowel, an invisible
# operator, a deprecated format character, an interlinear annotation, tags, noncharacters, a
# zero-width space and a right-to-left override.
HIDDEN = ["\u3164", "\uffa0", "\u115f", "\u1160", "\u00ad", "\u034f", "\u17b4", "\u2062",
          "\u206a", "\ufff9", "\U000e0001", "\U000e0041", "\U000e007f", "\ufdd0", "\ufffe",
          "\U0010ffff", "\u200b", "\u202e"]  # fmt: skip
# Emoji whole: joined (a technologist, a family, a rainbow flag, a heart on fire, a runner with
# a skin tone), a keycap, a subdivision flag (Scotland's tags), text and emoji presentation;
# and a CJK ideograph's variation selector.
EMOJI = ["\U0001f469\u200d\U0001f4bb", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
         "\U0001f3f3\ufe0f\u200d\U0001f308", "\u2764\ufe0f\u200d\U0001f525",
         "\U0001f3c3\U0001f3fd\u200d\u2640\ufe0f", "#\ufe0f\u20e3",
         "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
         "\u2603\ufe0e", "\u2603\ufe0f", "\u845b\U000e0100"]  # fmt: skip


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


@pytest.mark.parametrize("character", HIDDEN, ids=ascii)
def test_a_character_drawn_as_nothing_is_shown_as_its_escape(character: str) -> None:
    """A title holding a Hangul filler, a tag, a noncharacter or another character drawn as
    nothing (each refused in a node name too) shows it as its escape, alone or among words."""
    assert re.fullmatch(f"[{NODE_REFUSED}]", character)
    assert hidden_shown(f"disk{character} full") == f"disk{_escape(character)} full"
    assert hidden_shown(character) == _escape(character)
    assert on_one_line(f"a{character}\n") == f"a{_escape(character)}\\u000a"


@pytest.mark.parametrize("emoji", EMOJI, ids=ascii)
def test_an_emoji_keeps_its_joiners_selectors_and_tags(emoji: str) -> None:
    """An emoji made of several characters (joined by U+200D, with U+FE0F, a keycap, a
    subdivision flag's tags) and an ideograph's variation selector are shown as written."""
    title = f"deploy {emoji} done"
    assert hidden_shown(title) == title
    assert on_one_line(title) == title


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("disk\u200d full", "disk\\u200d full"),  # a joiner between letters: nothing joined
        ("\u200d\U0001f4bb", "\\u200d\U0001f4bb"),  # nothing before it
        ("\U0001f469\u200d", "\U0001f469\\u200d"),  # nothing after it
        ("\ufe0fdisk", "\\ufe0fdisk"),  # a selector choosing for nothing
        ("a\ufe0f\ufe0e\ufe00", "a\ufe0f\\ufe0e\\ufe00"),  # a run: text no one sees
        ("\U0001f600\U000e0101\U000e0102", "\U0001f600\U000e0101\\U000e0102"),
        ("\U0001f3f4\U000e0041\U000e0042\U000e007f", "\U0001f3f4\\U000e0041\\U000e0042\\U000e007f"),
    ],
    ids=ascii,
)
def test_what_an_emoji_is_made_of_is_escaped_where_it_makes_none(text: str, shown: str) -> None:
    """A joiner not between two emoji, a variation selector after nothing or after another (a
    run of them spells bytes no one sees) and tags that are no subdivision flag's are shown as
    their escapes."""
    assert hidden_shown(text) == shown


# Words spelt with a joiner where RFC 5892 takes one (as a node name may hold it): Persian
# (yeh, ZWNJ, khah), Devanagari (ka, virama, ZWJ, ssa: a half form), Malayalam.
JOINED_WORDS = ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\u0915\u094d\u200d\u0937",
                "\u0915\u094d\u200c\u0937", "\u0d28\u0d4d\u200d\u0d28"]  # fmt: skip


@pytest.mark.parametrize("word", JOINED_WORDS, ids=ascii)
def test_a_words_own_joiner_is_kept(word: str) -> None:
    """A Persian, Devanagari or Malayalam word's joiner, where joiners_placed takes it, is shown
    as written (a page naming such a node shows its name); one between Latin letters or after
    an alef is still shown as its escape."""
    title = f"deploy {word} done"
    assert hidden_shown(title) == title
    assert on_one_line(title) == title
    assert hidden_shown("ab\u200ccd") == "ab\\u200ccd"
    assert hidden_shown("\u0627\u200c\u0628") == "\u0627\\u200c\u0628"
