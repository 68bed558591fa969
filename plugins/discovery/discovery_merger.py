"""``discovery_merger``: one host list from several discovery outputs, merged per address."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gevent
import voluptuous as vol
from pentora_plugins.discovery._common import DEFAULT_OUTPUT, OUTPUT_OPTION
from pentora_plugins.kit.assumed import AssumedHosts, assumed_host
from pentora_plugins.kit.inputs import publish
from pentora_plugins.kit.records import Host
from pentora_plugins.kit.targetset import TargetSet

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Bool, Int, StrList

EMIT_YIELD = 4096  # records emitted between two yields to the event loop
MERGE_YIELD = 8192  # hosts merged between two yields


def as_host(item: Any) -> Host:
    """A ``Host`` from a Host, a dict of Host fields or a bare address (taken as alive)."""
    if isinstance(item, Host):
        return item
    if isinstance(item, dict):
        fields = {k: v for k, v in item.items() if k in Host.__dataclass_fields__}
        return Host(**fields)
    return Host(address=str(getattr(item, "address", item)),
                hostname=getattr(item, "hostname", None))


def _joined(values: Iterable[str | None]) -> str:
    """``icmp+arp`` from ``icmp``, ``arp``, ``icmp+arp``: unique parts, first seen first."""
    parts: dict[str, None] = {}
    for value in values:
        for part in (value or "").split("+"):
            if part:
                parts.setdefault(part, None)
    return "+".join(parts)


def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def merge_hosts(groups: Iterable[Iterable[Any]]) -> list[Host]:
    """Merge per address: alive if any says so; methods joined; the lowest latency; TTL
    and MAC from whichever has them (live answers first). Unsorted.

    Yields to the event loop every ``MERGE_YIELD`` hosts: a sweep's lists are tens of
    thousands, and the outputs, the store's writer and the other nodes go on meanwhile."""
    by_address: dict[str, list[Host]] = {}
    n = 0
    for group in groups:
        for item in group:
            host = item if type(item) is Host else as_host(item)
            records = by_address.get(host.address)
            if records is None:
                by_address[host.address] = [host]
            else:
                records.append(host)
            n += 1
            if not n % MERGE_YIELD:
                gevent.sleep(0)
    out = []
    for n, records in enumerate(by_address.values(), 1):
        out.append(_merge(records))
        if not n % MERGE_YIELD:
            gevent.sleep(0)
    return out


def _merge(records: list[Host]) -> Host:
    if len(records) == 2:
        a, b = records
        if (type(a) is type(b) is Host and a.alive and b.alive and a.hostname == b.hostname
                and a.method == "+".join(a.methods) and b.method == "+".join(b.methods)
                and all(m and "+" not in m for m in a.methods + b.methods)):
            # two live answers, the sweep's usual case, merged without the general path's
            # generators (a /16 merged in well under a second)
            methods = list(dict.fromkeys(a.methods + b.methods))
            latency = (a.latency_ms if b.latency_ms is None else b.latency_ms
                       if a.latency_ms is None else min(a.latency_ms, b.latency_ms))
            reason = "+".join(dict.fromkeys(p for r in (a.reason, b.reason) if r
                                            for p in r.split("+") if p)) or None
            return Host(address=a.address, hostname=a.hostname, alive=True, method="+".join(methods),
                        methods=methods, latency_ms=latency,
                        ttl=a.ttl if a.ttl is not None else b.ttl,
                        mac=a.mac if a.mac is not None else b.mac, reason=reason)
    return _merge_any(records)


def _merge_any(records: list[Host]) -> Host:
    alive = [r for r in records if r.alive]
    told = alive or records  # what the merged host is made of: the answers, if any
    latencies = [r.latency_ms for r in alive if r.latency_ms is not None]
    # A record read back from JSON may carry methods only, or (older) method only.
    method = _joined("+".join(r.methods) or r.method for r in told)
    return Host(
        address=records[0].address,
        hostname=_first(r.hostname for r in records),
        alive=bool(alive),
        method=method,
        methods=method.split("+") if method else [],
        latency_ms=min(latencies) if latencies else None,
        ttl=_first(r.ttl for r in told + records),
        mac=_first(r.mac for r in told + records),
        reason=_joined(r.reason for r in told) or None,
    )


