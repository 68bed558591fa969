"""One short, bounded TCP conversation with a service (a handshake, a KEXINIT)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gevent
from gevent import socket
from pentora_plugins.kit.net.fds import open_socket


@contextlib.contextmanager
def talk(host: str, port: int, timeout: float, what: str) -> Iterator[socket.socket]:
    """A TCP connection to host:port, closed afterwards. ``timeout`` bounds each socket
    operation and twice that the whole conversation: a server dripping a byte at a time
    stops there, with ``TimeoutError("{what} within Ns")``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = open_socket(family)  # before the clock starts: waiting for a descriptor is not the host's fault
    try:
        with gevent.Timeout(2 * timeout, TimeoutError(f"{what} within {2 * timeout:g}s")):
            sock.settimeout(timeout)
            sock.connect((host, port))
            yield sock
    finally:
        sock.close()
