"""How a failed request is told: its kind and a text that shows no credential."""

from __future__ import annotations

import errno
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey

from bridge.httpclient import REQUEST_ERRORS, ClientSetupError, RequestFailure, request_failure
from tests.support import free_port


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


async def _failure_of(url: str, context: ssl.SSLContext) -> RequestFailure:
    """How a real POST to ``url`` with ``context`` fails, as a delivery attempt tells it."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(url, data=b"{}", ssl=context):
                pass
        except REQUEST_ERRORS as exc:
            return request_failure(exc, 2.5)
    raise AssertionError(f"{url} answered")


async def test_a_connection_failure_names_host_port_and_reason_not_the_ssl_context() -> None:
    """A refused connection made with a receiver's SSL context is told as 'cannot connect to
    host:port: Connection refused', the system's reason and not asyncio's 'Connect call failed'
    with the address again, without aiohttp's repr of the context (``<ssl.SSLContext object at
    0x…>``), which varies from process to process."""
    port = free_port()
    failure = await _failure_of(f"https://127.0.0.1:{port}/hook", ssl.create_default_context())
    assert failure.kind == "ClientConnectorError"
    assert (
        failure.text
        == f"ClientConnectorError: cannot connect to 127.0.0.1:{port}: Connection refused"
    )
    assert "SSLContext" not in failure.text
    assert " at 0x" not in failure.text


async def test_an_https_url_to_a_plain_http_server_says_to_try_http() -> None:
    """An https:// URL to a server without TLS (Alertmanager on 9093 as it ships): OpenSSL's
    'wrong version number' is told with what it means and the URL meant, http://."""
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        failure = await _failure_of(f"https://127.0.0.1:{port}/hook", ssl.create_default_context())
    finally:
        await runner.cleanup()
    assert failure.kind == "ClientConnectorSSLError"
    assert failure.text.startswith(
        f"ClientConnectorSSLError: cannot connect to 127.0.0.1:{port}: [SSL: WRONG_VERSION_NUMBER]"
    )
    assert failure.text.endswith(
        " (the server answered without TLS, as plain http does: is the URL http://?)"
    )


def test_an_https_url_to_a_plain_http_server_says_to_try_http_over_openssl_3_2() -> None:
    """OpenSSL 3.2 and later (Debian 13's) tell a plain-http answer to a TLS handshake as a
    "record layer failure", with no reason under it: told with the URL meant, http://, too
    (this machine's OpenSSL, 3.0, says 'wrong version number', so the error is made here)."""
    key = ConnectionKey("127.0.0.1", 9093, True, True, None, None, None, None)
    said = ssl.SSLError(1, "[SSL] record layer failure (_ssl.c:1000)")
    failure = request_failure(aiohttp.ClientConnectorSSLError(key, said), 5.0)
    assert failure.text == (
        "ClientConnectorSSLError: cannot connect to 127.0.0.1:9093: [SSL] record layer failure"
        " (_ssl.c:1000) (the server answered without TLS, as plain http does: is the URL"
        " http://?)"
    )


async def test_a_proxy_that_refuses_is_named_as_the_proxy() -> None:
    """A receiver behind a proxy_url that refuses: the proxy's host and port are told as the
    proxy's (aiohttp's error carries the proxy's), not as the receiver's."""
    proxy = free_port()
    async with aiohttp.ClientSession() as session:
        try:
            await session.post(
                "http://receiver.example:8443/hook", proxy=f"http://127.0.0.1:{proxy}"
            )
        except REQUEST_ERRORS as exc:
            failure = request_failure(exc, 5.0)
    assert failure.kind == "ClientProxyConnectionError"
    assert failure.text.startswith(
        f"ClientProxyConnectionError: cannot connect to the proxy 127.0.0.1:{proxy}: "
    )


async def test_an_untrusted_certificate_is_told_by_openssl_s_reason_not_a_tuple(
    untrusted_tls_port: int,
) -> None:
    """A receiver whose certificate no trusted CA signed: OpenSSL's reason as it reads, not the
    error's args tuple (``[SSLCertVerificationError: (1, '[SSL: …')]``)."""
    failure = await _failure_of(
        f"https://127.0.0.1:{untrusted_tls_port}/hook", ssl.create_default_context()
    )
    assert failure.kind == "ClientConnectorCertificateError"
    assert failure.text.startswith(
        f"ClientConnectorCertificateError: cannot connect to 127.0.0.1:{untrusted_tls_port}: "
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    assert "(1, '" not in failure.text
    # And what mends it, since a receiver's private CA is the usual cause.
    assert failure.text.endswith(
        " (no CA trusted here signed its certificate: a receiver's or Alertmanager's own CA goes"
        " in the tls_config ca_file of its http_config, in the receivers file"
        " EXESDB_WEBHOOK_CONFIG_FILE)"
    )


async def test_a_certificate_for_another_host_is_not_told_to_name_a_ca(
    tls_port_for_another_name: tuple[int, Path],
) -> None:
    """A certificate its CA (trusted) issued for another name is no matter of CAs: the failure
    says OpenSSL's mismatch without the hint to give the receiver's CA."""
    port, ca_file = tls_port_for_another_name
    failure = await _failure_of(
        f"https://127.0.0.1:{port}/hook", ssl.create_default_context(cafile=str(ca_file))
    )
    assert failure.kind == "ClientConnectorCertificateError"
    assert "IP address mismatch" in failure.text
    assert "no CA trusted here" not in failure.text
