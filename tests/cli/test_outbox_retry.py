"""``outbox retry`` (``bridge.cli.outbox``): which dead letters are sent again, and which are left
unless forced."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shlex
import sqlite3
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bridge.sinks.alerts import AlertRecord, DeliveryState, Outbox, build_payloads
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.cli.helpers import cli
from tests.sinks.alerts.helpers import T0, dead_lettered, event, observe, one_each


def test_outbox_retry_names_unknown_and_live_deliveries(tmp_path: Path) -> None:
    """`outbox retry` with an id that is unknown (naming the outbox file it is not in) or not
    dead-lettered names each such id, says nothing retried and exits 1 without changing
    anything, no count of retried deliveries on stdout; given the dead-lettered one alone, it
    goes back to pending and keeps its count of attempts and its creation time (CREATED_AT: the
    alert's real age), its retry time shown beside it."""
    url = "https://hooks.example/x"
    outbox = Outbox.in_dir(tmp_path, urls=[url])
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0)
    outbox.queue.group(url, T0, 0.0, one_each)
    dead, live = outbox.queue.deliveries()
    for attempt in range(3):
        outbox.queue.finish_attempt(
            dead.id,
            state=DeliveryState.DEAD if attempt == 2 else DeliveryState.PENDING,
            next_attempt_at=T0,
            status=503,
            error="HTTP 503",
            now=T0,
        )
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    refused = cli("outbox", "retry", "nosuchid", live.id, dead.id, "nosuchid", "other", **env)
    assert (refused.returncode, refused.stdout) == (1, "")
    looked_in = f"in the alert outbox at {tmp_path / FILE_NAME} (see `outbox list`)"
    assert refused.stderr.splitlines() == [
        f"exesdb-bridge: no delivery 'nosuchid' {looked_in}",
        f"exesdb-bridge: delivery '{live.id}' is pending, not dead-lettered",
        f"exesdb-bridge: no delivery 'other' {looked_in}",
        "exesdb-bridge: nothing retried, not even the 1 dead-lettered delivery named: retry"
        " without the ids above",
    ]
    unknown = cli("outbox", "retry", "nosuchid", **env)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == f"exesdb-bridge: no delivery 'nosuchid' {looked_in}\n"
    states = {
        json.loads(line)["id"]: json.loads(line)["state"]
        for line in cli("outbox", "list", "--json", **env).stdout.splitlines()
    }
    assert states == {dead.id: "dead", live.id: "pending"}
    completed = cli("outbox", "retry", dead.id, **env)
    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout == "1 dead-lettered delivery back to pending\n"
    listed = cli("outbox", "list", **env)
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "ALERTS", "ATTEMPTS"]
    attempts = {row.split()[0]: row.split()[3] for row in rows}
    assert attempts == {dead.id: "3", live.id: "0"}
    created = {row.split()[0]: row.split()[5] for row in rows}
    assert created == {dead.id: "2027-01-15T08:00:00.000Z", live.id: "2027-01-15T08:00:00.000Z"}
    listed = cli("outbox", "list", "--json", **env)
    retried = {d["id"]: d["retried_at"] for d in map(json.loads, listed.stdout.splitlines())}
    assert retried[live.id] is None
    assert retried[dead.id] is not None
    assert retried[dead.id] != "2027-01-15T08:00:00.000Z"  # when retried, not made


@pytest.mark.parametrize("args", [["--all", "nosuch"], ["nosuch", "--all"]])
def test_outbox_retry_refuses_ids_beside_all(tmp_path: Path, args: list[str]) -> None:
    """`outbox retry` with ids and --all is a usage error (exit 2) saying the two do not go
    together, before the outbox is opened: the ids would be ignored, every dead letter sent."""
    completed = cli("outbox", "retry", *args, EXESDB_STATE_DIR=str(tmp_path))
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.startswith(
        "usage: exesdb-bridge outbox retry [-h] (ID ... | --all) [--force]\n"
    )
    assert re.search(
        r"exesdb-bridge outbox retry: error: argument (--all|ID): not allowed with argument"
        r" (ID|--all)\n\Z",
        completed.stderr,
    )
    assert "back to pending" not in completed.stdout


