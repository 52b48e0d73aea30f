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

__all__ = ["Loaded", "describe_web_config", "load", "load_web_config"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """The file's configuration and, with TLS, the server context built from it."""

    config: WebConfig
    context: ssl.SSLContext | None


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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        config = parse_web_config(text, path)
    except ConfigError as exc:
        # Bad keys elsewhere do not hide a certificate that does not load: every problem at once.
        tls = tls_section(text, path)
        raise ConfigError([*exc.problems, *_tls_problems(tls, path)]) from None
    tls = config.tls
    try:
        return Loaded(config, server_context(tls) if tls is not None else None)
    except ConfigError as exc:
        raise ConfigError([f"{path}: {problem}" for problem in exc.problems]) from None


def _tls_problems(tls: TLSServerConfig | None, path: Path) -> list[str]:
    """What keeps ``tls``'s files from loading, each line naming the web config file."""
    try:
        if tls is not None:
            server_context(tls)
    except ConfigError as exc:
        return [f"{path}: {problem}" for problem in exc.problems]
    return []
