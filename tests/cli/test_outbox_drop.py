"""``outbox drop`` (``bridge.cli.outbox``): which dead letters are deleted, and which deliveries
are refused."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bridge.receiver_keys import ReceiverKeys
from bridge.sinks.alerts import DeliveryState, Outbox
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.cli.helpers import cli
from tests.sinks.alerts.helpers import T0, dead_lettered, event, observe, one_each

# A receiver no longer configured (credentials and a token in its URL), and one still used.
_GONE = "https://alice:s3cret@hooks.example/token-gone"
_KEPT = "https://other.example/token-kept"


def _dead_letters(state_dir: Path) -> dict[str, str]:
    """An outbox with a dead letter to each receiver (alert ``a``) and a pending delivery to
    _KEPT (alert ``b``); the dead letters' ids by receiver, and the pending one's as
    ``pending``."""
    outbox = Outbox.in_dir(state_dir, urls=[_GONE, _KEPT])
    observe(outbox, event("a"), T0)
    for url in (_GONE, _KEPT):
        outbox.queue.group(url, T0, 0.0, one_each)
    ids = {delivery.url: delivery.id for delivery in dead_lettered(outbox)}
    observe(outbox, event("b"), T0 + 1)
    outbox.queue.group(_KEPT, T0 + 1, 0.0, one_each)
    [pending] = outbox.queue.deliveries(DeliveryState.PENDING.value)
    ids["pending"] = pending.id
    outbox.close()
    return ids


def _states(env: dict[str, Any]) -> dict[str, str]:
    """Each delivery's state, by id, as `outbox list --json` gives them."""
    listed = cli("outbox", "list", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    return {d["id"]: d["state"] for d in map(json.loads, listed.stdout.splitlines())}


def test_outbox_drop_deletes_the_dead_letter_named_and_names_its_receiver_safely(
    tmp_path: Path,
) -> None:
    """`outbox drop ID` deletes that dead letter alone, exit 0, and says how many it dropped of
    which receiver, shown by origin and path marker: never its credentials or path."""
    ids = _dead_letters(tmp_path)
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    dropped = cli("outbox", "drop", ids[_GONE], **env)
    assert (dropped.returncode, dropped.stderr) == (0, "")
    assert dropped.stdout == "1 dead-lettered delivery dropped: 1 of https://hooks.example/…\n"
    assert _states(env) == {ids[_KEPT]: "dead", ids["pending"]: "pending"}


def test_outbox_drop_by_receiver_takes_its_origin_or_url_and_all_takes_every_dead_letter(
    tmp_path: Path,
) -> None:
    """`outbox drop --receiver` deletes the dead letters of the receiver named by origin (or by
    its URL as configured) and no other's; one with none names those that have some, exit 1,
    and the receiver as given without its credentials or path;
    `--all` deletes every dead letter left and never a pending delivery."""
    ids = _dead_letters(tmp_path)
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    none = cli("outbox", "drop", "--receiver", "https://nowhere.example", **env)
    assert (none.returncode, none.stdout) == (1, "")
    assert none.stderr == (
        "exesdb-bridge: no dead letter of receiver 'https://nowhere.example' in the alert outbox"
        f" at {tmp_path / FILE_NAME}: those with dead letters: https://hooks.example/…,"
        " https://other.example/…\n"
    )
    by_origin = cli("outbox", "drop", "--receiver", "https://hooks.example", **env)
    assert (by_origin.returncode, by_origin.stderr) == (0, "")
    assert by_origin.stdout == "1 dead-lettered delivery dropped: 1 of https://hooks.example/…\n"
    assert _states(env) == {ids[_KEPT]: "dead", ids["pending"]: "pending"}
    by_url = cli("outbox", "drop", "--receiver", _GONE, **env)
    assert by_url.returncode == 1  # none left of it, said without the URL's secrets
    assert "no dead letter of receiver 'https://alice:<redacted>@hooks.example/…'" in by_url.stderr
    assert "s3cret" not in by_url.stderr
    assert "token-gone" not in by_url.stderr
    every = cli("outbox", "drop", "--all", **env)
    assert (every.returncode, every.stderr) == (0, "")
    assert every.stdout == "1 dead-lettered delivery dropped: 1 of https://other.example/…\n"
    assert _states(env) == {ids["pending"]: "pending"}
    again = cli("outbox", "drop", "--all", **env)
    assert (again.returncode, again.stdout) == (0, "0 dead-lettered deliveries dropped\n")


def test_outbox_drop_refuses_a_pending_delivery_and_an_unknown_id_dropping_nothing(
    tmp_path: Path,
) -> None:
    """`outbox drop` naming a pending delivery says why it is not dropped (still being sent),
    one naming no delivery names the outbox looked in, and neither drops the dead letter named
    beside them: exit 1, as `outbox retry` refuses them."""
    ids = _dead_letters(tmp_path)
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    refused = cli("outbox", "drop", ids["pending"], "nosuchid", ids[_GONE], **env)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.splitlines() == [
        f"exesdb-bridge: delivery '{ids['pending']}' is pending, not dead-lettered: it is still"
        " being sent, and `outbox drop` deletes dead letters only",
        f"exesdb-bridge: no delivery 'nosuchid' in the alert outbox at {tmp_path / FILE_NAME}"
        " (see `outbox list`)",
        "exesdb-bridge: nothing dropped, not even the 1 dead-lettered delivery named: drop"
        " without the ids above",
    ]
    assert _states(env) == {ids[_GONE]: "dead", ids[_KEPT]: "dead", ids["pending"]: "pending"}


def test_outbox_drop_of_a_configured_receiver_says_its_open_alerts_are_not_sent_again(
    tmp_path: Path,
) -> None:
    """Dropping the dead letter of a receiver the bridge last started with, of an alert still
    open, says on stderr (exit 0) that the receiver is not sent that alert again; the
    re-notification of dead letters (docs/alerts.md, "sent again while it fires") then queues
    nothing for it, where it queues the alert for a dead letter kept. A receiver not configured
    is not named so: nothing would send it anything."""
    ids = _dead_letters(tmp_path)
    outbox = Outbox(tmp_path / FILE_NAME)
    outbox.queue.queue_for([_KEPT])  # the bridge last started with _KEPT alone
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    later = T0 + 30 * 86_400  # past any re-notification interval
    dropped = cli("outbox", "drop", ids[_GONE], **env)
    assert (dropped.returncode, dropped.stderr) == (0, "")
    # A copy with the dead letter kept: re-notification queues its open alert for _KEPT.
    (tmp_path / "kept").mkdir()
    with (
        contextlib.closing(sqlite3.connect(tmp_path / FILE_NAME)) as source,
        contextlib.closing(sqlite3.connect(tmp_path / "kept" / FILE_NAME)) as copy,
    ):
        source.backup(copy)
    unchanged = Outbox(tmp_path / "kept" / FILE_NAME, urls=[_KEPT])
    assert unchanged.dead_letters.renotify(later, after=3600.0) == {_KEPT: 1}
    unchanged.close()
    dropped = cli("outbox", "drop", ids[_KEPT], **env)
    assert dropped.returncode == 0
    assert dropped.stderr == (
        "exesdb-bridge: https://other.example/… is configured and is not sent again the open"
        " alerts of what was dropped ('a'): it hears of them at their next change (`outbox"
        " retry` would have sent them now)\n"
    )
    kept = Outbox(tmp_path / FILE_NAME, urls=[_KEPT])
    assert kept.dead_letters.renotify(later, after=3600.0) == {}
    kept.close()


def test_outbox_drop_of_many_open_alerts_names_ten_and_says_how_many_more(
    tmp_path: Path,
) -> None:
    """Dropping a configured receiver's dead letters of many open alerts names the first ten on
    its line and how many more, not hundreds on one line."""
    outbox = Outbox.in_dir(tmp_path, urls=[_KEPT])
    for number in range(25):
        observe(outbox, event(f"a{number:02d}"), T0)
    outbox.queue.group(_KEPT, T0, 0.0, one_each)
    dead_lettered(outbox)
    outbox.queue.queue_for([_KEPT])  # the bridge last started with _KEPT
    outbox.close()
    dropped = cli("outbox", "drop", "--all", EXESDB_STATE_DIR=str(tmp_path))
    assert dropped.returncode == 0, dropped.stderr
    named = ", ".join(repr(f"a{number:02d}") for number in range(10))
    assert dropped.stderr == (
        "exesdb-bridge: https://other.example/… is configured and is not sent again the open"
        f" alerts of what was dropped ({named} and 15 more): it hears of them at their next"
        " change (`outbox retry` would have sent them now)\n"
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            [],
            "usage: exesdb-bridge outbox drop [-h] (ID ... | --all | --receiver ORIGIN)\n"
            "exesdb-bridge outbox drop: error: give delivery ids (ID ...), --all or --receiver"
            " ORIGIN\n",
        ),
        (["x", "--all"], "not allowed with argument"),
        (["--all", "--receiver", "https://hooks.example"], "not allowed with argument"),
        (["--receiver", "https://hooks.example", "x"], "not allowed with argument"),
        # An unset shell variable ("$ORIGIN", "$ID"): named as nothing, not taken for no option.
        (["--receiver", ""], "argument --receiver: '' names no receiver: give its URL"),
        (["--receiver", " "], "argument --receiver: ' ' names no receiver"),
        ([""], "argument ID: '' names no delivery: give its id"),
    ],
)
def test_outbox_drop_needs_one_way_of_naming_dead_letters(
    tmp_path: Path, args: list[str], said: str
) -> None:
    """`outbox drop` with nothing to drop named (an empty or blank id or --receiver too), or
    with ids, --all and --receiver mixed, is a usage error (exit 2), before the outbox is
    opened."""
    completed = cli("outbox", "drop", *args, EXESDB_STATE_DIR=str(tmp_path))
    assert (completed.returncode, completed.stdout) == (2, "")
    assert said in completed.stderr
    assert not (tmp_path / FILE_NAME).exists()


