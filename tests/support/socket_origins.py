"""Where each socket of the test process was made, named in the failure a socket left unclosed
causes.

A socket left unclosed is found by the garbage collector in whichever test runs then, and its
ResourceWarning (an error in this suite, which pytest turns into a failure of that test) names
only the socket. An audit hook notes at each socket's making the test running and the innermost
frames of this checkout's code (tracemalloc would tell as much, at the cost of tracing every
allocation); ``with_origins`` puts them in that failure's message.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

__all__ = ["install_socket_origins", "running_test", "with_origins"]

_CHECKOUT: Final = str(Path(__file__).resolve().parents[2]) + "/"
# The frames named: this checkout's innermost few, and the library call that made the socket.
_FRAMES: Final = 4

# id of each socket made -> where; a socket's id is another's once it is freed, so this holds
# one entry for each address sockets have had (some thousands), each rewritten at the next.
_made: dict[int, str] = {}
# The test running (its node id), or what runs between tests.
running_test = ["(no test)"]


def _note_socket(event: str, args: tuple[Any, ...]) -> None:
    """The audit hook: notes where each socket is made."""
    if event == "socket.__new__":
        # An audit hook that raises fails what it audits: the socket's making.
        with contextlib.suppress(Exception):
            _made[id(args[0])] = _where()


def _where() -> str:
    stack = traceback.StackSummary.extract(traceback.walk_stack(None), lookup_lines=False)
    frames = [f for f in stack if f.filename != __file__]  # not this module's own
    ours = [f for f in frames if f.filename.startswith(_CHECKOUT) and "/.venv/" not in f.filename]
    named = ([] if not frames or frames[0] in ours else [frames[0]]) + ours[:_FRAMES]
    calls = " < ".join(
        f"{Path(f.filename).relative_to(_CHECKOUT) if f in ours else Path(f.filename).name}:"
        f"{f.lineno} {f.name}"
        for f in named
    )
    return f"in {running_test[0]}, at {calls}"


def with_origins(hook: Callable[[Any], object]) -> Callable[[Any], None]:
    """``hook`` (a ``sys.unraisablehook``) given, for a socket's ResourceWarning, a message that
    also says where the socket was made."""

    def unraisable(info: Any) -> None:
        where = _made.get(id(info.object)) if isinstance(info.object, socket.socket) else None
        if where is not None and isinstance(info.exc_value, ResourceWarning):
            said = info.err_msg or "Exception ignored in"
            # The hook's argument type is not importable: made again from the one given.
            info = type(info)(
                (info.exc_type, info.exc_value, info.exc_traceback, f"{said} the socket made "
                 f"{where}", info.object)
            )  # fmt: skip
        hook(info)

    return unraisable


def install_socket_origins() -> None:
    """Note where every socket is made from now on, and say it in a leaked socket's failure
    (the hook set now, ``sys.unraisablehook``, wrapped)."""
    sys.addaudithook(_note_socket)
    sys.unraisablehook = with_origins(sys.unraisablehook)
