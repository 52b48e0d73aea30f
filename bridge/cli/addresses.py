"""Every address of the bridge's host, in the order to try them, as curl finds them.

``localhost``, and any name under it (``bridge.localhost``), is both loopback addresses, ``::1``
then ``127.0.0.1``, without asking the system (RFC 6761 section 6.3, as curl does): /etc/hosts
may list ``127.0.0.1`` alone, and a bridge told ``EXESDB_HTTP_ADDR=[::1]:9570`` listens on
``::1`` alone. Any other name is every address ``getaddrinfo`` gives, its IPv6 ones kept on a
host whose only IPv6 address is loopback (aiohttp's own resolver asks with ``AI_ADDRCONFIG``,
which drops them there). A name is looked up on a thread of its own, so that the request's
deadline bounds the lookup too (``getaddrinfo`` itself takes no timeout, and a resolver that
does not answer holds it for its own, 5 s an attempt); an IP address needs no lookup.
``bridge.cli.exchange`` tries them in this order, as Happy Eyeballs does: one nothing listens on
is passed over at once, one that drops connections unanswered after 250 ms (the families are
not interleaved, as aiohttp does: a name with several addresses of one family listed first
waits 250 ms for each black-holed one).
"""

from __future__ import annotations

# _thread, not threading: importing threading costs a client command a millisecond, for one
# thread that is never joined.
import _thread
import socket
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["every_address"]

# RFC 6724's order, which getaddrinfo gives for a name listed with both.
_LOOPBACK: Final = (("::1", socket.AF_INET6), ("127.0.0.1", socket.AF_INET))
# What getaddrinfo gives: (family, type, proto, canonical name, socket address).
_AddrInfo = tuple[Any, Any, Any, Any, tuple[Any, ...]]


def _is_localhost(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a name under it."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _found(infos: Iterable[_AddrInfo]) -> list[tuple[int, tuple[Any, ...]]]:
    """The IPv4 and IPv6 addresses among getaddrinfo's ``infos``, each once, in its order."""
    kept = (
        (kind, address)
        for kind, _type, _proto, _name, address in infos
        if kind in (socket.AF_INET, socket.AF_INET6)
    )
    return list(dict.fromkeys(kept))


def every_address(host: str, port: int, within: float) -> list[tuple[int, tuple[Any, ...]]]:
    """Every (family, socket address) of ``host`` to try, in order: OSError
    (``socket.gaierror``) when it has none, ``TimeoutError`` when the resolver has not answered
    within ``within`` seconds."""
    if _is_localhost(host):
        return [
            (kind, (address, port, 0, 0) if kind == socket.AF_INET6 else (address, port))
            for address, kind in _LOOPBACK
        ]
    try:  # an IP address, given without asking the resolver
        return _found(
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        )
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:  # a name: looked up below
            raise
    return _found(_looked_up(host, port, within))


def _looked_up(host: str, port: int, within: float) -> list[_AddrInfo]:
    """What ``getaddrinfo`` gives for the name ``host``, asked on a thread of its own and waited
    for ``within`` seconds (``TimeoutError`` then: the thread is left to the resolver, and ends
    with the command)."""
    given: list[list[_AddrInfo] | OSError] = []
    answered = _thread.allocate_lock()
    answered.acquire()

    def look_up() -> None:
        try:
            given.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            given.append(exc)
        finally:
            answered.release()

    try:
        _thread.start_new_thread(look_up, ())
    except RuntimeError:  # no thread to be had (a pids limit): looked up here, unbounded
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not answered.acquire(timeout=within):
        raise TimeoutError
    found = given[0]
    if isinstance(found, OSError):
        raise found
    return found
