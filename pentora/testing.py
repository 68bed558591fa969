"""pytest fixtures for testing scan modules against real sockets on loopback.

Registered through the ``pytest11`` entry point, so any project with pentora
installed gets them, third-party plugin authors included:

- ``tcp_server``: start a TCP server on 127.0.0.1 (or ::1) that speaks a scripted banner
  and answers; returns its port.
- ``closed_tcp_port``: a 127.0.0.1 port with nothing listening.
- ``udp_server``: a UDP server on 127.0.0.1 answering with a fixed payload.
- ``RecordCollector``: a plugin object that keeps what modules ``ctx.emit`` (``records``,
  ``(kind, record)`` pairs) and the progress they report.
- ``log_messages``: pentora's (and plugins') log lines, ``"LEVEL message"``, captured.
- ``netns``: a fresh network namespace with its own loopback (root only; skipped with
  the reason otherwise) in which to run whole-range scans, so that only the test's
  own listeners answer.
- ``simnet`` / ``simulated_network()``: a scanner namespace and a target namespace joined
  by a veth pair, the target answering for a whole 198.18.0.0/15 prefix on chosen ports
  (root only; skipped with the reason otherwise), for sweeps over many addresses.
- ``simulated_link()``: a scanner namespace and hosts with MACs of their own on one
  Ethernet segment (root only), for ARP and neighbour discovery.

Servers run in OS threads with blocking sockets, independent of the gevent hub that
runs the scan, and are closed when the test ends. They bind loopback only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ._hookspecs import hookimpl as _hookimpl

Responder = Callable[[bytes], bytes | None]


def _check_test_address(host: str) -> None:
    if not (host.startswith("127.") or host == "::1" or host.startswith(("198.18.", "198.19."))):
        raise ValueError(f"test servers bind loopback (or a test namespace's 198.18/15), not {host}")


class _ThreadedServer:
    """A socket on a test address, served by a daemon thread until ``stop()``."""

    host: str
    port: int

    def _open(self, kind: int) -> socket.socket:
        _check_test_address(self.host)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, kind)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
        sock.settimeout(0.2)  # before the thread starts: stop() may close it at once
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return sock

    def _serve(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        self._thread.join(timeout=2)


def _server_factory(cls: Any) -> Iterator[Callable[..., Any]]:
    servers: list[Any] = []

    def start(**kwargs: Any) -> Any:
        server = cls(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@dataclass
class TcpServer(_ThreadedServer):
    """A threaded TCP server: sends ``banner`` on connect, then answers each read with
    ``respond(data)`` (None closes)."""

    host: str = "127.0.0.1"
    port: int = 0
    banner: bytes = b""
    respond: Responder | None = None
    close_after_banner: bool = False
    # takes over each connection instead (hostile servers: drip, stall, reset...)
    handler: Callable[[socket.socket], None] | None = None
    connections: int = 0
    received: list[bytes] = field(default_factory=list)

    def start(self) -> TcpServer:
        self._open(socket.SOCK_STREAM)
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.closing(conn):
            conn.settimeout(5)
            try:
                if self.handler is not None:
                    self.handler(conn)
                    return
                if self.banner:
                    conn.sendall(self.banner)
                if self.close_after_banner:
                    return
                while not self._stop.is_set():
                    data = conn.recv(65536)
                    if not data:
                        return
                    self.received.append(data)
                    if self.respond is None:
                        continue
                    answer = self.respond(data)
                    if answer is None:
                        return
                    conn.sendall(answer)
            except OSError:
                return



@pytest.fixture
def tcp_server() -> Iterator[Callable[..., TcpServer]]:
    """Factory: ``tcp_server(banner=b"SSH-2.0-x\\r\\n", respond=fn, host="127.0.0.1")``, or
    ``tcp_server(handler=fn)`` where ``fn(conn)`` runs the whole conversation of a connection."""
    yield from _server_factory(TcpServer)


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out and that nothing listens on now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def closed_tcp_port() -> int:
    return free_port()


@dataclass
class UdpServer(_ThreadedServer):
    host: str = "127.0.0.1"
    port: int = 0
    reply: bytes = b""
    received: list[bytes] = field(default_factory=list)

    def start(self) -> UdpServer:
        self._open(socket.SOCK_DGRAM)
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            self.received.append(data)
            if self.reply:
                self._sock.sendto(self.reply, peer)



@pytest.fixture
def udp_server() -> Iterator[Callable[..., UdpServer]]:
    """Factory: ``udp_server(reply=b"...", host="127.0.0.1")``."""
    yield from _server_factory(UdpServer)


def netns_unavailable() -> str | None:
    """Why a network namespace cannot be made here, or None if it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN); not running as root"
    if shutil.which("ip") is None:
        return "the 'ip' command (Debian's iproute2) is not installed"
    return None


