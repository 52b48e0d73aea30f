"""What `exesdb-bridge alerts` prints (bridge/alert_table.py)."""

from __future__ import annotations

from typing import Any

from bridge.alert_table import ALERT_COLUMNS, TITLE_WIDTH, alert_row, merged


def _alert(alert_id: str, updated_at: str, title: str = "t") -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "state": "firing",
        "level": "level1",
        "severity": "critical",
        "labels": {"alertname": "disk_full", "node": "n1"},
        "annotations": {"title": title, "description": "d"},
        "starts_at": "2026-12-02T10:00:00.000Z",
        "updated_at": updated_at,
    }


def test_answers_for_several_states_become_one_list_most_recently_changed_first() -> None:
    """The firing and the acknowledged alerts are listed together, newest change first, and the
    replica holds the work-queue lease only when every answer says it does."""
    firing = {"alerts": [_alert("b", "2026-12-02T10:05:00.000Z")], "work_queue_holder": True}
    acked = {
        "alerts": [
            _alert("c", "2026-12-02T10:09:00.000Z"),
            _alert("a", "2026-12-02T10:01:00.000Z"),
        ],
        "work_queue_holder": False,
    }
    both = merged([firing, acked])
    assert [alert["alert_id"] for alert in both["alerts"]] == ["c", "b", "a"]
    assert both["work_queue_holder"] is False
    assert merged([firing])["work_queue_holder"] is True


def test_an_alert_acknowledged_between_the_requests_is_listed_once_as_last_changed() -> None:
    """An alert the firing answer lists and the acknowledged one lists too (acknowledged between
    the two requests) is one row, in its later state."""
    before = _alert("a", "2026-12-02T10:01:00.000Z")
    after = {**_alert("a", "2026-12-02T10:02:00.000Z"), "state": "acknowledged"}
    other = _alert("b", "2026-12-02T10:01:30.000Z")
    both = merged([{"alerts": [other, before]}, {"alerts": [after]}])
    assert [(alert["alert_id"], alert["state"]) for alert in both["alerts"]] == [
        ("a", "acknowledged"),
        ("b", "firing"),
    ]


def test_a_row_carries_the_title_cut_to_its_width() -> None:
    """The row ends with the title; one longer than TITLE_WIDTH is cut there with an ellipsis."""
    row = alert_row(_alert("a", "x", title="Node down"))
    assert len(row) == len(ALERT_COLUMNS)
    assert ALERT_COLUMNS[-1] == "TITLE"
    assert row[-1] == "Node down"
    long = alert_row(_alert("a", "x", title="y" * (TITLE_WIDTH + 1)))[-1]
    assert long == "y" * (TITLE_WIDTH - 1) + "…"
    assert alert_row(_alert("a", "x", title="z" * TITLE_WIDTH))[-1] == "z" * TITLE_WIDTH
