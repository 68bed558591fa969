"""pluggy as pluggy: wrappers, ordering and containment of hooks; one manager per run; parts
of an area; former plugin names."""

from __future__ import annotations

import functools
import textwrap
from typing import Any

import pytest

import pentora
from pentora import (
    DagBuilder,
    Module,
    Orchestrator,
    PentoraPluginManager,
    PluginError,
    get_plugin_manager,
    hookimpl,
)


class Noop(Module):
    module_type = "noop"

    def run(self, ctx: Any, config: dict[str, Any]) -> None:
        pass


class Modules:
    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        registry.register(Noop)


def run_two_nodes(*plugins: Any) -> pentora.ScanResult:
    orch = Orchestrator(plugins=[Modules(), *plugins], autoload=False)
    orch.load_dag(DagBuilder().add_node("a", "noop").add_node("b", "noop", ["a"]).build())
    return orch.execute()


def test_pentora_node_complete_wrapper_is_called_around_the_plain_implementations():
    seen: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def pentora_node_complete(self, node: Any) -> Any:
            seen.append(f"before {node.instance_id}")
            result = yield
            seen.append(f"after {node.instance_id}")
            return result

    class Plain:
        @hookimpl
        def pentora_node_complete(self, node: Any) -> None:
            seen.append(f"plain {node.instance_id}")

    assert run_two_nodes(Plain(), Wrapper()).ok
    assert seen == ["before a", "plain a", "after a", "before b", "plain b", "after b"]


def test_pentora_node_start_honours_tryfirst_and_trylast():
    seen: list[str] = []

    class Last:
        @hookimpl(trylast=True)
        def pentora_node_start(self) -> None:
            seen.append("last")

    class First:
        @hookimpl(tryfirst=True)
        def pentora_node_start(self) -> None:
            seen.append("first")

    class Middle:
        @hookimpl
        def pentora_node_start(self) -> None:
            seen.append("middle")

    run_two_nodes(Last(), Middle(), First())
    assert seen == ["first", "middle", "last"] * 2


def test_pentora_register_modules_wrapper_sees_the_registry_filled():
    seen: list[list[str]] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def pentora_register_modules(self, registry: Any) -> Any:
            result = yield
            seen.append(sorted(registry.modules))
            return result

    pm = get_plugin_manager([Modules(), Wrapper()], autoload=False)
    assert sorted(pm.registry.modules) == ["noop"]
    assert seen == [["noop"]]
    assert pm.registry.modules["noop"].provider.endswith("Modules")  # attributed to its plugin


def test_pentora_node_failed_implementation_that_raises_is_contained_and_named(log_messages):
    later: list[str] = []

    class Broken:
        pentora_plugin_name = "broken-notifier"

        @hookimpl
        def pentora_node_complete(self) -> None:
            raise RuntimeError("boom")

    class Fine:
        @hookimpl
        def pentora_node_complete(self, node: Any) -> None:
            later.append(node.instance_id)

    result = run_two_nodes(Fine(), Broken())
    assert later == ["a", "b"]  # the others still ran, the scan went on
    assert result.status == "completed" and not result.ok  # …and the failure is on its result
    assert {f["plugin"] for f in result.hook_errors} == {"broken-notifier"}
    text = "\n".join(log_messages)
    assert "pentora_node_complete" in text and "'broken-notifier'" in text and "boom" in text


def test_a_wrapper_that_raises_is_contained_and_named(log_messages):
    class BadWrapper:
        pentora_plugin_name = "bad-wrapper"

        @hookimpl(wrapper=True)
        def pentora_node_start(self) -> Any:
            raise ValueError("wrapper broke")
            yield  # pragma: no cover - a generator, as pluggy requires

    result = run_two_nodes(BadWrapper())
    assert result.status == "completed"
    assert [f["plugin"] for f in result.hook_errors] == ["bad-wrapper"] * len(result.hook_errors)
    assert any("'bad-wrapper'" in line and "wrapper broke" in line for line in log_messages)


