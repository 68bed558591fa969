"""pentora: a network scanner whose heart is a DAG execution engine."""

# ruff: noqa: F405

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AtomicOutput", "Condition", "ConditionError", "ContextFullError", "ContextKeyError", "Dag",
    "DagBuilder", "DagParseError", "DataContext", "DataContextSpec", "EngineConfig", "InputError",
    "Module", "ModuleError", "ModuleType", "NodeContext", "NodeRecord", "NodeRestore", "NodeSpec",
    "NodeTimeout", "Orchestrator", "OutputFormat", "PentoraError", "PentoraPluginManager", "Plan",
    "PluginError", "Problem", "RecordRouter", "Registry", "RetryPolicy", "RetrySpec", "ScanInfo",
    "ScanResult", "TransientError", "ValidationError", "__version__", "atomic_output", "clean_text",
    "get_plugin_manager", "hookimpl", "hookspec", "input_lines", "interpolate", "iso_time",
    "load_dag", "load_json", "load_yaml", "open_input", "plan", "quiet_logs", "read_input",
    "record_kind", "set_live_console", "terminal_console", "try_plan", "use_color",
]

if TYPE_CHECKING:
    from ._api import *  # noqa: F403


def __getattr__(name: str) -> Any:
    # The API (``pentora._api``) is imported on first use, not with the package:
    # ``pentora --version`` and shell completion answer before gevent, loguru and the
    # engine are imported. The first public name asked for brings in all of them, and
    # with them ``quiet_logs("pentora")``. Any other name is no attribute, so that
    # ``from . import schema`` imports the submodule.
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _api

    namespace = globals()
    namespace.update({n: getattr(_api, n) for n in __all__ if n != "__version__"})
    return namespace[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
