"""Shared CLI pieces: exit codes, plugin options, DAG loading, ``--set`` parsing."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import DagParseError, PentoraError, Problem
from .._text import clean

if TYPE_CHECKING:  # the engine is imported when a command runs, not to build the parser
    from .._orchestrator import Orchestrator
    from .._plugins import PentoraPluginManager

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
EXIT_STORE = 4  # a store the run needs is damaged: a repair, not other input, fixes it
# The run found what the command line said to fail on (``--fail-on SEVERITY``): a CI gate.
EXIT_FINDINGS = 5
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


class CliError(PentoraError):
    """A user error on the command line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_INVALID) -> None:
        self.code = code
        super().__init__(message)


def plugin_options(plugin_flag: bool = True) -> argparse.ArgumentParser:
    """Options every command shares. ``scan`` gives ``-p`` its own meaning (ports or
    ``no:NAME``), so it asks for a parent without it."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("plugins and logging")
    if plugin_flag:
        g.add_argument("-p", dest="plugin_flags", action="append", default=[], metavar="no:NAME",
                       help="disable the plugin NAME (repeatable)")
    g.add_argument("--hooks", action="append", default=[], metavar="FILE",
                   help="load @pentora.hookimpl functions from a .py file (repeatable)")
    g.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=LOG_LEVELS)
    g.add_argument("-v", dest="verbose", action="count", default=0,
                   help="more log output: -v INFO, -vv DEBUG (as nmap's -v; --log-level is the same)")
    g.add_argument("--log-format", default="text", choices=["text", "json"])
    g.add_argument("--log-file", metavar="FILE", help="write logs to FILE instead of stderr")
    # SUPPRESS: not given after the command, it leaves the value `pentora --no-color CMD` set.
    g.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS,
                   help="no colour in logs, progress and tables (also: NO_COLOR set to anything)")
    return p


def log_level(args: argparse.Namespace) -> str:
    """``--log-level``, or what ``-v``/``-vv`` ask for when that says more."""
    level = str(args.log_level)
    verbose = getattr(args, "verbose", 0)
    if verbose:
        asked = "INFO" if verbose == 1 else "DEBUG"
        level = min(level, asked, key=LOG_LEVELS.index)
    return level


def disabled_plugins(args: argparse.Namespace) -> list[str]:
    out = []
    for flag in getattr(args, "plugin_flags", []):
        if not flag.startswith("no:") or len(flag) == 3:
            raise CliError(f"-p takes no:NAME to disable a plugin, got '{flag}'", EXIT_USAGE)
        out.append(flag[3:])
    return out


def make_orchestrator(args: argparse.Namespace) -> Orchestrator:
    """An Orchestrator on the run's plugin manager (``args.plugin_manager``, built once by
    ``main``), or on a new one honouring ``-p no:NAME`` and ``--hooks``."""
    from .._orchestrator import Orchestrator

    pm = getattr(args, "plugin_manager", None)
    if pm is not None:
        disabled_plugins(args)  # still refuse a malformed -p
        return Orchestrator(pm=pm)
    return Orchestrator(disabled=disabled_plugins(args), hook_files=getattr(args, "hooks", []))


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE``: VALUE read as YAML (true, 3, 1.5, [a, b], text) with the bounds of
    a DAG file; what does not parse as YAML is text. A value YAML refuses (an alias bomb, a
    tag, an integer of over 4,300 digits, a duplicate key) is a usage error naming KEY."""
    from .._input import InputError
    from .._yaml import YamlSyntaxError, load_yaml  # PyYAML only when a value is given

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CliError(f"--set takes KEY=VALUE with KEY a name, got '{_cut(item)}'", EXIT_USAGE)
        if not raw.strip():
            out[key] = ""
            continue
        source = f"--set {key}"
        try:
            out[key] = load_yaml(raw, source, what="--set value")
        except YamlSyntaxError:
            out[key] = raw
        except InputError as e:
            line = f" (line {e.line} of the value)" if e.line and "\n" in raw.strip() else ""
            raise CliError(f"{source}: {e.message}{line}", EXIT_USAGE) from None
    return out


