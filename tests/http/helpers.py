"""What the tests of ``tests/http`` share: a valid envelope, its signature, and a running bridge
with its client session (``Server``)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bridge.app import Bridge
from bridge.bus import SIGNATURE_HEADER, Envelope, Keyring
from bridge.messages import format_timestamp
from tests.support import TEST_SECRET

KEYRING = Keyring.from_secrets(TEST_SECRET)


JSON = "application/json"


NDJSON = "application/x-ndjson"


def envelope(**changes: Any) -> dict[str, Any]:
    """A valid envelope as a dict, stamped now with a fresh id."""
    data: dict[str, Any] = {
        "v": 1,
        "id": secrets.token_hex(12),
        "instance": "ex_esdb_health",
        "topic": "cluster:health",
        "tag": "node_health_updated",
        "node": "node2@host",
        "ts": format_timestamp(datetime.now(UTC)),
        "payload": {"status": "healthy"},
    }
    data.update(changes)
    return data


def body_of(*envelopes: dict[str, Any]) -> bytes:
    """One envelope as JSON, or several as NDJSON."""
    return b"\n".join(json.dumps(item).encode() for item in envelopes)


def signed(body: bytes, keyring: Keyring = KEYRING, at: float | None = None) -> str:
    """The X-ExESDB-Signature header for ``body``."""
    return keyring.sign_header(body, int(time.time() if at is None else at))


class Server:
    """A running bridge, its base URL and a client session."""

    def __init__(self, bridge: Bridge, session: aiohttp.ClientSession) -> None:
        self.bridge = bridge
        self.session = session
        assert bridge.address is not None
        host, port = bridge.address
        self.url = f"http://{host}:{port}"
        self.delivered: list[Envelope] = []

    async def post(
        self,
        body: bytes,
        content_type: str | None = JSON,
        signature: str | None = "sign",
        headers: dict[str, str] | None = None,
        path: str = "/v1/messages",
    ) -> tuple[int, dict[str, Any]]:
        """POST to ingest (signed with the test key unless told otherwise)."""
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        if signature == "sign":
            sent[SIGNATURE_HEADER] = signed(body)
        elif signature is not None:
            sent[SIGNATURE_HEADER] = signature
        async with self.session.post(self.url + path, data=body, headers=sent) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else {}

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.url + path, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    def rejected(self, reason: str) -> float:
        value = self.bridge.registry.get_sample_value(
            "exesdb_bus_rejected_total", {"reason": reason}
        )
        return value or 0.0


ServerFactory = Callable[..., Awaitable[Server]]
