"""Receivers' outbox keys: the origin shown, the path hidden, a digest keyed by the outbox."""

from __future__ import annotations

import hashlib

from bridge.receiver_keys import ReceiverKeys, receiver_label


def test_a_receiver_key_shows_the_origin_and_hides_the_path() -> None:
    """The key holds the URL as safe_url shows it and a digest of the whole URL: no token, and
    two webhooks at one origin have two keys."""
    keys = ReceiverKeys(b"k" * 32)
    one = keys.key(url="https://u:pw@hooks.example.com/services/tok3n-a")
    other = keys.key(url="https://u:pw@hooks.example.com/services/tok3n-b")
    assert one != other
    assert one.startswith("https://u:<redacted>@hooks.example.com/…#")
    assert "tok3n" not in one + other
    assert receiver_label(one) == one
    assert keys.key(url_file="/run/secrets/url") == "url_file:/run/secrets/url"


def test_a_receiver_keys_digest_cannot_be_guessed_without_the_outboxs_secret() -> None:
    """The digest is keyed by the outbox's secret: the same URL has the same key under one
    secret, another under another, and neither is the unkeyed SHA-256 a guesser could check a
    short token against; that older key and the raw URL are the receiver's legacy keys."""
    url = "https://hooks.example.com/t/1234"
    first, second = ReceiverKeys(b"a" * 32), ReceiverKeys(b"b" * 32)
    assert first.key(url=url) == first.key(url=url)
    assert first.key(url=url) != second.key(url=url)
    unkeyed = hashlib.sha256(url.encode()).hexdigest()[:16]
    assert first.key(url=url).rpartition("#")[2] != unkeyed
    assert first.earlier(url) == (url, f"https://hooks.example.com/…#{unkeyed}")
    assert "secret" not in repr(first).replace("<secret>", "")


def test_a_user_name_alone_is_kept_out_of_the_key_and_its_earlier_key_is_found() -> None:
    """A token given as the URL's user name (``https://tok3n@host``) is in no key or label; the
    key it had while safe_url showed that name is among its earlier keys, for its rows to move."""
    url = "https://tok3n@hooks.example.com/x"
    keys = ReceiverKeys(b"a" * 32)
    key = keys.key(url=url)
    assert key.startswith("https://<redacted>@hooks.example.com/…#")
    assert "tok3n" not in key + receiver_label(key)
    digest = key.rpartition("#")[2]
    assert f"https://tok3n:<redacted>@hooks.example.com/…#{digest}" in keys.earlier(url)


def test_a_raw_url_key_from_an_old_outbox_is_shown_redacted() -> None:
    """A key written before receiver keys (the raw URL) is shown as safe_url shows URLs."""
    assert receiver_label("https://hooks.example.com/tok3n") == "https://hooks.example.com/…"


def test_a_url_with_an_at_past_its_host_is_keyed_without_its_host_and_its_earlier_key_found() -> (
    None
):
    """A password with an unencoded ``/`` before its ``@`` shows no piece of itself in the key
    (not even as the host); the key it had while safe_url showed that host is among its
    earlier keys, for its rows to move."""
    url = "https://u:pa@ss/word@hooks.example.com/x"
    keys = ReceiverKeys(b"a" * 32)
    key = keys.key(url=url)
    assert key.startswith("https://<redacted>@…#")
    assert "ss" not in key.removeprefix("https://") + receiver_label(key).removeprefix("https://")
    digest = key.rpartition("#")[2]
    assert f"https://u:<redacted>@ss/…#{digest}" in keys.earlier(url)


def test_a_path_typed_with_backslashes_is_kept_out_of_the_key_and_its_earlier_key_found() -> None:
    """A path written with backslashes (``hooks.example\\services\\<token>``, which urlsplit
    reads as the host's) is in no key or label; the key it had while safe_url showed it as the
    host is among its earlier keys, for its rows to move."""
    url = "https://hooks.example.com\\services\\T0\\tok3n"
    keys = ReceiverKeys(b"a" * 32)
    key = keys.key(url=url)
    digest = key.rpartition("#")[2]
    assert key == f"https://hooks.example.com/…#{digest}"
    assert "tok3n" not in key + receiver_label(key, userinfo=False)
    assert f"https://hooks.example.com\\services\\t0\\tok3n#{digest}" in keys.earlier(url)


def test_the_pages_label_shows_no_user_info_for_any_key() -> None:
    """As the pages show it, a key holds the origin and the digest only: no user name, no
    password marker, whatever form the key took (this version's, an earlier version's with the
    user name, a raw URL, an ambiguous URL); a url_file key stays as it is."""
    keys = ReceiverKeys(b"a" * 32)
    for url in (
        "https://alice:pw@hooks.example.com:8443/x",
        "https://tok3n@hooks.example.com:8443/x",
    ):
        digest = keys.key(url=url).rpartition("#")[2]
        shown = f"https://hooks.example.com:8443/…#{digest}"
        assert receiver_label(keys.key(url=url), userinfo=False) == shown
        # The keys made with this digest while safe_url showed the user name.
        for earlier in keys.earlier(url)[2:]:
            assert receiver_label(earlier, userinfo=False) == shown
    assert receiver_label("https://tok3n@hooks.example.com/x", userinfo=False) == (
        "https://hooks.example.com/…"
    )
    ambiguous = keys.key(url="https://u:pa@ss/word@hooks.example.com/x")
    assert receiver_label(ambiguous, userinfo=False) == "https://…#" + ambiguous[-16:]
    assert receiver_label("url_file:/run/secrets/url", userinfo=False) == (
        "url_file:/run/secrets/url"
    )
