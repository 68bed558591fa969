"""What every discovery module shares: config options, host input, result collection."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from time import monotonic
from typing import Any, ClassVar

import voluptuous as vol
from pentora_plugins.discovery._sweep import Answer, Probe, Sweep, Transport
from pentora_plugins.kit.inputs import HOST_SOURCES, iter_hosts, publish
from pentora_plugins.kit.records import Host

from pentora import Module, NodeContext
from pentora.schema import Bool, Duration, Int, Nullable, PositiveInt, Rate

DEFAULT_OUTPUT = "discovered_hosts"


def _key(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid(f"expected a DataContext key name, got {value!r}")
    return value


_key.__name__ = "key name"

OUTPUT_OPTION = {
    vol.Optional("output", default=DEFAULT_OUTPUT,
                 description="DataContext key to write the hosts to (e.g. icmp_hosts for a merger)"):
        _key,
}


def discovery_schema(timeout: str = "1s", retry: int = 1, rate: float = 1000,
                     raw: bool = False) -> dict[Any, Any]:
    """The options every sweeping discovery module takes (``raw``: it has a stateless raw
    method too, whose chunks ``concurrency`` sizes)."""
    window = "; raw sweeps: 65536 a chunk" if raw else ""
    return {
        vol.Optional("input", default="targets",
                     description="hosts to probe: targets (all) or discovered_hosts (alive only)"):
            vol.In(HOST_SOURCES),
        **OUTPUT_OPTION,
        vol.Optional("timeout", default=timeout,
                     description="how long to wait for an answer to each attempt"): Duration(min=0.001),
        vol.Optional("retry", default=retry,
                     description="further attempts for a host that has not answered" + (
                         "; raw sweeps: up to 8 more while the answers suggest replies were "
                         "lost" if raw else "")):
            Int(min=0),
        vol.Optional("rate", default=rate,
                     description="probes sent per second, retries included (0: unlimited)" + (
                         "; raw sweeps: the ceiling, lowered while replies are lost" if raw
                         else "")): Rate("probes"),
        vol.Optional("concurrency", default=None,
                     description=f"hosts awaiting an answer at once (default: max_parallel_targets{window})"):
            Nullable(PositiveInt()),
        vol.Optional("include_down", default=False,
                     description="also list hosts that did not answer, with alive: false"): Bool(),
        vol.Optional("emit", default=True,
                     description="emit each live host as it answers (false when a discovery_merger "
                                 "emits the merged hosts)"): Bool(),
    }


def total_of(items: Any) -> int | None:
    """How many items a collection holds, when it can tell without iterating."""
    size = getattr(items, "size", None)
    if isinstance(size, int):
        return size
    try:
        return len(items)
    except (TypeError, OverflowError):
        return None


class DiscoveryModule(Module):
    """Base of the sweeping discovery modules: probe each host once through a transport.

    A subclass sets ``method`` and builds its transport in ``transport()``; this class
    reads the hosts lazily, runs the ``Sweep``, emits each live host as it answers (unless
    config ``emit`` is false: a merger downstream emits them) and publishes the sorted list
    under config ``output``.
    """

    requires = ("targets",)
    produces = (DEFAULT_OUTPUT,)
    method: ClassVar[str] = ""

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (config.get("input", "targets"),), (config.get("output", DEFAULT_OUTPUT),)

    def transport(self, ctx: NodeContext, config: dict[str, Any]) -> Transport:
        raise NotImplementedError

    def window(self, ctx: NodeContext, config: dict[str, Any]) -> int:
        return int(config["concurrency"] or ctx.max_parallel)

    def raw_prober(self, ctx: NodeContext, config: dict[str, Any]) -> Any:
        """The stateless raw method (a ``_stateless.Prober``) when privileged, else None:
        the ``Sweep`` through ``transport()`` probes every host."""
        return None

    def raw_probes(self, todo: Iterator[Probe], leftover: list[Probe]) -> Iterator[Probe]:
        """The probes the raw method takes; it appends the others (hosts of a family it
        cannot probe raw) to ``leftover``, for the ``Sweep`` afterwards."""
        return todo

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        results = Results(ctx, config, self.method, total_of(ctx.get(config["input"])))
        skipped: dict[str, int] = {}
        prober = self.raw_prober(ctx, config)
        if prober is None:
            transport = self.transport(ctx, config)
            self.sweep(ctx, config, transport, probes(ctx, config, transport, skipped), results)
        else:
            from pentora_plugins.discovery._stateless import (  # imports this module
                CHUNK_HOSTS,
                StatelessSweep,
            )

            leftover: list[Probe] = []
            raw = StatelessSweep(prober, results, timeout=config["timeout"], retry=config["retry"],
                                 rate=config["rate"], chunk=config["concurrency"] or CHUNK_HOSTS,
                                 log=ctx.log, name=self.module_type)
            # A prober that cannot reach some hosts (arp_discovery: those off the link)
            # says why before they are read into a chunk, as a transport does.
            screen = prober if hasattr(prober, "skip_reason") else None
            raw.run(self.raw_probes(probes(ctx, config, screen, skipped), leftover), skipped)
            if leftover:
                self.sweep(ctx, config, self.transport(ctx, config), iter(leftover), results)
        for reason, count in sorted(skipped.items()):
            ctx.log.warning("{}: skipped {} host(s): {}", self.module_type, count, reason)
        results.publish()

    def sweep(self, ctx: NodeContext, config: dict[str, Any], transport: Transport,
              todo: Iterator[Probe], results: Results) -> None:
        sweep = Sweep(transport, timeout=config["timeout"], retry=config["retry"],
                      window=self.window(ctx, config), rate=config["rate"], on_result=results.add)
        sweep.run(todo)


def probes(ctx: NodeContext, config: dict[str, Any], transport: Transport | None,
           skipped: dict[str, int]) -> Iterator[Probe]:
    """A ``Probe`` per host of the input, lazily; names are resolved, unusable hosts counted."""
    for address, hostname in iter_hosts(ctx, {"input": config["input"]}):
        if _dotted_quad(address):
            text, version = address, 4
        else:
            ip = _ip(address)
            if ip is None:
                ip = _resolve(ctx, address)
                hostname = hostname or address
                if ip is None:
                    skipped["name did not resolve"] = skipped.get("name did not resolve", 0) + 1
                    continue
            text, version = str(ip), ip.version
        reason = transport.skip_reason(text, version) if transport else None
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        yield Probe(text, hostname, version)


def _dotted_quad(address: str) -> bool:
    """Whether ``address`` is an IPv4 address written as ``ipaddress`` writes it: a
    sweep's targets are, and checking that in C costs a tenth of parsing it."""
    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, address)) == address
    except (OSError, ValueError):  # not IPv4, or a NUL in it
        return False


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None


