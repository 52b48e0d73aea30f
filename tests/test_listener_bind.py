"""The HTTP listener's addresses: a family or an address the host lacks left out (with a
warning), one no socket can be made for or in use an error naming it, and port 0 one port for
every address of a name."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bridge.listener.sockets import bind
from tests.listener_support import listener_log


def _no_ipv6(family: int, kind: int, proto: int) -> socket.socket:
    """socket.socket on a kernel without IPv6 (booted with ipv6.disable=1)."""
    if family == socket.AF_INET6:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    return socket.socket(family, kind, proto)


async def test_an_address_family_the_kernel_cannot_make_a_socket_for_is_left_out() -> None:
    """A host resolving to IPv4 and IPv6 addresses is bound on IPv4 alone when no IPv6 socket
    can be made (as asyncio's create_server does), not an error stopping start-up."""
    families = {info[0] for info in socket.getaddrinfo(None, 0, type=socket.SOCK_STREAM)}
    assert socket.AF_INET6 in families, "this test needs the host's IPv6 for the wildcard"
    sockets = await bind("", 0, new_socket=_no_ipv6)
    try:
        assert [sock.family for sock in sockets] == [socket.AF_INET]
    finally:
        for sock in sockets:
            sock.close()


async def test_an_address_no_socket_can_be_made_for_is_an_error_naming_it() -> None:
    """When not one socket can be made for the host's addresses, binding fails saying why."""
    with pytest.raises(
        OSError, match=r"^\[Errno \d+\] no socket can be made for '::1' port 0: "
    ) as raised:
        await bind("::1", 0, new_socket=_no_ipv6)
    assert raised.value.errno == errno.EAFNOSUPPORT


async def test_an_address_in_use_is_an_error_naming_it_and_the_errno_once() -> None:
    """Binding a port taken fails naming the address and the reason, the errno said once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=r"address already in use$") as raised:
            await bind("127.0.0.1", port)
    assert str(raised.value) == (
        f"[Errno {errno.EADDRINUSE}] error while attempting to bind on address "
        f"('127.0.0.1', {port}): address already in use"
    )


# An IPv6 address no host has (the documentation prefix, RFC 3849): binding it fails as binding
# ::1 does where net.ipv6.conf.all.disable_ipv6=1 (EADDRNOTAVAIL), with no sysctl to set.
_NOT_HERE = "2001:db8::1"


def _resolving_to(*hosts: str) -> Callable[..., Awaitable[list[tuple[Any, ...]]]]:
    """A resolver (loop.getaddrinfo) giving ``hosts``' addresses, as a name resolving to them."""

    async def resolve(host: object, port: int, **kwargs: int) -> list[tuple[Any, ...]]:
        return [info for name in hosts for info in socket.getaddrinfo(name, port, **kwargs)]

    return resolve


async def test_an_address_of_a_name_the_host_does_not_have_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A name resolving to an address the host does not have (localhost's ::1 with IPv6 turned
    off by sysctl) is bound on its other addresses, with a warning naming the one left out and
    the errno, not an error stopping start-up."""
    with caplog.at_level(logging.WARNING, logger="bridge.listener"):
        sockets = await bind("localhost", 0, resolve=_resolving_to("127.0.0.1", _NOT_HERE))
    try:
        assert [sock.getsockname()[0] for sock in sockets] == ["127.0.0.1"]
    finally:
        for sock in sockets:
            sock.close()
    [warning] = listener_log(caplog)
    assert warning.getMessage().startswith(
        f"not listening on ('{_NOT_HERE}', 0, 0, 0), an address 'localhost' resolves to: "
        f"cannot assign requested address ([Errno {errno.EADDRNOTAVAIL}] EADDRNOTAVAIL); "
        "listening on ('127.0.0.1', "
    )


async def test_a_name_none_of_whose_addresses_the_host_has_is_an_error_naming_them() -> None:
    """When the host has none of the addresses a name resolves to, binding fails naming each
    and the errno."""
    with pytest.raises(OSError, match=r"cannot assign requested address$") as raised:
        await bind("localhost", 0, resolve=_resolving_to("192.0.2.1", _NOT_HERE))
    assert raised.value.errno == errno.EADDRNOTAVAIL
    assert str(raised.value) == (
        f"[Errno {errno.EADDRNOTAVAIL}] error while attempting to bind on address "
        f"('192.0.2.1', 0), ('{_NOT_HERE}', 0, 0, 0): cannot assign requested address"
    )


async def test_a_port_taken_on_one_address_of_a_name_is_an_error_though_another_is_free() -> None:
    """Only an address the host does not have is left out: the port taken on one of a name's
    addresses stops the bind (a client may reach the other process there)."""
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=r"address already in use$") as raised:
            await bind("localhost", port, resolve=_resolving_to("127.0.0.1", "::1"))
    assert raised.value.errno == errno.EADDRINUSE


async def test_port_zero_on_a_name_of_several_addresses_picks_one_port_for_all() -> None:
    """Port 0 on a name resolving to several addresses (localhost: 127.0.0.1 and ::1) binds
    each on the one port the system picked for the first: the port the bridge reports and
    links to reaches it on every one of them, not another process on a port of its own."""
    sockets = await bind("localhost", 0, resolve=_resolving_to("127.0.0.1", "::1"))
    try:
        assert [sock.getsockname()[0] for sock in sockets] == ["127.0.0.1", "::1"]
        assert len({sock.getsockname()[1] for sock in sockets}) == 1
    finally:
        for sock in sockets:
            sock.close()


async def test_port_zero_is_picked_again_when_taken_on_a_later_address() -> None:
    """When the port picked for the first address is another process's on a later one, port 0
    is picked afresh, not an error stopping start-up, and every address is bound on the new one."""
    made: list[socket.socket] = []
    others: list[socket.socket] = []

    def taken_on_ipv6_once(family: int, kind: int, proto: int) -> socket.socket:
        """socket.socket, another process listening on ::1 at the first port picked."""
        if family == socket.AF_INET6 and not others:
            other = socket.socket(socket.AF_INET6)
            other.bind(("::1", made[-1].getsockname()[1]))
            other.listen()
            others.append(other)
        made.append(socket.socket(family, kind, proto))
        return made[-1]

    try:
        resolve = _resolving_to("127.0.0.1", "::1")
        sockets = await bind("localhost", 0, new_socket=taken_on_ipv6_once, resolve=resolve)
        try:
            ports = {sock.getsockname()[1] for sock in sockets}
            assert len(sockets) == 2
            assert len(ports) == 1
            assert ports != {others[0].getsockname()[1]}
        finally:
            for sock in sockets:
                sock.close()
    finally:
        for other in others:
            other.close()
