"""A bridge serving under a web config file: HTTPS, client certificates, basic auth, reloads.

Each test starts a real bridge (no components) on a free loopback port and talks to it with
aiohttp over real TLS; every request opens a new connection, so a handshake sees the newest file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from bridge.app import Bridge
from bridge.bus import SIGNATURE_HEADER, Keyring
from bridge.cli.healthcheck import probe, target
from bridge.errors import ConfigError
from bridge.headers import ADMIN_TOKEN_HEADER
from tests.support import (
    ADMIN_TOKEN,
    TEST_SECRET,
    async_wait_until,
    make_settings,
    require_binary,
    run_bridge,
)
from tests.webconfig.files import WebFiles, basic, bcrypt_hash

ALICE = basic("alice", "alice-pw")
USERS = f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw')}\n"
RELOADED = "exesdb_web_config_last_reload_successful"


PROBES = ("/healthz", "/readyz")


@pytest.fixture
def files(tmp_path: Path) -> WebFiles:
    """Certificates and a folder for the web config file."""
    return WebFiles(tmp_path / "web")


@asynccontextmanager
async def serving(files: WebFiles, text: str, **env: str) -> AsyncIterator[Bridge]:
    """A started bridge whose EXESDB_WEB_CONFIG_FILE holds ``text``."""
    path = files.write(text)
    settings = make_settings(
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_WEB_CONFIG_FILE=str(path),
        EXESDB_ADMIN_TOKEN=ADMIN_TOKEN,
        EXESDB_STATE_DIR=str(files.folder / "state"),
        **env,
    )
    bridge = Bridge(settings, components=[])
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.aclose()


async def request(
    bridge: Bridge,
    path: str = "/healthz",
    *,
    context: ssl.SSLContext | None = None,
    scheme: str = "https",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    within: float = 10,
) -> tuple[int, Any, str]:
    """(status, headers, body) over a new connection, within ``within`` seconds in all."""
    assert bridge.address is not None
    host, port = bridge.address
    connector = aiohttp.TCPConnector(force_close=True, ssl=context if context else False)
    limit = aiohttp.ClientTimeout(total=within)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=limit) as s,
        s.request(method, f"{scheme}://{host}:{port}{path}", headers=headers, data=body) as r,
    ):
        return r.status, r.headers, await r.text()


async def served(bridge: Bridge, context: ssl.SSLContext, headers: dict[str, str]) -> bool:
    """True when /healthz answers 200; False when it refuses the request or the connection."""
    try:
        status, _, _ = await request(bridge, context=context, headers=headers)
    except aiohttp.ClientError:
        return False
    return status == 200


async def refused_connection(bridge: Bridge, context: ssl.SSLContext) -> bool:
    """True when the TLS connection itself is refused (no HTTP answer at all)."""
    try:
        await request(bridge, context=context, headers={"Authorization": ALICE})
    except aiohttp.ClientError:
        return True
    return False


def reloaded(bridge: Bridge) -> float | None:
    """The value of the reload gauge, read from the bridge's registry."""
    return bridge.registry.get_sample_value(RELOADED)


async def reloaded_after_a_request(bridge: Bridge, files: WebFiles, value: float) -> bool:
    """True when the reload gauge reads ``value`` after a request (when the file is looked at)."""
    await served(bridge, files.client_context(), {"Authorization": ALICE})
    return reloaded(bridge) == value


# -- basic auth --


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/readyz", "/metrics", "/", "/alerts/a1", "/static/pages.js", "/no/such/path"],
)
async def test_without_credentials_every_path_answers_401(files: WebFiles, path: str):
    """Every path, /healthz included, answers 401 with a Basic challenge without credentials."""
    async with serving(files, files.tls_config() + USERS) as bridge:
        status, headers, body = await request(bridge, path, context=files.client_context())
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert json.loads(body)["error"] == "unauthorized"


@pytest.mark.parametrize(
    "authorization",
    [basic("alice", "wrong"), basic("bob", "alice-pw"), f"Bearer {ADMIN_TOKEN}"],
)
async def test_wrong_credentials_answer_401(files: WebFiles, authorization: str):
    """A wrong password, an unknown user or another scheme answers 401."""
    async with serving(files, files.tls_config() + USERS) as bridge:
        status, headers, _ = await request(
            bridge,
            "/metrics",
            context=files.client_context(),
            headers={"Authorization": authorization},
        )
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")


