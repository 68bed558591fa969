"""Entry-point plugins imported on first use, from the manifest cache (pentora._lazyplugins).

The plugin is a package installed as far as importlib.metadata can tell (a .dist-info on
sys.path); each of its modules appends its name to a marker file when imported, so a test
reads what was imported, in this process or in a ``pentora`` process it started.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pentora import DagBuilder, Orchestrator, hookimpl
from pentora._errors import PluginError
from pentora._lazyplugins import CACHE_FILE, LazyPlugin
from pentora._plugins import get_plugin_manager

PKG = "pentora_lazyhello"

MARK = """\
import os
with open(os.environ["LAZY_MARKER"], "a") as f:
    f.write(__name__ + "\\n")
"""

HOOKS = MARK + """\
from pentora import hookimpl


@hookimpl
def pentora_register_modules(registry):
    registry.register("pentora_lazyhello.mod:Hello", name="lazy_hello", description="says hello")


@hookimpl
def pentora_scan_resume(scan_id):
    return None  # only `pentora scan --resume` calls it


@hookimpl(tryfirst=True)
def pentora_cli_scan_vars(args, dag, resuming):
    return {"lazy": [args, dag, resuming]}


@hookimpl(wrapper=True)
def pentora_cli_scan_options(args):
    result = yield
    return [*result, {"wrapped": args}]
"""

MOD = MARK + """\
import pentora


class Hello(pentora.Module):
    \"\"\"Says hello.\"\"\"

    module_type = "lazy_hello"
    produces = ["hello"]

    def run(self, ctx, config):
        ctx.set("hello", "world")
"""


def install(folder: Path, version: str = "0.1", hooks: str = HOOKS) -> Path:
    """``pentora-lazyhello`` VERSION on ``folder``: its hooks in ``hooks.py`` (the entry
    point), its module type in ``mod.py``, an ``__init__.py`` that imports neither."""
    pkg = folder / PKG
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "hooks.py").write_text(hooks)
    (pkg / "mod.py").write_text(MOD)
    for old in folder.glob(f"{PKG}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = folder / f"{PKG}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pentora-lazyhello\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[pentora]\nlazyhello = {PKG}.hooks\n")
    importlib.invalidate_caches()
    return folder


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The plugin installed on sys.path, a cache and a marker file of this test's own."""
    site = install(tmp_path / "site")
    values = {"LAZY_MARKER": str(tmp_path / "imported"), "PENTORA_CACHE_DIR": str(tmp_path / "cache"),
              "PENTORA_DISABLE_PLUGIN_AUTOLOAD": "", "PYTHONPATH": str(site)}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield values
    for name in [m for m in sys.modules if m == PKG or m.startswith(PKG + ".")]:
        del sys.modules[name]


def imported(env: dict[str, str]) -> list[str]:
    marker = Path(env["LAZY_MARKER"])
    found = marker.read_text().split() if marker.exists() else []
    marker.unlink(missing_ok=True)
    return found


def fresh_manager() -> Any:
    """A manager as a new process builds it: the plugin's modules not imported yet."""
    for name in [m for m in sys.modules if m == PKG or m.startswith(PKG + ".")]:
        del sys.modules[name]
    return get_plugin_manager()


def warm(env: dict[str, str]) -> None:
    fresh_manager()
    assert imported(env) == [f"{PKG}.hooks"]  # the first run imports it, and writes its manifest
    assert "lazyhello" in json.loads((Path(env["PENTORA_CACHE_DIR"]) / CACHE_FILE).read_text())["entries"]


def test_a_warm_cache_imports_no_plugin_for_help_version_or_a_scan_not_using_it(
        env: dict[str, str], run_cli, tcp_server) -> None:
    # Its CLI hooks left out (a scan calls them): a module type and the --resume hook.
    install(Path(env["PYTHONPATH"]), hooks=HOOKS.split("@hookimpl(tryfirst=True)")[0])
    assert run_cli("--help").returncode == 0
    assert imported(env) == [f"{PKG}.hooks"]  # cold: imported to write its manifest
    server = tcp_server(handler=lambda conn: conn.close())
    for args in (["--help"], ["--version"], ["modules", "show", "noop"],
                 ["scan", "-t", "127.0.0.1", "-p", str(server.port), "-sT", "-Pn", "-q", "--no-store"]):
        proc = run_cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert imported(env) == [], args


