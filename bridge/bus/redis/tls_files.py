"""The TLS files a rediss:// URL names in its query, judged as redis-py will load them.

redis-py reads ``?ssl_ca_certs=FILE``, ``ssl_certfile``, ``ssl_keyfile`` and ``ssl_ca_path``
(a folder) only as it connects, and a file it cannot load fails every connection with the
system's or OpenSSL's words (``No such file or directory``), which read as Redis unreachable. So
``EXESDB_BUS``'s check at start refuses them (``bridge.settings_checks``), and the transport's
retries, when a file fine at start has gone or changed before its first connection loaded it,
say the file rather than "unreachable" (``link.py``); ``TLSRotation`` judges a changed one.
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Mapping
from typing import Any, Final, Literal

from redis.asyncio.connection import parse_url  # as the transport's from_url reads the URL

from bridge.tlsutil import (
    KEY_NOT_THE_CERTIFICATES,
    cert_chain_error,
    load_error,
    pem_certificates,
    pem_file_problem,
)

__all__ = ["pem_files_named", "tls_file_problems"]

# The query options redis-py reads a PEM file from, by the kind of PEM each must hold.
_PEM_FILES: Final[Mapping[str, Literal["ca_file", "cert_file", "key"]]] = {
    "ssl_ca_certs": "ca_file",  # load_verify_locations(cafile=…)
    "ssl_certfile": "cert_file",  # load_cert_chain
    "ssl_keyfile": "key",
}


def pem_files_named(url: str) -> dict[str, str]:
    """The PEM files ``url``'s query names, by query option (none for a URL that does not
    parse: ``EXESDB_BUS``'s own check refuses it)."""
    try:
        options: Mapping[str, Any] = parse_url(url)
    except ValueError:
        return {}
    return {option: str(options[option]) for option in _PEM_FILES if options.get(option)}


def tls_file_problems(url: str) -> list[str]:
    """What would keep redis-py from loading the TLS files ``url``'s query names, one line each
    naming the query option and the file (``query option 'ssl_ca_certs': cannot read /ca.pem:
    No such file or directory``), never the URL; [] when they load, or none is named (a
    redis:// URL names none: ``EXESDB_BUS``'s own check refuses TLS options there).

    Each file is checked as ``bridge.tlsutil.pem_file_problem`` checks one, and an
    ``ssl_ca_path`` is to be a folder; a key must come with its certificate (redis-py loads no
    key alone), and, encrypted, with ``ssl_password``. Then the certificate and key are loaded
    together, as redis-py loads them: a key that is not the certificate's, or a pass phrase
    that does not open it, is told too. ``ssl_ca_data`` (PEM given in the query) must load.
    """
    try:
        options: Mapping[str, Any] = parse_url(url)
    except ValueError:  # EXESDB_BUS's own check refuses it
        return []
    problems = []
    password = options.get("ssl_password")
    encrypted = None if password else "give ssl_password too, or the key unencrypted"
    for option, kind in _PEM_FILES.items():
        path = options.get(option)
        if path and (problem := pem_file_problem(path, kind, if_encrypted=encrypted)) is not None:
            problems.append(f"query option {option!r}: {problem}")
    if (folder := options.get("ssl_ca_path")) and (problem := _folder_problem(folder)):
        problems.append(f"query option 'ssl_ca_path': {problem}")
    if options.get("ssl_ca_data"):
        try:
            pem_certificates(options["ssl_ca_data"])
        except ValueError as exc:
            problems.append(f"query option 'ssl_ca_data': {exc}")
    if options.get("ssl_keyfile") and not options.get("ssl_certfile"):
        problems.append(
            "query option 'ssl_keyfile' without 'ssl_certfile': redis-py loads a key only with"
            " its certificate; give that as ssl_certfile"
        )
    if not problems and options.get("ssl_certfile"):
        problems += _chain_problems(options)
    return problems


def _folder_problem(path: str) -> str | None:
    """What is wrong with ``path`` as ``ssl_ca_path``, a folder of CA certificates by hash:
    OpenSSL takes a missing one without a word, and then trusts none of them."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"cannot read {path}: {load_error(exc)}"
    if not stat.S_ISDIR(mode):
        return f"{path} is not a folder (of CA certificates by hash, as openssl rehash makes it)"
    return None


def _chain_problems(options: Mapping[str, Any]) -> list[str]:
    """Why the client certificate and key, each a PEM file of its kind, do not load together
    as redis-py loads them, in one line; [] when they do."""
    cert_file, key_file = options["ssl_certfile"], options.get("ssl_keyfile")
    password = options.get("ssl_password")
    try:
        # Never None: OpenSSL would ask for a pass phrase at the terminal.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            cert_file, key_file, password or b""
        )
    except (OSError, ssl.SSLError) as exc:
        named = (
            "query options 'ssl_certfile' and 'ssl_keyfile'"
            if key_file
            else "query option 'ssl_certfile'"
        )
        key_in = key_file or cert_file  # without ssl_keyfile, the key is read from the same
        if isinstance(exc, ssl.SSLError) and exc.reason in KEY_NOT_THE_CERTIFICATES:
            return [f"{named}: the key in {key_in} is not the certificate's in {cert_file}"]
        if (
            password
            and isinstance(exc, ssl.SSLError)
            and pem_file_problem(key_in, "key", if_encrypted=None) is None
        ):
            # Both files hold PEM of their kind: OpenSSL's "PEM lib" is the pass phrase.
            return [f"{named}: the key in {key_in} does not open with ssl_password"]
        return [f"{named}: {cert_chain_error(exc, cert_file=cert_file, key_file=key_in)}"]
    return []
