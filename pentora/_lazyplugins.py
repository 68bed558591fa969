"""Entry-point plugins imported on first use, from a cache of their manifests.

The first run that meets an entry point imports it, as always, and writes down its
manifest: the hooks it implements (with their ``hookimpl`` options and argument names),
the module types its ``pentora_register_modules`` registers (name, ``"module:Class"``
target, description), and its ``pentora_former_names``. Later runs register a
``LazyPlugin`` in its place, built from the manifest: pluggy sees the same hook names,
options and argument names, so ordering, wrappers and ``firstresult`` behave as with the
plugin itself. The first call of any of its hooks imports the plugin, swaps it in where
the stand-in was (same name, same place in each hook's order) and forwards the call; the
registration hooks replay the manifest instead, so that its module types enter the
registry with nothing imported (``ModuleType`` imports a class when a scan first uses it).

A plugin is imported at start-up still when its manifest cannot stand in for it: it
implements a historic hook (``pentora_plugin_added`` is called as it is registered) or
registers parts of its own. A plugin registering retry policies or output formats (which
are objects, not names) has its registration hooks forwarded: it is imported when the
registry is first built.

The cache is one JSON file, ``plugins.json`` in ``$PENTORA_CACHE_DIR``, else
``$XDG_CACHE_HOME/pentora``, else ``~/.cache/pentora`` (``PENTORA_CACHE_DIR=off``: no
cache). Each entry point's manifest is kept with its fingerprint: the entry point's value,
its distribution's ``.dist-info`` folder (its name holds the version) and the size and
mtime of each file of the plugin's package that loading it imported. Any of them changed,
or another Python, pentora or hook specification: the plugin is imported as on the first
run and its manifest written again. A cache that cannot be read is ignored and rewritten;
one that cannot be written only leaves the next run as slow as this one (a debug line).
"""

from __future__ import annotations

import inspect
import json
import keyword
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pluggy import HookImpl

from ._errors import PluginError
from ._log import logger

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ._plugins import PentoraPluginManager

CACHE_ENV = "PENTORA_CACHE_DIR"
CACHE_FILE = "plugins.json"
FORMAT = 1
MODULES_HOOK = "pentora_register_modules"
# Registration hooks whose records are objects, not names: a manifest cannot replay them.
OBJECT_HOOKS = ("pentora_register_retry_policies", "pentora_register_output_formats")


