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
