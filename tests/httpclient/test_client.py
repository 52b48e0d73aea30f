"""http_config into request options: auth headers, files read again when they change, TLS."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from bridge.httpclient import (
    ClientSettings,
    ClientSetupError,
    FileSetting,
    HTTPClientConfig,
    WatchedFile,
)
from bridge.regular_files import MAX_FILE_BYTES, MAX_SECRET_BYTES
from tests.support import DAMAGED_CA_NAMES, FifoReleaser, damaged_ca_files

URL = "https://hooks.example/alerts"


def config(**values: object) -> HTTPClientConfig:
    """An http_config from its keys."""
    return HTTPClientConfig.model_validate(values)


def replace(path: Path, text: str) -> None:
    """Write ``path`` as deployments do: a new file renamed over the old one."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text)
    os.replace(temporary, path)


def test_a_watched_file_is_read_again_only_when_it_changed(tmp_path: Path) -> None:
    """The content is trimmed; a rename over it is seen at the next read."""
    path = tmp_path / "token"
    path.write_text("first\n")
    watched = WatchedFile(path)
    assert watched.read() == "first"
    replace(path, "second\n")
    assert watched.read() == "second"


def test_an_unreadable_file_names_its_key_and_path_not_its_content(tmp_path: Path) -> None:
    """A missing file fails the request with ClientSetupError naming the key and the path."""
    setting = FileSetting("authorization.credentials_file", None, str(tmp_path / "missing"))
    with pytest.raises(ClientSetupError, match=r"cannot read authorization.credentials_file .*"):
        setting.get()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_a_device_is_refused_without_being_read(tmp_path: Path, kind: str) -> None:
    """A secret file that is a FIFO, or a link to a device, fails the request at once with
    ClientSetupError saying what it is: each delivery reads it on the event loop, where a
    FIFO's open waited for a writer (the whole bridge with it) and /dev/zero never ended
    (/dev/null here: a test without the refusal ends)."""
    path = tmp_path / "secret"
    if kind == "device":
        path.symlink_to("/dev/null")
    setting = FileSetting("secret_file", None, str(path))
    said = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    said = re.escape(f"secret_file {path}: {said}, not a regular file")
    with (
        FifoReleaser(path) if kind == "fifo" else contextlib.nullcontext() as fifo,
        pytest.raises(ClientSetupError, match=said),
    ):
        setting.get()
    assert getattr(fifo, "released", 0) == 0


@pytest.mark.parametrize(
    "key", ["secret_file", "url_file", "authorization.credentials_file", "basic_auth.password_file"]
)
def test_a_file_over_the_secret_limit_is_refused_naming_it_and_read_no_further(
    tmp_path: Path, key: str
) -> None:
    """A secret or URL file holding more than MAX_SECRET_BYTES (a log copied over it by
    mistake) fails the request with ClientSetupError naming the key, the file and the limit,
    read no further: each attempt after a change read it whole on the event loop; one at the
    limit is read, and a rotation back to a small one is taken."""
    path = tmp_path / "secret"
    path.write_bytes(b"k" * MAX_SECRET_BYTES)
    setting = FileSetting(key, None, str(path))
    assert setting.get() == "k" * MAX_SECRET_BYTES
    replace(path, "k" * (MAX_SECRET_BYTES + 1))
    said = f"cannot read {key} {path}: larger than 64 KiB, the most this file may hold"
    with pytest.raises(ClientSetupError, match=re.escape(said)):
        setting.get()
    replace(path, "small\n")
    assert setting.get() == "small"


def test_authorization_from_a_file_is_sent_with_its_type(tmp_path: Path) -> None:
    """authorization: type and credentials_file make the header; a rotated file is taken."""
    token = tmp_path / "token"
    token.write_text("one")
    settings = ClientSettings(
        config(authorization={"type": "Token", "credentials_file": str(token)})
    )
    assert settings.request_options(URL).headers == {"Authorization": "Token one"}
    replace(token, "two")
    assert settings.request_options(URL).headers == {"Authorization": "Token two"}


def test_basic_auth_is_encoded_as_rfc_7617_says(tmp_path: Path) -> None:
    """basic_auth's user and password file become a Basic header (UTF-8)."""
    password = tmp_path / "password"
    password.write_text("pässword\n")
    settings = ClientSettings(
        config(basic_auth={"username": "alerts", "password_file": str(password)})
    )
    value = settings.request_options(URL).headers["Authorization"]
    assert value.startswith("Basic ")
    assert base64.b64decode(value.removeprefix("Basic ")).decode() == "alerts:pässword"


