"""Reading the web config file whole: its schema checked and its certificates loaded.

Without the serving side (aiohttp, prometheus_client): the health check reads the file with it.
The bridge reads it once at start (``judge``, kept by ``Settings.web_config``): the checks, the
warnings, ``check-config`` and the server's first version all take that one ``Judged``; only
the reloader (``bridge.webconfig.live``) reads the file again, when it changes. The client
commands and the health check judge it without the files only a server reads (``server_files``):
the key, often the bridge's user's alone, and the client CA.
"""

from __future__ import annotations

import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bridge.errors import ConfigError
from bridge.regular_files import MAX_FILE_BYTES
from bridge.tlsutil import Stamp, stamp_files
from bridge.webconfig.schema import TLSServerConfig, WebConfig, parse_web_config, tls_section
from bridge.webconfig.tls import served_problems, server_context
from bridge.yamlconfig import read_text_and_bytes, read_yaml

# Which of the files only a server reads (its key, the client CA) a reading reads: ``judge``.
_ServerFiles = Literal["all", "none", "readable"]

__all__ = [
    "Judged",
    "Loaded",
    "describe_web_config",
    "judge",
    "load",
    "tls_files",
]


@dataclass(frozen=True, slots=True)
class Loaded:
    """The file's configuration and, with TLS, the server context built from it (None for a
    reading that left the key or the client CA file unread: ``judge``'s ``server_files``)."""

    config: WebConfig
    context: ssl.SSLContext | None


@dataclass(frozen=True, slots=True)
class Judged:
    """The file at ``path`` read once and judged: ``loaded`` when it is good, else every problem
    of it; and either way its ``tls_server_config`` taken alone, which says how a bridge refusing
    the file (and serving the version before it) is reached."""

    path: Path
    loaded: Loaded | None
    problems: tuple[str, ...] = ()
    # The section when it is good and turns TLS on, paths absolute, whatever the rest holds.
    tls: TLSServerConfig | None = None
    # Whether the section turns TLS on, good or not; None when the file is unreadable or no YAML.
    tls_meant: bool | None = False
    # When loaded with every file (the bridge's reading): the file as read and the files it names
    # as hashed just before they were loaded, which the reloader compares the files with (so a
    # change after is seen, none missed).
    stamp: Stamp = ()

    def serves_tls(self) -> bool:
        """Whether a bridge started with the file serves https: it is good and turns TLS on."""
        return self.loaded is not None and self.loaded.config.tls is not None


def describe_web_config(judged: Judged) -> str:
    """A one-line summary of the file as read, for ``check-config``: no user name, hash or file
    content."""
    if judged.loaded is None:
        return f"refused: {'; '.join(judged.problems)}"
    return judged.loaded.config.summary()


def load(path: Path) -> Loaded:
    """The file at ``path`` checked and its certificates loaded; ConfigError with every problem."""
    judged = judge(path)
    if judged.loaded is None:
        raise ConfigError(list(judged.problems))
    return judged.loaded


def judge(path: Path, *, server_files: _ServerFiles = "all") -> Judged:
    """The file at ``path`` read and parsed once: its configuration checked and its certificates
    loaded, every problem found (bad keys and certificates that do not load alike).

    ``server_files`` says which of the files only a server reads are read: ``"all"`` (the
    bridge); ``"none"``, the key file and the client CA file left unread, the certificate checked
    alone (a client command, which needs neither: an operator may read the web config and the
    certificate but not the key); ``"readable"``, those this user may read (the health check: as
    the bridge's user it reads them all, so a key that is not the certificate's is told).
    """
    try:
        # Read and parsed on the event loop at a reload, a file of megabytes copied over it by
        # mistake held every request ~1 s a MiB (100 MB: 90 s): it is read no further.
        text, content = read_text_and_bytes(path)
        raw = read_yaml(text, path)
    except ConfigError as exc:
        return Judged(path, None, tuple(exc.problems), tls_meant=None)
    try:
        config = parse_web_config(text, path, raw=raw)
    except ConfigError as exc:
        # Bad keys elsewhere do not hide a certificate that does not load: every problem at once.
        tls, meant = tls_section(raw, path)
        problems = (*exc.problems, *_tls_problems(tls, path, server_files))
        return Judged(path, None, problems, tls, meant)
    tls = config.tls
    stamp: Stamp = ()
    if server_files == "all":  # for the reloader: a client's reading is read once
        # Each file is read and hashed at every look, once a second, on the event loop: 500 MB
        # copied over a certificate held every request for 1 to 4 s, when read whole.
        files = stamp_files(tls_files(tls), limit=MAX_FILE_BYTES)
        stamp = ((str(path), hashlib.sha256(content).digest()), *files)
    if oversized := _oversized(tls, path):
        return Judged(path, None, oversized, tls, True)
    try:
        context = _context(tls, server_files) if tls is not None else None
    except ConfigError as exc:
        problems = tuple(f"{path}: {problem}" for problem in exc.problems)
        return Judged(path, None, problems, tls, True)
    return Judged(path, Loaded(config, context), tls=tls, tls_meant=tls is not None, stamp=stamp)


def tls_files(tls: TLSServerConfig | None) -> list[str]:
    """The files ``tls`` names (certificate, key, client CA), in the order stamps list them."""
    if tls is None:
        return []
    return [name for name in (tls.cert_file, tls.key_file, tls.client_ca_file) if name]


def _oversized(tls: TLSServerConfig | None, path: Path) -> tuple[str, ...]:
    """A line for each file ``tls`` names that holds more than ``MAX_FILE_BYTES``, refused
    unloaded; none for a file that cannot be seen (its load says why)."""
    if tls is None:
        return ()
    named = (
        ("cert_file", tls.cert_file),
        ("key_file", tls.key_file),
        ("client_ca_file", tls.client_ca_file),
    )
    return tuple(
        f"{path}: tls_server_config.{key}: {name}: larger than {MAX_FILE_BYTES // 1024} KiB,"
        " the most a certificate, key or CA file may hold: is it the right file?"
        for key, name in named
        if name and _size(name) > MAX_FILE_BYTES
    )


def _size(name: str) -> int:
    try:
        return os.stat(name).st_size
    except OSError:
        return 0


def _context(tls: TLSServerConfig, server_files: _ServerFiles) -> ssl.SSLContext | None:
    """The server context of ``tls``, or None when ``server_files`` leaves its key or client CA
    file unread (``judge``); ConfigError naming each problem found."""
    if server_files == "none":
        key = client_ca = False
    else:
        key = server_files == "all" or not _withheld(tls.key_file)
        client_ca = server_files == "all" or not _withheld(tls.client_ca_file)
    if key and client_ca:
        return server_context(tls)
    if problems := served_problems(tls, key=key, client_ca=client_ca):
        raise ConfigError(problems)
    return None


def _withheld(name: str | None) -> bool:
    """Whether the file ``name`` is there but this user may not read it (the bridge's user may,
    whose alone a key is): missing, the bridge could not read it either."""
    if not name or os.access(name, os.R_OK):
        return False
    try:
        os.stat(name)
    except PermissionError:  # a folder on its way this user may not search
        return True
    except OSError:
        return False
    return True


def _tls_problems(tls: TLSServerConfig | None, path: Path, server_files: _ServerFiles) -> list[str]:
    """What keeps ``tls``'s files from loading, each line naming the web config file."""
    try:
        if tls is not None:
            _context(tls, server_files)
    except ConfigError as exc:
        return [f"{path}: {problem}" for problem in exc.problems]
    return []
