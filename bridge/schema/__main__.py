"""``python -m bridge.schema PATH``: write ``docs/messages.md`` (``make docs``) to PATH."""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.schema.markdown import render_markdown
from bridge.source_repository import cite_source

# argparse, so that --help prints this usage rather than being taken for the PATH to write.
_parser = argparse.ArgumentParser(
    prog="python -m bridge.schema",
    description=(
        f"Write the message reference ({cite_source('docs/messages.md')}, which make docs"
        " writes) to PATH."
    ),
)
_parser.add_argument("path", metavar="PATH", type=Path, help="the file to write")
_parser.parse_args().path.write_text(render_markdown())
