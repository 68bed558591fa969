"""Which errors are worth retrying. The delays themselves come from retry-policy plugins."""

from __future__ import annotations

import errno
import socket

import gevent

from ._dag import RetrySpec

NETWORK_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH,
    errno.ENETUNREACH, errno.ENETDOWN, errno.ENETRESET, errno.ETIMEDOUT, errno.EPIPE,
    errno.EHOSTDOWN, errno.EADDRNOTAVAIL,
})


def error_classes(error: BaseException, transient: tuple[type[BaseException], ...] = ()) -> set[str]:
    """The ``retry_on`` names that match ``error``."""
    out = set()
    if isinstance(error, Exception):
        out.add("any")
    if isinstance(error, (TimeoutError, socket.timeout, gevent.Timeout)):
        out.add("timeout")
    if isinstance(error, (ConnectionError, socket.gaierror, socket.herror)) or (
        isinstance(error, OSError) and error.errno in NETWORK_ERRNOS
    ):
        out.add("network_error")
    if getattr(error, "transient", False) or (transient and isinstance(error, transient)):
        out.add("transient")
    return out


def should_retry(error: BaseException, spec: RetrySpec, attempt: int,
                 transient: tuple[type[BaseException], ...] = ()) -> bool:
    if not spec.enabled or attempt >= spec.max_attempts:
        return False
    return bool(error_classes(error, transient) & set(spec.retry_on))
