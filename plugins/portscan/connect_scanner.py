"""``connect_scanner``: a TCP connect scan that needs no privilege, IPv4 and IPv6.

One greenlet drives every probe (``_connect_engine.ConnectEngine``): non-blocking
sockets started in large batches, the unfinished ones watched by one epoll whose
descriptor the greenlet waits on through the gevent hub. One greenlet per port (about
6,000 ports/s on loopback) spends its time switching greenlets; this way a scan costs
little more than the kernel's own work for each connect().

A port whose connection succeeds is open, unless the socket connected to itself (on
loopback the kernel may pick the destination port as the source port) or to another
probe of this scan: artefacts, not listeners, counted as closed. Ports that do not
answer within ``timeout`` are tried again ``retries`` times, then called filtered;
ICMP unreachables and local firewall refusals are filtered at once. ``rate`` caps
connection attempts per second (token bucket). Running out of file descriptors shrinks
the number of sockets in flight and waits; the port is retried, never lost.

Outputs: ``open_ports`` (``Port(state="open", method="connect")``, each emitted as
found). Closed and filtered ports are counted in the log line that ends the scan.
"""

from __future__ import annotations

import _socket
import ipaddress
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from pentora_plugins.kit.inputs import INPUT_OPTION, input_contract, iter_hosts, publish_ports
from pentora_plugins.kit.net.connect import DEFAULT_CONCURRENCY, ConnectEngine, ScanStats, fd_budget
from pentora_plugins.kit.net.hosttime import HOST_TIMEOUT_OPTION, HostClock
from pentora_plugins.kit.portspec import parse_ports, port_spec_validator
from pentora_plugins.kit.records import Port
from pentora_plugins.kit.shard import port_selector, share
from voluptuous import Optional

from pentora import Module, NodeContext
from pentora.schema import Duration, Int, PositiveInt, Rate

CHECKPOINT_PROBES = 65536  # probes between two checkpoints of finished hosts (resume)

__all__ = ["ConnectEngine", "ConnectScanner", "DEFAULT_CONCURRENCY", "ScanStats", "fd_budget",
           "scan_hosts"]


def _canonical(address: str) -> str | None:
    """The address as the kernel prints it (``getsockname``), or None if not an IP."""
    family = _socket.AF_INET6 if ":" in address else _socket.AF_INET
    try:
        return _socket.inet_ntop(family, _socket.inet_pton(family, address))
    except (OSError, ValueError):
        pass
    try:
        return str(ipaddress.ip_address(address))  # e.g. a scoped fe80::1%eth0
    except ValueError:
        return None


def _addresses(ctx: NodeContext, hosts: Iterable[str]) -> Iterator[str]:
    for address in hosts:
        canonical = _canonical(address)
        if canonical is None:
            ctx.log.warning(f"connect_scanner: skipping '{address}': not an IP address")
        else:
            yield canonical


def scan_hosts(ctx: NodeContext, config: dict[str, Any], hosts: Iterable[str],
               filtered: list[Port] | None = None, total_hosts: int | None = None) -> list[Port]:
    """Connect-scan ``hosts`` (IP addresses) on ``config['ports']``; returns the open
    ports (each also emitted as found), and appends filtered ones to ``filtered``.

    Reads ``ports``, ``timeout``, ``retries``, ``rate``, ``concurrency`` and
    ``host_timeout`` from ``config``, with this module's defaults: the syn_scanner's
    fallback calls it too.
    """
    ports = tuple(parse_ports(config.get("ports", "top-1000"), "tcp"))
    found: list[Port] = []

    def on_result(host: str, port: int, state: str, reason: str) -> None:
        record = Port(host=host, port=port, protocol="tcp", state=state, method="connect",
                      reason=reason)
        if state == "open":
            found.append(record)
            ctx.emit(record)
        elif filtered is not None:
            filtered.append(record)

    clock = HostClock(config.get("host_timeout", 0))
    engine = ConnectEngine(timeout=config.get("timeout", 1.0), retries=config.get("retries", 1),
                           rate=config.get("rate", 0),
                           concurrency=config.get("concurrency", DEFAULT_CONCURRENCY),
                           on_result=on_result, on_progress=ctx.progress, host_timeout=clock)
    total = total_hosts * len(ports) if total_hosts is not None else None
    select = port_selector(ctx, ports)  # a sharded scan (--shard K/N) probes its own share only
    total = share(ctx, total)
    work = ((address, ports if select is None else select(address)) for address in _addresses(ctx, hosts))
    stats = engine.scan(work, total)
    ctx.log.info(f"connect_scanner: {stats.summary()}")
    late = clock.summary("connect_scanner")
    if late:
        ctx.log.warning(late)
    return found


def _host_count(ctx: NodeContext, config: dict[str, Any]) -> int | None:
    try:
        return len(ctx.get(config.get("input", "discovered_hosts")))
    except TypeError:
        return None


class ConnectScanner(Module):
    """TCP connect scan: open ports of every input host, no privilege needed."""

    module_type = "connect_scanner"
    description = "TCP connect scan (no privilege needed), IPv4 and IPv6"
    produces = ("open_ports",)
    config_schema = {
        Optional("ports", default="top-1000",
                 description="TCP ports to scan (1-1000, 22,80,443, - for all, top-100)"):
            port_spec_validator("tcp"),
        Optional("timeout", default="1s", description="how long one connect may take"):
            Duration(min=0.001),
        Optional("retries", default=1, description="extra tries for ports that did not answer"):
            Int(min=0),
        Optional("rate", default=0, description="connection attempts per second, 0 = unlimited"):
            Rate("connection attempts"),
        Optional("concurrency", default=DEFAULT_CONCURRENCY,
                 description="connects in flight at most (capped by the open-file limit)"):
            PositiveInt(),
        **HOST_TIMEOUT_OPTION,
        **INPUT_OPTION,
    }

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return input_contract(config, cls.produces)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        done = ctx.done_items()  # hosts a killed run of this scan finished (resume)
        hosts = (a for a in _addresses(ctx, (address for address, _ in iter_hosts(ctx, config)))
                 if a not in done)
        found: list[Port] = ctx.restored_records()
        # Hosts go to the engine in batches of about CHECKPOINT_PROBES probes, each host
        # checkpointed when its batch ends: big enough to keep the engine's batching.
        size = max(1, CHECKPOINT_PROBES // max(1, len(parse_ports(config.get("ports", "top-1000"), "tcp"))))
        while batch := list(itertools.islice(hosts, size)):
            opened = scan_hosts(ctx, config, batch, total_hosts=_host_count(ctx, config))
            found += opened
            per_host: dict[str, list[Port]] = {}
            for port in opened:
                per_host.setdefault(port.host, []).append(port)
            for host in batch:
                ctx.checkpoint(host, per_host.get(host, []))
        publish_ports(ctx, "open_ports", found, "tcp")
