"""Sustained load: 10 000 messages/s of signed NDJSON ingest for 60 s; RSS must stay bounded.

Ten batches of 1 000 a second, paced on a monotonic schedule, into a real bridge process. RSS is
sampled every second; the table shows it at the start, half way and at the end, and the growth
over the second half (a bounded process levels off once its replay memory is full).
"""

from __future__ import annotations

import http.client
import time
from typing import Final

from bench._util import BridgeProcess, argument_parser, median, table
from bench.workload import Source

BATCH: Final = 1_000
RATE: Final = 10_000


def run(*, seconds: float = 60.0) -> str:
    """Hold ``RATE`` messages/s for ``seconds``; the table."""
    source = Source()
    interval = BATCH / RATE
    samples: list[tuple[float, int, float]] = []  # (elapsed, rss, cpu seconds)
    refused = 0
    lag: list[float] = []
    with BridgeProcess(EXESDB_INGEST="true") as bridge:
        connection = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=30)
        start_stat = bridge.stat()
        started = time.monotonic()
        next_send = started
        next_sample = started
        sent = 0
        while True:
            now = time.monotonic()
            if now - started >= seconds:
                break
            if now >= next_sample:
                stat = bridge.stat()
                samples.append((now - started, stat.rss_bytes, stat.cpu_seconds))
                next_sample += 1.0
            if now < next_send:
                time.sleep(min(next_send, next_sample) - now)
                continue
            lag.append(now - next_send)
            body, header = source.batch(BATCH)
            connection.request(
                "POST",
                "/v1/messages",
                body,
                {"Content-Type": "application/x-ndjson", "X-ExESDB-Signature": header},
            )
            response = connection.getresponse()
            response.read()
            if response.status != 202:
                refused += 1
            sent += BATCH
            next_send += interval
        elapsed = time.monotonic() - started
        connection.close()
        end_stat = bridge.stat()
        components = bridge.components()
    first, half = samples[0], samples[len(samples) // 2]
    rss_mb = [rss / 2**20 for _, rss, _ in samples]
    cpu_percent = (end_stat.cpu_seconds - start_stat.cpu_seconds) / elapsed * 100
    rows = [
        ["start", first[0], first[1] / 2**20, 1.0],
        ["half way", half[0], half[1] / 2**20, half[1] / first[1]],
        ["end", elapsed, end_stat.rss_bytes / 2**20, end_stat.rss_bytes / first[1]],
        ["peak", float("nan"), max(rss_mb), max(rss_mb) / (first[1] / 2**20)],
    ]
    title = (
        f"Soak: {sent / elapsed:,.0f} msgs/s achieved (target {RATE:,}) for {elapsed:.0f} s; "
        f"bridge CPU {cpu_percent:.0f}%; {refused} batch(es) refused; "
        f"median send lag {median(lag) * 1e3:.1f} ms; components: {components}"
    )
    growth = (end_stat.rss_bytes - half[1]) / 2**20
    text = table(title, ["when", "t (s)", "RSS MiB", "x start"], rows)
    return text + f"\nRSS growth over the second half: {growth:+.1f} MiB\n"


if __name__ == "__main__":
    parser = argument_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    print(run(seconds=parser.parse_args().seconds))
