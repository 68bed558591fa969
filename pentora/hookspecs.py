"""Hook specifications: the whole extension surface of pentora.

Grouped by the object they concern (registry, scan, node). Notification hooks are
1:N and their return values ignored; an exception raised by one implementation is
logged with the plugin's name and contained, so a broken plugin never kills a scan.

Order for one scan (asserted by a test)::

    pentora_scan_start
      per node, when it becomes ready:
        pentora_node_start → [pentora_node_progress | pentora_record …]
          → [pentora_node_retry → pentora_node_start …]
        → pentora_node_complete | pentora_node_failed
      per node that will not run:
        pentora_node_skipped   (false condition, or an upstream failed/was skipped)
        pentora_node_cancelled (fail-fast, cancel(), global timeout)
    pentora_scan_complete
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .dag import NodeSpec
    from .nodectx import NodeContext
    from .records import NodeRecord, ScanInfo, ScanResult
    from .registry import Registry

hookspec = pluggy.HookspecMarker("pentora")
hookimpl = pluggy.HookimplMarker("pentora")

# -- registry ---------------------------------------------------------------------


@hookspec
def pentora_register_modules(registry: Registry) -> None:
    """Register module types: called once per plugin manager, at load.

    Example::

        @hookimpl
        def pentora_register_modules(registry):
            registry.register(BannerGrabber)
    """


@hookspec
def pentora_register_retry_policies(registry: Registry) -> None:
    """Register ``RetryPolicy`` records (``exponential``, ``fixed``, ``none`` are built in).

    Example::

        registry.register_retry_policy(RetryPolicy("linear", "n × initial",
                                                   lambda n, spec, rng: n * spec.initial))
    """


@hookspec
def pentora_register_output_formats(registry: Registry) -> None:
    """Register ``OutputFormat`` records (reporters that ``-o FILE --format X`` uses)."""


@hookspec
def pentora_profile_dirs() -> list[str]:
    """Directories holding DAG profiles (``NAME.yaml``) for ``--profile NAME``. 1:N, concatenated
    in registration order; the first directory holding a profile wins."""
    return []


@hookspec
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    """Add subcommands to the ``pentora`` CLI (e.g. ``pentora demo``).

    ``subparsers`` is argparse's sub-parser action, ``common`` the parent parser holding the
    shared options (``-p``, ``--hooks``, logging). Set ``func`` on the new parser; it is
    called with the parsed namespace and returns the exit code::

        @hookimpl
        def pentora_cli_commands(subparsers, common):
            p = subparsers.add_parser("hello", parents=[common], help="say hello")
            p.set_defaults(func=lambda args: print("hello") or 0)
    """


# -- scan -------------------------------------------------------------------------


@hookspec
def pentora_scan_start(scan: ScanInfo) -> None:
    """Called once, after validation and planning, before the first node starts."""


@hookspec
def pentora_scan_complete(scan: ScanInfo, result: ScanResult) -> None:
    """Called once when every node has a terminal status, reporters included."""


# -- node -------------------------------------------------------------------------


@hookspec
def pentora_node_start(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node starts an attempt (``record.attempts`` counts them, from 1)."""


@hookspec
def pentora_node_complete(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node finished; its outputs are in ``scan.context``; ``record.duration_ms`` is set."""


@hookspec
def pentora_node_failed(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node failed for good (after its retries): ``record.error`` and ``stack_trace`` set."""


@hookspec
def pentora_node_skipped(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node will not run: false condition or an upstream that failed; ``record.reason``."""


@hookspec
def pentora_node_cancelled(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node was stopped or never started because the scan was cancelled or timed out,
    or fail-fast stopped it."""


@hookspec
def pentora_node_retry(scan: ScanInfo, node: NodeSpec, record: NodeRecord, error: BaseException,
                       delay: float) -> None:
    """An attempt failed with a retryable error; the next starts after ``delay`` seconds."""


@hookspec
def pentora_node_progress(scan: ScanInfo, node: NodeSpec, done: int, total: int | None) -> None:
    """A module reported item progress with ``ctx.progress(done, total)``."""


@hookspec
def pentora_record(scan: ScanInfo, node: NodeSpec, kind: str, record: Any) -> None:
    """A module found something and said so with ``ctx.emit(record)``: a host, an open
    port, a banner… Called as it is found, so outputs stream and an interrupted scan
    keeps what it had. ``kind`` is the record's JSONL kind (``host``, ``port``…)."""


@hookspec(firstresult=True)
def pentora_node_execute(scan: ScanInfo, node: NodeSpec, ctx: NodeContext) -> Any:
    """Run one attempt of a node. The core implements it; plugins wrap it.

    Use ``@hookimpl(wrapper=True)`` for timing, rate limiting or tracing::

        @hookimpl(wrapper=True)
        def pentora_node_execute(scan, node, ctx):
            with limiter:
                return (yield)
    """
