"""The string patterns the fast decoders' Structs check, written for Python's ``re``.

The models' patterns are read by pydantic-core's Rust regex; msgspec reads them with Python's
``re``, which takes ``$`` for "end, or before a final newline": each pattern here ends at ``\\Z``
instead, and is the one the Structs check in place of the model's (``struct_fields``). Those
meant for the checking decoder alone (``CHECKED``) refuse what clean bytes cannot hold
(``batch_scans.is_clean``).
"""

from __future__ import annotations

from typing import Final

from bridge.hidden import NODE_BLANK, NODE_REFUSED_BMP, NODE_REFUSED_BMP_BUT_JOINERS
from bridge.messages import NAME_PATTERN

__all__ = [
    "ALERT_ID",
    "ALERT_ID_CLEAN",
    "LABEL",
    "NAME",
    "NODE_NAME",
    "NODE_TEXT",
]

# Past the BMP the Structs refuse every character, those a node name may hold too: Python's re
# reads a class holding NODE_PATTERN's ranges there at 4-8 times the cost of one without (a
# range checked after another for each character). A name holding one (U+1F680) is left to the
# pydantic-core path, whose Rust regex reads them all at no cost.
_NODE_REFUSED: Final = NODE_REFUSED_BMP + r"\U00010000-\U0010ffff"
_NODE_TEXT_REFUSED: Final = _NODE_REFUSED + r"\ud800-\udfff"
LABEL: Final = rf"\A[^{_NODE_REFUSED}]*\Z"
"""``LABEL_PATTERN`` in the BMP: none of the characters a node name refuses, and no character
past U+FFFF (those left to the pydantic-core path)."""
# The joiners, refused at a name's ends but taken inside it, where the builders of the Structs
# checking this (structs.CHECKED: clean bytes hold none) judge them (hidden.joiners_placed).
_NODE_INSIDE: Final = NODE_REFUSED_BMP_BUT_JOINERS + r"\U00010000-\U0010ffff"
# A character neither blank nor refused, then any refused nowhere and, past the first, another
# neither blank nor refused: no blank, nor joiner, at either end.
NODE_NAME: Final = (
    rf"\A[^{_NODE_REFUSED}{NODE_BLANK}](?:[^{_NODE_INSIDE}]*[^{_NODE_REFUSED}{NODE_BLANK}])?\Z"
)
"""``NODE_PATTERN`` in the BMP, but where its joiners stand (the builders judge it): a node
name with no blank or joiner at its start or end and none of the other characters it refuses,
and no character past U+FFFF (those left to the pydantic-core path)."""
NODE_TEXT: Final = (
    rf"\A[^{_NODE_TEXT_REFUSED}{NODE_BLANK}]"
    rf"(?:[^{_NODE_INSIDE}\ud800-\udfff]*[^{_NODE_TEXT_REFUSED}{NODE_BLANK}])?\Z"
)
"""The envelope's ``node``: ``NODE_NAME``, and no lone surrogate (an unpaired
``\\ud800``-``\\udfff`` escape: valid JSON, but no text a label, a page or a message sent on can
carry; the payload's strings are refused one by the models as they are built)."""
# Checked by both decoders: clean bytes may hold either.
ALERT_ID_CLEAN: Final = r"\A(?!\.{1,2}\Z)"
"""``ALERT_ID_PATTERN`` as the clean decoder checks it: neither "." nor ".."."""
ALERT_ID: Final = rf"\A(?!\.{{1,2}}\Z)[^{_NODE_REFUSED}]*\Z"
"""``ALERT_ID_PATTERN`` in the BMP: neither "." nor "..", none of the characters ``LABEL``
refuses, and no character past U+FFFF (those left to the pydantic-core path)."""
# Only AlertAck's ack_by holds it, so no other message pays for it.
NAME: Final = rf"\A{NAME_PATTERN.removeprefix('^').removesuffix('$')}\Z"
"""``NAME_PATTERN``, checked by both decoders: clean bytes may still hold a line or paragraph
separator, written unescaped."""
