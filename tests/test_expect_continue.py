"""``Expect: 100-continue`` (docs/http-api.md): ``100 Continue`` only once every check of the head
has passed and a route reads the body, through a real bridge and raw client sockets."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

import pytest

from bridge.app import Bridge
from bridge.bus import SIGNATURE_HEADER, Keyring
from bridge.headers import ADMIN_TOKEN_HEADER
from bridge.listener import BODY_GRACE
from tests.listener_support import closed
from tests.support import ADMIN_TOKEN, TEST_SECRET, async_wait_until, make_settings
from tests.webconfig.files import WebFiles, basic, bcrypt_hash
from tests.webconfig.test_serving import serving

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n"
USERS: Final = f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw')}\n"
# alice-pw's bcrypt hashes at cost 13 (~0.8 s a check) and 15 (~2 s), made once: making one
# takes as long as checking it, seconds the tests would spend before their bridge starts.
SLOW_USERS: Final = (
    "basic_auth_users:\n  alice: $2b$13$EKNtMkI5lhrkbHpPHUBPPeR7fqNi6WXr6JWO4N4A4tn0AyYZ4Kf5W\n"
)
SLOWER_USERS: Final = (
    "basic_auth_users:\n  alice: $2b$15$AI0WEVcg4dQrv4QfI7wvNuhc4IA18yMK7DHwn/BM6PxhrSdevrLmu\n"
)
ALICE: Final = basic("alice", "alice-pw")


@pytest.fixture
def files(tmp_path: Path) -> WebFiles:
    """Certificates and a folder for the web config file."""
    return WebFiles(tmp_path / "web")


@asynccontextmanager
async def plain(tmp_path: Path, **env: str) -> AsyncIterator[Bridge]:
    """A started bridge without a web config, ingest on, an admin token set, and ``env``."""
    settings = make_settings(
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_ADMIN_TOKEN=ADMIN_TOKEN,
        EXESDB_STATE_DIR=str(tmp_path / "state"),
        **env,
    )
    bridge = Bridge(settings, components=[])
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.aclose()


@dataclass(frozen=True)
class Answer:
    """One answer read off a connection."""

    status_line: bytes
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])


class Client:
    """One raw connection to a bridge: heads written as given, answers read as they come."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def status_line(self) -> bytes:
        # A minute: the cost-15 password check takes 2 s quiet, past 10 s on a busy machine.
        return await asyncio.wait_for(self.reader.readline(), 60)

    async def answer(self, status_line: bytes | None = None) -> Answer:
        """The next answer (its status line already read, if given)."""
        line = status_line or await self.status_line()
        headers: dict[str, str] = {}
        while (field := await asyncio.wait_for(self.reader.readline(), 10)) not in (b"\r\n", b""):
            name, _, value = field.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10)
        return Answer(line, headers, body)

    async def closed_after(self, body: bytes) -> bool:
        """True when, ``body`` sent after all and a next request after it, the bridge closes
        the connection rather than answer that request."""
        await self.send(body + b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
        return await asyncio.wait_for(self.reader.read(1), 10) == b""


@asynccontextmanager
async def connection(
    bridge: Bridge, context: ssl.SSLContext | None = None
) -> AsyncIterator[Client]:
    """A raw connection to ``bridge`` (over TLS with ``context``), closed afterwards."""
    assert bridge.address is not None
    host, port = bridge.address
    reader, writer = await asyncio.open_connection(
        host, port, ssl=context, server_hostname=host if context else None
    )
    try:
        yield Client(reader, writer)
    finally:
        writer.close()


def head(request_line: str, *fields: str, length: int = 99) -> bytes:
    """A request head that waits for ``100 Continue`` before its body of ``length`` bytes."""
    lines = [request_line, "Host: bridge", "Expect: 100-continue", f"Content-Length: {length}"]
    return ("\r\n".join([*lines, *fields]) + "\r\n\r\n").encode()


def signed_envelope() -> tuple[bytes, str]:
    """A signed ingest body and its signature header."""
    from tests.http.helpers import envelope

    body = json.dumps(envelope()).encode()
    return body, Keyring.from_secrets(TEST_SECRET).sign_header(body, int(time.time()))


@pytest.mark.parametrize(
    ("request_line", "fields", "status"),
    [
        ("POST /no/such/path HTTP/1.1", (), 404),
        ("PUT /v1/messages HTTP/1.1", (), 405),
        ("POST /v1/integration HTTP/1.1", ("Content-Type: application/json",), 401),
    ],
)
async def test_a_refusal_before_the_body_comes_without_100_continue_and_closes(
    tmp_path: Path, request_line: str, fields: tuple[str, ...], status: int
) -> None:
    """A path not served (aiohttp's 404), a method it does not take (405) and an admin route
    without its token (401) are answered with that refusal in place of ``100 Continue``, in
    the one JSON error shape, and ``Connection: close``: the body is not asked for, and the
    connection ends even if the client sends it after all."""
    async with plain(tmp_path) as bridge, connection(bridge) as client:
        await client.send(head(request_line, *fields, length=99))
        answer = await client.answer()
        assert answer.status == status, answer.status_line
        assert "error" in json.loads(answer.body)
        assert answer.headers.get("connection") == "close"
        assert await client.closed_after(b"x" * 99)


async def test_a_body_asked_for_keeps_the_connection(tmp_path: Path) -> None:
    """A head ingest takes is answered ``100 Continue``; its body sent then is taken (202) and
    the connection serves the next request."""
    body, signature = signed_envelope()
    fields = ("Content-Type: application/json", f"{SIGNATURE_HEADER}: {signature}")
    async with plain(tmp_path) as bridge, connection(bridge) as client:
        await client.send(head("POST /v1/messages HTTP/1.1", *fields, length=len(body)))
        assert await client.status_line() == CONTINUE
        assert await client.status_line() == b"\r\n"
        await client.send(body)
        answer = await client.answer()
        assert answer.status == 202, answer.body
        assert "connection" not in answer.headers
        await client.send(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
        assert (await client.answer()).status == 200


def served(bridge: Bridge) -> bool:
    """True once ``bridge``'s one connection has a request in progress."""
    open_now = bridge.registry.get_sample_value("exesdb_http_connections")
    return open_now == 1 and bridge.connections.idle == 0


@pytest.mark.parametrize("expect", ["100-continue", "200-ok"])
async def test_an_http_1_0_expectation_is_ignored(tmp_path: Path, expect: str) -> None:
    """An HTTP/1.0 request's ``Expect`` is ignored (RFC 9110 10.1.1: a server MUST ignore a
    100-continue expectation in an HTTP/1.0 request; HTTP/1.0 has no interim answers): its body,
    sent once its head is being served, is read and answered without a ``100 Continue`` before
    the answer, and another expectation is not answered 417."""
    body, signature = signed_envelope()
    fields = [
        "POST /v1/messages HTTP/1.0",
        "Host: bridge",
        f"Expect: {expect}",
        f"Content-Length: {len(body)}",
        "Content-Type: application/json",
        f"{SIGNATURE_HEADER}: {signature}",
    ]
    async with plain(tmp_path) as bridge, connection(bridge) as client:
        await client.send(("\r\n".join(fields) + "\r\n\r\n").encode())
        # The request made from the head alone (its body still to come), then the body.
        await async_wait_until(partial(served, bridge), what="the head served")
        await client.send(body)
        answer = await client.answer()
        assert answer.status == 202, (answer.status_line, answer.body)


def expecting(request_line: str, *fields: str) -> bytes:
    """A request head that expects what the bridge does not meet (``Expect: 200-ok``)."""
    lines = [request_line, "Host: bridge", "Expect: 200-ok", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def expectation_failed(answer: Answer) -> bool:
    """True for the bridge's 417, in the one JSON error shape, naming the Expect header."""
    body = json.loads(answer.body)
    return answer.status == 417 and (body["error"], body["field"]) == (
        "expectation_failed",
        "Expect",
    )


@pytest.mark.parametrize(
    "request_line", ["POST /v1/messages HTTP/1.1", "POST /no/such/path HTTP/1.1"]
)
async def test_another_expectation_is_refused_417_in_the_json_shape_and_closes(
    tmp_path: Path, request_line: str
) -> None:
    """An expectation other than ``100-continue`` is answered 417 ``expectation_failed`` in the
    one JSON error shape (not aiohttp's plain text), before the route (no route meets it: a path
    not served too), its body not read, and ``Connection: close``: the connection ends even if
    the client sends the body after all."""
    async with plain(tmp_path) as bridge, connection(bridge) as client:
        await client.send(expecting(request_line, "Content-Length: 5"))
        answer = await client.answer()
        assert expectation_failed(answer), (answer.status_line, answer.body)
        assert "200-ok" in json.loads(answer.body)["detail"]
        assert answer.headers.get("connection") == "close"
        assert await client.closed_after(b"x" * 5)


async def test_after_a_417_without_a_body_the_connection_is_idle_not_a_head_arriving(
    tmp_path: Path,
) -> None:
    """A 417 to a head without a body keeps the connection, which the listener then takes for
    idle: past EXESDB_HTTP_HEADER_TIMEOUT_MS it is not closed as a head too slow, and serves the
    next request."""
    async with (
        plain(tmp_path, EXESDB_HTTP_HEADER_TIMEOUT_MS="300") as bridge,
        connection(bridge) as client,
    ):
        await client.send(expecting("GET /healthz HTTP/1.1"))
        answer = await client.answer()
        assert expectation_failed(answer), (answer.status_line, answer.body)
        assert "connection" not in answer.headers
        await asyncio.sleep(0.6)  # not a wait: past the header timeout, which must not fire
        await client.send(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
        assert (await client.answer()).status == 200
        assert closed(bridge, "header_timeout") == 0


async def _stop_after_a_417_with_no_body(bridge: Bridge, client: Client) -> None:
    """Send a head expecting something else, its body never; stop ``bridge``: the stop takes
    well under its 2 s share and the connection is closed."""
    await client.send(expecting("POST /v1/messages HTTP/1.1", "Content-Length: 5"))
    assert (await client.answer()).status == 417
    loop = asyncio.get_running_loop()
    began = loop.time()
    await bridge.aclose()
    assert loop.time() - began < 1.0
    assert await asyncio.wait_for(client.reader.read(1), 10) == b""


async def test_a_stop_after_a_417_whose_body_never_comes_does_not_wait_for_it(
    tmp_path: Path,
) -> None:
    """A connection answered 417 (``Connection: close``) whose client never sends the body is
    closed at once when the bridge stops, not after the share of the shutdown timeout requests
    in progress get (2 s): nothing more is owed to it."""
    async with plain(tmp_path) as bridge, connection(bridge) as client:
        await _stop_after_a_417_with_no_body(bridge, client)


async def test_over_tls_a_stop_after_a_417_whose_body_never_comes_does_not_wait_for_it(
    files: WebFiles,
) -> None:
    """Over TLS too, a connection answered 417 (``Connection: close``) whose client never sends
    the body is let go at once when the bridge stops, not after the shutdown timeout's share
    (2 s): its close waits on the client's close_notify, which aiohttp's lingering close over
    the unread body must not wait for."""
    async with (
        serving(files, files.tls_config()) as bridge,
        connection(bridge, files.client_context()) as client,
    ):
        await _stop_after_a_417_with_no_body(bridge, client)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_stop_while_a_password_is_checked_ends_once_it_is_refused(
    files: WebFiles, tls: bool
) -> None:
    """A head waiting for ``100 Continue`` whose wrong password is still being checked (bcrypt)
    as the bridge stops is answered 401 with ``Connection: close`` once the check ends, and the
    stop ends then, not after the share of the shutdown timeout requests in progress get
    (2 s): the body the client never sends is not waited for, over TLS too."""
    # ~0.2 s a check: under way as the stop begins, done well within the stop's 2 s share.
    users = f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw', 11)}\n"
    text = (files.tls_config() if tls else "") + users
    fields = ("Content-Type: application/json", f"Authorization: {basic('alice', 'wrong')}")
    async with (
        serving(files, text, EXESDB_INGEST="true") as bridge,
        connection(bridge, files.client_context() if tls else None) as client,
    ):
        await client.send(head("POST /v1/messages HTTP/1.1", *fields))
        await async_wait_until(partial(served, bridge), what="the head served")
        checks = "exesdb_web_config_password_checks_total"
        assert bridge.registry.get_sample_value(checks, {"result": "refused"}) == 0, "too fast"
        stopping = asyncio.create_task(bridge.aclose())
        answer = await client.answer()
        assert answer.status == 401, answer.status_line
        assert answer.headers.get("connection") == "close"
        loop = asyncio.get_running_loop()
        answered = loop.time()
        await asyncio.wait_for(stopping, 10)
        assert loop.time() - answered < 1.0


async def test_with_basic_auth_another_expectation_is_refused_only_past_it(
    files: WebFiles,
) -> None:
    """With basic auth on, a head with another expectation and no credentials is answered 401
    (basic auth answers every request first); with them, 417."""
    async with serving(files, USERS, EXESDB_INGEST="true") as bridge:
        for fields, status in [((), 401), ((f"Authorization: {ALICE}",), 417)]:
            async with connection(bridge) as client:
                request = expecting("POST /v1/messages HTTP/1.1", "Content-Length: 5", *fields)
                await client.send(request)
                answer = await client.answer()
                assert answer.status == status, answer.status_line
                if status == 401:
                    assert json.loads(answer.body)["error"] == "unauthorized"
                else:
                    assert expectation_failed(answer), answer.body


@pytest.mark.parametrize("authorization", [None, basic("alice", "wrong")])
async def test_basic_auth_refuses_before_100_continue(
    files: WebFiles, authorization: str | None
) -> None:
    """With basic auth on, a signed ingest head without credentials, or with a wrong password
    (checked with bcrypt first), is answered 401 with the Basic challenge in place of ``100
    Continue``, and ``Connection: close``: an unauthenticated client is not asked for its
    body, and the connection ends even if it sends it after all."""
    body, signature = signed_envelope()
    fields = ["Content-Type: application/json", f"{SIGNATURE_HEADER}: {signature}"]
    if authorization is not None:
        fields.append(f"Authorization: {authorization}")
    async with (
        serving(files, USERS, EXESDB_INGEST="true") as bridge,
        connection(bridge) as client,
    ):
        await client.send(head("POST /v1/messages HTTP/1.1", *fields, length=len(body)))
        answer = await client.answer()
        assert answer.status == 401, answer.status_line
        assert answer.headers["www-authenticate"].startswith("Basic ")
        assert json.loads(answer.body)["error"] == "unauthorized"
        assert answer.headers.get("connection") == "close"
        assert await client.closed_after(body)
        checks = bridge.registry.get_sample_value(
            "exesdb_web_config_password_checks_total", {"result": "refused"}
        )
    assert checks == (0 if authorization is None else 1)


async def test_basic_auth_passed_then_100_continue_and_the_admin_token_checked_before_it(
    files: WebFiles,
) -> None:
    """With the right password (checked with bcrypt, then remembered), ingest asks for the body
    and takes it; an admin route past basic auth but without its token is refused 401 in place
    of ``100 Continue``."""
    fields = ["Content-Type: application/json", f"Authorization: {ALICE}"]
    async with serving(files, USERS, EXESDB_INGEST="true") as bridge:
        for _ in range(2):  # checked, then remembered
            body, signature = signed_envelope()
            async with connection(bridge) as client:
                signed = f"{SIGNATURE_HEADER}: {signature}"
                await client.send(
                    head("POST /v1/messages HTTP/1.1", *fields, signed, length=len(body))
                )
                assert await client.status_line() == CONTINUE
                assert await client.status_line() == b"\r\n"
                await client.send(body)
                assert (await client.answer()).status == 202
        async with connection(bridge) as client:
            await client.send(head("POST /v1/integration HTTP/1.1", *fields))
            answer = await client.answer()
            assert answer.status == 401, answer.status_line
            assert ADMIN_TOKEN_HEADER in json.loads(answer.body)["detail"]
            assert answer.headers.get("connection") == "close"
            assert await client.closed_after(b"x" * 99)


@pytest.mark.parametrize("sent", ["whole", "half"])
async def test_the_body_timeout_runs_from_100_continue_not_from_the_head(
    files: WebFiles, sent: str
) -> None:
    """With basic auth on, an ingest head waiting for ``100 Continue`` while its password is
    checked (bcrypt, longer than EXESDB_HTTP_BODY_TIMEOUT_MS) is given the whole body timeout
    from the ``100``: a body sent at once then is taken (202); half of one is answered 408 naming
    the setting, no sooner than the timeout after the ``100``."""
    users = SLOW_USERS
    body, signature = signed_envelope()
    fields = ["Content-Type: application/json", f"Authorization: {ALICE}"]
    fields.append(f"{SIGNATURE_HEADER}: {signature}")
    timeout = 0.3
    async with (
        serving(
            files, users, EXESDB_INGEST="true", EXESDB_HTTP_BODY_TIMEOUT_MS=f"{timeout * 1000:.0f}"
        ) as bridge,
        connection(bridge) as client,
    ):
        loop = asyncio.get_running_loop()
        began = loop.time()
        await client.send(head("POST /v1/messages HTTP/1.1", *fields, length=len(body)))
        assert await client.status_line() == CONTINUE
        asked = loop.time()
        assert asked - began > timeout, "the password was checked too fast to tell"
        assert await client.status_line() == b"\r\n"
        await client.send(body if sent == "whole" else body[: len(body) // 2])
        answer = await client.answer()
        if sent == "whole":
            assert answer.status == 202, answer.body
        else:
            assert answer.status == 408, answer.body
            assert loop.time() - asked >= timeout * 0.9
            assert json.loads(answer.body)["error"] == "body_timeout"
            assert closed(bridge, "body_timeout") == 1


async def test_an_admin_body_declared_over_the_limit_is_refused_413_without_100_continue(
    tmp_path: Path,
) -> None:
    """An admin route's head with its token and a Content-Length over EXESDB_MAX_BODY_BYTES is
    answered 413 ``too_large`` in place of ``100 Continue``, as ingest answers it, and
    ``Connection: close``: a body the bridge would refuse is not asked for."""
    fields = ("Content-Type: application/json", f"{ADMIN_TOKEN_HEADER}: {ADMIN_TOKEN}")
    async with plain(tmp_path) as bridge, connection(bridge) as client:
        over = bridge.settings.max_body_bytes + 1
        await client.send(head("POST /v1/integration HTTP/1.1", *fields, length=over))
        answer = await client.answer()
        assert answer.status == 413, answer.status_line
        assert json.loads(answer.body)["error"] == "too_large"
        assert answer.headers.get("connection") == "close"


async def test_at_the_cap_a_body_not_asked_for_yet_is_not_a_slow_body(files: WebFiles) -> None:
    """At the connection cap, an ingest whose password is still being checked (longer than
    BODY_GRACE), its body not asked for yet, is not taken for the slowest body and closed to
    make room for a new connection: it waits on the bridge, not on its client; once asked for
    its body, it is given BODY_GRACE from then, not from its head, and is served."""
    users = SLOWER_USERS
    body, signature = signed_envelope()
    fields = ["Content-Type: application/json", f"Authorization: {ALICE}"]
    fields.append(f"{SIGNATURE_HEADER}: {signature}")

    def admitted(count: int) -> bool:
        """``count`` connections open, or one closed as a slow body to make room."""
        open_now = bridge.registry.get_sample_value("exesdb_http_connections")
        return open_now == count or closed(bridge, "slow_body") > 0

    async with (
        serving(files, users, EXESDB_INGEST="true", EXESDB_HTTP_MAX_CONNECTIONS="1") as bridge,
        connection(bridge) as client,
    ):
        await client.send(head("POST /v1/messages HTTP/1.1", *fields, length=len(body)))
        await asyncio.sleep(BODY_GRACE + 0.2)  # not a wait: eviction needs a body past its grace
        checks = "exesdb_web_config_password_checks_total"
        assert bridge.registry.get_sample_value(checks, {"result": "accepted"}) == 0, "too fast"
        async with connection(bridge):
            await async_wait_until(partial(admitted, 2), what="a connection at the cap")
            assert closed(bridge, "slow_body") == 0
            assert await client.status_line() == CONTINUE
            assert await client.status_line() == b"\r\n"
            async with connection(bridge):
                await async_wait_until(partial(admitted, 3), what="one more at the cap")
                assert closed(bridge, "slow_body") == 0
                await client.send(body)
                assert (await client.answer()).status == 202
