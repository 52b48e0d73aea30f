"""The listener's sockets: every address a host resolves to bound, and the descriptor limit raised.

``bind`` makes the sockets as ``loop.create_server`` would (address reuse, IPv6 sockets IPv6
only) and leaves listening to ``Listener.start_serving``; ``raise_descriptor_limit`` runs once at
start, before the guard fits its cap to the limit in force.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

__all__ = ["bind", "raise_descriptor_limit"]

_logger = logging.getLogger(__name__)
# What bind resolves a host with: loop.getaddrinfo's signature and results.
_Resolve = Callable[..., Awaitable[list[tuple[int, int, int, str, tuple[Any, ...]]]]]

# Where the soft limit goes when the hard one is unlimited (Linux's default fs.nr_open).
_UNLIMITED: Final = 1_048_576
# How often port 0 is picked when the port picked is taken on another of the host's addresses.
_PICKS: Final = 8


def raise_descriptor_limit() -> int:
    """Raise the soft descriptor limit (RLIMIT_NOFILE) to the hard one; the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        # Nothing changed: not worth a line at every start.
        _logger.debug(
            "open-file (descriptor) limit %d, already the hard limit",
            soft if soft != resource.RLIM_INFINITY else target,
        )
        return target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        _logger.warning(
            "open-file (descriptor) limit stays %d: raising it to %d failed: %s", soft, target, exc
        )
        return soft
    _logger.info("open-file (descriptor) limit raised from %d to %d, the hard limit", soft, target)
    return target


async def bind(
    host: str,
    port: int,
    *,
    new_socket: Callable[[int, int, int], socket.socket] = socket.socket,
    resolve: _Resolve | None = None,
) -> list[socket.socket]:
    """Sockets bound to every address ``host`` resolves to, as ``loop.create_server`` makes them
    (address reuse, IPv6 sockets IPv6 only), not yet listening; OSError naming the address that
    failed.

    An address whose family cannot be made a socket is left out, as ``create_server`` leaves it
    (``localhost`` resolves to ``::1`` too on a kernel without IPv6); OSError when none can. An
    address the host does not have (``EADDRNOTAVAIL``: ``::1`` where IPv6 is turned off with
    ``net.ipv6.conf.all.disable_ipv6``) is left out with a warning when another one is bound;
    OSError naming it and its errno when none is. Any other failure (the port taken, not ours
    to bind) is an OSError at once: a client may reach another process on that address.
    Port 0 binds every address on the port the system picked for the first (picked again, a
    few times, when another process has it on a later address): one port, the one reported.
    ``resolve`` stands for ``loop.getaddrinfo`` (the addresses ``host`` resolves to).
    """
    loop = asyncio.get_running_loop()
    infos = await (resolve or loop.getaddrinfo)(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    for _ in range(_PICKS - 1):
        if (sockets := _bind_each(host, port, infos, new_socket, pick_again=True)) is not None:
            return sockets
    sockets = _bind_each(host, port, infos, new_socket, pick_again=False)
    assert sockets is not None  # without pick_again it binds or raises
    return sockets


def _bind_each(
    host: str,
    port: int,
    infos: Sequence[tuple[int, int, int, str, tuple[Any, ...]]],
    new_socket: Callable[[int, int, int], socket.socket],
    *,
    pick_again: bool,
) -> list[socket.socket] | None:
    """``bind`` on the addresses ``infos`` resolved to; with ``pick_again``, None (nothing
    bound) when port 0 picked a port another process has on a later address."""
    picked = 0
    sockets: list[socket.socket] = []
    unmade: OSError | None = None
    unavailable: list[tuple[tuple[Any, ...], OSError]] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            try:
                sock = new_socket(family, kind, proto)
            except OSError as exc:
                _logger.info("not listening on %r: no socket for it (%s)", address, exc.strerror)
                unmade = exc
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            on = (address[0], picked, *address[2:]) if picked else address
            try:
                sock.bind(on)
            except OSError as exc:
                if picked and pick_again and exc.errno == errno.EADDRINUSE:
                    for bound in sockets:
                        bound.close()
                    return None
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise OSError(exc.errno, _bind_failure([on], exc)) from None
                sockets.pop().close()
                unavailable.append((address, exc))
                continue
            if port == 0:
                picked = sock.getsockname()[1]
            sock.setblocking(False)
        if not sockets and unavailable:
            addresses, failures = zip(*unavailable, strict=True)
            raise OSError(failures[0].errno, _bind_failure(list(addresses), failures[0]))
        if not sockets and unmade is not None:
            raise OSError(
                unmade.errno,
                f"no socket can be made for {host or 'any address'!r} port {port}: "
                f"{str(unmade.strerror).lower()}",
            )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    for address, failure in unavailable:
        _logger.warning(
            "not listening on %r, an address %r resolves to: %s ([Errno %d] %s); listening on %s",
            address,
            host or "any address",
            str(failure.strerror).lower(),
            failure.errno,
            errno.errorcode.get(failure.errno or 0, "?"),
            ", ".join(repr(sock.getsockname()) for sock in sockets),
        )
    return sockets


def _bind_failure(addresses: list[tuple[Any, ...]], exc: OSError) -> str:
    shown = ", ".join(repr(address) for address in addresses)
    return f"error while attempting to bind on address {shown}: {str(exc.strerror).lower()}"
