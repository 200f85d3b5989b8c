"""Ports for test servers, bound by the OS and kept open: no other process can take them between
choosing a port and using it (two pytest workers picking the same "free" port was a race)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A TCP socket listening on 127.0.0.1 on a port the OS chose; inheritable, for --fd."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.set_inheritable(True)
        yield sock
    finally:
        sock.close()


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port held (bound, never listening) for the block: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@contextmanager
def reserved_port() -> Iterator[int]:
    """A port the OS chose, held for the block by a bound (not listening) SO_REUSEADDR socket.

    For a server that only takes a port number (prometheus_client binds with SO_REUSEADDR): it
    can bind the port while this socket holds it, and no other process can take it meanwhile.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", 0))
        yield int(sock.getsockname()[1])
