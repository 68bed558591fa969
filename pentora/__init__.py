"""pentora: a network scanner whose heart is a DAG execution engine."""

from __future__ import annotations

from ._atomic import AtomicOutput, atomic_output
from ._builder import DagBuilder
from ._condition import Condition
from ._console import console as terminal_console
from ._console import set_live as set_live_console
from ._console import use_color
from ._context import DataContext
from ._dag import Dag, DataContextSpec, EngineConfig, NodeSpec, RetrySpec
from ._errors import (
                     ConditionError,
                     ContextFullError,
                     ContextKeyError,
                     DagParseError,
                     ModuleError,
                     NodeTimeout,
                     PentoraError,
                     PluginError,
                     Problem,
                     TransientError,
                     ValidationError,
)
from ._hookspecs import hookimpl, hookspec
from ._input import InputError, input_lines, load_json, load_yaml, open_input, read_input
from ._interpolate import interpolate
from ._module import Module
from ._nodectx import NodeContext, NodeRestore, record_kind
from ._orchestrator import Orchestrator
from ._parse import load_dag
from ._plan import Plan, plan, try_plan
from ._plugins import PentoraPluginManager, get_plugin_manager
from ._records import NodeRecord, ScanInfo, ScanResult
from ._records import iso as iso_time
from ._registry import ModuleType, OutputFormat, Registry, RetryPolicy
from ._sinks import RecordRouter
from ._text import clean as clean_text

__version__ = "0.1.0"

from ._logging import quiet_logs  # noqa: E402

# A library stays quiet until its user asks: the CLI, or ``pentora._logging.configure()``,
# enables pentora's logs and every plugin package's.
quiet_logs("pentora")

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
