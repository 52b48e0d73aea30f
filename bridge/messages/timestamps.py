"""How a timestamp is written on the wire: RFC 3339 in UTC with milliseconds, without pydantic.

The models serialize their timestamps with it (``bridge.messages._base``), and the alert outbox
writes its times with it: ``outbox list`` opens the outbox without building a model.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["format_timestamp"]


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-28T00:00:00.123Z``."""
    # isoformat is several times faster than strftime (every published message), and writes
    # every year in four digits, as RFC 3339 asks: strftime's %Y writes the year 1 as "1" (glibc),
    # a time Go, and so Alertmanager and many receivers, cannot parse.
    return value.isoformat(timespec="milliseconds")[:23] + "Z"