def cache_dir() -> Path | None:
    """Where the manifests are kept; None when ``PENTORA_CACHE_DIR=off``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return None if explicit.lower() == "off" else Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pentora"


def _stat(path: str) -> list[Any] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_size, st.st_mtime_ns]


def _header() -> dict[str, Any]:
    """What every manifest depends on besides its plugin: the hook specifications they
    were checked against, and the interpreter and pentora that read them."""
    from . import __version__, _hookspecs

    return {"format": FORMAT, "python": sys.version, "pentora": __version__,
            "hookspecs": _stat(_hookspecs.__file__ or "")}


class ManifestCache:
    """The manifests of the entry points met so far, read once per run and written back
    when one was added or dropped."""

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / CACHE_FILE if folder is not None else None
        self.header = _header()
        self.entries: dict[str, dict[str, Any]] = self._read()
        self.dirty = False

    def _read(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:  # damaged or unreadable: rebuilt from the plugins
            logger.debug("plugin manifest cache {} ignored ({}); it is written again", self.path, e)
            return {}
        if not (isinstance(data, dict) and data.get("header") == self.header
                and isinstance(data.get("entries"), dict)):
            return {}
        return data["entries"]

    def manifest(self, ep: EntryPoint) -> dict[str, Any] | None:
        """The manifest of ``ep`` if its fingerprint still holds, else None."""
        entry = self.entries.get(ep.name)
        if not isinstance(entry, dict):
            return None
        fp = entry.get("fingerprint")
        if not (isinstance(fp, dict) and fp.get("value") == ep.value and fp.get("dist") == _dist_id(ep)
                and isinstance(fp.get("files"), list) and fp["files"]):
            return None
        for recorded in fp["files"]:
            if not (isinstance(recorded, list) and recorded and _stat(recorded[0]) == recorded):
                return None
        manifest = entry.get("manifest")
        return manifest if isinstance(manifest, dict) else None

    def record(self, pm: PentoraPluginManager, ep: EntryPoint, plugin: object,
               imported: set[str]) -> None:
        """Write down the manifest of ``plugin``, just loaded from ``ep``; ``imported``:
        the modules loading it imported."""
        files = _files(ep, imported)
        if self.path is None or not files:
            return
        manifest = _manifest(pm, ep.name, plugin)
        self.entries[ep.name] = {"fingerprint": {"value": ep.value, "dist": _dist_id(ep), "files": files},
                                 "manifest": manifest}
        self.dirty = True

    def drop(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.dirty = True

    def save(self) -> None:
        if not self.dirty or self.path is None:
            return
        self.dirty = False
        text = json.dumps({"header": self.header, "entries": self.entries}, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Another pentora may read or write it meanwhile: a whole file or none.
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".plugins.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as e:  # a read-only home: every run imports the plugins, as before
            logger.debug("plugin manifest cache not written to {}: {}", self.path, e)


def _dist_id(ep: EntryPoint) -> str | None:
    """The distribution's ``.dist-info`` (or ``.egg-info``) folder: its name carries the
    version, and it is read without parsing the metadata (a fifth of ``pentora --help``)."""
    path = getattr(getattr(ep, "dist", None), "_path", None)
    return str(path) if path is not None else None


def _files(ep: EntryPoint, imported: set[str]) -> list[list[Any]]:
    """(path, size, mtime_ns) of the entry point's module and of each module of its
    top-level package that loading it imported."""
    module = ep.value.partition(":")[0].strip()
    top = module.split(".")[0]
    names = {module} | {m for m in imported if m == top or m.startswith(top + ".")}
    out = []
    for name in sorted(names):
        path = getattr(sys.modules.get(name), "__file__", None)
        st = _stat(path) if path else None
        if st is not None:
            out.append(st)
    return out


def _manifest(pm: PentoraPluginManager, name: str, plugin: object) -> dict[str, Any]:
    hooks = []
    eager = any(n.startswith(name + ".") for n, _ in pm.list_name_plugin())  # it has parts
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is not None and caller.spec.opts.get("historic"):
            eager = True  # called as it is registered: there is nothing to defer
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin:
                hooks.append({"hook": caller.name, "opts": dict(impl.opts),
                              "argnames": list(impl.argnames)})
    if eager:
        return {"eager": True}
    return {"hooks": hooks, "modules": _module_types(pm, name, plugin, hooks),
            "former_names": dict(getattr(plugin, "pentora_former_names", {}) or {}),
            "former_hints": dict(getattr(plugin, "pentora_former_hints", {}) or {})}


def _module_types(pm: PentoraPluginManager, name: str, plugin: object,
                  hooks: list[dict[str, Any]]) -> list[list[str]] | None:
    """[name, target, description] of each module type ``plugin`` registers, from a
    registry of its own; None when its registrations cannot be named (they are then
    asked of the plugin itself, imported, when the registry is built)."""
    mine = [h for h in hooks if h["hook"] in (MODULES_HOOK, *OBJECT_HOOKS)]
    if any(h["hook"] in OBJECT_HOOKS or h["opts"].get("wrapper") or h["opts"].get("hookwrapper")
           for h in mine):
        return None
    if not mine:
        return []
    recorder = _Recorder()
    try:
        for impl in getattr(pm.hook, MODULES_HOOK).get_hookimpls():
            if impl.plugin is plugin:
                fn = getattr(impl.function, "__wrapped__", impl.function)
                fn(*[recorder if a == "registry" else None for a in impl.argnames])
    except Exception:  # noqa: BLE001 - the registry built for the scan reports it, as today
        return None
    return recorder.modules


class _Recorder:
    """Takes what a ``pentora_register_modules`` implementation registers, as names: the
    registry itself (and voluptuous with it) is not imported to write a manifest, which a
    first TAB may do. What it cannot name fails the recording: the plugin is then asked
    for its registrations whenever the registry is built, and checked there."""

    def __init__(self) -> None:
        self.modules: list[list[str]] = []

    def register(self, cls: Any, name: str | None = None, description: str = "") -> None:
        if isinstance(cls, str):
            target = cls
        else:
            target = f"{cls.__module__}:{cls.__qualname__}"
            name = name or cls.module_type
            description = description or cls.description or (inspect.getdoc(cls) or "").split("\n")[0]
        if not name or "<" in target:  # a class defined in a function: no name imports it
            raise ValueError(target)
        self.modules.append([name, target, description])

    def __getattr__(self, attr: str) -> Any:
        raise AttributeError(attr)  # anything else a registry does: not replayable


class LazyPlugin:
    """Stands in for an entry-point plugin not imported yet: one function per hook of its
    manifest, with the plugin's hook options and argument names. ``load()`` imports the
    plugin and puts it in the stand-in's place."""

    def __init__(self, pm: PentoraPluginManager, ep: EntryPoint, manifest: dict[str, Any],
                 cache: ManifestCache) -> None:
        self._pm, self._ep, self._cache = pm, ep, cache
        self._name = ep.name
        self._manifest = manifest
        self._real: object | None = None
        self._functions: dict[str, Any] = {}
        self._failure: PluginError | None = None
        self.pentora_former_names = manifest.get("former_names", {})
        self.pentora_former_hints = manifest.get("former_hints", {})
        for hook in manifest.get("hooks", []):
            setattr(self, hook["hook"], _stand_in(self, self._name, hook))

    def __repr__(self) -> str:
        return f"<plugin {self._name!r} ({self._ep.value}), not imported yet>"

    @property
    def loaded(self) -> bool:
        return self._real is not None

    def load(self) -> object:
        """The plugin, imported and swapped in on the first call. A plugin that no longer
        imports raises ``PluginError`` naming it (and is reported broken)."""
        if self._real is not None:
            return self._real
        if self._failure is not None:
            raise self._failure
        from ._plugins import _class_not_instance, _one_line

        try:
            plugin = self._ep.load()
            mistake = _class_not_instance(plugin)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # a broken package (even one calling exit) is its own failure
            self._fail(_one_line(f"{type(e).__name__}: {e}"), e)
        if mistake:
            self._fail(mistake, None)
        self._swap(plugin)
        self._real = plugin
        return plugin

    def _fail(self, why: str, cause: BaseException | None) -> None:
        from ._plugins import _report_broken

        self._cache.drop(self._name)
        self._cache.save()
        self._failure = PluginError(
            f"plugin '{self._name}' ({self._ep.value}) failed to load when first used: {why}; "
            f"`pentora plugins list` shows the plugins, -p no:{self._name} leaves it out")
        pm, registry = self._pm, self._pm._registry
        if pm.is_registered(self):
            pm.unregister(self)
            pm._registry = registry  # a scan under way keeps the registry it planned with
        if self._name in pm.load_report.loaded:
            pm.load_report.loaded.remove(self._name)
        _report_broken(pm, self._name, f"({self._ep.value}) failed to load", why)
        raise self._failure from cause

    def _swap(self, real: object) -> None:
        """Put ``real`` where the stand-in is in each hook's list, so that its place in
        the calling order stays what it was. pluggy has no call for that: its lists are
        changed in place (a call under way holds a copy: the stand-in forwards it)."""
        pm = self._pm
        wanted = {h["hook"]: h for h in self._manifest.get("hooks", [])}
        impls: dict[str, HookImpl] = {}
        for attr in dir(real):
            opts = pm.parse_hookimpl_opts(real, attr)
            if opts is None:
                continue
            hook = opts.get("specname") or attr
            impl = HookImpl(real, self._name, getattr(real, attr), opts)
            recorded = wanted.get(hook)
            if recorded is None or list(impl.argnames) != recorded["argnames"] or any(
                    opts.get(k) != v for k, v in recorded["opts"].items() if k in opts):
                impls.clear()
                break
            impls[hook] = impl
            self._functions[hook] = getattr(real, attr)
        registry = pm._registry
        if set(impls) != set(wanted):  # the plugin is not what its manifest says: the slow way
            self._cache.drop(self._name)
            self._cache.save()
            pm.unregister(self)
            pm.register(real, name=self._name)
            self._functions = {c.name: i.function for c in pm.get_hookcallers(real) or []
                               for i in c.get_hookimpls() if i.plugin is real}
        else:
            for hook, impl in impls.items():
                caller = getattr(pm.hook, hook)
                caller._hookimpls[:] = [impl if i.plugin is self else i for i in caller._hookimpls]
            pm._name2plugin[self._name] = real
            from ._notify import contain_notifications

            contain_notifications(pm, real, self._name)
        pm._registry = registry  # the same registrations: the registry built stays valid

    def call(self, hook: str, args: tuple[Any, ...]) -> Any:
        """Forward a call of ``hook`` to the plugin, imported if need be."""
        real = self.load()
        result = self._functions[hook](*args)
        # pentora_scan_idle answers with the plugin: the hook lists of a scan under way
        # hold the stand-in.
        return self if result is real and real is not None else result

    def wrap(self, hook: str, args: tuple[Any, ...]) -> Any:
        self.load()
        return (yield from self._functions[hook](*args))

    def replay(self, registry: Any) -> None:
        """Register the module types of the manifest: the classes stay unimported."""
        for name, target, description in self._manifest["modules"]:
            registry.register(target, name=name, description=description)


