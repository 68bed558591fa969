"""pentora: a network scanner whose heart is a DAG execution engine."""

# ruff: noqa: F405

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_api

__version__ = "0.1.0"

__all__ = [
    "AtomicOutput", "Condition", "ConditionError", "ContextFullError", "ContextKeyError", "Dag",
    "DagBuilder", "DagParseError", "DataContext", "DataContextSpec", "EngineConfig", "InputError",
    "Module", "ModuleError", "ModuleType", "NodeContext", "NodeRecord", "NodeRestore", "NodeSpec",
    "NodeTimeout", "Orchestrator", "OutputFormat", "PentoraError", "PentoraPluginManager", "Plan",
    "PluginError", "Problem", "RecordRouter", "Registry", "RetryPolicy", "RetrySpec", "ScanInfo",
    "ScanResult", "ScanStore", "TransientError", "ValidationError", "__version__", "atomic_output",
    "clean_text",
    "get_plugin_manager", "hookimpl", "hookspec", "input_lines", "interpolate", "iso_time",
    "load_dag", "load_json", "load_yaml", "logger", "open_input", "plan", "quiet_logs", "read_input",
    "record_kind", "set_live_console", "terminal_console", "try_plan", "use_color",
]

if TYPE_CHECKING:
    from ._api import *  # noqa: F403


# The API (``pentora._api``) is imported on first use, not with the package, and with
# it ``quiet_logs("pentora")``: see ``pentora._lazy``.
# ``hookimpl`` alone does not bring in the API: every plugin's module imports it, and
# ``pentora --help`` imports every plugin's module. Nor do the names of the modules that
# import nothing heavy (no gevent, loguru, voluptuous, engine): what a plugin's parts use
# when they are registered, and what its command-line code raises.
_LIGHT = {
    "hookimpl": "_hookspecs", "hookspec": "_hookspecs",
    **dict.fromkeys(["ConditionError", "ContextFullError", "ContextKeyError", "DagParseError",
                     "ModuleError", "NodeTimeout", "PentoraError", "PluginError", "Problem",
                     "TransientError", "ValidationError"], "_errors"),
    **dict.fromkeys(["InputError", "input_lines", "load_json", "load_yaml", "open_input",
                     "read_input"], "_input"),
    **dict.fromkeys(["Dag", "DataContextSpec", "EngineConfig", "NodeSpec", "RetrySpec"], "_dag"),
    **dict.fromkeys(["NodeRecord", "ScanInfo", "ScanResult"], "_records"), "Module": "_module",
    # What registration hooks use (voluptuous, no engine): `modules list`, a TAB of a type.
    **dict.fromkeys(["ModuleType", "OutputFormat", "Registry", "RetryPolicy"], "_registry"),
    **dict.fromkeys(["Plan", "plan", "try_plan"], "_plan"),
    "ScanStore": "_scanstore",
    "AtomicOutput": "_atomic", "atomic_output": "_atomic", "RecordRouter": "_sinks",
    "quiet_logs": "_log", "logger": "_log", "interpolate": "_interpolate", "iso_time": "_records:iso",
    "clean_text": "_text:clean", "use_color": "_console",
    "terminal_console": "_console:console", "set_live_console": "_console:set_live",
}
__getattr__, __dir__ = lazy_api(__name__, __all__, own={"__version__"}, light=_LIGHT)
