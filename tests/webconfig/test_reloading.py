"""Reloading the web config safely: a file being written is not taken half-way, a new version
that would turn basic auth off is refused (a restart does it), one that asks less of client
certificates taken with a warning, and one too large refused unread."""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.regular_files import MAX_FILE_BYTES
from bridge.webconfig.live import SETTLE_SECONDS, LiveWebConfig
from bridge.webconfig.loading import judge
from tests.support import FifoReleaser, ManualClock, async_wait_until
from tests.webconfig.files import WebFiles, basic, bcrypt_hash
from tests.webconfig.test_serving import refused_connection, request, served, serving

ALICE = f"  alice: {bcrypt_hash('alice-pw')}\n"
BOB = f"  bob: {bcrypt_hash('bob-pw')}\n"


@pytest.fixture
def files(tmp_path: Path) -> WebFiles:
    """Certificates and a folder for the web config file."""
    return WebFiles(tmp_path / "web")


def test_a_file_written_in_two_steps_is_not_taken_in_between(files: WebFiles):
    """A file rewritten in place (``cat >``, a slow copy) whose first part is a good file of its
    own (bob, but not yet alice) is not taken when a look falls between the two writes: a
    changed file is taken only once a read SETTLE_SECONDS later finds the same bytes."""
    path = files.write("basic_auth_users:\n" + ALICE)
    clock = ManualClock()
    live = LiveWebConfig(judge(path), check_interval=0, clock=clock)
    with path.open("w") as writing:
        writing.write("basic_auth_users:\n" + BOB)
        writing.flush()
        assert not live.refresh()  # the first look sees the change
        clock.advance(SETTLE_SECONDS / 2)
        assert not live.refresh()
        writing.write(ALICE)
    assert list(live.config.basic_auth_users) == ["alice"]
    clock.advance(SETTLE_SECONDS / 2)
    assert not live.refresh()  # changed again since: it must settle again
    clock.advance(SETTLE_SECONDS)
    assert live.refresh()
    assert sorted(live.config.basic_auth_users) == ["alice", "bob"]


async def test_a_file_turning_basic_auth_off_is_refused_until_a_restart(
    files: WebFiles, caplog: pytest.LogCaptureFixture
):
    """A file whose users are all gone (``printf 'basic_auth_users:\\n' > web.yml``, as a
    half-written file can be, or every user commented out) is refused: requests without
    credentials are still answered 401, the refusal is logged as an error and the reload gauge
    reads 0; a bridge started with that file serves without basic auth, as the toolkit does."""
    caplog.set_level(logging.WARNING, "bridge.webconfig")
    async with serving(files, "basic_auth_users:\n" + ALICE) as bridge:
        live = bridge.web_config
        assert live is not None
        files.folder.joinpath("web.yml").write_text("basic_auth_users:\n")
        assert not await live.reload()
        assert bridge.registry.get_sample_value("exesdb_web_config_last_reload_successful") == 0
        status, _, body = await request(bridge, "/metrics", scheme="http")
        assert (status, json.loads(body)["error"]) == (401, "unauthorized")
        status, _, _ = await request(
            bridge, "/metrics", scheme="http", headers={"Authorization": basic("alice", "alice-pw")}
        )
        assert status == 200
    [refusal] = [r for r in caplog.records if "not reloaded" in r.getMessage()]
    assert refusal.levelno == logging.ERROR
    assert "turning basic auth off needs a restart" in refusal.getMessage()
    async with serving(files, "basic_auth_users:\n") as bridge:
        status, _, _ = await request(bridge, "/metrics", scheme="http")
        assert status == 200


