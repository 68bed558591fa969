"""The layout's rules, checked on the imports themselves (an AST walk), not on strings.

- The core (``pentora/``) never imports the built-in plugins.
- Built-in plugins use only the public core: ``pentora``, ``pentora.schema``,
  ``pentora.testing``, ``pentora.cli``.
- Each area of ``plugins/`` imports only itself and ``kit``; ``kit`` imports no area.
- A ``_name`` module is private to the package that holds it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE, PLUGINS = ROOT / "pentora", ROOT / "plugins"
PUBLIC_CORE = {"pentora", "pentora.schema", "pentora.testing", "pentora.cli"}


def module_name(path: Path) -> str:
    if path.is_relative_to(PLUGINS):
        parts = ["pentora_plugins", *path.relative_to(PLUGINS).with_suffix("").parts]
    else:
        parts = ["pentora", *path.relative_to(CORE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every module ``path`` imports, ``from X import name`` giving
    ``X.name`` when ``name`` is a module of its own."""
    here = module_name(path)
    package = here if is_package(path) else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                if _is_module(f"{base}.{alias.name}"):
                    yield node.lineno, f"{base}.{alias.name}"


def _is_module(name: str) -> bool:
    top, _, rest = name.partition(".")
    base = {"pentora": CORE, "pentora_plugins": PLUGINS}.get(top)
    if base is None:
        return False
    path = base.joinpath(*rest.split(".")) if rest else base
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def area(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "pentora_plugins" and len(parts) > 1 else None


def violations(path: Path) -> Iterator[str]:
    here = module_name(path)
    package = here if is_package(path) else here.rpartition(".")[0]
    where = path.relative_to(ROOT)
    for line, target in imports(path):
        top = target.split(".")[0]
        if here.startswith("pentora.") or here == "pentora":
            if top == "pentora_plugins":
                yield f"{where}:{line}: the core imports the built-in plugin {target}"
            continue
        if top == "pentora" and target not in PUBLIC_CORE:
            yield (f"{where}:{line}: {target} is private to the core; use the public API "
                   f"({', '.join(sorted(PUBLIC_CORE))})")
        if top != "pentora_plugins":
            continue
        mine, theirs = area(here), area(target)
        if theirs is not None and theirs not in (mine, "kit"):
            yield f"{where}:{line}: area '{mine}' imports area '{theirs}' ({target}); share it through kit"
        parts = target.split(".")
        for i, part in enumerate(parts):
            owner = ".".join(parts[:i])
            if part.startswith("_") and not part.startswith("__") and not (
                    package == owner or package.startswith(owner + ".")):
                yield f"{where}:{line}: {target} is private to {owner}"
                break


def all_files() -> list[Path]:
    return sorted([*CORE.rglob("*.py"), *PLUGINS.rglob("*.py")])


def test_the_layout_rules_hold_for_every_import():
    found = [v for path in all_files() for v in violations(path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("source, expected", [
    ("from pentora_plugins.portscan.syn_scanner import SynScanner\n",
     "area 'checks' imports area 'portscan'"),
    ("from pentora._parse import load_dag\n", "pentora._parse is private to the core"),
    ("import pentora.cli._main\n", "pentora.cli._main is private to the core"),
    ("from pentora_plugins.tls import _wire\n",
     "pentora_plugins.tls._wire is private to pentora_plugins.tls"),
    ("from pentora_plugins.kit.records import Port\n", None),
    ("from pentora_plugins.checks._nope import x\n", None),  # its own package's private module
    ("from pentora.cli import CliError\n", None),
])
def test_the_walk_sees_each_kind_of_violation(tmp_path, monkeypatch, source, expected):
    """The rules catch what they are for (a file placed as plugins/checks/probe.py)."""
    fake = PLUGINS / "checks" / "_boundary_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source if self == fake
                        else Path.read_bytes(self).decode())
    found = list(violations(fake))
    if expected is None:
        assert found == []
    else:
        assert any(expected in f for f in found), found


def test_kit_imports_no_area():
    kit = [v for path in sorted((PLUGINS / "kit").rglob("*.py")) for v in violations(path)]
    assert kit == []
    for path in sorted((PLUGINS / "kit").rglob("*.py")):
        for line, target in imports(path):
            assert area(target) in (None, "kit"), f"{path.relative_to(ROOT)}:{line} imports {target}"
