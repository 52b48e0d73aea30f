"""The outbox key of each webhook receiver: its URL shown safely with a keyed digest, or its file.

A receiver's **key** is what the outbox keeps its queue and deliveries under: the shown form of
its URL (``bridge.redaction.safe_url``) and a digest of the whole URL, e.g.
``https://hooks.example:8443/…#3f0c1e2a9b7d4c55``, or ``url_file:<path>`` for a URL read from a
file (so that rotating that file keeps the key), the path made absolute without ``..`` but with
its links kept (a secret volume rotates by swapping a link), so spelling it another way keeps the
key too. It never holds a secret, and editing anything
else (credentials, TLS, timeouts, filters) keeps it, so pending deliveries are never lost. The
digest is an HMAC under a random key of the outbox (``ReceiverKeys``), never shown: keys appear
in logs, pages and NotificationStatus, and an unkeyed hash would let a short token in a URL's
path be guessed offline. Keys made before (the raw URL, then a SHA-256 of it) are
``ReceiverKeys.earlier``, as are the paths of url_file receivers as spelled before
(``ReceiverKeys.spellings``); the outbox moves their rows to the key at start
(``DeliveryQueue.move_receiver_rows``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from typing import Final

from bridge.redaction import safe_url, safe_url_or_key

__all__ = ["FILE_KEY_PREFIX", "ReceiverKeys", "receiver_label"]

FILE_KEY_PREFIX: Final = "url_file:"
"""What the key of a receiver whose URL is read from a file starts with."""


def _same_file(spelled: str, path: str) -> bool:
    """Whether ``spelled`` names the file at ``path``: the same path once made absolute, or the
    same file while both exist (one through a link)."""
    if os.path.abspath(spelled) == path:
        return True
    try:
        return os.path.samefile(spelled, path)
    except OSError:
        return False


class ReceiverKeys:
    """Makes receivers' outbox keys (see the module docstring); ``secret`` is the outbox's own
    key, never shown."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def throwaway(cls) -> ReceiverKeys:
        """Keys under a random secret, for checks that only compare keys (``check-config``)."""
        return cls(secrets.token_bytes(32))

    def key(self, *, url: str | None = None, url_file: str | None = None) -> str:
        """The outbox key of the receiver at ``url`` (or whose URL is in ``url_file``)."""
        if url_file:
            # Links kept: Kubernetes rotates a secret volume by swapping a link to a new folder,
            # and the key must outlive that.
            return FILE_KEY_PREFIX + os.path.abspath(url_file)
        if not url:
            raise ValueError("a receiver needs url or url_file")
        return f"{safe_url(url)}#{self._digest(url)}"

    def earlier(self, url: str | None) -> tuple[str, ...]:
        """The keys earlier versions gave the receiver at ``url``: the raw URL (version 2),
        ``safe_url`` and an unkeyed SHA-256 of it (version 3), and this key as it read while
        ``safe_url`` still showed a user name alone, the host of a URL with an ``@`` past it, or
        a host up to any character but RFC 3986's sub-delims (a path typed with backslashes)
        (``safe_url``'s ``as_before``)."""
        if not url:
            return ()
        shown = safe_url(url, lone_user=True, as_before=True)
        keys = [url, f"{shown}#{hashlib.sha256(url.encode()).hexdigest()[:16]}"]
        now = safe_url(url)
        for before in dict.fromkeys((shown, safe_url(url, as_before=True))):
            if before != now:
                keys.append(f"{before}#{self._digest(url)}")
        return tuple(keys)

    @staticmethod
    def spellings(key: str, stored: Iterable[str]) -> tuple[str, ...]:
        """The keys among ``stored`` that name the file of the url_file receiver of ``key``
        spelled another way, as earlier versions keyed it (relative, with ``..``, or through a
        link): a relative one is read from the working directory."""
        if not key.startswith(FILE_KEY_PREFIX):
            return ()
        path = key.removeprefix(FILE_KEY_PREFIX)
        return tuple(
            other
            for other in sorted(stored)
            if other != key
            and other.startswith(FILE_KEY_PREFIX)
            and _same_file(other.removeprefix(FILE_KEY_PREFIX), path)
        )

    def _digest(self, url: str) -> str:
        return hmac.new(self._secret, url.encode(), hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return "ReceiverKeys(<secret>)"


def receiver_label(key: str, *, userinfo: bool = True) -> str:
    """How an outbox key is shown: a receiver key as it is (it holds no secret); a key from
    before receiver keys (the raw URL) as ``safe_url`` shows it. ``userinfo`` False (the pages):
    a URL's user info left out, its marker too, the digest kept (``safe_url_or_key``)."""
    if key.startswith(FILE_KEY_PREFIX):
        return key
    return safe_url_or_key(key, userinfo=userinfo)
