"""One shard, run on a worker: the remote part of the DAG with ``scan.options["shard"]``.

Plain Python (no Celery here): the task in ``app.py`` calls :func:`run_shard`, which
returns JSON-safe data. A shard is idempotent: running it again (a redelivery after a
worker was lost) recomputes the same findings, and the submitting side drops repeats.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pentora_plugins.distributed._wire import encode, shippable
from pentora_plugins.kit.shard import SHARD_OPTION, Shard

from pentora import Orchestrator, PentoraError, hookimpl, load_dag

REPORT_EVERY = 0.5  # seconds between progress reports of a running shard

Reporter = Callable[[dict[str, Any]], None]


class ShardRejectedError(PentoraError):
    """This worker cannot run the shard it was given (a plugin is missing here)."""


class _Collector:
    """Keeps what the shard emits, and reports item progress while it runs."""

    def __init__(self, report: Reporter | None) -> None:
        self.records: list[list[Any]] = []
        self.progress: dict[str, tuple[int, int | None]] = {}
        self.report = report
        self.last = 0.0

    @hookimpl
    def pentora_record(self, node: Any, kind: str, record: Any) -> None:
        self.records.append([node.instance_id, kind, encode(record)])

    @hookimpl
    def pentora_node_progress(self, node: Any, done: int, total: int | None) -> None:
        self.progress[node.instance_id] = (done, total)
        now = time.monotonic()
        if self.report is not None and now - self.last >= REPORT_EVERY:
            self.last = now
            self.report(self.items())

    def items(self) -> dict[str, Any]:
        """Work items done and expected, summed over the shard's nodes."""
        counted = [(d, t) for d, t in self.progress.values() if t]
        if counted:
            done, total = sum(d for d, _ in counted), sum(t for _, t in counted if t)
        else:
            done, total = sum(d for d, _ in self.progress.values()), None
        return {"done": done, "total": total, "found": len(self.records)}


def check_modules(orch: Orchestrator, dag: Any, shard: Shard, worker: str) -> None:
    """Reject the shard, naming what is missing, when a module type is unknown here."""
    missing = [f"'{n.module_type}' (node '{n.instance_id}')" for n in dag.nodes
               if n.module_type not in orch.registry.modules]
    if missing:
        many = len(missing) > 1
        raise ShardRejectedError(
            f"worker {worker} rejects shard {shard}: module type{'s' if many else ''} "
            f"{', '.join(missing)} {'are' if many else 'is'} not installed on this worker; install "
            f"the plugin{'s' if many else ''} that provide{'' if many else 's'} "
            f"{'them' if many else 'it'} on every worker (workers need the same plugins as the "
            "submitting machine)")


def run_shard(job: dict[str, Any], worker: str, report: Reporter | None = None,
              on_start: Callable[[Orchestrator], None] | None = None) -> dict[str, Any]:
    """Run shard ``job["shard"]`` (``[K, N, seed]``) of ``job["dag"]`` with ``job["vars"]``.

    Returns the shard's node statuses, its emitted findings (``[node, kind, record]``)
    and the keys its nodes produced, all JSON-safe. ``on_start`` gets the orchestrator
    before the shard runs (to cancel it when it is no longer wanted).
    """
    shard = Shard(*job["shard"])
    try:
        orch = Orchestrator(disabled=job.get("disabled", ()))
    except PentoraError as e:
        raise ShardRejectedError(f"worker {worker} rejects shard {shard}: its plugins do not load: "
                                 f"{e}") from e
    dag = load_dag(job["dag"])
    check_modules(orch, dag, shard, worker)
    collector = _Collector(report)
    orch.pm.register(collector, name="pentora.celery.collector")
    orch.load_dag(dag)
    if on_start is not None:
        on_start(orch)
    result = orch.execute(vars=job.get("vars") or {}, options={SHARD_OPTION: shard.to_list()},
                          scan_id=job.get("scan_id"))
    assert orch.validated is not None
    keys = {k for produced in orch.validated.produces.values() for k in produced}
    outputs: dict[str, Any] = {}
    for key in sorted(keys):
        if result.context.has(key):
            value = encode(result.context.get(key))
            if shippable(value):
                outputs[key] = value
    nodes = {nid: {"status": rec.status, "error": rec.error, "reason": rec.reason}
             for nid, rec in result.nodes.items()}
    return {"shard": shard.index, "worker": worker, "status": result.status, "error": result.error,
            "nodes": nodes, "records": collector.records, "outputs": outputs,
            "items": collector.items()}
