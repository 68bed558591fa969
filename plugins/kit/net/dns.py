"""Name lookups for modules: cooperative (gevent's resolver), bounded, never asking about
names that cannot exist."""

from __future__ import annotations

import socket

import gevent
from gevent import socket as gsocket


def resolve_name(name: str, *, ipv6: bool = True, timeout: float = 5.0) -> list[str]:
    """Addresses of ``name`` through gevent's (cooperative) resolver, in answer order."""
    if name == "invalid" or name.endswith(".invalid"):
        # RFC 6761 6.4: resolvers answer .invalid negatively without asking anyone.
        raise socket.gaierror(socket.EAI_NONAME, "'.invalid' names never resolve (RFC 6761)")
    family = socket.AF_UNSPEC if ipv6 else socket.AF_INET
    with gevent.Timeout(timeout, TimeoutError(f"lookup timed out after {timeout:g}s")):
        infos = gsocket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