def test_a_module_type_of_a_lazy_plugin_imports_only_its_module(env: dict[str, str]) -> None:
    warm(env)
    pm = fresh_manager()
    assert isinstance(pm.get_plugin("lazyhello"), LazyPlugin)
    hello = pm.registry.modules["lazy_hello"]
    assert (hello.provider, hello.target, hello.description, hello.loaded) == (
        "lazyhello", f"{PKG}.mod:Hello", "says hello", False)
    assert imported(env) == []
    orch = Orchestrator(pm=pm)
    orch.load_dag(DagBuilder().add_node("h", "lazy_hello").build())
    result = orch.execute()
    assert result.ok and result.context.get("hello") == "world"
    assert imported(env) == [f"{PKG}.mod"]


class Other:
    """An explicit plugin answering the same hooks, registered after the lazy one."""

    @hookimpl
    def pentora_cli_scan_vars(self, args: Any, dag: Any, resuming: bool) -> dict[str, Any]:
        return {"other": True}

    @hookimpl
    def pentora_cli_scan_options(self, args: Any) -> dict[str, Any]:
        return {"other": args}


def test_a_hook_call_imports_the_plugin_with_arguments_order_and_wrappers_kept(env: dict[str, str]) -> None:
    warm(env)
    for name in [m for m in sys.modules if m.startswith(PKG)]:
        del sys.modules[name]
    pm = get_plugin_manager(plugins=[Other()])
    stand_in = pm.get_plugin("lazyhello")
    assert isinstance(stand_in, LazyPlugin) and imported(env) == []
    hooks = {h.name for h in pm.get_hookcallers(stand_in) or []}
    assert {"pentora_cli_scan_vars", "pentora_cli_scan_options", "pentora_register_modules"} <= hooks
    # the built-in areas' implementations want a parsed command line: left out
    others = [p for n, p in pm.list_name_plugin() if p is not None and n != "lazyhello"
              and not isinstance(p, Other)]
    scan_vars = pm.subset_hook_caller("pentora_cli_scan_vars", others)
    scan_options = pm.subset_hook_caller("pentora_cli_scan_options", others)
    # tryfirst: called before Other's (registered later, so first without it)
    votes = scan_vars(args="A", dag="D", resuming=True)
    assert votes == [{"lazy": ["A", "D", True]}, {"other": True}]
    assert imported(env) == [f"{PKG}.hooks"]
    real = pm.get_plugin("lazyhello")
    assert real is sys.modules[f"{PKG}.hooks"] and stand_in.loaded
    assert [i.plugin for i in pm.hook.pentora_cli_scan_vars.get_hookimpls()].count(real) == 1
    # swapped in at its place: the order of the second call is the first's
    assert scan_vars(args="B", dag=None, resuming=False) == [{"lazy": ["B", None, False]}, {"other": True}]
    # the wrapper sees the others' results and adds to them
    assert scan_options(args="X") == [{"other": "X"}, {"wrapped": "X"}]
    assert imported(env) == []


def test_a_wrapper_is_the_first_hook_called(env: dict[str, str]) -> None:
    warm(env)
    pm = fresh_manager()
    others = [p for n, p in pm.list_name_plugin() if p is not None and n != "lazyhello"]
    assert pm.subset_hook_caller("pentora_cli_scan_options", others)(args="W") == [{"wrapped": "W"}]
    assert imported(env) == [f"{PKG}.hooks"]
    assert not isinstance(pm.get_plugin("lazyhello"), LazyPlugin)