async def test_the_right_credentials_are_served_over_https(files: WebFiles):
    """With alice's password /metrics is served over TLS, build info included."""
    async with serving(files, files.tls_config() + USERS) as bridge:
        status, _, body = await request(
            bridge, "/metrics", context=files.client_context(), headers={"Authorization": ALICE}
        )
    assert status == 200
    assert "exesdb_build_info{" in body


async def test_basic_auth_works_without_tls(files: WebFiles):
    """A file with users and no TLS section guards plain HTTP."""
    async with serving(files, USERS) as bridge:
        status, _, _ = await request(bridge, scheme="http")
        assert status == 401
        status, _, _ = await request(bridge, scheme="http", headers={"Authorization": ALICE})
        assert status == 200


async def test_configured_headers_are_on_every_answer(files: WebFiles):
    """The file's headers are on a 200 and on a 401 alike."""
    text = (
        files.tls_config()
        + "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        + "    Strict-Transport-Security: max-age=60\n"
        + USERS
    )
    async with serving(files, text) as bridge:
        context = files.client_context()
        for headers in ({}, {"Authorization": ALICE}):
            _, answer, _ = await request(bridge, context=context, headers=headers)
            assert answer["X-Frame-Options"] == "deny"
            assert answer["Strict-Transport-Security"] == "max-age=60"


async def test_configured_headers_are_sent_and_no_answer_says_server(files: WebFiles):
    """The file's headers go on a 200, a 401 and a 404 alike, and none of them says Server
    (aiohttp's names its version; the file cannot set one)."""
    text = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n" + USERS
    async with serving(files, text) as bridge:
        for path, headers, status in (
            ("/healthz", {"Authorization": ALICE}, 200),
            ("/healthz", {}, 401),
            ("/no/such/path", {"Authorization": ALICE}, 404),
        ):
            got, answer, _ = await request(bridge, path, scheme="http", headers=headers)
            assert got == status
            assert answer["X-Frame-Options"] == "deny"
            assert "Server" not in answer


async def test_admin_routes_need_the_admin_token_on_top(files: WebFiles):
    """Basic auth alone does not open an admin route; the token in its header does."""
    async with serving(files, files.tls_config() + USERS) as bridge:
        context = files.client_context()
        status, _, body = await request(
            bridge, "/v1/integration", context=context, headers={"Authorization": ALICE}
        )
        assert (status, json.loads(body)["error"]) == (401, "unauthorized")
        assert ADMIN_TOKEN_HEADER in json.loads(body)["detail"]
        status, _, body = await request(
            bridge,
            "/v1/integration",
            context=context,
            headers={"Authorization": ALICE, ADMIN_TOKEN_HEADER: ADMIN_TOKEN},
        )
        assert status == 200
        assert json.loads(body)["enabled"] is True


async def test_signed_ingest_keeps_its_signature_check(files: WebFiles):
    """Past basic auth, ingest still refuses an unsigned body and takes a signed one."""
    from tests.http.helpers import envelope

    body = json.dumps(envelope()).encode()
    headers = {"Authorization": ALICE, "Content-Type": "application/json"}
    async with serving(files, files.tls_config() + USERS, EXESDB_INGEST="true") as bridge:
        context = files.client_context()
        status, _, answer = await request(
            bridge, "/v1/messages", context=context, method="POST", headers=headers, body=body
        )
        assert (status, json.loads(answer)["error"]) == (401, "unsigned")
        signature = Keyring.from_secrets(TEST_SECRET).sign_header(body, int(time.time()))
        status, _, _ = await request(
            bridge,
            "/v1/messages",
            context=context,
            method="POST",
            headers={**headers, SIGNATURE_HEADER: signature},
            body=body,
        )
        assert status == 202


async def test_requests_over_the_rate_limit_answer_429_before_basic_auth(files: WebFiles):
    """rate_limit (burst 2, then one an hour) lets two requests through and answers the next
    429 without looking at its credentials, as the toolkit's limiter does."""
    text = files.tls_config() + USERS + "rate_limit:\n  interval: 1h\n  burst: 2\n"
    async with serving(files, text) as bridge:
        context = files.client_context()
        auth = {"Authorization": ALICE}
        first, _, _ = await request(bridge, "/metrics", context=context, headers=auth)
        second, _, _ = await request(bridge, "/metrics", context=context)
        third, _, body = await request(bridge, "/metrics", context=context, headers=auth)
    assert (first, second, third) == (200, 401, 429)
    assert json.loads(body)["error"] == "rate_limited"


