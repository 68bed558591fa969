"""General-purpose modules (``noop``, ``sleep``, ``set``), the retry policies, and the engine's
parts: lifecycle logging, progress, profiles, ``--resume``, timing (``-T``), and ``pentora demo``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names these had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"core_modules": "engine", "retry": "engine", "demo": "engine",
                        "logging": "engine.logging", "progress": "engine.progress",
                        "profiles": "engine.profiles"}


@hookimpl
def pentora_plugin_added(pm: Any) -> None:
    from pentora_plugins.engine import logging, profiles, resume, timing
    from pentora_plugins.engine.progress import Progress

    pm.register(logging, name="engine.logging")
    pm.register(Progress(), name="engine.progress")
    pm.register(profiles, name="engine.profiles")
    pm.register(resume, name="engine.resume")
    pm.register(timing, name="engine.timing")


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.engine.modules:Noop", name="noop")
    registry.register("pentora_plugins.engine.modules:Set", name="set")
    registry.register("pentora_plugins.engine.modules:Sleep", name="sleep")


@hookimpl
def pentora_register_retry_policies(registry: Any) -> None:
    from pentora_plugins.engine.retry import POLICIES

    for policy in POLICIES:
        registry.register_retry_policy(policy)


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    from pentora.cli import add_output_options

    p = subparsers.add_parser("demo", parents=[common],
                              help="start demo services on loopback and scan them")
    add_output_options(p)
    p.add_argument("--progress", action="store_true", help="show progress on stderr")
    p.set_defaults(cooperative=True, func=_demo)


def _demo(args: Any) -> int:
    # The demo's servers (gevent, ssl, the engine) are imported when it runs: this module is
    # imported whenever pentora starts.
    from pentora_plugins.engine.demo import cmd_demo

    return cmd_demo(args)