def _resolve(ctx: NodeContext, name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    from pentora_plugins.kit.net.dns import resolve_name  # the cooperative lookup target_parser uses

    try:
        answers = resolve_name(name)
    except (OSError, UnicodeError, TimeoutError) as e:
        ctx.log.warning("cannot resolve '{}': {}", name, e)
        return None
    return _ip(answers[0]) if answers else None


class Results:
    """Collects outcomes: emits live hosts at once, keeps the list, reports progress."""

    def __init__(self, ctx: NodeContext, config: dict[str, Any], method: str,
                 total: int | None) -> None:
        self.ctx = ctx
        self.key = config["output"]
        self.include_down = config["include_down"]
        self.emit = config["emit"]
        self.method = method
        self.total = total
        self.hosts: dict[str, Host] = {}
        self.done = 0
        self._reported = 0.0
        ctx.progress(0, total)  # the planned probes, before the first answer (--progress)

    def add(self, probe: Probe, answer: Answer | None, reason: str) -> None:
        self.done += 1
        if answer is not None:
            host = Host(address=probe.address, hostname=probe.hostname, alive=True,
                        method=self.method, methods=[self.method], latency_ms=answer.latency_ms,
                        ttl=answer.ttl, mac=answer.mac, reason=reason)
            self.hosts[probe.address] = host
            if self.emit:
                self.ctx.emit(host)
        elif self.include_down and probe.address not in self.hosts:
            self.hosts[probe.address] = Host(address=probe.address, hostname=probe.hostname,
                                             alive=False, method=self.method, methods=[self.method],
                                             reason=reason)
        now = monotonic()
        if now - self._reported >= 0.2:
            self._reported = now
            self.ctx.progress(self.done, self.total)

    def publish(self) -> list[Host]:
        self.ctx.progress(self.done, self.total)
        hosts: Any = self.hosts.values()
        earlier = self.ctx.get(self.key, None)
        if isinstance(earlier, list) and earlier:
            # Another discovery node of this scan wrote the same key (two methods left at the
            # default output, merged by a discovery_merger without inputs): add to its
            # hosts, per address, rather than replace them.
            from pentora_plugins.discovery.discovery_merger import merge_hosts  # it imports this module

            hosts = merge_hosts([earlier, hosts])
        return publish(self.ctx, self.key, hosts)


def latency_ms(sent_at: float, received_at: float) -> float:
    return round(max(0.0, received_at - sent_at) * 1000, 3)


def family_of(version: int) -> socket.AddressFamily:
    return socket.AF_INET if version == 4 else socket.AF_INET6
