"""Where scan modules get their hosts from, and how they publish results."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import gevent.pool
import voluptuous as vol
from pentora_plugins.kit.assumed import AssumedHosts
from pentora_plugins.kit.net.connect import fd_budget
from pentora_plugins.kit.records import Host, Target, field_of, sorted_records

from pentora import NodeContext

T = TypeVar("T")
R = TypeVar("R")

HOST_SOURCES = ("discovered_hosts", "targets")

INPUT_OPTION = {
    vol.Optional("input", default="discovered_hosts",
                 description="read hosts from discovered_hosts (alive only) or targets (all)"):
        vol.In(HOST_SOURCES),
}


def input_contract(config: dict[str, Any], produces: tuple[str, ...]
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (config.get("input", "discovered_hosts"),), produces


def iter_hosts(ctx: NodeContext, config: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(address, hostname) of each host to scan, deduplicated, in input order."""
    source = config.get("input", "discovered_hosts")
    items: Iterable[Any] = ctx.get(source)
    if isinstance(items, AssumedHosts):  # -Pn: the targets themselves, streamed, no record each
        yield from items.pairs()
        return
    # targets are de-duplicated (and streamed) by target_parser; a /8 must not build a set here.
    seen: set[str] | None = set() if source == "discovered_hosts" else None
    for item in items:
        if isinstance(item, Host):
            if not item.alive:
                continue
            address, hostname = item.address, item.hostname
        elif isinstance(item, Target):
            address, hostname = item.address, item.hostname
        elif isinstance(item, dict):
            if item.get("alive") is False:
                continue
            address, hostname = item["address"], item.get("hostname")
        else:
            address, hostname = str(item), None
        if seen is not None:
            if address in seen:
                continue
            seen.add(address)
        yield address, hostname


def publish(ctx: NodeContext, key: str, records: Iterable[Any]) -> list[Any]:
    """Sort records deterministically and store them under ``key``."""
    out = sorted_records(records)
    ctx.set(key, out)
    return out


def publish_ports(ctx: NodeContext, key: str, records: Iterable[Any], protocol: str) -> list[Any]:
    """Store port records of ``protocol`` under ``key``, beside those of the other protocols
    already there: a TCP and a UDP scanner (nmap's ``-sS -sU``) run side by side and both
    write ``open_ports``. A retry of the same node replaces its own protocol's records."""
    others = [r for r in ctx.get(key, None) or () if _protocol(r) != protocol]
    # No yield between the read and the write: on one hub, a parallel scanner cannot
    # publish in between and be lost.
    return publish(ctx, key, [*others, *records])


def _protocol(record: Any) -> str:
    return str(record.get("protocol", "tcp") if isinstance(record, dict)
               else getattr(record, "protocol", "tcp"))


def hostnames(ctx: NodeContext) -> dict[str, str]:
    """address → host name from ``discovered_hosts`` (when upstream): the name a service
    is asked for (HTTP Host header, TLS server name)."""
    hosts = ctx.get("discovered_hosts", None)
    if isinstance(hosts, AssumedHosts):
        return hosts.hostnames()
    if not isinstance(hosts, list):
        return {}
    out = {}
    for h in hosts:
        address, name = (h.address, h.hostname) if isinstance(h, Host) else (
            (h.get("address"), h.get("hostname")) if isinstance(h, dict) else (None, None))
        if address and name:
            out[address] = name
    return out


def per_item(ctx: NodeContext, fn: Callable[[T], R], items: Sequence[T],
             concurrency: int | None) -> Iterator[R]:
    """``fn`` over ``items`` as results come, with progress reported: on the node's pool
    (``max_parallel_targets``), or on a pool of ``concurrency`` greenlets, capped by the
    file descriptors this process may open, which ends with the loop."""
    own = gevent.pool.Pool(fd_budget(concurrency)) if concurrency is not None else None
    pool = own if own is not None else ctx.pool
    ctx.progress(0, len(items))  # the planned items, before the first ends (--progress)
    try:
        for done, result in enumerate(pool.imap_unordered(fn, items), 1):
            yield result
            ctx.progress(done, len(items))
    finally:
        if own is not None:
            own.kill()


# Where a DAG has no fingerprints upstream, the well-known web ports tell how to speak to a
# port: plain HTTP on 80 and 8080, TLS on 443 and 8443; any other port is tried both ways.
WEB_PORTS: dict[int, bool] = {80: False, 8080: False, 443: True, 8443: True}
UNFINGERPRINTED = ("open_ports", "discovered_hosts")


def unfingerprinted_ports(ctx: NodeContext, ports: Any = None
                          ) -> tuple[str, list[tuple[str, int, bool | None]]]:
    """(the key read, [(host, port, speaks TLS or None when unknown)]) for a module that
    wants fingerprinted ports and has none upstream: each open TCP port of ``open_ports``,
    else each live host of ``discovered_hosts`` on ``WEB_PORTS`` (a guess: callers drop the
    ports that refuse). ``ports`` (a port set or None) narrows either."""
    if ctx.has("open_ports"):
        found = [(str(field_of(p, "host")), int(field_of(p, "port"))) for p in ctx.get("open_ports")
                 if field_of(p, "protocol", "tcp") == "tcp" and field_of(p, "state", "open") == "open"]
        key = "open_ports"
    else:
        found = [(host, port) for host, _ in iter_hosts(ctx, {"input": "discovered_hosts"})
                 for port in WEB_PORTS]
        key = "discovered_hosts"
    items = [(host, port, WEB_PORTS.get(port)) for host, port in dict.fromkeys(found)
             if ports is None or port in ports]
    return key, items