@dataclass
class NetNs:
    """A network namespace with its loopback up; ``run``/``popen`` execute inside it."""

    name: str

    def run(self, *cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True,
                              text=True, check=check, **kw)

    def popen(self, *cmd: str, **kw: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)

    def python(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, *args, **kw)


@contextlib.contextmanager
def network_namespace(prefix: str = "pentora-test") -> Iterator[NetNs]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        ns = NetNs(name)
        ns.run("ip", "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def netns() -> Iterator[NetNs]:
    with network_namespace() as ns:
        yield ns


# Runs inside the target namespace: accepts and closes for as long as its stdin is open.
# Accepting matters: a listener whose queue fills makes the kernel drop further SYNs, and
# a sweep would then see filtered ports where the network has open ones.
_ACCEPT_AND_CLOSE = """
import select, socket, sys
listeners = []
for port in map(int, sys.argv[1:]):
    for family, anywhere in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(family)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((anywhere, port))
        s.listen(65535)
        s.setblocking(False)
        listeners.append(s)
print("ready", flush=True)
while True:
    ready, _, _ = select.select([sys.stdin, *listeners], [], [])
    if sys.stdin in ready and not sys.stdin.readline():
        break
    for s in ready:
        if s is sys.stdin:
            continue
        while True:
            try:
                conn, _ = s.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # ECONNABORTED and the like: the peer is gone already
            conn.close()
"""

# The links joining the two namespaces, kept out of the prefixes a test may simulate.
_LINK = ipaddress.IPv4Network("198.19.255.0/30")
_SCANNER_ADDRESS, _TARGET_ADDRESS = "198.19.255.1", "198.19.255.2"
_LINK6 = ipaddress.IPv6Network("2001:2:0:ffff::/126")
_SCANNER_ADDRESS6, _TARGET_ADDRESS6 = "2001:2:0:ffff::1", "2001:2:0:ffff::2"
# The ranges reserved for benchmarking networks: 198.18.0.0/15 and, for IPv6, 2001:2::/48.
_BENCHMARK_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
_BENCHMARK_RANGE6 = ipaddress.IPv6Network("2001:2::/48")


class _ScannerSide:
    """What a simulated network runs its scanner in: ``run``/``popen``/``python`` execute
    in the scanner namespace, named ``name``."""

    scanner: NetNs

    @property
    def name(self) -> str:
        return self.scanner.name

    def run(self, *cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.scanner.run(*cmd, check=check, **kw)

    def popen(self, *cmd: str, **kw: Any) -> subprocess.Popen[Any]:
        return self.scanner.popen(*cmd, **kw)

    def python(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.scanner.python(*args, **kw)


@dataclass
class SimNet(_ScannerSide):
    """A simulated network: commands run (``run``/``popen``/``python``) in the scanner
    namespace ``name``; every address of ``prefix`` answers on ``ports`` (open) and
    refuses every other port (closed, RST)."""

    scanner: NetNs
    target: NetNs
    prefix: str
    ports: tuple[int, ...]
    scanner_address: str = _SCANNER_ADDRESS
    scanner_address6: str = _SCANNER_ADDRESS6

    def addresses(self) -> list[str]:
        """Every address the prefix answers on: for IPv4 all of them, network and
        broadcast addresses included (a local route answers for every one); for IPv6 all
        but the first, the subnet-router anycast address, which Linux never takes as local."""
        net = ipaddress.ip_network(self.prefix)
        return [str(a) for a in net][net.version == 6:]

    def expected(self) -> set[tuple[str, int]]:
        """The exact set of open (address, port) pairs."""
        return {(a, p) for a in self.addresses() for p in self.ports}


def _check_simulated_prefix(prefix: str, who: str = "simulated_network") -> str:
    try:
        net = ipaddress.ip_network(prefix)
    except ValueError as e:
        raise ValueError(f"{who}: prefix {prefix!r} is not a network ({e}); "
                         "give one such as 198.18.0.0/20") from e
    reserved, link = ((_BENCHMARK_RANGE, _LINK) if isinstance(net, ipaddress.IPv4Network)
                      else (_BENCHMARK_RANGE6, _LINK6))
    if not net.subnet_of(reserved):  # type: ignore[arg-type]
        raise ValueError(f"{who}: prefix {prefix} is outside {reserved}, the "
                         "range reserved for benchmarks; pick one inside it")
    if net.overlaps(link):  # type: ignore[arg-type]
        raise ValueError(f"{who}: prefix {prefix} overlaps {link}, the link "
                         "between the namespaces; pick one that does not")
    return str(net)


def _start_listeners(target: NetNs, ports: tuple[int, ...]) -> subprocess.Popen[str]:
    proc = target.popen(sys.executable, "-c", _ACCEPT_AND_CLOSE, *map(str, ports),
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"simulated_network: the listeners on ports {list(ports)} did not "
                           f"start in namespace {target.name} (exit code {proc.returncode})")
    return proc


def _stop_listeners(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(OSError):
        assert proc.stdin is not None
        proc.stdin.close()  # the listeners' signal to exit
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def simulated_network(prefix: str = "198.18.0.0/20",
                      ports: tuple[int, ...] = (22, 80, 443)) -> Iterator[SimNet]:
    """Two fresh namespaces, scanner and target, joined by a veth pair on 198.19.255.0/30
    and 2001:2:0:ffff::/126; the target answers for every address of ``prefix`` (inside
    198.18.0.0/15, or 2001:2::/48 for IPv6) through a local route, with accept-and-close
    listeners on ``ports``. Both namespaces and the
    listeners are gone when the block exits, on error too. Skips without root or ``ip``."""
    prefix = _check_simulated_prefix(prefix)
    ports = tuple(ports)
    with contextlib.ExitStack() as stack:
        scanner = stack.enter_context(network_namespace("pentora-simnet-scan"))
        target = stack.enter_context(network_namespace("pentora-simnet-target"))
        # Made inside the scanner namespace with its peer sent straight to the target one:
        # the veth pair never exists in the namespace the tests run in.
        scanner.run("ip", "link", "add", "sim0", "type", "veth", "peer", "name", "sim1",
                    "netns", target.name)
        for ns, dev, address, address6 in ((scanner, "sim0", _SCANNER_ADDRESS, _SCANNER_ADDRESS6),
                                           (target, "sim1", _TARGET_ADDRESS, _TARGET_ADDRESS6)):
            ns.run("ip", "addr", "add", f"{address}/30", "dev", dev)
            # nodad: usable at once, not after duplicate address detection's second
            ns.run("ip", "-6", "addr", "add", f"{address6}/126", "dev", dev, "nodad")
            ns.run("ip", "link", "set", dev, "up")
        v6 = ":" in prefix
        scanner.run("ip", "-6" if v6 else "-4", "route", "add", prefix, "via",
                    _TARGET_ADDRESS6 if v6 else _TARGET_ADDRESS)
        target.run("ip", "-6" if v6 else "-4", "route", "add", "local", prefix, "dev", "lo")
        # Sweeps open thousands of handshakes at once: room in the queues so that none
        # is dropped for the target's sake.
        target.run("sysctl", "-q", "-w", "net.core.somaxconn=65535",
                   "net.ipv4.tcp_max_syn_backlog=65535")
        listeners = _start_listeners(target, ports)
        stack.callback(_stop_listeners, listeners)
        yield SimNet(scanner, target, prefix, ports)


@pytest.fixture
def simnet() -> Iterator[SimNet]:
    """A :func:`simulated_network` with its defaults: 198.18.0.0/20, ports 22, 80, 443."""
    with simulated_network() as net:
        yield net


@dataclass(frozen=True)
class LinkHost:
    """One host of a :class:`SimLink`: its addresses, its MAC and its interface (a macvlan
    in the target namespace)."""

    address: str
    address6: str
    mac: str
    interface: str


@dataclass
class SimLink(_ScannerSide):
    """A simulated Ethernet link: commands run (``run``/``popen``/``python``) in the scanner
    namespace ``name``, whose interface ``interface`` shares one segment with ``hosts``,
    each answering ARP and neighbour discovery for its own addresses with its own MAC."""

    scanner: NetNs
    target: NetNs
    prefix: str
    prefix6: str
    hosts: list[LinkHost]
    interface: str = "link0"

    @property
    def scanner_address(self) -> str:
        return str(ipaddress.ip_network(self.prefix)[1])

    @property
    def scanner_address6(self) -> str:
        return str(ipaddress.ip_network(self.prefix6)[1])

    def addresses(self) -> list[str]:
        """Every address of ``prefix``, to sweep it whole."""
        return [str(a) for a in ipaddress.ip_network(self.prefix)]

    def addresses6(self) -> list[str]:
        """Every address of ``prefix6`` but the subnet-router anycast one."""
        return [str(a) for a in ipaddress.ip_network(self.prefix6)][1:]

    def expected(self) -> dict[str, str]:
        """What a sweep of the link must find: each host's IPv4 address and its MAC."""
        return {h.address: h.mac for h in self.hosts}

    def expected6(self) -> dict[str, str]:
        """Each host's IPv6 address and its MAC."""
        return {h.address6: h.mac for h in self.hosts}

    def take_down(self, host: LinkHost) -> None:
        """Set the host's interface down: it answers nothing any more."""
        self.target.run("ip", "link", "set", host.interface, "down")


def _link_hosts(prefix: str, prefix6: str, count: int) -> list[LinkHost]:
    net, net6 = ipaddress.ip_network(prefix), ipaddress.ip_network(prefix6)
    room = min(net.num_addresses, net6.num_addresses) - 3  # network, scanner, broadcast
    if not 1 <= count <= room:
        raise ValueError(f"simulated_link: hosts={count} does not fit {prefix} and {prefix6}: "
                         f"give 1 to {room} hosts, or larger prefixes")
    # Spread over the prefix, so that a sweep meets silent addresses between the hosts.
    stride = room // count
    hosts = []
    for i in range(count):
        offset = 2 + i * stride
        # Locally administered unicast MACs (02:…), the host's number in the last bytes.
        mac = f"02:70:74:00:{i >> 8:02x}:{i & 0xFF:02x}"
        hosts.append(LinkHost(str(net[offset]), str(net6[offset]), mac, f"host{i}"))
    return hosts


@contextlib.contextmanager
def simulated_link(prefix: str = "198.18.5.0/24", hosts: int = 8,
                   prefix6: str = "2001:2:0:5::/120") -> Iterator[SimLink]:
    """Two fresh namespaces on one Ethernet segment, for ARP and neighbour discovery: the
    scanner's veth ``link0`` (the first address of ``prefix`` and of ``prefix6``) and, on its
    peer in the target namespace, ``hosts`` macvlan interfaces, each with a MAC of its own
    and one address of each prefix (inside 198.18.0.0/15 and 2001:2::/48), spread over them.
    Both namespaces are gone when the block exits, on error too. Skips without root or ``ip``."""
    prefix = _check_simulated_prefix(prefix, "simulated_link")
    prefix6 = _check_simulated_prefix(prefix6, "simulated_link")
    if ":" in prefix or ":" not in prefix6:
        raise ValueError(f"simulated_link: prefix {prefix} must be IPv4 and prefix6 {prefix6} "
                         "IPv6, e.g. 198.18.5.0/24 and 2001:2:0:5::/120")
    link_hosts = _link_hosts(prefix, prefix6, hosts)
    bits, bits6 = prefix.split("/")[1], prefix6.split("/")[1]
    with contextlib.ExitStack() as stack:
        scanner = stack.enter_context(network_namespace("pentora-simlink-scan"))
        target = stack.enter_context(network_namespace("pentora-simlink-target"))
        scanner.run("ip", "link", "add", "link0", "type", "veth", "peer", "name", "link1",
                    "netns", target.name)
        net = SimLink(scanner, target, prefix, prefix6, link_hosts)
        scanner.run("ip", "addr", "add", f"{net.scanner_address}/{bits}", "dev", "link0")
        scanner.run("ip", "-6", "addr", "add", f"{net.scanner_address6}/{bits6}", "dev", "link0",
                    "nodad")
        scanner.run("ip", "link", "set", "link0", "up")
        # All hosts live in one namespace: without arp_ignore=1 every macvlan would answer
        # ARP for every address of the namespace, each with its own MAC. Neighbour
        # discovery is per interface already.
        target.run("sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1",
                   "net.ipv4.conf.all.arp_announce=2")
        commands = ["link set link1 up"]
        for h in link_hosts:
            commands += [f"link add link link1 name {h.interface} address {h.mac} type macvlan "
                         "mode bridge",
                         f"addr add {h.address}/{bits} dev {h.interface}",
                         # nodad: usable at once, not after duplicate address detection's second
                         f"addr add {h.address6}/{bits6} dev {h.interface} nodad",
                         f"link set {h.interface} up"]
        # One ip process for all of them: a few hundred interfaces in well under a second.
        target.run("ip", "-batch", "-", input="\n".join(commands) + "\n")
        yield net


@pytest.fixture
def log_messages() -> Iterator[list[str]]:
    """Log lines (``"WARNING message"``) emitted through loguru while the test runs."""
    from loguru import logger

    from ._logging import enable_logs

    enable_logs()
    lines: list[str] = []
    handler = logger.add(lambda m: lines.append(str(m).rstrip("\n")), level="DEBUG",
                         format="{level} {message}")
    yield lines
    logger.remove(handler)


class RecordCollector:
    """Register it as a plugin to see what a scan emits while it runs."""

    def __init__(self) -> None:
        self.records: list[tuple[str, Any]] = []
        self.progress: list[tuple[int, int | None]] = []

    def of(self, kind: str) -> list[Any]:
        return [r for k, r in self.records if k == kind]

    @_hookimpl
    def pentora_record(self, kind: str, record: Any) -> None:
        self.records.append((kind, record))

    @_hookimpl
    def pentora_node_progress(self, done: int, total: int | None) -> None:
        self.progress.append((done, total))