@pytest.mark.parametrize("word", ["purge", "delete", "rm", "dorp"])
def test_outbox_drop_is_found_by_the_words_people_try_for_it(tmp_path: Path, word: str) -> None:
    """`outbox purge` (and delete, rm, a misspelling) is refused naming `drop`: a queue tool's
    word for it, as `resend` names `retry`."""
    completed = cli("outbox", word, "--all", EXESDB_STATE_DIR=str(tmp_path))
    assert completed.returncode == 2
    assert re.search(r"did you mean 'drop'\?", completed.stderr), completed.stderr


def test_outbox_drop_by_a_receivers_url_leaves_the_other_receivers_at_its_origin(
    tmp_path: Path,
) -> None:
    """`outbox drop --receiver URL`, the URL as configured (a path beyond its origin), deletes
    that receiver's dead letters alone, not those of another receiver at the same origin (two
    chat webhooks of one provider), which keeps its dead letters to retry; the origin alone
    names every receiver there, and a key's label matching neither names none."""
    first, second = "https://chat.example/hooks/team-a", "https://chat.example/hooks/team-b"
    outbox = Outbox.in_dir(tmp_path)
    keys = ReceiverKeys(outbox.receiver_secret)
    outbox.queue.queue_for([keys.key(url=first), keys.key(url=second)])
    observe(outbox, event("a"), T0)
    for url in (first, second):
        outbox.queue.group(keys.key(url=url), T0, 0.0, one_each)
    ids = {delivery.url: delivery.id for delivery in dead_lettered(outbox)}
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    other = cli("outbox", "drop", "--receiver", "https://chat.example/…#0123456789abcdef", **env)
    assert other.returncode == 1  # a key of the origin that is neither's names none
    dropped = cli("outbox", "drop", "--receiver", first, **env)
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.startswith("1 dead-lettered delivery dropped: 1 of "), dropped.stdout
    assert _states(env) == {ids[keys.key(url=second)]: "dead"}
    every = cli("outbox", "drop", "--receiver", "https://chat.example", **env)
    assert every.stdout.startswith("1 dead-lettered delivery dropped"), every.stdout
    assert _states(env) == {}
