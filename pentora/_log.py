"""pentora's logger: loguru's, imported when something is first logged.

loguru brings asyncio with it, a fifth of a Python start; ``pentora --help`` and shell
completion log nothing and must not pay for it, nor a scan's first probe. Code in the core
and the plugins logs through this ``logger`` (``pentora.logger``) exactly as through
loguru's. Once the command line has chosen its level (``configure_on_import``), a call
below it returns before loguru is imported; loguru is configured when it is first
imported, by whoever imports it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loguru import Logger


class _Logger:
    """loguru's ``logger`` (bound to ``extra``, as ``logger.bind(**extra)`` would be),
    imported on first use. ``bind`` itself imports nothing: modules bind theirs at import.
    loguru's ``remove()`` and ``add()`` change its one core in place, so a logger resolved
    once never goes stale."""

    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        self._extra = extra
        self._resolved: Any = None

    def bind(self, **extra: Any) -> Any:
        return _Logger({**(self._extra or {}), **extra})

    def __getattr__(self, name: str) -> Any:
        if self._resolved is None:
            if _below_threshold(name):
                return _dropped
            from loguru import logger

            quiet_noted(logger)
            self._resolved = logger.bind(**self._extra) if self._extra is not None else logger
        return getattr(self._resolved, name)


logger: Logger = _Logger()  # type: ignore[assignment]

_LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40,
           "CRITICAL": 50}
_threshold = SimpleNamespace(level=0)  # the CLI's level while loguru waits to be imported


def _below_threshold(method: str) -> bool:
    level = _LEVELS.get(method.upper())
    return level is not None and level < _threshold.level and "loguru" not in sys.modules


def _dropped(*args: Any, **kwargs: Any) -> None:
    """A record below the configured level: loguru would drop it too."""


class _ConfigureOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds loguru as the other finders do, and runs ``configure`` once its module has run:
    whoever imports it first (the core, a plugin, a library) gets it configured. Python's
    import system has no post-import hook of its own; this is the documented finder and
    loader protocol (PEP 451)."""

    def __init__(self) -> None:
        self.inner: Any = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "loguru":
            return None
        sys.meta_path.remove(self)  # once, and not in the search for the real one
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        self.inner, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        _threshold.level = 0
        # ``pentora._logging`` imports loguru first thing, and runs what is pending when
        # its own module has run (it is what ``configure`` calls).
        if "pentora._logging" not in sys.modules:
            run_pending()


_pending: list[Callable[[], None]] = []


def run_pending() -> None:
    """Run the configuration ``configure_on_import`` left, once."""
    while _pending:
        _pending.pop()()


def configure_on_import(level: str, configure: Callable[[], None]) -> None:
    """Run ``configure`` (which uses ``pentora._logging``) when loguru is first imported,
    and drop the records below ``level`` until then; at once if it is imported already."""
    # A second call (a test running the CLI twice in one process) replaces the first.
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ConfigureOnImport)]
    _pending[:] = [configure]
    if "loguru" in sys.modules:
        run_pending()
        return
    _threshold.level = _LEVELS.get(level.upper(), 0)
    sys.meta_path.insert(0, _ConfigureOnImport())


# The core's own logs are off too until logging is configured: a library stays quiet (the
# CLI's plugin-loading warnings are logged again once it has configured logging).
quieted: set[str] = {"pentora"}
quiet_state = SimpleNamespace(configured=False)  # set by ``pentora._logging.enable_logs``


def quiet_noted(loguru_logger: Any) -> None:
    """Disable what ``quiet_logs`` noted, once loguru is imported (until it is configured)."""
    if not quiet_state.configured:
        for package in quieted:
            loguru_logger.disable(package)


def quiet_logs(package: str) -> None:
    """Keep ``package``'s logs off until logging is configured (loguru's advice for
    libraries). Plugin packages call this at import; ``configure()`` turns them on,
    whatever the import order. Before loguru is imported the package is only noted, and
    disabled when the core first logs or ``pentora._logging`` (the API's, the CLI's) is
    imported: a plugin package's import costs no loguru."""
    if quiet_state.configured:
        return
    quieted.add(package)
    if "loguru" in sys.modules:
        from loguru import logger as loguru_logger

        loguru_logger.disable(package)
