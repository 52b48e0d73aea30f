"""Certificate and key files, good and bad, for the tests of TLS settings."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final


@cache
def rsa_key_pem() -> bytes:
    """An RSA private key as PEM (PKCS#8), another type than trustme's EC keys; one per
    process (a new one takes 60 ms)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_files(directory: Path) -> dict[str, str]:
    """Certificate and key files of every kind, good and bad, in ``directory``, by name:
    ``client.key`` is ``client.pem``'s key (EC), ``other.key`` another certificate's,
    ``rsa.key`` an RSA key (another type), ``encrypted.key`` is ``client.key`` under the pass
    phrase ``pass phrase``, and ``labelled-ca.pem`` is ``ca.pem`` after a label in UTF-8, as
    p11-kit writes a system bundle; ``trusted-ca.pem`` and ``trusted-client.pem`` are ``ca.pem``
    and ``client.pem`` as ``openssl x509 -trustout`` writes them (``-----BEGIN TRUSTED
    CERTIFICATE-----``), ``openssh.key`` is ``client.key`` in OpenSSH's own format."""
    import trustme
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import load_pem_x509_certificate

    ca = trustme.CA()
    leaf = ca.issue_cert("exesdb-bridge")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    der = load_pem_x509_certificate(ca.cert_pem.bytes()).public_bytes(serialization.Encoding.DER)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass phrase"),
    )
    contents = {
        "ca.pem": ca.cert_pem.bytes(),
        "client.pem": leaf.cert_chain_pems[0].bytes(),
        "client.key": leaf.private_key_pem.bytes(),
        "other.key": ca.issue_cert("another").private_key_pem.bytes(),
        "combined.pem": leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes(),
        "rsa.key": rsa_key_pem(),
        "labelled-ca.pem": "# Főtanúsítvány\n".encode() + ca.cert_pem.bytes(),
        "ca.der": der,
        "encrypted.key": encrypted,
        "notes.txt": b"not a certificate\n",
        "trusted-ca.pem": _trusted(ca.cert_pem.bytes()),
        "trusted-client.pem": _trusted(leaf.cert_chain_pems[0].bytes()),
        "openssh.key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    }
    files = {name: str(directory / name) for name in contents}
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    files["missing.pem"] = str(directory / "missing.pem")
    files["directory"] = str(directory)
    return files


# The names damaged_ca_files writes, for tests parametrized over them.
DAMAGED_CA_NAMES: Final = (
    "bad-base64.pem",
    "bad-der.pem",
    "cut-short.pem",
    "no-end.pem",
    "no-end-then-key.pem",
    "bad-crl.pem",
)


def damaged_ca_files(directory: Path) -> dict[str, tuple[str, str]]:
    """CA files in ``directory`` that OpenSSL refuses though each holds a PEM certificate, by
    name, each with what a refusal says of it: a good CA then one whose base64 is broken (line
    2 of the second), a labelled one whose base64 reads but is no certificate (DER), a TRUSTED
    CERTIFICATE cut short (a line of its base64 lost), a good CA then one whose END line was
    lost (a file or a paste cut off), one so cut off before a key and a good CA, and a good CA
    beside a damaged CRL."""
    import base64

    files = pem_files(directory)
    ca = Path(files["ca.pem"]).read_text()
    lines = ca.splitlines(keepends=True)
    broken = "".join([lines[0], "!" + lines[1][1:], *lines[2:]])
    not_der = f"{lines[0]}{base64.b64encode(b'no DER here!').decode()}\n{lines[-1]}"
    trusted = _trusted(ca.encode()).decode().splitlines(keepends=True)
    damaged = "holds a PEM certificate that cannot be read"
    contents = {
        "bad-base64.pem": (
            ca + broken,
            f"{damaged} (line {len(lines) + 1}: its base64 is damaged)",
        ),
        "bad-der.pem": (
            "# our CA\n" + not_der,
            f"{damaged} (line 2: its DER is no X.509 certificate)",
        ),
        "cut-short.pem": (
            "".join(trusted[:2] + trusted[3:]),
            f"{damaged} (line 1: its DER is no X.509 certificate)",
        ),
        "no-end.pem": (
            ca + "".join(lines[:-1]),
            f"{damaged} (line {len(lines) + 1}: no -----END CERTIFICATE----- line after it)",
        ),
        "no-end-then-key.pem": (
            "".join(lines[:-1]) + Path(files["client.key"]).read_text() + ca,
            f"{damaged} (line 1: no -----END CERTIFICATE----- line after it)",
        ),
        "bad-crl.pem": (
            ca + "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            "cannot be read by OpenSSL (PEM lib), though each PEM certificate in it reads alone",
        ),
    }
    for name, (text, _) in contents.items():
        (directory / name).write_text(text)
    return {name: (str(directory / name), said) for name, (_, said) in contents.items()}


def _trusted(certificate: bytes) -> bytes:
    """``certificate`` (PEM) as ``openssl x509 -trustout`` writes one with no trust settings:
    the same body under OpenSSL's own label."""
    return certificate.replace(b" CERTIFICATE-----", b" TRUSTED CERTIFICATE-----")
