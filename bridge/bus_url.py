"""``EXESDB_BUS`` checked: ``memory``, or a Redis URL with only options the transport takes.

redis-py reads the URL the Redis transport connects with (``Redis.from_url``); what it would
refuse, hand on unread or let override the transport's own options is refused here, at start-up,
with the option named and never its value. redis-py is imported only for a Redis URL with a
query: the in-process bus and a plain ``redis://host:port/db`` do without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from bridge.choices import did_you_mean, word_meant
from bridge.redaction import safe_url

__all__ = ["require_bus"]

_NAMED_PARAMETER: Final = ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")
# The path redis-py reads as the database number: nothing (database 0) or digits, as Redis's
# own URLs write it. redis-py reads any other path as no database (0) or drops its slashes
# (/0/1 is database 1), without a word.
_DATABASE_PATH: Final = re.compile(r"/?|/[0-9]+/?")
# redis or rediss and a mistyped ``://`` (``:/``, ``//``, ``:///``, a colon alone before no port),
# then the rest of the URL meant (``redis:6379`` is a host named redis and its port).
_SCHEME_SLIP: Final = re.compile(
    r"(?P<scheme>(?i:rediss?))(?P<between>:/+|/+|:(?![\d/]))(?P<rest>.+)", re.DOTALL
)


def _bus_meant(value: str) -> str | None:
    """The redis:// URL ``value`` was likely meant as, shown safely: ``host:port`` typed without
    its scheme (``myredis:6380``), or with its ``://`` mistyped (``redis:/myredis``,
    ``rediss//myredis:6380``), as ``EXESDB_URL`` is answered; None when no URL is sure."""
    slip = _SCHEME_SLIP.fullmatch(value)
    if slip is not None and slip["between"] != "://":
        meant = f"{slip['scheme'].lower()}://{slip['rest']}"
    elif "://" in value or ":" not in value:
        return None
    else:
        meant = f"redis://{value}"
    try:
        parts = urlsplit(meant)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or (port is None and slip is None) or "@" in parts.path:
        return None
    return safe_url(meant)


def _memory_meant(value: str) -> bool:
    """Whether ``value`` reads as ``memory`` mistyped (``mem``, ``memroy``, ``in-memory``), by
    its spelling as other near-miss words are told (``bridge.choices``); never a URL or
    ``host:port``."""
    if ":" in value or "/" in value:
        return False
    return word_meant(value, ["memory"]) is not None


def require_bus(value: str) -> str:
    """``value`` when it is ``memory`` or a redis:// or rediss:// URL with a host, a port, a
    database number or none as its path, and only query options the transport takes;
    ValueError saying why otherwise. ``memory`` is a word, taken in any letter case as the word
    settings are."""
    if value.strip().casefold() == "memory":
        return "memory"
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        allowed = "must be 'memory' or a redis:// or rediss:// URL with a host"
        if meant := _bus_meant(value):
            raise ValueError(f"{allowed}, e.g. {meant}")
        if _memory_meant(value):
            raise ValueError(f"{allowed}; did you mean 'memory'?")
        raise ValueError(f"{allowed}, e.g. redis://127.0.0.1:6379")
    try:
        port = parts.port  # None when not given; ValueError when no number or out of range
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("a redis:// or rediss:// URL's port must be a port from 1 to 65535")
    if not _DATABASE_PATH.fullmatch(parts.path):
        raise ValueError(
            # No example URL: the message is shown as URLs are, and its path would read /….
            "a redis:// or rediss:// URL's path is its database number, as /0 or /15 after the"
            " port (none: database 0), and this one's path is no number"
        )
    if parts.path.strip("/") and "db" in parse_qs(parts.query):
        raise ValueError(
            "the database is given twice, in the URL's path and as ?db= (which would win):"
            " give it once"
        )
    if not parts.query and value[: len(parts.scheme) + 3].lower() == f"{parts.scheme}://":
        # No query option: redis-py's parse_url would read only what is checked above (host,
        # port, database, credentials) and could refuse none of it, so it is not imported here
        # (nor the OpenTelemetry metrics redis-py imports with it): check-config of a plain
        # Redis URL does without them; the transport imports them when it runs.
        return value
    from redis.asyncio.connection import parse_url  # what the transport's from_url reads

    from bridge.bus.redis.link import OWN_OPTIONS

    # redis-py lets the query override what the transport sets, without a word; before
    # parse_url, which would refuse a value it cannot read without saying that.
    owned = [name for name in parse_qs(parts.query) if name in OWN_OPTIONS]
    if owned:
        raise ValueError(
            "; ".join(
                f"query option {name!r} would override {OWN_OPTIONS[name]}; remove it from the URL"
                for name in owned
            )
        )
    # Its errors name a query option whose value it cannot read, never the value.
    options = parse_url(value)
    # An option redis-py does not know it hands on as is, and the first connection then fails
    # with a TypeError, at every retry, for as long as the bridge runs.
    taken = _redis_connection_options(options)
    unknown = sorted(set(options) - taken)
    if unknown:
        shown = [name for name in unknown if re.fullmatch(r"[a-z_]{1,40}", name)]
        names = ", ".join(repr(name) if name in shown else "(a name not shown)" for name in unknown)
        # The option each shown one is spelt nearly as (ssl_ca_cert: ssl_ca_certs), as a setting's
        # misspelt word is told; of several, each named before its own.
        hinted = {name: did_you_mean(name, sorted(taken)) for name in shown}
        hints = [
            said if len(unknown) == 1 else f"{name!r}: {said}"
            for name, said in hinted.items()
            if said is not None
        ]
        raise ValueError(
            f"query option{'s' if len(unknown) > 1 else ''} {names}: not "
            f"{'options' if len(unknown) > 1 else 'an option'} a {parts.scheme}:// connection "
            "takes (redis-py's connection options; a private CA or a client certificate, "
            "with rediss:// only: ?ssl_ca_certs=FILE&ssl_certfile=FILE&ssl_keyfile=FILE)"
            + "".join(f"; {hint}" for hint in hints)
        )
    return value


def _redis_connection_options(options: Mapping[str, Any]) -> set[str]:
    """The keyword arguments the pool ``parse_url``'s ``options`` ask for takes with its
    connection class (``SSLConnection`` for rediss://), as ``Redis.from_url`` hands them on."""
    import inspect

    from redis.asyncio.connection import Connection, ConnectionPool

    taken = {"connection_class"}
    for cls in (ConnectionPool, *options.get("connection_class", Connection).__mro__):
        if "__init__" in vars(cls):
            taken.update(
                name
                for name, parameter in inspect.signature(cls.__init__).parameters.items()
                if name != "self" and parameter.kind.name in _NAMED_PARAMETER
            )
    return taken
