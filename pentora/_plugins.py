"""Plugin loading: one ``PentoraPluginManager`` per run, built-ins and third parties alike
through the ``pentora`` entry-point group.

Users control what loads: ``PENTORA_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points,
``disabled=["NAME"]`` (``-p no:NAME`` on the CLI) blocks one. A broken entry point is
reported in ``load_report.broken`` and skipped, never a crash. A name that blocks
nothing is refused, with the plugin it most likely meant (a former name included).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from . import _hookspecs as hookspecs
from ._errors import PluginClashError, PluginError, UnknownPluginError
from ._log import logger
from ._notify import contain_notifications, culprit, impl_codes

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ._registry import Registry

ENTRY_POINT_GROUP = "pentora"
AUTOLOAD_ENV = "PENTORA_DISABLE_PLUGIN_AUTOLOAD"
REGISTRATION_HOOKS = ("pentora_register_modules", "pentora_register_retry_policies",
                      "pentora_register_output_formats")


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
    # What was logged about them: the CLI builds its manager before logging is configured,
    # and logs these again once it is.
    warnings: list[str] = field(default_factory=list)


class PentoraPluginManager(pluggy.PluginManager):
    """pluggy's manager for the ``pentora`` hooks, plus what pentora keeps about its plugins:
    the load report, the distribution of each entry-point plugin, the names it has seen
    (blocked ones included) and the registry the registration hooks fill.

    Every hook is called through pluggy, so ``wrapper=True``, ``hookwrapper``, ``tryfirst``
    and ``trylast`` behave as pluggy documents. Notification implementations are contained
    as they are registered (see ``pentora._notify``): one that raises is logged with its
    plugin's name and the others still run.
    """

    def __init__(self) -> None:
        super().__init__("pentora")
        self.add_hookspecs(hookspecs)
        self.load_report = LoadReport()
        # A plugin's distribution, read (name, version) when first asked for: parsing the
        # metadata of each is a fifth of `pentora --help`, which shows neither.
        self._distributions: dict[str, tuple[str, str]] = {}
        self._unread: dict[str, Any] = {}  # plugin name → its importlib.metadata Distribution
        self.former_names: dict[str, str] = {}  # a plugin's old name → its name now
        # a former name → what a user disabling it most likely meant ("use -sT")
        self.former_hints: dict[str, str] = {}
        self.seen_names: set[str] = set()
        # Plugins passed by the caller (``plugins=``), not installed: their
        # registrations win over an installed plugin's of the same name.
        self.explicit: set[str] = set()
        # Contained notification-hook failures, in order: a scan's result takes its own.
        self.hook_failures: list[dict[str, str]] = []
        self._registry: Registry | None = None
        # pluggy's own executor, as built: hook-call monitoring replaces it (see _notify).
        self.plain_hookexec = getattr(self, "_inner_hookexec", None)

    @property
    def distributions(self) -> dict[str, tuple[str, str]]:
        """The distribution (name, version) each entry-point plugin and its parts came from."""
        parsed: dict[str, tuple[str, str]] = {}  # one parsing of each METADATA text
        for name, dist in self._unread.items():
            text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
            if text not in parsed:
                meta = dist.metadata
                parsed[text] = (meta["Name"], meta["Version"])
            self._distributions[name] = parsed[text]
        self._unread.clear()
        return self._distributions

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (pluggy's ``register``); None when ``name`` is blocked."""
        if name is not None:
            self.seen_names.add(name)
        registered = super().register(plugin, name)
        if registered is not None:
            contain_notifications(self, plugin, registered)
            self.former_names.update(getattr(plugin, "pentora_former_names", {}))
            self.former_hints.update(getattr(plugin, "pentora_former_hints", {}))
            self._registry = None
        return registered

    def register_explicit(self, plugin: object, name: str | None = None) -> str | None:
        """Register a plugin the caller passed (not an installed one): on a name clash
        with an installed plugin, its module types, policies and formats win."""
        registered = self.register(plugin, name)
        if registered is not None:
            self.explicit.add(registered)
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        self._registry = None
        return super().unregister(plugin, name)

    @property
    def registry(self) -> Registry:
        """Module types, retry policies and output formats of every registered plugin, built
        once (again after a plugin is registered or unregistered)."""
        if self._registry is None:
            self._registry = _build_registry(self)
        return self._registry

    def load_module_types(self) -> Registry:
        """The registry, every module type's class imported (they are imported on first use:
        see ``ModuleType``). An installed plugin whose class fails to import is reported
        broken and left out, as one whose entry point fails: for what lists every type or
        every plugin (``pentora modules list``, ``pentora plugins list``)."""
        self.load_plugins()
        while True:
            registry = self.registry
            for m in list(registry.modules.values()):
                try:
                    m.cls  # noqa: B018 - imported for the check
                except PluginError as e:
                    if not _is_installed(self, m.provider):
                        raise
                    cause = e.__cause__ or e
                    _drop(self, m.provider, f"to load module type '{m.name}' ({m.target}): "
                          + _one_line(f"{type(cause).__name__}: {cause}"))
                    break
            else:
                return registry

    def load_plugins(self) -> None:
        """Import every plugin registered in its stead (see ``pentora._lazyplugins``): one
        that no longer imports is reported broken and left out."""
        from ._lazyplugins import LazyPlugin

        for _, plugin in self.list_name_plugin():
            if isinstance(plugin, LazyPlugin):
                with contextlib.suppress(PluginError):  # reported in load_report.broken
                    plugin.load()

    def plugin_infos(self) -> list[PluginInfo]:
        """Name, distribution, version and hooks of each registered plugin, by name."""
        out = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(h.name for h in self.get_hookcallers(plugin) or []))
            dist = self.distributions.get(name)
            out.append(PluginInfo(name=name, distribution=dist[0] if dist else None,
                                  version=dist[1] if dist else None, hooks=hooks))
        return sorted(out, key=lambda p: p.name)