def test_pentora_plugin_added_registers_parts_per_manager_and_honours_blocking():
    class Part:
        def __init__(self) -> None:
            self.starts = 0

        @hookimpl
        def pentora_node_start(self) -> None:
            self.starts += 1

    class Area:
        pentora_plugin_name = "area"

        @hookimpl
        def pentora_plugin_added(self, pm: PentoraPluginManager) -> None:
            pm.register(Part(), name="area.part")

    one, two = (get_plugin_manager([Area()], autoload=False) for _ in range(2))
    assert one.get_plugin("area.part") is not two.get_plugin("area.part")  # no shared state
    blocked = get_plugin_manager([Area()], autoload=False, disabled=["area.part"])
    assert blocked.has_plugin("area") and blocked.get_plugin("area.part") is None
    one.register(Modules())
    orch = Orchestrator(pm=one)
    orch.load_dag(DagBuilder().add_node("a", "noop").build())
    orch.execute()
    assert one.get_plugin("area.part").starts == 1


def test_the_built_in_areas_load_with_their_parts():
    pm = get_plugin_manager()
    names = {name for name, plugin in pm.list_name_plugin() if plugin is not None}
    assert {"engine", "engine.progress", "engine.logging", "output", "output.json_reporter",
            "store", "store.recorder", "portscan"} <= names
    assert pm.load_report.broken == []
    infos = {p.name: p for p in pm.plugin_infos()}
    assert infos["engine.progress"].distribution == "pentora"


@pytest.mark.parametrize("old, now", [("syn_scan", "portscan"), ("checks_http", "checks"),
                                      ("progress", "engine.progress"), ("celery_exec", "distributed"),
                                      ("reporters", "output.json_reporter")])
def test_a_former_plugin_name_points_to_the_new_one(old, now):
    with pytest.raises(PluginError) as e:
        get_plugin_manager(disabled=[old])
    assert f"it is now '{now}'" in str(e.value) and f"-p no:{now}" in str(e.value)


def test_an_unknown_plugin_name_is_refused_with_the_nearest():
    with pytest.raises(PluginError) as e:
        get_plugin_manager(disabled=["portscn"])
    assert "no plugin named 'portscn'" in str(e.value) and "'portscan'" in str(e.value)


def test_one_plugin_manager_per_cli_run(monkeypatch, capsys):
    """``main`` builds the manager once; commands run on it (no second one)."""
    from pentora.cli import _main

    built: list[PentoraPluginManager] = []
    real = _main.get_plugin_manager

    def counting(*args: Any, **kwargs: Any) -> PentoraPluginManager:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(_main, "get_plugin_manager", counting)
    monkeypatch.setattr(_main, "patch_all", lambda: None)  # this test process stays as it is
    monkeypatch.setattr("pentora._plugins.get_plugin_manager", counting)
    monkeypatch.setattr("pentora._orchestrator.get_plugin_manager", counting)
    assert _main.main(["modules", "list", "-p", "no:engine.progress"]) == 0
    assert len(built) == 1 and built[0].get_plugin("engine.progress") is None
    assert "noop" in capsys.readouterr().out


CLI_HOOKS = textwrap.dedent('''
    import pentora

    @pentora.hookimpl
    def pentora_cli_commands(subparsers):
        subparsers.choices["scan"].add_argument("--greeting")

    @pentora.hookimpl
    def pentora_cli_scan_vars(args, dag, resuming):
        return {"greeting": args.greeting} if args.greeting else None

    @pentora.hookimpl
    def pentora_cli_scan_done(args, result):
        print("done:", result.context.get("said"))

    @pentora.hookimpl
    def pentora_default_profiles():
        return ["nope-missing", "hello"]

    @pentora.hookimpl
    def pentora_profile_dirs():
        import os
        return [os.environ["HELLO_PROFILES"]]
''')
HELLO = ("name: hello\nvars: {greeting: hi}\nnodes:\n"
         "  - {instance_id: s, module_type: set, config: {values: {said: '${greeting}'}}}\n")


def scan_with_hooks(run_cli: Any, tmp_path: Any, *args: str) -> Any:
    """``pentora scan`` with CLI_HOOKS and the HELLO profile, and no built-in profile, targets or
    summary."""
    hooks = tmp_path / "hooks.py"
    hooks.write_text(CLI_HOOKS)
    (tmp_path / "hello.yaml").write_text(HELLO)
    return run_cli("scan", *args, "--hooks", str(hooks), "-p", "no:engine.profiles", "-p", "no:targets",
                   env={"HELLO_PROFILES": str(tmp_path)})


