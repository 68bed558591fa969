"""``pentora modules list|show`` and ``pentora plugins list|new``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ValidationError
from .._text import clean
from . import _plugin_new as plugin_new
from ._common import EXIT_OK, CliError, list_profiles, make_orchestrator, out, profile_path

if TYPE_CHECKING:  # the engine is imported when a command runs, not to build the parser
    from .._orchestrator import Orchestrator


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    mods = sub.add_parser("modules", help="module types")
    msub = mods.add_subparsers(dest="modules_cmd", metavar="COMMAND", required=True)
    p = msub.add_parser("list", parents=[common], help="registered module types")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_modules_list, cooperative=False)
    p = msub.add_parser("show", parents=[common], help="a module type and its config keys")
    p.add_argument("type")
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text",
                   help="markdown: the page of docs/modules/ that is generated")
    p.set_defaults(func=cmd_modules_show, cooperative=False)

    # "plugin new" reads as naturally as "plugins list": either spelling works.
    plugs = sub.add_parser("plugins", aliases=["plugin"], help="installed plugins: list, new")
    psub = plugs.add_subparsers(dest="plugins_cmd", metavar="COMMAND", required=True)
    p = psub.add_parser("list", parents=[common], help="plugins, their versions and hooks")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_plugins_list, cooperative=False)
    plugin_new.add_parser(psub, common)

    prof = sub.add_parser("profiles", parents=[common], help="list built-in DAG profiles")
    prof.add_argument("--format", choices=["text", "json"], default="text")
    prof.set_defaults(func=cmd_profiles, cooperative=False)


def _table(rows: Sequence[Sequence[str]]) -> str:
    # Names, descriptions and load errors come from installed plugins, anyone's code.
    rows = [[clean(c, None) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def modules_data(orch: Orchestrator) -> list[dict[str, Any]]:
    """What ``pentora modules list --format json`` prints."""
    mods = sorted(orch.pm.load_module_types().modules.values(), key=lambda m: m.name)
    return [{"name": m.name, "provider": m.provider, "description": m.description,
             "requires": list(m.cls.requires), "produces": list(m.cls.produces),
             "always_run": m.always_run} for m in mods]


def cmd_modules_list(args: argparse.Namespace) -> int:
    orch = make_orchestrator(args)
    if args.format == "json":
        out(json.dumps(modules_data(orch), indent=2))
        return EXIT_OK
    mods = sorted(orch.pm.load_module_types().modules.values(), key=lambda m: m.name)
    rows = [("TYPE", "PROVIDER", "DESCRIPTION")]
    rows += [(m.name, m.provider, m.description) for m in mods]
    out(_table(rows))
    return EXIT_OK


def cmd_modules_show(args: argparse.Namespace) -> int:
    from .._docgen import config_keys, module_markdown

    orch = make_orchestrator(args)
    if args.type not in orch.registry.modules:
        raise CliError(f"unknown module type '{args.type}'{orch.registry.nearest_hint(args.type)}")
    m = orch.registry.modules[args.type]
    keys = config_keys(m.cls.config_schema)
    if args.format == "json":
        out(json.dumps({"name": m.name, "provider": m.provider, "description": m.description,
                        "requires": list(m.cls.requires), "produces": list(m.cls.produces),
                        "always_run": m.always_run, "config": keys}, indent=2, default=str))
        return EXIT_OK
    if args.format == "markdown":
        out(module_markdown(m))
        return EXIT_OK
    lines = [f"{clean(m.name, None)} — {clean(m.description, None)}", f"  provider:   {m.provider}",
             f"  class:      {m.cls.__module__}.{m.cls.__qualname__}",
             f"  requires:   {', '.join(m.cls.requires) or '-'}",
             f"  produces:   {', '.join(m.cls.produces) or '-'}",
             f"  always_run: {'yes' if m.always_run else 'no'}", ""]
    if keys:
        rows = [("KEY", "TYPE", "DEFAULT", "DESCRIPTION")]
        for k in keys:
            default = "(required)" if k["required"] and k["default"] is None else (
                "-" if k["default"] is None else json.dumps(k["default"], default=str))
            rows.append((k["key"], k["type"], default, k["description"]))
        lines.append("config:")
        lines += ["  " + line for line in _table(rows).splitlines()]
    else:
        lines.append("config: none")
    out("\n".join(lines))
    return EXIT_OK


def plugins_data(orch: Orchestrator) -> dict[str, Any]:
    """What ``pentora plugins list --format json`` prints."""
    orch.pm.load_module_types()  # a plugin whose module type fails to import is broken
    plugins = [p for p in orch.pm.plugin_infos() if not p.name.startswith("pentora.")]
    return {"plugins": [p.__dict__ | {"hooks": list(p.hooks), "status": "ok"} for p in plugins],
            "broken": [{"name": n, "status": "broken", "error": e,
                        "distribution": (orch.pm.distributions.get(n) or (None,))[0]}
                       for n, e in orch.pm.load_report.broken]}


def cmd_plugins_list(args: argparse.Namespace) -> int:
    orch = make_orchestrator(args)
    if args.format == "json":
        out(json.dumps(plugins_data(orch), indent=2))
        return EXIT_OK
    orch.pm.load_module_types()
    plugins = [p for p in orch.pm.plugin_infos() if not p.name.startswith("pentora.")]
    broken = orch.pm.load_report.broken
    rows = [("NAME", "STATUS", "DISTRIBUTION", "VERSION", "HOOKS / ERROR")]
    for p in plugins:
        rows.append((p.name, "ok", p.distribution or "-", p.version or "-",
                     ", ".join(h.removeprefix("pentora_") for h in p.hooks)))
    # Skipped, every other command works without them: the error says what to fix.
    dists = orch.pm.distributions
    rows += [(name, "broken", *(dists.get(name) or ("-", "-")), err) for name, err in broken]
    out(_table(rows))
    return EXIT_OK


def _profile_description(orch: Orchestrator, name: str) -> tuple[str, str]:
    """A profile's file and the ``description:`` of its DAG; a profile that does not
    parse is still listed, its description saying so (``dag validate`` names every
    problem)."""
    from .._parse import load_dag

    path = profile_path(orch, name)
    if path is None:  # listed, then gone: another process removed it meanwhile
        return "", "(no longer installed)"
    try:
        return str(path), load_dag(path).description
    except ValidationError as e:
        count = len(e.problems)
        return str(path), (f"(does not parse: {count} problem{'s' if count != 1 else ''}, "
                           f"the first: {e.problems[0].message}; see `pentora dag validate {name}`)")


def profiles_data(orch: Orchestrator) -> list[dict[str, Any]]:
    """What ``pentora profiles --format json`` prints."""
    profiles = [(name, *_profile_description(orch, name)) for name in list_profiles(orch)]
    return [{"name": n, "description": d, "path": p} for n, p, d in profiles]


def cmd_profiles(args: argparse.Namespace) -> int:
    orch = make_orchestrator(args)
    if args.format == "json":
        out(json.dumps(profiles_data(orch), indent=2))
        return EXIT_OK
    profiles = [(name, *_profile_description(orch, name)) for name in list_profiles(orch)]
    if not profiles:
        out("no profiles installed")
        return EXIT_OK
    out(_table([("NAME", "DESCRIPTION"), *((n, d) for n, _, d in profiles)]))
    return EXIT_OK
