"""``pentora plugins new NAME``: a new plugin package, ready to install, test and scan with.

The files come from the templates in ``pentora/_templates/plugin`` (package data), filled in
with ``string.Template``: what a plugin author gets is there to read as it is written.
"""

from __future__ import annotations

import argparse
import keyword
import re
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from .. import __version__
from ._common import EXIT_OK, EXIT_USAGE, CliError, make_orchestrator, out

# A module type, and the last part of the package's name: lower-case words joined by
# single underscores, as the built-in module types are named.
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MAX_NAME = 40

# template (under pentora/_templates/plugin) → the file it becomes, both with placeholders
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "module.py.tmpl": "$package/__init__.py",
    "test_module.py.tmpl": "tests/test_$name.py",
}


def add_parser(psub: Any, common: argparse.ArgumentParser) -> None:
    p = psub.add_parser(
        "new", parents=[common], help="write a new plugin package: a module type, its test, a README",
        description="Write an installable plugin package with one module type NAME, its entry "
                    "point, its tests (pentora.testing) and a README.")
    p.add_argument("name", metavar="NAME",
                   help="the module type, lower-case words joined by _ (banner_match); "
                        "the package is pentora_NAME")
    p.add_argument("--dir", metavar="PATH", type=Path,
                   help="the directory to write (new or empty; default: ./pentora-NAME with - for _)")
    p.set_defaults(func=cmd_plugins_new, cooperative=False)


def suggest(name: str) -> str:
    """The nearest valid name: lower case, other characters as single underscores."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    text = "_".join(words).lstrip("0123456789_")
    return text.removeprefix("pentora_")[:MAX_NAME].rstrip("_")


def check_name(name: str) -> None:
    hint = suggest(name)
    fix = f"; try '{hint}'" if hint and hint != name else ""
    if name.startswith("pentora_") or name == "pentora":
        raise CliError(f"plugin name '{name}': leave out the 'pentora' prefix, the package is named "
                       f"pentora_NAME already{fix}", EXIT_USAGE)
    if not NAME_RE.fullmatch(name):
        raise CliError(f"plugin name '{name}' is not a module type name: lower-case letters, digits "
                       f"and single underscores, starting with a letter{fix}", EXIT_USAGE)
    if len(name) > MAX_NAME:
        raise CliError(f"plugin name '{name}' is {len(name)} characters long; at most {MAX_NAME}",
                       EXIT_USAGE)


def substitutions(name: str) -> dict[str, str]:
    class_name = "".join(w.capitalize() for w in name.split("_"))
    if keyword.iskeyword(class_name):  # "None", "True", "False"
        class_name += "Module"
    return {"name": name, "package": f"pentora_{name}",
            "distribution": "pentora-" + name.replace("_", "-"), "class_name": class_name,
            "id_prefix": name.upper().replace("_", "-"),
            "pentora_version": __version__}


def target_dir(given: Path | None, subs: dict[str, str]) -> Path:
    path = given if given is not None else Path(subs["distribution"])
    if path.exists() and not path.is_dir():
        raise CliError(f"'{path}' is a file, not a directory: choose another with --dir PATH",
                       EXIT_USAGE)
    if path.is_dir() and any(path.iterdir()):
        raise CliError(f"the directory '{path}' exists and is not empty: remove it, or choose a new "
                       "or empty one with --dir PATH", EXIT_USAGE)
    return path


def render(subs: dict[str, str]) -> dict[str, str]:
    """Relative path → text of each file of the new package."""
    root = resources.files("pentora") / "_templates" / "plugin"
    return {Template(dest).substitute(subs): Template((root / src).read_text(encoding="utf-8"))
            .substitute(subs) for src, dest in FILES.items()}


def cmd_plugins_new(args: argparse.Namespace) -> int:
    check_name(args.name)
    subs = substitutions(args.name)
    orch = make_orchestrator(args)
    taken = orch.registry.modules.get(args.name)
    if taken is not None:
        raise CliError(f"module type '{args.name}' is already registered by the plugin "
                       f"'{taken.provider}'; a second one would stop pentora loading: pick "
                       "another NAME", EXIT_USAGE)
    path = target_dir(args.dir, subs)
    files = render(subs)
    try:
        for rel, text in files.items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_text(text, encoding="utf-8")
    except OSError as e:
        raise CliError(f"cannot write the plugin into '{path}': {e.strerror or e}; choose another "
                       "--dir", EXIT_USAGE) from e
    # pip reads "name[test]" as a project on the index, "./name[test]" as this directory.
    where = path.as_posix() if path.is_absolute() else f"./{path.as_posix()}"
    lines = [f"wrote {where}/: module type '{args.name}' in package {subs['package']}"]
    lines += [f"  {rel}" for rel in files]
    lines += ["next:", f"  pip install -e '{where}[test]'", f"  (cd '{where}' && python -m pytest)",
              f"  pentora modules show {args.name}"]
    out("\n".join(lines))
    return EXIT_OK