def checked_sets(dag: Any, items: list[str]) -> dict[str, Any]:
    """``parse_sets(items)``, refusing a KEY that ``dag`` never uses (a usage error): a typo
    would otherwise run the scan with the default unnoticed."""
    sets = parse_sets(items)
    unused = unused_vars(dag, sets)
    if unused:
        raise CliError(f"--set {unused[0]}: DAG '{dag.name}' has no var named '{unused[0]}' (its vars: "
                       f"{', '.join(sorted(dag.vars)) or 'none'}); a typo would otherwise go unnoticed",
                       EXIT_USAGE)
    return sets


def unused_vars(dag: Any, names: Any) -> list[str]:
    """Which of ``names`` (vars a caller sets) ``dag`` never uses, sorted: a typo that would
    otherwise leave the var's default in force unnoticed."""
    return sorted(set(names) - names_used(dag))


def _cut(text: str, limit: int = 80) -> str:
    """A command-line argument quoted in a message: at most ``limit`` characters of it."""
    return text if len(text) <= limit else text[:limit] + "…"


def _profile_dirs(orch: Orchestrator) -> list[Path]:
    """Every directory the ``pentora_profile_dirs`` hook names, in hook-call order."""
    return profile_dirs(orch.pm)


def profile_dirs(pm: PentoraPluginManager) -> list[Path]:
    dirs: list[Path] = []
    for result in pm.hook.pentora_profile_dirs():
        dirs += [Path(d) for d in (result if isinstance(result, list) else [result])]
    return dirs


def profile_path(orch: Orchestrator, name: str) -> Path | None:
    for d in _profile_dirs(orch):
        candidate = d / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def load_dag_arg(orch: Orchestrator, arg: str) -> Any:
    """A DAG file path, or the name of a profile (``standard`` → ``standard.yaml``)."""
    from .._parse import load_dag

    path = Path(arg)
    if not path.exists() and "/" not in arg and not arg.endswith((".yaml", ".yml", ".json")):
        found = profile_path(orch, arg)
        if found is None:
            raise DagParseError(Problem(f"no DAG file or profile named '{arg}'; profiles: "
                                        + (", ".join(list_profiles(orch)) or "none")))
        path = found
    return load_dag(path)


def list_profiles(orch: Orchestrator) -> list[str]:
    return profile_names(orch.pm)


def profile_names(pm: PentoraPluginManager) -> list[str]:
    """The profiles' names from the plugin manager alone: shell completion lists them
    without building the registry (which imports every module type)."""
    return sorted({p.stem for d in profile_dirs(pm) for p in d.glob("*.yaml")})


def echo(text: str, err: bool = False) -> None:
    """Write ``text`` and a line break to stdout (stderr with ``err``) for a person to read.

    The last line of defence for the terminal: any character a terminal would act on (ESC,
    C1 controls, bidi and zero-width characters) is shown escaped, line breaks kept. The
    printers clean each field first (``clean_text``), so tables keep their alignment; this
    catches what one forgets. Text from ``json.dumps`` (ASCII, controls escaped) passes
    unchanged. Machine output written with ``-o -`` does not come this way: its format
    has its own escaping rules."""
    text = clean(text, None, lines=True)
    stream = sys.stderr if err else sys.stdout
    stream.write(text + ("\n" if not text.endswith("\n") else ""))


out = echo


def names_used(dag: Any) -> set[str]:
    """The names a ``--set`` can reach: declared vars, and names the conditions and
    ``${var}`` references in node configs use (a var may be left undeclared there)."""
    from .._condition import Condition
    from .._interpolate import VAR_REFERENCE

    names = set(dag.vars)
    for node in dag.nodes:
        if node.condition:
            with contextlib.suppress(PentoraError):
                names |= Condition(node.condition).names
        names |= set(VAR_REFERENCE.findall(json.dumps(node.config, default=str)))
    return names