async def test_the_probes_are_neither_limited_nor_counted_by_the_rate_limit(files: WebFiles):
    """Past rate_limit other requests are answered 429, but GET /healthz and /readyz are not
    limited nor counted: a flood from anyone, before any credentials, cannot fail exesdb-bridge
    healthcheck (a pod restarted for it) or its --ready."""
    async with serving(files, "rate_limit:\n  interval: 1h\n  burst: 2\n") as bridge:
        assert bridge.address is not None
        host, port = bridge.address
        env = {
            "EXESDB_HTTP_ADDR": f"{host}:{port}",
            "EXESDB_WEB_CONFIG_FILE": str(files.folder / "web.yml"),
        }
        first, _, _ = await request(bridge, "/metrics", scheme="http")
        probes = [(await request(bridge, path, scheme="http"))[0] for path in PROBES * 3]
        live = await asyncio.to_thread(run_bridge, "healthcheck", env=env)
        ready = await asyncio.to_thread(run_bridge, "healthcheck", "--ready", env=env)
        flood = [(await request(bridge, "/metrics", scheme="http"))[0] for _ in range(3)]
        probes += [(await request(bridge, path, scheme="http"))[0] for path in PROBES]
    assert (first, flood) == (200, [200, 429, 429])
    assert probes == [200] * 8
    assert (live.returncode, ready.returncode) == (0, 0), live.stdout + ready.stdout


# -- TLS --


async def test_plain_http_to_the_tls_port_is_answered_400_as_go_answers_it(files: WebFiles):
    """A plain HTTP request to the TLS port is answered 400 with Go's words, Connection: close,
    as exporter-toolkit's exporters answer it; https is served on the same port."""
    async with serving(files, files.tls_config()) as bridge:
        status, headers, body = await request(bridge, "/metrics", scheme="http")
        assert (status, body) == (400, "Client sent an HTTP request to an HTTPS server.\n")
        assert headers["Connection"] == "close"
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        status, _, _ = await request(bridge, context=files.client_context())
        assert status == 200


async def test_require_and_verify_client_cert(files: WebFiles):
    """Without a certificate, or with one from another CA, the connection is refused."""
    text = files.tls_config(
        "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
    )
    async with serving(files, text) as bridge:
        assert await refused_connection(bridge, files.client_context())
        stranger = files.client_cert(trustme.CA())
        assert await refused_connection(bridge, files.client_context(stranger))
        status, _, _ = await request(bridge, context=files.client_context(files.client_cert()))
        assert status == 200


# Each client_auth_type: who is served with no certificate, with one from a CA the bridge does
# not trust, and with one from its client CA (docs/security.md says where Python differs from Go).
CLIENT_AUTH_OUTCOMES = {
    "NoClientCert": (True, True, True),
    "RequestClientCert": (True, True, True),
    "RequireAnyClientCert": (False, False, True),
    "VerifyClientCertIfGiven": (True, False, True),
    "RequireAndVerifyClientCert": (False, False, True),
}


@pytest.mark.parametrize("auth_type", list(CLIENT_AUTH_OUTCOMES))
async def test_each_client_auth_type_admits_the_clients_it_names(files: WebFiles, auth_type: str):
    """Each of the five client_auth_type values serves or refuses a client without a
    certificate, one with a stranger's and one with the client CA's as docs/security.md says."""
    extra = f"client_auth_type: {auth_type}"
    if auth_type not in ("NoClientCert", "RequestClientCert"):
        extra += "\nclient_ca_file: client-ca.pem"
    clients = (
        files.client_context(),
        files.client_context(files.client_cert(trustme.CA())),
        files.client_context(files.client_cert()),
    )
    async with serving(files, files.tls_config(extra)) as bridge:
        outcomes = tuple([await served(bridge, context, {}) for context in clients])
    assert outcomes == CLIENT_AUTH_OUTCOMES[auth_type]


@pytest.mark.parametrize("auth_type", ["VerifyClientCertIfGiven", "RequireAndVerifyClientCert"])
async def test_without_a_client_ca_certificates_are_verified_against_the_systems_cas(
    files: WebFiles, auth_type: str, monkeypatch: pytest.MonkeyPatch
):
    """Without client_ca_file or client_ca, the two values that verify check a client's
    certificate against the system's CAs, as the toolkit (Go) does: here SSL_CERT_FILE, which
    OpenSSL reads for them, holds the client CA, so its certificate is served, a stranger's
    refused, and no certificate treated as the value says."""
    monkeypatch.setenv("SSL_CERT_FILE", str(files.client_ca_file))
    clients = (
        files.client_context(),
        files.client_context(files.client_cert(trustme.CA())),
        files.client_context(files.client_cert()),
    )
    async with serving(files, files.tls_config(f"client_auth_type: {auth_type}")) as bridge:
        outcomes = tuple([await served(bridge, context, {}) for context in clients])
    assert outcomes == CLIENT_AUTH_OUTCOMES[auth_type]