def test_a_proxy_url_with_credentials_sends_them_to_the_proxy_only() -> None:
    """The proxy's user and password become Proxy-Authorization: for an HTTPS target on the
    proxy's CONNECT, for a plain one on the request the proxy itself receives; the proxy URL
    given to the client carries none."""
    settings = ClientSettings(config(proxy_url="http://p-user:p-pass@proxy:3128"))
    options = settings.request_options(URL)
    assert options.proxy == "http://proxy:3128"
    assert options.proxy_headers["Proxy-Authorization"].startswith("Basic ")
    assert "Authorization" not in options.headers
    plain = settings.request_options("http://hooks.example/alerts")
    assert plain.proxy_headers == {}
    assert plain.headers["Proxy-Authorization"] == options.proxy_headers["Proxy-Authorization"]


@pytest.mark.parametrize(
    ("proxy_url", "bare", "user", "password"),
    [
        ("http://u:pw@[::1]:3128", "http://[::1]:3128", "u", "pw"),
        ("http://u:pw@[2001:db8::1]", "http://[2001:db8::1]", "u", "pw"),
        ("http://p%40user:p%3Ass%2Fw%25rd@proxy:3128", "http://proxy:3128", "p@user", "p:ss/w%rd"),
        ("https://only-user@proxy.example", "https://proxy.example", "only-user", ""),
    ],
)
def test_a_proxy_url_keeps_its_ipv6_brackets_and_its_credentials_are_percent_decoded(
    proxy_url: str, bare: str, user: str, password: str
) -> None:
    """The proxy's address is used as written (an IPv6 one in brackets) and its user and
    password are decoded as URLs carry them before they become Proxy-Authorization."""
    options = ClientSettings(config(proxy_url=proxy_url)).request_options(URL)
    assert options.proxy == bare
    header = options.proxy_headers["Proxy-Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == f"{user}:{password}"


def test_without_tls_config_the_default_verification_applies() -> None:
    """No tls_config: the client's own default (verify against the system's CAs)."""
    assert ClientSettings(config()).request_options(URL).ssl is True


def test_the_ssl_context_trusts_the_ca_file_and_is_rebuilt_when_it_changes(
    tmp_path: Path,
) -> None:
    """ca_file is loaded into a verifying context; the same context serves until the file
    changes, then a new one trusting the new CA is built."""
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    settings = ClientSettings(
        config(tls_config={"ca_file": str(ca_file), "server_name": "hooks.test"})
    )
    first = settings.request_options(URL)
    assert isinstance(first.ssl, ssl.SSLContext)
    assert first.ssl.verify_mode is ssl.CERT_REQUIRED
    assert first.server_hostname == "hooks.test"
    assert settings.request_options(URL).ssl is first.ssl
    new_ca = trustme.CA()
    replace(ca_file, new_ca.cert_pem.bytes().decode())
    second = settings.request_options(URL).ssl
    assert isinstance(second, ssl.SSLContext)
    assert second is not first.ssl
    assert len(second.get_ca_certs()) == 1


@asynccontextmanager
async def tls10_server(ca: trustme.CA) -> AsyncIterator[str]:
    """The URL of a real HTTPS server on 127.0.0.1 that speaks TLS 1.0 only (at OpenSSL's
    security level 0, as such a server must under OpenSSL 3)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0, on purpose
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text="old")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def _get(settings: ClientSettings, url: str) -> str:
    options = settings.request_options(url)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(url, headers=options.headers, **options.connection()) as response,
    ):
        return await response.text()


async def test_min_version_tls10_reaches_a_server_speaking_only_tls10(tmp_path: Path) -> None:
    """tls_config.min_version TLS10 really negotiates TLS 1.0 under OpenSSL 3; without it the
    client (TLS 1.2 at least, as Go's) cannot reach that server."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with tls10_server(ca) as url:
        old = ClientSettings(config(tls_config={"ca_file": str(ca_file), "min_version": "TLS10"}))
        assert await _get(old, url) == "old"
        default = ClientSettings(config(tls_config={"ca_file": str(ca_file)}))
        with pytest.raises(aiohttp.ClientError):
            await _get(default, url)


def test_a_bad_ca_file_fails_the_request_naming_the_key(tmp_path: Path) -> None:
    """A CA file that is not PEM raises ClientSetupError naming tls_config.ca_file."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not a certificate")
    settings = ClientSettings(config(tls_config={"ca_file": str(ca_file)}))
    with pytest.raises(ClientSetupError, match=r"tls_config\.ca_file"):
        settings.request_options(URL)


def test_a_ca_file_over_its_limit_fails_the_request_unloaded_and_its_return_is_taken(
    tmp_path: Path,
) -> None:
    """A tls_config.ca_file grown over MAX_FILE_BYTES (the CA, then a log copied after it by
    mistake, which OpenSSL would load whole on the event loop) raises ClientSetupError naming
    the key, the file and the limit; the CA put back is trusted at the next request."""
    ca_file = tmp_path / "ca.pem"
    ca = trustme.CA().cert_pem.bytes().decode()
    replace(ca_file, ca + "#" * MAX_FILE_BYTES + "\n")
    settings = ClientSettings(config(tls_config={"ca_file": str(ca_file)}))
    said = f"cannot read tls_config.ca_file {ca_file}: larger than 1024 KiB, the most this file"
    with pytest.raises(ClientSetupError, match=re.escape(said)):
        settings.request_options(URL)
    replace(ca_file, ca)
    trusted = settings.request_options(URL).ssl
    assert isinstance(trusted, ssl.SSLContext)
    assert len(trusted.get_ca_certs()) == 1


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_ca_file_that_is_a_fifo_or_a_device_fails_the_request_unread(
    tmp_path: Path, kind: str
) -> None:
    """A tls_config.ca_file that is a FIFO, or a link to a device, raises ClientSetupError
    naming the key and saying what it is, unopened: OpenSSL's open of a FIFO waited for a
    writer on the event loop, and it reads a device such as /dev/zero without end."""
    ca_file = tmp_path / "ca.pem"
    if kind == "device":
        ca_file.symlink_to("/dev/null")
    settings = ClientSettings(config(tls_config={"ca_file": str(ca_file)}))
    said = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    said = re.escape(f"tls_config.ca_file {ca_file}: {said}, not a regular file")
    with (
        FifoReleaser(ca_file) if kind == "fifo" else contextlib.nullcontext() as fifo,
        pytest.raises(ClientSetupError, match=said),
    ):
        settings.request_options(URL)
    assert getattr(fifo, "released", 0) == 0


def test_a_client_certificate_file_that_is_none_fails_the_request_naming_it(
    tmp_path: Path,
) -> None:
    """A tls_config.cert_file that holds no certificate raises ClientSetupError naming that file
    and what is wrong with it, not OpenSSL's bare "PEM lib"."""
    leaf = trustme.CA().issue_cert("bridge.test")
    cert_file, key_file = tmp_path / "bridge.pem", tmp_path / "bridge.key"
    cert_file.write_text("not a certificate\n")
    leaf.private_key_pem.write_to_path(str(key_file))
    settings = ClientSettings(
        config(tls_config={"cert_file": str(cert_file), "key_file": str(key_file)})
    )
    with pytest.raises(ClientSetupError) as caught:
        settings.request_options(URL)
    assert str(caught.value) == (
        f"cannot load tls_config.cert_file {cert_file} with key_file {key_file}: {cert_file} holds"
        " no PEM certificate (-----BEGIN CERTIFICATE-----) OpenSSL loads"
    )


@pytest.mark.parametrize("damaged", DAMAGED_CA_NAMES)
def test_a_ca_file_holding_a_damaged_certificate_is_told_as_damaged(
    damaged: str, tmp_path: Path
) -> None:
    """A tls_config.ca_file whose certificate OpenSSL cannot read fails the request naming the
    file, its line and its damage, as check-config warns of it, not OpenSSL's "PEM lib"."""
    ca_file, said = damaged_ca_files(tmp_path)[damaged]
    settings = ClientSettings(config(tls_config={"ca_file": ca_file}))
    with pytest.raises(ClientSetupError) as caught:
        settings.request_options(URL)
    assert str(caught.value) == f"cannot load tls_config.ca_file {ca_file}: {said}"


@pytest.mark.parametrize(
    ("url", "proxy_url", "built"),
    [
        ("http://hooks.example/alerts", None, False),
        ("http://hooks.example/alerts", "http://proxy.example:3128", False),
        ("http://hooks.example/alerts", "https://proxy.example:3128", True),
        (URL, None, True),
    ],
)
def test_a_tls_config_is_built_only_for_a_request_that_makes_a_handshake(
    tmp_path: Path, url: str, proxy_url: str | None, built: bool
) -> None:
    """A plain-http request through no https:// proxy never reads its tls_config, so a CA file
    missing there does not fail it (check-config says such a tls_config has no effect); an
    https:// URL, or an https:// proxy, still needs it."""
    missing = tmp_path / "missing-ca.pem"
    settings = ClientSettings(config(tls_config={"ca_file": str(missing)}, proxy_url=proxy_url))
    if built:
        with pytest.raises(ClientSetupError, match=r"cannot read tls_config\.ca_file"):
            settings.request_options(url)
    else:
        assert settings.request_options(url).ssl is True


def test_an_inline_ca_is_the_only_ca_trusted() -> None:
    """tls_config.ca holds the PEM itself, as prometheus/common takes it: that CA alone is
    trusted; a ca that is no PEM certificate is refused when the file is read."""
    ca = trustme.CA()
    settings = ClientSettings(config(tls_config={"ca": ca.cert_pem.bytes().decode()}))
    context = settings.request_options(URL).ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1
    assert "ca <inline>" in settings.config.summary()
    with pytest.raises(ValueError, match=r"tls_config\.ca\n.*must be PEM CA certificates"):
        config(tls_config={"ca": "not a certificate"})
    with pytest.raises(ValueError, match="at most one of ca and ca_file"):
        config(tls_config={"ca": ca.cert_pem.bytes().decode(), "ca_file": "ca.pem"})


def test_http_headers_are_sent_from_values_secrets_and_files_read_again_when_changed(
    tmp_path: Path,
) -> None:
    """http_headers adds each header with its values (inline, secret, file) as one
    comma-separated line; a changed file is read again at the next request."""
    key_file = tmp_path / "api-key"
    key_file.write_text("key-1\n")
    settings = ClientSettings(
        config(
            http_headers={
                "X-Api-Key": {"files": [str(key_file)]},
                "X-Team": {"values": ["ops"], "secrets": ["tenant-7"]},
            }
        )
    )
    assert settings.request_options(URL).headers == {
        "X-Api-Key": "key-1",
        "X-Team": "ops, tenant-7",
    }
    replace(key_file, "key-2\n")
    assert settings.request_options(URL).headers["X-Api-Key"] == "key-2"
    assert "tenant-7" not in settings.config.summary()


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("authorization", "setting header 'Authorization' is not allowed"),
        ("content-type", "setting header 'Content-Type' is not allowed"),
        ("X-ExESDB-Signature", "setting header 'X-Exesdb-Signature' is not allowed"),
        ("X Api", "'X Api' is not a header name"),
    ],
)
def test_reserved_and_malformed_header_names_are_refused(name: str, refused: str) -> None:
    """prometheus/common's reserved headers (by canonical name), the bridge's own X-ExESDB-*
    and names that are no HTTP token are refused naming them."""
    with pytest.raises(ValueError, match=refused):
        config(http_headers={name: {"values": ["x"]}})


