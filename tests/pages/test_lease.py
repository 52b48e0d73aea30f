"""The pages of Redis replicas sharing one real redis-server: only the work-queue lease holder's
alert list is the cluster's, so another replica's pages say so and never look all clear."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from tests.integration.servers.redis import RedisServer, redis_server
from tests.pages.helpers import page_bridge, raise_alert, sink_of
from tests.support import http_get, wait_until

__all__ = ["redis_server"]  # the fixture, imported for the tests below

# A replica standing by takes a released lease within a second (bridge/bus/redis/lease.py).
CLAIM_IDLE_MS = "1500"
BANNER = "This replica does not hold the alert work-queue lease"
# The lease holder's consumer name: its EXESDB_NODE, then a tag of its run.
HOLDER = re.compile(
    r'see the replica that holds it: <b class="holder" [^>]*>bridge-1:[0-9a-f]+</b>'
)


def page(url: str) -> str:
    """GET ``url``'s text (a 200 or a 404 page)."""
    status, body = http_get(url)
    assert status in (200, 404), status
    return body.decode()


def alert_card(body: str) -> tuple[str, str]:
    """The Active alerts card's colour and the line under its count."""
    card = re.search(
        r'<div class="card tone-(\w+)">\s*<div class="label">Active alerts</div>'
        r'\s*<div class="value">[^<]*</div>\s*<div class="sub">([^<]*)</div>',
        body,
    )
    assert card is not None, body
    return card.group(1), card.group(2)


def test_a_replica_without_the_lease_says_its_alerts_may_be_incomplete(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """With an alert firing at the lease holder, the other replica's status page carries a
    banner naming the holder, its Active alerts card is amber and never says "all clear", and
    an alert's page there carries the banner too; the page's live part (what pages.js swaps in)
    drops it once that replica holds the lease, the alert then shown firing. Both name their
    bus, redis, in the bar at the top."""
    redis = redis_server()
    bus = {"EXESDB_BUS": redis.url, "EXESDB_REDIS_CLAIM_IDLE_MS": CLAIM_IDLE_MS}
    with ExitStack() as holding:
        holder = holding.enter_context(page_bridge(tmp_path / "one", EXESDB_NODE="bridge-1", **bus))
        wait_until(lambda: sink_of(holder).holds_work_queue(), 15, "bridge-1 holds the lease")
        with page_bridge(tmp_path / "two", EXESDB_NODE="bridge-2", **bus) as other:
            raise_alert(holder, "disk_full:db-1", "Disk almost full on db-1")
            assert not sink_of(other).holds_work_queue()
            # The holder's name as bridge-2 saw it, at most a second ago.
            status = wait_until(
                lambda: HOLDER.search(body := page(other.url + "/")) and body,
                15,
                "bridge-2's banner naming bridge-1",
            )
            alert = page(other.url + "/alerts/disk_full%3Adb-1")
            live = page(other.url + "/?part=live")
            at_holder = page(holder.url + "/")
            holding.close()  # a graceful stop hands the lease over
            taken = wait_until(
                lambda: BANNER not in (body := page(other.url + "/?part=live")) and body,
                15,
                "bridge-2's live part without the banner",
            )
    assert BANNER in status
    assert "bus <b>redis</b>" in status
    assert "bus <b>redis</b>" in at_holder
    assert "all clear" not in status
    assert alert_card(status) == ("warn", "none here; may be incomplete (not the lease holder)")
    assert "No active alerts." not in status
    assert "the replica that holds it may have some" in status
    assert HOLDER.search(alert)
    assert BANNER in live
    assert BANNER not in at_holder
    assert alert_card(at_holder) == ("bad", "1 critical")
    assert alert_card(taken) == ("bad", "1 critical")
    assert "Disk almost full on db-1" in taken
