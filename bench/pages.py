"""The status page's refresh: bytes on the wire and the bridge's CPU per refresh, against a REV.

    .venv/bin/python -m bench.pages [REV] [--refreshes N] [--repeats N]

REV (default ``main``) is extracted with ``git archive`` and run beside this tree, each as
``python -m bridge run`` (the default components: the alert and Prometheus sinks) with 400 active
alerts with long titles (200 firing, 200 acknowledged: what the page shows at most) and 200
nodes. A client asks each for ``/?part=live`` one request at a time over one kept-alive
connection, as an open tab's refresh script does, in four ways: as the baseline's script does
(nothing conditional, ``Accept-Encoding: identity``), the same accepting gzip (as a browser
does), as this tree's script does (``If-None-Match`` with the last ETag, accepting gzip) while
nothing changes, and the same with an alert acknowledged before each refresh (``POST
/v1/alerts/{id}/ack``, the same work in both trees), so that each finds the page changed. The
table gives, per refresh, the bytes received (headers and body) in the first repeat (the acks
shrink the page: firing alerts' rows are the longest) and the bridge process's CPU (its CPU-time
clock), medians of the repeats, the trees interleaved.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import time
from pathlib import Path
from typing import Final

from bench._util import ROOT, BridgeProcess, argument_parser, extract, median, settle, table
from bench.workload import SECRET
from bridge.bus import SIGNATURE_HEADER, Envelope, Keyring, new_message_id
from bridge.messages import NodeHealth, SystemAlert, utc_now

ALERTS: Final = 400
NODES: Final = 200
TOKEN: Final = "bench-admin-token-0123456789abcdef"
# What Chromium sends with a fetch().
BROWSER_ENCODINGS: Final = "gzip, deflate, br, zstd"
WAYS: Final = ("plain", "gzip accepted", "If-None-Match", "an ack before each")


def _post(port: int, messages: list[SystemAlert | NodeHealth]) -> None:
    body = b"".join(
        Envelope(
            id=new_message_id(),
            instance=message.INSTANCE,
            topic="system_alert" if isinstance(message, SystemAlert) else "node_health_updated",
            tag=message.TAG,
            node="bench-node",
            ts=utc_now(),
            payload=message,
        ).to_bytes()
        + b"\n"
        for message in messages
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        header = Keyring.from_secrets(SECRET).sign_header(body, int(time.time()))
        connection.request(
            "POST",
            "/v1/messages",
            body,
            {"Content-Type": "application/x-ndjson", SIGNATURE_HEADER: header},
        )
        answer = connection.getresponse()
        answer.read()
        if answer.status != 202:
            raise RuntimeError(f"ingest answered {answer.status}")
    finally:
        connection.close()


def _fill(bridge: BridgeProcess) -> list[str]:
    """400 alerts with long titles, every other one acknowledged, and 200 nodes; the ids of the
    alerts left firing."""
    alerts = [
        SystemAlert(
            alert_id=f"threshold:db-{n % 50}@cluster:metric_{n:03d}",
            severity=("critical", "error", "warning")[n % 3],
            category="system",
            title=f"db-{n % 50}@cluster metric_{n:03d} " + "is above its threshold " * 8,
            description="a status page with long titles",
            source="bench",
            node=f"db-{n % 50}@cluster",
        )
        for n in range(ALERTS)
    ]
    nodes = [
        NodeHealth(node=f"db-{n:03d}@cluster", status="healthy", memory_usage=30.0)
        for n in range(NODES)
    ]
    _post(bridge.port, [*alerts, *nodes])
    connection = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=30)
    try:

        def listed() -> list[str]:
            connection.request(
                "GET", "/v1/alerts?limit=1000", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            return [
                alert["alert_id"] for alert in json.loads(connection.getresponse().read())["alerts"]
            ]

        deadline = time.monotonic() + 60
        while len(listed()) < ALERTS:
            if time.monotonic() > deadline:
                raise RuntimeError("the alerts were not all kept")
            time.sleep(0.1)
        for alert in alerts[::2]:
            _ack(connection, alert.alert_id)
    finally:
        connection.close()
    return [alert.alert_id for alert in alerts[1::2]]


def _ack(connection: http.client.HTTPConnection, alert_id: str) -> None:
    connection.request(
        "POST",
        f"/v1/alerts/{alert_id.replace('@', '%40')}/ack",
        json.dumps({"ack_by": "bench"}),
        {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        raise RuntimeError(f"ack answered {answer.status}")


def _refreshes(port: int, way: str, n: int, firing: list[str]) -> tuple[int, list[int]]:
    """Ask ``n`` times (after one not counted) the way named; bytes received, statuses. The
    last way acknowledges one of the ``firing`` alerts before each (taking it), so each
    refresh finds the page changed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    received = 0
    statuses = []
    etag = None
    try:
        for number in range(n + 1):
            headers = {"Accept-Encoding": "identity" if way == "plain" else BROWSER_ENCODINGS}
            if way in WAYS[2:] and etag is not None:
                headers["If-None-Match"] = etag
            if way == WAYS[3]:
                _ack(connection, firing.pop())
            connection.request("GET", "/?part=live", headers=headers)
            answer = connection.getresponse()
            body = answer.read()  # as sent: http.client decodes no content coding
            etag = answer.getheader("ETag") or etag
            if number:
                head = sum(len(k) + len(v) + 4 for k, v in answer.getheaders()) + 17
                received += head + len(body)
                statuses.append(answer.status)
    finally:
        connection.close()
    return received, statuses


