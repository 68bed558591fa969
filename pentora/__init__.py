"""pentora: a network scanner whose heart is a DAG execution engine."""

from __future__ import annotations

from .builder import DagBuilder
from .condition import Condition
from .context import DataContext
from .dag import Dag, DataContextSpec, EngineConfig, NodeSpec, RetrySpec
from .errors import (
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
from .hookspecs import hookimpl, hookspec
from .module import Module
from .nodectx import NodeContext, NodeRestore
from .orchestrator import Orchestrator
from .parse import load_dag
from .plan import Plan, plan
from .plugins import get_plugin_manager
from .records import NodeRecord, ScanInfo, ScanResult
from .registry import ModuleType, OutputFormat, Registry, RetryPolicy
from .sinks import RecordRouter

__version__ = "0.1.0"

from ._logging import quiet_logs  # noqa: E402

# A library stays quiet until its user asks: the CLI, or ``pentora._logging.configure()``,
# enables pentora's logs and every plugin package's.
quiet_logs("pentora")

__all__ = [
    "Condition", "ConditionError", "ContextFullError", "ContextKeyError", "Dag", "DagBuilder",
    "DagParseError", "DataContext", "DataContextSpec", "EngineConfig", "Module", "ModuleError",
    "ModuleType", "NodeContext", "NodeRecord", "NodeRestore", "NodeSpec", "NodeTimeout", "Orchestrator",
    "OutputFormat", "PentoraError", "Plan", "PluginError", "Problem", "RecordRouter", "Registry",
    "RetryPolicy", "RetrySpec", "ScanInfo", "ScanResult", "TransientError", "ValidationError",
    "__version__", "get_plugin_manager", "hookimpl", "hookspec", "load_dag", "plan", "quiet_logs",
]