def _stand_in(lazy: LazyPlugin, plugin: str, hook: dict[str, Any]) -> Any:
    """A function with the hook's argument names (pluggy reads them off its code) whose
    call goes to the plugin. Its code object is the plugin's own (``impl_codes`` tells
    plugins apart by code: the registry attributes registrations, and failures, by it)."""
    name, args = hook["hook"], hook["argnames"]
    if not all(a.isidentifier() and not keyword.iskeyword(a) for a in (name, *args)):
        raise ValueError(f"manifest of {plugin!r} names {name}({', '.join(args)})")
    opts = hook["opts"]
    packed = "(" + "".join(f"{a}, " for a in args) + ")"
    if opts.get("wrapper") or opts.get("hookwrapper"):
        body = f"return (yield from _lazy.wrap({name!r}, {packed}))"
    elif name == MODULES_HOOK and lazy._manifest.get("modules") is not None:
        body = f"_lazy.replay({args[0] if args else None})"
    elif name in OBJECT_HOOKS and lazy._manifest.get("modules") is not None:
        body = "return None"  # a manifest is kept only for a plugin registering none of these
    else:
        body = f"return _lazy.call({name!r}, {packed})"
    source = f"def {name}({', '.join(args)}):\n    _plugin = {plugin!r}\n    {body}\n"
    namespace: dict[str, Any] = {"_lazy": lazy}
    exec(compile(source, f"<plugin {plugin} not imported yet>", "exec"), namespace)  # noqa: S102
    fn = namespace[name]
    fn.pentora_impl = dict(opts)  # what pluggy's HookimplMarker would have set
    return fn
