"""Plugin manager, registry records, plugin files, the wrapper hook."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pentora import (
    DagBuilder,
    Module,
    NodeContext,
    OutputFormat,
    PluginError,
    Registry,
    RetryPolicy,
    get_plugin_manager,
    hookimpl,
)
from tests.conftest import ModulesPlugin, make_orch


class Alpha(Module):
    module_type = "alpha"
    description = "first"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        ctx.set("alpha", True)


class AlphaAgain(Module):
    module_type = "alpha"


class Named:
    pentora_plugin_name = "second-provider"

    @hookimpl
    def pentora_register_modules(self, registry):
        registry.register(AlphaAgain)


def test_duplicate_module_type_names_both_providers():
    first = ModulesPlugin(Alpha)
    first.pentora_plugin_name = "first-provider"
    pm = get_plugin_manager([first, Named()], autoload=False)
    with pytest.raises(PluginError) as e:
        pm.registry  # noqa: B018 - building it is what raises
    msg = str(e.value)
    assert "module type 'alpha' registered twice" in msg
    assert "first-provider" in msg and "second-provider" in msg


def test_registry_records_and_nearest_names():
    reg = Registry()
    with reg.providing("tests"):
        rec = reg.register(Alpha)
    assert rec.provider == "tests" and rec.description == "first"
    with pytest.raises(PluginError, match="did you mean 'alpha'"):
        reg.get("alpah")
    with pytest.raises(PluginError, match="not a pentora.Module"):
        reg.register(object)  # type: ignore[arg-type]


def test_retry_policy_and_output_format_hooks_register_records():
    class Formats:
        @hookimpl
        def pentora_register_output_formats(self, registry):
            registry.register_output_format(OutputFormat("txt", "plain text", open=print,
                                                         extensions=(".txt",)))

        @hookimpl
        def pentora_register_retry_policies(self, registry):
            registry.register_retry_policy(RetryPolicy("linear", "n×initial",
                                                       lambda n, s, r: n * s.initial))

    pm = get_plugin_manager([Formats()], autoload=False)
    reg = pm.registry
    assert reg.output_formats["txt"].extensions == (".txt",)
    assert reg.retry_policies["linear"].delay(3, type("S", (), {"initial": 2})(), None) == 6
    with pytest.raises(PluginError, match="registered twice"):
        reg.register_retry_policy(RetryPolicy("linear", "again", lambda n, s, r: 0))


def test_unknown_hook_name_is_refused_at_load():
    class Typo:
        @hookimpl
        def pentora_node_strat(self, node):
            pass

    with pytest.raises(PluginError, match="pentora_node_strat"):
        get_plugin_manager([Typo()], autoload=False)


PLUGIN_FILE = '''
from pentora import Module, hookimpl

class FromFile(Module):
    module_type = "from_file"
    produces = ("file_value",)

    def run(self, ctx, config):
        return {"file_value": 42}

SEEN = []

@hookimpl
def pentora_node_complete(node):
    SEEN.append(node.instance_id)
'''


def test_register_plugin_file(tmp_path: Path):
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN_FILE)
    reg = Registry()
    added = reg.register_plugin_file(path)
    assert [m.name for m in added] == ["from_file"]
    assert added[0].provider == str(path)
    with pytest.raises(PluginError, match="not found"):
        reg.register_plugin_file(tmp_path / "missing.py")
    bad = tmp_path / "bad.py"
    bad.write_text("raise ImportError('nope')")
    with pytest.raises(PluginError, match="failed to import: ImportError: nope"):
        reg.register_plugin_file(bad)


def test_hook_file_registers_hooks_and_modules(tmp_path: Path):
    path = tmp_path / "hooks.py"
    path.write_text(PLUGIN_FILE + "\n@hookimpl\ndef pentora_register_modules(registry):\n"
                    "    registry.register(FromFile)\n")
    orch = make_orch(hook_files=[str(path)])
    orch.load_dag(DagBuilder().add_node("f", "from_file").build())
    result = orch.execute()
    assert result.context.get("file_value") == 42
    module = [p for n, p in orch.pm.list_name_plugin() if n.startswith("hooks:")][0]
    assert module.SEEN == ["f"]


def test_node_execute_wrapper_sees_every_attempt():
    timings: list[tuple[str, float]] = []

    class Timer:
        @hookimpl(wrapper=True)
        def pentora_node_execute(self, scan, node, ctx):
            t0 = time.perf_counter()
            try:
                return (yield)
            finally:
                timings.append((node.instance_id, time.perf_counter() - t0))

    orch = make_orch(Alpha, plugins=(Timer(),))
    orch.load_dag(DagBuilder().add_node("a", "alpha").add_node("b", "alpha", ["a"]).build())
    assert orch.execute().ok
    assert [n for n, _ in timings] == ["a", "b"]


def test_profile_dirs_hook_and_disabling(tmp_path: Path):
    (tmp_path / "mine.yaml").write_text("nodes: [{instance_id: a, module_type: alpha}]\n")

    class Profiles:
        @hookimpl
        def pentora_profile_dirs(self):
            return [str(tmp_path)]

    pm = get_plugin_manager([Profiles()], autoload=False)
    assert [str(tmp_path)] in pm.hook.pentora_profile_dirs()
    pm = get_plugin_manager([Profiles()], autoload=True, disabled=["engine.profiles", "cve"])
    names = [p.name for p in pm.plugin_infos()]
    assert "engine.profiles" not in names and "cve" not in names and "engine.logging" in names
    assert pm.hook.pentora_profile_dirs() == [[str(tmp_path)]]


def test_builtins_load_through_entry_points(monkeypatch):
    pm = get_plugin_manager()
    infos = {p.name: p for p in pm.plugin_infos()}
    for name in ("engine", "engine.logging", "engine.progress", "engine.profiles", "portscan", "output"):
        assert infos[name].distribution == "pentora", name
    monkeypatch.setenv("PENTORA_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert get_plugin_manager().plugin_infos() == []


def test_cli_commands_hook_adds_a_subcommand(capsys):
    from pentora.cli._main import build_parser

    class Hello:
        @hookimpl
        def pentora_cli_commands(self, subparsers, common):
            p = subparsers.add_parser("hello", parents=[common], help="say hello")
            p.add_argument("--name", default="world")
            p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    class Broken:
        @hookimpl
        def pentora_cli_commands(self, subparsers):
            raise RuntimeError("bad plugin")

    pm = get_plugin_manager([Hello(), Broken()], autoload=False)
    args = build_parser(pm).parse_args(["hello", "--name", "pentora"])
    assert args.func(args) == 0
    assert capsys.readouterr().out == "hello pentora\n"
