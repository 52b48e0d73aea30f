"""What the bridge's TLS server and its clients share: Go's version names and how errors read.

The web config file's ``tls_server_config`` and the receivers file's client ``tls_config`` name
versions as Go's ``crypto/tls`` does (``TLS12``) and may give a CA, certificate or key inline, as
PEM; a certificate or key that will not load is told by OpenSSL's reason (or the system's, for a
file), never by the file's content. ``set_versions`` sets both sides' versions, so that TLS 1.0
and 1.1, when a file asks for them, really negotiate. ``pem_file_problem`` judges a certificate or
key file another library will read (the OTLP exporters', redis-py's), before it does and as it
loads it, and ``cert_chain_error`` names the file at fault where OpenSSL's reason is only "PEM
lib"; ``ca_file_refusal`` says why a CA file OpenSSL refused will not do (no PEM certificate,
or one damaged).
``stamp_files`` tells when a certificate, key or CA file changed (the web config's reload, the
Redis bus's TLS files).
"""

from __future__ import annotations

import binascii
import hashlib
import os
import re
import ssl
import warnings
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Final, Literal

from bridge.regular_files import MAX_FILE_BYTES, open_regular, read_bounded, refuse_irregular

__all__ = [
    "KEY_NOT_THE_CERTIFICATES",
    "TLS_VERSIONS",
    "Stamp",
    "ca_file_refusal",
    "cert_chain_error",
    "certificate_problem",
    "load_cert_chain",
    "load_error",
    "pem_certificates",
    "pem_file_problem",
    "set_versions",
    "stamp_file",
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
# The label of each PEM block (-----BEGIN CERTIFICATE-----).
_PEM_BLOCK: Final = re.compile(r"-----BEGIN ([A-Z0-9 .]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PEM_BEGIN: Final = re.compile(r"-----BEGIN ([A-Z0-9 .]+)-----")
# One PEM block whose body holds no other's lines (base64 has no "-"): a block cut off before
# its END line is not read on into the next (a private key between, maybe) up to its END.
_WHOLE_PEM_BLOCK: Final = re.compile(r"-----BEGIN ([A-Z0-9 .]+)-----\r?\n[^-]*-----END \1-----")
# The certificates load_cert_chain reads in a certificate file: OpenSSL's first (the
# certificate) as PEM_read_bio_X509_AUX reads it, the TRUSTED CERTIFICATE of `openssl x509
# -trustout` too, as a CA file takes them all.
_CERTIFICATE_LABELS: Final = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})
_OPENSSH_KEY: Final = "OPENSSH PRIVATE KEY"
# A self-signed certificate whose key was thrown away: OpenSSL loads a private key only beside
# a certificate, and one that is not the key's (KEY_NOT_THE_CERTIFICATES) shows that it loaded.
# Its dates do not matter: loading a certificate checks none.
_THROWAWAY_CERTIFICATE: Final = """\
-----BEGIN CERTIFICATE-----
MIIBfDCCASOgAwIBAgIUBCpk5cGjXXX8CZ8mVgsMDIV1iVswCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJa2V5LWNoZWNrMB4XDTI2MTIwNTA4MjgwNVoXDTI2MTIwNjA4
MjgwNVowFDESMBAGA1UEAwwJa2V5LWNoZWNrMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEFDZip7WmlZuyut2ZzqVQnO/a6nVCye2Bs/8pMugFwriHr1JGQ2K6qEU+
I5SiUqBZTxQDKwYBrQDWP4flr61Iv6NTMFEwHQYDVR0OBBYEFJOUxgzE2wFLDDb6
a5mwcgTx4BCtMB8GA1UdIwQYMBaAFJOUxgzE2wFLDDb6a5mwcgTx4BCtMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgI35zit3SkEvIPias8jswN8Dk
Pc6aNFcviU/1ul2Qy7cCIFogBDyXTSxoBjWQtO+zRc/x/n1TPWqrNYJISiOC1sLZ
-----END CERTIFICATE-----
"""