def get_plugin_manager(plugins: Iterable[Any] = (), *, autoload: bool | None = None,
                       disabled: Iterable[str] = (), hook_files: Iterable[str] = ()
                       ) -> PentoraPluginManager:
    """A fresh plugin manager: entry points (unless disabled), then ``plugins``, then
    ``hook_files`` (``--hooks FILE``), then ``check_pending()``. Each plugin's
    ``pentora_plugin_added`` runs as it is registered, so an area's parts follow it."""
    pm = PentoraPluginManager()
    disabled = list(disabled)
    for name in disabled:
        pm.set_blocked(name)
    pm.hook.pentora_plugin_added.call_historic(kwargs={"pm": pm})
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_ENV)
    eps = _load_entry_points(pm) if autoload else []
    for plugin in plugins:
        if pm.is_registered(plugin):
            continue
        name = getattr(plugin, "pentora_plugin_name", None) or _default_name(plugin)
        pm.register_explicit(plugin, name)
    for path in hook_files:
        from ._registry import load_python_file

        module = load_python_file(path)
        # A hooks file clashing with an installed plugin stays an error: the command line
        # has -p no:NAME to choose, and a format silently replaced would surprise.
        pm.register(module, name=f"hooks:{path}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        name = (pm.get_name(e.plugin) if e.plugin is not None else None) or "?"
        raise PluginError(f"plugin '{name}' implements a hook pentora does not define: {e}. "
                          "Hook names start with pentora_ and are listed in `pentora plugins hooks`"
                          ) from e
    if autoload:
        _check_disabled(pm, disabled, {ep.name for ep in eps})
    return pm


def _check_disabled(pm: PentoraPluginManager, disabled: list[str], ep_names: set[str]) -> None:
    """``-p no:NAME`` for a NAME that blocked nothing is a typo or a former name: say which."""
    known = ep_names | pm.seen_names
    for name in disabled:
        if name in known or name.startswith("hooks:"):
            continue
        now = pm.former_names.get(name)
        if now is not None:
            hint = pm.former_hints.get(name)
            raise UnknownPluginError(f"there is no plugin '{name}' any more: it is now '{now}' "
                                     f"(-p no:{now}); " + (f"{hint}; " if hint else "")
                                     + "the changelog lists every former name")
        # A near miss of a former name suggests the plugin's name now.
        near = difflib.get_close_matches(name, sorted(known | set(pm.former_names)), n=3, cutoff=0.6)
        said = list(dict.fromkeys(f"'{pm.former_names[n]}' (once '{n}')" if n in pm.former_names
                                  and pm.former_names[n] != n else f"'{n}'" for n in near))
        hint = (" (did you mean " + " or ".join(said) + "?)") if said else ""
        raise UnknownPluginError(f"no plugin named '{name}' to disable{hint}; `pentora plugins "
                                 "list` shows the plugins")


def _default_name(plugin: Any) -> str:
    mod = getattr(plugin, "__name__", None)
    if isinstance(mod, str):
        return mod
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def _load_entry_points(pm: PentoraPluginManager) -> list[EntryPoint]:
    import importlib.metadata as md  # only when autoloading: a tenth of the start-up otherwise

    from ._lazyplugins import LazyPlugin, ManifestCache, cache_dir

    cache = ManifestCache(cache_dir())
    eps = sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    for ep in eps:
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        manifest = cache.manifest(ep)
        if manifest is not None and not manifest.get("eager"):
            # Imported when one of its hooks is first called (see pentora._lazyplugins).
            _loaded(pm, ep, LazyPlugin(pm, ep, manifest, cache))
            continue
        before = set(sys.modules)
        plugin = _load_entry_point(pm, ep)
        if plugin is not None:
            cache.record(pm, ep, plugin, set(sys.modules) - before)
    cache.save()
    return eps


def _load_entry_point(pm: PentoraPluginManager, ep: EntryPoint) -> object | None:
    """Import and register ``ep``'s plugin; None (reported broken) when that fails."""
    plugin = None
    try:
        plugin = ep.load()
        mistake = _class_not_instance(plugin)
        if mistake:
            _broken(pm, ep, mistake)
            return None
        pm.register(plugin, name=ep.name)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # a broken package (even one calling exit) must not take the CLI down
        if plugin is not None and pm.is_registered(plugin):
            pm.unregister(plugin)  # it failed half-way (adding its parts): none of it stays
        _broken(pm, ep, _one_line(f"{type(e).__name__}: {e}"))
        return None
    unknown = sorted(hc.name for hc in pm.get_hookcallers(plugin) or [] if not hc.has_spec())
    if unknown:
        pm.unregister(plugin)
        _broken(pm, ep, "implements hooks pentora does not define: " + ", ".join(unknown)
                + " (a typo? `pentora plugins hooks` lists them)")
        return None
    _loaded(pm, ep, None)
    return plugin


def _loaded(pm: PentoraPluginManager, ep: EntryPoint, stand_in: object | None) -> None:
    """``ep``'s plugin is in: registered (``stand_in`` for it, if given) and reported."""
    if stand_in is not None:
        pm.register(stand_in, name=ep.name)
    pm.load_report.loaded.append(ep.name)
    dist = getattr(ep, "dist", None)
    if dist is not None:  # its parts (``AREA.PART``) come from the same distribution
        for name, _ in pm.list_name_plugin():
            if name == ep.name or name.startswith(ep.name + "."):
                pm._unread[name] = dist


def _class_not_instance(plugin: Any) -> str | None:
    """An entry point naming a class whose hooks are methods: pluggy would register the
    class, and every call of its hooks would fail for want of ``self``."""
    if not inspect.isclass(plugin):
        return None
    for name in dir(plugin):
        fn = inspect.getattr_static(plugin, name, None)
        if name.startswith("pentora_") and inspect.isfunction(fn):
            params = list(inspect.signature(fn).parameters)
            if params[:1] == ["self"]:
                return (f"the entry point names the class {plugin.__qualname__}, whose hooks are "
                        f"methods: point it at an instance (plugin = {plugin.__qualname__}()) instead")
    return None


def _one_line(text: str) -> str:
    """pluggy's messages span lines; a load report and a table cell are one line."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _broken(pm: PentoraPluginManager, ep: EntryPoint, msg: str) -> None:
    dist = getattr(ep, "dist", None)
    if dist is not None:  # `plugins list` names the package to fix or remove
        pm._unread[ep.name] = dist
    _report_broken(pm, ep.name, f"({ep.value}) failed to load", msg)


def _report_broken(pm: PentoraPluginManager, name: str, what: str, msg: str) -> None:
    pm.load_report.broken.append((name, msg))
    warning = f"plugin '{name}' {what} and was skipped: {msg}"
    pm.load_report.warnings.append(warning)
    logger.warning("{}", warning)


def _build_registry(pm: PentoraPluginManager) -> Registry:
    """Call the registration hooks through pluggy; each registration names its plugin.

    An installed plugin whose registration fails (it raises, or registers something that
    is not a module) is reported broken and left out, and the registry is built without
    it: one broken package must not take every command down. A plugin passed explicitly,
    and a clash between two plugins, stay errors."""
    while True:
        try:
            return _registry_of(pm)
        except PluginError as e:
            name = getattr(e, "plugin_name", None)
            if isinstance(e, PluginClashError) or name is None or not _is_installed(pm, name):
                raise
            _drop(pm, name, f"in {e.hook}: {e.detail}")  # type: ignore[attr-defined]


def _is_installed(pm: PentoraPluginManager, name: str) -> bool:
    return name.split(".")[0] in pm.load_report.loaded and name not in pm.explicit


def _drop(pm: PentoraPluginManager, name: str, msg: str) -> None:
    """Unregister the installed plugin ``name`` belongs to, with its parts, as broken."""
    top = name.split(".")[0]
    for part, plugin in list(pm.list_name_plugin()):
        if plugin is not None and (part == top or part.startswith(top + ".")):
            pm.unregister(plugin)
    pm.load_report.loaded.remove(top)
    _report_broken(pm, top, "failed", msg)


def _registry_of(pm: PentoraPluginManager) -> Registry:
    # The registry (voluptuous, the module base class) when something first asks for it,
    # not to build the command line.
    from ._registry import Registry

    installed = frozenset(name for name, _ in pm.list_name_plugin() if _is_installed(pm, name))
    registry = Registry(explicit=frozenset(pm.explicit), installed=installed)
    codes = impl_codes(impl for name in REGISTRATION_HOOKS
                       for impl in getattr(pm.hook, name).get_hookimpls())
    with registry.attributing(codes):
        for hook_name in REGISTRATION_HOOKS:
            try:
                getattr(pm.hook, hook_name)(registry=registry)
            except (PluginClashError, KeyboardInterrupt):
                raise
            except BaseException as e:  # SystemExit from a registration hook is its failure too
                name = culprit(e, codes)
                detail = str(e) if isinstance(e, PluginError) else f"{type(e).__name__}: {e}"
                error = PluginError(f"plugin '{name or '?'}' failed in {hook_name}: {detail}")
                error.plugin_name, error.hook, error.detail = name, hook_name, detail  # type: ignore[attr-defined]
                raise error from e
    return registry
