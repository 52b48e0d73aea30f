"""The pages as read without JavaScript (curl, a text browser, a screen reader): the ages read as
ages, the summary cards' colours say what their text says."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from bridge.messages import NodeLifecycle
from tests.pages.helpers import page_bridge, publish, raise_alert, report_node
from tests.support import http_get, wait_until

AGE = r"(?:\d+d \d+h|\d+h \d\dm|\d+m \d\ds|\d+s)"  # as widgets.age writes it


def text(url: str) -> str:
    """The page at ``url`` as a text browser reads it: no tags, one space between words."""
    status, body = http_get(url)
    assert status == 200
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body.decode())).split())


def nodes_card(url: str) -> tuple[str, str]:
    """The Nodes card's colour and the line under its count."""
    _, body = http_get(url)
    card = re.search(
        r'<div class="card tone-(\w+)">\s*<div class="label">Nodes</div>'
        r'\s*<div class="value">[^<]*</div>\s*<div class="sub">([^<]*)</div>',
        body.decode(),
    )
    assert card is not None, body
    return card.group(1), card.group(2)


def test_ages_read_as_ages_with_the_moment_beside_them(tmp_path: Path) -> None:
    """Without the script the Uptime card reads "Uptime 41s since <start>" (the start time
    once, not twice), an alert's age on the status page is an age, and its own page reads
    "started 3m 12s ago", not "started <time> ago"."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        status = text(server.url + "/")
        alert = text(server.url + "/alerts/a1")
    utc = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    assert re.search(rf"Uptime {AGE} since {utc} ", status), status
    assert len(re.findall(utc, status.split("Uptime", 1)[1].split("Active alerts", 1)[0])) == 1
    assert re.search(rf"one alert a1 db-1@cluster {AGE} firing", status), status
    assert re.search(rf"node db-1@cluster · started {AGE} ago ·", alert), alert
    assert not re.search(rf"{utc} ago", alert)


@pytest.mark.parametrize(
    ("statuses", "tone", "detail"),
    [
        (["healthy"], "good", "1 healthy"),
        (["healthy", "degraded"], "warn", "1 degraded, 1 healthy"),
        (["healthy", "degraded", "unhealthy"], "bad", "1 degraded, 1 healthy, 1 unhealthy"),
        (["healthy", "left"], "warn", "1 healthy, 1 left"),
        (["left", "unhealthy"], "bad", "1 left, 1 unhealthy"),
        (["left", "down", "degraded"], "bad", "1 degraded, 1 down, 1 left"),
    ],
)
def test_the_nodes_card_takes_the_colour_of_its_worst_node(
    tmp_path: Path, statuses: list[str], tone: str, detail: str
) -> None:
    """The Nodes card is green while every node is healthy, amber with a degraded or left one
    and red with an unhealthy or down one, whatever else is listed before it, as the cards
    beside it are coloured by what they count."""
    with page_bridge(tmp_path) as server:
        for number, status in enumerate(statuses):
            node = f"db-{number}@cluster"
            announced = status in ("left", "down")
            report_node(server, node, "healthy" if announced else status, cpu=None, memory=20.0)
            if announced:
                publish(server, "lifecycle", NodeLifecycle(node=node, event=status, cluster_size=1))
        card = wait_until(
            lambda: (found := nodes_card(server.url + "/"))[1] == detail and found,
            15,
            f"the Nodes card counting {detail}",
        )
    assert card == (tone, detail)
