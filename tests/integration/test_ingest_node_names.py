"""A real bridge's ingest refuses node names holding a character drawn as nothing (zero-width
and other format characters, bidirectional controls, Hangul fillers, tags) or of braille blanks
alone, naming the field and counting the refusal; free text keeps them; a name in any script is
taken."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import BridgeProcess, http_get, signed_post

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALERT: dict[str, Any] = {
    "severity": "warning",
    "category": "system",
    "title": "disk full",
    "description": "d",
    "source": "tests",
}


def envelope(number: int, node: str = "node-1", **payload: Any) -> dict[str, Any]:
    """A SystemAlert envelope from ``node``, ``payload`` over ALERT's fields."""
    return {
        "v": 1,
        "id": f"node-name-test-{number:04d}",
        "instance": "ex_esdb_alerts",
        "topic": "alerts",
        "tag": "system_alert",
        "node": node,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "payload": {**ALERT, **payload},
    }


def post(bridge: BridgeProcess, body: bytes) -> tuple[int, dict[str, Any]]:
    """POST ``body`` (one JSON envelope) signed to the bridge's ingest: status and answer."""
    status, answer = signed_post(bridge.url, body, content_type="application/json")
    return status, json.loads(answer or b"{}")


def rejected(bridge: BridgeProcess, reason: str) -> float:
    """exesdb_bus_rejected_total{reason} on the bridge's /metrics (0 when not shown)."""
    exposition = http_get(bridge.url + "/metrics")[1].decode()
    found = re.search(
        rf'^exesdb_bus_rejected_total\{{reason="{reason}"\}} (\S+)$', exposition, re.M
    )
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
def test_ingest_refuses_a_node_name_with_a_hidden_character_naming_the_field(
    tmp_path: Path, bridge_processes: list[BridgeProcess], ascii_only: bool
) -> None:
    """``node-1`` followed by a zero-width space (or a right-to-left override, a Hangul filler,
    a tag character; or braille blanks alone) as the envelope's node is refused 400 malformed
    naming ``node``, as a payload's node 400 invalid_payload naming ``payload.node``, each
    counted in exesdb_bus_rejected_total under its reason; the same characters in a title and
    description are taken, and so is a node name in Cyrillic."""
    bridge = BridgeProcess(EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    cases = [
        (envelope(1, node="node-1\u200b"), "malformed", "node"),
        (envelope(2, node="\u202enode-1"), "malformed", "node"),
        (envelope(3, node="node-1\ufeff"), "malformed", "node"),
        (envelope(4) | {"payload": {**ALERT, "node": "node-1\u200b"}},
         "invalid_payload", "payload.node"),
        (envelope(5) | {"payload": {**ALERT, "node": "node\u2066-1\u2069"}},
         "invalid_payload", "payload.node"),
        (envelope(7, node="node-1\u3164"), "malformed", "node"),
        (envelope(8, node="node-1\U000e0041"), "malformed", "node"),
        (envelope(9, node="\u2800\u2800"), "malformed", "node"),
        (envelope(10) | {"payload": {**ALERT, "node": "node-1\U000e0041"}},
         "invalid_payload", "payload.node"),
    ]  # fmt: skip
    for data, reason, field in cases:
        before = rejected(bridge, reason)
        status, answer = post(bridge, json.dumps(data, ensure_ascii=ascii_only).encode())
        assert (status, answer["error"], answer["field"]) == (400, reason, field), answer
        assert "zero-width character" in answer["detail"]
        assert rejected(bridge, reason) == before + 1
    text = "disk\u200b full \u202eok"
    status, answer = post(
        bridge,
        json.dumps(envelope(6, title=text, description=text), ensure_ascii=ascii_only).encode(),
    )
    assert status == 202, answer
    cyrillic = envelope(11, node="ex_esdb@\u0443\u0437\u0435\u043b-1")
    status, answer = post(bridge, json.dumps(cyrillic, ensure_ascii=ascii_only).encode())
    assert status == 202, answer
