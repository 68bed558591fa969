"""The registry of module types, retry policies and output formats.

Everything is registered as a small frozen record naming its provider, so that a
duplicate name fails loudly with both providers named; but a plugin passed explicitly
(``Orchestrator(plugins=[…])``, ``--hooks FILE``) wins over an installed one, with a notice.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import inspect
import random
import sys
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import voluptuous as vol

from ._dag import RetrySpec
from ._errors import PluginClashError, PluginError
from ._log import logger
from ._module import Module


class ModuleType:
    """A registered module type: its name, the plugin that provides it, and its class.

    The class is given, or named as ``"package.module:Class"`` and imported the first time
    it is needed (a scan that uses the type, ``pentora modules show``): a command that uses
    none of a plugin's module types never imports their code. A class that fails to import
    raises ``PluginError`` naming the plugin, the type and what failed."""

    __slots__ = ("_cls", "_description", "name", "provider", "target")

    def __init__(self, name: str, cls: type[Module] | str, provider: str, description: str = "") -> None:
        self.name, self.provider = name, provider
        self.target = cls if isinstance(cls, str) else f"{cls.__module__}:{cls.__qualname__}"
        self._cls: type[Module] | None = None if isinstance(cls, str) else cls
        self._description = description

    def __repr__(self) -> str:
        return f"ModuleType({self.name!r}, {self.target!r}, provider={self.provider!r})"

    @property
    def loaded(self) -> bool:
        """Whether the class has been imported."""
        return self._cls is not None

    @property
    def cls(self) -> type[Module]:
        if self._cls is None:
            self._cls = _import_module_class(self.name, self.target, self.provider)
        return self._cls

    @property
    def description(self) -> str:
        if not self._description:
            self._description = _summary(self.cls)
        return self._description

    @property
    def always_run(self) -> bool:
        return bool(self.cls.always_run)

    def schema(self) -> vol.Schema:
        """The compiled config schema, built once per module class."""
        compiled = _COMPILED.get(self.cls)
        if compiled is None:
            raw = self.cls.config_schema
            compiled = raw if isinstance(raw, vol.Schema) else vol.Schema(raw or {}, extra=vol.PREVENT_EXTRA)
            _COMPILED[self.cls] = compiled
        return compiled


def _summary(cls: type[Module]) -> str:
    return cls.description or (inspect.getdoc(cls) or "").split("\n")[0]


def _import_module_class(name: str, target: str, provider: str) -> type[Module]:
    """The class ``"package.module:Class"`` names, checked as ``Registry.register`` checks
    a class given directly; any failure is the plugin's ``PluginError``, never a trace."""
    where = f"module type '{name}' of plugin '{provider}' ({target})"
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # its import may raise anything, even SystemExit
        raise PluginError(f"{where} failed to load: {type(e).__name__}: {e}; `pentora plugins "
                          f"list` shows the plugins, -p no:{provider.split('.')[0]} leaves it out"
                          ) from e
    _check_module_class(obj, where)
    return obj  # type: ignore[no-any-return]


def _check_module_class(cls: Any, where: str) -> None:
    if not (inspect.isclass(cls) and issubclass(cls, Module)):
        raise PluginError(f"{where} is {cls!r}, which is not a pentora.Module subclass")
    try:
        vol.Schema(cls.config_schema or {})
    except vol.SchemaError as e:
        raise PluginError(f"{where} has an invalid config_schema: {e}") from e


# Compiling a voluptuous schema costs more than validating with it: once per class.
_COMPILED: weakref.WeakKeyDictionary[type, vol.Schema] = weakref.WeakKeyDictionary()


DelayFn = Callable[[int, RetrySpec, random.Random], float]


@dataclass(frozen=True)
class RetryPolicy:
    """``delay(attempt, spec, rng)``: seconds to wait after failed attempt ``attempt`` (1-based)."""

    name: str
    description: str
    delay: DelayFn
    provider: str = ""


