"""``udp_scanner``: UDP scan with protocol payloads, no privilege needed.

Each (host, port) gets its own connected UDP socket on a greenlet. A connected UDP
socket receives only from its peer, and the kernel reports an ICMP port unreachable
for it as ECONNREFUSED on the next ``recv``: no raw socket is needed to tell closed
from silent. So: a reply means open, port unreachable means closed, another ICMP
unreachable (host, admin prohibited...) means filtered, and silence after every try
means open|filtered. The payload depends on the port (DNS, NTP, SNMP, ... see
``_udp_payloads``); other ports get an empty datagram.

On loopback a socket whose ephemeral port equals the probed port would talk to itself:
such a socket is replaced before anything is sent. ``concurrency`` bounds the probes
in flight (each holds a socket for up to tries x timeout), capped by the open-file
limit; ``rate`` caps datagrams per second across all of them. Linux reports ICMP
"administratively prohibited" as EHOSTUNREACH, so such ports read ``host-unreach``.

Outputs: ``open_ports`` (``Port(protocol="udp", state="open" | "open|filtered",
method="udp")``, each emitted as settled) and ``port_states`` (the filtered ones).
Closed ports are only counted.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.lock
import gevent.pool
import voluptuous as vol
from gevent import socket
from pentora_plugins.kit.inputs import INPUT_OPTION, input_contract, iter_hosts, publish_ports
from pentora_plugins.kit.net.fds import open_socket
from pentora_plugins.kit.net.hosttime import HOST_TIMEOUT_OPTION, HostClock
from pentora_plugins.kit.net.ratelimit import TokenBucket
from pentora_plugins.kit.portspec import port_spec_validator
from pentora_plugins.kit.records import Port
from pentora_plugins.kit.shard import port_selector, share
from pentora_plugins.portscan._udp_payloads import PAYLOADS, payload_name, recognise
from pentora_plugins.portscan.connect_scanner import fd_budget
from voluptuous import Optional

from pentora import Module, NodeContext
from pentora.schema import Bool, Duration, Int, PositiveInt, Rate

DEFAULT_PORTS = "top-20"  # DNS, NTP, SNMP, NetBIOS, DHCP, TFTP, IKE, SSDP, mDNS, syslog...
CLOSED, FILTERED = "closed", "filtered"
_FILTERED_ERRORS = {
    errno.EHOSTUNREACH: "host-unreach", errno.ENETUNREACH: "net-unreach",
    errno.EACCES: "admin-prohibited", errno.EPERM: "admin-prohibited",
    errno.EHOSTDOWN: "host-down", errno.ENETDOWN: "net-down", errno.EPROTO: "icmp-error",
}


def _payload_map(value: object) -> dict[int, str]:
    if not isinstance(value, dict):
        raise vol.Invalid(f"expected a mapping of port to payload name, got {value!r}")
    out: dict[int, str] = {}
    for port, name in value.items():
        try:
            number = int(port)
        except (TypeError, ValueError):
            raise vol.Invalid(f"'{port}' is not a port number") from None
        if not 0 < number <= 65535:
            raise vol.Invalid(f"port {number} is out of range (1-65535)")
        if name not in PAYLOADS:
            raise vol.Invalid(f"unknown payload '{name}' for port {number}; "
                              f"known: {', '.join(sorted(PAYLOADS))}")
        out[number] = name
    return out


_payload_map.__name__ = "port → payload"


class UdpProbe:
    """Probes one (host, port); ``run`` returns (state, reason, reply)."""

    def __init__(self, host: str, port: int, payload: str, timeout: float, tries: int,
                 bucket: TokenBucket) -> None:
        self.host, self.port, self.payload = host, port, payload
        self.timeout, self.tries, self.bucket = timeout, tries, bucket

    def run(self) -> tuple[str, str, bytes]:
        data = PAYLOADS[self.payload]
        try:
            sock = self._socket()
        except OSError as e:
            if e.errno in _FILTERED_ERRORS:
                return FILTERED, _FILTERED_ERRORS[e.errno], b""
            raise
        try:
            for _ in range(self.tries):
                self._pace()
                try:
                    sock.send(data)
                    reply = sock.recv(65535)
                except TimeoutError:
                    continue
                except ConnectionRefusedError:
                    return CLOSED, "port-unreach", b""
                except OSError as e:
                    if e.errno in _FILTERED_ERRORS:
                        return FILTERED, _FILTERED_ERRORS[e.errno], b""
                    raise
                return "open", recognise(self.payload, reply), reply
            return "open|filtered", "no-response", b""
        finally:
            sock.close()

    def _socket(self) -> Any:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(8):
            sock = open_socket(family, socket.SOCK_DGRAM)  # waits out EMFILE, not a filtered port
            sock.connect((self.host, self.port))
            local = sock.getsockname()
            if local[1] != self.port or local[0] != sock.getpeername()[0]:
                sock.settimeout(self.timeout)
                return sock
            sock.close()  # connected to itself: its own datagram would look like an answer
        raise OSError(errno.EADDRINUSE, f"no source port other than {self.port} for {self.host}")

    def _pace(self) -> None:
        while not self.bucket.take(1):
            gevent.sleep(self.bucket.delay())


class UdpScanner(Module):
    """UDP scan: protocol payloads, ICMP port unreachable = closed, silence = open|filtered."""

    module_type = "udp_scanner"
    description = "UDP scan with DNS/NTP/SNMP/... payloads (no privilege needed)"
    produces = ("open_ports", "port_states")
    config_schema = {
        Optional("ports", default=DEFAULT_PORTS,
                 description="UDP ports to probe (53,123,161, 1-1024, top-100: the UDP ranking)"):
            port_spec_validator("udp"),
        Optional("timeout", default="1s", description="wait for an answer after each datagram"):
            Duration(min=0.001),
        Optional("retries", default=1, description="extra datagrams to ports that stayed silent"):
            Int(0, 10),
        Optional("rate", default=1000, description="datagrams per second, 0 = unlimited"): Rate("datagrams"),
        Optional("concurrency", default=256,
                 description="ports probed at once (capped by the open-file limit)"): PositiveInt(),
        Optional("payloads", default={},
                 description="port → payload name (dns, ntp, snmp, mdns, ...) overriding the defaults"):
            _payload_map,
        Optional("record_filtered", default=True,
                 description="list ICMP-filtered ports in port_states"): Bool(),
        **HOST_TIMEOUT_OPTION,
        **INPUT_OPTION,
    }

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return input_contract(config, cls.produces)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        ports = list(config["ports"])
        bucket = TokenBucket(config["rate"])
        opened: list[Port] = []
        filtered: list[Port] = []
        counts = {"open": 0, "open|filtered": 0, CLOSED: 0, FILTERED: 0}

        def probe(item: tuple[str, int]) -> Port | None:
            host, port = item
            if hosts:
                # The pool admits its fill of probes at once: they wait for their turn of
                # the rate here, one at a time in the order they came (the semaphore's
                # waiters are woken first come first served), and then the host may be
                # out of time. The token goes back to the probe's first send, which takes
                # it before this greenlet yields.
                with turn:
                    while not bucket.take(1):
                        gevent.sleep(bucket.delay())
                    bucket.give_back(1)
                if hosts.expired(host):
                    hosts.skip(host)
                    return None
            name = payload_name(port, config["payloads"])
            state, reason, _ = UdpProbe(host, port, name, config["timeout"], config["retries"] + 1,
                                        bucket).run()
            return Port(host=host, port=port, protocol="udp", state=state, method="udp",
                        reason=reason)

        pool = gevent.pool.Pool(fd_budget(config["concurrency"]))
        hosts = HostClock(config["host_timeout"])
        turn = gevent.lock.Semaphore()
        total = self._total(ctx, config, len(ports))
        ctx.progress(0, total)  # the planned probes, before the first answer (--progress)
        for done, record in enumerate(pool.imap_unordered(probe, self._items(ctx, config, ports)), 1):
            if record is None:  # its host was out of time
                ctx.progress(done, total)
                continue
            counts[record.state] += 1
            if record.state.startswith("open"):
                opened.append(record)
                ctx.emit(record)
            elif record.state == FILTERED:
                filtered.append(record)
            ctx.progress(done, total)
        ctx.log.info("udp_scanner: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        late = hosts.summary("udp_scanner")
        if late:
            ctx.log.warning(late)
        publish_ports(ctx, "open_ports", opened, "udp")
        publish_ports(ctx, "port_states", filtered if config["record_filtered"] else [], "udp")

    @staticmethod
    def _items(ctx: NodeContext, config: dict[str, Any], ports: list[int]) -> Iterator[tuple[str, int]]:
        select = port_selector(ctx, ports)  # a sharded scan (--shard K/N) probes its own share only
        for address, _ in iter_hosts(ctx, config):
            try:
                host = str(ipaddress.ip_address(address))
            except ValueError:
                ctx.log.warning(f"udp_scanner: skipping '{address}': not an IP address")
                continue
            for port in ports if select is None else select(host):
                yield host, port

    @staticmethod
    def _total(ctx: NodeContext, config: dict[str, Any], nports: int) -> int | None:
        try:
            return share(ctx, len(ctx.get(config["input"])) * nports)
        except TypeError:
            return None
