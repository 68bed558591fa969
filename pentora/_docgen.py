"""The generated parts of the documentation, drawn from the code itself.

- a module type's config table, from its voluptuous ``config_schema`` (what
  ``pentora modules show TYPE`` prints, as Markdown with ``--format markdown``);
- each module page's facts (plugin, DataContext keys read and written, trigger rule);
- the index of module types in ``docs/modules/README.md``;
- the hook reference in ``docs/writing-plugins.md``, from the docstrings of
  ``pentora/_hookspecs.py``.

Each generated part sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``
markers; the text around them is written by hand. From the repository root::

    .venv/bin/python -m pentora._docgen            # rewrite what is stale, create missing pages
    .venv/bin/python -m pentora._docgen --check    # exit 1, naming the stale files

Only the module types of the built-in plugins (those the ``pentora`` distribution itself
declares as entry points) get pages: a third-party plugin installed in the same
environment documents its own.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import voluptuous as vol

from . import _hookspecs
from ._execute import CoreExecute
from ._module import Module
from ._notify import NODE_HOOKS
from ._orchestrator import Orchestrator
from ._registry import ModuleType
from .schema import describe_validator

REGENERATE = ".venv/bin/python -m pentora._docgen"
DISTRIBUTION = "pentora"
HOOK_DOC = "writing-plugins.md"
MODULE_DIR = "modules"
MODULE_INDEX = "README.md"


# -- config tables ---------------------------------------------------------------------------


def config_keys(schema: Any) -> list[dict[str, Any]]:
    """Each config key of a module schema: name, type, default, required, description."""
    if isinstance(schema, vol.Schema):
        schema = schema.schema
    keys = []
    for marker, validator in (schema or {}).items():
        name = getattr(marker, "schema", marker)
        default = getattr(marker, "default", vol.UNDEFINED)
        if callable(default) and default is not vol.UNDEFINED:
            default = default()
        keys.append({
            "key": str(name),
            "type": describe_validator(validator),
            "required": isinstance(marker, vol.Required),
            "default": None if default is vol.UNDEFINED else default,
            "description": getattr(marker, "description", None) or "",
        })
    return keys


def _cell(text: str) -> str:
    """Text for one Markdown table cell: pipes escaped, on one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    """Inline code that may itself hold backticks."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def config_table(mt: ModuleType) -> str:
    """The module type's config keys as a Markdown table (or a sentence when it has none)."""
    keys = config_keys(mt.cls.config_schema)
    if not keys:
        return f"`{mt.name}` takes no configuration."
    rows = ["| option | type | default | description |", "| --- | --- | --- | --- |"]
    for k in keys:
        if k["required"] and k["default"] is None:
            default = "required"
        else:
            default = _cell(_code(json.dumps(k["default"], default=str, ensure_ascii=False)))
        rows.append(f"| `{k['key']}` | {_cell(k['type'])} | {default} | {_cell(k['description'])} |")
    return "\n".join(rows)


# -- module facts ----------------------------------------------------------------------------


def _contract(mt: ModuleType) -> list[str]:
    """What the module reads and writes, as Markdown list items: the keys of its contract
    with the default configuration, and whether the configuration changes them."""
    cls = mt.cls
    own = getattr(cls.contract, "__func__", None) is not getattr(Module.contract, "__func__", None)
    try:
        requires, produces = cls.contract(mt.schema()({}))
    except vol.Invalid:  # a required option: only a configuration says
        return ["- **DataContext keys:** named by its configuration (see below)"]
    lines = [f"- **Reads:** {_keys(requires) or 'nothing'}", f"- **Writes:** {_keys(produces) or 'nothing'}"]
    if own:
        lines[-1] += " (with the default configuration; its options change the keys)"
    return lines


def _keys(keys: Iterable[str]) -> str:
    return ", ".join(f"`{k}`" for k in keys)


TRIGGER_RULES = {
    "all_success": "once every upstream node completed (`all_success`)",
    "one_success": "once its upstream nodes are settled, if at least one completed (`one_success`)",
    "all_done": "once its upstream nodes are settled, however they ended (`all_done`)",
}


