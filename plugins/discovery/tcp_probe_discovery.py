"""``tcp_probe_discovery``: a host is up when any configured port answers SYN-ACK or RST.

With raw sockets the pings are stateless raw SYNs or ACKs (``_raw.RawTcpPing``, run by
``_stateless``). Without privilege (or ``mode: connect``) each attempt starts a
non-blocking ``connect`` to every configured port of the host. One epoll holds all of them
and a receiver greenlet waits on the epoll descriptor through the gevent hub. A completed
connect (SYN-ACK) or ``ECONNREFUSED`` (RST) proves the host is up; unreachable errors and
silence prove nothing.
"""

from __future__ import annotations

import errno
import resource
import select
import socket
import struct
from collections.abc import Iterator
from time import monotonic
from typing import Any

import gevent
import voluptuous as vol
from gevent.monkey import get_original
from gevent.socket import wait as wait_watcher
from pentora_plugins.discovery._common import DiscoveryModule, discovery_schema, family_of, latency_ms
from pentora_plugins.discovery._sweep import Answer, Probe, Sweep
from pentora_plugins.kit.net.fds import FD_PATIENCE, with_descriptor
from pentora_plugins.kit.portspec import PortSet, port_spec_validator

from pentora import ModuleError, NodeContext

# The standard library's epoll and socket class even when the CLI has monkey-patched them
# (patching removes select.epoll): these sockets never block, the epoll is waited on
# through the hub.
_epoll = get_original("select", "epoll")
_socket = get_original("socket", "socket")

DEFAULT_PORTS = [80, 443, 22, 3389]
MAX_PORTS = 256  # knocking on more is a port scan: connect_scanner's job
_LINGER_RESET = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left behind
_NO_FDS = {errno.EMFILE, errno.ENFILE}


def fd_budget() -> int:
    """Descriptors the probe may hold at once: half the soft limit, leaving the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 16
    return max(1, soft // 2)


class TcpTransport:
    """Non-blocking connects to a fixed port list, completed through one epoll."""

    method = "tcp_probe"

    def __init__(self, ports: list[int], node: str) -> None:
        self.ports = ports
        self.node = node
        self.epoll = with_descriptor(_epoll)
        self.connecting: dict[int, tuple[Probe, socket.socket]] = {}
        self._started = False

    def skip_reason(self, address: str, family: int) -> str | None:
        return None

    def send(self, probe: Probe, sweep: Sweep) -> None:
        if not self._started:
            self._started = True
            sweep.spawn(self._receive, sweep)
        self.discard(probe)  # an unanswered attempt's connects make way for the next
        probe.state = []
        failures: set[int] = set()
        for port in self.ports:
            sock = self._socket(family_of(probe.family))
            if probe.state is None:  # answered on an earlier port while we waited for a descriptor
                sock.close()
                return
            err = sock.connect_ex((probe.address, port))
            if err == errno.EINPROGRESS:
                self.epoll.register(sock.fileno(), select.EPOLLOUT)
                self.connecting[sock.fileno()] = (probe, sock)
                probe.state.append(sock)
                continue
            _close(sock)
            if err in (0, errno.ECONNREFUSED):
                sweep.answer(probe, Answer("syn-ack" if err == 0 else "rst",
                                           latency_ms(probe.sent_at, monotonic())))
                return
            failures.add(err)
        if not probe.state and failures:  # every port failed at once (no route…): give up
            code = failures.pop()
            raise OSError(code, f"{errno.errorcode.get(code, code)} on every port")

    def _socket(self, family: int) -> socket.socket:
        """A socket once a descriptor is free: other probes' answers free theirs."""
        try:
            return with_descriptor(lambda: _socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK))
        except OSError as e:
            if e.errno not in _NO_FDS:
                raise
            raise ModuleError(f"no file descriptor came free for {FD_PATIENCE:.0f}s: lower "
                              "'concurrency' or raise the limit (ulimit -n)", node=self.node) from e

    def _receive(self, sweep: Sweep) -> None:
        watcher = gevent.get_hub().loop.io(self.epoll.fileno(), 1)
        while True:
            wait_watcher(watcher)
            received_at = monotonic()
            for fd, _ in self.epoll.poll(0, 1024):
                entry = self.connecting.get(fd)
                if entry is None:
                    continue
                probe, sock = entry
                reason = _outcome(sock)
                if reason is None:
                    continue  # still connecting (a stale event for a reused descriptor)
                self._drop(probe, sock)
                if reason:
                    sweep.answer(probe, Answer(reason, latency_ms(probe.sent_at, received_at)))

    def _drop(self, probe: Probe, sock: socket.socket) -> None:
        fd = sock.fileno()
        self.connecting.pop(fd, None)
        self.epoll.unregister(fd)
        _close(sock)
        if probe.state is not None:
            probe.state.remove(sock)

    def discard(self, probe: Probe) -> None:
        for sock in list(probe.state or ()):
            self._drop(probe, sock)
        probe.state = None

    def close(self) -> None:
        for _, sock in list(self.connecting.values()):
            _close(sock)
        self.connecting.clear()
        self.epoll.close()


