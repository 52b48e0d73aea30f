"""What `exesdb-bridge alerts` prints (bridge/alert_table.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.alert_table import (
    ALERT_COLUMNS,
    API_MOST,
    TITLE_WIDTH,
    alert_row,
    asked_per_state,
    lease_moved,
    lease_note,
    merged,
    newest,
)
from bridge.cli.shared import print_table
from bridge.sinks.alerts.admin import MAX_LIST


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


def test_the_answers_name_the_lease_holder_as_the_last_that_knew_it() -> None:
    """The lease holder's name is the last answer's that gives one (the lease may have moved
    between the requests); None when no answer knows it, as from a bridge without the field."""
    firing = {"alerts": [], "work_queue_holder": False, "work_queue_holder_name": "bridge-1:aa"}
    acked = {"alerts": [], "work_queue_holder": False, "work_queue_holder_name": "bridge-3:bb"}
    unknown = {"alerts": [], "work_queue_holder": False, "work_queue_holder_name": None}
    assert merged([firing, acked])["work_queue_holder_name"] == "bridge-3:bb"
    assert merged([firing, unknown])["work_queue_holder_name"] == "bridge-1:aa"
    assert merged([{"alerts": [], "work_queue_holder": False}])["work_queue_holder_name"] is None


@pytest.mark.parametrize("took", [True, False], ids=["took the lease", "lost the lease"])
def test_the_holder_flag_and_name_come_from_the_same_answers_when_the_lease_moved(
    took: bool,
) -> None:
    """When the lease moved between the requests, the answer is a replica without the lease
    named by an answer that says so: never the replica itself, which an answer given while it
    held the lease names; lease_moved says the answers disagree."""
    without = {"alerts": [], "work_queue_holder": False, "work_queue_holder_name": "bridge-2:bb"}
    holding = {"alerts": [], "work_queue_holder": True, "work_queue_holder_name": "bridge-1:aa"}
    answers = [without, holding] if took else [holding, without]
    both = merged(answers)
    assert (both["work_queue_holder"], both["work_queue_holder_name"]) == (False, "bridge-2:bb")
    assert lease_moved(answers)
    assert not lease_moved([without, without])
    assert not lease_moved([holding, {"alerts": []}])  # a bridge without the field holds it


URL = "http://10.0.0.7:9102"


def _answer(holder: bool, lease: str | None, name: str | None = None) -> dict[str, Any]:
    """A GET /v1/alerts answer without alerts, saying ``lease`` (None: a bridge without it)."""
    answer = {"alerts": [], "work_queue_holder": holder, "work_queue_holder_name": name}
    return answer if lease is None else answer | {"work_queue_lease": lease}


def test_alerts_list_says_nothing_of_the_lease_at_the_replica_that_holds_it() -> None:
    """At the lease holder (or on the in-process bus) alerts list says nothing of the lease."""
    assert lease_note(URL, _answer(True, "here", "bridge-1:aa")) is None
    assert lease_note(URL, _answer(True, None)) is None
    assert lease_note(URL, None) is None


@pytest.mark.parametrize("lease", ["elsewhere", None], ids=["elsewhere", "older bridge"])
def test_alerts_list_at_another_replica_says_to_ask_the_holder_naming_it(lease: str | None) -> None:
    """At a replica that does not hold the lease while Redis answers it (or a bridge of a
    version before work_queue_lease), alerts list says to ask the replica that holds it, by its
    consumer name when known."""
    named = lease_note(URL, _answer(False, lease, "bridge-1:aa"))
    assert named == (
        f"the replica at {URL} does not hold the work-queue lease: its alerts may be missing or"
        " out of date; ask the replica that holds it: bridge-1:aa"
        " (exesdb_redis_work_queue_leader 1 on its /metrics)"
    )
    unnamed = lease_note(URL, _answer(False, lease))
    assert unnamed is not None
    assert "ask the replica that holds it (exesdb_redis_work_queue_leader" in unnamed


def test_alerts_list_at_a_replica_cut_off_from_redis_says_the_holder_cannot_be_known() -> None:
    """At a replica Redis does not answer, alerts list says which replica holds the lease
    cannot be known there, not to ask the holder (none may hold it), nor a name last seen; and
    that what is ingested there meanwhile waits in its spool."""
    note = lease_note(URL, _answer(False, "unknown", "bridge-1:aa"))
    assert note == (
        f"the replica at {URL} cannot use Redis, so which replica holds the work-queue lease "
        "cannot be known there: its alerts may be missing or out of date (its /readyz says why: "
        "Redis unreachable, or refusing the bridge); batches ingested there meanwhile wait in "
        "its spool on disk and are handled once Redis is back, and notifications already in its "
        "outbox are still sent"
    )


def test_alerts_list_at_the_holder_cut_off_from_redis_says_what_waits_and_what_follows() -> None:
    """At the replica that holds the lease but cannot use Redis (work_queue_reachable false),
    alerts list says so as the status page's banner does: what is sent meanwhile waits in
    Redis unread, and another replica takes the work queue over once the lease runs out; a
    bridge of a version before the field says nothing, as before."""
    cut_off = _answer(True, "here", "bridge-0:aa") | {"work_queue_reachable": False}
    note = lease_note(URL, cut_off)
    assert note is not None
    assert note.startswith(
        f"the replica at {URL} holds the alert work-queue lease but cannot use Redis (its"
        " /readyz says why: Redis unreachable, or refusing the bridge): alerts sent since wait"
        " in Redis, unread, and its alerts may be out of date."
    )
    assert "a replica that can use Redis takes the work queue over" in note
    assert merged([cut_off, _answer(True, "here")])["work_queue_reachable"] is False
    assert merged([_answer(True, "here")])["work_queue_reachable"] is True
    assert lease_note(URL, _answer(True, "here") | {"work_queue_reachable": True}) is None


def test_alerts_list_at_a_replica_keeping_the_lease_says_so_as_the_banner_does() -> None:
    """At a replica that keeps the lease after Redis lost its data (work_queue_lease kept, no
    holder named), alerts list says so as the status page's banner does, not to ask a holder
    that does not exist."""
    note = lease_note(URL, _answer(False, "kept"))
    assert note == (
        f"the replica at {URL} keeps the alert work-queue lease, and does not serve the work"
        " queue: Redis lost its data while that replica held the lease, and taking the work"
        " queue up fails (tried again each second; its log says why). It keeps the lease rather"
        " than leave it to a replica standing by, as its open alerts are kept only in its"
        " outbox: taken by another, their resolves would never be sent. Meanwhile no replica"
        " serves the work queue (its entries wait in Redis) and its alerts may be out of date;"
        " still failing three EXESDB_REDIS_CLAIM_IDLE_MS after the loss, it gives the lease"
        " back (exesdb_redis_work_queue_lease_kept 1 on its /metrics meanwhile)"
    )


def test_the_answers_say_where_the_lease_is_as_the_last_that_says_it() -> None:
    """merged keeps work_queue_lease from the answers its flag comes from, the last that gives
    one; None from bridges without it."""
    firing = _answer(False, "elsewhere", "bridge-1:aa")
    acked = _answer(False, "unknown", "bridge-1:aa")
    assert merged([firing, acked])["work_queue_lease"] == "unknown"
    assert merged([acked, _answer(False, None)])["work_queue_lease"] == "unknown"
    assert merged([_answer(True, "here")])["work_queue_lease"] == "here"
    assert merged([_answer(True, None)])["work_queue_lease"] is None


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


def _listed(count: int) -> list[dict[str, Any]]:
    """``count`` alerts, most recently changed first, as ``merged`` gives them."""
    return [_alert(f"a{n}", f"2026-12-02T10:{59 - n:02}:00.000Z") for n in range(count)]


def test_the_limit_keeps_the_most_recently_changed_and_says_how_many_are_left_out() -> None:
    """Of 1 234 alerts, --limit 50 keeps the first 50 (the most recently changed) and says
    1 184 of 1 234 were left out and how to list them all; --limit 0 keeps every one, silently."""
    alerts = _listed(60) * 20 + _listed(34)
    shown, note = newest(alerts, 50, asked=1000, full=False)
    assert shown == alerts[:50]
    assert note == (
        "1184 of 1234 alerts not shown, the 50 most recently changed listed: --limit 0 lists all"
    )
    assert newest(alerts, 0, asked=API_MOST, full=False) == (alerts, None)
    assert newest(alerts[:50], 50, asked=1000, full=False) == (alerts[:50], None)


def test_when_the_bridge_gave_all_it_was_asked_the_count_left_out_is_a_lower_bound() -> None:
    """An answer as long as the ?limit= asked means the bridge holds more: the count left out is
    "at least", and the note says how far --limit 0 goes, or that the bridge gives no more."""
    alerts = _listed(1000)
    _, note = newest(alerts, 50, asked=1000, full=True)
    assert note == (
        "at least 950 more alerts not shown, the 50 most recently changed listed: --limit 0"
        " lists up to 10000 per request"
    )
    _, note = newest(alerts * 10, 0, asked=API_MOST, full=True)
    assert note == (
        "more alerts not shown, the 10000 most recently changed listed: the bridge lists at most"
        " 10000 per request"
    )


@pytest.mark.parametrize(
    ("limit", "asked"), [(1, 1000), (50, 1000), (1000, 1000), (1001, 1001), (0, 10_000)]
)
def test_each_request_asks_for_the_apis_default_or_as_many_as_are_to_be_printed(
    limit: int, asked: int
) -> None:
    """A limit up to 1 000 asks the API's default (as the command did before it had --limit);
    a larger one asks for that many; 0 (all) asks the most the API gives, which is MAX_LIST."""
    assert asked_per_state(limit) == asked
    assert asked_per_state(20_000) == API_MOST == MAX_LIST


def test_a_table_shows_each_row_on_its_line_in_the_order_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A cell holding a line break, a tab, a right-to-left override or a zero-width character
    (a sender's title) is printed with each as its escape: one line per row, nothing reordered
    or drawn as nothing, the columns aligned on what is shown."""
    print_table(
        ("ALERT_ID", "TITLE"),
        [("a-1\u200b", "disk\u202e full"), ("a-2", "two\nlines\tand a tab")],
        "none",
    )
    assert capsys.readouterr().out.splitlines() == [
        "ALERT_ID   TITLE",
        "a-1\\u200b  disk\\u202e full",
        "a-2        two\\u000alines\\u0009and a tab",
    ]
