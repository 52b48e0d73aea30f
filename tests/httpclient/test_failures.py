"""How a failed request is told: its kind and a text that shows no credential."""

from __future__ import annotations

import errno

import aiohttp
import pytest

from bridge.httpclient import ClientSetupError, request_failure


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (TimeoutError(), "TimeoutError", "timed out after 2.5s"),
        (
            ClientSetupError("cannot read url_file /run/hook: No such file"),
            "ClientSetupError",
            "cannot read url_file /run/hook: No such file",
        ),
        (
            aiohttp.InvalidURL("https://bridge:hunter2@hooks.example/t/0k3n"),
            "InvalidURL",
            "InvalidURL: https://bridge:<redacted>@hooks.example/…",
        ),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            "ConnectionRefusedError",
            "ConnectionRefusedError: Connection refused",
        ),
        (
            ValueError("Forbidden control character detected in headers."),
            "ValueError",
            "ValueError: the HTTP client refused the request: Forbidden control character "
            "detected in headers.",
        ),
    ],
)
def test_each_failure_is_told_by_kind_without_credentials(
    error: BaseException, kind: str, text: str
) -> None:
    """Timeouts name the timeout, setup errors say what they say, URLs in a text are shown as
    safe_url shows them."""
    failure = request_failure(error, 2.5)
    assert (failure.kind, failure.text) == (kind, text)