class DiscoveryMerger(Module):
    """Merge the host lists of several discovery nodes into one."""

    module_type = "discovery_merger"
    # One discovery method failing (no privilege for ICMP, say) must not stop the scan.
    trigger_rule = "one_success"
    description = "merge discovery outputs per address (alive if any says so; icmp+arp…)"
    requires = ()
    produces = (DEFAULT_OUTPUT,)
    config_schema = {
        vol.Optional("inputs", default=[DEFAULT_OUTPUT],
                     description="DataContext keys of the host lists to merge (default: "
                                 "discovered_hosts, which discovery nodes left at their default "
                                 "output add to)"):
            vol.All(StrList(), vol.Length(min=1)),
        **OUTPUT_OPTION,
        vol.Optional("include_down", default=False,
                     description="keep hosts that no input reports alive (alive: false)"): Bool(),
        vol.Optional("assume_up", default=False,
                     description="take every target as up, unprobed (nmap's -Pn): reads targets, "
                                 "not the inputs"): Bool(),
        vol.Optional("emit_limit", default=65536,
                     description="with assume_up: emit a host record for each target only when "
                                 "there are at most this many (beyond, the hosts with findings "
                                 "are listed, as nmap does with -Pn --open)"): Int(min=0),
        vol.Optional("emit", default=False,
                     description="emit the merged live hosts, one record each (set emit: false "
                                 "on the inputs then)"):
            Bool(),
    }

    @staticmethod
    def _assume_up(ctx: NodeContext, config: dict[str, Any]) -> None:
        """Every target as a live host. A ``TargetSet`` is published as a lazy view
        (``AssumedHosts``): a Host each would make a /8 cost gigabytes. Its hosts are
        emitted one by one, never held, up to ``emit_limit``; beyond it none are, and the
        outputs list the hosts that have findings (nmap's way with -Pn --open)."""
        targets = ctx.get("targets")
        if isinstance(targets, TargetSet):
            hosts: Any = AssumedHosts(targets)
            ctx.set(config["output"], hosts)
        else:  # a list some other node set: small, kept as records
            hosts = publish(ctx, config["output"], [assumed_host(t.address, t.hostname)
                                                     if hasattr(t, "address") else assumed_host(str(t))
                                                     for t in targets])
        count = hosts.size if isinstance(hosts, AssumedHosts) else len(hosts)
        limit = config["emit_limit"]
        if count > limit:
            ctx.log.info("discovery_merger: {:,} targets taken as up, unprobed (assume_up); more "
                         "than emit_limit ({:,}): no host record each, the outputs list the hosts "
                         "with findings", count, limit)
            return
        ctx.log.info("discovery_merger: {:,} targets taken as up, unprobed (assume_up)", count)
        for n, host in enumerate(hosts, 1):  # no probe emitted them: the outputs list them here
            ctx.emit(host)
            if not n % EMIT_YIELD:
                gevent.sleep(0)  # let the outputs and the store's writer keep up

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if config.get("assume_up") is True:
            return ("targets",), (config.get("output", DEFAULT_OUTPUT),)
        return (tuple(dict.fromkeys(config.get("inputs", (DEFAULT_OUTPUT,)))),
                (config.get("output", DEFAULT_OUTPUT),))

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        if config["assume_up"]:
            self._assume_up(ctx, config)
            return
        if not any(ctx.has(key) for key in config["inputs"]):
            # Every method was switched off or failed: no host is known to be up, and
            # scanning none would look like a clean result.
            raise ModuleError(f"none of {', '.join(config['inputs'])} was written (every "
                              "discovery node was skipped or failed); to scan the targets "
                              "without discovery, set assume_up (nmap's -Pn)", node=ctx.node_id)
        groups = []
        for key in config["inputs"]:
            value = ctx.get(key, None)
            if value is None:
                # A method switched off by a condition (--set icmp=false) is no news; one
                # whose node failed is.
                failed = any(r.status == "failed" for r in ctx.node_records().values())
                log = ctx.log.warning if failed else ctx.log.info
                log("discovery_merger: '{}' is missing (its node did not run); merging the rest", key)
                continue
            groups.append(value)
        hosts = [h for h in merge_hosts(groups) if h.alive or config["include_down"]]
        hosts = publish(ctx, config["output"], hosts)
        if config["emit"]:
            for n, host in enumerate(hosts, 1):
                if host.alive:
                    ctx.emit(host)
                if not n % EMIT_YIELD:
                    gevent.sleep(0)  # let the outputs and the store's writer keep up