@dataclass(frozen=True)
class OutputFormat:
    """A report format: ``open(path_or_stream)`` returns a writer with ``record(kind, data)``
    (each finding and node record as it happens; ``data`` a record object or, when
    ``pentora report`` replays a JSONL file, its line as a dict) and ``close(result)``
    (the ``ScanResult``; None on a replay or when the scan never returned). An optional
    ``start(scan)`` is called with the ``ScanInfo`` (DAG, vars) before any record.

    ``takes_stream``: ``open`` accepts an open text stream. ``-o FILE`` then gives it a
    temporary file beside FILE, renamed over FILE when the run ends, so a run that fails
    or is killed never leaves FILE emptied; the writer must not close the stream itself.
    Otherwise ``open`` gets the path (``-`` for stdout) and opens it, ideally with
    ``pentora.atomic_output``."""

    name: str
    description: str
    open: Callable[..., Any]
    extensions: tuple[str, ...] = ()
    provider: str = ""
    takes_stream: bool = False


@dataclass
class Registry:
    modules: dict[str, ModuleType] = field(default_factory=dict)
    retry_policies: dict[str, RetryPolicy] = field(default_factory=dict)
    output_formats: dict[str, OutputFormat] = field(default_factory=dict)
    _default_provider: str = "<direct>"
    # Code objects of hook implementations → plugin name, while registration hooks run:
    # pluggy calls the implementations, and each registration is attributed to the one
    # whose frame is on the stack (see ``_provider``).
    _codes: dict[CodeType, str] = field(default_factory=dict)
    # Providers the caller passed explicitly, and those installed (entry points and their
    # parts): on a name clash between one of each, the explicit one wins, since asking for
    # a plugin by hand is asking for its registrations.
    explicit: frozenset[str] = frozenset()
    installed: frozenset[str] = frozenset()

    @contextlib.contextmanager
    def providing(self, name: str) -> Iterator[None]:
        """Attribute what is registered inside the block to plugin ``name``."""
        saved, self._default_provider = self._default_provider, name
        try:
            yield
        finally:
            self._default_provider = saved

    @contextlib.contextmanager
    def attributing(self, codes: dict[CodeType, str]) -> Iterator[None]:
        """Attribute each registration to the plugin whose hook implementation (one of
        ``codes``) is running it, however deep the call."""
        saved, self._codes = self._codes, codes
        try:
            yield
        finally:
            self._codes = saved

    @property
    def _provider(self) -> str:
        if self._codes:
            frame: FrameType | None = sys._getframe(1)
            while frame is not None:
                name = self._codes.get(frame.f_code)
                if name is not None:
                    return name
                frame = frame.f_back
        return self._default_provider

    def register(self, cls: type[Module] | str, name: str | None = None,
                 description: str = "") -> ModuleType:
        """Register a ``Module`` subclass under ``name`` (default: its ``module_type``).

        ``cls`` may name the class instead, ``"package.module:Class"`` with ``name``
        given: it is imported when the type is first used, so that registering costs
        no import (see ``ModuleType``); ``description`` is then what ``pentora modules
        list`` shows without importing it."""
        if isinstance(cls, str):
            return self._register_named(cls, name, description)
        if not (inspect.isclass(cls) and issubclass(cls, Module)):
            raise PluginError(f"plugin '{self._provider}' registered {cls!r}, which is not a "
                              "pentora.Module subclass")
        name = name or cls.module_type
        if not name:
            raise PluginError(f"plugin '{self._provider}': {cls.__qualname__} has no module_type")
        record = ModuleType(name=name, cls=cls, provider=self._provider)
        existing = self._existing(record)
        if existing is not None:
            return existing
        _check_module_class(cls, f"module type '{name}' of plugin '{self._provider}'")
        self.modules[name] = record
        return record

    def _register_named(self, target: str, name: str | None, description: str = "") -> ModuleType:
        module_name, colon, attr = target.partition(":")
        if not (name and module_name and colon and attr):
            raise PluginError(f"plugin '{self._provider}' registered {target!r}: a class named by "
                              "a string is 'package.module:Class', with name='module_type'")
        record = ModuleType(name=name, cls=target, provider=self._provider, description=description)
        existing = self._existing(record)
        if existing is None:
            self.modules[name] = record
        return existing or record

    def _existing(self, record: ModuleType) -> ModuleType | None:
        """The registration of ``record.name`` that stays: the one there (the same class
        again, or an explicit plugin's over an installed one), or None for ``record``."""
        existing = self.modules.get(record.name)
        if existing is None:
            return None
        if existing.target == record.target:
            return existing
        if self._replaces("module type", record.name, existing.provider, record.provider,
                          f" ({existing.target.replace(':', '.')})", f" ({record.target.replace(':', '.')})"):
            return None
        return existing

    def register_retry_policy(self, policy: RetryPolicy) -> None:
        self._add(self.retry_policies, "retry policy", policy)

    def register_output_format(self, fmt: OutputFormat) -> None:
        self._add(self.output_formats, "output format", fmt)

    def _add(self, table: dict[str, Any], kind: str, record: Any) -> None:
        if not record.provider:
            object.__setattr__(record, "provider", self._provider)
        existing = table.get(record.name)
        if existing is not None and existing is not record:
            if not self._replaces(kind, record.name, existing.provider, record.provider):
                return
        table[record.name] = record

    def _replaces(self, kind: str, name: str, old: str, new: str, old_what: str = "",
                  new_what: str = "") -> bool:
        """``name`` is registered by ``old`` and now by ``new``: whether ``new``'s replaces
        it (``new`` explicit, ``old`` installed), or ``old``'s stays (the reverse). Any
        other pair clashes: ``PluginClashError`` naming both."""
        if not ({old, new} & self.explicit and {old, new} & self.installed
                and (old in self.explicit) != (new in self.explicit)):
            raise PluginClashError(
                f"{kind} '{name}' registered twice: by plugin '{old}'{old_what} and by plugin "
                f"'{new}'{new_what}", providers=(old, new))
        winner, loser = (new, old) if new in self.explicit else (old, new)
        logger.info("{} '{}': plugin '{}', passed explicitly, is used instead of installed "
                    "plugin '{}'", kind, name, winner, loser)
        return winner == new

    def get(self, name: str) -> ModuleType:
        try:
            return self.modules[name]
        except KeyError:
            raise PluginError(f"unknown module type '{name}'{self.nearest_hint(name)}") from None

    def nearest(self, name: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(name, list(self.modules), n=n, cutoff=0.5)

    def nearest_hint(self, name: str) -> str:
        near = self.nearest(name)
        if near:
            return " (did you mean " + " or ".join(f"'{x}'" for x in near) + "?)"
        if not self.modules:
            return " (no module types are registered: are the plugins installed?)"
        return "; `pentora modules list` shows the registered types"

    def register_plugin_file(self, path: str | Path) -> list[ModuleType]:
        """Load a ``.py`` file and register every ``Module`` subclass it defines.

        A ``pentora_register_modules(registry)`` function in the file, if any, is
        called too. Returns the module types added.
        """
        module = load_python_file(path)
        before = set(self.modules)
        with self.providing(str(path)):
            hook = getattr(module, "pentora_register_modules", None)
            if callable(hook):
                hook(registry=self)
            for obj in vars(module).values():
                if (inspect.isclass(obj) and issubclass(obj, Module) and obj is not Module
                        and obj.__module__ == module.__name__ and obj.module_type):
                    self.register(obj)
        return [self.modules[n] for n in self.modules if n not in before]


def load_python_file(path: str | Path) -> Any:
    """Import a Python file named explicitly by the user (never searched for)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise PluginError(f"plugin file not found: {path}")
    if path.suffix != ".py":
        raise PluginError(f"plugin file must be a .py file: {path}")
    name = f"pentora_user_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # a file calling sys.exit() at import is a broken plugin too
        sys.modules.pop(name, None)
        raise PluginError(f"plugin file {path} failed to import: {type(e).__name__}: {e}") from e
    return module
