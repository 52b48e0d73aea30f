"""Which written work-queue frames the writer keeps for a rewrite once a group has read them."""

from __future__ import annotations

from collections import deque

from bridge.bus import Frame
from bridge.bus.redis.writer import _forget_handled

FRAME = Frame("ex_esdb_alerts", b"{}", "sig")


def kept(ids: list[str], **known: object) -> list[str]:
    """The ids ``_forget_handled`` leaves of frames written as ``ids``."""
    items = deque((0.0, entry.encode(), FRAME) for entry in ids)
    _forget_handled(items, **known)  # type: ignore[arg-type]
    return [item[1].decode() for item in items]


def test_handled_frames_go_and_pending_or_undelivered_ones_stay_in_order() -> None:
    """Delivered and acknowledged frames are forgotten one by one; a pending one and every
    one not yet delivered are kept, in the order written."""
    ids = ["1-0", "2-0", "3-0", "4-0", "5-0", "6-0"]
    pending = [{"message_id": b"2-0"}, {"message_id": b"4-0"}]
    assert kept(ids, delivered=(4, 0), pending=pending, room=1_000) == [
        "2-0",
        "4-0",
        "5-0",
        "6-0",
    ]


def test_a_full_pending_page_keeps_everything_past_its_last_entry() -> None:
    """When XPENDING's answer filled its page, later entries may be pending unseen: every frame
    past the page's last entry is kept, even when delivered."""
    ids = ["1-0", "2-0", "3-0", "4-0"]
    pending = [{"message_id": b"2-0"}]
    assert kept(ids, delivered=(4, 0), pending=pending, room=1) == ["2-0", "3-0", "4-0"]


def test_nothing_delivered_keeps_every_frame() -> None:
    """A group that has read none of them yet leaves every frame kept."""
    ids = ["7-0", "7-1", "8-0"]
    assert kept(ids, delivered=(6, 5), pending=[], room=1_000) == ids
