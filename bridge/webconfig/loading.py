"""Reading the web config file whole: its schema checked and its certificates loaded.

Without the serving side (aiohttp, prometheus_client): the health check reads the file with it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import ConfigError
from bridge.webconfig.schema import TLSServerConfig, WebConfig, parse_web_config, tls_section
from bridge.webconfig.tls import server_context
from bridge.yamlconfig import read_text, read_yaml

__all__ = ["Judged", "Loaded", "describe_web_config", "judge", "load", "load_web_config"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """The file's configuration and, with TLS, the server context built from it."""

    config: WebConfig
    context: ssl.SSLContext | None


@dataclass(frozen=True, slots=True)
class Judged:
    """The file read once and judged: ``loaded`` when it is good, else every problem of it; and
    either way its ``tls_server_config`` taken alone, which says how a bridge refusing the file
    (and serving the version before it) is reached."""

    loaded: Loaded | None
    problems: tuple[str, ...] = ()
    # The section when it is good and turns TLS on, paths absolute, whatever the rest holds.
    tls: TLSServerConfig | None = None
    # Whether the section turns TLS on, good or not; None when the file is unreadable or no YAML.
    tls_meant: bool | None = False


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check the file, loading its certificates too; ConfigError naming each problem."""
    return load(Path(path)).config


def describe_web_config(path: str | Path) -> str:
    """A one-line summary for ``check-config``: no user name, hash or file content."""
    try:
        return load_web_config(path).summary()
    except ConfigError as exc:
        return f"refused: {'; '.join(exc.problems)}"


def load(path: Path) -> Loaded:
    """The file at ``path`` checked and its certificates loaded; ConfigError with every problem."""
    judged = judge(path)
    if judged.loaded is None:
        raise ConfigError(list(judged.problems))
    return judged.loaded


def judge(path: Path) -> Judged:
    """The file at ``path`` read and parsed once: its configuration checked and its certificates
    loaded, every problem found (bad keys and certificates that do not load alike)."""
    try:
        text = read_text(path)
        raw = read_yaml(text, path)
    except ConfigError as exc:
        return Judged(None, tuple(exc.problems), tls_meant=None)
    try:
        config = parse_web_config(text, path, raw=raw)
    except ConfigError as exc:
        # Bad keys elsewhere do not hide a certificate that does not load: every problem at once.
        tls, meant = tls_section(raw, path)
        return Judged(None, (*exc.problems, *_tls_problems(tls, path)), tls, meant)
    tls = config.tls
    try:
        context = server_context(tls) if tls is not None else None
    except ConfigError as exc:
        return Judged(None, tuple(f"{path}: {problem}" for problem in exc.problems), tls, True)
    return Judged(Loaded(config, context), tls=tls, tls_meant=tls is not None)


def _tls_problems(tls: TLSServerConfig | None, path: Path) -> list[str]:
    """What keeps ``tls``'s files from loading, each line naming the web config file."""
    try:
        if tls is not None:
            server_context(tls)
    except ConfigError as exc:
        return [f"{path}: {problem}" for problem in exc.problems]
    return []
