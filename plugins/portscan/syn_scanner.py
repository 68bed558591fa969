"""``syn_scanner``: half-open TCP SYN scan on raw sockets.

Stateless sending: every probe's sequence number is a keyed hash of (our address, its
address, its port, our port) (``SeqHasher``), so a receiver greenlet matches a reply by
its ack number alone, with no table of probes sent: SYN-ACK means open, RST closed.
The only per-probe state is one byte per (host, port) of the current chunk of hosts,
needed to retry the silent ones and to call them filtered in the end.

Packets come from ``SynTemplate`` (IPv4 + TCP, checksums patched incrementally) and go
out on an ``IPPROTO_RAW`` socket from forked sender processes (``kit.net.rawsend``), 256 to a
``sendmmsg`` call, while this process's receiver greenlet reads the replies. They come
in on an ``IPPROTO_TCP`` raw socket with a BPF filter that keeps only segments with ACK
set addressed to our source ports, up to 256 a ``recvmmsg`` call (``kit.net.rawrecv``).
On loopback that socket also sees our own SYNs (no ACK: filtered in the kernel).

Rate: a receive buffer filling up (the receiver falls behind), replies it had no room
for (the kernel counts them) and probes a retry gets answers to (they were lost, not
filtered) halve the rate, during a pass as soon as they show (``_steer``); a calm
half second or a try that lost nothing raises it by a quarter, up to ``rate``
(``kit.net.ratelimit.AdaptiveRate``). A retry that finds as much lost after a cut as
before it is not cut again: that loss is the path's, not the rate's. Silent probes are resent after the
timeout, on a new source port; a reply to any try counts. Beyond ``retries``, tries go on
(up to EXTRA_TRIES) while the answers of the tries so far say some are likely still lost
(``_Chunk.lost_left``).

Memory: a chunk of at most CHUNK_PROBES probes is held at once, its hosts in arrays
(``_Chunk``), so a sweep's state does not grow with its range; findings do.

``-Pn`` sweeps of IPv4 targets (an ``AssumedHosts`` view as input) walk the target set's
index in batches, each one checkpoint item (``_synwalk``); sharded, a shard walks its own
(host, port) items only, a row a probe (``_ItemChunk``), and lists a silent probe as
filtered when its host answered another probe of the same chunk.

Half-open: our kernel has no socket for the connection, so it answers each SYN-ACK with
an RST, which tears down the half-open connection at the target. Source ports are taken
above Linux's ephemeral range (61000-65000), one per try, so no local socket owns them.

Without root or CAP_NET_RAW the raw sockets cannot be opened: the scan logs a warning
and runs the connect scan instead.

IPv6: the same, on ``AF_INET6`` raw sockets — ``Syn6Template`` packets (whole IPv6
headers: the source is the one the keyed hash was computed for) and replies whose
sender comes from ``recvmmsg`` (the socket gives no IPv6 header), matched by the
secret the chunk holds for it (``ReplyMatcher6``). A chunk holds hosts of one family.
IPv6 addresses are recorded in compressed form. Link-local addresses with a zone, and
every IPv6 host where the kernel has no raw IPv6 socket, are connect-scanned (with a
warning saying why).

Outputs: ``open_ports`` (``Port(state="open", method="syn")``, each also emitted as
found) and ``port_states``: the ports that stayed silent after every try
(``state="filtered"``). Closed ports are only counted, in the log.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Iterator
from typing import Any

import gevent
import voluptuous as vol
from gevent import socket
from pentora_plugins.kit.inputs import INPUT_OPTION, input_contract, iter_hosts, publish_ports
from pentora_plugins.kit.net.fds import FD_PATIENCE
from pentora_plugins.kit.net.hosttime import HOST_TIMEOUT_OPTION
from pentora_plugins.kit.net.rawrecv import open_raw_socket
from pentora_plugins.kit.net.rawsend import open_send_socket
from pentora_plugins.kit.net.rawtcp import SourceAddresses
from pentora_plugins.kit.portspec import port_spec_validator
from pentora_plugins.kit.records import Port
from pentora_plugins.kit.shard import share
from pentora_plugins.portscan._synchunk import _Chunk
from pentora_plugins.portscan._synscan import SPORT_HIGH, SynScan
from pentora_plugins.portscan._synwalk import Walk
from voluptuous import Optional

from pentora import Module, NodeContext
from pentora.schema import Bool, Duration, Int

CHUNK_PROBES = 1 << 20          # probes (hosts x ports) whose state is held at once
RECV_BUFFER = 32 << 20


def _source_port(value: object) -> int:
    port = Int(0, SPORT_HIGH)(value)
    if port and port < 1024:
        raise vol.Invalid(f"source_port must be 0 (random) or at least 1024, got {port}")
    return port


_source_port.__name__ = "port"


def open_receive_socket(family: int = socket.AF_INET, patience: float = FD_PATIENCE) -> Any:
    """The raw socket replies come in on; PermissionError without root or CAP_NET_RAW.
    Waits up to ``patience`` seconds for a free descriptor: a busy process scans late, not
    with the connect scan. An ``AF_INET6`` one hands over TCP segments without their IPv6
    header."""
    return open_raw_socket(family, socket.IPPROTO_TCP, RECV_BUFFER, patience)


def open_v6_sockets() -> tuple[tuple[Any, Any] | None, str]:
    """(receive, send) raw sockets for IPv6, or None and why not (a kernel without IPv6,
    or no descriptor free now: the scan may have no IPv6 host at all, so none is waited
    for): then the IPv6 hosts are connect-scanned. Called once the IPv4 ones are open,
    so privilege is not the problem."""
    try:
        recv = open_receive_socket(socket.AF_INET6, patience=0)
    except OSError as e:
        return None, e.strerror or str(e)
    try:
        return (recv, open_send_socket(socket.AF_INET6, patience=0)), ""
    except OSError as e:
        recv.close()
        return None, e.strerror or str(e)


class SynScanner(Module):
    """Half-open TCP SYN scan on raw sockets; connect scan without privilege."""

    module_type = "syn_scanner"
    description = "half-open TCP SYN scan (raw sockets: root or CAP_NET_RAW, else a connect scan)"
    produces = ("open_ports", "port_states")
    config_schema = {
        Optional("ports", default="top-1000",
                 description="TCP ports to probe (1-1000, 22,80,443, - for all, top-100)"):
            port_spec_validator("tcp"),
        Optional("rate", default=50000,
                 description="most packets per second (lowered while replies are lost), "
                             "0 = as fast as replies are received"): Int(min=0),
        Optional("timeout", default="1s", description="wait for replies after the last probe of a try"):
            Duration(min=0),
        Optional("retries", default=1,
                 description="extra tries for ports that stayed silent; up to 8 more while "
                             "replies are likely still lost"): Int(0, 10),
        Optional("source_port", default=0,
                 description="first source port (one per try); 0 = random in 61000-65000"): _source_port,
        Optional("record_filtered", default=True,
                 description="list silent ports as filtered in port_states (off for huge scans)"): Bool(),
        **HOST_TIMEOUT_OPTION,
        **INPUT_OPTION,
    }

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return input_contract(config, cls.produces)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        hosts = iter_hosts(ctx, config)
        # before the raw sockets: a process short of descriptors then never waits for the
        # route lookups' one behind them
        sources = SourceAddresses()
        try:
            self._scan(ctx, config, hosts, sources)
        finally:
            sources.close()

    def _scan(self, ctx: NodeContext, config: dict[str, Any], hosts: Iterator[tuple[str, str | None]],
              sources: SourceAddresses) -> None:
        try:
            recv_sock = open_receive_socket()
            try:
                send_sock = open_send_socket()
            except BaseException:
                recv_sock.close()
                raise
        except PermissionError as e:
            # One line, not an error: the connect scan finds the same open ports.
            ctx.log.warning(f"syn_scanner: raw sockets need root or CAP_NET_RAW (euid {os.geteuid()}: "
                            f"{e.strerror}): falling back to a TCP connect scan, which finds the "
                            "same open ports")
            filtered: list[Port] = []
            opened = connect_fallback(ctx, config, (a for a, _ in hosts), filtered)
            publish_ports(ctx, "open_ports", opened, "tcp")
            publish_ports(ctx, "port_states", filtered if config["record_filtered"] else [], "tcp")
            return
        v6_socks, v6_error = open_v6_sockets()
        scan = SynScan(ctx, config, recv_sock, send_sock, _probe_count(ctx, config), v6_socks, sources)
        ctx.progress(0, scan.total)  # the planned probes, before the first is sent (--progress)
        for record in ctx.restored_records():  # hosts a killed run of this scan finished (resume)
            scan.report_open(record, emit=False)
        done = ctx.done_items()
        receivers = [gevent.spawn(scan.receive)]
        if v6_socks is not None:
            receivers.append(gevent.spawn(scan.receive6))
        v6: list[str] = []
        walk = Walk.of(ctx, ctx.get(config["input"], None), len(scan.ports), CHUNK_PROBES)
        try:
            if walk is not None:
                _walk(ctx, scan, walk, done)
            else:
                per_chunk = max(1, CHUNK_PROBES // max(1, len(scan.ports)))
                todo = self._destinations(ctx, (a for a, _ in hosts if a not in done), v6,
                                          v6_socks is not None)
                for chunk in scan.chunks(todo, per_chunk):
                    found = len(scan.open)
                    scan.scan_chunk(chunk)
                    _checkpoint(ctx, chunk, scan.open[found:])
        finally:
            gevent.killall(receivers)
            for sock in (recv_sock, send_sock, *(v6_socks or ())):
                sock.close()
        if v6:
            why = (f"no raw IPv6 socket ({v6_error})" if v6_socks is None
                   else "addresses with a zone (%interface), which raw packets cannot name")
            ctx.log.warning(f"syn_scanner: connect-scanning {len(v6)} IPv6 host(s): {why}")
            scan.open += connect_fallback(ctx, config, v6,
                                          scan.filtered if config["record_filtered"] else [])
        pps = scan.sent / scan.send_time if scan.send_time else 0.0
        ctx.log.info(f"syn_scanner: {scan.sent} probes ({pps:,.0f}/s while sending), {len(scan.open)} "
                     f"open, {scan.closed} closed, {scan.silent} filtered")
        if scan.silent_hosts:
            ctx.log.info(f"syn_scanner: {scan.silent_hosts} host(s) answered no probe (down, or "
                         "every port filtered): their ports are not listed in port_states")
        if scan.dropped or scan.backoffs:
            ctx.log.info(f"syn_scanner: {scan.dropped} replies dropped by the receive buffer, "
                         f"rate lowered {scan.backoffs} time(s), to {scan.pace.rate:,.0f}/s at the end")
        late = scan.late.summary("syn_scanner")
        if late:
            ctx.log.warning(late)
        publish_ports(ctx, "open_ports", scan.open, "tcp")
        publish_ports(ctx, "port_states", scan.filtered, "tcp")

    @staticmethod
    def _destinations(ctx: NodeContext, addresses: Iterable[str], v6: list[str],
                      raw6: bool) -> Iterator[str]:
        """The addresses among ``addresses`` to SYN-scan: IPv4 ones as given, IPv6 ones in
        compressed form (the form records name them by, whatever form they came in).
        IPv6 ones go to ``v6`` instead (to be connect-scanned) without ``raw6`` (raw IPv6
        sockets) or with a zone; others are skipped with a warning (as are those with
        no route)."""
        pton, af = socket.inet_pton, socket.AF_INET
        for address in addresses:
            try:
                pton(af, address)  # strict dotted quad, in C: the common case, quickly
            except OSError:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    ctx.log.warning(f"syn_scanner: skipping '{address}': not an IP address")
                    continue
                if ip.version == 6:
                    # a zone picks the interface of a link-local address: a sockaddr_in6
                    # slot would need its index; the connect scan gives the kernel the zone
                    if not raw6 or ip.scope_id:
                        v6.append(address)
                        continue
                    address = ip.compressed
            yield address


def _walk(ctx: NodeContext, scan: SynScan, walk: Walk, done: frozenset[str]) -> None:
    """A ``-Pn`` sweep of IPv4 targets, batch by batch (``_synwalk``): each finished batch
    is one checkpoint item with its open ports."""
    if walk.shard is not None:
        # the walk holds this shard's items only: nothing to skip in a chunk
        scan.select = None
        ctx.log.info(f"syn_scanner: shard {walk.shard} walks its {walk.probes} of the "
                     f"{walk.targets.size * walk.nports} probes")
    finished = sum(b - a + 1 for a, b in walk.finished(done))
    if finished:
        unit = "hosts" if walk.shard is None else "walk steps"
        ctx.log.info(f"syn_scanner: {finished} {unit} finished by an earlier run are skipped")
    for item, chunks in walk.batches(scan, done):
        found = len(scan.open)
        for chunk in chunks:
            if len(chunk):
                scan.scan_chunk(chunk)
        ctx.checkpoint(item, scan.open[found:])


def _checkpoint(ctx: NodeContext, chunk: _Chunk, opened: list[Port]) -> None:
    """Each host of a finished chunk, with its open ports: a resumed scan skips it."""
    per_host: dict[str, list[Port]] = {}
    for port in opened:
        per_host.setdefault(port.host, []).append(port)
    for address in chunk.addresses():
        ctx.checkpoint(address, per_host.get(address, []))


def _probe_count(ctx: NodeContext, config: dict[str, Any]) -> int | None:
    try:
        return share(ctx, len(ctx.get(config["input"])) * len(config["ports"]))
    except TypeError:
        return None


def connect_fallback(ctx: NodeContext, config: dict[str, Any], hosts: Iterable[str],
                     filtered: list[Port]) -> list[Port]:
    """Connect-scan ``hosts`` on ``config['ports']`` with the same timeout, retries and
    rate; returns the open ports (emitted as found), appends filtered ones."""
    from pentora_plugins.portscan.connect_scanner import (
        scan_hosts,  # only needed without privilege, or for IPv6
    )

    return scan_hosts(ctx, config, hosts, filtered=filtered)