def test_pentora_default_profiles_picks_the_first_installed(run_cli, tmp_path):
    proc = scan_with_hooks(run_cli, tmp_path, "-p", "no:output")
    assert proc.returncode == 0, proc.stderr
    assert "done: hi" in proc.stdout  # the 'hello' profile ran ('nope-missing' is not installed)


def test_pentora_cli_scan_vars_sets_a_var_from_a_plugin_option(run_cli, tmp_path):
    proc = scan_with_hooks(run_cli, tmp_path, "--greeting", "bonjour", "-p", "no:output")
    assert proc.returncode == 0, proc.stderr
    assert "done: bonjour" in proc.stdout
    proc = scan_with_hooks(run_cli, tmp_path, "-p", "80", "-p", "no:portscan")
    assert proc.returncode == 2 and "-p 80: no installed plugin takes -p values" in proc.stderr


PROFILE_HOOKS = textwrap.dedent('''
    import pentora

    @pentora.hookimpl
    def pentora_cli_commands(subparsers):
        subparsers.choices["scan"].add_argument("--OPTION", action="store_true")

    @pentora.hookimpl
    def pentora_cli_scan_profile(args):
        return ("--OPTION", PROFILES) if args.OPTION else None
''')


def test_pentora_cli_scan_profile_chooses_the_profile_or_refuses_a_mismatch(run_cli, tmp_path):
    hooks = []
    for option, profiles in (("loud", ["hello", "loud"]), ("quietly", ["quiet"])):
        hooks += ["--hooks", str(tmp_path / f"{option}.py")]
        (tmp_path / f"{option}.py").write_text(PROFILE_HOOKS.replace("OPTION", option)
                                               .replace("PROFILES", repr(profiles)))
    (tmp_path / "loud.yaml").write_text(HELLO.replace("name: hello", "name: loud")
                                        .replace("greeting: hi", "greeting: HI"))
    run = functools.partial(scan_with_hooks, run_cli, tmp_path, *hooks, "-p", "no:output")
    assert "done: hi" in run().stdout  # no option: the default profile (hello)
    assert "done: hi" in run("--loud").stdout  # the first the option names
    proc = run("--loud", "--profile", "loud")
    assert proc.returncode == 0 and "done: HI" in proc.stdout, proc.stderr
    proc = run("--loud", "--quietly")
    assert proc.returncode == 2, proc.stderr
    assert "ask for profiles that differ" in proc.stderr and "--quietly: quiet" in proc.stderr
    proc = run("--quietly", "--profile", "hello")
    assert proc.returncode == 2, proc.stderr
    assert "--quietly runs with the profiles quiet, not 'hello': drop --profile or --quietly" in proc.stderr


def test_pentora_cli_scan_done_prints_after_the_scan_and_replaces_the_engine_summary(run_cli, tmp_path):
    proc = scan_with_hooks(run_cli, tmp_path, "-p", "no:output")
    assert proc.stdout.strip() == "done: hi"  # only the plugin's: no engine summary besides
    proc = scan_with_hooks(run_cli, tmp_path, "-q")  # the output area's summary, quiet
    assert proc.returncode == 0 and proc.stdout.strip() == "done: hi"


OPTION_HOOKS = textwrap.dedent('''
    import pentora

    @pentora.hookimpl
    def pentora_cli_commands(subparsers):
        subparsers.choices["scan"].add_argument("--shout", action="store_true")
        subparsers.choices["scan"].add_argument("--fail-if-said")

    @pentora.hookimpl
    def pentora_cli_scan_options(args):
        return {"shout": True} if args.shout else None

    @pentora.hookimpl
    def pentora_scan_start(scan):
        print("options:", sorted(scan.options.items()))

    @pentora.hookimpl
    def pentora_cli_scan_exit(args, result):
        return 5 if args.fail_if_said and result.context.get("said") == args.fail_if_said else None
''')


def _scan_with_option_hooks(run_cli: Any, tmp_path: Any, *args: str) -> Any:
    hooks = tmp_path / "options.py"
    hooks.write_text(OPTION_HOOKS)
    return scan_with_hooks(run_cli, tmp_path, "--hooks", str(hooks), "-p", "no:output", "-p", "no:store",
                           *args)


