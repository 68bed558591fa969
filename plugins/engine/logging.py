"""Structured node lifecycle logs (loguru): one line per node event, with its fields:
``component``, ``node``, ``message`` and ``duration_ms`` on completion.

Keyword arguments go to loguru's ``extra`` (``capture``), and loguru drops a record
below the sink's level before formatting anything, so these cost little at WARNING.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from pentora import hookimpl

if TYPE_CHECKING:
    from pentora import NodeRecord, NodeSpec, ScanInfo, ScanResult


@functools.cache
def _log() -> Any:
    # loguru (and the asyncio it brings) once a scan runs: `pentora --help` imports this
    # module, as the plugin is registered whenever pentora starts.
    from loguru import logger

    return logger.bind(component="orchestrator")


@hookimpl
def pentora_scan_start(scan: ScanInfo) -> None:
    _log().info("Scan {} started: DAG '{}' with {} nodes", scan.scan_id, scan.dag.name,
             len(scan.dag.nodes), scan_id=scan.scan_id)


@hookimpl
def pentora_scan_complete(scan: ScanInfo, result: ScanResult) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    _log().info("Scan {} {} ({})", scan.scan_id, result.status, counts, scan_id=scan.scan_id,
             duration_ms=result.duration_ms, status=result.status)


@hookimpl
def pentora_node_start(node: NodeSpec, record: NodeRecord) -> None:
    _log().info("Node execution started", node=node.instance_id, attempt=record.attempts)


@hookimpl
def pentora_node_complete(node: NodeSpec, record: NodeRecord) -> None:
    _log().info("Node execution completed", node=node.instance_id, duration_ms=record.duration_ms)


@hookimpl
def pentora_node_failed(node: NodeSpec, record: NodeRecord) -> None:
    _log().error("Node execution failed: {}", record.error, node=node.instance_id,
              duration_ms=record.duration_ms, retry_attempts=record.retry_attempts)


@hookimpl
def pentora_node_skipped(node: NodeSpec, record: NodeRecord) -> None:
    _log().info("Node skipped: {}", record.reason, node=node.instance_id)


@hookimpl
def pentora_node_cancelled(node: NodeSpec, record: NodeRecord) -> None:
    _log().warning("Node cancelled: {}", record.reason, node=node.instance_id)


@hookimpl
def pentora_node_retry(node: NodeSpec, record: NodeRecord, error: BaseException, delay: float) -> None:
    _log().warning("Node attempt {} failed ({}: {}); retrying in {:g}s", record.attempts,
                type(error).__name__, error, delay, node=node.instance_id)
