"""set_versions: what it sets, and that setting a context again keeps nothing of before."""

from __future__ import annotations

import ssl

import pytest

from bridge.tlsutil import set_versions


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
