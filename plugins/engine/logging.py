"""Structured node lifecycle logs (loguru): one line per node event, with its fields:
``component``, ``node``, ``message`` and ``duration_ms`` on completion.

Keyword arguments go to loguru's ``extra`` (``capture``), and loguru drops a record
below the sink's level before formatting anything, so these cost little at WARNING.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pentora import hookimpl, logger

if TYPE_CHECKING:
    from pentora import NodeRecord, NodeSpec, ScanInfo, ScanResult

# pentora's logger: loguru is imported when a line at the configured level is logged (at
# the default WARNING, a scan's node events never import it).
log = logger.bind(component="orchestrator")


@hookimpl
def pentora_scan_start(scan: ScanInfo) -> None:
    log.info("Scan {} started: DAG '{}' with {} nodes", scan.scan_id, scan.dag.name,
             len(scan.dag.nodes), scan_id=scan.scan_id)


@hookimpl
def pentora_scan_complete(scan: ScanInfo, result: ScanResult) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    log.info("Scan {} {} ({})", scan.scan_id, result.status, counts, scan_id=scan.scan_id,
             duration_ms=result.duration_ms, status=result.status)


@hookimpl
def pentora_node_start(node: NodeSpec, record: NodeRecord) -> None:
    log.info("Node execution started", node=node.instance_id, attempt=record.attempts)


@hookimpl
def pentora_node_complete(node: NodeSpec, record: NodeRecord) -> None:
    log.info("Node execution completed", node=node.instance_id, duration_ms=record.duration_ms)


@hookimpl
def pentora_node_failed(node: NodeSpec, record: NodeRecord) -> None:
    log.error("Node execution failed: {}", record.error, node=node.instance_id,
              duration_ms=record.duration_ms, retry_attempts=record.retry_attempts)


@hookimpl
def pentora_node_skipped(node: NodeSpec, record: NodeRecord) -> None:
    log.info("Node skipped: {}", record.reason, node=node.instance_id)


@hookimpl
def pentora_node_cancelled(node: NodeSpec, record: NodeRecord) -> None:
    log.warning("Node cancelled: {}", record.reason, node=node.instance_id)


@hookimpl
def pentora_node_retry(node: NodeSpec, record: NodeRecord, error: BaseException, delay: float) -> None:
    log.warning("Node attempt {} failed ({}: {}); retrying in {:g}s", record.attempts,
                type(error).__name__, error, delay, node=node.instance_id)
