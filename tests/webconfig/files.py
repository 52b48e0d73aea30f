"""Throwaway CAs, certificates, bcrypt hashes and web config files for the TLS and auth tests."""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path

import bcrypt
import trustme

__all__ = ["WebFiles", "basic", "bcrypt_hash"]


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """A bcrypt hash of ``password`` (cost 4, the least bcrypt takes: tests need no strength)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


def basic(user: str, password: str) -> str:
    """The ``Authorization`` header value of basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class WebFiles:
    """A folder with a server certificate (for 127.0.0.1) from one CA, and a client CA."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.client_ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.client_ca_file = folder / "client-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.client_ca.cert_pem.write_to_path(str(self.client_ca_file))
        self.serve_from(self.ca)

    def serve_from(self, ca: trustme.CA) -> None:
        """(Re)write server.pem and server.key with a certificate for 127.0.0.1 signed by ``ca``."""
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        _replace(self.folder / "server.pem", leaf.cert_chain_pems[0].bytes())
        _replace(self.folder / "server.key", leaf.private_key_pem.bytes())

    def client_cert(self, ca: trustme.CA | None = None, name: str = "client") -> trustme.LeafCert:
        """A client certificate signed by ``ca`` (the client CA by default)."""
        return (ca or self.client_ca).issue_cert(f"{name}@example.test")

    def write(self, text: str, name: str = "web.yml") -> Path:
        """Write a web config file as deployments do (a new file renamed over the old one)."""
        path = self.folder / name
        _replace(path, text.encode())
        return path

    def tls_config(self, extra: str = "") -> str:
        """A ``tls_server_config`` block with the server files (relative paths) and ``extra``."""
        lines = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
        return lines + "".join(f"  {line}\n" for line in extra.splitlines() if line)

    def client_context(
        self, cert: trustme.LeafCert | None = None, ca: trustme.CA | None = None
    ) -> ssl.SSLContext:
        """A client context trusting ``ca`` (the server's CA) and presenting ``cert`` if given."""
        context = ssl.create_default_context()
        (ca or self.ca).configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context


def _replace(path: Path, content: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)
