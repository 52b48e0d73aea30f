"""What the bridge's TLS server and its clients share: Go's version names and how errors read.

The web config file's ``tls_server_config`` and the receivers file's client ``tls_config`` name
versions as Go's ``crypto/tls`` does (``TLS12``) and may give a CA, certificate or key inline, as
PEM; a certificate or key that will not load is told by OpenSSL's reason (or the system's, for a
file), never by the file's content. ``set_versions`` sets both sides' versions, so that TLS 1.0
and 1.1, when a file asks for them, really negotiate. ``pem_file_problem`` judges a certificate or
key file another library will read (the OTLP exporters', redis-py's), before it does, and
``cert_chain_error`` names the file at fault where OpenSSL's reason is only "PEM lib".
``stamp_files`` tells when a certificate, key or CA file changed (the web config's reload, the
Redis bus's TLS files).
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import warnings
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "KEY_NOT_THE_CERTIFICATES",
    "TLS_VERSIONS",
    "Stamp",
    "cert_chain_error",
    "load_cert_chain",
    "load_error",
    "pem_certificates",
    "pem_file_problem",
    "set_versions",
    "stamp_files",
]

# (path, SHA-256 of its content) of each file, or (path,) for one that cannot be read.
Stamp = tuple[tuple[object, ...], ...]

TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The versions whose handshakes OpenSSL 3 refuses above security level 0 (they sign with SHA-1 or
# MD5+SHA-1): allowed only where a file names one as min_version.
_OLD_VERSIONS: Final = frozenset({"TLS10", "TLS11"})
# The suites of Go's default list that TLS 1.0 and 1.1 can use (AES-CBC with SHA-1), by OpenSSL's
# names: Python's default list holds none, so without them those versions find no cipher.
_OLD_VERSION_SUITES: Final = (
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
)


def set_versions(
    context: ssl.SSLContext, minimum: str | None, maximum: str | None, ciphers: str | None = None
) -> None:
    """Set ``context``'s TLS versions (Go's names; None: Python's default) and its TLS 1.2
    and older cipher list (OpenSSL's syntax; None: Python's defaults).

    A ``minimum`` of TLS10 or TLS11 also sets OpenSSL's security level 0 (``@SECLEVEL=0``), and
    adds to the default list the suites of Go's that those versions use: without both, OpenSSL 3
    (security level 1 or 2, Debian's default) finds no cipher for them, and the version the file
    allows is never spoken. That level also admits keys and signatures shorter than the default
    levels do, the price of those versions.

    Everything is set, a default included, so a context set again (the listening context when
    the web config file is read again) keeps nothing of the settings before: level 0 above all.
    """
    fresh = ssl.SSLContext(context.protocol)  # Python's defaults, as this system sets them
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0 and 1.1; a file naming them asks for them on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = TLS_VERSIONS[minimum] if minimum else fresh.minimum_version
        context.maximum_version = TLS_VERSIONS[maximum] if maximum else fresh.maximum_version
    old = minimum in _OLD_VERSIONS
    if ciphers is None:
        names = [
            cipher["name"] for cipher in fresh.get_ciphers() if cipher["protocol"] != "TLSv1.3"
        ]
        ciphers = ":".join(names + list(_OLD_VERSION_SUITES if old else ()))
    # Without @SECLEVEL, set_ciphers keeps the level the context had.
    context.set_ciphers(f"{ciphers}:@SECLEVEL={0 if old else fresh.security_level}")


def load_error(exc: OSError | ssl.SSLError) -> str:
    """Why a certificate, key or CA file did not load, in a few words."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


def pem_certificates(value: str | None) -> str | None:
    """``value`` when OpenSSL loads it as PEM CA certificates (a CA given inline), None when
    blank; ValueError otherwise (what a pydantic validator raises)."""
    if not value:
        return None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=value)
    except (ssl.SSLError, ValueError):
        raise ValueError(
            "must be PEM CA certificates (-----BEGIN CERTIFICATE----- …) that OpenSSL loads"
        ) from None
    return value


