"""The ingest replay memory kept across a graceful restart: written at stop, read at start.

Without it a restart forgets every id accepted in the last ``EXESDB_REPLAY_WINDOW_MS``, and a
copy of a message sent before it is taken again (a replay, or a resend the bridge already held).
A graceful stop has delivered all it took, so after it a resend is refused as replayed, as before
it; after a crash (SIGKILL) the file is the one left by the stop before, and the ids since are
forgotten, so a sender's resend of what the crash may have lost is taken.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Final

from bridge.bus.replay import ReplayGuard
from bridge.disk import sync_directory
from bridge.regular_files import open_regular

__all__ = ["FILE_NAME", "load", "save"]

_logger = logging.getLogger(__name__)

FILE_NAME: Final = "replay-ids.json"
_VERSION: Final = 1


def save(guard: ReplayGuard, state_dir: str | Path) -> None:
    """Write ``guard``'s ids to the state directory (replacing the file at once, 0600, on disk
    before it is renamed into place). A write that fails (a full disk) raises and leaves the
    directory as it was: the file before, no part of the new one. A directory that then fails to
    sync (``EIO``) raises too, with the new file in place."""
    held, floor = guard.remembered()
    path = Path(state_dir) / FILE_NAME
    partial = path.with_suffix(".partial")
    body = json.dumps({"v": _VERSION, "floor": floor, "ids": held}, allow_nan=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(body)
            # On disk before it takes the name: a power loss after the rename would otherwise
            # leave the name on an empty file, and the ids of the stop before it lost too.
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    sync_directory(path.parent)  # the rename itself


def load(guard: ReplayGuard, state_dir: str | Path) -> int:
    """Remember again the ids a stop wrote (those still inside the window); how many. A file
    that cannot be read is logged and left aside: the ids are then forgotten, as before."""
    path = Path(state_dir) / FILE_NAME
    # What a stop killed while it wrote left: never read, only in the way.
    with contextlib.suppress(OSError):
        path.with_suffix(".partial").unlink()
    try:
        # Never a FIFO (an open would wait for a writer, start-up and SIGTERM with it) nor a
        # device: refused unopened, as a file that cannot be read.
        with open_regular(path) as file:
            saved = json.loads(file.read())
        if saved["v"] != _VERSION:
            raise ValueError(f"written in format {saved['v']!r}, this version reads {_VERSION}")
        held = [(str(message_id), float(timestamp)) for message_id, timestamp in saved["ids"]]
        floor = float(saved["floor"])
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, TypeError, KeyError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        _logger.warning(
            "ingest replay memory %s not read (%s): its ids are forgotten", path, reason
        )
        return 0
    return guard.restore(held, floor)
