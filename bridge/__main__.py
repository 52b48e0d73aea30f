"""``python -m bridge`` is the ``exesdb-bridge`` command."""

from __future__ import annotations

from bridge.cli import main

raise SystemExit(main())