def test_outbox_retry_finds_every_delivery_named_however_many(tmp_path: Path) -> None:
    """`outbox retry` with more ids than a page of `outbox list` (1000) finds each of them: a
    dead-lettered delivery is never reported as unknown for being the 1001st named."""
    url = "https://hooks.example/x"
    outbox = Outbox.in_dir(tmp_path, urls=[url])
    for number in range(1001):
        observe(outbox, event(f"a{number}"), T0)
    outbox.queue.group(url, T0, 0.0, one_each)
    dead = dead_lettered(outbox, status=503)
    outbox.close()
    assert len(dead) == 1001
    retried = cli(
        "outbox", "retry", *(delivery.id for delivery in dead), EXESDB_STATE_DIR=str(tmp_path)
    )
    assert "no delivery" not in retried.stderr
    assert retried.returncode == 0, retried.stderr
    assert "1001 dead-lettered deliveries back to pending" in retried.stdout


def test_outbox_retry_leaves_a_dead_letter_whose_receiver_is_not_configured(
    tmp_path: Path,
) -> None:
    """`outbox retry` of a dead letter for a receiver the bridge no longer starts with names
    the receiver (never its path) and why, exits 1 and leaves it dead-lettered, with --all too;
    the other dead letters go back to pending. The line offers the `outbox drop` that deletes
    it, should the receiver not come back, and that command, run as given, does."""
    gone, kept = "https://hooks.example/token-gone", "https://other.example/token-kept"
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([gone, kept])  # the bridge started with both
    observe(outbox, event("a"), T0)
    for url in (gone, kept):
        outbox.queue.group(url, T0, 0.0, one_each)
    dead = {d.url: d for d in outbox.queue.deliveries()}
    for delivery in dead.values():
        outbox.queue.finish_attempt(
            delivery.id,
            state=DeliveryState.DEAD,
            next_attempt_at=T0,
            status=404,
            error="HTTP 404",
            now=T0,
        )
    outbox.queue.queue_for([kept])  # then restarted without the first
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    refused = cli("outbox", "retry", dead[gone].id, **env)
    assert refused.returncode == 1
    assert (
        f"delivery '{dead[gone].id}' left dead-lettered: its receiver https://hooks.example/… is"
        in refused.stderr
    )
    assert "not among those the bridge last started with" in refused.stderr
    assert "token-gone" not in refused.stderr + refused.stdout
    assert "0 dead-lettered deliveries back to pending" in refused.stdout
    every = cli("outbox", "retry", "--all", **env)
    assert every.returncode == 1
    assert f"delivery '{dead[gone].id}' left dead-lettered" in every.stderr
    assert "1 dead-lettered delivery back to pending" in every.stdout
    states = {
        json.loads(line)["id"]: json.loads(line)["state"]
        for line in cli("outbox", "list", "--json", **env).stdout.splitlines()
    }
    assert states == {dead[gone].id: "dead", dead[kept].id: "pending"}
    # The line offers the drop that deletes it, should the receiver not come back; as given.
    [offered] = re.findall(
        r"`exesdb-bridge (outbox drop --receiver '[^']*')` deletes it", every.stderr
    )
    dropped = cli(*shlex.split(offered), **env)
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.startswith("1 dead-lettered delivery dropped"), dropped.stdout
    assert [
        json.loads(line)["id"]
        for line in cli("outbox", "list", "--json", **env).stdout.splitlines()
    ] == [dead[kept].id]