def run(revision: str = "main", refreshes: int = 20, repeats: int = 5) -> str:
    """The table: bytes and CPU ms per refresh of the status page, ``revision`` and this tree."""
    if repeats * (refreshes + 1) > ALERTS // 2:
        raise ValueError(f"{repeats} x {refreshes + 1} acks: more than the {ALERTS // 2} firing")
    env = {"EXESDB_INGEST": "true", "EXESDB_ADMIN_TOKEN": TOKEN}
    with tempfile.TemporaryDirectory(prefix="exesdb-pages-") as scratch:
        trees = {revision: extract(revision, Path(scratch)), "this tree": ROOT}
        cpu: dict[tuple[str, str], list[float]] = {}
        firing: dict[int, list[str]] = {}
        sent: dict[tuple[str, str], tuple[int, list[int]]] = {}
        with (
            BridgeProcess(trees[revision], **env) as before,
            BridgeProcess(ROOT, **env) as after,
        ):
            processes = {revision: before, "this tree": after}
            for process in processes.values():
                firing[process.port] = _fill(process)
                _refreshes(process.port, "plain", 3, [])  # warm up
                settle(process.stat)
            for repeat in range(repeats):
                order = list(processes.items())
                for name, process in order if repeat % 2 == 0 else reversed(order):
                    for way in WAYS:
                        start = process.stat()
                        answered = _refreshes(process.port, way, refreshes, firing[process.port])
                        # The bytes as the page first stood: acks shrink it, repeat by repeat.
                        sent.setdefault((name, way), answered)
                        end = settle(process.stat)
                        used = (end.cpu_seconds - start.cpu_seconds) / (refreshes + 1)
                        cpu.setdefault((name, way), []).append(used * 1e3)
    rows = []
    for name in trees:
        for way in WAYS:
            received, statuses = sent[name, way]
            codes = ", ".join(f"{statuses.count(s)}x{s}" for s in sorted(set(statuses)))
            rows.append([name, way, codes, received / refreshes, median(cpu[name, way])])
    return table(
        f"Status page refresh (/?part=live), {ALERTS} alerts with long titles and {NODES} nodes,"
        f" {revision} vs this tree ({repeats} x {refreshes} refreshes, interleaved; median CPU)",
        ["bridge", "asked", "answers", "bytes / refresh", "CPU ms / refresh"],
        rows,
    )


def main() -> None:
    """Parse the arguments and print the table."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("revision", nargs="?", default="main", help="git revision (main)")
    parser.add_argument("--refreshes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(run(args.revision, args.refreshes, args.repeats))


if __name__ == "__main__":
    main()