def module_facts(mt: ModuleType) -> str:
    """Plugin, DataContext keys read and written, and when it runs, as a Markdown list."""
    lines = [f"- **Plugin:** `{mt.provider}` (`-p no:{mt.provider}` disables it); class "
             f"`{mt.cls.__module__}.{mt.cls.__qualname__}`", *_contract(mt)]
    rule = TRIGGER_RULES.get(mt.cls.trigger_rule, f"`{mt.cls.trigger_rule}`")
    if mt.always_run:
        lines.append("- **Runs:** always, once its upstream nodes are settled, and after a "
                     "cancellation or timeout too (`always_run`)")
    else:
        lines.append(f"- **Runs:** {rule}")
    return "\n".join(lines)


def module_markdown(mt: ModuleType) -> str:
    """What ``pentora modules show TYPE --format markdown`` prints: title, facts, config."""
    return "\n\n".join([f"# `{mt.name}`", mt.description, module_facts(mt),
                        "## Configuration", config_table(mt)]) + "\n"


def module_index(modules: list[ModuleType]) -> str:
    rows = ["| type | plugin | what |", "| --- | --- | --- |"]
    for mt in modules:
        rows.append(f"| [`{mt.name}`]({mt.name}.md) | `{mt.provider}` | {_cell(mt.description)} |")
    return "\n".join(rows)


def module_page(mt: ModuleType) -> str:
    """A new page: the generated parts, and room for the text written by hand."""
    return (f"# `{mt.name}`\n\n{mt.description}\n\n{_block('facts', module_facts(mt))}\n\n"
            f"## What it does\n\n{inspect.getdoc(mt.cls) or mt.description}\n\n"
            f"## Configuration\n\n{_block('config', config_table(mt))}\n")


def builtin_modules(orch: Orchestrator) -> list[ModuleType]:
    """The module types registered by the built-in plugins, by name: the plugins loaded
    from entry points of the pentora distribution."""
    builtin = {name for name, (dist, _) in orch.pm.distributions.items() if dist == DISTRIBUTION}
    return sorted((mt for mt in orch.registry.modules.values() if mt.provider in builtin),
                  key=lambda m: m.name)


# -- hook reference --------------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    name: str
    group: str
    signature: str
    firstresult: bool
    doc: str


def hooks() -> list[Hook]:
    """Every hook spec of ``pentora/_hookspecs.py``, in file order, with its group (the
    ``# -- NAME ---`` comment above it)."""
    source = inspect.getsource(_hookspecs)
    sections = [(n, m.group(1)) for n, line in enumerate(source.splitlines(), 1)
                if (m := re.match(r"# -- (\w+) -", line))]
    out = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        fn = getattr(_hookspecs, node.name)
        opts = getattr(fn, "pentora_spec", None)
        if opts is None:
            continue
        group = next((name for line, name in reversed(sections) if line < node.lineno), "")
        out.append(Hook(node.name, group, _signature(fn), bool(opts.get("firstresult")),
                        inspect.getdoc(fn) or ""))
    return out


def _signature(fn: Callable[..., Any]) -> str:
    sig = inspect.signature(fn)
    params = [p.name if p.annotation is p.empty else f"{p.name}: {p.annotation}"
              for p in sig.parameters.values()]
    ret = "" if sig.return_annotation is sig.empty else f" -> {sig.return_annotation}"
    return f"def {fn.__name__}({', '.join(params)}){ret}"


def _results(hook: Hook) -> str:
    if hasattr(CoreExecute, hook.name):
        return ("**Results:** the core implements it (it runs the module). A wrapper "
                "(`@hookimpl(wrapper=True)`) sees every attempt and may change or replace its "
                "outcome; a plain implementation that returns something other than None "
                "replaces the core's.")
    if hook.firstresult:
        return ("**Results:** the first result that is not None wins; the implementations "
                "after it are not called. None from all of them means: nobody answered.")
    if hook.name in NODE_HOOKS:
        return ("**Results:** a notification: every implementation is called, return values "
                "are ignored, and an exception is logged with the plugin's name and "
                "contained (the scan goes on).")
    if hook.name.startswith("pentora_register_"):
        return ("**Results:** every implementation is called once, what it registers "
                "attributed to its plugin; an exception from an installed plugin makes it "
                "broken (reported by `pentora plugins list`, left out, the rest loads), from a "
                "plugin passed explicitly it stops loading with a `PluginError` naming it.")
    if hook.signature.endswith("-> None"):
        return "**Results:** every implementation is called; return values are ignored."
    return "**Results:** every implementation is called; the results are collected in a list."


