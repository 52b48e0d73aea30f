"""Shared fixtures."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from tests.scheduling import group_integration_module, interleaved
from tests.support import BridgeProcess, is_bridge_variable
from tests.support.socket_origins import install_socket_origins, running_test


# Last: pytest's own unraisablehook (which turns a socket's ResourceWarning into a failure) is
# set by then, and is the one wrapped.
@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """A socket left unclosed fails a test saying where it was made (tests/support/
    socket_origins.py), not only which socket it was."""
    install_socket_origins()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """The test running, for the sockets it makes (``running_test``)."""
    running_test[0] = item.nodeid
    try:
        return (yield)
    finally:
        running_test[0] = "(between tests)"


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under ``--dist loadgroup`` (make test), each integration module a group of its own: marked
    as collected, before pytest-xdist reads the groups."""
    if item.config.getoption("loadgroup", default=False):
        group_integration_module(item)


# Last: the order of the tests left once -m and -k have deselected theirs (make pytest-quick).
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` (make test), the order of ``tests/scheduling.py``."""
    if config.getoption("loadgroup", default=False):
        items[:] = interleaved(items)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in an environment without the bridge's variables (none of the run's leaks
    in): a shell set up as the README's (EXESDB_ADMIN_TOKEN, SECRET_KEY_BASE and
    EXESDB_HTTP_ADDR exported) runs ``make test`` as a clean one does."""
    for name in list(os.environ):
        if is_bridge_variable(name):
            monkeypatch.delenv(name)


@pytest.fixture
def bridge_processes(tmp_path: Path) -> Iterator[list[BridgeProcess]]:
    """A list to put started ``BridgeProcess`` objects in; every one is stopped afterwards."""
    started: list[BridgeProcess] = []
    yield started
    for number, process in enumerate(started, 1):
        process.stop()
        # Shown by pytest only when the test failed: what each bridge said.
        print(f"--- bridge process {number} (port {process.port}), its log's end ---")
        print(process.log()[-6000:])


@pytest.fixture
def untrusted_tls_port() -> Iterator[int]:
    """A port of 127.0.0.1 serving TLS with a certificate from a CA nobody trusts."""
    with _serving_tls(trustme.CA().issue_cert("127.0.0.1")) as port:
        yield port


@pytest.fixture
def tls_port_for_another_name(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A port of 127.0.0.1 serving TLS with a certificate for bridge.example alone, and the
    file of the CA that issued it."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with _serving_tls(ca.issue_cert("bridge.example")) as port:
        yield port, ca_file


@pytest.fixture
def expired_tls_port(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A port of 127.0.0.1 serving TLS with a certificate that expired a day ago, and the file
    of that certificate."""
    now = datetime.now(UTC)
    leaf = trustme.CA().issue_cert(
        "127.0.0.1", not_before=now - timedelta(days=2), not_after=now - timedelta(days=1)
    )
    cert_file = tmp_path / "expired.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    with _serving_tls(leaf) as port:
        yield port, cert_file


@contextlib.contextmanager
def _serving_tls(leaf: trustme.LeafCert) -> Iterator[int]:
    """A port of 127.0.0.1 that takes one connection's TLS handshake with ``leaf``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            with contextlib.suppress(OSError):  # the client's refusal ends the handshake
                connection, _ = listener.accept()
                with connection, context.wrap_socket(connection, server_side=True):
                    pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield listener.getsockname()[1]
    thread.join(5)