async def test_a_file_asking_less_of_client_certificates_is_taken_with_a_warning(
    files: WebFiles, caplog: pytest.LogCaptureFixture
):
    """A new file dropping RequireAndVerifyClientCert lets clients without a certificate in, as
    any good file is taken, and says so at WARNING, not only in the INFO line of a reload."""
    caplog.set_level(logging.INFO, "bridge.webconfig")
    required = "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
    async with serving(files, files.tls_config(required)) as bridge:
        assert await refused_connection(bridge, files.client_context())
        files.write(files.tls_config())
        await async_wait_until(
            lambda: served(bridge, files.client_context(), {}), 10, "the file taken"
        )
    [warning] = [
        r
        for r in caplog.records
        if r.name == "bridge.webconfig.live" and r.levelno >= logging.WARNING
    ]
    assert "client_auth_type is NoClientCert where it was RequireAndVerifyClientCert" in (
        warning.getMessage()
    )


async def test_a_file_too_large_for_a_web_config_is_refused_unread_and_the_bridge_serves_on(
    files: WebFiles, caplog: pytest.LogCaptureFixture
):
    """A web config file replaced by megabytes (a log, a bundle copied over it by mistake) is
    refused by its size, read no further than MAX_FILE_BYTES and not parsed, logged once, the
    version before kept: parsed on the event loop, 4 MiB of YAML comment held every request
    for seconds (100 MB: 90 s)."""
    caplog.set_level(logging.ERROR, "bridge.webconfig")
    async with serving(files, files.tls_config() + "basic_auth_users:\n" + ALICE) as bridge:
        live = bridge.web_config
        assert live is not None
        files.write("#" * (4 * MAX_FILE_BYTES) + "\n")
        began = time.monotonic()
        assert not await live.reload()  # two looks, SETTLE_SECONDS apart
        took = time.monotonic() - began
        assert not await live.reload()
        credentials = {"Authorization": basic("alice", "alice-pw")}
        assert await served(bridge, files.client_context(), credentials)
        assert bridge.registry.get_sample_value("exesdb_web_config_last_reload_successful") == 0
    [refusal] = [r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage()]
    assert took < 1, f"the reload took {took:.2f}s"
    assert f"larger than {MAX_FILE_BYTES // 1024} KiB" in refusal


@pytest.mark.parametrize("name", ["web.yml", "server.pem", "server.key", "client-ca.pem"])
def test_a_file_replaced_by_a_fifo_is_refused_without_waiting_for_a_writer(
    files: WebFiles, caplog: pytest.LogCaptureFixture, name: str
):
    """A web config file, or a certificate, key or client CA it names, replaced by a FIFO is
    refused at the look that finds it, logged once saying what it is, the version before kept:
    opened on the event loop, it waited for a writer that never came, and the bridge answered
    nothing, SIGTERM included."""
    caplog.set_level(logging.ERROR, "bridge.webconfig")
    tls = files.tls_config(
        "client_ca_file: client-ca.pem\nclient_auth_type: RequireAndVerifyClientCert"
    )
    path = files.write(tls)
    clock = ManualClock()
    live = LiveWebConfig(judge(path), check_interval=0, clock=clock)
    in_force = live.config
    with FifoReleaser(files.folder / name) as fifo:
        began = time.monotonic()
        assert not live.refresh()  # the change seen
        clock.advance(SETTLE_SECONDS)
        assert not live.refresh()  # read the same again, and refused
        assert not live.refresh()  # already told
        took = time.monotonic() - began
    assert (fifo.released, took < 1) == (0, True), f"{fifo.released} waits, {took:.1f} s"
    [refusal] = [r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage()]
    assert "a FIFO (named pipe), not a regular file" in refusal
    assert live.config is in_force


def test_a_file_whose_alias_names_its_own_node_is_refused_at_the_look_not_raised(
    files: WebFiles, caplog: pytest.LogCaptureFixture
):
    """A web config replaced by one whose alias names the node it is in (``&a [*a]``) is
    refused and logged once, the version before kept: walked, it raised RecursionError out of
    the look, a 500 to the request that made it and a traceback, again at every look."""
    caplog.set_level(logging.ERROR, "bridge.webconfig")
    path = files.write("basic_auth_users:\n" + ALICE)
    clock = ManualClock()
    live = LiveWebConfig(judge(path), check_interval=0, clock=clock)
    in_force = live.config
    files.write("basic_auth_users:\n" + ALICE + "loop: &loop [*loop]\n")
    assert not live.refresh()
    clock.advance(SETTLE_SECONDS)
    assert not live.refresh()
    clock.advance(SETTLE_SECONDS)
    assert not live.refresh()
    [refusal] = [r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage()]
    assert "an alias names a node it is inside of" in refusal
    assert live.config is in_force


