"""How late ``/healthz`` answers while a bridge refuses envelopes whose list holds many wrong items.

``python -m bench.wrong_items [--items N] [--posts 3]`` runs ``python -m bridge run`` from this
tree with ingest on, and POSTs a signed ``cluster_membership_changed`` whose ``affected_nodes``
holds N whole numbers where node names belong (520 000 by default: 1 MiB, the most
``EXESDB_MAX_BODY_BYTES`` takes by default) while another connection asks ``/healthz`` every 2 ms:
each refusal's wall time, and the median and the longest ``/healthz`` wait meanwhile, beside
those of an idle second before (the baseline, same run) and the ratio of the longest. Wall
times on a shared machine: compare runs made one after the other.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from bench._util import (
    ROOT,
    argument_parser,
    command_environment,
    free_port,
    http_get,
    median,
    wait_for,
)
from bench.workload import SECRET, membership_body, sign_header


def _body(items: int) -> bytes:
    payload = {
        "event": "node_added",
        "affected_nodes": [1] * items,
        "active_nodes": ["a"],
        "originating_node": "a",
    }
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return membership_body(payload, ts) + b"\n"


def _healthy(base: str) -> bool:
    try:
        return http_get(base + "/healthz", timeout=1.0)[0] == 200
    except OSError:
        return False


def _refused(base: str, body: bytes) -> tuple[int, float]:
    """The status and wall seconds of one POST of ``body``."""
    headers = {"Content-Type": "application/x-ndjson", "X-ExESDB-Signature": sign_header(body)}
    request = urllib.request.Request(base + "/v1/messages", data=body, headers=headers)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - start


def main() -> None:
    parser = argument_parser(__doc__ or "")
    parser.add_argument("--items", type=int, default=520_000)
    parser.add_argument("--posts", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as state:
        env = {
            **command_environment(),
            "EXESDB_INGEST": "true",
            "SECRET_KEY_BASE": SECRET,
            "EXESDB_HTTP_ADDR": f"127.0.0.1:{port}",
            "EXESDB_STATE_DIR": state,
            "EXESDB_LOG_LEVEL": "error",
        }
        bridge = subprocess.Popen([sys.executable, "-m", "bridge", "run"], cwd=ROOT, env=env)
        try:
            wait_for(lambda: _healthy(base), 30.0, "the bridge's /healthz")
            body = _body(args.items)
            waits: list[float] = []
            done = threading.Event()

            def probe() -> None:
                while not done.is_set():
                    start = time.perf_counter()
                    http_get(base + "/healthz", timeout=30.0)
                    waits.append(time.perf_counter() - start)
                    done.wait(0.002)  # a probe every 2 ms, as a busy prober might

            # The baseline, in the same run: the same prober for a second with nothing posted.
            prober = threading.Thread(target=probe)
            prober.start()
            done.wait(1.0)  # the idle second the baseline is
            done.set()
            prober.join()
            idle, waits = waits, []
            done.clear()
            prober = threading.Thread(target=probe)
            prober.start()
            try:
                for _ in range(args.posts):
                    status, seconds = _refused(base, body)
                    print(f"{len(body)} bytes: {status} after {seconds * 1000:.0f} ms")
            finally:
                done.set()
                prober.join()
            for name, seen in (("idle (baseline)", idle), ("while refusing", waits)):
                print(
                    f"/healthz wait {name}: median {median(seen) * 1000:.1f} ms,"
                    f" longest {max(seen) * 1000:.1f} ms ({len(seen)} asked)"
                )
            print(f"longest wait against the idle one: {max(waits) / max(idle):.2f}x")
        finally:
            bridge.terminate()
            bridge.wait(timeout=30)


if __name__ == "__main__":
    main()
