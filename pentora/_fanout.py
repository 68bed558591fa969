"""Fan-out: a ``for_each`` node runs one isolated branch per item of its ``for_each`` key.

A branch sees only its own item (``ctx.get(for_each)`` is ``[item]``) and writes into
its own outputs; when every branch has ended, the outputs are merged in item order and
written to the DataContext, so the result does not depend on which branch finished
first. A failed branch is recorded on the node's ``BranchRecord`` and the node goes on;
only when every branch failed does the node fail (``ModuleError``).
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from loguru import logger

from ._errors import ModuleError
from ._nodectx import NodeContext
from ._records import COMPLETED, FAILED, RUNNING, BranchRecord
from ._retry import should_retry

if TYPE_CHECKING:
    from ._attempts import Attempts

log = logger.bind(component="fanout")


class FanOut:
    """Runs the branches of ``for_each`` nodes, inside the node's attempt."""

    def __init__(self, attempts: Attempts) -> None:
        self.attempts = attempts

    @staticmethod
    def _no_progress(ctx: NodeContext, done: int, total: int | None) -> None:
        """Branches do not report their own progress: the node counts finished branches."""

    def run(self, i: int, ctx: NodeContext) -> None:
        """One isolated branch per item of the ``for_each`` key; outputs merged in item order."""
        at = self.attempts
        node, rec = at.nodes[i], at.records[i]
        items = ctx.get(node.for_each)  # type: ignore[arg-type]
        if isinstance(items, dict):
            items = list(items.items())
        items = list(items)
        rec.branches = [BranchRecord(index=k, item=item) for k, item in enumerate(items)]
        spec = at.retry_spec(node)
        done = [0]

        def branch(k: int) -> dict[str, Any] | None:
            br = rec.branches[k]
            bctx = at.context(i, items[k], progress=self._no_progress)
            attempt = 0
            br.status = RUNNING
            try:
                while True:
                    attempt += 1
                    try:
                        at.call_execute(node, bctx)
                        br.status = COMPLETED
                        return bctx.outputs
                    except Exception as e:
                        bctx.kill()
                        if not at.ex.stop_reason and should_retry(
                                e, spec, attempt, at.mtypes[i].cls.transient_errors):
                            bctx.outputs = {}
                            rec.retry_attempts += 1
                            at.opts.sleep(at.delay(spec, attempt))
                            continue
                        br.status, br.error = FAILED, str(e) or type(e).__name__
                        br.stack_trace = "".join(traceback.format_exception(e))
                        log.warning("node '{}' branch {} ({!r}) failed: {}", node.instance_id, k,
                                    items[k], br.error)
                        return None
            finally:
                bctx.kill()
                done[0] += 1
                at.progress(i, done[0], len(items))

        outputs = ctx.map(branch, range(len(items)))
        merged: dict[str, Any] = {}
        for out in outputs:
            for key, value in (out or {}).items():
                _merge_into(merged, key, value)
        for key, value in merged.items():
            ctx.set(key, value)
        failed = [b for b in rec.branches if b.status == FAILED]
        if items and len(failed) == len(items):
            raise ModuleError(f"all {len(items)} branches failed; first: {failed[0].error}",
                              node.instance_id)


def _merge_into(merged: dict[str, Any], key: str, value: Any) -> None:
    if key not in merged:
        merged[key] = list(value) if isinstance(value, (list, tuple)) else (
            dict(value) if isinstance(value, dict) else [value])
        return
    current = merged[key]
    if isinstance(current, dict) and isinstance(value, dict):
        current.update(value)
    elif isinstance(value, (list, tuple)):
        current.extend(value)
    else:
        current.append(value)