def pem_file_problem(
    path: str,
    kind: Literal["ca_file", "cert_file", "key"],
    *,
    if_encrypted: str | None = "give it unencrypted",
) -> str | None:
    """What is wrong with ``path`` as a file of PEM of ``kind``, in a few words naming the path;
    None when it will do. Each kind is judged as its reader loads it, so that what that reader
    loads is never refused here, and what it refuses never taken:

    - ``ca_file``: CA certificates, as Python's ``ssl`` loads a CA file
      (``load_verify_locations(cafile=…)``: redis-py's ``ssl_ca_certs``, a receiver's
      ``tls_config.ca_file``), among other text, OpenSSL's ``TRUSTED CERTIFICATE`` too (as
      grpcio reads the OTLP exporter's CA);
    - ``cert_file``: a certificate (chain), as ``load_cert_chain`` loads its certificate file;
    - ``key``: a private key, as ``load_cert_chain`` loads its key file; encrypted, it is told
      with ``if_encrypted`` said of it (the OTLP exporters take no pass phrase), or, None, will
      do unread (its pass phrase is given, and loading it with its certificate tells the rest).

    Missing, unreadable or a directory is told by the system's reason, a file over
    ``MAX_FILE_BYTES`` by its size (read no further).
    """
    try:
        data = read_bounded(path, MAX_FILE_BYTES)
    except OSError as exc:
        return f"cannot read {path}: {load_error(exc)}"
    # OpenSSL reads PEM among any other text, such as a bundle's labels in UTF-8 (p11-kit's):
    # its blocks are looked for in ASCII, each other byte a "?" (DER and other binary hold none).
    text = data.decode("latin-1").encode("ascii", "replace").decode("ascii")
    if kind == "key":
        return _key_problem(path, text, if_encrypted)
    if kind == "cert_file":
        no_certificate = (
            f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----) OpenSSL loads"
        )
        return _cert_file_problem(text, no_certificate)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError:  # none, or one damaged: told as the client commands' --cacert is
        return f"{path} {ca_file_refusal(path)}"
    except OSError as exc:  # gone since it was read
        return f"cannot read {path}: {load_error(exc)}"
    return None


def ca_file_refusal(path: str) -> str:
    """Why the CA file ``path``, which OpenSSL refused, will not do, in a few words: it holds no
    PEM certificate (none between BEGIN and END lines), else the line of the first one OpenSSL
    cannot read alone, its base64 or its DER damaged, or of one cut short before its END line
    (OpenSSL says only "PEM lib" of each)."""
    try:
        text = read_bounded(path, MAX_FILE_BYTES).decode("latin-1")
    except OSError as exc:  # gone since OpenSSL read it
        return load_error(exc)
    begun = [begin for begin in _PEM_BEGIN.finditer(text) if begin[1] in _CERTIFICATE_LABELS]
    if not begun:
        return "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    blocks = [block for block in _WHOLE_PEM_BLOCK.finditer(text) if block[1] in _CERTIFICATE_LABELS]
    damaged = "holds a PEM certificate that cannot be read"
    for block in blocks:
        line = text.count("\n", 0, block.start()) + 1
        # Between the BEGIN and END lines, without the line ends and blanks OpenSSL passes over.
        base64 = re.sub(r"[ \t\r\n]", "", block[0].split("-----")[2])
        try:
            binascii.a2b_base64(base64, strict_mode=True)
        except binascii.Error:
            return f"{damaged} (line {line}: its base64 is damaged)"
        try:
            with _in_memory(block[0]) as alone:  # ASCII: its base64 read
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=alone)
        except ssl.SSLError:
            return f"{damaged} (line {line}: its DER is no X.509 certificate)"
        except OSError:  # no in-memory file (not Linux): its base64 read, said no further
            return damaged
    for begin in begun:
        if not any(block.start() <= begin.start() < block.end() for block in blocks):
            line = text.count("\n", 0, begin.start()) + 1  # a file cut short, a paste cut off
            return f"{damaged} (line {line}: no -----END {begin[1]}----- line after it)"
    return "cannot be read by OpenSSL (PEM lib), though each PEM certificate in it reads alone"


