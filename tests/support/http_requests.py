"""HTTP requests a test makes: a GET answered whatever its status, and a POST to the bridge's
signed ingest signed with the test secret.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from tests.support.values import TEST_SECRET


def http_get(
    url: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """GET ``url`` (``context`` for https); returns (status, body) for any status."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def signed_post(
    bridge_url: str,
    body: bytes,
    *,
    content_type: str = "application/x-ndjson",
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """POST ``body`` to the bridge's signed ingest, signed with ``TEST_SECRET`` now: the
    answer's status and body, whatever the status."""
    from bridge.bus import SIGNATURE_HEADER, Keyring

    request = urllib.request.Request(
        f"{bridge_url}/v1/messages",
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type,
            SIGNATURE_HEADER: Keyring.from_secrets(TEST_SECRET).sign_header(body, int(time.time())),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_signed(
    bridge_url: str, body: bytes, timeout: float = 10.0, *, expect: int = 202
) -> tuple[int, str]:
    """POST an NDJSON ``body`` to the bridge's signed ingest, signed with ``TEST_SECRET`` now;
    fails unless the answer's status is ``expect`` (202: accepted). Returns the status and the
    refusal's error code ("" when accepted)."""
    status, said = signed_post(bridge_url, body, timeout=timeout)
    if status < 400:
        answer = status, ""
    else:
        try:
            answer = status, str(json.loads(said)["error"])
        except (ValueError, KeyError, TypeError):  # not the bridge's error_response: show it
            answer = status, said.decode(errors="replace")
    assert answer[0] == expect, f"POST {bridge_url}/v1/messages answered {answer}, not {expect}"
    return answer
