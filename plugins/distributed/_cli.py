"""``pentora worker``, and ``--shard``/``--executor celery`` on ``pentora scan``: the
options, and what a scan does with them."""

from __future__ import annotations

import argparse
from typing import Any

from pentora import PentoraError
from pentora.cli import EXIT_USAGE, CliError

# `pentora --help` imports this module (its options are the parser's): the shards, the DAG
# split and the schema's units (voluptuous) are imported by what uses them.

# A string: argparse converts it with the option's type when the command is parsed, not when
# the parser is built (for `pentora --help` too).
DEFAULT_SHARD_TIMEOUT = "1h"


def _duration(text: str) -> float:
    from pentora.schema import parse_duration

    try:
        return parse_duration(text)
    except (ValueError, PentoraError) as e:
        raise argparse.ArgumentTypeError(f"not a duration (500ms, 30s, 10m, 1h): {text!r}") from e


def _url(text: str) -> str:
    if "://" not in text:
        raise argparse.ArgumentTypeError(f"a URL such as redis://127.0.0.1:6379/0, got {text!r}")
    return text


def _shard(text: str) -> str:
    from pentora_plugins.kit.shard import Shard

    try:
        Shard.parse(text)
    except PentoraError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a positive whole number, got {text!r}")
    return int(text)


def add_scan_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sharded and distributed scans (plugin celery_exec)")
    g.add_argument("--shard", type=_shard, metavar="K/N",
                   help="run only shard K of N of the target × port space here")
    g.add_argument("--shard-seed", type=int, default=0, metavar="N",
                   help="key of the shard permutation (the same on every machine of a scan)")
    g.add_argument("--executor", choices=["local", "celery"], default="local",
                   help="where the scan runs: here (local) or on Celery workers (celery)")
    g.add_argument("--broker", type=_url, metavar="URL", help="Celery broker for --executor celery (redis://HOST:PORT/DB)")
    g.add_argument("--backend", type=_url, metavar="URL", help="Celery result backend (default: the broker)")
    g.add_argument("--shards", type=_positive, metavar="N", help="number of shards for --executor celery (8)")
    g.add_argument("--shard-timeout", type=_duration, default=DEFAULT_SHARD_TIMEOUT,
                   metavar="DURATION", help="longest a shard may run on a worker (1h)")
    g.add_argument("--visibility-timeout", type=_duration, metavar="DURATION",
                   help="the workers' --visibility-timeout, if not the default: paces the checks "
                   "that workers are still alive")


def add_worker_command(subparsers: Any, common: Any) -> None:
    p = subparsers.add_parser("worker", parents=[common],
                              help="run a Celery worker for `pentora scan --executor celery`")
    p.add_argument("--broker", required=True, type=_url, metavar="URL", help="Celery broker (redis://HOST:PORT/DB)")
    p.add_argument("--backend", type=_url, metavar="URL", help="Celery result backend (default: the broker)")
    p.add_argument("--concurrency", "-c", type=_positive, default=4, metavar="N",
                   help="shards run at once (greenlets of the gevent pool; 4)")
    p.add_argument("--visibility-timeout", type=_duration, default=DEFAULT_SHARD_TIMEOUT,
                   metavar="DURATION", help="a shard unacknowledged this long is delivered again (1h); a "
                   "scan sends again by itself, within about 30s, a shard whose worker died")
    p.add_argument("--hostname", "-n", metavar="NAME", help="worker name (pentora-PID@HOST)")
    p.set_defaults(cooperative=True, func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    try:
        from pentora_plugins.distributed.app import cmd_worker
    except ImportError as e:
        raise CliError(f"pentora worker needs Celery: pip install 'pentora[celery]' ({e})") from e
    return cmd_worker(args)


def celery_job(orch: Any, args: argparse.Namespace, variables: dict[str, Any]) -> dict[str, Any]:
    """Plan a Celery scan: load the submitting side's DAG into ``orch``; the shards' job."""
    from pentora_plugins.distributed._split import local_dag, remote_dag, remote_nodes

    if not args.broker:
        raise CliError("--executor celery needs --broker URL (e.g. redis://127.0.0.1:6379/0)", EXIT_USAGE)
    dag, validated = orch.dag, orch.validated
    remote = remote_nodes(dag, orch.registry)
    shard_timeout = args.shard_timeout
    job = {"broker": args.broker, "backend": args.backend, "shards": args.shards or 8,
           "seed": args.shard_seed, "shard_timeout": shard_timeout,
           "visibility_timeout": args.visibility_timeout or shard_timeout,
           "dag": remote_dag(dag, remote, shard_timeout), "vars": dict(variables),
           "disabled": [f[3:] for f in getattr(args, "plugin_flags", []) if f.startswith("no:")],
           "nodes": remote}
    orch.load_dag(local_dag(dag, remote, validated.produces, orch.registry))
    return job


def _check_cluster(job: dict[str, Any]) -> None:
    """Before anything runs: the broker answers and some worker listens (clear errors)."""
    try:
        from pentora_plugins.distributed.app import check_broker, live_workers, make_app, safe_url
    except ImportError as e:
        raise CliError(f"--executor celery needs Celery: pip install 'pentora[celery]' ({e})") from e
    app = make_app(job["broker"], job["backend"], job["visibility_timeout"])
    try:
        check_broker(app, job["broker"])
    except PentoraError as e:
        raise CliError(str(e)) from e
    if not live_workers(app):
        url = safe_url(job["broker"])
        raise CliError(f"no pentora worker answers on the broker {url}; start some with "
                       f"`pentora worker --broker {url}`")


def scan_execute(orch: Any, args: argparse.Namespace, variables: dict[str, Any],
                 options: dict[str, Any]) -> Any:
    executor, shard = getattr(args, "executor", "local"), getattr(args, "shard", None)
    scan_id = getattr(args, "resume", None)
    if executor == "local":
        if args.broker or args.shards:
            raise CliError("--broker and --shards go with --executor celery", EXIT_USAGE)
        if shard is None:
            return None
        from pentora_plugins.kit.shard import SHARD_OPTION, Shard

        spec = Shard.parse(shard, args.shard_seed)
        return orch.execute(vars=variables, options={**options, SHARD_OPTION: spec.to_list()},
                            scan_id=scan_id)
    if shard is not None:
        raise CliError("--shard K/N runs one shard here; with --executor celery give --shards N", EXIT_USAGE)
    from pentora_plugins.distributed.celery_shards import JOB_OPTION  # the module type's code

    job = celery_job(orch, args, variables)
    _check_cluster(job)
    return orch.execute(vars=variables, options={**options, JOB_OPTION: job}, scan_id=scan_id)
