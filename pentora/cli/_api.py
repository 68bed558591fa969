"""What ``pentora.cli`` exports, imported on first use: every name here is listed in
``pentora.cli.__all__`` (see ``pentora/cli/__init__.py``)."""

# ruff: noqa: F401

from __future__ import annotations

from ._common import (
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
    CliError,
    disabled_plugins,
    echo,
    list_profiles,
    make_orchestrator,
    parse_sets,
    profile_path,
    unused_vars,
)
from ._info_cmds import modules_data, plugins_data, profiles_data
from ._main import scan_parser
from ._outputs import (
    OutputSink,
    add_output_options,
    check_outputs,
    open_outputs,
    output_problems,
    output_targets,
    resolve_outputs,
)
from ._scan_cmd import new_scan, refuse_scan_options, scan_exit, scan_options
