"""``ScanManager``: the server's scans, run as greenlets of this process.

At most ``max_scans`` run at once (a gevent pool); the rest wait in a FIFO queue with
status ``queued``. Each scan is an ``Orchestrator`` on the server's plugin manager with
the scan's ``ScanEvents`` registered beside the others for its life, and the store
option, so the store plugin records it as it records a scan of the command line. A
cancel is the engine's own (``orch.cancel``): nodes stop, reporters still run, the store
keeps the scan ``cancelled``.

With ``celery`` (``pentora server --executor celery``), a scan goes the way ``pentora scan
--executor celery`` goes: the distributed plugin's ``pentora_scan_execute`` with the
namespace that command line gives it. That plugin runs the merge side here (a dispatch
node, stand-ins for the nodes that ran on the workers, the rest of the DAG), so the
event log gets its node events, the records as each shard's result arrives, and the
dispatcher's progress; a cancel stops the dispatcher, which revokes the shards.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
from pentora_plugins.server._events import EventLog, ScanEvents

from pentora import Orchestrator, PentoraError, atomic_output, load_dag, logger

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
    error: str | None = None  # why a scan that could not start did not
    submitted: float = field(default_factory=time.time)
    # a cancel that came between the pool taking the job and its orchestrator existing
    cancel_reason: str | None = None

    def __post_init__(self) -> None:
        self.log = EventLog(self.id)


class ScanManager:
    def __init__(self, pm: Any, store: Any, max_scans: int,
                 celery: argparse.Namespace | None = None, queue_file: Path | None = None) -> None:
        self.pm, self.store = pm, store
        self.queue_file = queue_file
        self.celery = celery
        # Called with (scan id, status) when a scan that ran ends (the scheduler's alerts).
        self.ended: list[Callable[[str, str], Any]] = []
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

    def restore_queue(self) -> list[str]:
        """Queue again the scans a stopped server left waiting (``STATE/queue.json``);
        their ids. A file that cannot be read is set aside (``queue.json.bad``), named in
        a warning: the server starts without it."""
        if self.queue_file is None or not self.queue_file.exists():
            return []
        try:
            saved = json.loads(self.queue_file.read_text(encoding="utf-8"))
            jobs = [Job(str(item["id"]), load_dag(item["dag"]), dict(item["vars"]), item["targets"],
                        submitted=float(item["submitted"])) for item in saved]
        except (OSError, ValueError, KeyError, TypeError, PentoraError) as e:
            aside = self.queue_file.with_name(self.queue_file.name + ".bad")
            self.queue_file.replace(aside)
            log.warning("the saved queue {} could not be read ({}); it is kept as {} and the "
                        "server starts with an empty queue", self.queue_file, e, aside)
            return []
        for job in jobs:
            if job.id not in self.jobs:
                self._enqueue(job)
        return [job.id for job in jobs]

    def _save_queue(self) -> None:
        """The waiting scans, as data, replaced whole (a resume is not saved: its scan is in
        the store, ``interrupted``, and ``--resume-interrupted`` takes it up)."""
        if self.queue_file is None:
            return
        waiting = [{"id": j.id, "dag": j.dag.to_dict(), "vars": j.variables, "targets": j.targets,
                    "submitted": j.submitted} for j in self.queue if not j.resume]
        try:
            with atomic_output(self.queue_file, line_buffering=False) as f:
                json.dump(waiting, f, default=str)
        except OSError as e:  # a full disk: the queue runs on, it would not survive a restart
            log.warning("the queue could not be saved to {}: {}", self.queue_file, e)

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
        self._save_queue()
        return job

    def _pump(self) -> bool:
        """Start queued scans while the pool has room; whether any started."""
        started = False
        while self.queue and self.pool.free_count() > 0 and not self.stopping:
            job = self.queue.popleft()
            job.status = "running"  # before the greenlet runs: the answer to POST says so
            # linked after the pool's own link: the slot is free when the next one is taken
            self.pool.spawn(self._run, job).rawlink(self._next)
            started = True
        return started

    def _next(self, _: Any) -> None:
        """A pool slot is free: the next queued scans start, and the saved queue follows."""
        if self._pump():
            self._save_queue()

    def _run(self, job: Job) -> None:
        events = ScanEvents(job.log, job.dag)
        orch = Orchestrator(pm=self.pm, plugins=[events])
        job.orch = orch
        if job.cancel_reason:
            orch.cancel(job.cancel_reason)  # kept by the orchestrator until it executes
        try:
            orch.load_dag(job.dag)
            result = self._execute(orch, job)
            job.status = result.status
        except Exception as e:  # a scan that cannot start or dies: its log says why, the server lives
            if isinstance(e, PentoraError):
                log.warning("scan {} could not run: {}", job.id, e)
            else:  # not the scan's fault: the traceback is what a bug report needs
                log.opt(exception=e).error("scan {} ended with an error: {}", job.id, e)
            job.status, job.error = "failed", str(e)
            try:  # a scan the store saw start must not read "running" for ever: resumable
                self.store.mark_interrupted([job.id], f"the scan ended with an error: {e}; "
                                                      "resume it with POST /api/v1/scans/ID/resume")
            except Exception as stored:  # noqa: BLE001 - the store's own trouble is logged
                log.warning("scan {}: the store could not record its end: {}", job.id, stored)
            if not job.log.ended:
                job.log.add("scan_end", {"status": "failed", "counts": dict(job.log.counts),
                                         "error": str(e)})
        finally:
            self.pm.unregister(events)
            job.orch = None
        for listener in self.ended:
            try:
                listener(job.id, job.status)
            except Exception as e:  # noqa: BLE001 - a listener's bug must not stop the pool
                log.opt(exception=e).error("scan {}: a scan-end listener failed: {}", job.id, e)

    def _execute(self, orch: Any, job: Job) -> Any:
        options = {"store": self.store.path, "resume": job.resume}
        if self.celery is None:
            return orch.execute(vars=job.variables, scan_id=job.id, options=options)
        # Planning the shards reads the validated DAG (what it produces), as after `pentora
        # scan` validated it; the request was validated on another orchestrator.
        orch.validate(vars={**job.dag.vars, **job.variables})
        args = copy.copy(self.celery)
        # The scan id the plugin gives orch.execute, as for `pentora scan --resume ID`; the
        # store's "resume" option above says whether this is a resume.
        args.resume = job.id
        result = self.pm.hook.pentora_scan_execute(orch=orch, args=args, variables=job.variables,
                                                   options=options)
        if result is None:
            raise PentoraError("--executor celery: no plugin ran the scan on Celery (is the "
                               "distributed plugin disabled with -p no:distributed?)")
        return result

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
            self._save_queue()
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
        """Cancel every running scan (the server is ending): the store keeps them
        ``cancelled``. The queued ones stay in the saved queue for the next start."""
        self.stopping = True
        for job in list(self.jobs.values()):
            if job.status == "running":
                self.cancel(job.id)
        self.pool.join(timeout=30)
