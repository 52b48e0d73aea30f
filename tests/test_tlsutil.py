"""set_versions: what it sets, and that setting a context again keeps nothing of before;
pem_file_problem: a file judged as Python's ssl loads it."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from bridge.tlsutil import pem_file_problem, set_versions
from tests.support import pem_files


@pytest.mark.parametrize("protocol", [ssl.PROTOCOL_TLS_SERVER, ssl.PROTOCOL_TLS_CLIENT])
def test_a_context_set_for_tls10_then_tls12_is_at_a_fresh_contexts_security_level(
    protocol: int,
) -> None:
    """TLS10 lowers OpenSSL's security level to 0; setting the same context for TLS12 after
    brings back the level a fresh context has (SHA-1 handshakes refused again)."""
    fresh = ssl.SSLContext(protocol)
    context = ssl.SSLContext(protocol)
    set_versions(context, "TLS10", None)
    assert (context.security_level, context.minimum_version) == (0, ssl.TLSVersion.TLSv1)
    set_versions(context, "TLS12", None)
    assert context.security_level == fresh.security_level > 0
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    set_versions(context, "TLS11", None, "ECDHE-RSA-AES128-SHA")
    set_versions(context, None, None, "ECDHE-RSA-AES128-GCM-SHA256")
    assert context.security_level == fresh.security_level


def test_versions_left_out_are_a_fresh_contexts_not_the_ones_set_before() -> None:
    """A version not given is Python's default again, not the one an earlier call set."""
    fresh = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    set_versions(context, "TLS10", "TLS12")
    set_versions(context, None, None)
    assert (context.minimum_version, context.maximum_version) == (
        fresh.minimum_version,
        fresh.maximum_version,
    )
    assert [c["name"] for c in context.get_ciphers()] == [c["name"] for c in fresh.get_ciphers()]


# OpenSSL's reasons for a certificate and a key that each loaded but are not a pair.
NOT_A_PAIR = {"KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"}


def _ssl_loads(load: Callable[[ssl.SSLContext], None]) -> bool:
    """Whether ``load`` gets through on a fresh client context (a pair refused as not a pair
    having read both files)."""
    try:
        load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    except ssl.SSLError as exc:
        return exc.reason in NOT_A_PAIR
    except OSError:
        return False
    return True


@pytest.mark.parametrize("kind", ["ca_file", "cert_file", "key"])
def test_a_file_is_refused_exactly_when_ssl_does_not_load_it(
    tmp_path: Path, kind: Literal["ca_file", "cert_file", "key"]
) -> None:
    """Every test file (CAs, certificates and keys, TRUSTED CERTIFICATE and OpenSSH forms, DER,
    text, a folder, none) is refused as a CA file, a certificate file or a key exactly when
    Python's ssl does not load it as that (load_verify_locations, load_cert_chain beside a good
    key or certificate): never a file ssl loads, never one it refuses."""
    files = pem_files(tmp_path)
    loaders: dict[str, Callable[[str], Callable[[ssl.SSLContext], None]]] = {
        "ca_file": lambda path: lambda context: context.load_verify_locations(cafile=path),
        "cert_file": lambda path: (
            lambda context: context.load_cert_chain(path, files["client.key"], b"")
        ),
        "key": lambda path: lambda context: context.load_cert_chain(files["client.pem"], path, b""),
    }
    judged = {name: pem_file_problem(path, kind) is None for name, path in files.items()}
    loaded = {name: _ssl_loads(loaders[kind](path)) for name, path in files.items()}
    assert judged == loaded
    assert any(loaded.values())
    assert not all(loaded.values())
