"""Execution records: what happened to each node and to the scan."""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._context import DataContext
    from ._dag import Dag

PENDING, RUNNING, COMPLETED, FAILED, SKIPPED, CANCELLED = (
    "pending", "running", "completed", "failed", "skipped", "cancelled")
TERMINAL = frozenset({COMPLETED, FAILED, SKIPPED, CANCELLED})



def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class BranchRecord:
    """One item of a fanned-out node (``for_each``)."""

    index: int
    item: Any
    status: str = PENDING
    error: str | None = None
    stack_trace: str | None = None


@dataclass(slots=True)  # one per node: 50,000-node DAGs are run
class NodeRecord:
    node: str
    module_type: str
    status: str = PENDING
    error: str | None = None
    error_type: str | None = None
    stack_trace: str | None = None
    reason: str | None = None
    updated_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    retry_attempts: int = 0
    attempts: int = 0
    progress: tuple[int, int | None] | None = None
    branches: list[BranchRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. it blocked the event loop

    @property
    def timestamp(self) -> str | None:
        """ISO time of the last status change (for a failure: when it failed)."""
        return iso(self.updated_at)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["updated_at"]
        out["timestamp"] = self.timestamp
        out["started_at"] = iso(self.started_at)
        out["finished_at"] = iso(self.finished_at)
        if out["progress"] is not None:
            out["progress"] = list(out["progress"])
        return out

    def mark(self, status: str, now: float | None = None) -> None:
        self.status = status
        now = self.updated_at = now if now is not None else time.time()
        if status == RUNNING:
            if self.started_at is None:
                self.started_at = now
        elif status in TERMINAL:
            self.finished_at = now
            if self.started_at is not None:
                self.duration_ms = round((self.finished_at - self.started_at) * 1000, 3)


@dataclass
class ScanInfo:
    """What hooks get as ``scan``: identity and shared state of one execution."""

    scan_id: str
    dag: Dag
    vars: dict[str, Any]
    context: DataContext
    started_at: float = field(default_factory=time.time)
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"progress": True} from the CLI
    # Per-scan state of plugins, each under its own name (an open report file…): plugin
    # objects serve every scan of their manager, so what belongs to one scan lives here.
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScanResult:
    scan_id: str
    dag_name: str
    status: str  # completed | failed | cancelled | timeout
    nodes: dict[str, NodeRecord]
    context: DataContext
    started_at: float
    finished_at: float
    error: str | None = None
    # Plugin hook calls that raised during the scan (contained: the scan went on).
    hook_errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED and not self.failures() and not self.hook_errors

    @property
    def duration_ms(self) -> float:
        return round((self.finished_at - self.started_at) * 1000, 3)

    def failures(self) -> list[NodeRecord]:
        return [r for r in self.nodes.values() if r.status == FAILED]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.nodes.values():
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "scan_id": self.scan_id,
            "dag": self.dag_name,
            "status": self.status,
            "ok": self.ok,
            "error": self.error,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_ms": self.duration_ms,
            "counts": self.counts(),
            "nodes": [r.to_dict() for r in self.nodes.values()],
            **({"hook_errors": list(self.hook_errors)} if self.hook_errors else {}),
        }
