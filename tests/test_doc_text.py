"""Reading the pages (tests/doc_text.py): code spans as Markdown shows them, wrapped ones too."""

from __future__ import annotations

import pytest

from tests.doc_text import anchors, prose, spans


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("run `exesdb-bridge check-config` and `tail`", ["exesdb-bridge check-config", "tail"]),
        ("run `exesdb-bridge\ncheck-config` and `tail`", ["exesdb-bridge check-config", "tail"]),
        ("- say `warning: a\n  b` and `c`", ["warning: a b", "c"]),
        ("a `b\n\nc` d", []),
        ("- `a\n- b`", []),
        ("| `a |\n| b` |", []),
        ("# `a\n## b`", []),
        ("```sh\necho `date`\n```\nthen `x`", ["x"]),
    ],
    ids=[
        "one-line",
        "over-a-line-break",
        "indented-continuation",
        "not-over-a-blank-line",
        "not-into-the-next-item",
        "not-into-the-next-row",
        "not-into-a-heading",
        "not-in-a-fenced-block",
    ],
)
def test_spans_are_the_code_spans_markdown_shows(text: str, found: list[str]) -> None:
    """A code span wrapped over a line break within its paragraph is one span, the break shown
    as one space; a blank line, a list's next item, a table's next row or a heading ends the
    paragraph, so no span runs into it; a fenced block holds none."""
    assert spans(text) == found


def test_prose_leaves_out_a_code_span_wrapped_over_a_line_break() -> None:
    """A wrapped code span is no prose: a link written inside it is not read as a link."""
    assert prose("see `a](b\nc` and [d](e)") == "see  and [d](e)"


def test_anchors_are_the_headings_and_the_html_anchors_of_a_page() -> None:
    """A link may lead to a heading or to an HTML anchor (`<a id>` in a table row), never to one
    shown as code or in a fenced block."""
    text = (
        '# Title\n\n| `run` | <a id="command-run"></a>the service |\n\n'
        '`<a id="in-code"></a>`\n\n```\n<a id="in-block"></a>\n```\n'
    )
    assert anchors(text) == {"title", "command-run"}
