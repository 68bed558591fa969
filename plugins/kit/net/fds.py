"""Waiting for a file descriptor instead of failing a target for the lack of one.

A process short of descriptors (``ulimit -n``, or many scans' sockets at once) must scan
slower, never report less: a socket that cannot be opened yet is waited for, with a
growing pause, while the sockets held by other greenlets finish and free theirs. Only
``FD_PATIENCE`` seconds without a single free descriptor end the wait, with the error.
Callers wait before starting the clock of any timeout that decides a target's result.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import gevent
from gevent import socket

FD_PATIENCE = 30.0     # seconds without a single free descriptor before giving up
# Out of descriptors, buffers or local ports: wait and try the same port again.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                             errno.EADDRNOTAVAIL, errno.EAGAIN})


def with_descriptor(make: Callable[[], Any], patience: float = FD_PATIENCE) -> Any:
    """``make()``, which opens a descriptor, retried with a growing pause (1 ms to 100 ms,
    cooperatively) while the process is out of descriptors, buffers or local ports; the
    last error is raised once ``patience`` seconds have passed."""
    waited, backoff = 0.0, 0.001
    while True:
        try:
            return make()
        except OSError as e:
            if e.errno not in RESOURCE_ERRNOS or waited >= patience:
                raise
        gevent.sleep(backoff)
        waited, backoff = waited + backoff, min(0.1, backoff * 2)


def open_socket(family: int, kind: int = socket.SOCK_STREAM, proto: int = 0) -> Any:
    """A (gevent) socket, once a descriptor is free: ``socket.socket`` that waits out
    EMFILE/ENFILE rather than failing the target."""
    return with_descriptor(lambda: socket.socket(family, kind, proto))
