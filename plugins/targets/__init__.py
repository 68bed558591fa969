"""Target parsing: ``target_parser``, and ``--targets``, ``-iL``, ``--exclude``,
``--excludefile`` and ``-n`` on ``pentora scan``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"targets": "targets"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.targets.target_parser:TargetParser", name="target_parser")


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is not None:
        from pentora_plugins.targets._cli import add_options
        add_options(scan)


@hookimpl
def pentora_cli_scan_vars(args: Any, dag: Any, resuming: bool) -> dict[str, Any] | None:
    from pentora_plugins.targets._cli import scan_vars
    return scan_vars(args, dag, resuming)