def _indented(pem: str) -> str:
    """``pem`` as the lines of a YAML block scalar under a tls_server_config key."""
    return "".join(f"    {line}\n" for line in pem.splitlines())


async def test_a_certificate_and_key_given_inline_are_served(files: WebFiles):
    """cert and key hold the PEM in the file itself, as the toolkit takes them: HTTPS is served
    with that certificate."""
    cert = (files.folder / "server.pem").read_text()
    key = (files.folder / "server.key").read_text()
    text = f"tls_server_config:\n  cert: |\n{_indented(cert)}  key: |\n{_indented(key)}"
    async with serving(files, text) as bridge:
        status, _, _ = await request(bridge, context=files.client_context())
    assert status == 200


async def test_the_health_check_trusts_a_certificate_given_inline(files: WebFiles):
    """exesdb-bridge healthcheck pins the certificate the web config gives inline, as it pins
    cert_file's, and finds the bridge healthy over HTTPS."""
    cert = (files.folder / "server.pem").read_text()
    key = (files.folder / "server.key").read_text()
    text = f"tls_server_config:\n  cert: |\n{_indented(cert)}  key: |\n{_indented(key)}"
    async with serving(files, text) as bridge:
        assert bridge.address is not None
        host, port = bridge.address
        found = target(
            make_settings(
                EXESDB_HTTP_ADDR=f"{host}:{port}",
                EXESDB_WEB_CONFIG_FILE=str(files.folder / "web.yml"),
            )
        )
        verdict = await asyncio.to_thread(probe, found.url, ssl_context=found.ssl_context)
    assert verdict.healthy, verdict.line


async def test_a_client_ca_given_inline_verifies_client_certificates(files: WebFiles):
    """client_ca holds the CA's PEM in the file itself, as the toolkit takes it: a client
    without a certificate is refused, one with a certificate from that CA is served."""
    pem = files.client_ca.cert_pem.bytes().decode()
    text = files.tls_config("client_auth_type: RequireAndVerifyClientCert\nclient_ca: |") + "".join(
        f"    {line}\n" for line in pem.splitlines()
    )
    async with serving(files, text) as bridge:
        assert await refused_connection(bridge, files.client_context())
        status, _, _ = await request(bridge, context=files.client_context(files.client_cert()))
        assert status == 200


async def test_client_allowed_sans_refuses_certificates_without_an_allowed_name(files: WebFiles):
    """With client_allowed_sans, a verified certificate is served only when one of its SANs is
    listed, compared as Go writes them (an IPv6 address in its short form); others get 403."""
    text = files.tls_config(
        "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem\n"
        "client_allowed_sans: [prometheus@example.test, '2001:db8::7']"
    )
    by_email = files.client_cert(name="prometheus")
    by_address = files.client_ca.issue_cert("2001:db8:0:0:0:0:0:7")
    async with serving(files, text) as bridge:
        for allowed in (by_email, by_address):
            status, _, _ = await request(bridge, context=files.client_context(allowed))
            assert status == 200
        status, _, body = await request(
            bridge, context=files.client_context(files.client_cert(name="stranger"))
        )
        assert status == 403
        assert json.loads(body)["error"] == "forbidden"


async def test_verify_client_cert_if_given(files: WebFiles):
    """No certificate is fine; a certificate from another CA is refused."""
    text = files.tls_config(
        "client_auth_type: VerifyClientCertIfGiven\nclient_ca_file: client-ca.pem"
    )
    async with serving(files, text) as bridge:
        status, _, _ = await request(bridge, context=files.client_context())
        assert status == 200
        assert await refused_connection(
            bridge, files.client_context(files.client_cert(trustme.CA()))
        )
        status, _, _ = await request(bridge, context=files.client_context(files.client_cert()))
        assert status == 200


async def test_tls_versions_are_enforced(files: WebFiles):
    """With min_version TLS13 a TLS 1.2 client is refused and a TLS 1.3 one served."""
    async with serving(files, files.tls_config("min_version: TLS13")) as bridge:
        old = files.client_context()
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        assert await refused_connection(bridge, old)
        status, _, _ = await request(bridge, context=files.client_context())
        assert status == 200


def _offering(files: WebFiles, curve: str) -> ssl.SSLContext:
    """A client context that offers the one elliptic curve ``curve`` (OpenSSL's name)."""
    context = files.client_context()
    context.set_ecdh_curve(curve)
    return context


