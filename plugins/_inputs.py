"""Where scan modules get their hosts from, and how they publish results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import voluptuous as vol

from pentora import NodeContext

from .records import Host, Target, sorted_records

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


def hostnames(ctx: NodeContext) -> dict[str, str]:
    """address → host name from ``discovered_hosts`` (when upstream): the name a service
    is asked for (HTTP Host header, TLS server name)."""
    hosts = ctx.get("discovered_hosts", None)
    if not isinstance(hosts, list):
        return {}
    out = {}
    for h in hosts:
        address, name = (h.address, h.hostname) if isinstance(h, Host) else (
            (h.get("address"), h.get("hostname")) if isinstance(h, dict) else (None, None))
        if address and name:
            out[address] = name
    return out
