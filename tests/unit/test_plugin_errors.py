"""What pentora says about plugins that do not exist, clash, or are broken."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from pentora import DagBuilder, Module, Orchestrator, hookimpl
from pentora._errors import PluginClashError, PluginError, UnknownPluginError
from pentora._plugins import get_plugin_manager
from tests.cli.test_errors_cli import BROKEN_PLUGINS, fake_installed


@pytest.mark.parametrize(("typed", "hint"), [
    ("portscann", "(did you mean 'portscan'?)"),
    ("syn_scn", "(did you mean 'portscan' (once 'syn_scan')?)"),  # near a former name
])
def test_disabling_an_unknown_plugin_says_the_nearest(typed: str, hint: str) -> None:
    with pytest.raises(UnknownPluginError) as e:
        get_plugin_manager(disabled=[typed])
    assert str(e.value).startswith(f"no plugin named '{typed}' to disable {hint}")


def test_disabling_a_name_near_nothing_says_where_to_look() -> None:
    with pytest.raises(UnknownPluginError) as e:
        get_plugin_manager(disabled=["zzzz"])
    assert "did you mean" not in str(e.value)
    assert "`pentora plugins list` shows the plugins" in str(e.value)


# -- a module type registered twice --------------------------------------------------------


class MyNoop(Module):
    """The README's plugin, registering a type an installed plugin (engine) has too."""

    module_type = "noop"
    produces = ("mine",)

    def run(self, ctx: Any, config: dict[str, Any]) -> None:
        ctx.set("mine", 42)


class MyPlugin:
    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        registry.register(MyNoop)


@pytest.fixture
def info_logs() -> Iterator[list[str]]:
    """What pentora logs at INFO and above during the test (a library's logs are off)."""
    said: list[str] = []
    logger.enable("pentora")
    sink = logger.add(lambda m: said.append(str(m.record["message"])), level="INFO")
    yield said
    logger.remove(sink)
    logger.disable("pentora")


def test_a_plugin_passed_explicitly_wins_over_an_installed_one(info_logs: list[str]) -> None:
    orch = Orchestrator(plugins=[MyPlugin()])
    assert orch.registry.modules["noop"].cls is MyNoop
    orch.load_dag(DagBuilder().add_node("a", "noop").build())
    result = orch.execute()
    assert result.ok and result.context.get("mine") == 42
    notices = [m for m in info_logs if "module type 'noop'" in m]
    assert notices == [f"module type 'noop': plugin '{__name__}.MyPlugin', passed explicitly, "
                       "is used instead of installed plugin 'engine'"]


def test_a_plugin_passed_explicitly_wins_on_a_given_manager_too() -> None:
    """The CLI's path: ``Orchestrator(pm=…, plugins=…)``."""
    orch = Orchestrator(plugins=[MyPlugin()], pm=get_plugin_manager())
    assert orch.registry.modules["noop"].cls is MyNoop


def test_two_plugins_passed_explicitly_clash_with_a_library_hint() -> None:
    class OtherNoop(MyNoop):
        pass

    class Other:
        pentora_plugin_name = "other"

        @hookimpl
        def pentora_register_modules(self, registry: Any) -> None:
            registry.register(OtherNoop)

    with pytest.raises(PluginClashError) as e:
        Orchestrator(plugins=[MyPlugin(), Other()], autoload=False)
    msg = str(e.value)
    assert msg.startswith("module type 'noop' registered twice: by plugin ")
    assert "Orchestrator(disabled=['other'])" in msg and "-p no:" not in msg
    assert set(e.value.providers) == {"other", f"{__name__}.MyPlugin"}


def test_disabled_leaves_the_installed_one_out() -> None:
    orch = Orchestrator(plugins=[MyPlugin()], disabled=["engine"])
    assert orch.registry.modules["noop"].cls is MyNoop
    assert "sleep" not in orch.registry.modules


# -- broken installed plugins: reported and left out ----------------------------------------


@pytest.fixture
def installed_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broken plugins of the CLI tests, installed (faked .dist-info) on sys.path."""
    for name, (code, entry, _) in BROKEN_PLUGINS.items():
        fake_installed(tmp_path, name, code, entry)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("PENTORA_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    importlib.invalidate_caches()


def test_broken_installed_plugins_are_reported_and_left_out(installed_broken: None) -> None:
    pm = get_plugin_manager()
    registry = pm.registry  # registering fails for two of them: built without those
    assert {"noop", "sleep", "syn_scanner"} <= set(registry.modules)
    assert dict(pm.load_report.broken) == {name: why for name, (_, _, why) in BROKEN_PLUGINS.items()}
    names = {name for name, plugin in pm.list_name_plugin() if plugin is not None}
    assert not names & set(BROKEN_PLUGINS)
    assert not set(pm.load_report.loaded) & set(BROKEN_PLUGINS)


def test_a_broken_plugin_passed_explicitly_stays_an_error() -> None:
    class Boom:
        @hookimpl
        def pentora_register_modules(self, registry: Any) -> None:
            raise RuntimeError("boom")

    with pytest.raises(PluginError, match=r"plugin '.*Boom' failed in pentora_register_modules: "
                                          r"RuntimeError: boom"):
        Orchestrator(plugins=[Boom()])