async def test_curve_preferences_of_one_curve_is_the_only_curve_served(files: WebFiles):
    """curve_preferences [CurveP521] refuses a client offering P-256 alone and serves one
    offering P-521, or the usual curves (P-521 among them)."""
    text = files.tls_config("curve_preferences: [CurveP521]")
    async with serving(files, text) as bridge:
        assert await refused_connection(bridge, _offering(files, "prime256v1"))
        assert await served(bridge, _offering(files, "secp521r1"), {})
        assert await served(bridge, files.client_context(), {})


async def test_changing_curve_preferences_needs_a_restart(files: WebFiles):
    """A new file that changes curve_preferences is refused, saying a restart takes it, and the
    curve in force stays: OpenSSL copies the curves into each connection from the listening
    context, which cannot be given its default list back."""
    async with serving(files, files.tls_config("curve_preferences: [CurveP521]")) as bridge:
        live = bridge.web_config
        assert live is not None
        files.write(files.tls_config())
        assert not await live.reload()
        assert reloaded(bridge) == 0
        assert await refused_connection(bridge, _offering(files, "prime256v1"))


async def test_max_version_refuses_a_newer_client(files: WebFiles):
    """With max_version TLS12 a client speaking TLS 1.3 only is refused and a TLS 1.2 one
    served."""
    async with serving(files, files.tls_config("max_version: TLS12")) as bridge:
        newer = files.client_context()
        newer.minimum_version = ssl.TLSVersion.TLSv1_3
        assert await refused_connection(bridge, newer)
        older = files.client_context()
        older.maximum_version = ssl.TLSVersion.TLSv1_2
        status, _, _ = await request(bridge, context=older)
        assert status == 200