def _outcome(sock: socket.socket) -> str | None:
    """``syn-ack``, ``rst``, ``""`` (no evidence), or None while the connect is pending."""
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err == errno.ECONNREFUSED:
        return "rst"
    if err:
        return ""
    try:
        sock.getpeername()
    except OSError:
        return None
    return "syn-ack"


def _close(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except OSError:
        pass
    sock.close()


def _few_ports(ports: PortSet) -> PortSet:
    if not 0 < len(ports) <= MAX_PORTS:
        raise vol.Invalid(f"expected 1 to {MAX_PORTS} ports, got {len(ports)}: host discovery "
                          "knocks on a few ports (use connect_scanner to scan ranges)")
    return ports


_few_ports.__name__ = "port spec"


class TcpProbeDiscovery(DiscoveryModule):
    """Hosts that answer a TCP SYN or ACK ping on any configured port (SYN-ACK or RST)."""

    module_type = "tcp_probe_discovery"
    description = "TCP SYN/ACK pings (raw if privileged, else connects): up on any SYN-ACK or RST"
    method = "tcp_probe"
    config_schema = {
        **discovery_schema(rate=50000, raw=True),
        vol.Optional("ports", default=DEFAULT_PORTS,
                     description="ports to knock on, a list or a spec such as '22,80,443'"):
            vol.All(port_spec_validator("tcp"), _few_ports),
        vol.Optional("probe", default="syn",
                     description="syn (nmap -PS: up on SYN-ACK or RST) or ack (-PA: up on RST; "
                                 "needs raw sockets)"): vol.In(("syn", "ack")),
        vol.Optional("mode", default="auto",
                     description="raw (stateless pings, needs CAP_NET_RAW), connect (no privilege) "
                                 "or auto: raw, else connect"): vol.In(("auto", "raw", "connect")),
    }

    def raw_prober(self, ctx: NodeContext, config: dict[str, Any]) -> Any:
        ack = config["probe"] == "ack"
        if config["mode"] == "connect":
            if ack:
                raise ModuleError("probe: ack needs mode raw or auto (a connect sends SYNs); "
                                  "set probe: syn, or mode: auto with root or CAP_NET_RAW",
                                  node=ctx.node_id)
            return None
        from pentora_plugins.discovery._raw import RawTcpPing  # only a privileged sweep needs it
        from pentora_plugins.discovery._stateless import EXTRA_TRIES

        try:
            # a source port per try, the further ones while replies are lost included
            prober = RawTcpPing(list(config["ports"]), config["probe"],
                                config["retry"] + 1 + EXTRA_TRIES)
            self._raw6 = prober.v6
            return prober
        except PermissionError as e:
            if config["mode"] == "raw" or ack:
                raise ModuleError(f"raw TCP pings need root or CAP_NET_RAW ({e.strerror}): run as "
                                  "root, or set mode: connect and probe: syn, which need no privilege",
                                  node=ctx.node_id) from e
            return None  # auto: connect pings

    def raw_probes(self, todo: Iterator[Probe], leftover: list[Probe]) -> Iterator[Probe]:
        for probe in todo:
            # without raw IPv6 sockets (a kernel without IPv6), or for an address with a
            # zone, which a sockaddr_in6 slot cannot name: connect pings, after the sweep
            if probe.family == 6 and (not getattr(self, "_raw6", False) or "%" in probe.address):
                leftover.append(probe)
            else:
                yield probe

    def transport(self, ctx: NodeContext, config: dict[str, Any]) -> TcpTransport:
        return TcpTransport(list(config["ports"]), ctx.node_id)

    def window(self, ctx: NodeContext, config: dict[str, Any]) -> int:
        return max(1, min(super().window(ctx, config), fd_budget() // len(config["ports"])))
