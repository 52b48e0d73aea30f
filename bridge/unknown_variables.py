"""Set ``EXESDB_*`` variables that are no setting, each named with the setting it may mean.

A misspelt name is ignored like any other, so a required setting looks missing or a default
stays in force without a word; ``run`` and ``check-config`` warn of each such variable, with
the closest setting's name (``EXESDB_WEBHOOK_URL``: did you mean ``EXESDB_WEBHOOK_URLS``?).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Set
from typing import Final

from bridge.probe_settings import variable_value

__all__ = ["unknown_variable_warnings"]

# Prefixes of the variables meant for the bridge: a set one it does not know is likely a typo.
_OURS: Final = ("EXESDB_",)
# Names other tools give what the bridge calls otherwise, which spelling alone would not lead to
# (EXESDB_REDIS_URL is nearest to EXESDB_REDIS_BUFFER_SIZE; the Redis URL goes in EXESDB_BUS).
_ALSO_CALLED: Final = {
    "EXESDB_REDIS_URL": "EXESDB_BUS",
    "EXESDB_REDIS": "EXESDB_BUS",
    "EXESDB_BUS_URL": "EXESDB_BUS",
    "EXESDB_PORT": "EXESDB_HTTP_ADDR",
    "EXESDB_HOST": "EXESDB_HTTP_ADDR",
}


def unknown_variable_warnings(environ: Mapping[str, str], known: Set[str]) -> list[str]:
    """A warning for each ``EXESDB_*`` variable of ``environ`` (in any case) that is not among
    the ``known`` settings' names, naming the closest of them when one is close."""
    # Compared without the common prefix, which would make every name look close.
    by_stem = {_stem(name): name for name in known}
    notes = []
    for name in sorted(environ):
        # Names are case-sensitive: a lower-case one is ignored, so it is named too. One set to
        # the empty string or blanks is unset, as a setting's is, so has nothing to be ignored.
        if (
            not name.upper().startswith(_OURS)
            or name in known
            or variable_value(environ, name) is None
        ):
            continue
        upper = name.upper()
        close = [_stem(_ALSO_CALLED[upper])] if upper in _ALSO_CALLED else []
        close = close or difflib.get_close_matches(_stem(upper), by_stem, n=1)
        hint = (
            f"did you mean {by_stem[close[0]]}?" if close else "the settings: docs/configuration.md"
        )
        notes.append(f"{name} is set but is not a setting of the bridge (ignored); {hint}")
    return notes


def _stem(name: str) -> str:
    for prefix in _OURS:
        name = name.removeprefix(prefix)
    return name