async def _openssl_get(bridge: Bridge, version_flag: str) -> str:
    """What ``openssl s_client`` offering only one old version (``-tls1``, ``-tls1_1``) at
    OpenSSL's security level 0 prints after asking for /healthz: the handshake and the answer."""
    assert bridge.address is not None
    host, port = bridge.address
    process = await asyncio.create_subprocess_exec(
        require_binary("openssl"),
        "s_client",
        "-connect",
        f"{host}:{port}",
        version_flag,
        "-cipher",
        "DEFAULT:@SECLEVEL=0",
        "-ign_eof",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(
        process.communicate(b"GET /healthz HTTP/1.0\r\n\r\n"), timeout=20
    )
    return out.decode(errors="replace")


@pytest.mark.parametrize(
    ("min_version", "flag", "spoken"),
    [("TLS10", "-tls1", "TLSv1"), ("TLS11", "-tls1_1", "TLSv1.1")],
)
async def test_an_old_min_version_really_negotiates(
    files: WebFiles, min_version: str, flag: str, spoken: str
):
    """min_version TLS10 or TLS11 is honoured under OpenSSL 3: a client offering only that
    version completes the handshake and is served (the default TLS12 refuses the same client)."""
    async with serving(files, files.tls_config(f"min_version: {min_version}")) as bridge:
        printed = await _openssl_get(bridge, flag)
        assert f"Protocol  : {spoken}\n" in printed, printed
        assert "Cipher is (NONE)" not in printed, printed
        assert "HTTP/1.0 200 OK" in printed, printed
    async with serving(files, files.tls_config()) as bridge:
        assert "200 OK" not in await _openssl_get(bridge, flag)


async def test_an_old_min_version_comes_and_goes_with_a_reload(files: WebFiles):
    """min_version TLS10 written into the file of a running bridge lets a TLS 1.0 client in
    without a restart; the default written back shuts it out again."""
    async with serving(files, files.tls_config()) as bridge:
        live = bridge.web_config
        assert live is not None
        files.write(files.tls_config("min_version: TLS10"))
        assert await live.reload()
        assert "HTTP/1.0 200 OK" in await _openssl_get(bridge, "-tls1")
        files.write(files.tls_config())
        assert await live.reload()
        assert "200 OK" not in await _openssl_get(bridge, "-tls1")
        status, _, _ = await request(bridge, context=files.client_context())
        assert status == 200


async def test_cipher_suites_restrict_tls12(files: WebFiles):
    """cipher_suites limits TLS 1.2 to the suites named (by Go's names)."""
    # trustme's keys are ECDSA keys.
    text = files.tls_config(
        "max_version: TLS12\ncipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]"
    )
    async with serving(files, text) as bridge:
        other = files.client_context()
        other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        assert await refused_connection(bridge, other)
        status, _, _ = await request(bridge, context=files.client_context())
        assert status == 200


# -- reloads --


async def test_a_new_user_takes_effect_without_restart(files: WebFiles):
    """A user added to the file is let in once the file is looked at again."""
    bob = basic("bob", "bob-pw")
    async with serving(files, files.tls_config() + USERS) as bridge:
        context = files.client_context()
        assert not await served(bridge, context, {"Authorization": bob})
        files.write(files.tls_config() + USERS + f"  bob: {bcrypt_hash('bob-pw')}\n")
        await async_wait_until(
            lambda: served(bridge, context, {"Authorization": bob}), 10, "bob let in"
        )
        assert await served(bridge, context, {"Authorization": ALICE})


async def test_a_broken_new_file_keeps_the_old_one_and_is_logged_once(
    files: WebFiles, caplog: pytest.LogCaptureFixture
):
    """A bad new file is refused once, logged once, and the old users stay in force."""
    caplog.set_level(logging.ERROR, "bridge.webconfig")
    async with serving(files, files.tls_config() + USERS) as bridge:
        live = bridge.web_config
        assert live is not None
        files.write(files.tls_config() + "basic_auth_users:\n  alice: not-a-hash\n")
        await async_wait_until(
            lambda: reloaded_after_a_request(bridge, files, 0), 10, "the refusal"
        )
        for _ in range(3):
            await live.reload()
        refusals = [r for r in caplog.records if "not reloaded" in r.getMessage()]
        assert len(refusals) == 1
        assert "basic_auth_users (line 5, its key not shown)" in refusals[0].getMessage()
        assert "not-a-hash" not in refusals[0].getMessage()
        assert "alice" not in refusals[0].getMessage()
        # The old users, not none: alice is let in and a request without credentials is not.
        assert await served(bridge, files.client_context(), {"Authorization": ALICE})
        assert not await served(bridge, files.client_context(), {})
        files.write(files.tls_config() + USERS)  # put back
        await async_wait_until(
            lambda: reloaded_after_a_request(bridge, files, 1), 10, "the file taken again"
        )


async def test_a_new_file_giving_a_user_twice_is_refused_and_the_old_one_stays(files: WebFiles):
    """A new file listing alice twice (the second time with another password) is refused, as
    the toolkit's strict YAML reader refuses it: the last entry does not silently win."""
    async with serving(files, files.tls_config() + USERS) as bridge:
        files.write(files.tls_config() + USERS + f"  alice: {bcrypt_hash('other-pw')}\n")
        await async_wait_until(
            lambda: reloaded_after_a_request(bridge, files, 0), 10, "the refusal"
        )
        context = files.client_context()
        assert await served(bridge, context, {"Authorization": ALICE})
        assert not await served(bridge, context, {"Authorization": basic("alice", "other-pw")})


async def test_a_rate_limit_added_to_the_file_applies_without_restart(files: WebFiles):
    """rate_limit is read again with the rest of the file (the toolkit reads it at start only):
    once the file is looked at, requests over the new limit are answered 429."""
    async with serving(files, files.tls_config() + USERS) as bridge:
        context = files.client_context()
        files.write(files.tls_config() + USERS + "rate_limit:\n  interval: 1h\n  burst: 1\n")

        async def limited() -> bool:
            auth = {"Authorization": ALICE}
            status, _, _ = await request(bridge, "/metrics", context=context, headers=auth)
            return status == 429

        await async_wait_until(limited, 10, "a request over the new rate limit answered 429")


async def test_a_remembered_password_is_forgotten_when_the_file_changes(files: WebFiles):
    """A check's outcome is remembered, a right password's and a wrong one's (no bcrypt check
    for the next request with the same credentials, as exesdb_web_config_password_checks_total
    shows); a reload forgets both."""
    wrong = {"Authorization": basic("alice", "guess")}
    async with serving(files, files.tls_config() + USERS) as bridge:
        live = bridge.web_config
        assert live is not None

        def checked() -> tuple[float | None, ...]:
            return tuple(
                bridge.registry.get_sample_value(
                    "exesdb_web_config_password_checks_total", {"result": result}
                )
                for result in ("accepted", "refused")
            )

        assert checked() == (0, 0)
        for _ in range(3):
            assert not await served(bridge, files.client_context(), wrong)
        for _ in range(2):
            assert await served(bridge, files.client_context(), {"Authorization": ALICE})
        assert checked() == (1, 1)
        files.write(files.tls_config() + USERS + "http_server_config: {}\n")
        assert await live.reload()
        assert await served(bridge, files.client_context(), {"Authorization": ALICE})
        assert not await served(bridge, files.client_context(), wrong)
        assert checked() == (2, 2)


async def test_a_rotated_certificate_is_served_to_new_connections(files: WebFiles):
    """New certificate files on disk are what the next connections see, without a restart."""
    async with serving(files, files.tls_config()) as bridge:
        assert await served(bridge, files.client_context(), {})
        new_ca = trustme.CA()
        files.serve_from(new_ca)
        await async_wait_until(
            lambda: served(bridge, files.client_context(ca=new_ca), {}), 10, "the new certificate"
        )
        assert not await served(bridge, files.client_context(), {})


async def test_a_broken_new_certificate_keeps_the_old_one_served(files: WebFiles):
    """A certificate file rewritten with garbage is refused (the reload gauge reads 0) and the
    certificate in force goes on being served to new connections."""
    async with serving(files, files.tls_config()) as bridge:
        context = files.client_context()
        assert await served(bridge, context, {})
        (files.folder / "server.pem").write_text("not a certificate\n")
        await async_wait_until(
            lambda: reloaded_after_a_request(bridge, files, 0), 10, "the refusal"
        )
        assert await served(bridge, context, {})


async def test_client_auth_can_be_required_without_restart(files: WebFiles):
    """Switching to RequireAndVerifyClientCert in the file refuses new clients without one."""
    async with serving(files, files.tls_config()) as bridge:
        assert await served(bridge, files.client_context(), {})
        files.write(
            files.tls_config(
                "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
            )
        )
        await async_wait_until(
            lambda: refused_connection(bridge, files.client_context()), 10, "the refusal"
        )
        assert await served(bridge, files.client_context(files.client_cert()), {})


TAKEN_AT = "exesdb_web_config_last_reload_success_timestamp_seconds"


async def handshake_completes(bridge: Bridge, context: ssl.SSLContext) -> bool:
    """True when a TLS 1.2 handshake with ``context`` completes, False when it is refused (in
    TLS 1.2 a missing client certificate fails the handshake itself); no request is sent, so
    the file is looked at only as the connection is made."""
    assert bridge.address is not None
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        _, writer = await asyncio.open_connection(*bridge.address, ssl=context)
    except (ssl.SSLError, ConnectionError):
        return False
    writer.close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await writer.wait_closed()
    return True


async def test_the_connection_that_finds_a_changed_file_is_made_under_it(files: WebFiles):
    """The connection whose look takes a file turning RequireAndVerifyClientCert on is refused
    without a client certificate: OpenSSL fixes the client-auth mode when it makes the
    connection, so the file is looked at before that and never in the handshake, which would
    let that connection in under the old mode when its ClientHello is read late, as under load
    (test_reloading's ``test_a_handshake_takes_no_file_its_connection_was_made_before``). (Those
    made before it, the one whose look first saw the change among them, are let in: the change
    is left to settle.)"""
    async with serving(files, files.tls_config()) as bridge:
        loaded_at = bridge.registry.get_sample_value(TAKEN_AT)
        files.write(
            files.tls_config(
                "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
            )
        )
        # Connections one after another until one is refused, each noting whether the file
        # was taken (its reload's time set) before it was made.
        deadline = time.monotonic() + 10
        while True:
            taken_before = bridge.registry.get_sample_value(TAKEN_AT) != loaded_at
            if not await handshake_completes(bridge, files.client_context()):
                break
            assert not taken_before, "a connection made after the file was taken was let in"
            assert time.monotonic() < deadline, "no connection refused within 10 s"
            await asyncio.sleep(0.05)  # the file is looked at once a second: no need to spin
        assert not taken_before, "the first connection refused was made after the file's take"
        assert bridge.registry.get_sample_value(TAKEN_AT) != loaded_at
        assert await served(bridge, files.client_context(files.client_cert()), {})


async def test_turning_tls_off_needs_a_restart(files: WebFiles):
    """A new file without TLS is refused while the server listens with TLS."""
    async with serving(files, files.tls_config()) as bridge:
        live = bridge.web_config
        assert live is not None
        files.write(USERS)
        assert not await live.reload()
        assert reloaded(bridge) == 0
        assert await served(bridge, files.client_context(), {})


async def test_a_bad_file_stops_start_up(files: WebFiles):
    """Bridge.start raises ConfigError naming the key when the file is bad."""
    with pytest.raises(ConfigError, match=r"tls_server_config\.bogus: unknown key"):
        async with serving(files, "tls_server_config:\n  bogus: 1\n"):
            pass


# -- failed handshakes --

HANDSHAKE_FAILURES = "exesdb_http_tls_handshake_failures_total"


def _failures(bridge: Bridge) -> dict[str, float]:
    """The handshake failures counted so far, by kind (those above 0)."""
    kinds = (
        "plain_http",
        "client_certificate",
        "server_certificate",
        "version_or_cipher",
        "closed",
        "other",
    )
    counts = {k: bridge.registry.get_sample_value(HANDSHAKE_FAILURES, {"kind": k}) for k in kinds}
    return {kind: count for kind, count in counts.items() if count}


# How Go's net/http's answer to plain HTTP on its TLS port begins and ends (the bridge's has
# Content-Type, Content-Length and Connection: close between).
GO_PLAIN_HTTP_STATUS = b"HTTP/1.0 400 Bad Request\r\n"
GO_PLAIN_HTTP_BODY = b"\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def _go_plain_http_answer(answer: bytes) -> bool:
    """Whether ``answer`` is Go's answer to plain HTTP on its TLS port (and nothing more)."""
    return answer.startswith(GO_PLAIN_HTTP_STATUS) and answer.endswith(GO_PLAIN_HTTP_BODY)


async def _plain_http(bridge: Bridge) -> bytes:
    """What one plain HTTP request over one connection to the TLS port gets back, until the
    bridge closes it."""
    assert bridge.address is not None
    reader, writer = await asyncio.open_connection(*bridge.address)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def _curl(bridge: Bridge, *args: str) -> int:
    """curl's exit status for ``/healthz`` over https with ``args``: a client that, as Go's
    (Prometheus) does, tells the server why it gives up on a handshake."""
    assert bridge.address is not None
    host, port = bridge.address
    command = [require_binary("curl"), "-sS", "-o", "/dev/null", *args]
    process = await asyncio.create_subprocess_exec(
        *command,
        f"https://{host}:{port}/healthz",
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait()


async def test_failed_handshakes_are_counted_by_kind_and_logged_with_what_to_do(
    files: WebFiles, caplog: pytest.LogCaptureFixture, tmp_path: Path
):
    """A handshake that fails is no longer silent: plain HTTP to the TLS port (answered 400), a
    client without the certificate client_auth_type asks for, one that does not trust the
    bridge's certificate and one offering only TLS 1.1 are each counted under their kind and
    logged once with what to do; a client that connects and leaves (a TCP port check) is
    counted, never logged."""
    text = files.tls_config(
        "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
    )
    stranger = tmp_path / "stranger-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with caplog.at_level(logging.WARNING, logger="bridge.listener.handshakes"):
        async with serving(files, text) as bridge:
            assert _go_plain_http_answer(await _plain_http(bridge))
            assert await refused_connection(bridge, files.client_context())
            assert await _curl(bridge, "--cacert", str(stranger)) != 0
            assert await _curl(bridge, "--insecure", "--tls-max", "1.1") != 0
            assert bridge.address is not None
            _, writer = await asyncio.open_connection(*bridge.address)
            writer.close()
            await writer.wait_closed()
            # aiohttp tries a refused connection twice: each kind counted at least once.
            expected = {
                "plain_http",
                "client_certificate",
                "server_certificate",
                "version_or_cipher",
                "closed",
            }
            await async_wait_until(
                lambda: set(_failures(bridge)) == expected, what=f"each of {expected} counted"
            )
    # The handshakes' lines (the start's warnings of the web config are the bridge's own).
    handshakes = [r for r in caplog.records if r.name == "bridge.listener.handshakes"]
    lines = [record.getMessage() for record in handshakes]
    assert len(lines) == 4, lines
    for kind, advice in (
        ("plain_http", "give it an https:// URL"),
        ("client_certificate", "client_auth_type"),
        ("server_certificate", "tls_config.ca_file"),
        ("version_or_cipher", "min_version"),
    ):
        assert any(f"failed ({kind}, " in line and advice in line for line in lines), kind
    assert all(line.startswith("TLS handshake from 127.0.0.1:") for line in lines)


async def test_a_kind_of_handshake_failure_is_logged_once_a_minute_with_a_count(
    files: WebFiles, caplog: pytest.LogCaptureFixture
):
    """A client retrying over plain HTTP every few seconds gives one line a minute, not one
    per attempt; the next line says how many came between."""
    with caplog.at_level(logging.WARNING, logger="bridge.listener.handshakes"):
        async with serving(files, files.tls_config()) as bridge:
            for _ in range(3):
                assert _go_plain_http_answer(await _plain_http(bridge))
            await async_wait_until(
                lambda: _failures(bridge) == {"plain_http": 3.0}, what="three failures counted"
            )
    assert len([r for r in caplog.records if "plain_http" in r.getMessage()]) == 1
