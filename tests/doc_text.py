"""Reading the README and the pages under docs/: sections, fenced blocks, links and anchors."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tests.support import ROOT

DOCS = ROOT / "docs"
README = ROOT / "README.md"


def pages() -> list[Path]:
    """The README and every page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def page(name: str) -> str:
    """The text of ``docs/<name>.md``."""
    return (DOCS / f"{name}.md").read_text()


def section(text: str, title: str, level: int = 2) -> str:
    """The body of heading ``title`` at ``level``, up to the next heading at that level or above.

    Lines in fenced blocks are never headings (a shell comment is not a title).
    """
    body: list[str] | None = None
    in_fence = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            in_fence = not in_fence
        heading = None if in_fence else re.match(r"(#{1,6}) (.+?)\s*$", line)
        if heading and len(heading.group(1)) <= level and body is not None:
            break
        if body is not None:
            body.append(line)
        elif heading and len(heading.group(1)) == level and heading.group(2) == title:
            body = []
    assert body is not None, f"no '{'#' * level} {title}' heading"
    return "".join(body)


# Labels Prometheus or a ServiceMonitor give every target: no catalog row lists them.
TARGET_LABELS: Final = frozenset(
    {"job", "instance", "pod", "namespace", "service", "endpoint", "container"}
)


def catalog_rows() -> dict[str, tuple[str, set[str], str]]:
    """Each series name of docs/metrics.md's catalog tables: its row's type, label names and
    meaning."""
    rows = {}
    for line in section(page("metrics"), "Metric catalog").splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        labels = set(re.findall(r"`([a-z_]+)`", cells[2]))
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[name] = (cells[1], labels, cells[3])
    return rows


def fenced(text: str, language: str) -> list[str]:
    """The contents of every fenced block in ``language``."""
    return re.findall(rf"^```{re.escape(language)}\n(.*?)^```", text, re.M | re.S)


def shell_commands(text: str) -> list[list[str]]:
    """Every ``exesdb-bridge`` command of the ``sh`` blocks of ``text``, as arguments after the
    command (a line continued with a backslash read as one; ``VAR=value`` before it dropped)."""
    commands = []
    for block in fenced(text, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            if "exesdb-bridge" not in line:
                continue  # another program's line, perhaps quoted over several (jq's filter)
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                words.pop(0)  # VAR=value before the command
            if words and words[0].endswith("exesdb-bridge"):
                commands.append([word for word in words[1:] if word != "&"])
    return commands


# A code span: text between two backticks, which may run over a line break within its paragraph
# (a sentence wrapped in the page), not into a blank line, a table's next row, a heading, a quote,
# a fence or a list's next item, where CommonMark ends the paragraph and the span with it.
_SPAN: Final = re.compile(r"`((?:[^`\n]|\n(?![ \t]*(?:\n|[|>#]|```|[-*+][ \t]|\d+[.)][ \t])))+)`")
# A line break in a span, with the next line's indent: CommonMark shows it as one space.
_SPAN_BREAK: Final = re.compile(r"\n[ \t]*")


def prose(text: str) -> str:
    """``text`` without fenced blocks, HTML comments and code spans: what renders as Markdown."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return _SPAN.sub("", text)


def spans(text: str) -> list[str]:
    """The code spans of ``text`` outside fenced blocks, without their backticks; a span that
    runs over a line break has it as one space, as it is shown."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return [_SPAN_BREAK.sub(" ", span) for span in _SPAN.findall(text)]


def links(text: str) -> Iterator[str]:
    """The targets of the Markdown links and images in ``text``."""
    yield from re.findall(r"\]\(([^)\s]+)\)", prose(text))


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of ``text`` (duplicates get ``-1``, ``-2``...), and
    those of its HTML anchors (``<a id="command-run"></a>`` in a table row)."""
    without_code = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    found = set(re.findall(r'<a (?:id|name)="([^"]+)"></a>', _SPAN.sub("", without_code)))
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", without_code, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """The relative links of the page at ``path`` whose file or heading does not exist."""
    text = path.read_text()
    broken = []
    # Each page's headings read once: docs/performance.md links to its own hundreds of times.
    headings: dict[Path, set[str]] = {}
    for target in links(text):
        if re.match(r"[a-z]+:", target):
            continue  # http://, https://, mailto:: not ours to check offline
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {file_part}")
        elif anchor and linked.suffix == ".md":
            if linked not in headings:
                headings[linked] = anchors(linked.read_text())
            if anchor not in headings[linked]:
                broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken
