"""``pentora server``: a REST API over scans (``/api/v1``), live progress as Server-Sent
Events, scans run in this process on a bounded pool, bearer tokens, an allow-list of
what may be scanned. See docs/server.md.

Light on purpose: ``pentora --help`` imports this module; Flask and the rest are imported
when the command runs.
"""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

pentora_former_names: dict[str, str] = {}


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    from pentora_plugins.server._cli import add_commands

    add_commands(subparsers, common)
