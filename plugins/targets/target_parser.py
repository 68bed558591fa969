"""The ``target_parser`` module type: target specs in, a lazy ``TargetSet`` out.

Specs (see ``_targetspec``): addresses, CIDR blocks, ranges, hostnames and ``@file``,
as a string (comma/whitespace separated) or a list. Hostnames resolve cooperatively
through gevent's resolver, concurrently on the node's pool; a failed lookup is logged and
recorded under ``target_errors``, never fatal. ``targets`` is a ``TargetSet``: sorted
numerically (IPv4 before IPv6, unresolved names last), de-duplicated and excluded on
intervals, optionally in a seeded shuffled order; nothing is materialised per address.
Targets are inputs, not findings: nothing is emitted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import voluptuous as vol
from pentora_plugins.kit.net.dns import resolve_name
from pentora_plugins.kit.records import Record
from pentora_plugins.kit.targetset import TargetSet
from pentora_plugins.kit.targetspec import TargetSpecError, exclusions, file_specs, iter_specs, parse_spec

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Bool, Duration, Int, Nullable, PositiveInt

__all__ = ["TargetError", "TargetParser", "TargetSet", "TargetSpecError", "resolve_name"]


@dataclass
class TargetError(Record):
    """A target that could not be used (a failed lookup)."""

    kind: ClassVar[str] = "target_error"
    spec: str
    error: str
    source: str = ""

    def sort_key(self) -> tuple[Any, ...]:
        return (self.spec, self.source)




# -- config validators (run by `pentora dag validate`, before anything resolves) --------

def _checked(parse: Callable[[Any], Iterable[Any]], what: str) -> Callable[[Any], list[str]]:
    def validate(value: Any) -> list[str]:
        if value is None:
            return []
        is_list = isinstance(value, list)
        if not is_list and not isinstance(value, str):
            raise vol.Invalid(f"expected {what} as a string or a list of strings, got {value!r}")
        items = value if is_list else [value]
        for i, item in enumerate(items):
            try:
                for _ in parse([item]):
                    pass
            except TargetSpecError as e:  # a list item's error points at its index
                raise vol.Invalid(str(e), path=[i] if is_list else None) from e
        return list(items)

    validate.__name__ = what
    return validate


def _exclude_file(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise vol.Invalid(f"expected a file path, got {value!r}")
    try:
        for _ in exclusions(file_specs(value)):
            pass
    except TargetSpecError as e:
        raise vol.Invalid(str(e)) from e
    return value


_exclude_file.__name__ = "file path"


class TargetParser(Module):
    """Parse target specs into a de-duplicated, lazily iterated TargetSet."""

    module_type = "target_parser"
    produces = ("targets", "target_errors")
    config_schema = {
        vol.Optional("targets", default=[],
                     description="addresses, CIDRs, ranges (a-b), hostnames or @file; "
                                 "string (comma/space separated) or list (default: --targets)"):
            _checked(iter_specs, "target specs"),
        vol.Optional("blocklists", default=[],
                     description="addresses, CIDR blocks or ranges never to scan"):
            _checked(lambda items: exclusions(iter_specs(items)), "exclusions"),
        vol.Optional("exclude_file", default=None,
                     description="file of CIDR blocks to exclude, one a line, # comments"):
            _exclude_file,
        vol.Optional("resolve", default=True,
                     description="resolve hostnames (else they stay names for the scanners)"): Bool(),
        vol.Optional("resolve_timeout", default="5s", description="time limit of one lookup"):
            Duration(min=0.001),
        vol.Optional("ipv6", default=True,
                     description="accept IPv6 targets and use AAAA answers"): Bool(),
        vol.Optional("shuffle", default=False,
                     description="iterate in a seeded pseudo-random order (streams)"): Bool(),
        vol.Optional("seed", default=None,
                     description="shuffle seed; omitted: a random one, logged"):
            Nullable(Int()),
        vol.Optional("max_targets", default=None,
                     description="fail when more targets than this (safety cap)"):
            Nullable(PositiveInt()),
    }
    # Tests and embedders may substitute the lookup (same signature as resolve_name).
    resolver: ClassVar[Callable[..., list[str]]] = staticmethod(resolve_name)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        intervals, hostnames, exclude, rank = self._parse(ctx, config)
        if not intervals and not hostnames:
            raise ModuleError("no targets given: pass --targets or set config 'targets' "
                              "(e.g. '10.0.0.0/24', 'localhost' or '@hosts.txt')", node=ctx.node_id)
        names: dict[int, str] = {}
        unresolved: list[tuple[str, str]] = []
        errors: list[TargetError] = []
        if config["resolve"]:
            self._resolve(ctx, config, hostnames, intervals, names, errors)
            # where specs overlap, the earlier spec names the source: keep spec order
            intervals.sort(key=lambda interval: rank[interval[2]])
        else:
            unresolved = list(hostnames.items())
        seed = config["seed"]
        if config["shuffle"] and seed is None:
            seed = random.SystemRandom().randrange(1 << 32)
            ctx.log.info("shuffling targets with seed {} (set seed: to repeat this order)", seed)
        targets = TargetSet(intervals, names=names, unresolved=unresolved, exclude=exclude,
                            seed=seed if config["shuffle"] else None, errors=errors)
        cap = config["max_targets"]
        if cap is not None and targets.size > cap:
            raise ModuleError(f"{targets.size} targets exceed max_targets {cap}: narrow the specs "
                              "or raise max_targets", node=ctx.node_id)
        if not targets:
            ctx.log.warning("no targets left after resolution and exclusions")
        ctx.log.info("{} targets", targets.size)
        ctx.set("targets", targets)
        ctx.set("target_errors", sorted(errors, key=lambda e: e.sort_key()))

    def _parse(self, ctx: NodeContext, config: dict[str, Any]) -> tuple[
            list[tuple[int, int, str]], dict[str, str], list[tuple[int, int]], dict[str, int]]:
        intervals: list[tuple[int, int, str]] = []
        hostnames: dict[str, str] = {}  # name -> source, first mention wins
        rank: dict[str, int] = {}  # source -> position in the specs
        # A DAG that names no targets scans those of the command line (--targets).
        specs = config["targets"] or ctx.vars.get("targets") or []
        try:
            for spec in iter_specs(specs):
                rank.setdefault(spec.source, len(rank))
                if spec.hostname is not None:
                    hostnames.setdefault(spec.hostname, spec.source)
                elif spec.version == 6 and not config["ipv6"]:
                    raise TargetSpecError(f"invalid target '{spec.text}': IPv6 target but "
                                          "ipv6 is false (set ipv6: true)")
                else:
                    intervals.append((spec.start, spec.end, spec.source))
            exclude = list(exclusions(iter_specs(config["blocklists"])))
            if config["exclude_file"]:
                exclude += exclusions(file_specs(config["exclude_file"]))
        except TargetSpecError as e:
            raise ModuleError(str(e), node=ctx.node_id) from e
        return intervals, hostnames, exclude, rank

    def _resolve(self, ctx: NodeContext, config: dict[str, Any], hostnames: dict[str, str],
                 intervals: list[tuple[int, int, str]], names: dict[int, str],
                 errors: list[TargetError]) -> None:
        resolver = type(self).resolver
        done = 0

        def lookup(name: str) -> tuple[str, list[str] | BaseException]:
            nonlocal done
            try:
                answer: list[str] | BaseException = resolver(
                    name, ipv6=config["ipv6"], timeout=config["resolve_timeout"])
            except (OSError, UnicodeError, TimeoutError) as e:
                answer = e
            done += 1
            ctx.progress(done, len(hostnames))
            return name, answer

        for name, answer in ctx.map(lookup, list(hostnames)):
            source = hostnames[name]
            if isinstance(answer, BaseException) or not answer:
                reason = _reason(answer)
                ctx.log.warning("cannot resolve '{}': {}", name, reason)
                errors.append(TargetError(spec=name, error=f"cannot resolve '{name}': {reason}",
                                          source=source))
                ctx.emit(errors[-1])  # in the JSONL output and the scan store, not only the log
                continue
            for address in answer:
                spec = parse_spec(address, source)
                intervals.append((spec.start, spec.end, source))
                names.setdefault(spec.start, name)


def _reason(answer: list[str] | BaseException) -> str:
    if not isinstance(answer, BaseException):
        return "no addresses"
    if isinstance(answer, OSError) and answer.strerror:
        return answer.strerror
    return str(answer) or type(answer).__name__
