"""Putting the server together and running it under gevent's WSGI server."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer
from pentora_plugins.server._allow import AllowList
from pentora_plugins.server._app import Server, create_app
from pentora_plugins.server._audit import AuditLog
from pentora_plugins.server._config import ServerConfig
from pentora_plugins.server._manager import ScanManager
from pentora_plugins.server._schedule_api import Schedules
from pentora_plugins.server._schedules import ScheduleError
from pentora_plugins.server._tokens import TokenStore

from pentora import PentoraError, logger
from pentora.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, CliError, echo

log = logger.bind(component="server")


def build(pm: Any, scan_parser: Any, config: ServerConfig, state: Path,
          tokens: TokenStore, celery: argparse.Namespace | None = None) -> Server:
    try:
        store = pm.hook.pentora_scan_store(path=config.store)
    except PentoraError as e:
        raise CliError(f"the scan store: {e}", EXIT_INVALID) from None
    if store is None:
        raise CliError("no plugin keeps scans (is the store plugin disabled, or PENTORA_STORE "
                       "off?); set `store: FILE` in the server config", EXIT_USAGE)
    manager = ScanManager(pm, store, config.max_scans, celery, queue_file=state / "queue.json")
    server = Server(config, pm, scan_parser, store, tokens, AuditLog(state), manager,
                    AllowList(config.allow))
    try:
        server.schedules = Schedules(server, state)
    except ScheduleError as e:  # a damaged schedules.json: say which file and what to do
        raise CliError(f"--state: {e}", EXIT_INVALID) from None
    return server


def serve(args: argparse.Namespace, host: str, port: int, config: ServerConfig, state: Path,
          tokens: TokenStore) -> int:
    server = build(args.plugin_manager, args.server_scan_parser, config, state, tokens,
                   getattr(args, "celery_args", None))
    interrupted = server.manager.interrupted_at_start()
    if interrupted:
        log.warning("scans left interrupted by a stopped server: {}{}", ", ".join(interrupted),
                    "; resuming them" if args.resume_interrupted else
                    " (resume: POST /api/v1/scans/ID/resume, or --resume-interrupted)")
    server.schedules.interrupted(interrupted, resumed=args.resume_interrupted)
    if args.resume_interrupted:
        for scan_id in interrupted:
            server.manager.resume(scan_id)
    waiting = server.manager.restore_queue()
    if waiting:
        log.warning("scans queued before the server stopped are queued again: {}", ", ".join(waiting))
    server.schedules.start()
    app = create_app(server)
    tls = {"certfile": args.cert, "keyfile": args.key} if args.cert else {}
    wsgi = WSGIServer((host, port), app, **tls)
    try:
        wsgi.start()
    except OSError as e:
        raise CliError(f"--bind {args.bind}: {e.strerror or e}; choose another address or port",
                       EXIT_USAGE) from None
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    echo(f"pentora server on {scheme}://{shown}:{wsgi.server_port}/api/v1 (state {state})",
         err=True)
    stop = gevent.event.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    stop.wait()
    echo("pentora server stopping: cancelling running scans", err=True)
    wsgi.stop(timeout=5)
    server.schedules.scheduler.stop()  # no new run while the scans are cancelled
    server.manager.stop()
    server.schedules.stop()
    return EXIT_OK
