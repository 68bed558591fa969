"""Sharded and distributed scans: ``--shard K/N``, ``--executor celery``, ``pentora worker``.

- ``pentora scan ... --shard 3/8`` runs shard 3 of 8 here, no Celery: eight machines
  given the same command line with 1/8 … 8/8 split the scan by hand.
- ``pentora worker --broker redis://HOST:PORT/DB`` runs a Celery worker (gevent pool).
- ``pentora scan ... --executor celery --broker URL --shards N`` sends one task per shard
  (the shard-safe part of the DAG, its vars and settings), merges the results here, and
  runs the rest (asset profiles, reporters, ``-o`` outputs) on the merged data.

Celery is imported only when a worker starts or a scan is sent to workers (``pip install
pentora[celery]``). See ``_shard`` for the split, ``_split`` for what runs where.
"""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

pentora_former_names = {"celery_exec": "distributed"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.distributed.celery_shards:CeleryShards", name="celery_shards")
    registry.register("pentora_plugins.distributed.celery_shards:ShardResult", name="shard_result")


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    from pentora_plugins.distributed._cli import add_scan_options, add_worker_command

    add_worker_command(subparsers, common)
    scan = subparsers.choices.get("scan")
    if scan is not None:
        add_scan_options(scan)


@hookimpl
def pentora_scan_execute(orch: Any, args: Any, variables: dict[str, Any], options: dict[str, Any]) -> Any:
    if not hasattr(args, "executor"):
        return None  # the scan command was built without this plugin's options
    from pentora_plugins.distributed._cli import scan_execute

    return scan_execute(orch, args, variables, options)
