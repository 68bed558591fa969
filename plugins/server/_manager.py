"""``ScanManager``: the server's scans, run as greenlets of this process.

At most ``max_scans`` run at once (a gevent pool); the rest wait in a FIFO queue with
status ``queued``. Each scan is an ``Orchestrator`` on the server's plugin manager with
the scan's ``ScanEvents`` registered beside the others for its life, and the store
option, so the store plugin records it as it records a scan of the command line. A
cancel is the engine's own (``orch.cancel``): nodes stop, reporters still run, the store
keeps the scan ``cancelled``.
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.pool
from pentora_plugins.server._events import EventLog, ScanEvents

from pentora import Orchestrator, PentoraError, load_dag, logger

log = logger.bind(component="server")
TERMINAL = ("completed", "failed", "cancelled", "timeout", "interrupted")


@dataclass
class Job:
    id: str
    dag: Any
    variables: dict[str, Any]
    targets: Any
    resume: bool = False
    status: str = "queued"
    log: EventLog = field(init=False)
    orch: Any = None
    submitted: float = field(default_factory=time.time)
    # a cancel that came between the pool taking the job and its orchestrator existing
    cancel_reason: str | None = None

    def __post_init__(self) -> None:
        self.log = EventLog(self.id)


class ScanManager:
    def __init__(self, pm: Any, store: Any, max_scans: int) -> None:
        self.pm, self.store = pm, store
        self.pool = gevent.pool.Pool(max_scans)
        self.queue: collections.deque[Job] = collections.deque()
        self.jobs: dict[str, Job] = {}
        self.stopping = False

    # -- start-up ----------------------------------------------------------------------------

    def interrupted_at_start(self) -> list[str]:
        """Scans the store says run, whose process is gone (a server killed while it ran
        them): marked ``interrupted`` so that a resume may take them up."""
        found = [s["id"] for s in self.store.list(status="interrupted", limit=1 << 30)]
        self.store.mark_interrupted(found, "the server stopped while this scan ran; resume it "
                                           "with POST /api/v1/scans/ID/resume")
        return found

    # -- submitting --------------------------------------------------------------------------

    def submit(self, dag: Any, variables: dict[str, Any], targets: Any) -> Job:
        job = Job(uuid.uuid4().hex[:12], dag, variables, targets)
        return self._enqueue(job)

    def resume(self, scan_id: str) -> Job:
        shown = self.store.get(scan_id)
        if shown is None:
            raise KeyError(scan_id)
        scan = shown["scan"]
        if scan["status"] != "interrupted" and scan["status"] not in ("cancelled", "failed",
                                                                      "timeout"):
            raise PentoraError(f"scan {scan_id} is {scan['status']}: only an interrupted, "
                               "cancelled, failed or timed-out scan can be resumed")
        if self.active(scan_id):
            raise PentoraError(f"scan {scan_id} is already queued or running")
        job = Job(scan_id, load_dag(scan["dag"]), dict(scan["vars"]), scan["vars"].get("targets"),
                  resume=True)
        return self._enqueue(job)

    def _enqueue(self, job: Job) -> Job:
        job.log.nodes.update({n.instance_id: "pending" for n in job.dag.nodes})
        self.jobs[job.id] = job
        self.queue.append(job)
        self._pump()
        return job

    def _pump(self) -> None:
        while self.queue and self.pool.free_count() > 0 and not self.stopping:
            job = self.queue.popleft()
            job.status = "running"  # before the greenlet runs: the answer to POST says so
            # linked after the pool's own link: the slot is free when the next one is taken
            self.pool.spawn(self._run, job).rawlink(lambda _: self._pump())

    def _run(self, job: Job) -> None:
        events = ScanEvents(job.log, job.dag)
        orch = Orchestrator(pm=self.pm, plugins=[events])
        job.orch = orch
        if job.cancel_reason:
            orch.cancel(job.cancel_reason)  # kept by the orchestrator until it executes
        try:
            orch.load_dag(job.dag)
            result = orch.execute(vars=job.variables, scan_id=job.id,
                                  options={"store": self.store.path, "resume": job.resume})
            job.status = result.status
        except Exception as e:  # a scan that cannot start: its log says why, the server lives
            log.warning("scan {} could not run: {}", job.id, e)
            job.status = "failed"
            if not job.log.ended:
                job.log.add("scan_end", {"status": "failed", "counts": dict(job.log.counts),
                                         "error": str(e)})
        finally:
            self.pm.unregister(events)
            job.orch = None

    # -- asking and acting -----------------------------------------------------------------

    def active(self, scan_id: str) -> Job | None:
        job = self.jobs.get(scan_id)
        return job if job is not None and job.status in ("queued", "running") else None

    def cancel(self, scan_id: str) -> bool:
        """Stop a queued or running scan; False: it is neither."""
        job = self.active(scan_id)
        if job is None:
            return False
        if job.status == "queued":
            self.queue.remove(job)
            job.status = "cancelled"
            job.log.add("scan_end", {"status": "cancelled", "counts": {}})
            return True
        if job.orch is not None:
            job.orch.cancel("cancelled through the API")
        else:
            job.cancel_reason = "cancelled through the API"  # _run has not started it yet
        return True

    def delete_queued(self, scan_id: str) -> bool:
        job = self.jobs.get(scan_id)
        if job is not None and job.status == "cancelled" and job in self.queue:
            self.queue.remove(job)
        return self.jobs.pop(scan_id, None) is not None

    def running(self) -> bool:
        return not self.stopping

    def stop(self) -> None:
        """Cancel every scan (the server is ending): the store keeps them ``cancelled``."""
        self.stopping = True
        for job in list(self.jobs.values()):
            self.cancel(job.id)
        self.pool.join(timeout=30)