def rst_to_markdown(text: str, language: str = "python") -> str:
    """The reST of a docstring as Markdown: ````x```` → ```x```, ``para::`` + indented
    block → ``para:`` + a fenced block."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.rstrip().endswith("::"):
            out.append(line)
            continue
        out.append(line.rstrip()[:-1])
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        out += ["", f"```{language}", textwrap.dedent("\n".join(block)).strip("\n"), "```"]
        if i < len(lines):
            out.append("")
    md = "\n".join(out)
    return re.sub(r"``(.+?)``", lambda m: _code(m.group(1)), md, flags=re.S)


def hook_reference() -> str:
    """The reference of every hook, grouped as in ``pentora/_hookspecs.py``."""
    intro = inspect.getdoc(_hookspecs) or ""
    parts = [f"<!-- generated from pentora/_hookspecs.py by `{REGENERATE}`: edit the "
             "docstrings there -->", rst_to_markdown(intro.split("\n", 1)[1].strip(), "text")]
    group = None
    for hook in hooks():
        if hook.group != group:
            group = hook.group
            parts.append(f"### {group.capitalize()} hooks")
        # the marker tells tests/docs/test_doc_blocks.py not to run a bare signature
        parts += [f"#### `{hook.name}`",
                  f"<!-- not-run: the hook's signature, not a program -->\n```python\n{hook.signature}\n```",
                  _results(hook), rst_to_markdown(hook.doc)]
    return "\n\n".join(parts)


# -- markers ---------------------------------------------------------------------------------


def _block(name: str, content: str) -> str:
    return f"<!-- {name}:start -->\n{content.strip()}\n<!-- {name}:end -->"


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with what lies between the ``name`` markers replaced by ``content``."""
    pattern = re.compile(rf"<!-- {name}:start -->\n.*?<!-- {name}:end -->", re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"expected one <!-- {name}:start --> … <!-- {name}:end --> block")
    return pattern.sub(lambda m: _block(name, content), text)


def expected(docs: Path, modules: list[ModuleType]) -> dict[Path, str]:
    """Every generated file's full expected text, from its current text where it exists."""
    out: dict[Path, str] = {}

    def fill(path: Path, blocks: dict[str, str], new: Callable[[], str] | None = None) -> None:
        text = path.read_text(encoding="utf-8") if path.exists() else (new() if new else "")
        for name, content in blocks.items():
            text = replace_block(text, name, content)
        out[path] = text

    for mt in modules:
        fill(docs / MODULE_DIR / f"{mt.name}.md",
             {"facts": module_facts(mt), "config": config_table(mt)},
             new=lambda mt=mt: module_page(mt))  # type: ignore[misc]
    fill(docs / MODULE_DIR / MODULE_INDEX, {"modules": module_index(modules)})
    fill(docs / HOOK_DOC, {"hooks": hook_reference()})
    return out


def problems(docs: Path, modules: list[ModuleType]) -> list[str]:
    """What is stale or missing, one line each (empty: the docs are up to date)."""
    found = []
    names = {mt.name for mt in modules}

    def show(path: Path) -> str:  # relative to the docs directory's parent, as typed
        return str(path.relative_to(docs.parent)) if path.is_relative_to(docs.parent) else str(path)

    for path, text in expected(docs, modules).items():
        if not path.exists():
            found.append(f"{show(path)}: missing")
        elif path.read_text(encoding="utf-8") != text:
            found.append(f"{show(path)}: stale")
    for page in sorted((docs / MODULE_DIR).glob("*.md")):
        if page.name != MODULE_INDEX and page.stem not in names:
            found.append(f"{show(page)}: no registered module type '{page.stem}'")
    return found


def regenerate(docs: Path, modules: list[ModuleType]) -> list[Path]:
    """Rewrite every stale generated part and create missing pages; the files written."""
    written = []
    for path, text in expected(docs, modules).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pentora._docgen",
                                     description="regenerate the generated parts of docs/")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs directory (docs)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    if not (args.docs / HOOK_DOC).is_file():
        parser.error(f"{args.docs / HOOK_DOC} not found: run from the repository root or pass --docs")
    modules = builtin_modules(Orchestrator(autoload=True))
    if args.check:
        found = problems(args.docs, modules)
        for line in found:
            print(line)
        if found:
            print(f"regenerate with: {REGENERATE}")
        return 1 if found else 0
    for path in regenerate(args.docs, modules):
        print(f"wrote {path}")
    orphans = [p for p in problems(args.docs, modules) if "no registered module type" in p]
    for line in orphans:
        print(line, file=sys.stderr)
    return 1 if orphans else 0


if __name__ == "__main__":
    raise SystemExit(main())
