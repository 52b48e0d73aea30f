"""``python -m bridge.schema PATH``: write ``docs/messages.md`` (``make docs``) to PATH."""

from __future__ import annotations

import sys
from pathlib import Path

from bridge.schema.markdown import render_markdown

if len(sys.argv) != 2:
    sys.exit("usage: python -m bridge.schema docs/messages.md")
Path(sys.argv[1]).write_text(render_markdown())
