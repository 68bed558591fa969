"""The Celery side: the app, the shard task, the broker check and ``pentora worker``.

Only this module imports Celery, and only the worker and the ``celery_shards`` node import
this module, so pentora runs (and ``--shard K/N`` works) without Celery installed.

Delivery is at-least-once: a shard's message is acknowledged only after the shard ran
(``acks_late``), a worker takes one message per pool slot at a time (prefetch multiplier
1). A running shard beats (its state rewritten every few seconds); the submitting side
sends again a shard whose beats stopped and that no worker holds (``_lease``), long
before Redis would give the message back (``visibility_timeout``). A worker drops a shard
of a scan that is over or a shard whose result is already in (``_redis``). A shard's
result is the same however often it runs, and it counts once.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import gevent
from celery import Celery
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger
from kombu.utils.url import maybe_sanitize_url
from pentora_plugins.distributed._redis import superseded
from pentora_plugins.distributed._runner import run_shard

from pentora import PentoraError
from pentora.cli import disabled_plugins

TASK = "pentora.run_shard"
QUEUE = "pentora.shards"
DEFAULT_VISIBILITY = 3600.0
task_log = get_task_logger(__name__)


def make_app(broker: str, backend: str | None = None, visibility_timeout: float = DEFAULT_VISIBILITY,
             disabled: tuple[str, ...] = ()) -> Celery:
    """A Celery app for pentora's shards on ``broker`` (Redis; results there too by default).
    ``disabled``: plugins this worker leaves out (its own ``-p no:NAME``)."""
    app = Celery("pentora", broker=broker, backend=backend or broker, set_as_current=False)
    # Kombu looks for messages whose worker vanished every ``unacked_restore_interval`` ×
    # ``unacked_restore_throttle`` seconds (100 by default): look as often as a quarter of
    # the visibility timeout, so a lost shard is back soon after the timeout.
    transport = {"visibility_timeout": visibility_timeout, "unacked_restore_throttle": 1,
                 "unacked_restore_interval": max(1, min(10, int(visibility_timeout / 4)))}
    app.conf.update(
        task_acks_late=True,                # ack after the shard ran: a lost worker's shard is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,       # a worker holds no more shards than it runs
        task_track_started=True,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_default_queue=QUEUE,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )

    @app.task(name=TASK, bind=True)
    def shard_task(self: Any, job: dict[str, Any]) -> dict[str, Any]:
        worker = self.request.hostname or f"pid {os.getpid()}"
        k, n = job["shard"][:2]
        why = superseded(app.backend, job.get("run"), k)
        if why:
            task_log.info(f"dropping shard {k}/{n} ({self.request.id}): {why}")
            raise Ignore()
        task_log.info(f"running shard {k}/{n} ({self.request.id})")
        beat = _Heartbeat(self, self.request.id, worker, job)
        try:
            result = run_shard({**job, "disabled": [*job.get("disabled", ()), *disabled]}, worker,
                               beat.report, beat.attach)
        finally:
            beat.stop()
        if beat.dropped:
            task_log.info(f"stopped shard {k}/{n} ({self.request.id}): {beat.dropped}")
            raise Ignore()
        return result

    return app


class _Heartbeat:
    """A running shard's beat: its ``PROGRESS`` state written again every ``job["beat"]``
    seconds (the submitting side's lease on it, see ``_lease``), with the shard's latest
    progress; and the shard stopped once its scan is over or its result came from
    elsewhere (the done markers of ``_redis``)."""

    def __init__(self, task: Any, task_id: str, worker: str, job: dict[str, Any]) -> None:
        self.task, self.task_id, self.worker = task, task_id, worker
        self.run, self.shard = job.get("run"), int(job["shard"][0])
        self.meta: dict[str, Any] = {}
        self.beats = 0
        self.orch: Any = None
        self.dropped: str | None = None
        every = float(job.get("beat") or 0)
        self.greenlet = gevent.spawn(self._loop, every) if every > 0 else None

    def report(self, meta: dict[str, Any]) -> None:
        """The shard's progress (called from the scan's greenlets, outside the task's
        request context: hence the task id kept here)."""
        self.meta = meta
        self._write()

    def attach(self, orch: Any) -> None:
        self.orch = orch

    def _write(self) -> None:
        self.task.update_state(task_id=self.task_id, state="PROGRESS",
                               meta={**self.meta, "worker": self.worker, "beat": self.beats})

    def _loop(self, every: float) -> None:
        while True:
            gevent.sleep(every)
            self.beats += 1
            try:
                why = superseded(self.task.app.backend, self.run, self.shard)
                if why:
                    self.dropped = why
                    if self.orch is not None:
                        self.orch.cancel(f"shard no longer wanted: {why}")
                    return
                self._write()
            except Exception as e:  # Redis away for a moment: the next beat tries again
                task_log.warning(f"shard {self.shard}: heartbeat not written: {e}")

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    return str(maybe_sanitize_url(url))


def check_broker(app: Celery, url: str, timeout: float = 3.0) -> None:
    """Raise a clear ``PentoraError`` when the broker does not answer (no endless retry)."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as e:  # kombu raises OperationalError, redis-py its own, OSError…
        why = str(e).rstrip(".")
        raise PentoraError(f"cannot reach the Celery broker at {safe_url(url)}: {why}; start redis-server "
                           "there or fix --broker (e.g. redis://127.0.0.1:6379/0)") from e


def live_workers(app: Celery, timeout: float = 1.0) -> list[str]:
    """Names of the workers that answer a ping now."""
    replies = app.control.ping(timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)


WAKE_EVERY = 0.1  # seconds: longest idle wait of the worker's loop (see _prompt_loop)


def _prompt_loop() -> None:
    """Make the worker ask for its next shard as soon as a pool slot frees.

    With the gevent pool Celery runs its synchronous consumer loop, which waits up to
    2 s in ``drain_events`` while every slot is busy and only then asks Redis again: each
    shard would cost up to 2 s of idle worker. Capping that wait (in the worker process
    only) costs a few wake-ups a second.
    """
    from kombu import Connection

    drain = Connection.drain_events

    def drain_events(self: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = min(kwargs["timeout"], WAKE_EVERY)
        return drain(self, **kwargs)

    Connection.drain_events = drain_events  # type: ignore[method-assign]  # replaced on purpose


def cmd_worker(args: argparse.Namespace) -> int:
    """``pentora worker``: a Celery worker with the gevent pool, on pentora's shard queue."""
    from celery.app import trace

    # Celery logs each task's return value: a shard's findings would flood the log.
    trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"
    app = make_app(args.broker, args.backend, args.visibility_timeout, tuple(disabled_plugins(args)))
    check_broker(app, args.broker)
    _prompt_loop()
    name = args.hostname or f"pentora-{os.getpid()}@%h"
    argv = ["worker", "-P", "gevent", "-c", str(args.concurrency), "-Q", QUEUE, "-n", name,
            "--loglevel", args.log_level if args.log_level != "TRACE" else "DEBUG",
            "--without-gossip", "--without-mingle"]
    app.worker_main(argv)
    return 0