def _webhook_bodies(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """The bridge's own payloads (Alertmanager's webhook format)."""
    return build_payloads(records, max_alerts=10, external_url="http://bridge.example")


def _finish(outbox: Outbox, delivery_id: str, state: DeliveryState, status: int) -> None:
    outbox.queue.finish_attempt(
        delivery_id, state=state, next_attempt_at=T0, status=status, error=None, now=T0
    )


_HOOK = "https://hooks.example/x"


def _dead_firing_and_its_resolve(outbox: Outbox) -> tuple[str, str]:
    """Alert ``a`` fired at T0, its delivery to _HOOK dead-lettered (404), and resolved at
    T0 + 60, its delivery waiting: the two deliveries' ids."""
    outbox.queue.queue_for([_HOOK])
    observe(outbox, event("a"), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)
    [firing] = outbox.queue.deliveries()
    _finish(outbox, firing.id, DeliveryState.DEAD, 404)
    observe(outbox, event("a", status="resolved"), T0 + 60)
    outbox.queue.group(_HOOK, T0 + 60, 0.0, _webhook_bodies)
    [resolve] = [d for d in outbox.queue.deliveries() if d.id != firing.id]
    return firing.id, resolve.id


def test_outbox_retry_leaves_a_firing_whose_resolve_was_delivered_unless_forced(
    tmp_path: Path,
) -> None:
    """`outbox retry` of a dead-lettered firing whose alert's resolve the receiver was sent
    since names the alert and when it resolved, exits 1 and leaves it (`--all` too, exiting 0:
    superseded, as the gauge counts it); --force retries it."""
    outbox = Outbox.in_dir(tmp_path)
    firing, resolve = _dead_firing_and_its_resolve(outbox)
    _finish(outbox, resolve, DeliveryState.DELIVERED, 200)
    record = outbox.alerts.get("a")
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    assert record is not None
    assert record.ends_at is not None
    resolved_at = datetime.fromtimestamp(record.ends_at, UTC).isoformat(timespec="milliseconds")
    refused = cli("outbox", "retry", firing, **env)
    assert refused.returncode == 1
    assert f"delivery '{firing}' left dead-lettered: it fires alerts whose resolve" in (
        refused.stderr
    )
    assert f"'a' resolved at {resolved_at.replace('+00:00', 'Z')}" in refused.stderr
    assert "--force" in refused.stderr
    left = cli("outbox", "retry", "--all", **env)
    assert (left.returncode, left.stdout) == (0, "0 dead-lettered deliveries back to pending\n")
    assert f"delivery '{firing}' left dead-lettered: it fires alerts whose resolve" in left.stderr
    assert cli("outbox", "list", "--state", "dead", "--json", **env).stdout.count(firing) == 1
    forced = cli("outbox", "retry", "--force", firing, **env)
    assert (forced.returncode, forced.stderr) == (0, "")
    assert "1 dead-lettered delivery back to pending" in forced.stdout


def test_outbox_retry_leaves_a_resolve_of_an_alert_that_fired_again_unless_forced(
    tmp_path: Path,
) -> None:
    """`outbox retry` of a dead-lettered resolve whose alert the receiver was sent firing again
    since names the alert and leaves it (sent, it would show the alert resolved while it
    fires), exiting 0 with --all (superseded, as the gauge counts it) and 1 named by id;
    --force retries it. A resolve whose alert's firing still waits is retried."""
    url = "https://hooks.example/x"
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([url])
    sent = []
    for at, status, state in [
        (T0, "firing", DeliveryState.DELIVERED),
        (T0 + 60, "resolved", DeliveryState.DEAD),
        (T0 + 120, "firing", DeliveryState.PENDING),
    ]:
        observe(outbox, event("a", status=status), at)
        outbox.queue.group(url, at, 0.0, _webhook_bodies)
        [made] = [d for d in outbox.queue.deliveries() if d.id not in sent]
        sent.append(made.id)
        if state is not DeliveryState.PENDING:
            _finish(outbox, made.id, state, 200 if state is DeliveryState.DELIVERED else 404)
    resolve, again = sent[1], sent[2]
    assert outbox.dead_letters.unretryable() == []  # the new firing still waits: it goes out after
    _finish(outbox, again, DeliveryState.DELIVERED, 200)
    assert [(d.delivery_id, d.refired) for d in outbox.dead_letters.unretryable()] == [
        (resolve, ("a",))
    ]
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    assert cli("outbox", "retry", resolve, **env).returncode == 1
    refused = cli("outbox", "retry", "--all", **env)
    assert refused.returncode == 0
    assert f"delivery '{resolve}' left dead-lettered: it resolves alerts" in refused.stderr
    assert "('a'), so sent again it would show them resolved there while they fire" in (
        refused.stderr
    )
    assert "0 dead-lettered deliveries back to pending" in refused.stdout
    forced = cli("outbox", "retry", "--force", resolve, **env)
    assert (forced.returncode, forced.stderr) == (0, "")


def test_outbox_retry_of_a_firing_leaves_it_without_its_dead_lettered_resolve(
    tmp_path: Path,
) -> None:
    """A dead-lettered firing whose resolve is dead-lettered too, named alone, is left (exit 1)
    naming the resolve's delivery: sent alone, it would leave the alert firing at the receiver
    with its resolve still dead (--force sends it all the same). Named with it, both go back,
    the firing to go out first."""
    outbox = Outbox.in_dir(tmp_path)
    firing, resolve = _dead_firing_and_its_resolve(outbox)
    _finish(outbox, resolve, DeliveryState.DEAD, 404)
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    refused = cli("outbox", "retry", firing, **env)
    assert refused.returncode == 1
    assert f"delivery '{firing}' left dead-lettered: the resolves of alerts it fires" in (
        refused.stderr
    )
    assert f"('a' in delivery '{resolve}')" in refused.stderr
    assert f"`exesdb-bridge outbox retry {firing} {resolve}`" in refused.stderr
    assert "--force sends it all the same" in refused.stderr
    assert "0 dead-lettered deliveries back to pending" in refused.stdout
    both = cli("outbox", "retry", firing, resolve, **env)
    assert (both.returncode, both.stderr) == (0, "")
    assert "2 dead-lettered deliveries back to pending" in both.stdout
    outbox = Outbox.in_dir(tmp_path)
    try:
        assert {d.id for d in outbox.queue.deliveries("pending")} == {firing, resolve}
        first = outbox.queue.next_due(_HOOK, T0 + 3600)
        assert first is not None
        assert first.id == firing  # the firing goes out first, the resolve after it
    finally:
        outbox.close()


def test_a_dead_firing_whose_resolve_still_waits_may_be_retried(tmp_path: Path) -> None:
    """A dead-lettered firing whose resolve is still pending is retried (it goes out first,
    the resolve after it), as is one whose alert fired again after the resolve was sent."""
    outbox = Outbox.in_dir(tmp_path)
    firing, resolve = _dead_firing_and_its_resolve(outbox)
    assert outbox.dead_letters.unretryable() == []  # the resolve is pending
    _finish(outbox, resolve, DeliveryState.DELIVERED, 200)
    assert [d.delivery_id for d in outbox.dead_letters.unretryable()] == [firing]
    observe(outbox, event("a"), T0 + 120)
    outbox.queue.group(_HOOK, T0 + 120, 0.0, _webhook_bodies)
    [again] = [d for d in outbox.queue.deliveries() if d.id not in (firing, resolve)]
    _finish(outbox, again.id, DeliveryState.DELIVERED, 200)
    # Firing there now anyway: superseded, left unless forced.
    assert [(d.delivery_id, d.superseded) for d in outbox.dead_letters.unretryable()] == [
        (firing, True)
    ]
    assert outbox.dead_letters.unretryable(force=True) == []
    outbox.close()


def test_outbox_retry_leaves_a_dead_letter_superseded_by_a_later_delivery_unless_forced(
    tmp_path: Path,
) -> None:
    """A dead letter each of whose alerts its receiver took since in a later delivery (its
    re-notification) is superseded: `outbox retry --all` leaves it, naming it, exit 0 (it is as
    good as delivered); named by id it is left too, exit 1; --force sends it. One of whose
    alerts the receiver took only some is retried."""
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([_HOOK])
    for alert_id in ("a", "b"):
        observe(outbox, event(alert_id), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)  # one delivery of a and b
    observe(outbox, event("c"), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)
    made = {d.alert_ids: d for d in outbox.queue.deliveries()}
    both, alone = made[("a", "b")], made[("c",)]
    for dead in (both, alone):
        _finish(outbox, dead.id, DeliveryState.DEAD, 404)
    for alert_id in ("a", "c"):  # re-notified, and taken
        observe(outbox, event(alert_id, severity="warning"), T0 + 60)
    outbox.queue.group(_HOOK, T0 + 60, 0.0, _webhook_bodies)
    [later] = [d for d in outbox.queue.deliveries() if d.id not in (both.id, alone.id)]
    _finish(outbox, later.id, DeliveryState.DELIVERED, 200)
    assert outbox.dead_letters.resend_hint() == (
        " (`exesdb-bridge outbox list --state dead` lists them, `exesdb-bridge outbox retry"
        " --all` sends again the 1 not superseded; 1 superseded (their receivers took a later"
        " delivery of each of their alerts, or another replica told them newer, or nothing is"
        " to follow those resolved since) are not to be sent again)"
    )
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    named = cli("outbox", "retry", alone.id, **env)
    assert named.returncode == 1
    assert named.stderr == (
        f"exesdb-bridge: delivery '{alone.id}' left dead-lettered: superseded:"
        " https://hooks.example/… took a later delivery of each of its alerts, so sent again"
        " it would tell it an older state of them after the newer one; --force sends it all"
        " the same\n"
    )
    every = cli("outbox", "retry", "--all", **env)
    assert every.returncode == 0
    assert f"delivery '{alone.id}' left dead-lettered: superseded" in every.stderr
    assert both.id not in every.stderr
    assert every.stdout.splitlines()[0] == "1 dead-lettered delivery back to pending"
    forced = cli("outbox", "retry", "--force", alone.id, **env)
    assert (forced.returncode, forced.stderr) == (0, "")
    # Sent as its alert stands now, newer than it told it: under a new id, said.
    assert forced.stdout.startswith("1 dead-lettered delivery back to pending\n")
    assert f"\n{alone.id} is now " in forced.stdout


def test_outbox_retry_names_the_new_id_of_a_dead_letter_its_alerts_changed(
    tmp_path: Path,
) -> None:
    """A dead letter whose alert another replica changed since is sent by `outbox retry` as the
    alert stands now, under a new delivery id: the command says which id it is now, and `outbox
    list` shows it pending under that id."""
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([_HOOK])
    observe(outbox, event("a", severity="warning"), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)
    [dead] = outbox.queue.deliveries()
    _finish(outbox, dead.id, DeliveryState.DEAD, 503)
    record = outbox.alerts.get("a")
    assert record is not None
    raised = dataclasses.replace(record, severity="critical", updated_at=T0 + 2)
    assert outbox.alerts.adopt_open_alerts({"a": raised}, T0 + 2) == 1  # another replica's
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    retried = cli("outbox", "retry", dead.id, **env)
    assert retried.returncode == 0, retried.stderr
    first, renamed = retried.stdout.splitlines()
    assert first == "1 dead-lettered delivery back to pending"
    was, _, now = renamed.partition(" is now ")
    assert was == dead.id
    assert now.endswith(": its alerts told as they stand now")
    listed = cli("outbox", "list", "--json", **env)
    [shown] = map(json.loads, listed.stdout.splitlines())
    assert (shown["id"], shown["state"]) == (now.partition(":")[0], "pending")


def test_outbox_retry_leaves_dead_letters_another_replica_told_newer_of_unless_forced(
    tmp_path: Path,
) -> None:
    """`outbox retry --all` leaves, naming why, a dead firing of an alert resolved elsewhere
    since (nothing of it to follow) and one whose alert's later notification was left out as
    stale (another replica took it over), exit 0: superseded, as `outbox list` and the start-up
    line say, they need nobody; named, exit 1; --force sends both."""
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([_HOOK])
    observe(outbox, event("b"), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)
    [resolved] = outbox.queue.deliveries()
    _finish(outbox, resolved.id, DeliveryState.DEAD, 404)
    outbox.alerts.adopt_open_alerts({}, T0 + 10)  # another replica resolved b
    observe(outbox, event("a"), T0 + 20)
    outbox.queue.group(_HOOK, T0 + 20, 0.0, _webhook_bodies)
    [taken_over] = outbox.queue.deliveries("pending")
    _finish(outbox, taken_over.id, DeliveryState.DEAD, 404)
    observe(outbox, event("a", severity="warning"), T0 + 30)
    outbox.queue.group(_HOOK, T0 + 30, 0.0, _webhook_bodies)
    assert outbox.queue.withhold_everywhere({"a"}, T0 + 40, "stale: taken over") == 1
    assert outbox.dead_letters.resend_hint() == (
        " (`exesdb-bridge outbox list --state dead` lists them; 2 superseded (their receivers"
        " took a later delivery of each of their alerts, or another replica told them newer, or"
        " nothing is to follow those resolved since) are not to be sent again)"
    )
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    listed = cli("outbox", "list", "--state", "dead", "--json", **env)
    assert {(d["id"], d["superseded"]) for d in map(json.loads, listed.stdout.splitlines())} == {
        (resolved.id, True),
        (taken_over.id, True),
    }
    named = cli("outbox", "retry", resolved.id, **env)
    assert named.returncode == 1
    every = cli("outbox", "retry", "--all", **env)
    assert every.returncode == 0
    assert (
        f"delivery '{resolved.id}' left dead-lettered: it fires alerts resolved since ('b') of"
        " which nothing is to follow it to https://hooks.example/…"
    ) in every.stderr
    assert (
        f"delivery '{taken_over.id}' left dead-lettered: the latest notification to"
        " https://hooks.example/… of alerts it tells of ('a') was left out as stale since"
    ) in every.stderr
    assert every.stdout == "0 dead-lettered deliveries back to pending\n"
    forced = cli("outbox", "retry", "--all", "--force", **env)
    assert (forced.returncode, forced.stderr) == (0, "")
    # a's told as it stands now (warning), under a new id; b's resolved since: sent as it was.
    assert forced.stdout.splitlines()[0] == "2 dead-lettered deliveries back to pending"
    assert [line.partition(" ")[0] for line in forced.stdout.splitlines()[1:]] == [taken_over.id]


def test_outbox_list_shows_which_dead_letters_are_superseded_or_renotified(
    tmp_path: Path,
) -> None:
    """`outbox list` marks a dead letter whose receiver took a later delivery of each of its
    alerts `superseded` and one whose open alerts were queued again `renotified`, after a comma
    in STATE; --json keeps `state` as it is and gives `superseded` and `renotified_at`."""
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([_HOOK])
    first: list[str] = []
    for n, alert_id in enumerate(("a", "b")):
        observe(outbox, event(alert_id), T0 + n)
        outbox.queue.group(_HOOK, T0 + n, 0.0, _webhook_bodies)
        [made] = outbox.queue.deliveries("pending")
        _finish(outbox, made.id, DeliveryState.DEAD, 404)
        first.append(made.id)
    # An hour on, both are re-notified: each alert in a delivery of its own.
    assert outbox.dead_letters.renotify(T0 + 3601, 3600.0) == {_HOOK: 2}
    outbox.queue.group(
        _HOOK, T0 + 3601, 0.0, partial(build_payloads, max_alerts=1, external_url="")
    )
    again = {d.alert_ids: d.id for d in outbox.queue.deliveries("pending")}
    _finish(outbox, again[("a",)], DeliveryState.DELIVERED, 200)  # a taken: its first superseded
    _finish(outbox, again[("b",)], DeliveryState.DEAD, 404)  # b refused again
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    table = cli("outbox", "list", **env)
    assert table.returncode == 0, table.stderr
    states = dict(row.split()[:2] for row in table.stdout.splitlines()[1:])
    assert states == {
        first[0]: "dead,superseded,renotified",
        first[1]: "dead,renotified",
        again[("a",)]: "delivered",
        again[("b",)]: "dead",
    }
    listed = cli("outbox", "list", "--json", "--state", "dead", **env)
    assert listed.returncode == 0, listed.stderr
    shown = {
        d["id"]: (d["state"], d["superseded"], d["renotified_at"] is not None)
        for d in map(json.loads, listed.stdout.splitlines())
    }
    assert shown == {
        first[0]: ("dead", True, True),
        first[1]: ("dead", False, True),
        again[("b",)]: ("dead", False, False),
    }
    delivered = cli("outbox", "list", "--json", "--state", "delivered", **env)
    [taken] = map(json.loads, delivered.stdout.splitlines())
    assert (taken["superseded"], taken["renotified_at"]) == (None, None)


def test_outbox_retry_all_with_no_dead_letter_says_none_went_back_and_exits_0(
    tmp_path: Path,
) -> None:
    """`outbox retry --all` on an outbox holding no dead letter prints that none went back to
    pending and exits 0: nothing was asked that could not be done."""
    Outbox(tmp_path / FILE_NAME).close()
    retried = cli("outbox", "retry", "--all", EXESDB_STATE_DIR=str(tmp_path))
    assert (retried.returncode, retried.stdout, retried.stderr) == (
        0,
        "0 dead-lettered deliveries back to pending\n",
        "",
    )


def test_outbox_retry_of_an_outbox_locked_past_the_wait_says_so_in_a_line(
    tmp_path: Path,
) -> None:
    """`outbox retry --all` of an outbox another process holds locked past SQLite's 10 s wait
    (a program with a transaction open on it) exits 1 with one line saying nothing was changed,
    who may hold it and to try again, not a traceback; the dead letter stays dead."""
    outbox = Outbox.in_dir(tmp_path, urls=["https://hooks.example/x"])
    observe(outbox, event("a"), T0)
    outbox.queue.group("https://hooks.example/x", T0, 0.0, one_each)
    [dead] = dead_lettered(outbox)
    outbox.close()
    with contextlib.closing(sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None)) as held:
        held.execute("BEGIN EXCLUSIVE")
        retried = cli("outbox", "retry", "--all", EXESDB_STATE_DIR=str(tmp_path))
        held.execute("ROLLBACK")
    assert (retried.returncode, retried.stdout) == (1, "")
    assert retried.stderr == (
        f"exesdb-bridge: the alert outbox at {tmp_path / FILE_NAME} could not be read or changed"
        " (database is locked): nothing was changed; another process held it locked past the"
        " 10 s this waits (a bridge stuck writing to it, another outbox command, or a program"
        " with a transaction open on it, such as an sqlite3 shell): try again once it lets go\n"
    )
    listed = cli("outbox", "list", "--json", EXESDB_STATE_DIR=str(tmp_path))
    assert [json.loads(line)["state"] for line in listed.stdout.splitlines()] == ["dead"]
    assert dead.id in listed.stdout


