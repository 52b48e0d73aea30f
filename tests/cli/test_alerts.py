"""The ``alerts`` command (``bridge.cli.alerts``): a running bridge's alerts listed and
acknowledged, on one replica or on several."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge.messages import format_timestamp
from tests.cli.helpers import ALERT_FIELDS, Bridges, cli
from tests.integration.servers.redis import RedisServer
from tests.integration.test_alert_crash import ingest_alerts, listed_alerts
from tests.pages.helpers import page_bridge, sink_of
from tests.pages.test_lease import CLAIM_IDLE_MS, alert_card
from tests.support import ADMIN_TOKEN, TEST_SECRET, free_port, http_get, wait_until


def test_alerts_list_shows_the_alerts_that_want_attention_unless_asked_for_every_one(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts list` lists firing and acknowledged alerts, most recently changed first, with
    their titles cut to 60 characters; resolved ones only with `--state resolved` or `--state
    all`, which lists every alert."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    long_title = "disk full on /var/lib/exesdb " + "x" * 80
    for alert_id, title in (("gone", "fixed since"), ("old", "first"), ("new", long_title)):
        published = cli(
            "publish", "system_alert", "--topic", "disk_full", *ALERT_FIELDS,
            "-f", f"alert_id={alert_id}", "-f", f"title={title}", "--url", bridge.url,
            SECRET_KEY_BASE=TEST_SECRET,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
    wait_until(lambda: len(listed_alerts(bridge.url)) == 3, 15, "3 alerts")
    for alert_id, extra in (("old", []), ("gone", ["--resolution", "fixed"])):
        acked = cli("alerts", "ack", alert_id, "--by", "alice", *extra, **env)
        assert acked.returncode == 0, acked.stderr

    listed = cli("alerts", "list", **env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["old", "acknowledged"], ["new", "firing"]]
    cut = listed.stdout.splitlines()[2].split("  ")[-1]
    assert cut == long_title[:59] + "…"
    every = cli("alerts", "list", "--state", "all", **env)
    assert [line.split()[:2] for line in every.stdout.splitlines()[1:]] == [
        ["gone", "resolved"],
        ["old", "acknowledged"],
        ["new", "firing"],
    ]
    resolved = cli("alerts", "list", "--state", "resolved", "--json", **env)
    assert [alert["alert_id"] for alert in json.loads(resolved.stdout)["alerts"]] == ["gone"]


def test_alerts_ack_since_an_episode_that_ended_acknowledges_nothing(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts ack --since TIME` (the alert's SINCE as `alerts list` showed it) typed after the
    alert resolved and fired again exits 1 saying so, and when it resolved, the alert firing
    since left as it is; with that one's SINCE, typed in lower case (RFC 3339 allows it, the
    bridge reads it), it acknowledges it."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    ingest_alerts(bridge.url, ["a1"])
    [first] = wait_until(lambda: listed_alerts(bridge.url), 15, "a1")
    fixed = cli("alerts", "ack", "a1", "--by", "alice", "--resolution", "fixed", "--json", **env)
    assert fixed.returncode == 0, fixed.stderr
    ended = json.loads(fixed.stdout)["alert"]["ends_at"]
    ingest_alerts(bridge.url, ["a1"])
    [second] = wait_until(
        lambda: [a for a in listed_alerts(bridge.url) if a["state"] == "firing"],
        15,
        "a1 firing again",
    )
    late = cli("alerts", "ack", "a1", "--by", "bob", "--since", str(first["starts_at"]), **env)
    assert late.returncode == 1
    assert "409" in late.stderr
    assert f"started at {second['starts_at']}, " in late.stderr
    assert f" after the {first['starts_at']} given, which is earlier:" in late.stderr
    assert (
        f" given, which is earlier: it resolved at {ended} and fired again since (" in late.stderr
    )
    assert [a["state"] for a in listed_alerts(bridge.url)] == ["firing"]
    since = str(second["starts_at"]).lower()
    acked = cli("alerts", "ack", "a1", "--by", "bob", "--since", since, **env)
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.splitlines()[1].split()[:2] == ["a1", "acknowledged"]


@pytest.mark.parametrize(
    ("off", "said"),
    [
        # 15:00 for 15:21: earlier, and its history holds no resolve since, so a typo.
        (-timedelta(minutes=21), "21 min after the {typo} given, which is earlier: it has not"
         " resolved since then, so no episode of it started then: that time is mistyped"),
        # A day typo, said as a whole day: the typo it is.
        (-timedelta(days=1), "1 day after the {typo} given, which is earlier: it has not"
         " resolved since then, so no episode of it started then: that time is mistyped"),
        # Later: no episode started then, so a typo for certain.
        (timedelta(hours=2), "2 h before the {typo} given, which is later: no episode of it"
         " started then, so that time is mistyped"),
    ],
)  # fmt: skip
def test_alerts_ack_since_a_mistyped_time_says_how_far_and_which_side_of_the_since_it_is(
    bridges: Bridges, tmp_path: Path, off: timedelta, said: str
) -> None:
    """`alerts ack --since TIME` with a TIME off the start of an alert that has had one episode
    (a typo: 15:00 for 15:21, a day off, a later hour) exits 1 naming the since of the episode
    firing now, as `alerts list` shows it, how far TIME is from it and on which side, and that
    it is a typo: earlier, the alert not having resolved since (not an episode that ended);
    later, no episode having started then; with that since it acknowledges it."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    ingest_alerts(bridge.url, ["a1"])
    [alert] = wait_until(lambda: listed_alerts(bridge.url), 15, "a1")
    since = cli("alerts", "list", **env).stdout.splitlines()[1].split()[6]
    assert since == alert["starts_at"]
    typo = format_timestamp(datetime.fromisoformat(since) + off)
    late = cli("alerts", "ack", "a1", "--by", "bob", "--since", typo, **env)
    assert (late.returncode, late.stdout) == (1, "")
    assert late.stderr == (
        f"exesdb-bridge: {bridge.url}/v1/alerts/a1/ack answered 409: the current episode of"
        f" alert 'a1' started at {since}, {said.format(typo=typo)} ({since} names the episode"
        " firing now); it is left as it is (another_episode, field starts_at)\n"
    )
    assert [a["state"] for a in listed_alerts(bridge.url)] == ["firing"]
    acked = cli("alerts", "ack", "a1", "--by", "bob", "--since", since, **env)
    assert acked.returncode == 0, acked.stderr