def test_an_inline_client_certificate_is_presented_and_its_key_never_shown() -> None:
    """tls_config.cert and key inline load into the context (no file written); check-config's
    summary says the key is set, never what it is."""
    leaf = trustme.CA().issue_cert("bridge@example.test")
    key = leaf.private_key_pem.bytes().decode()
    settings = ClientSettings(
        config(tls_config={"cert": leaf.cert_chain_pems[0].bytes().decode(), "key": key})
    )
    assert isinstance(settings.request_options(URL).ssl, ssl.SSLContext)
    summary = settings.config.summary()
    assert "cert <inline>" in summary
    assert "key <set, redacted>" in summary
    assert "PRIVATE KEY" not in summary
    bad = ClientSettings(config(tls_config={"cert": "not a cert", "key": "not a key"}))
    with pytest.raises(ClientSetupError, match=r"tls_config\.cert \(inline\) with key \(inline\)"):
        bad.request_options(URL)


def test_insecure_skip_verify_verifies_nothing() -> None:
    """insecure_skip_verify: no certificate or host name check, as Alertmanager does."""
    context = ClientSettings(config(tls_config={"insecure_skip_verify": True})).request_options(URL)
    assert isinstance(context.ssl, ssl.SSLContext)
    assert (context.ssl.verify_mode, context.ssl.check_hostname) == (ssl.CERT_NONE, False)


def test_the_summary_shows_insecure_skip_verify_as_the_file_writes_it() -> None:
    """check-config's summary says insecure_skip_verify true, as YAML writes it, not True."""
    summary = config(tls_config={"insecure_skip_verify": True}).summary()
    assert summary == "tls_config insecure_skip_verify true"


def test_credentials_with_a_line_break_inside_fail_naming_the_header_not_the_secret(
    tmp_path: Path,
) -> None:
    """A credentials_file with a line break in the middle (files are trimmed at the ends only)
    cannot go in a header: ClientSetupError naming the header, the secret never shown."""
    token = tmp_path / "token"
    token.write_text("s3cr3t-one\ns3cr3t-two\n")
    settings = ClientSettings(config(authorization={"credentials_file": str(token)}))
    with pytest.raises(ClientSetupError, match="Authorization header") as raised:
        settings.request_options(URL)
    assert "s3cr3t" not in str(raised.value)
    replace(token, "s3cr3t-one\n")
    assert settings.request_options(URL).headers == {"Authorization": "Bearer s3cr3t-one"}