def test_outbox_retry_and_drop_of_an_id_cut_short_name_the_whole_one(tmp_path: Path) -> None:
    """`outbox retry` or `outbox drop` of a dead letter's id cut short (its first characters,
    as git's and docker's ids are given) names the whole id, or how many start so, and changes
    nothing (exit 1): ids are given whole."""
    outbox = Outbox.in_dir(tmp_path, urls=["https://hooks.example/x"])
    for number in range(17):  # more than the 16 hex digits: two ids start alike
        observe(outbox, event(f"a{number}"), T0)
        outbox.queue.group("https://hooks.example/x", T0, 0.0, one_each)
    ids = [delivery.id for delivery in dead_lettered(outbox)]
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    looked_in = f"in the alert outbox at {tmp_path / FILE_NAME} (see `outbox list`)"
    for command in ("retry", "drop"):
        short = ids[0][:12]
        refused = cli("outbox", command, short, **env)
        assert (refused.returncode, refused.stdout) == (1, "")
        assert refused.stderr == (
            f"exesdb-bridge: no delivery {short!r} {looked_in}; did you mean {ids[0]!r}? (ids are"
            " given whole)\n"
        )
    first = Counter(delivery_id[0] for delivery_id in ids).most_common(1)[0]
    several = cli("outbox", "retry", first[0], **env)
    assert several.stderr.endswith(
        f"; {first[1]} dead letters' ids start with it: give one whole\n"
    ), several.stderr
    listed = cli("outbox", "list", "--json", "--limit", "0", **env)
    assert {json.loads(line)["state"] for line in listed.stdout.splitlines()} == {"dead"}