def certificate_problem(cert_file: str | None, cert: str | None) -> str | None:
    """What keeps the certificate (chain) of ``cert_file``, else of ``cert`` given inline, from
    loading as ``load_cert_chain`` loads it, in a few words (naming the file); None when it
    loads. Its key is not read: a client of the server checks what it can read."""
    if cert_file:
        return pem_file_problem(cert_file, "cert_file")
    no_certificate = "holds no PEM certificate (-----BEGIN CERTIFICATE-----) OpenSSL loads"
    return _cert_file_problem(cert or "", no_certificate)


def _cert_file_problem(text: str, no_certificate: str) -> str | None:
    """``no_certificate`` when ``text`` holds no certificate ``load_cert_chain`` loads from its
    certificate file, else None."""
    # Only the certificates, loaded as a CA file's: that reader would refuse a key OpenSSL
    # cannot read (an OpenSSH one), which load_cert_chain passes over to find the certificate.
    labelled = _PEM_BLOCK.finditer(text)
    blocks = [block[0] for block in labelled if block[1] in _CERTIFICATE_LABELS]
    if not blocks:
        return no_certificate
    try:
        with _in_memory("\n".join(blocks)) as certificates:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=certificates)
    except ssl.SSLError:
        return no_certificate
    except OSError:
        pass  # no in-memory file (not Linux): the certificate's load tells
    return None


def _key_problem(path: str, text: str, if_encrypted: str | None) -> str | None:
    """What is wrong with ``path``, reading ``text``, as ``load_cert_chain``'s key file (see
    ``pem_file_problem``)."""
    labels = {block[1] for block in _PEM_BLOCK.finditer(text) if block[1].endswith("PRIVATE KEY")}
    if labels == {_OPENSSH_KEY}:
        return (
            f"{path} holds an OpenSSH private key (-----BEGIN {_OPENSSH_KEY}-----), which"
            " OpenSSL does not load: give a PEM private key (-----BEGIN PRIVATE KEY-----;"
            " ssh-keygen -p -m PEM converts an RSA or ECDSA one)"
        )
    if not labels:
        return f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
    if "ENCRYPTED PRIVATE KEY" in labels or "Proc-Type: 4,ENCRYPTED" in text:
        return (
            None
            if if_encrypted is None
            else f"{path} holds an encrypted private key: {if_encrypted}"
        )
    try:
        with _in_memory(_THROWAWAY_CERTIFICATE) as certificate:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(certificate, path, b"")
    except ssl.SSLError as exc:
        if exc.reason not in KEY_NOT_THE_CERTIFICATES:  # else it loaded
            return f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----) OpenSSL loads"
    except OSError:
        pass  # no in-memory file (not Linux), or the file gone since: its load tells
    return None


def cert_chain_error(
    exc: OSError | ssl.SSLError, *, cert_file: str | None, key_file: str | None
) -> str:
    """Why ``load_cert_chain`` refused a certificate and its key, in a few words: the file at
    fault when one holds no PEM certificate or private key, or an encrypted key (for each of
    which OpenSSL says only "PEM lib"), or that the key is not the certificate's; else as
    ``load_error`` says. Files given inline (None here) are told by OpenSSL's reason."""
    if isinstance(exc, ssl.SSLError):
        files: tuple[tuple[str | None, Literal["cert_file", "key"]], ...] = (
            (cert_file, "cert_file"),
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
    for path in (cert_file, key_file):
        if path:
            refuse_irregular(path)  # OpenSSL's open of a FIFO would wait for a writer
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


def stamp_files(names: Iterable[str], *, limit: int | None = None) -> Stamp:
    """Each file of ``names`` read and hashed (a few KiB each), to tell when one changes (file
    times can miss a quick rewrite); with ``limit``, as ``stamp_file`` reads each."""
    return tuple(stamp_file(name, limit=limit) for name in names)


def stamp_file(name: str, *, limit: int | None = None) -> tuple[object, ...]:
    """The file ``name`` read and hashed, as ``stamp_files`` stamps each; with ``limit``, its
    first ``limit + 1`` bytes at most (a reader refusing a file over ``limit`` bytes needs no
    more to tell it changed)."""
    try:
        with open_regular(name) as file:
            content = file.read() if limit is None else file.read(limit + 1)
    except OSError:
        return (name,)
    return (name, hashlib.sha256(content).digest())
