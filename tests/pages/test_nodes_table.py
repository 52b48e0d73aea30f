"""The status page's nodes over plain HTTP: their health and use, silent, down or left ones marked,
the worst ones first, and long names cut in the table but whole in the tooltip."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp

from bridge.messages import NodeLifecycle
from bridge.pages.status import MAX_SHOWN
from tests.pages.helpers import NODE, fetch, page_bridge, publish, raise_alert, report_node
from tests.support import async_wait_until


async def test_the_status_page_lists_nodes_with_health_and_use(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A node heard on the bus appears with its status and CPU, memory and disk percentages."""
    with page_bridge(tmp_path) as server:
        report_node(server, "db-3@cluster", "degraded", cpu=91.0, memory=40.0, disk=63.0)

        async def listed() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
            return nodes if "db-3@cluster" in nodes and "91%" in nodes else None

        nodes = await async_wait_until(listed, 15, "the node on the page")
    row = nodes.split("db-3@cluster", 1)[1].split("</tr>", 1)[0]
    assert ">degraded</span>" in row
    assert 'value="91.0"' in row
    assert ">91%<" in row
    assert ">40%<" in row
    assert ">63%<" in row


async def test_a_node_heard_from_no_more_is_marked_silent_until_it_reports_again(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A node that missed two health and metrics intervals keeps its last figures but its health
    says for how long it has been silent (its "healthy" is stale); a new reading clears that."""
    # Silent after 3 s: long enough for the page to be asked before the new reading ages.
    intervals = {
        "EXESDB_HEALTH_BROADCAST_INTERVAL": "1500",
        "EXESDB_METRICS_BROADCAST_INTERVAL": "1000",
    }
    with page_bridge(tmp_path, **intervals) as server:

        async def row(silent: bool) -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
            if "db-9@cluster" not in nodes:
                return None
            found = nodes.split("db-9@cluster", 1)[1].split("</tr>", 1)[0]
            return found if ('class="muted silent"' in found) == silent else None

        report_node(server, "db-9@cluster", "healthy", cpu=12.0, memory=30.0)
        silent = await async_wait_until(lambda: row(silent=True), 15, "the node marked silent")
        assert ">healthy</span>" in silent
        assert ">12%<" in silent
        assert "EXESDB_SERIES_TTL_MS" in silent
        report_node(server, "db-9@cluster", "healthy", cpu=14.0, memory=30.0)
        heard = await async_wait_until(lambda: row(silent=False), 15, "the mark gone")
        assert ">14%<" in heard


async def test_the_bridges_own_cpu_stops_saying_measuring_once_a_reading_is_late(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The bridge's own node says "measuring…" for CPU while its first reading may still come,
    and a dash once two health intervals passed without one (a failing probe sends none)."""
    with page_bridge(tmp_path, EXESDB_HEALTH_BROADCAST_INTERVAL="2000") as server:
        report_node(server, NODE, "unknown", cpu=None, memory=20.0)

        async def own_cpu() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
            if NODE not in nodes:
                return None
            return nodes.split(NODE, 1)[1].split("</tr>", 1)[0]

        first = await async_wait_until(own_cpu, 15, "the bridge's node on the page")
        assert "measuring…" in first
        late = await async_wait_until(
            lambda: _without_measuring(own_cpu), 15, "the dash once the reading is late"
        )
    cpu = late.split("</td><td>")[2]
    assert cpu == '<span class="muted">&mdash;</span>'


async def _without_measuring(row_of: Any) -> str | None:
    row: str | None = await row_of()
    return row if row is not None and "measuring" not in row else None


async def test_the_status_page_shows_the_worst_nodes_and_counts_the_rest(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """With more nodes than MAX_SHOWN, the page lists the worst ones first (every unhealthy and
    degraded one here) and says how many healthy ones it leaves out, whose rows it omits."""
    healthy = [f"ok-{n:03d}" for n in range(MAX_SHOWN + 50)]
    with page_bridge(tmp_path) as server:
        report_node(server, "sick-1", "unhealthy", cpu=99.0, memory=99.0)
        report_node(server, "slow-1", "degraded", cpu=90.0, memory=50.0)
        for node in healthy:
            report_node(server, node, "healthy", cpu=10.0, memory=10.0)

        async def complete() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
            return nodes if "52 more not shown" in nodes else None

        nodes = await async_wait_until(complete, 30, "every node reported")
    assert nodes.count("</tr>") == MAX_SHOWN + 1  # the header row and MAX_SHOWN nodes
    assert nodes.index("sick-1") < nodes.index("slow-1") < nodes.index("ok-000")
    assert "ok-199" not in nodes
    assert "(52 healthy)" in nodes


async def test_the_nodes_table_shows_the_start_of_long_node_names(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """Node names at their longest (4 096 characters) are listed by their first 119 characters
    and ``…``, as an alert's node is, their tooltips by their first 254 (no ExESDB node's name
    is longer than 255: an Erlang atom): MAX_SHOWN of them make a page of some 400 kB, not
    the 3.4 MB their names whole made."""
    names = [f"{n:03d}" + "\N{GRINNING FACE}" * 4093 for n in range(MAX_SHOWN)]
    with page_bridge(tmp_path) as server:
        for name in names:
            report_node(server, name, "healthy", cpu=10.0, memory=10.0)

        async def listed() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            return body if f"{MAX_SHOWN} healthy" in body else None

        body = await async_wait_until(listed, 30, "every node reported")
    nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
    for n in range(MAX_SHOWN):
        assert f">{n:03d}" + "\N{GRINNING FACE}" * 116 + "…<" in nodes
        assert f'title="{n:03d}' + "\N{GRINNING FACE}" * 251 + '…"' in nodes
    # Counted, not ``not in``: pytest's diff of a miss over 400 kB runs for many minutes.
    assert body.count("\N{GRINNING FACE}" * 252) == 0
    assert len(body.encode()) < 500_000, f"{len(body.encode()) / 1e6:.1f} MB"


async def test_an_alerts_node_cut_in_its_row_is_whole_in_its_tooltip(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """An alert's node over 120 characters, its row showing the first 119 and ``…``, has its
    tooltip as the nodes table's names do: whole up to 255 characters, else its first 254 and
    ``…``; a short one has none."""
    cut, longest = "n" * 200, "m" * 4096
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "first", node=cut)
        raise_alert(server, "a2", "second", node=longest)
        raise_alert(server, "a3", "third", node="db-3")
        _, _, body = await fetch(client, server.url + "/?part=live")
    alerts = body.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    assert f'<span class="node-name" title="{cut}">{"n" * 119}…</span>' in alerts
    assert f'<span class="node-name" title="{"m" * 254}…">{"m" * 119}…</span>' in alerts
    assert '<span class="node-name">db-3</span>' in alerts


async def test_nodes_announced_down_or_left_show_so_first_with_the_time_since(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A node whose latest NodeLifecycle is down or left shows that status and for how long,
    above the unhealthy ones, and the summary counts it so."""
    with page_bridge(tmp_path) as server:
        report_node(server, "sick-1", "unhealthy", cpu=99.0, memory=99.0)
        for node, event in (("dead-1", "down"), ("gone-1", "left")):
            report_node(server, node, "healthy", cpu=10.0, memory=10.0)
            publish(server, "lifecycle", NodeLifecycle(node=node, event=event, cluster_size=1))

        async def listed() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            return body if "1 down, 1 left, 1 unhealthy" in body else None

        body = await async_wait_until(listed, 15, "the nodes on the page")
    nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
    assert nodes.index("dead-1") < nodes.index("gone-1") < nodes.index("sick-1")
    dead = nodes.split("dead-1", 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge tone-bad">down</span>' in dead
    assert re.search(
        r'class="muted gone" title="NodeLifecycle down at [-\d: ]+ UTC: [^"]*">for <time [^>]*'
        r'data-since="\d+"',
        dead,
    )
    assert ">10%<" in dead  # its last figures stay
    gone = nodes.split("gone-1", 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge tone-warn">left</span>' in gone