# OpenSSL's reasons when a certificate and a key that load each are not a pair: the same type,
# or a key of another type (RSA for an EC certificate), which it keeps for a certificate to come.
KEY_NOT_THE_CERTIFICATES: Final = frozenset({"KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"})
# A PEM private key block: PKCS#8 (PRIVATE KEY, ENCRYPTED PRIVATE KEY) or traditional (RSA, EC).
_PEM_KEY: Final = re.compile(r"-----BEGIN ((?:[A-Z]+ )*)PRIVATE KEY-----")


def pem_file_problem(
    path: str,
    kind: Literal["certificate", "key"],
    *,
    if_encrypted: str | None = "give it unencrypted",
) -> str | None:
    """What is wrong with ``path`` as a PEM ``certificate`` file (one or more, as OpenSSL loads
    them) or PEM private ``key`` file, in a few words naming the path; None when it will do.

    Missing, unreadable or a directory (the system's reason), not PEM (a DER file, anything
    else), or, for a key, encrypted, with ``if_encrypted`` said of it: the OTLP exporters take no
    pass phrase. None for ``if_encrypted``: an encrypted key will do (its pass phrase is given).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {load_error(exc)}"
    # OpenSSL reads PEM among any other text, such as a bundle's labels in UTF-8 (p11-kit's):
    # cadata takes ASCII only, so each other byte is a "?" (DER and other binary hold no PEM).
    text = data.decode("latin-1").encode("ascii", "replace").decode("ascii")
    if kind == "certificate":
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
        except (ssl.SSLError, ValueError):
            return f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----) OpenSSL loads"
        return None
    key = _PEM_KEY.search(text)
    if key is None:
        return f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
    if if_encrypted is not None and ("ENCRYPTED" in key[1] or "Proc-Type: 4,ENCRYPTED" in text):
        return f"{path} holds an encrypted private key: {if_encrypted}"
    return None


def cert_chain_error(
    exc: OSError | ssl.SSLError, *, cert_file: str | None, key_file: str | None
) -> str:
    """Why ``load_cert_chain`` refused a certificate and its key, in a few words: the file at
    fault when one holds no PEM certificate or private key, or an encrypted key (for each of
    which OpenSSL says only "PEM lib"), or that the key is not the certificate's; else as
    ``load_error`` says. Files given inline (None here) are told by OpenSSL's reason."""
    if isinstance(exc, ssl.SSLError):
        files: tuple[tuple[str | None, Literal["certificate", "key"]], ...] = (
            (cert_file, "certificate"),
            (key_file, "key"),
        )
        for path, kind in files:
            if path and (problem := pem_file_problem(path, kind)) is not None:
                return problem
        if exc.reason in KEY_NOT_THE_CERTIFICATES:
            return f"the key is not the certificate's ({exc.reason})"
    return load_error(exc)


def load_cert_chain(
    context: ssl.SSLContext,
    *,
    cert_file: str | None,
    cert: str | None,
    key_file: str | None,
    key: str | None,
) -> None:
    """Load a certificate (chain) and its key, each from its file or given inline (PEM).

    Python's ``ssl`` loads them from paths only, so inline PEM is handed over as an anonymous
    in-memory file (Linux ``memfd``): a key given inline never touches a disk. OSError or
    ssl.SSLError when they do not load; an encrypted key fails rather than prompting.
    """
    with ExitStack() as stack:
        cert_path = cert_file or stack.enter_context(_in_memory(cert or ""))
        key_path = key_file or stack.enter_context(_in_memory(key or ""))
        context.load_cert_chain(cert_path, key_path, password=b"")


@contextmanager
def _in_memory(text: str) -> Iterator[str]:
    """A path OpenSSL can open that reads ``text``, gone when the block ends."""
    if not hasattr(os, "memfd_create"):
        raise OSError("a certificate or key given inline needs Linux; give its file instead")
    fd = os.memfd_create("exesdb-tls", os.MFD_CLOEXEC)
    try:
        data = memoryview(text.encode())
        while data:  # a write may take less than all
            data = data[os.write(fd, data) :]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def stamp_files(names: Iterable[str]) -> Stamp:
    """Each file of ``names`` read and hashed (a few KiB each), to tell when one changes (file
    times can miss a quick rewrite)."""
    stamps: list[tuple[object, ...]] = []
    for name in names:
        try:
            content = Path(name).read_bytes()
        except OSError:
            stamps.append((name,))
        else:
            stamps.append((name, hashlib.sha256(content).digest()))
    return tuple(stamps)
