"""A frame's entry fields in Redis: how the entries of a read become frames."""

from __future__ import annotations

from bridge.bus import Frame
from bridge.bus.redis.layout import entry_fields, fan_out_frames, unpack_flat

INSTANCE = "ex_esdb_metrics"


def test_fan_out_frames_are_the_entries_of_a_read_unpacked_in_order() -> None:
    """Each entry of a read becomes ``Frame(instance, body, signature, group=False)``, in
    order, as ``unpack_flat`` reads its fields: those the bridge writes, the same in another
    order, a deleted entry's (none), an empty signature and one that is not ASCII."""
    written = [name for pair in entry_fields(b"body-1", "ab" * 32).items() for name in pair]
    entries: list[tuple[bytes, list[bytes] | None]] = [
        (b"1-0", [value if isinstance(value, bytes) else value.encode() for value in written]),
        (b"1-1", [b"s", b"cd" * 32, b"e", b"body-2"]),
        (b"1-2", None),
        (b"1-3", [b"e", b"body-4", b"s", b""]),
        (b"1-4", [b"e", b"body-5", b"s", "é".encode()]),
        (b"1-5", [b"e", b"body-6"]),
    ]
    frames = fan_out_frames(INSTANCE, entries)
    assert frames == [
        Frame(INSTANCE, *unpack_flat(fields or []), group=False) for _, fields in entries
    ]
    assert [(frame.body, frame.signature) for frame in frames] == [
        (b"body-1", "ab" * 32),
        (b"body-2", "cd" * 32),
        (b"", None),
        (b"body-4", None),
        (b"body-5", "?"),
        (b"body-6", None),
    ]
    assert all(frame.group is False and frame.instance == INSTANCE for frame in frames)
