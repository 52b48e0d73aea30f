"""The ``exesdb-bridge`` command (docs/cli.md), one module per group of subcommands.

Exit status: 0 on success, 1 when the work failed (e.g. a refused publish), 2 on bad usage or
configuration. The commands that talk to a running bridge find it as ``client.py`` says.

The parts: ``parser.py`` builds the command line and runs the command chosen; ``service.py``
holds ``run`` and ``check-config``, ``messages.py`` ``publish`` and ``tail``, ``alerts.py`` and
``outbox.py`` the alert admin commands, ``healthcheck.py`` ``healthcheck``; ``remote.py`` is what
the commands asking a running bridge share, ``client.py`` how they reach it, ``shared.py`` what
every command does. ``schema`` is ``bridge.schema``'s.

``bridge.__main__`` runs a plain ``healthcheck`` through ``healthcheck.py`` alone, and a plain
``run`` through ``service.py``, without the parser: so this package imports ``parser.py`` when
``build_parser`` or ``main`` is first asked for (``bridge.exports``), and an exec probe or the
service pays for neither.

Each command imports what it uses, in its handler: building the parser and ``--help`` import
none of pydantic, aiohttp or the models, and no client command imports the service's libraries
(tests/test_cli_imports.py; docs/performance.md, "Start-up").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]

__getattr__ = lazy_exports(__name__, {"parser": ("build_parser", "main")})