def test_a_certificate_too_large_is_refused_and_read_no_further_at_each_look(
    files: WebFiles, caplog: pytest.LogCaptureFixture
):
    """A certificate file replaced by 256 MiB (a log or an image copied over it by mistake) is
    refused by its size, logged once, the version before kept, and each look after reads no
    more than MAX_FILE_BYTES of it: read and hashed whole at every look, once a second on the
    event loop, 500 MB held every request for 1 to 4 s."""
    caplog.set_level(logging.ERROR, "bridge.webconfig")
    path = files.write(files.tls_config())
    clock = ManualClock()
    live = LiveWebConfig(judge(path), check_interval=0, clock=clock)
    in_force = live.config
    certificate = files.folder / "server.pem"
    with certificate.open("r+b") as grown:
        grown.truncate(256 << 20)  # sparse: nothing written, each read is of zeros
    assert not live.refresh()
    clock.advance(SETTLE_SECONDS)
    assert not live.refresh()  # refused
    began = time.monotonic()
    for _ in range(3):
        assert not live.refresh()  # already told
    took = time.monotonic() - began
    [refusal] = [r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage()]
    assert f"tls_server_config.cert_file: {certificate}: larger than 1024 KiB" in refusal
    assert live.config is in_force
    assert took < 0.3, f"three looks took {took:.2f} s"


def handshake_in_memory(
    live: LiveWebConfig, client: ssl.SSLContext, meanwhile: Callable[[], object]
) -> bool:
    """Whether a TLS 1.2 handshake with ``client`` completes on a connection made on ``live``'s
    listening context (its SSL object created) before ``meanwhile`` runs, its ClientHello read
    after, as a busy listener reads it a while after making the connection."""
    client.maximum_version = ssl.TLSVersion.TLSv1_2  # a missing certificate fails the handshake
    assert live.ssl_context is not None
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = live.ssl_context.wrap_bio(server_in, server_out, server_side=True)
    client_side = client.wrap_bio(client_in, client_out, server_hostname="127.0.0.1")
    meanwhile()
    done: set[ssl.SSLObject] = set()
    for _ in range(10):  # a TLS 1.2 handshake is two round trips
        for side in (client_side, server_side):
            try:
                side.do_handshake()
                done.add(side)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:  # refused
                return False
            server_in.write(client_out.read())
            client_in.write(server_out.read())
        if len(done) == 2:
            return True
    return False


def test_a_handshake_takes_no_file_its_connection_was_made_before(files: WebFiles):
    """A look falling in a handshake, its ClientHello come after the file settled (as under
    load), does not take a file turning RequireAndVerifyClientCert on: OpenSSL fixed the
    connection's client-auth mode when it was made, before, and that connection would be let in
    without a certificate under the new file. The look made before the next connection takes
    it, and that connection is refused."""
    clock = ManualClock()
    live = LiveWebConfig(judge(files.write(files.tls_config())), check_interval=0, clock=clock)
    files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
        )
    )
    assert not live.refresh()  # the change seen
    clock.advance(SETTLE_SECONDS / 2)
    assert not live.refresh()  # the look before the connection is made: not settled yet
    assert handshake_in_memory(live, files.client_context(), lambda: clock.advance(SETTLE_SECONDS))
    assert live.config.tls is not None
    assert live.config.tls.client_auth_type == "NoClientCert", "taken in the handshake"
    assert live.refresh()  # the look before the next connection is made
    assert not handshake_in_memory(live, files.client_context(), lambda: None)
    assert handshake_in_memory(live, files.client_context(files.client_cert()), lambda: None)
