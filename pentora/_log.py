"""pentora's logger: loguru's, imported when something is first logged.

loguru brings asyncio with it, a fifth of a Python start; ``pentora --help`` and shell
completion log nothing and must not pay for it. Code in the core logs through this
``logger`` exactly as through loguru's.
"""

from __future__ import annotations

import sys
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
            from loguru import logger

            quiet_noted(logger)
            self._resolved = logger.bind(**self._extra) if self._extra is not None else logger
        return getattr(self._resolved, name)


logger: Logger = _Logger()  # type: ignore[assignment]

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