def test_pentora_cli_scan_options_reach_scan_options(run_cli, tmp_path):
    proc = _scan_with_option_hooks(run_cli, tmp_path, "--shout")
    assert proc.returncode == 0, proc.stderr
    assert "options: [('progress', False), ('resume', False), ('shout', True)]" in proc.stdout
    proc = _scan_with_option_hooks(run_cli, tmp_path)
    assert "options: [('progress', False), ('resume', False)]" in proc.stdout


def test_pentora_cli_scan_exit_sets_the_exit_status(run_cli, tmp_path):
    proc = _scan_with_option_hooks(run_cli, tmp_path, "--fail-if-said", "hi")
    assert proc.returncode == 5, proc.stderr
    assert "done: hi" in proc.stdout  # the summary is still printed
    proc = _scan_with_option_hooks(run_cli, tmp_path, "--fail-if-said", "bye")
    assert proc.returncode == 0, proc.stderr


def test_pentora_cli_scan_load_runs_a_dag_from_elsewhere(run_cli, tmp_path):
    hooks = tmp_path / "hooks.py"
    hooks.write_text(textwrap.dedent('''
        import pentora

        @pentora.hookimpl
        def pentora_cli_scan_load(orch, args):
            orch.load_dag("name: loaded\\nnodes: [{instance_id: only, module_type: noop}]")
            return {}, "loaded000001"
    '''))
    proc = run_cli("scan", "--hooks", str(hooks), "-p", "no:store")
    assert proc.returncode == 0, proc.stderr
    assert "scan loaded000001 completed" in proc.stdout


def test_pentora_scan_idle_leaves_a_plugin_out_of_that_scan_only():
    class SometimesIdle:
        def __init__(self) -> None:
            self.calls: list[str] = []

        @hookimpl
        def pentora_scan_idle(self, scan: Any) -> object | None:
            return self if scan.vars.get("quiet") else None

        @hookimpl
        def pentora_node_start(self, node: Any) -> None:
            self.calls.append(node.instance_id)

        @hookimpl
        def pentora_scan_complete(self) -> None:
            self.calls.append("end")

    plugin = SometimesIdle()
    orch = Orchestrator(plugins=[Modules(), plugin], autoload=False)
    orch.load_dag(DagBuilder().vars(quiet=False).add_node("a", "noop").build())
    orch.execute(vars={"quiet": True})
    assert plugin.calls == ["end"]  # idle: no node hooks, but told the scan ended
    orch.execute(vars={"quiet": False})
    assert plugin.calls == ["end", "a", "end"]


def test_built_in_features_that_are_off_are_idle(monkeypatch):
    """Without --progress, a store or a json_reporter node, their parts sit the scan out."""
    monkeypatch.delenv("PENTORA_STORE", raising=False)  # a library's scans are not stored then
    pm = get_plugin_manager()
    orch = Orchestrator(pm=pm)  # the engine area's noop
    orch.load_dag(DagBuilder().add_node("a", "noop").build())
    seen: list[object] = []

    class Spy:
        @hookimpl(wrapper=True)
        def pentora_scan_idle(self, scan: Any) -> Any:
            seen.extend(p for p in (yield) if p is not None)
            return list(seen)

    pm.register(Spy())
    orch.execute()
    assert {pm.get_plugin("engine.progress"), pm.get_plugin("output.json_reporter"),
            pm.get_plugin("store.recorder")} <= set(seen)


def test_pentora_node_start_calls_are_seen_by_pluggy_hook_call_monitoring():
    seen: list[str] = []
    pm = get_plugin_manager([Modules()], autoload=False)

    class Listener:
        @hookimpl
        def pentora_node_start(self) -> None:
            pass

    pm.register(Listener())
    undo = pm.add_hookcall_monitoring(lambda name, impls, kwargs: seen.append(name),
                                      lambda outcome, name, impls, kwargs: None)
    orch = Orchestrator(pm=pm)
    orch.load_dag(DagBuilder().add_node("a", "noop").build())
    orch.execute()
    undo()
    assert "pentora_node_start" in seen and "pentora_scan_idle" in seen
