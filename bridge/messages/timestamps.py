"""Timestamps on the wire, written and read: RFC 3339 in UTC with milliseconds, without pydantic.

The models serialize their timestamps with it (``bridge.messages._base``), and the alert outbox
writes its times with it: ``outbox list`` opens the outbox without building a model, and reads
them back with ``utc_from_seconds``, which shows a time past the year 9999 (a hand-edited outbox)
as the last instant a datetime holds rather than fail. The envelope
decoder's fast path reads RFC 3339 texts with it, and ``alerts ack --since`` judges its time
with it, without the models. ``rfc3339_pattern`` is the one form every reader of RFC 3339 text
matches: this module's, the models' ``Timestamp`` and the envelope's ``ts``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "format_timestamp",
    "parse_timestamp",
    "rfc3339_pattern",
    "to_utc_ms",
    "utc_from_seconds",
]


def rfc3339_pattern(*, fraction_digits: int | None = None, offset_required: bool = True) -> str:
    """RFC 3339's date-time (section 5.6) with its seconds, as a regular expression's text that
    Python's re and pydantic-core's engine read alike (unanchored): "T" and "Z" in either case
    and a space for the "T", as its notes allow and pydantic takes them too; an offset of hours
    00-23 and minutes 00-59 (fromisoformat and pydantic refuse any other all the same).

    ``fraction_digits``: the most digits a fraction may hold (None: any number, bounded by the
    text's length elsewhere); ``offset_required=False`` also matches no offset (a payload's
    timestamp, which pydantic then takes as UTC)."""
    fraction = "+" if fraction_digits is None else f"{{1,{fraction_digits}}}"
    offset = "" if offset_required else "?"
    return rf"{_DATE_TIME}(?:\.[0-9]{fraction})?(?:{_OFFSET}){offset}"


_DATE_TIME: Final = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
_OFFSET: Final = r"[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]"

# Up to nine fraction digits (Go's RFC3339Nano), which fromisoformat reads.
_RFC3339: Final = re.compile(rfc3339_pattern(fraction_digits=9))


# The first and last instants a datetime holds (years 1 and 9999).
_FIRST: Final = datetime.min.replace(tzinfo=UTC)
_LAST: Final = datetime.max.replace(tzinfo=UTC)


def utc_from_seconds(seconds: float) -> datetime:
    """A Unix time as a UTC datetime, one outside years 1-9999 (infinite ones too) as the nearest
    instant a datetime holds (``9999-12-31T23:59:59.999Z``), NaN as the first (Go's zero time,
    which Alertmanager reads as unset): a hand-edited outbox may hold any number, where
    ``fromtimestamp`` raises, and ``outbox list``, the pages and deliveries must go on."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):  # past time_t, or past the year 9999
        return _LAST if seconds > 0 else _FIRST


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-28T00:00:00.123Z``."""
    # isoformat is several times faster than strftime (every published message), and writes
    # every year in four digits, as RFC 3339 asks: strftime's %Y writes the year 1 as "1" (glibc),
    # a time Go, and so Alertmanager and many receivers, cannot parse.
    return value.isoformat(timespec="milliseconds")[:23] + "Z"


def to_utc_ms(value: datetime) -> datetime:
    """``value`` in UTC, truncated to the millisecond: every ``Timestamp``'s validator (the
    envelope decoder's fast path recognises it in the schema)."""
    # Naive datetimes are taken as UTC, as the wire format is always UTC.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            # pydantic reports a ValueError as this field's error; an OverflowError escaped it.
            raise ValueError("the time falls outside years 1-9999 once converted to UTC") from None
    # replace() is slow, so only truncate when there is a remainder.
    excess = value.microsecond % 1000
    return value.replace(microsecond=value.microsecond - excess) if excess else value


def parse_timestamp(text: str) -> datetime | None:
    """The instant an RFC 3339 ``text`` names, in UTC and truncated to the millisecond as the
    models keep it (``2026-11-28T00:00:00.123Z``, ``2026-11-28t02:00:00.123456+02:00``), or
    None for any other text, a day or an hour that does not exist, and a time outside years
    1-9999 once in UTC. pydantic takes each of these texts as the same instant."""
    if _RFC3339.fullmatch(text) is None:
        return None
    try:
        # fromisoformat reads "T" and "Z" in upper case only.
        return to_utc_ms(datetime.fromisoformat(text.upper()))
    except ValueError:
        return None
