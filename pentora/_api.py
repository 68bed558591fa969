"""The public API of ``pentora``, imported by the package on first use: every name here
is listed in ``pentora.__all__`` (see ``pentora/__init__.py``)."""

# ruff: noqa: F401

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
from ._log import logger, quiet_logs
from ._module import Module
from ._nodectx import NodeContext, NodeRestore, record_kind
from ._orchestrator import Orchestrator
from ._parse import load_dag
from ._plan import Plan, plan, try_plan
from ._plugins import PentoraPluginManager, get_plugin_manager
from ._records import NodeRecord, ScanInfo, ScanResult
from ._records import iso as iso_time
from ._registry import ModuleType, OutputFormat, Registry, RetryPolicy
from ._scanstore import ScanStore
from ._sinks import RecordRouter
from ._text import clean as clean_text

# A library stays quiet until its user asks: the CLI, or ``pentora._logging.configure()``,
# enables pentora's logs and every plugin package's.
quiet_logs("pentora")