def test_alerts_ack_since_another_time_of_a_resolved_alert_says_it_resolved(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts ack --since TIME` of a resolved alert, TIME not its since, exits 1 naming its
    last episode's since and when it resolved, and that none of it is firing, not "the episode
    firing now"."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    ingest_alerts(bridge.url, ["a1"])
    wait_until(lambda: listed_alerts(bridge.url), 15, "a1")
    fixed = cli("alerts", "ack", "a1", "--by", "alice", "--resolution", "fixed", "--json", **env)
    assert fixed.returncode == 0, fixed.stderr
    alert = json.loads(fixed.stdout)["alert"]
    typo = format_timestamp(datetime.fromisoformat(alert["starts_at"]) + timedelta(minutes=5))
    late = cli("alerts", "ack", "a1", "--by", "bob", "--since", typo, **env)
    assert (late.returncode, late.stdout) == (1, "")
    assert (
        f"answered 409: the last episode of alert 'a1' started at {alert['starts_at']}, 5 min"
        f" before the {typo} given, which is later, and resolved at {alert['ends_at']}: no"
        " episode of it is firing to acknowledge; it is left as it is"
    ) in late.stderr
    assert "firing now" not in late.stderr


@pytest.mark.parametrize(
    ("given", "said"),
    [
        # Letter case aside, it is one: named alone, not beside those spelt nearly so.
        ("DISK1", "did you mean 'disk1'?"),
        ("disk-2", "did you mean 'disk2'?"),
        # Equally alike several: each named.
        ("disk", "did you mean 'disk2' or 'disk1'?"),
        # The docs' placeholder, typed as it stands.
        ("ALERT_ID", "no alert it knows has an id alike:"),
    ],
)
def test_alerts_ack_of_an_id_the_bridge_does_not_know_names_the_ids_spelt_alike(
    bridges: Bridges, tmp_path: Path, given: str, said: str
) -> None:
    """`alerts ack ID` of an id the bridge does not know exits 1 with its 404, then a line
    naming the ids it knows spelt most alike (each when several are equally alike, the most
    recently changed first), or none, and the command listing every alert it knows."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    ingest_alerts(bridge.url, ["disk1"])
    wait_until(lambda: len(listed_alerts(bridge.url)) == 1, 15, "disk1")
    ingest_alerts(bridge.url, ["disk2"])  # after disk1's: the most recently changed
    wait_until(lambda: len(listed_alerts(bridge.url)) == 2, 15, "disk2")
    acked = cli("alerts", "ack", given, "--by", "bob", **env)
    assert (acked.returncode, acked.stdout) == (1, "")
    refused, hint = acked.stderr.splitlines()
    assert refused.endswith(f"answered 404: no alert {given!r} (unknown_alert, field alert_id)")
    assert hint.startswith(f"exesdb-bridge: {said}"), hint
    assert "exesdb-bridge alerts list --state all lists every alert it knows" in hint


@pytest.mark.parametrize(
    ("options", "said"),
    [
        # Empty ("$NOTE" unset): refused here, nothing sent.
        (["a1", "--by", "alice", "--note", ""],
         "exesdb-bridge alerts ack: error: argument --note: '' is no note: give one, or leave"
         " --note out"),
        (["a1", "--by", "alice", "--resolution", ""],
         "exesdb-bridge alerts ack: error: argument --resolution: '' is no resolution: give one,"
         " or leave --resolution out"),
        # Refused by the bridge, in its words: the command line's fault all the same.
        (["a1", "--by", "alice", "--note", "x" * 4097],
         "answered 400: ack_note must be a string of 1-4096 characters (invalid, field ack_note)"),
        (["a1", "--by", "a\tb"],
         "answered 400: ack_by must be a string of 1-200 characters that is not blank"),
        # An ALERT_ID no alert has: ingest refuses control characters in one.
        (["a\x1b[2J", "--by", "alice"],
         "answered 400: alert_id must not contain control characters (no alert id holds one)"
         " (invalid, field alert_id)"),
    ],
)  # fmt: skip
def test_alerts_ack_with_an_option_no_ack_takes_is_a_usage_error(
    bridges: Bridges, tmp_path: Path, options: list[str], said: str
) -> None:
    """`alerts ack` with an empty --note or --resolution, or an ALERT_ID, --by or --note the
    bridge refuses (an escape sequence, a tab, over 4 096 characters), exits 2, a usage error,
    as an empty --by does, not 1 as a failure would: the alert is left as it is."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    ingest_alerts(bridge.url, ["a1"])
    wait_until(lambda: listed_alerts(bridge.url), 15, "a1")
    acked = cli("alerts", "ack", *options, **env)
    assert (acked.returncode, acked.stdout) == (2, "")
    assert said in acked.stderr.splitlines()[-1], acked.stderr
    [alert] = listed_alerts(bridge.url)
    assert (alert["state"], alert["ack_by"]) == ("firing", None)


def test_alerts_ack_at_a_bridge_with_no_alert_says_it_knows_none(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts ack ID` at a bridge that knows no alert exits 1 with its 404, then a line saying
    it knows none."""
    bridge = bridges(tmp_path)
    acked = cli(
        "alerts", "ack", "a1", "--by", "bob", "--url", bridge.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN
    )
    assert acked.returncode == 1
    assert acked.stderr.splitlines()[1:] == [
        "exesdb-bridge: the bridge knows no alert of any state"
    ]


def test_alerts_ack_with_a_resolution_of_an_alert_resolved_already_says_nothing_changed(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts ack --resolution` of an alert that resolved before it (by its resolve timeout,
    unacknowledged, or after someone else's ack) says on stderr it was resolved already, exit 0:
    the table shows it resolved, but not by this ack, whose resolution is not recorded."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true", EXESDB_ALERT_RESOLVE_TIMEOUT_MS="100")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    fields = [f if f != "severity=critical" else "severity=warning" for f in ALERT_FIELDS]
    # A warning resolves by itself; one that requires an ack, only once acknowledged.
    for alert_id, requires_ack in (("quiet", "false"), ("acked", "true")):
        published = cli(
            "publish", "system_alert", "--topic", "disk_full", *fields,
            "-f", f"alert_id={alert_id}", "-f", f"requires_ack={requires_ack}",
            "--url", bridge.url, SECRET_KEY_BASE=TEST_SECRET,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
    wait_until(lambda: len(listed_alerts(bridge.url)) == 2, 15, "2 alerts")
    assert cli("alerts", "ack", "acked", "--by", "alice", **env).returncode == 0
    wait_until(
        lambda: {a["state"] for a in listed_alerts(bridge.url)} == {"resolved"},
        15,
        "both resolved by their timeout",
    )
    for alert_id in ("quiet", "acked"):
        late = cli("alerts", "ack", alert_id, "--by", "bob", "--resolution", "disk replaced", **env)
        assert late.returncode == 0, late.stderr
        assert late.stdout.splitlines()[1].split()[:2] == [alert_id, "resolved"]
        assert late.stderr == (
            f"exesdb-bridge: alert {alert_id} was resolved already; nothing changed\n"
        )


def _no_time(since: str) -> str:
    """What --since given ``since``, no time at all, is told."""
    return (
        f"{since!r} is no time: give the alert's SINCE as alerts list shows it (RFC 3339, such"
        " as 2026-12-05T11:40:00.123Z)"
    )


@pytest.mark.parametrize(
    ("since", "fault"),
    [
        ("yesterday", _no_time("yesterday")),
        ("2026-12-05 lunchtime", _no_time("2026-12-05 lunchtime")),
        ("1733400000", _no_time("1733400000")),
        # ISO 8601 forms Python reads and the bridge, as RFC 3339, does not.
        ("20261205T114000Z", _no_time("20261205T114000Z")),
        (" 2026-12-05T11:40:00Z", _no_time(" 2026-12-05T11:40:00Z")),
        # Short of only its UTC offset (or the offset's minutes): told what to add, never a
        # local time taken as UTC.
        (
            "2026-12-07T10:00:00",
            "'2026-12-07T10:00:00' has no UTC offset: add Z if it is UTC (2026-12-07T10:00:00Z),"
            " else its time zone's offset (such as 2026-12-07T10:00:00+01:00)",
        ),
        (
            "2026-12-07 10:00:00.123",
            "'2026-12-07 10:00:00.123' has no UTC offset: add Z if it is UTC"
            " (2026-12-07 10:00:00.123Z), else its time zone's offset (such as"
            " 2026-12-07 10:00:00.123+01:00)",
        ),
        (
            "2026-12-07T10:00:00+02",
            "'2026-12-07T10:00:00+02' has an offset without its minutes: write it as RFC 3339"
            " does (2026-12-07T10:00:00+02:00)",
        ),
        # ISO 8601's basic offset, strftime's %z.
        (
            "2026-12-07T10:00:00.123+0100",
            "'2026-12-07T10:00:00.123+0100' has an offset without its colon: write it as RFC"
            " 3339 does (2026-12-07T10:00:00.123+01:00)",
        ),
        # Copied from the status page, which shows times to the second.
        (
            "2026-12-07 10:00:00 UTC",
            "'2026-12-07 10:00:00 UTC' is a time as the status page shows it, to the second:"
            " give the alert's SINCE as alerts list shows it, to the millisecond (such as"
            " 2026-12-07T10:00:00.123Z)",
        ),
    ],
)
def test_alerts_ack_since_a_time_that_is_none_is_a_usage_error_saying_what_is_wrong(
    since: str, fault: str
) -> None:
    """`alerts ack --since` with no RFC 3339 time exits 2 naming --since and what is wrong
    with it (the form meant, or the UTC offset to add), nothing sent (the bridge, not reached
    here, would have refused its starts_at field)."""
    nobody = f"http://127.0.0.1:{free_port()}"
    refused = cli(
        "alerts", "ack", "a1", "--by", "bob", "--since", since,
        EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, EXESDB_URL=nobody,
    )  # fmt: skip
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.endswith(f"exesdb-bridge alerts ack: error: argument --since: {fault}\n")


def test_alerts_list_prints_the_most_recently_changed_up_to_its_limit_and_says_how_many_not(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts list --limit N` prints the N most recently changed alerts (with --json too) and
    says on stderr how many it left out of how many; --limit 0 prints every one, and so does the
    default of 50 here; a negative or non-numeric limit is a usage error."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    for alert_id in ("a1", "a2", "a3", "a4"):
        ingest_alerts(bridge.url, [alert_id])  # one at a time: each changed after the one before
    wait_until(lambda: len(listed_alerts(bridge.url)) == 4, 15, "4 alerts")
    acked = cli("alerts", "ack", "a1", "--by", "alice", **env)  # a1 now the latest changed
    assert acked.returncode == 0, acked.stderr

    two = cli("alerts", "list", "--limit", "2", **env)
    assert two.returncode == 0, two.stderr
    assert [line.split()[0] for line in two.stdout.splitlines()[1:]] == ["a1", "a4"]
    assert two.stderr == (
        "exesdb-bridge: 2 of 4 alerts not shown, the 2 most recently changed listed: --limit 0"
        " lists all\n"
    )
    one = cli("alerts", "list", "--limit", "1", "--json", **env)
    assert [alert["alert_id"] for alert in json.loads(one.stdout)["alerts"]] == ["a1"]
    assert "3 of 4 alerts not shown" in one.stderr
    for every in (["--limit", "0"], []):
        listed = cli("alerts", "list", *every, **env)
        assert (listed.returncode, listed.stderr) == (0, ""), every
        rows = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
        assert rows == ["a1", "a4", "a3", "a2"], every
    for bad in ("-1", "ten"):
        refused = cli("alerts", "list", "--limit", bad, **env)
        assert refused.returncode == 2
        assert f"{bad!r} is not a whole number of 0 or more" in refused.stderr


def test_alerts_on_a_redis_replica_without_the_lease_name_the_replica_that_holds_it(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """Of two replicas on one real Redis, GET /v1/alerts names the lease holder at either (its
    consumer name), and `alerts list` (with --json too) and an `alerts ack` the other replica
    answers 404 say on stderr that it does not hold the lease, naming the one that does, as the
    status page's banner does."""
    redis = redis_server()
    bus = {"EXESDB_BUS": redis.url, "EXESDB_REDIS_CLAIM_IDLE_MS": CLAIM_IDLE_MS}
    with page_bridge(tmp_path / "one", EXESDB_NODE="bridge-1", **bus) as holder:
        wait_until(lambda: sink_of(holder).holds_work_queue(), 15, "bridge-1 holds the lease")
        name = sink_of(holder).work_queue_holder()
        assert name is not None
        assert name.startswith("bridge-1:")
        with page_bridge(tmp_path / "two", EXESDB_NODE="bridge-2", **bus) as other:
            # bridge-2 reads the holder's name when it finds the lease taken, about once a second.
            wait_until(lambda: sink_of(other).work_queue_holder() == name, 15, "bridge-2 sees it")
            answers = {}
            for replica in (holder, other):
                status, body = http_get(
                    replica.url + "/v1/alerts", {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                )
                assert status == 200
                answers[replica.url] = json.loads(body)
            env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
            listed = cli("alerts", "list", "--url", other.url, **env)
            as_json = cli("alerts", "list", "--json", "--url", other.url, **env)
            acked = cli("alerts", "ack", "gone-1", "--by", "ops", "--url", other.url, **env)
            at_holder: list[subprocess.CompletedProcess[str]] = []

            def holder_lists_without_a_warning() -> bool:
                # On a loaded host a 1.5 s lease can lapse for a moment: the holder then warns.
                at_holder[:] = [cli("alerts", "list", "--url", holder.url, **env)]
                return "work-queue lease" not in at_holder[0].stderr

            wait_until(holder_lists_without_a_warning, 15, "the holder lists with no warning")
    assert answers[other.url] == {
        "alerts": [],
        "work_queue_holder": False,
        "work_queue_holder_name": name,
        "work_queue_lease": "elsewhere",
        "work_queue_reachable": True,
    }
    assert answers[holder.url]["work_queue_holder_name"] == name  # its own
    warning = (
        f"exesdb-bridge: the replica at {other.url} does not hold the work-queue lease: its alerts"
        f" may be missing or out of date; ask the replica that holds it: {name}"
        " (exesdb_redis_work_queue_leader 1 on its /metrics)\n"
    )
    assert listed.returncode == 0
    assert listed.stderr.endswith(warning)
    assert (as_json.returncode, as_json.stderr) == (0, warning)
    assert json.loads(as_json.stdout)["work_queue_holder_name"] == name
    assert acked.returncode == 1
    assert acked.stderr.endswith(warning)
    assert at_holder[0].returncode == 0


@pytest.mark.integration
def test_alerts_on_a_replica_cut_off_from_redis_say_the_lease_holder_cannot_be_known(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """With Redis stopped under a running replica that held the work-queue lease, once its lease
    lapsed GET /v1/alerts says work_queue_lease unknown, and `alerts list` and the status page
    say which replica holds the lease cannot be known because Redis is unreachable, not to ask
    the replica that holds it."""
    redis = redis_server()
    bus = {"EXESDB_BUS": redis.url, "EXESDB_REDIS_CLAIM_IDLE_MS": CLAIM_IDLE_MS}
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with page_bridge(tmp_path / "one", EXESDB_NODE="bridge-1", **bus) as replica:
        wait_until(lambda: sink_of(replica).holds_work_queue(), 15, "bridge-1 holds the lease")
        redis.stop()

        def answer() -> dict[str, Any]:
            status, body = http_get(replica.url + "/v1/alerts", auth)
            assert status == 200
            return dict(json.loads(body))

        # The lease lapses a lease (EXESDB_REDIS_CLAIM_IDLE_MS) after its last renewal, which
        # only a failed command to Redis tells (and Redis stays stopped).
        wait_until(lambda: answer()["work_queue_holder"] is False, 15, "the lease lapsed")
        listed = cli("alerts", "list", "--url", replica.url, **env)
        status, page = http_get(replica.url + "/")
        said = answer()
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.endswith(
        f"exesdb-bridge: the replica at {replica.url} cannot use Redis, so which replica holds "
        "the work-queue lease cannot be known there: its alerts may be missing or out of date "
        "(its /readyz says why: Redis unreachable, or refusing the bridge); batches ingested "
        "there meanwhile wait in its spool on disk and are handled once Redis is back, and "
        "notifications already in its outbox are still sent\n"
    )
    assert "ask the replica that holds it" not in listed.stderr
    assert status == 200
    text = page.decode()
    assert (
        "<b>This replica cannot use Redis, so which replica holds the alert work-queue lease"
        " cannot be known here:</b>" in text
    )
    assert "This replica does not hold the alert work-queue lease" not in text
    assert alert_card(text) == ("warn", "none here; may be incomplete (cannot use Redis)")
    assert (
        "No active alerts on this replica, which cannot use Redis: which replica holds the"
        " alert work-queue lease, and so the cluster&#x27;s alerts, cannot be known here." in text
    )
    assert "the replica that holds it may have some" not in text
    assert said.get("work_queue_lease") == "unknown"


@pytest.fixture
def lease_moving_replica() -> Iterator[str]:
    """The URL of a real HTTP server on loopback answering GET /v1/alerts as a Redis replica
    that takes the work-queue lease between the requests for firing and acknowledged alerts:
    without it (naming bridge-2) for the first, holding it (naming itself, bridge-1) after."""

    class Replica(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = parse_qs(urlsplit(self.path).query).get("state", [""])[0]
            held = state != "firing"
            holder = "bridge-1:aa" if held else "bridge-2:bb"
            body = json.dumps(
                {"alerts": [], "work_queue_holder": held, "work_queue_holder_name": holder}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replica)
    # shutdown() returns once the loop next looks, every poll_interval (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_alerts_list_says_the_lease_moved_while_listing_not_that_the_replica_should_ask_itself(
    lease_moving_replica: str,
) -> None:
    """When a replica takes the work-queue lease between the requests for the two states,
    `alerts list` says the lease moved while it listed and to list again, never that it does
    not hold the lease and to ask itself; --json names the replica an answer without the lease
    named."""
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    listed = cli("alerts", "list", "--url", lease_moving_replica, **env)
    as_json = cli("alerts", "list", "--json", "--url", lease_moving_replica, **env)
    moved = (
        f"exesdb-bridge: the work-queue lease moved to or from the replica at"
        f" {lease_moving_replica} while it listed its alerts: they may be missing or out of"
        " date; list them again\n"
    )
    assert (listed.returncode, as_json.returncode) == (0, 0)
    assert listed.stderr.endswith(moved)
    assert as_json.stderr == moved
    assert "bridge-1" not in listed.stderr + as_json.stderr
    answer = json.loads(as_json.stdout)
    assert (answer["work_queue_holder"], answer["work_queue_holder_name"]) == (False, "bridge-2:bb")


def test_alerts_list_of_one_state_says_none_of_that_state(bridges: Bridges, tmp_path: Path) -> None:
    """`alerts list --state resolved` listing none says no resolved alerts, not "no alerts",
    which read as though the bridge held none at all; `--state all` says no alerts."""
    bridge = bridges(tmp_path)
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    resolved = cli("alerts", "list", "--state", "resolved", **env)
    every = cli("alerts", "list", "--state", "all", **env)
    assert (resolved.returncode, resolved.stdout, resolved.stderr) == (
        0,
        "",
        "exesdb-bridge: no resolved alerts (--state all lists every state)\n",
    )
    assert (every.returncode, every.stdout, every.stderr) == (0, "", "exesdb-bridge: no alerts\n")
