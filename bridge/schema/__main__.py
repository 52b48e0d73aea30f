"""``python -m bridge.schema PATH``: write ``docs/messages.md`` (``make docs``) to PATH."""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.schema.markdown import render_markdown

# argparse, so that --help prints this usage rather than being taken for the PATH to write.
_parser = argparse.ArgumentParser(
    prog="python -m bridge.schema",
    description="Write the message reference (docs/messages.md, as make docs does) to PATH.",
)
_parser.add_argument("path", metavar="PATH", type=Path, help="the file to write, docs/messages.md")
_parser.parse_args().path.write_text(render_markdown())
