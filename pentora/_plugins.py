"""Plugin loading: one ``PluginManager("pentora")``, built-ins and third parties alike
through the ``pentora`` entry-point group.

Users control what loads: ``PENTORA_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points,
``disabled=["NAME"]`` (``-p no:NAME`` on the CLI) blocks one. A broken entry point is
reported in ``broken`` and skipped, never a crash.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy
from loguru import logger

from . import _hookspecs as hookspecs
from ._errors import PluginError
from ._registry import Registry, load_python_file

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "pentora"
AUTOLOAD_ENV = "PENTORA_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    broken: list[tuple[str, str]] = field(default_factory=list)  # (name, error)


def get_plugin_manager(plugins: Iterable[Any] = (), *, autoload: bool | None = None,
                       disabled: Iterable[str] = (), hook_files: Iterable[str] = ()
                       ) -> pluggy.PluginManager:
    """A fresh plugin manager: entry points (unless disabled), then ``plugins``, then
    ``hook_files`` (``--hooks FILE``), then ``check_pending()``."""
    pm = pluggy.PluginManager("pentora")
    pm.add_hookspecs(hookspecs)
    report = LoadReport()
    pm.pentora_load_report = report  # type: ignore[attr-defined]
    pm.pentora_dists = {}  # type: ignore[attr-defined]
    for name in disabled:
        pm.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_ENV)
    if autoload:
        _load_entry_points(pm, report)
    for plugin in plugins:
        if pm.is_registered(plugin):
            continue
        name = getattr(plugin, "pentora_plugin_name", None) or _default_name(plugin)
        pm.register(plugin, name=name)
    for path in hook_files:
        module = load_python_file(path)
        pm.register(module, name=f"hooks:{path}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        name = (pm.get_name(e.plugin) if e.plugin is not None else None) or "?"
        raise PluginError(f"plugin '{name}' implements a hook pentora does not define: {e}. "
                          "Hook names start with pentora_ and are listed in pentora/hookspecs.py") from e
    return pm


def _default_name(plugin: Any) -> str:
    mod = getattr(plugin, "__name__", None)
    if isinstance(mod, str):
        return mod
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def _load_entry_points(pm: pluggy.PluginManager, report: LoadReport) -> None:
    import importlib.metadata as md  # only when autoloading: a tenth of the start-up otherwise

    eps = sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    for ep in eps:
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # a broken third-party package must not take the CLI down
            _broken(report, ep, f"{type(e).__name__}: {e}")
            continue
        unknown = sorted(hc.name for hc in pm.get_hookcallers(plugin) or [] if not hc.has_spec())
        if unknown:
            pm.unregister(plugin)
            _broken(report, ep, "implements hooks pentora does not define: " + ", ".join(unknown)
                    + " (a typo? hook names are listed in pentora/hookspecs.py)")
            continue
        report.loaded.append(ep.name)
        dist = getattr(ep, "dist", None)
        if dist is not None:
            pm.pentora_dists[ep.name] = (dist.name, dist.version)  # type: ignore[attr-defined]


def _broken(report: LoadReport, ep: EntryPoint, msg: str) -> None:
    report.broken.append((ep.name, msg))
    logger.warning("plugin '{}' ({}) failed to load and was skipped: {}", ep.name, ep.value, msg)


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """A registry filled by every plugin's ``pentora_register_*`` hooks, each attributed."""
    registry = Registry()
    for hook_name in ("pentora_register_modules", "pentora_register_retry_policies",
                      "pentora_register_output_formats"):
        for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
            with registry.providing(impl.plugin_name):
                try:
                    impl.function(*[{"registry": registry}[a] for a in impl.argnames])
                except PluginError:
                    raise
                except Exception as e:
                    raise PluginError(f"plugin '{impl.plugin_name}' failed in {hook_name}: "
                                      f"{type(e).__name__}: {e}") from e
    return registry


def list_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    dists: dict[str, tuple[str, str]] = getattr(pm, "pentora_dists", {})
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        dist = dists.get(name)
        out.append(PluginInfo(name=name, distribution=dist[0] if dist else None,
                              version=dist[1] if dist else None, hooks=hooks))
    return sorted(out, key=lambda p: p.name)