@pytest.mark.parametrize("change", ["file", "upgrade"])
def test_a_changed_plugin_or_distribution_rebuilds_the_manifest(env: dict[str, str], change: str) -> None:
    warm(env)
    fresh_manager()
    assert imported(env) == []
    site = Path(env["PYTHONPATH"])
    if change == "file":  # a new hook: the manifest must learn it
        hooks = site / PKG / "hooks.py"
        hooks.write_text(HOOKS + "\n\n@hookimpl\ndef pentora_profile_dirs():\n    return []\n")
        st = hooks.stat()  # within the same mtime tick the size still differs
        os.utime(hooks, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    else:
        install(site, version="0.2")
    pm = fresh_manager()
    assert imported(env) == [f"{PKG}.hooks"]
    assert not isinstance(pm.get_plugin("lazyhello"), LazyPlugin)
    pm = fresh_manager()
    assert imported(env) == []
    hooks_now = {h.name for h in pm.get_hookcallers(pm.get_plugin("lazyhello")) or []}
    assert ("pentora_profile_dirs" in hooks_now) == (change == "file")


@pytest.mark.parametrize("damage", ["{not json", "", '{"header": 1, "entries": []}', "\x00\xff"])
def test_a_corrupt_cache_is_ignored_and_rewritten(env: dict[str, str], damage: str) -> None:
    warm(env)
    cache = Path(env["PENTORA_CACHE_DIR"]) / CACHE_FILE
    cache.write_text(damage, encoding="latin-1")
    pm = fresh_manager()
    assert imported(env) == [f"{PKG}.hooks"] and "lazy_hello" in pm.registry.modules
    assert "lazyhello" in json.loads(cache.read_text())["entries"]
    fresh_manager()
    assert imported(env) == []


def test_an_unwritable_cache_only_disables_it(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PENTORA_CACHE_DIR", str(blocker / "cache"))  # under a file: never a folder
    for _ in range(2):
        pm = fresh_manager()
        assert imported(env) == [f"{PKG}.hooks"]
        assert "lazy_hello" in pm.registry.modules and not pm.load_report.broken


def test_a_plugin_failing_at_first_use_names_itself_and_the_fix(env: dict[str, str], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    dep = tmp_path / "dep"
    dep.mkdir()
    (dep / "lazyhello_dep.py").write_text("")
    monkeypatch.syspath_prepend(str(dep))
    install(Path(env["PYTHONPATH"]), hooks="import lazyhello_dep\n" + HOOKS)
    warm(env)
    (dep / "lazyhello_dep.py").unlink()  # a dependency gone: the plugin's own files unchanged
    sys.modules.pop("lazyhello_dep", None)
    importlib.invalidate_caches()
    pm = fresh_manager()
    assert isinstance(pm.get_plugin("lazyhello"), LazyPlugin)
    with pytest.raises(PluginError) as e:
        pm.hook.pentora_cli_scan_vars(args=None, dag=None, resuming=False)
    assert str(e.value).startswith(f"plugin 'lazyhello' ({PKG}.hooks) failed to load when first used: "
                                   "ModuleNotFoundError: No module named 'lazyhello_dep'")
    assert "-p no:lazyhello" in str(e.value)
    assert dict(pm.load_report.broken)["lazyhello"].startswith("ModuleNotFoundError")
    assert not pm.has_plugin("lazyhello")
    # the next run imports it at start-up, and reports it broken as any broken plugin
    pm = fresh_manager()
    assert "lazyhello" in dict(pm.load_report.broken)


def test_plugins_list_imports_every_plugin_and_reports_the_broken(env: dict[str, str], run_cli) -> None:
    assert run_cli("--help").returncode == 0
    imported(env)
    proc = run_cli("plugins", "list", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert imported(env) == [f"{PKG}.hooks", f"{PKG}.mod"]
    (Path(env["PYTHONPATH"]) / PKG / "mod.py").write_text("raise ImportError('gone')\n")
    proc = run_cli("plugins", "list", "--format", "json")
    broken = {b["name"]: b["error"] for b in json.loads(proc.stdout)["broken"]}
    assert "ImportError: gone" in broken["lazyhello"] and "lazy_hello" in broken["lazyhello"]
